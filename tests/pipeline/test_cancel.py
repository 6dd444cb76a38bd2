"""Cancel through the real API (`DELETE /compose/cancel`) with real workers, on Redis and on the
embedded broker: prompt, honest and final.

The rule, as osbuild-composer's job queue has it: a cancel the API acknowledged is final at once
(the compose is FAILED when the answer comes); a compose that finished first cannot be cancelled
(400 `BuildInWrongState`).  Whatever osbuild does afterwards (stopped, or done a moment later) is
said in the log and never turns the compose FINISHED.  osbuild is the stand-in (`stand_in_osbuild.py`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core import jobs
from tasks import pipeline, steps
from tasks.recovery import Recovery
from tests.conftest import WeldrServer

from .conftest import snapshot, start_embedded_serve, wait_gone, wait_until

V1 = "/api/v1"


def redis_serve(tmp_path: Path, make_env: Any, redis_url: str, **settings: Any) -> tuple[Any, Any]:
    server = WeldrServer(tmp_path / "api")
    env = make_env(redis_url, state_dir=server.state_dir, **settings)
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.start(timeout=120)
    return server, env


@pytest.fixture(params=["redis", "embedded"])
def served(request, tmp_path, make_env) -> Any:
    """(server, env) with a build worker: `celery-composer worker` on Redis, or serve's own."""
    if request.param == "redis":
        server, env = redis_serve(tmp_path, make_env, request.getfixturevalue("redis_url"),
                                  task_stale_after=3)
        env.start_worker("build")
    else:
        server, env = start_embedded_serve(tmp_path, make_env, task_stale_after=3)
    yield server, env
    server.stop()


def status(server: Any, cid: str) -> str:
    return server.client.get(f"{V1}/compose/status/{cid}").json()["uuids"][0]["queue_status"]


def job_state(env: Any, cid: str, step: str) -> str | None:
    return next((j["state"] for j in jobs.jobs(env.store.db, cid) if j["step"] == step), None)


def test_cancel_of_compose_queued_for_its_build_is_final_at_once(tmp_path, make_env, redis_url):
    """Depsolved, build queued, no build worker yet: the cancel answers with the compose FAILED,
    its log says cancelled, and neither a worker that starts later nor the recovery loop changes
    that (before: RUNNING until the recovery loop failed it 100 s later for having "lost track")."""
    server, env = redis_serve(tmp_path, make_env, redis_url, task_stale_after=3)
    try:
        cid = env.build_compose({"mode": "ok"})
        assert pipeline.send(env.config, cid, steps.BUILD, [])
        r = server.client.delete(f"{V1}/compose/cancel/{cid}")
        assert r.status == 200 and r.json() == {"status": True, "uuid": cid}
        assert status(server, cid) == "FAILED"
        assert env.store.read_log(cid).endswith("compose cancelled\n")
        assert job_state(env, cid, "build") == "done"
        # a worker that starts now finds nothing to do for it: it builds the next compose only
        env.start_worker("build")
        other = env.build_compose({"mode": "ok"})
        assert pipeline.send(env.config, other, steps.BUILD, [])
        assert env.wait_for([other], timeout=180) == {other: "FINISHED"}
        assert Recovery(env.config, requeue_after=0).run_once()["failed"] == 0
        assert status(server, cid) == "FAILED"
        log = env.store.read_log(cid)
        assert "lost track" not in log and "osbuild" not in log
        assert not env.store.compose_dir(cid).joinpath("root.tar").exists()
    finally:
        server.stop()


def test_cancel_acknowledged_while_osbuild_finishes_is_final(served):
    """The cancel lands while osbuild is in its last stage, which ends right after: whichever
    comes first in the worker (its heartbeat seeing the cancel, or osbuild's exit), the compose
    stays FAILED with no image, and the log says what osbuild did (before: FINISHED, or FAILED
    saying osbuild was stopped when it had finished)."""
    server, env = served
    gate = env.base / "gate"
    cid = env.build_compose({"mode": "ok", "wait_for": str(gate)})
    assert pipeline.send(env.config, cid, steps.BUILD, [])
    store = env.store
    wait_until(lambda: (store.progress(cid) or {}).get("pipeline") == "archive",
               what="osbuild in its last pipeline")
    r = server.client.delete(f"{V1}/compose/cancel/{cid}")
    assert r.status == 200, r.text
    gate.touch()  # osbuild ends its last stage now
    assert status(server, cid) == "FAILED"
    wait_until(lambda: job_state(env, cid, "build") == "done", what="the build step closed")
    assert status(server, cid) == "FAILED"
    log = store.read_log(cid)
    assert "compose cancelled" in log
    last = log.rstrip().splitlines()[-1]
    assert last in ("the compose was cancelled; osbuild was stopped",
                    "osbuild finished, but the compose had been cancelled meanwhile: its image "
                    "was discarded"), log[-2000:]
    compose_dir = store.compose_dir(cid)
    assert not (compose_dir / "root.tar").exists() and not (compose_dir / "osbuild-output").exists()
    again = server.client.delete(f"{V1}/compose/cancel/{cid}")
    assert again.status == 400 and again.json()["errors"][0]["id"] == "BuildInWrongState"


def test_cancel_after_the_build_finished_is_refused(served):
    server, env = served
    cid = env.build_compose({"mode": "ok"})
    assert pipeline.send(env.config, cid, steps.BUILD, [])
    assert env.wait_for([cid], timeout=180) == {cid: "FINISHED"}
    r = server.client.delete(f"{V1}/compose/cancel/{cid}")
    assert r.status == 400 and r.json()["errors"][0] == {
        "id": "BuildInWrongState", "msg": f"Build {cid} is not in WAITING or RUNNING."}
    assert status(server, cid) == "FINISHED"


def test_cancelled_build_leaves_no_scratch_in_the_osbuild_store(served):
    """osbuild stopped past its SIGINT leaves its `tmp/host…` build root in the shared store (the
    stand-in does the same when it is stopped); it is removed once no build runs."""
    server, env = served
    cid = env.build_compose({"mode": "hang"})
    assert pipeline.send(env.config, cid, steps.BUILD, [])
    store = env.store
    output = store.compose_dir(cid) / "osbuild-output"
    wait_until(lambda: (output / "child.pid").exists() and (output / "child.pid").read_text().strip(),
               what="the stand-in osbuild running")
    running = snapshot([int((output / name).read_text()) for name in ("child.pid", "stand_in.pid")])
    tmp = Path(env.config.store_path) / "tmp"
    assert [p.name[:4] for p in tmp.iterdir()] == ["host"]
    r = server.client.delete(f"{V1}/compose/cancel/{cid}")
    assert r.status == 200, r.text
    wait_until(lambda: job_state(env, cid, "build") == "done", what="the build step closed")
    assert not wait_gone(running)
    assert list(tmp.iterdir()) == []
    assert status(server, cid) == "FAILED"
    assert store.read_log(cid).rstrip().endswith("osbuild was stopped")
