"""Structured logs: the compose id on every line, in both formats, from API requests and tasks."""

from __future__ import annotations

import io
import json
import logging
import uuid

import pytest

from app.request_logs import install_flask
from core.config import Config
from core.logs import compose_context, current_compose_id, setup_logging
from tasks.task_logs import install_celery
from tests.conftest import stop_group

COMPOSE = str(uuid.UUID(int=0x1234))


@pytest.fixture
def capture():
    """Our handler on a string stream; removed afterwards so other tests keep their logging."""
    stream = io.StringIO()
    handlers: list[logging.Handler] = []

    def setup(fmt: str = "text", role: str = "test") -> io.StringIO:
        handlers.append(setup_logging(Config(log_format=fmt, log_level="DEBUG"), role, stream))
        return stream

    yield setup
    for handler in handlers:
        logging.getLogger().removeHandler(handler)


def test_text_lines_carry_compose_id_including_traceback(capture):
    stream = capture("text", "worker")
    log = logging.getLogger("tasks.build")
    log.info("outside")
    with compose_context(COMPOSE):
        try:
            raise RuntimeError("osbuild exited 1")
        except RuntimeError:
            log.exception("build failed", extra={"stage": "org.osbuild.rpm"})
    lines = stream.getvalue().splitlines()
    assert "compose=- tasks.build: outside" in lines[0]
    assert " worker[" in lines[0]
    failed = lines[1:]
    assert len(failed) > 3  # message + traceback lines
    assert all(f"compose={COMPOSE} tasks.build:" in line for line in failed)
    assert "build failed stage=org.osbuild.rpm" in failed[0]
    assert failed[-1].endswith("| RuntimeError: osbuild exited 1")


def test_json_lines(capture):
    stream = capture("json", "api")
    log = logging.getLogger("app.routes.compose")
    with compose_context(COMPOSE):
        log.warning("upload %s slow", "aws", extra={"bytes": 10})
    log.info("idle")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["compose_id"] == COMPOSE
    assert first["message"] == "upload aws slow"
    assert first["bytes"] == 10
    assert first["process"] == "api"
    assert first["level"] == "WARNING"
    assert second["compose_id"] is None


def test_setup_is_idempotent(capture):
    stream = capture()
    capture()
    logging.getLogger("x").info("once")
    assert stream.getvalue().count("once") == 1


def test_context_is_restored():
    with compose_context("a"):
        with compose_context("b"):
            assert current_compose_id() == "b"
        assert current_compose_id() == "a"
    assert current_compose_id() is None


def test_flask_requests_bind_compose_from_path(capture):
    """Flask's test client drives the request cycle in-process; the real socket is tested in
    test_metrics with the real server."""
    from flask import Flask

    stream = capture()
    app = Flask("t")
    install_flask(app)

    @app.get("/api/v1/compose/log/<uuid>")
    def compose_log(uuid: str) -> str:
        logging.getLogger("app.routes.compose").info("log asked")
        return "ok"

    @app.get("/api/v1/compose/queue")
    def queue() -> str:
        logging.getLogger("app.routes.compose").info("queue asked")
        return "ok"

    client = app.test_client()
    assert client.get(f"/api/v1/compose/log/{COMPOSE.upper()}").status_code == 200
    assert client.get("/api/v1/compose/queue").status_code == 200
    lines = stream.getvalue().splitlines()
    assert f"compose={COMPOSE} " in lines[0]
    assert "compose=- " in lines[1]
    assert current_compose_id() is None


def test_celery_tasks_bind_their_compose_id(capture):
    """Eager execution runs the task through Celery's tracer, which sends the same
    task_prerun/task_postrun signals a worker sends; the worker itself is pipeline's to test."""
    from celery import Celery

    stream = capture()
    app = Celery("t", set_as_current=False)
    app.conf.task_always_eager = True
    install_celery(app)

    @app.task(name="t.step")
    def step(compose_id: str) -> str:
        logging.getLogger("tasks.compose").info("step runs")
        return current_compose_id() or ""

    assert step.delay(COMPOSE).get() == COMPOSE
    assert current_compose_id() is None
    assert f"compose={COMPOSE} tasks.compose: step runs" in stream.getvalue()


def test_real_worker_lines_carry_the_compose_id(tmp_path, private_redis):
    """A real `celery-composer worker` on a private Redis runs a task for a compose that does not
    exist (it skips it): each line about that task, Celery's own included, names the compose."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    compose_id = str(uuid.uuid4())
    env = {k: v for k, v in os.environ.items() if not k.startswith("CELERY_COMPOSER_")}
    env.update(CELERY_COMPOSER_BROKER_URL=private_redis,
               CELERY_COMPOSER_STATE_DIR=str(tmp_path / "state"),
               CELERY_COMPOSER_CACHE_DIR=str(tmp_path / "cache"))
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--queues",
                                   "depsolve", "--concurrency", "1"], cwd=root, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sender = ("from core.config import load; from tasks import celery_app;"
                  f"celery_app.configure(load()).send_task('compose.depsolve', args=['{compose_id}'])")
        subprocess.run([sys.executable, "-c", sender], cwd=root, env=env, check=True, timeout=60)
        deadline = time.monotonic() + 180  # a bound for a loaded machine
        while "succeeded" not in log_path.read_text():
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
    finally:
        stop_group(worker)
    about_task = [line for line in log_path.read_text().splitlines() if "compose.depsolve[" in line]
    assert len(about_task) >= 2  # received, succeeded
    assert all(f"compose={compose_id} " in line for line in about_task), about_task
