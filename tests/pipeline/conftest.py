"""Pipeline fixtures: real Redis, real `celery-composer worker` subprocesses, a temp state dir.

Redis: a `redis-server` of this test session on a free loopback port (no persistence), flushed
before each test.  Not the shared one on 6379: several developers' suites run at once on these
machines, and workers of one session would take the other session's messages from a shared
database.  Tests that restart Redis start yet another one of their own.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.databases import database_url

PROJECT_DIR = Path(__file__).resolve().parents[2]
# bounds of waits on events: generous, so a loaded 2-core machine still gets there; a test never
# asserts on how long something took (bench/ measures speed)
READY_BOUND = 180.0  # a process says it is ready
STATE_BOUND = 180.0  # a compose reaches a state
STAND_IN = [sys.executable, str(Path(__file__).with_name("stand_in_osbuild.py"))]


def redis_answers(port: int = 6379) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Env:
    """One pipeline installation: settings (as environment), store, and worker subprocesses."""

    def __init__(self, base: Path, broker_url: str, **settings: Any):
        self.base = base
        self.settings = {
            "state_dir": str(base / "state"),
            "cache_dir": str(base / "cache"),
            "broker_url": broker_url,
            "task_stale_after": "3",
            "osbuild_command": shlex.join(STAND_IN),
            "log_level": "INFO",
            "embedded_workers": "false",
            "database_url": database_url(base / "state"),
            "local_upload_dirs": str(base),  # the `local` target writes only below this
        }
        self.settings.update({k: str(v) for k, v in settings.items()})
        base.mkdir(parents=True, exist_ok=True)
        self.workers: list[subprocess.Popen] = []
        self._logs: list[Any] = []

    @property
    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.settings.items():
            env["CELERY_COMPOSER_" + key.upper()] = value
        return env

    @property
    def config(self) -> Any:
        from core import config as config_mod

        return config_mod.load(environ=self.environ)

    @property
    def store(self) -> Any:
        from core.store.composes import ComposeStore

        return ComposeStore.from_config(self.config)

    def start_worker(self, queues: str = "all", concurrency: int = 1,
                     wait: float = READY_BOUND) -> subprocess.Popen:
        log_path = self.base / f"worker{len(self.workers)}.log"
        log = open(log_path, "ab")
        self._logs.append(log)
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues", queues,
                                 "--concurrency", str(concurrency)],
                                cwd=PROJECT_DIR, env=self.environ, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        proc.log_path = log_path  # type: ignore[attr-defined]
        self.workers.append(proc)
        wait_for_log(log_path, "ready.", timeout=wait, proc=proc)
        return proc

    def stop_workers(self, sig: int = signal.SIGTERM) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self.workers.clear()
        for log in self._logs:
            log.close()
        self._logs.clear()

    # --- composes --------------------------------------------------------------------------

    def test_compose(self, mode: int) -> str:
        """A test-mode compose stored WAITING, as POST /compose?test=N stores it for the pipeline."""
        store = self.store
        compose = store.create(blueprint={"name": "test-bp", "version": "0.0.1", "packages": []},
                               compose_type="tar", distro="test-distro", arch="x86_64")
        with store.db.transaction() as conn:
            record = json.loads(conn.execute("SELECT record FROM composes WHERE id = ?",
                                             (compose.id,)).fetchone()[0])
            record["test_mode"] = mode
            conn.execute("UPDATE composes SET record = ? WHERE id = ?",
                         (json.dumps(record), compose.id))
        return compose.id

    def build_compose(self, stand_in: dict[str, Any], uploads: list[dict] | None = None) -> str:
        """A compose past depsolve: manifest and build plan recorded, build queued.

        The manifest is the stand-in osbuild's (osbuild is not installed here), so this exercises
        everything of a build but osbuild itself.
        """
        from core import jobs
        from tasks import steps

        store = self.store
        compose = store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                               distro="test-distro", arch="x86_64", image_filename="root.tar",
                               mime_type="application/x-tar", upload_requests=uploads or [])
        store.mark_running(compose.id)
        manifest = {"version": "2", "pipelines": [
            {"name": "build", "stages": [{"type": "org.osbuild.rpm"}]},
            {"name": "os", "stages": [{"type": "org.osbuild.rpm"}, {"type": "org.osbuild.locale"}]},
            {"name": "archive", "stages": [{"type": "org.osbuild.tar"}]}],
            "sources": {}, "stand_in": {"filename": "root.tar", **stand_in}}
        store.record_manifest(compose.id, manifest)
        store.record_plan(compose.id, {"exports": ["archive"], "checkpoints": ["build", "os"],
                                       "filename": "root.tar"})
        jobs.enqueue(store.db, compose.id, steps.BUILD)
        return compose.id

    def states(self, compose_ids: list[str]) -> dict[str, str]:
        """Each compose's state now (no waiting)."""
        store = self.store
        return {cid: store.get(cid).queue_status for cid in compose_ids}

    def wait_for(self, compose_ids: list[str], states: tuple[str, ...] = ("FINISHED", "FAILED"),
                 timeout: float = STATE_BOUND) -> dict[str, str]:
        """The composes' states once each is in `states`, or as they are after `timeout` (a
        bound for a loaded machine, not a measure of speed: callers compare the states)."""
        store = self.store
        deadline = time.monotonic() + timeout
        while True:
            got = {cid: store.get(cid).queue_status for cid in compose_ids}
            if all(s in states for s in got.values()) or time.monotonic() > deadline:
                return got
            time.sleep(0.05)


