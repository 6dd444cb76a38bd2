"""`celery-composer serve`: the Weldr API under gunicorn on its unix socket (and optionally TCP).

gunicorn rather than Flask's development server because composer-cli and cockpit expect a
server that survives concurrent clients and restarts its workers; it is driven programmatically
so that one `Config` decides everything and no gunicorn command line leaks into the deployment.

The socket is created with umask 0117, so it is born 0660 (gunicorn would otherwise leave it
0777, open to every local user), then handed to group `socket_group` when that group exists:
that group is how osbuild-composer lets non-root users build images.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

THREADS_PER_WORKER = 4
SOCKET_UMASK = 0o117  # → srw-rw----
GRACEFUL_TIMEOUT = 10
EMBEDDED_RESTART_DELAY = 5.0  # seconds between starts of the embedded supervisor


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--socket", type=Path, default=None,
                        help="unix socket path (default /run/weldr/api.socket)")
    parser.add_argument("--listen", default=None, metavar="HOST:PORT",
                        help="also serve HTTP over TCP on this address")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="where blueprints, sources and composes are kept")
    parser.add_argument("--repositories", type=Path, default=None,
                        help="directory of system repository definitions (<distro>.json)")
    parser.add_argument("--workers", type=int, default=None, help="API worker processes")


def run(args: argparse.Namespace, config: "Config") -> int:
    overrides = {
        "socket": args.socket, "listen": args.listen, "state_dir": args.state_dir,
        "repositories_dir": args.repositories, "api_workers": args.workers,
    }
    config = config.replace(**{k: v for k, v in overrides.items() if v is not None})
    from core import statedir
    from core.logs import setup_logging

    setup_logging(config, "api")
    try:
        prepare_socket_dir(config)
        statedir.prepare(config)  # 0700, databases 0600, umask 027 for what the service writes
    except OSError as exc:
        log.error("cannot prepare %s: %s", exc.filename, exc.strerror)
        return 1
    WeldrServer(config).run()
    return 0


def prepare_socket_dir(config: "Config") -> None:
    directory = Path(config.socket).parent
    directory.mkdir(parents=True, exist_ok=True)
    gid = socket_gid(config)
    if gid is not None:
        try:
            os.chown(directory, -1, gid)
        except PermissionError:
            pass


def socket_gid(config: "Config") -> int | None:
    import grp

    try:
        return grp.getgrnam(config.socket_group).gr_gid
    except KeyError:
        return None


def systemd_socket_count() -> int:
    """Sockets systemd handed us (socket activation), without consuming the variables.

    gunicorn's arbiter reads `LISTEN_FDS`/`LISTEN_PID` itself and then serves those descriptors
    (starting at fd 3) instead of binding `bind_addresses`; we only need to know, so that the
    socket systemd owns is neither re-permissioned nor unlinked by us.
    """
    try:
        if int(os.environ.get("LISTEN_PID", "0")) != os.getpid():
            return 0
        return max(0, int(os.environ.get("LISTEN_FDS", "0")))
    except ValueError:
        return 0


def bind_addresses(config: "Config") -> list[str]:
    binds = [f"unix:{config.socket}"]
    if config.listen:
        binds.append(config.listen)
    return binds


def _make_base() -> type:
    from gunicorn.app.base import BaseApplication

    from app.request_logs import GunicornLogger

    class _WeldrServer(BaseApplication):
        """gunicorn with our settings and our app; no gunicorn command line is parsed."""

        def __init__(self, config: "Config",
                     app_factory: Callable[["Config"], Any] | None = None,
                     embedded: bool = True):
            self.weldr_config = config
            self.app_factory = app_factory
            self.embedded = embedded
            self._embedded_proc: Any = None
            self._embedded_started = 0.0
            self._stopping = False
            self.socket_activated = systemd_socket_count() > 0
            super().__init__()

        def load_config(self) -> None:
            cfg = self.weldr_config
            settings = {
                "bind": bind_addresses(cfg),
                "workers": max(1, cfg.api_workers),
                # gthread, answering the request errors gunicorn catches itself in JSON
                # (app.gunicorn_worker) and reading each request whole in its event loop before
                # a thread takes it, so slow clients cannot hold the threads (app.buffered_worker)
                "worker_class": "app.buffered_worker.BufferedThreadWorker",
                # the longest request line gunicorn allows with a bound (4 KB by default):
                # composer-cli asks compose/status for a list of ids in the path
                "limit_request_line": 8190,
                "threads": THREADS_PER_WORKER,
                "umask": SOCKET_UMASK,
                "graceful_timeout": GRACEFUL_TIMEOUT,
                "timeout": 300,  # depsolves answered inline may take minutes on a cold cache
                "keepalive": 5,
                "loglevel": cfg.log_level.lower(),
                "accesslog": None,
                "errorlog": "-",
                "logger_class": GunicornLogger,  # our format, compose id on each line
                "proc_name": "celery-composer-api",
                "when_ready": self._when_ready,
                "on_exit": self._on_exit,
                "post_worker_init": _warm_worker,
                # The Weldr socket is the only client door; the peer is always local.
                "forwarded_allow_ips": "127.0.0.1",
                # gunicorn ≥ 24 opens a control socket under $HOME; we do not want a second door.
                "control_socket_disable": True,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:  # settings newer gunicorns added are optional
                    self.cfg.set(key, value)

        def load(self) -> Any:
            if self.app_factory is not None:
                return self.app_factory(self.weldr_config)
            from app import create_app
            from tasks.pipeline import CeleryPipeline

            return create_app(self.weldr_config, CeleryPipeline(self.weldr_config))

        def _when_ready(self, server: Any) -> None:
            cfg = self.weldr_config
            if self.socket_activated:
                # systemd created the sockets (SocketMode/SocketGroup) and keeps them across restarts
                self._start_embedded()
                server.log.info("Weldr API serving %d socket(s) from systemd",
                                len(server.LISTENERS))
                return
            path = str(cfg.socket)
            os.chmod(path, 0o660)
            gid = socket_gid(cfg)
            if gid is not None:
                try:
                    os.chown(path, -1, gid)
                except PermissionError:
                    log.warning("cannot give %s to group %s", path, cfg.socket_group)
            self._start_embedded()
            server.log.info("Weldr API listening on %s", ", ".join(bind_addresses(cfg)))

        def _start_embedded(self) -> None:
            """The pipeline's helpers beside the API (embedded workers, recovery loop).

            They run under a supervisor in a spawned child, never in the arbiter: the arbiter
            forks API workers for its whole life, and an SQLite connection open across a fork
            corrupts the child's view of the file locks ("database is locked" in every worker).
            A plain subprocess, not multiprocessing: forked API workers would inherit a
            multiprocessing child and try to join it at exit.  It gets SIGTERM when the arbiter
            dies (even by `kill -9`), and the arbiter starts it again should it die
            (`_check_embedded`, from the arbiter's loop).
            """
            if not self.embedded:
                return
            import base64
            import pickle
            import subprocess
            import sys

            from tasks.supervisor import die_with_parent

            env = dict(os.environ)
            env[_EMBEDDED_ENV] = base64.b64encode(pickle.dumps(self.weldr_config)).decode()
            self._embedded_proc = subprocess.Popen(
                [sys.executable, "-c", "import app.server as s; s._embedded_main()"], env=env,
                preexec_fn=die_with_parent(signal.SIGTERM))
            self._embedded_started = time.monotonic()

        def _check_embedded(self) -> None:
            """Start the supervisor again if it died (it restarts its own children); at most
            once per `EMBEDDED_RESTART_DELAY` s, so one that cannot start does not spin."""
            proc = self._embedded_proc
            if proc is None or self._stopping or proc.poll() is None:
                return
            if time.monotonic() - self._embedded_started < EMBEDDED_RESTART_DELAY:
                return
            log.warning("the embedded supervisor (pid %d) ended (status %s); starting it again",
                        proc.pid, proc.returncode)
            self._start_embedded()

        def _stop_embedded(self) -> None:
            self._stopping = True
            proc = self._embedded_proc
            if proc is None:
                return
            import subprocess

            if proc.poll() is None:
                proc.terminate()  # SIGTERM: the supervisor stops its children's groups
            try:
                proc.wait(GRACEFUL_TIMEOUT + 5)
            except subprocess.TimeoutExpired:
                proc.kill()  # its children get their parent-death signal
                proc.wait()

        def run(self) -> None:
            """gunicorn's arbiter, which also looks after the embedded supervisor each second."""
            from gunicorn.arbiter import Arbiter

            application = self

            class WeldrArbiter(Arbiter):
                def manage_workers(self) -> None:
                    super().manage_workers()
                    application._check_embedded()

            try:
                WeldrArbiter(self).run()
            except RuntimeError as exc:
                print(f"\nError: {exc}\n", file=sys.stderr)
                sys.exit(1)

        def _on_exit(self, server: Any) -> None:
            self._stop_embedded()
            if self.socket_activated:
                return  # the socket is systemd's: removing it would break the next activation
            try:
                os.unlink(self.weldr_config.socket)
            except OSError:
                pass

    return _WeldrServer


_EMBEDDED_ENV = "CELERY_COMPOSER_EMBEDDED_CONFIG"


def _warm_worker(worker: Any) -> None:
    """Load the image definitions in the background as a worker starts, so the first
    compose/types or POST /compose does not pay for it (about half a second)."""
    import threading

    def warm() -> None:
        try:
            import distros

            for name in distros.list_distros():
                distros.get_distro(name)
        except Exception:  # noqa: BLE001 - only a warm-up; the request path reports errors
            pass

    threading.Thread(target=warm, name="warm-definitions", daemon=True).start()


def _embedded_main() -> None:
    """Child process: the pipeline's helpers, supervised from this main thread until SIGTERM."""
    import base64
    import pickle
    import threading

    from core.logs import setup_logging
    from tasks.pipeline import run_embedded

    config = pickle.loads(base64.b64decode(os.environ.pop(_EMBEDDED_ENV)))

    setup_logging(config, "embedded")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    try:
        run_embedded(config, done)
    except Exception:  # the API stays useful (blueprints, sources, status) without them
        log.exception("the pipeline's embedded helpers stopped")
        raise SystemExit(1) from None


def WeldrServer(config: "Config", app_factory: Callable[["Config"], Any] | None = None,
                embedded: bool = True) -> Any:
    """A gunicorn application serving the Weldr API (or `app_factory(config)`, for benchmarks);
    `embedded=False` leaves the pipeline's helpers out (benchmarks of the API alone)."""
    return _make_base()(config, app_factory, embedded)
