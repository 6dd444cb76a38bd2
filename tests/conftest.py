"""Fixtures shared by several test areas.

`weldr_server` is one real `celery-composer serve` (gunicorn) on a temporary unix socket for
the whole session; `weldr_client` speaks plain HTTP/1.1 to it over that socket, as composer-cli
does.  Tests that need a server of their own (restart, kill -9, other settings) use
`start_weldr_server` and stop it themselves.

Test-mode composes (`?test=1|2`) are stored ended at once and need no worker.  A server whose
tests build needs a worker for queue `build` (`queue_workers="build"`: the session server has one)
or the embedded workers (`env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "true"}`).  Without a worker on
`depsolve`, POST /compose does not wait for a depsolve outcome (`compose_depsolve_wait` 0) unless
told to.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bench.weldr_client import WeldrClient
from tests.databases import database_url, drop_created

PROJECT_DIR = Path(__file__).resolve().parent.parent


class WeldrServer:
    """A `celery-composer serve` subprocess on its own socket and state directory."""

    def __init__(self, base: Path, *, workers: int = 1, env: dict[str, str] | None = None,
                 args: list[str] | None = None, queue_workers: str = ""):
        self.base = Path(base)
        self.socket = self.base / "run" / "api.socket"
        self.state_dir = self.base / "state"
        self.cache_dir = self.base / "cache"
        self.workers = workers
        self.extra_env = env or {}
        self.extra_args = args or []
        self.queue_workers = queue_workers  # e.g. "build": a `celery-composer worker` beside it
        self.proc: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self.client = WeldrClient(self.socket)

    def start(self, timeout: float = 120.0) -> "WeldrServer":
        """Start serve and wait until it answers (and its queue worker is ready); `timeout` only
        bounds that wait on a loaded machine."""
        env = dict(os.environ)
        env.update({"CELERY_COMPOSER_CACHE_DIR": str(self.cache_dir),
                    "CELERY_COMPOSER_LOG_LEVEL": "WARNING",
                    # API tests drive composes through the store; areas that want the embedded
                    # workers pass env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "true"}.
                    "CELERY_COMPOSER_EMBEDDED_WORKERS": "false"})
        env["CELERY_COMPOSER_DATABASE_URL"] = database_url(self.state_dir)
        env.update(self.extra_env)
        consumes_depsolve = env["CELERY_COMPOSER_EMBEDDED_WORKERS"] == "true" or any(
            q in ("all", "depsolve") for q in self.queue_workers.split(","))
        if "CELERY_COMPOSER_COMPOSE_DEPSOLVE_WAIT" not in self.extra_env and not consumes_depsolve:
            env["CELERY_COMPOSER_COMPOSE_DEPSOLVE_WAIT"] = "0"  # nobody would ever answer
        self.env = env
        cmd = [sys.executable, "-m", "app.cli", "serve", "--socket", str(self.socket),
               "--state-dir", str(self.state_dir), "--workers", str(self.workers),
               *self.extra_args]
        self.base.mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "server.log"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=PROJECT_DIR, env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            if self.socket.exists():
                try:
                    if self.client.get("/api/status", timeout=5).status == 200:
                        if self.queue_workers:
                            self._start_worker(timeout)
                        return self
                except OSError:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not answer: {self.log_path.read_text()[-3000:]}")

    def _start_worker(self, timeout: float) -> None:
        """A real `celery-composer worker` for `queue_workers` on this server's broker and store."""
        log_path = self.base / "worker.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--queues", self.queue_workers,
             "--concurrency", "1", "--state-dir", str(self.state_dir)],
            # INFO: Celery says "ready." at that level
            cwd=PROJECT_DIR, env={**self.env, "CELERY_COMPOSER_LOG_LEVEL": "INFO"},
            stdout=(log := open(log_path, "ab")),
            stderr=subprocess.STDOUT, start_new_session=True)
        log.close()  # the child has its own copy
        deadline = time.monotonic() + max(timeout, 180.0)
        while time.monotonic() < deadline:
            if self.worker.poll() is not None:
                raise RuntimeError(f"worker exited: {log_path.read_text()[-3000:]}")
            with open(log_path, "rb") as fh:
                fh.seek(offset)
                if b"ready." in fh.read():
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"worker not ready: {log_path.read_text()[-3000:]}")

    def _stop_worker(self, sig: int) -> None:
        if self.worker is None:
            return
        stop_group(self.worker, sig, 20)
        self.worker = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        self._stop_worker(sig)
        if self.proc is None:
            return None
        stop_group(self.proc, sig, timeout)  # the whole group: arbiter and its workers
        rc = self.proc.returncode
        self._log.close()
        self.proc = None
        return rc

    def kill(self) -> None:
        """kill -9 of the arbiter and every worker, as a power cut of the service would be."""
        self.stop(signal.SIGKILL)