@pytest.fixture(scope="session")
def session_redis() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server is not installed (tests/debian-packages.txt)")
    port = free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + READY_BOUND
    while not redis_answers(port):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("redis-server for the pipeline tests did not start")
        time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def redis_url(session_redis: str) -> str:
    flush_redis(session_redis)
    return session_redis


@pytest.fixture
def make_env(tmp_path: Path) -> Iterator[Any]:
    envs: list[Env] = []

    def make(broker_url: str, **settings: Any) -> Env:
        env = Env(tmp_path / f"env{len(envs)}", broker_url, **settings)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop_workers(signal.SIGKILL)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[Any]:
    """A private redis-server (no persistence) this test may stop and start at will."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()

    class OwnRedis:
        url = f"redis://127.0.0.1:{port}/0"
        proc: subprocess.Popen | None = None

        def start(self) -> None:
            self.proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + READY_BOUND
            while not redis_answers(port):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("own redis-server did not start")
                time.sleep(0.05)

        def stop(self) -> None:
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()

    server = OwnRedis()
    server.start()
    yield server
    server.stop()


# --- process trees ------------------------------------------------------------------------------

def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1], pgid [2],
    start time [19]); None when there is no such process."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tree(root: int) -> dict[int, str]:
    """Every live process descending from `root`, and every member of their process groups
    (a worker's pool in its own group), as pid → start time (which tells a reused pid apart)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] != "Z":
                table[int(entry.name)] = fields
    found = {root} if root in table else set()
    while True:
        groups = {int(table[p][2]) for p in found}
        more = {p for p, f in table.items()
                if p not in found and (int(f[1]) in found or int(f[2]) in groups)}
        if not more:
            break
        found |= more
    return {p: table[p][19] for p in found}


def snapshot(pids: list[int]) -> dict[int, str]:
    """pid → start time of those of `pids` alive now (for `still_running` / `wait_gone`)."""
    return {p: f[19] for p in pids if (f := _stat(p)) is not None and f[0] != "Z"}


def still_running(tree: dict[int, str]) -> list[int]:
    """The processes of `tree` still alive (same pid and same start time, not a zombie)."""
    out = []
    for pid, started in tree.items():
        fields = _stat(pid)
        if fields is not None and fields[0] != "Z" and fields[19] == started:
            out.append(pid)
    return out


def wait_gone(tree: dict[int, str], timeout: float = STATE_BOUND) -> list[int]:
    """Wait (on pidfds, not a timer) until every process of `tree` has ended; returns those
    still running after `timeout`, a bound generous enough for a loaded machine."""
    import select

    fds = {}
    for pid in still_running(tree):
        try:
            fds[os.pidfd_open(pid)] = pid
        except OSError:  # ended meanwhile
            continue
    deadline = time.monotonic() + timeout
    try:
        pending = dict(fds)
        while pending and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending), [], [], deadline - time.monotonic())
            for fd in ready:
                pending.pop(fd)
        return still_running({p: tree[p] for p in pending.values()})
    finally:
        for fd in fds:
            os.close(fd)


