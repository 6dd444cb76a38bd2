"""Faults around the queue: Redis restarted mid-queue, the API restarted, the recovery rules.

Redis restarts use a private `redis-server` on a free port (never the shared one on 6379).
"""

from __future__ import annotations

from pathlib import Path

from core import jobs
from tasks import pipeline, steps
from tasks.recovery import Recovery
from tests.conftest import WeldrServer

from .conftest import kill_and_wait, process_tree, still_running, wait_gone, wait_until


def test_redis_restart_mid_queue_loses_nothing(own_redis, make_env):
    """A worker is busy with a build while five composes wait in Redis; Redis restarts (no
    persistence: the five messages are gone) and one more compose is posted while it is down."""
    env = make_env(own_redis.url)
    env.start_worker("build")
    busy = env.build_compose({"mode": "ok", "stage_sleep": 1.0})
    pipeline.send(env.config, busy, steps.BUILD, [])
    store = env.store
    wait_until(lambda: store.progress(busy), what="the build running")
    queued = [env.test_compose(2) for _ in range(5)]
    for cid in queued:
        assert pipeline.submit(env.config, cid)
    own_redis.stop()
    down = env.test_compose(2)
    assert pipeline.submit(env.config, down) is False  # broker down: stays WAITING, no exception
    own_redis.start()
    ids = queued + [down]
    # the build in progress finishes on its own: it needs the store, not the broker
    assert env.wait_for([busy]) == {busy: "FINISHED"}
    # nobody re-sent them yet (no recovery loop runs in this test; the restarted Redis is empty)
    assert set(env.states(ids).values()) == {"WAITING"}
    counts = Recovery(env.config, requeue_after=0).run_once()
    assert counts["resent"] == 6
    assert env.wait_for(ids) == {cid: "FINISHED" for cid in ids}
    # a second pass finds nothing to do
    assert Recovery(env.config, requeue_after=0).run_once()["resent"] == 0


def test_recovery_does_not_duplicate_messages_the_broker_still_holds(redis_url, make_env):
    env = make_env(redis_url)
    ids = [env.test_compose(2) for _ in range(3)]
    for cid in ids:
        pipeline.submit(env.config, cid)
    assert Recovery(env.config, requeue_after=0).run_once()["resent"] == 0
    env.start_worker("build")
    assert env.wait_for(ids) == {cid: "FINISHED" for cid in ids}


def test_api_restart_loses_nothing(tmp_path, redis_url, make_env):
    """The API is killed (-9) after storing composes but before sending them; its restart sends them."""
    server = WeldrServer(tmp_path / "api")
    env = make_env(redis_url, state_dir=server.state_dir)
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.start()
    kill_and_wait(server)  # its recovery loop too: nothing of the old API may send them
    ids = [env.test_compose(2) for _ in range(3)]  # stored, never sent: the API "died" here
    env.start_worker("build")
    assert set(env.states(ids).values()) == {"WAITING"}  # no message exists for them
    server.start()
    try:
        assert env.wait_for(ids) == {cid: "FINISHED" for cid in ids}
    finally:
        server.stop()


def test_stale_job_of_cancelled_compose_is_closed_instead_of_retried(redis_url, make_env):
    """The worker of a cancelled compose died before it saw the cancel: its job is closed, the
    compose stays FAILED as the cancel left it, nothing runs again."""
    env = make_env(redis_url, task_stale_after=1)
    cid = env.build_compose({"mode": "ok"})
    store = env.store
    claim = jobs.claim(store.db, cid, steps.BUILD, "gone-worker", 1)
    assert claim is not None
    store.request_cancel(cid)
    with store.db.transaction() as conn:  # its heartbeat stopped long ago
        conn.execute("UPDATE pipeline_jobs SET heartbeat = heartbeat - 60 WHERE compose_id = ?",
                     (cid,))
    counts = Recovery(env.config).run_once()
    assert counts["closed"] == 1 and counts["retried"] == 0
    assert store.get(cid).queue_status == "FAILED"
    assert [j["state"] for j in jobs.jobs(store.db, cid)] == ["done"]
    assert store.read_log(cid).endswith("compose cancelled\n")


def test_claim_is_exclusive_while_heartbeat_is_fresh(make_env):
    env = make_env("")
    cid = env.build_compose({"mode": "ok"})
    db = env.store.db
    first = jobs.claim(db, cid, steps.BUILD, "w1", stale_after=5)
    assert first is not None and first.attempt == 1
    assert jobs.claim(db, cid, steps.BUILD, "w2", stale_after=5) is None
    assert jobs.beat(db, first)
    # stale: another run may take it over, and the first one learns it lost the job
    second = jobs.claim(db, cid, steps.BUILD, "w2", stale_after=0)
    assert second is not None and second.attempt == 2
    assert not jobs.beat(db, first)
    assert not jobs.done(db, first)
    assert jobs.advance(db, second, [jobs.Step.upload("local")])
    assert jobs.claim(db, cid, steps.BUILD, "w3", stale_after=0) is None  # done stays done
    assert [(j["step"], j["state"]) for j in jobs.jobs(db, cid)] == [
        ("build", "done"), ("upload:local", "queued")]


