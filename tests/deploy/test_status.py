"""`celery-composer status`: each part against the real thing (server, Redis, a worker)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from app.cli import build_parser
from tests.conftest import stop_group

ROOT = Path(__file__).resolve().parents[2]


def status(*args: str, env: dict[str, str], timeout: float = 90) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_COMPOSER_")}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "app.cli", "status", *args], cwd=ROOT,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    return {"CELERY_COMPOSER_STATE_DIR": str(tmp_path / "state"),
            "CELERY_COMPOSER_CACHE_DIR": str(tmp_path / "cache"),
            "CELERY_COMPOSER_SOCKET": str(tmp_path / "nothing-here.socket")}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_registered_in_the_cli():
    args = build_parser().parse_args(["status", "--check", "workers", "--queue", "build",
                                      "--local"])
    from app import status as status_module

    assert args._module() is status_module
    assert (args.check, args.queue, args.local) == ("workers", "build", True)


def test_api_down_is_reported(base_env):
    result = status("--check", "api", env=base_env)
    assert result.returncode == 1
    assert "nothing-here.socket: not answering" in result.stderr


def test_api_up_over_socket_and_tcp(start_weldr_server, base_env):
    port = free_port()
    server = start_weldr_server(args=["--listen", f"127.0.0.1:{port}"],
                                env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "false"})
    env = dict(base_env, CELERY_COMPOSER_SOCKET=str(server.socket),
               CELERY_COMPOSER_LISTEN=f"127.0.0.1:{port}")
    result = status("--json", "--check", "api", env=env)
    assert result.returncode == 0, result.stderr
    api = json.loads(result.stdout)["api"]
    assert api["socket_ok"] and api["listen_ok"]
    assert "api v1" in api["detail"]


def test_embedded_broker(base_env):
    result = status("--json", env=base_env)
    report = json.loads(result.stdout)
    assert report["broker"]["ok"] is True
    assert report["broker"]["url"].startswith("embedded")
    assert report["workers"]["embedded"] is True
    assert set(report) == {"api", "broker", "workers", "osbuild"}
    assert result.returncode == 1  # the API is not running


def test_unreachable_broker(base_env):
    env = dict(base_env, CELERY_COMPOSER_BROKER_URL=f"redis://:secret@127.0.0.1:{free_port()}/0")
    result = status("--check", "broker", "--timeout", "1", env=env)
    assert result.returncode == 1
    assert "unreachable" in result.stderr
    assert "secret" not in result.stderr  # the password is not printed


def test_osbuild_found_and_missing(base_env):
    # a stand-in for osbuild (not installable here): answers --version like osbuild does
    stand_in = f'{sys.executable} -c "print(\'osbuild 999\')"'
    result = status("--json", "--check", "osbuild",
                    env=dict(base_env, CELERY_COMPOSER_OSBUILD_COMMAND=stand_in))
    assert result.returncode == 0, result.stdout
    assert json.loads(result.stdout)["osbuild"]["version"] == "osbuild 999"
    missing = status("--check", "osbuild",
                     env=dict(base_env, CELERY_COMPOSER_OSBUILD_COMMAND="no-such-osbuild-here"))
    assert missing.returncode == 1
    assert "not found: 'no-such-osbuild-here'" in missing.stderr


def test_workers_per_queue_with_a_real_worker(tmp_path, base_env, private_redis):
    env = dict(base_env, CELERY_COMPOSER_BROKER_URL=private_redis)
    worker_env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_COMPOSER_")}
    worker_env.update(env)
    name = f"status-test-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--queues", "depsolve",
             "--concurrency", "1", "--name", name],
            cwd=ROOT, env=worker_env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        deadline = time.monotonic() + 180  # a bound for a loaded machine
        while True:
            result = status("--check", "workers", "--queue", "depsolve", "--local", env=env)
            if result.returncode == 0:
                break
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, result.stderr + log_path.read_text()[-3000:]
            time.sleep(1)
        report = json.loads(status("--json", "--check", "workers", env=env).stdout)["workers"]
        assert report["per_queue"]["depsolve"] == [name]
        assert report["per_queue"]["build"] == []
        assert report["ok"] is False  # nobody builds
        assert "no worker for: build" in report["detail"]
        build = status("--check", "workers", "--queue", "build", env=env)
        assert build.returncode == 1
    finally:
        stop_group(worker)


def test_osbuild_missing_matters_only_where_builds_run(base_env):
    """With a shared broker the API host needs no osbuild: the report says so, exit code 0 for
    that part; `--check osbuild` (a build worker's healthcheck) still fails."""
    env = dict(base_env, CELERY_COMPOSER_OSBUILD_COMMAND="no-such-osbuild-here",
               CELERY_COMPOSER_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0")
    report = json.loads(status("--json", "--timeout", "1", env=env).stdout)["osbuild"]
    assert report["ok"] is False and report["required"] is False
    assert "needed only where a worker for queue 'build' runs" in report["detail"]
    assert status("--check", "osbuild", env=env).returncode == 1
