"""Composes through real Celery workers (subprocesses) over real Redis and the embedded broker.

osbuild is not installed here: builds run the stand-in (`stand_in_osbuild.py`), which takes
osbuild's command line and writes its monitor records.  Depsolve and manifest need the distros
and depsolve areas, so these tests start composes at the build step (manifest recorded), or in
test mode, which has a single step.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from core import jobs
from tasks import pipeline, steps

from .conftest import snapshot, wait_gone, wait_until


def test_test_mode_composes_through_redis(redis_url, make_env):
    env = make_env(redis_url)
    env.start_worker("build", concurrency=2)
    failed, finished = env.test_compose(1), env.test_compose(2)
    for cid in (failed, finished):
        assert pipeline.submit(env.config, cid)
    assert env.wait_for([failed, finished]) == {failed: "FAILED", finished: "FINISHED"}
    store = env.store
    assert "TESTING FAILED compose" in store.read_log(failed)
    c = store.get(finished)
    assert c.job_created <= c.job_started <= c.job_finished and c.image_size == 0
    # a second delivery of the same work is a no-op (idempotent per compose id): wait until the
    # worker says it ran the task a second time, then look
    done_line = f"Task compose.test[{finished}.test] succeeded"
    assert pipeline.submit(env.config, finished)
    wait_until(lambda: env.workers[0].log_path.read_text().count(done_line) >= 2,
               what="the duplicate delivery handled")
    assert store.get(finished).queue_status == "FINISHED"
    assert [j["attempt"] for j in jobs.jobs(store.db, finished)] == [1]


def test_build_step_with_upload_chain(redis_url, make_env):
    env = make_env(redis_url)
    env.start_worker("build,upload", concurrency=1)
    out_dir = env.base / "uploaded"
    out_dir.mkdir()
    cid = env.build_compose({"mode": "ok", "size": 3000, "stage_sleep": 0.2},
                            uploads=[{"provider": "local", "image_name": "img",
                                      "settings": {"directory": str(out_dir)}}])
    assert pipeline.send(env.config, cid, steps.BUILD, ["local"])
    assert env.wait_for([cid]) == {cid: "FINISHED"}
    store = env.store
    compose = store.get(cid)
    image = store.image_path(compose)
    assert image.read_bytes() == b"IMAGE" * 3000
    assert compose.image_size == 15000
    log = store.read_log(cid)
    assert "--export archive" in log and "--checkpoint build" in log and "--checkpoint os" in log
    assert "Finished module org.osbuild.tar" in log
    assert store.progress(cid) is None  # cleared once the build is over
    assert not (store.compose_dir(cid) / "osbuild-output").exists()
    # the chain went on to the upload task of the compose's target
    wait_until(lambda: {j["step"]: j["state"] for j in jobs.jobs(store.db, cid)}.get(
        "upload:local") == "done", what="the upload step done")
    [upload] = store.uploads(cid)
    assert upload.status == "FINISHED", upload.error
    assert (out_dir / "img.tar").read_bytes() == image.read_bytes()


def test_failing_build_fails_compose_with_reason_last(redis_url, make_env):
    env = make_env(redis_url)
    env.start_worker("build")
    schema = env.build_compose({"mode": "schema"})
    stage = env.build_compose({"mode": "fail"}, uploads=[
        {"provider": "local", "image_name": "never", "settings": {"directory": "/nonexistent"}}])
    for cid in (schema, stage):
        pipeline.send(env.config, cid, steps.BUILD, [])
    assert env.wait_for([schema, stage]) == {schema: "FAILED", stage: "FAILED"}
    store = env.store
    assert store.read_log(schema).rstrip().endswith("schema validation failed); see the messages above")
    assert "'stages' is a required property" in store.read_log(schema)
    assert store.read_log(stage).rstrip().endswith("stage org.osbuild.tar in pipeline archive failed")
    for cid in (schema, stage):  # the reason ends the log once (osbuild's runner and the store
        lines = store.read_log(cid).splitlines()  # both used to write it)
        assert lines[-1] == store.get(cid).error and lines[-2] != lines[-1], lines[-3:]
    [upload] = store.uploads(stage)  # no image, no upload: it ends too, saying why
    assert upload.status == "FAILED" and upload.error.startswith("the compose failed: osbuild failed")


def test_missing_osbuild_fails_with_clear_message(redis_url, make_env):
    env = make_env(redis_url, osbuild_command="no-such-osbuild --libdir /nowhere")
    env.start_worker("build")
    cid = env.build_compose({"mode": "ok"})
    pipeline.send(env.config, cid, steps.BUILD, [])
    assert env.wait_for([cid]) == {cid: "FAILED"}
    assert "osbuild is not installed" in env.store.read_log(cid)


def test_embedded_broker_runs_composes_without_redis(make_env):
    env = make_env("")  # empty broker_url: kombu's SQLite transport under the state directory
    env.start_worker("all", concurrency=1)
    ids = [env.test_compose(2) for _ in range(3)]
    build = env.build_compose({"mode": "ok"})
    for cid in ids:
        pipeline.submit(env.config, cid)
    pipeline.send(env.config, build, steps.BUILD, [])
    assert env.wait_for(ids + [build]) == {cid: "FINISHED" for cid in ids + [build]}
    broker_db = Path(env.settings["state_dir"]) / "broker.sqlite3"
    assert broker_db.exists()
    # kombu leaves delivered messages behind as invisible rows; the recovery pass deletes them
    import sqlite3

    from tasks.recovery import Recovery

    def rows() -> int:
        return sqlite3.connect(broker_db).execute("SELECT count(*) FROM kombu_message").fetchone()[0]

    assert rows() >= 4
    Recovery(env.config).run_once()
    assert rows() == 0


def test_cancel_running_build_kills_osbuild(redis_url, make_env):
    """The build runs the stand-in in "hang" mode: a long-running command with a child process."""
    env = make_env(redis_url)
    env.start_worker("build")
    cid = env.build_compose({"mode": "hang"})
    pipeline.send(env.config, cid, steps.BUILD, [])
    store = env.store
    pid_file = store.compose_dir(cid) / "osbuild-output" / "child.pid"
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), what="the build running")
    child = snapshot([int(pid_file.read_text())])
    # the worker records the monitor's progress a moment after osbuild reports it
    wait_until(lambda: (store.progress(cid) or {}).get("pipeline") == "build",
               what="progress recorded")
    assert store.progress(cid)["stage_m"] == 1
    assert store.request_cancel(cid) == "RUNNING"
    pipeline.cancel(env.config, cid)
    assert env.states([cid]) == {cid: "FAILED"}  # final as soon as the cancel is acknowledged
    wait_until(lambda: [j["state"] for j in jobs.jobs(store.db, cid)] == ["done"],
               what="the build step closed")
    assert not wait_gone(child), "the build's child process outlived the cancel"
    assert store.read_log(cid).rstrip().endswith("osbuild was stopped")


def _pool_child(worker_pid: int) -> int:
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker_pid:
            return int(stat.parent.name)
    raise AssertionError("worker has no pool process")


@pytest.mark.parametrize("victim", ["worker", "pool-process"])
def test_kill_9_of_worker_mid_build_retries_on_another(redis_url, make_env, victim):
    """`worker`: the whole worker (main and pool) dies; `pool-process`: only the process running
    the task dies, and Celery hands the message back (task_reject_on_worker_lost)."""
    env = make_env(redis_url, task_stale_after=2)
    first = env.start_worker("build")
    cid = env.build_compose({"mode": "ok", "stage_sleep": 1.5})
    pipeline.send(env.config, cid, steps.BUILD, [])
    store = env.store
    wait_until(lambda: store.progress(cid), what="the build running")
    assert store.get(cid).queue_status == "RUNNING"
    if victim == "worker":
        os.killpg(first.pid, signal.SIGKILL)  # the worker and its pool; osbuild dies with them
        first.wait()
        env.start_worker("build")
    else:
        os.kill(_pool_child(first.pid), signal.SIGKILL)  # the worker lives on and gets it back
    from tasks.recovery import RecoveryLoop

    loop = RecoveryLoop(env.config, interval=0.5)
    loop.start()
    try:
        assert env.wait_for([cid]) == {cid: "FINISHED"}
    finally:
        loop.stop()
    log = store.read_log(cid)
    assert "stopped responding" in log and "attempt 2" in log
    assert [j["attempt"] for j in jobs.jobs(store.db, cid) if j["step"] == "build"] == [2]


def test_kill_9_with_no_attempts_left_fails_in_bounded_time(redis_url, make_env):
    env = make_env(redis_url, task_stale_after=2)
    worker = env.start_worker("build")
    cid = env.build_compose({"mode": "ok", "stage_sleep": 5})
    store = env.store
    with store.db.transaction() as conn:  # as if this were already the last attempt
        conn.execute("UPDATE pipeline_jobs SET attempt = ? WHERE compose_id = ?",
                     (steps.MAX_ATTEMPTS - 1, cid))
    pipeline.send(env.config, cid, steps.BUILD, [])
    wait_until(lambda: store.progress(cid), what="the build running")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    from tasks.recovery import RecoveryLoop

    loop = RecoveryLoop(env.config, interval=0.5)
    loop.start()
    try:
        assert env.wait_for([cid]) == {cid: "FAILED"}
    finally:
        loop.stop()
    assert "stopped responding" in store.read_log(cid)


def _test_repo_source() -> dict:
    import shutil

    import pytest

    for tool in ("rpmbuild", "createrepo_c"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (tests/debian-packages.txt)")
    from tests.depsolve.repos import built_repos

    baseos = built_repos()["baseos"]
    return {"id": "test-baseos", "name": "test baseos", "type": "yum-baseurl",
            "url": baseos.as_uri() + "/", "check_gpg": False, "check_ssl": False,
            "system": False, "rhsm": False}


@pytest.mark.parametrize("checkpoint_images", [False, True])
def test_full_chain_depsolve_manifest_build(redis_url, make_env, checkpoint_images):
    """depsolve (real solver, local test repository) → manifest (test distro) → build (stand-in)."""
    from core.store.sources import SourceStore

    env = make_env(redis_url, osbuild_checkpoint_images=str(checkpoint_images).lower())
    store = env.store
    SourceStore(store.db).put(_test_repo_source())
    compose = store.create(blueprint={"name": "chain", "version": "0.0.1",
                                      "packages": [{"name": "bash", "version": "*"}]},
                           compose_type="tar", distro="test-distro-1", arch="x86_64",
                           image_filename="root.tar", mime_type="application/x-tar")
    env.start_worker("depsolve,build", concurrency=1)
    assert pipeline.submit(env.config, compose.id)
    assert env.wait_for([compose.id]) == {compose.id: "FINISHED"}, \
        store.read_log(compose.id)
    packages = store.packages(compose.id)
    assert "bash" in {p["name"] for p in packages["os"]}
    manifest = store.manifest(compose.id)
    assert [p["name"] for p in manifest["pipelines"]] == ["os", "archive"]
    log = store.read_log(compose.id)
    assert "--export archive" in log and "--checkpoint os" in log
    assert ("--checkpoint archive" in log) is checkpoint_images
    assert store.image_path(store.get(compose.id)).stat().st_size > 0
    assert [j["step"] for j in jobs.jobs(store.db, compose.id)] == ["depsolve", "build"]


def test_depsolve_failure_fails_compose(redis_url, make_env):
    from core.store.sources import SourceStore

    env = make_env(redis_url)
    store = env.store
    SourceStore(store.db).put(_test_repo_source())
    compose = store.create(blueprint={"name": "bad", "version": "0.0.1",
                                      "packages": [{"name": "no-such-package", "version": "*"}]},
                           compose_type="tar", distro="test-distro-1", arch="x86_64")
    env.start_worker("depsolve,build")
    pipeline.submit(env.config, compose.id)
    assert env.wait_for([compose.id]) == {compose.id: "FAILED"}
    log = store.read_log(compose.id)
    assert "depsolve failed" in log and "no-such-package" in log
    # the chain stopped: no build was queued
    assert [j["step"] for j in jobs.jobs(store.db, compose.id)] == ["depsolve"]
