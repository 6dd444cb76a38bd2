"""`celery-composer worker`: a Celery worker for some of the compose queues.

`--queues depsolve,build,upload` (or `all`, or `upload.aws`) chooses what this machine does, so
depsolve, osbuild and each upload target scale on their own hosts.  `upload` means every upload
target's queue.  The worker runs our Celery app configured from the same `Config` as the API; it
takes `--concurrency` (default `worker_concurrency`, 0 = one process per CPU).

`embedded_children` is what `serve` runs itself under `tasks.supervisor`: with the embedded broker
one worker of this command per queue kind, and the recovery loop.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Config
    from tasks.supervisor import ChildSpec

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queues", "-Q", default="all",
                        help="comma-separated: depsolve, build, upload (all targets), upload.<target>, "
                             "or all (default)")
    parser.add_argument("--concurrency", "-c", type=int, default=None,
                        help="worker processes (default: worker_concurrency; 0 = one per CPU)")
    parser.add_argument("--pool", choices=("prefork", "threads", "solo"), default="prefork",
                        help="Celery execution pool (default prefork: a task that crashes takes only "
                             "its child process down)")
    parser.add_argument("--broker", default=None, help="override broker_url")
    parser.add_argument("--state-dir", default=None, help="override state_dir")
    parser.add_argument("--name", default=None, help="node name (default composer-<pid>@<host>)")


def expand_queues(spec: str | list[str]) -> list[str]:
    """`all`, `upload`, names → the concrete queue names; unknown names are refused."""
    from core.jobs import UPLOAD_QUEUE_PREFIX
    from tasks import celery_app

    names = spec.split(",") if isinstance(spec, str) else list(spec)
    known = celery_app.all_queues()
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name == "all":
            wanted = known
        elif name == "upload":
            wanted = [q for q in known if q.startswith(UPLOAD_QUEUE_PREFIX)]
        elif name in known:
            wanted = [name]
        else:
            raise ValueError(f"unknown queue {name!r}; known: all, upload, {', '.join(known)}")
        out += [q for q in wanted if q not in out]
    if not out:
        raise ValueError("no queue given")
    return out


def run(args: argparse.Namespace, config: "Config") -> int:
    overrides = {"broker_url": args.broker, "state_dir": args.state_dir}
    config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
    from core import statedir
    from core.logs import setup_logging
    from tasks import celery_app
    from tasks.task_logs import install_celery

    setup_logging(config, "worker")
    try:
        statedir.prepare(config)  # 0700, databases 0600, umask 027 for what the worker writes
    except OSError as exc:
        log.error("cannot prepare %s: %s", exc.filename, exc.strerror)
        return 1
    app = celery_app.configure(config)
    install_celery(app)
    try:
        queues = expand_queues(args.queues)
    except ValueError as exc:
        print(f"celery-composer worker: {exc}", file=sys.stderr)
        return 2
    concurrency = args.concurrency if args.concurrency is not None else config.worker_concurrency
    argv = ["worker", "--queues", ",".join(queues), "--loglevel", config.log_level.upper(),
            "--hostname", args.name or f"composer-{os.getpid()}@%h",
            "--without-mingle", "--without-gossip", "--pool", args.pool]
    if concurrency:
        argv += ["--concurrency", str(concurrency)]
    log.info("worker for queues %s (broker %s)", ",".join(queues),
             "embedded" if celery_app.is_embedded(config) else _redact(config.broker_url))
    app.worker_main(argv)
    return 0


def _redact(url: str) -> str:
    """A broker URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


EMBEDDED_DEPSOLVE_CONCURRENCY = 2  # two POST /compose depsolve at once; a third waits for one
EMBEDDED_UPLOAD_CONCURRENCY = 2


def embedded_children(config: "Config", workers: bool) -> list["ChildSpec"]:
    """What `serve` supervises: with `workers`, one Celery worker per queue kind, then the recovery
    loop.  A worker per kind, not one for all queues: a depsolve (which POST /compose waits for)
    must never wait for a pool slot that builds of an hour hold, nor an upload for one."""
    from tasks.supervisor import ChildSpec

    base = [sys.executable, "-m", "app.cli", "worker"]
    specs = []
    if workers:
        for queues, concurrency in (("depsolve", EMBEDDED_DEPSOLVE_CONCURRENCY),
                                    ("build", config.worker_concurrency),
                                    ("upload", EMBEDDED_UPLOAD_CONCURRENCY)):
            argv = base + ["--queues", queues]
            if concurrency:
                argv += ["--concurrency", str(concurrency)]
            specs.append(ChildSpec(f"worker-{queues}", argv))
    specs.append(ChildSpec("recovery", [sys.executable, "-m", "tasks.recovery"],
                           death_signal=signal.SIGTERM))
    return specs


def child_environ(config: "Config") -> dict[str, str]:
    """The children run `python -m app.cli` with the API's settings in the environment, so
    overrides given on `serve`'s command line reach them too."""
    env = dict(os.environ)
    cfg = config
    env["CELERY_COMPOSER_STATE_DIR"] = str(cfg.state_dir)
    env["CELERY_COMPOSER_CACHE_DIR"] = str(cfg.cache_dir)
    env["CELERY_COMPOSER_REPOSITORIES_DIR"] = str(cfg.repositories_dir)
    env["CELERY_COMPOSER_BROKER_URL"] = cfg.broker_url
    env["CELERY_COMPOSER_RESULT_BACKEND"] = cfg.result_backend
    if cfg.artifacts_dir:
        env["CELERY_COMPOSER_ARTIFACTS_DIR"] = str(cfg.artifacts_dir)
    return env