def test_running_compose_with_nothing_queued_is_failed(make_env):
    env = make_env("", task_stale_after=1)
    cid = env.build_compose({"mode": "ok"})
    store = env.store
    jobs.mark_done(store.db, cid)  # as if the pipeline lost track of it
    with store.db.transaction() as conn:
        conn.execute("UPDATE composes SET job_started = job_started - 5 WHERE id = ?", (cid,))
        conn.execute("UPDATE pipeline_jobs SET finished_at = finished_at - 5 WHERE compose_id = ?",
                     (cid,))
    assert Recovery(env.config).run_once()["failed"] == 1
    assert "lost track" in store.read_log(cid)


def test_serve_with_embedded_broker_runs_its_own_workers_and_stops_them(tmp_path, make_env):
    """`make run`'s setup: no Redis; `serve` starts the workers and the recovery loop itself."""
    server = WeldrServer(tmp_path / "api")
    env = make_env("", state_dir=server.state_dir, embedded_workers="true")
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.extra_env["CELERY_COMPOSER_WORKER_CONCURRENCY"] = "1"
    server.start()
    try:
        ids = [env.test_compose(2) for _ in range(2)]  # stored WAITING; the recovery loop sends them
        assert env.wait_for(ids) == {cid: "FINISHED" for cid in ids}
        assert server.proc is not None
        helpers = process_tree(server.proc.pid)
        cmdlines = [Path(f"/proc/{p}/cmdline").read_bytes() for p in still_running(helpers)]
        assert any(b"worker" in c for c in cmdlines) and any(b"tasks.recovery" in c for c in cmdlines)
    finally:
        server.stop()
    assert not wait_gone(helpers), "serve left processes behind"


def test_composes_posted_to_the_api_survive_api_kill_and_lost_queue(tmp_path, redis_url, make_env):
    """POST /compose (real route, test distro, stand-in osbuild), then the API is killed -9 and
    the queue is emptied before any worker ran: the restarted API's recovery sends them again."""
    import json as jsonlib

    from tests.depsolve.repos import built_repos

    from .conftest import flush_redis

    repos_dir = tmp_path / "repositories"
    repos_dir.mkdir()
    (repos_dir / "test-distro-1.json").write_text(jsonlib.dumps({"x86_64": [{
        "name": "test-baseos", "baseurl": built_repos()["baseos"].as_uri() + "/",
        "check_gpg": False}]}))
    server = WeldrServer(tmp_path / "api")
    env = make_env(redis_url, state_dir=server.state_dir, repositories_dir=repos_dir,
                   default_distro="test-distro-1")
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.start()
    client = server.client
    bp = {"name": "restart", "version": "0.0.1", "distro": "test-distro-1",
          "packages": [{"name": "bash", "version": "*"}], "modules": [], "groups": []}
    assert client.post("/api/v1/blueprints/new", bp).status == 200
    ids = []
    for _ in range(2):
        r = client.post("/api/v1/compose", {"blueprint_name": "restart", "compose_type": "tar",
                                            "branch": "master"})
        assert r.status == 200, r.text
        ids.append(r.json()["build_id"])
    # every process of the old API gone (its recovery loop would send them again), then the
    # broker loses its queue too: from here on nothing can run them until the API restarts
    kill_and_wait(server)
    flush_redis(redis_url)
    env.start_worker("depsolve,build")
    assert set(env.states(ids).values()) == {"WAITING"}
    server.start()
    try:
        assert env.wait_for(ids) == {cid: "FINISHED" for cid in ids}
        info = client.get(f"/api/v1/compose/info/{ids[0]}").json()
        assert info["queue_status"] == "FINISHED"
        assert "bash" in {p["name"] for p in info["deps"]["packages"]}
    finally:
        server.stop()


def test_cancel_of_waiting_compose_ends_its_uploads(make_env):
    env = make_env("")
    store = env.store
    compose = store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                           distro="test-distro-1", arch="x86_64", upload_requests=[
                               {"provider": "local", "image_name": "x", "settings": {"directory": "/tmp"}}])
    jobs.enqueue(store.db, compose.id, steps.DEPSOLVE)
    assert store.request_cancel(compose.id) == "WAITING"
    pipeline.cancel(env.config, compose.id)
    [upload] = store.uploads(compose.id)
    assert upload.status == "CANCELLED"
    assert [j["state"] for j in jobs.jobs(store.db, compose.id)] == ["done"]