def wait_for_log(path: Path, needle: str, timeout: float = READY_BOUND, start: int = 0,
                 proc: subprocess.Popen | None = None) -> str:
    """The log's text from `start` once `needle` is in it; fails after `timeout` (generous) or
    when `proc` ended first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, "rb") as fh:
                fh.seek(start)
                text = fh.read().decode("utf-8", "replace")
        except FileNotFoundError:
            text = ""
        if needle in text:
            return text
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended before {needle!r} was logged: {text[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{needle!r} not logged within {timeout} s: {text[-3000:]}")
        time.sleep(0.1)


# --- serve with its embedded workers ------------------------------------------------------------

CHILDREN = ("worker-depsolve", "worker-build", "worker-upload", "recovery")


def start_embedded_serve(tmp_path: Path, make_env: Any, **settings: Any) -> tuple[Any, Env]:
    """`celery-composer serve` with its embedded broker and workers, once every supervised child
    started and each worker said it is ready (the log is at INFO for that)."""
    from tests.conftest import WeldrServer

    server = WeldrServer(tmp_path / "api")
    env = make_env("", state_dir=server.state_dir, embedded_workers="true", **settings)
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.extra_env.setdefault("CELERY_COMPOSER_WORKER_CONCURRENCY", "1")
    server.extra_env["CELERY_COMPOSER_LOG_LEVEL"] = "INFO"
    server.start(timeout=120)
    try:
        wait_until_ready(server)
    except BaseException:
        server.stop()
        raise
    return server, env


def children(server: Any, start: int = 0) -> dict[str, int]:
    """The latest pid of each supervised child, from the supervisor's log lines."""
    import re

    text = server.log_path.read_bytes()[start:].decode("utf-8", "replace")
    return {m[1]: int(m[2]) for m in re.finditer(r"started (\S+) \(pid (\d+)\)", text)}


def wait_until_ready(server: Any, start: int = 0, timeout: float = 180.0) -> dict[str, int]:
    """Every supervised child started, and each worker logged Celery's "ready."."""
    import re

    wait_for_log(server.log_path, "started recovery", start=start, timeout=timeout,
                 proc=server.proc)
    pids = children(server, start)
    deadline = time.monotonic() + timeout
    while True:
        text = server.log_path.read_bytes()[start:].decode("utf-8", "replace")
        assert "Unrecoverable error" not in text, text[-3000:]
        if all(re.search(rf"\[{pids[n]}\].*ready\.", text) for n in CHILDREN[:3]):
            return pids
        assert time.monotonic() < deadline, f"workers not ready: {text[-3000:]}"
        assert server.proc is not None and server.proc.poll() is None, text[-3000:]
        time.sleep(0.1)


def wait_until(predicate: Any, timeout: float = STATE_BOUND, what: str = "condition") -> Any:
    """Poll `predicate` (a state in the store, a file) until it is true; fail after `timeout`,
    a bound generous enough for a loaded machine, never a measure of speed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not reached within {timeout} s"
        time.sleep(0.05)


def kill_and_wait(server: Any) -> None:
    """kill -9 of a WeldrServer's whole group, then wait until every process it had (its
    supervisor's children in their own groups too) is gone: a power cut of the service."""
    assert server.proc is not None
    tree = process_tree(server.proc.pid)
    server.kill()
    left = wait_gone(tree)
    assert not left, f"processes of the killed API still run: {left}"
