"""The worker command's queue selection and the routing table (no broker needed)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tasks import celery_app
from tasks.worker import _redact, expand_queues


def test_queue_names_expand():
    assert expand_queues("all") == celery_app.all_queues()
    uploads = expand_queues("upload")
    assert uploads and all(q.startswith("upload.") for q in uploads)
    assert "upload.aws" in uploads
    assert expand_queues("build, upload.local,build") == ["build", "upload.local"]
    with pytest.raises(ValueError, match="unknown queue 'bild'"):
        expand_queues("bild")
    with pytest.raises(ValueError, match="no queue"):
        expand_queues(",")


def test_routing_in_one_place():
    assert celery_app.route_for("compose.depsolve") == "depsolve"
    assert celery_app.route_for("compose.build") == "build"
    assert celery_app.route_for("compose.test") == "build"
    assert celery_app.route_for("compose.upload.azure") == "upload.azure"


def test_one_step_type_names_step_task_and_queue():
    """`core.jobs.Step` is the only place that knows how a step's names relate."""
    from core.jobs import BUILD, DEPSOLVE, TEST, Step

    assert (DEPSOLVE.name, DEPSOLVE.task, DEPSOLVE.queue) == ("depsolve", "compose.depsolve", "depsolve")
    assert (TEST.name, TEST.task, TEST.queue) == ("test", "compose.test", "build")
    aws = Step.upload("aws")
    assert (aws.name, aws.task, aws.queue, aws.target) == (
        "upload:aws", "compose.upload.aws", "upload.aws", "aws")
    for step in (DEPSOLVE, BUILD, TEST, aws):
        assert Step.named(step.name) == step and Step.of_task(step.task) == step
    with pytest.raises(ValueError, match="unknown pipeline step 'upload:'"):
        Step.named("upload:")
    with pytest.raises(ValueError, match="unknown pipeline task"):
        Step.of_task("compose.bogus")


def test_worker_command_refuses_unknown_queue(tmp_path):
    env = {"CELERY_COMPOSER_STATE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-m", "app.cli", "worker", "--queues", "bild"],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and "unknown queue 'bild'" in out.stderr


def test_broker_password_never_logged():
    assert _redact("redis://:s3cret@redis:6379/0") == "redis://***@redis:6379/0"
    assert _redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_task_arguments_are_compose_ids_only():
    from core.jobs import DEPSOLVE
    from tasks.compose import canvas_from

    cid = "0c6b3e2e-0000-4000-8000-000000000001"
    canvas = canvas_from(cid, DEPSOLVE, ["aws", "local"])
    tasks = list(canvas.tasks[:2]) + list(canvas.tasks[2].tasks)
    assert [t.task for t in tasks] == ["compose.depsolve", "compose.build", "compose.upload.aws",
                                       "compose.upload.local"]
    assert all(t.args == (cid,) and not t.kwargs for t in tasks)
    assert [t.options["task_id"] for t in tasks] == [f"{cid}.depsolve", f"{cid}.build",
                                                     f"{cid}.upload:aws", f"{cid}.upload:local"]
