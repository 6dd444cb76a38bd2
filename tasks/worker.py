"""`celery-composer worker`: a Celery worker for some of the compose queues.

`--queues depsolve,build,upload` (or `all`, or `upload.aws`) chooses what this machine does, so
depsolve, osbuild and each upload target scale on their own hosts.  `upload` means every upload
target's queue.  The worker runs our Celery app configured from the same `Config` as the API; it
takes `--concurrency` (default `worker_concurrency`, 0 = one process per CPU).

`WorkerProcesses` is how `serve` runs workers itself with the embedded broker: child processes
of this command, stopped (TERM, then KILL) when the API stops.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)
STOP_GRACE = 15.0


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


def _die_with_parent() -> None:
    """Children of `serve` get SIGTERM when it dies, even by `kill -9` (no stray workers)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class WorkerProcesses:
    """Children of `serve`: the recovery loop, and with the embedded broker the workers.

    Processes, not threads: gunicorn forks its workers from the process that runs this, and a
    fork taken while one of our threads holds a lock (logging, SQLite, kombu) deadlocks the child.
    They run `python -m app.cli` with the API's settings in the environment, so overrides given on
    `serve`'s command line reach them too.
    """

    def __init__(self, config: "Config", queue_sets: list[str], concurrency: int | None = None,
                 recovery: bool = False):
        self.config = config
        self.queue_sets = queue_sets
        self.concurrency = concurrency
        self.recovery = recovery
        self.procs: list[subprocess.Popen] = []

    def commands(self) -> list[list[str]]:
        base = [sys.executable, "-m", "app.cli"]
        out = []
        for queues in self.queue_sets:
            argv = base + ["worker", "--queues", queues]
            if self.concurrency is not None:
                argv += ["--concurrency", str(self.concurrency)]
            out.append(argv)
        if self.recovery:
            out.append([sys.executable, "-m", "tasks.recovery"])
        return out

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        cfg = self.config
        env["CELERY_COMPOSER_STATE_DIR"] = str(cfg.state_dir)
        env["CELERY_COMPOSER_CACHE_DIR"] = str(cfg.cache_dir)
        env["CELERY_COMPOSER_REPOSITORIES_DIR"] = str(cfg.repositories_dir)
        env["CELERY_COMPOSER_BROKER_URL"] = cfg.broker_url
        env["CELERY_COMPOSER_RESULT_BACKEND"] = cfg.result_backend
        if cfg.artifacts_dir:
            env["CELERY_COMPOSER_ARTIFACTS_DIR"] = str(cfg.artifacts_dir)
        return env

    def start(self) -> None:
        env = self.environ()
        for argv in self.commands():
            # own session: a Ctrl-C at the terminal reaches the API, which stops us in order
            self.procs.append(subprocess.Popen(argv, env=env, start_new_session=True,
                                               preexec_fn=_die_with_parent))
            log.info("started pid %d: %s", self.procs[-1].pid, " ".join(argv[2:]))

    def stop(self, grace: float = STOP_GRACE) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        self.procs.clear()