def pytest_report_header(config: Any) -> str:
    from tests.databases import ADMIN_URL, on_postgresql

    return f"store database: {'PostgreSQL at ' + ADMIN_URL if on_postgresql() else 'SQLite'}"


def pytest_sessionfinish(session: Any, exitstatus: int) -> None:
    drop_created()


@pytest.fixture(scope="session")
def weldr_server() -> Iterator[WeldrServer]:
    with tempfile.TemporaryDirectory(prefix="weldr-") as base:
        # a worker for queue `build`; nothing takes `depsolve`, so composes stay WAITING for
        # the tests that drive them through the store
        server = WeldrServer(Path(base), workers=2, queue_workers="build",
                             env={"CELERY_COMPOSER_LOCAL_UPLOAD_DIRS": tempfile.gettempdir()}).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def weldr_client(weldr_server: WeldrServer) -> WeldrClient:
    return weldr_server.client


@pytest.fixture
def start_weldr_server(tmp_path: Path) -> Iterator[Any]:
    """Factory: `start_weldr_server(**kw)` → a started WeldrServer in tmp_path, stopped after."""
    started: list[WeldrServer] = []

    def start(**kw: Any) -> WeldrServer:
        server = WeldrServer(tmp_path / f"server{len(started)}", **kw).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


OSBUILD_ENV = "TEST_OSBUILD_COMMAND"


def real_osbuild(image_type: str | None = None) -> list[str]:
    """The osbuild command line for tests that build with real osbuild, or a skip naming what is missing.

    osbuild is packaged for Fedora/RHEL only, so CI and the development machines have none and these
    tests skip there.  `TEST_OSBUILD_COMMAND` (a shell-quoted command line, e.g. a source checkout's
    `env PYTHONPATH=/src/osbuild python3 -m osbuild --libdir /src/osbuild`) wins over `osbuild` on
    PATH.  A command that is there but does not even print its version fails the test instead of
    skipping it: whoever installed or named it wants the builds to run.
    """
    import shlex
    import shutil

    given = os.environ.get(OSBUILD_ENV, "").strip()
    if given:
        command = shlex.split(given)
    elif shutil.which("osbuild"):
        command = ["osbuild"]
    else:
        pytest.skip(f"osbuild is not installed (install it, or set {OSBUILD_ENV} to a command "
                    "that runs it, e.g. from a source checkout)")
    if os.geteuid() != 0:
        pytest.skip("osbuild needs root (mounts, loop devices, namespaces)")
    needed = ["bwrap", "rpm"]
    if image_type not in (None, "tar"):
        needed += ["qemu-img", "sfdisk", "mkfs.xfs" if "xfs" in image_type else "mkfs.ext4"]
    missing = [tool for tool in needed if shutil.which(tool) is None]
    if missing:
        pytest.skip(f"osbuild needs {', '.join(missing)} on this host (bubblewrap, rpm, qemu-utils, "
                    "fdisk, e2fsprogs, xfsprogs)")
    if not Path("/etc/containers").is_dir():
        pytest.skip("osbuild bind-mounts /etc/containers, which does not exist on this host "
                    "(mkdir -p /etc/containers)")
    _check_osbuild_runs(tuple(command))
    return command


_osbuild_checked: set[tuple[str, ...]] = set()


def _check_osbuild_runs(command: tuple[str, ...]) -> None:
    if command in _osbuild_checked:
        return
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=120)
    except OSError as e:
        pytest.fail(f"osbuild command {' '.join(command)!r} does not run: {e}")
    if done.returncode != 0 or not done.stdout.startswith("osbuild"):
        pytest.fail(f"osbuild command {' '.join(command)!r} --version failed "
                    f"(exit {done.returncode}): {(done.stderr or done.stdout)[-500:]}")
    _osbuild_checked.add(command)


@contextlib.contextmanager
def loopback_http(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[int]:
    """A threaded HTTP server on 127.0.0.1 (free port) for tests that need a real peer (container
    registry, ostree repository, key server); yields the port, shuts it down afterwards."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a process started in its own session together with what it started (gunicorn's
    workers, celery's pool): `sig` to the group, SIGKILL when it has not ended within `timeout`."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
