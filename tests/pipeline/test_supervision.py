"""`serve` with the embedded broker: its supervised helpers start, come back when they die, and die
with it.  Real `celery-composer serve` (gunicorn), real Celery workers on kombu's SQLite transport,
the stand-in osbuild; every wait is on an event (a log line, a state, a pidfd) with a generous bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core import jobs
from tasks import pipeline, steps

from .conftest import (
    PROJECT_DIR,
    STATE_BOUND,
    children,
    process_tree,
    start_embedded_serve,
    still_running,
    wait_for_log,
    wait_gone,
    wait_until,
)


@pytest.mark.parametrize("how", ["kill-9", "term", "term-then-kill-group"])
def test_nothing_outlives_serve(tmp_path, make_env, how):
    """`kill -9` of serve alone, SIGTERM to it, or SIGTERM to its group at once followed by SIGKILL
    (the supervisor dies before it stopped anything): no process of serve's tree is left."""
    server, _ = start_embedded_serve(tmp_path, make_env)
    proc = server.proc
    assert proc is not None
    tree = process_tree(proc.pid)
    names = {Path(f"/proc/{p}/cmdline").read_bytes() for p in tree}
    assert any(b"tasks.recovery" in c for c in names) and any(b"--queues\0build" in c for c in names)
    if how == "kill-9":
        proc.kill()
    elif how == "term":
        proc.terminate()
    else:
        os.killpg(proc.pid, signal.SIGTERM)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    server.proc = None
    left = wait_gone(tree)
    assert not left, [Path(f"/proc/{p}/cmdline").read_bytes() for p in left]


def test_killed_embedded_worker_is_started_again_and_finishes_the_build(tmp_path, make_env):
    """kill -9 of the embedded build worker (main and pool) mid-build: the supervisor starts it
    again, the recovery loop re-queues the build once its heartbeat stops, the new worker builds."""
    server, env = start_embedded_serve(tmp_path, make_env, task_stale_after=3)
    try:
        gate = env.base / "gate"  # the build cannot end before the worker was killed
        cid = env.build_compose({"mode": "ok", "wait_for": str(gate)})
        assert pipeline.send(env.config, cid, steps.BUILD, [])
        store = env.store
        wait_until(lambda: (store.progress(cid) or {}).get("pipeline") == "archive",
                   timeout=STATE_BOUND, what="osbuild in its last pipeline")
        before = children(server)["worker-build"]
        offset = server.log_path.stat().st_size
        os.killpg(before, signal.SIGKILL)
        gate.touch()
        wait_for_log(server.log_path, "started worker-build", start=offset, proc=server.proc)
        assert children(server)["worker-build"] != before
        assert env.wait_for([cid], timeout=180) == {cid: "FINISHED"}, store.read_log(cid)
        assert "attempt 2" in store.read_log(cid)
        assert [j["attempt"] for j in jobs.jobs(store.db, cid) if j["step"] == "build"] == [2]
    finally:
        server.stop()


RACE = textwrap.dedent("""
    import os, sys, time
    from core import config as config_mod
    from tasks import celery_app
    gate = sys.argv[1]
    while not os.path.exists(gate):
        time.sleep(0.001)
    app = celery_app.configure(config_mod.load())
    with app.connection_for_write() as conn:
        for queue in celery_app.all_queues():
            conn.default_channel.queue_declare(queue=queue)
    print("declared")
""")


def test_processes_starting_at_once_on_a_fresh_embedded_broker_all_connect(tmp_path, make_env):
    """What a fresh `serve` does: API and workers connect to a broker file nobody created yet, at
    the same moment.  Each must come up (before: "table kombu_queue already exists" or "UNIQUE
    constraint failed: kombu_queue.name" killed some)."""
    for attempt in range(3):
        env = make_env("", state_dir=tmp_path / f"state{attempt}")
        gate = tmp_path / f"go{attempt}"
        procs = [subprocess.Popen([sys.executable, "-c", RACE, str(gate)], cwd=PROJECT_DIR,
                                  env=env.environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(6)]
        gate.touch()
        outputs = [p.communicate(timeout=300)[0].decode() for p in procs]
        failed = [o for p, o in zip(procs, outputs, strict=True) if p.returncode != 0]
        assert not failed, failed[0][-3000:]
        assert all(o.strip().endswith("declared") for o in outputs)


def test_serve_stops_its_helpers_gracefully(tmp_path, make_env):
    """SIGTERM to serve: the supervisor's children end, and no 'lost' warning about respawning."""
    server, _ = start_embedded_serve(tmp_path, make_env)
    assert server.proc is not None
    tree = process_tree(server.proc.pid)
    server.stop()
    assert not wait_gone(tree)
    assert "starting it again" not in server.log_path.read_text()
    assert still_running(tree) == []


def test_depsolve_does_not_wait_behind_builds(tmp_path, make_env):
    """The embedded build worker is busy (its one process runs a build that does not end); a
    POST /compose then gets its depsolve done by the depsolve worker, while that build still runs
    (before: one pool for every queue, and POST waited up to 43 s behind two builds)."""
    import json

    from tests.depsolve.repos import built_repos

    repos_dir = tmp_path / "repositories"
    repos_dir.mkdir()
    (repos_dir / "test-distro-1.json").write_text(json.dumps({"x86_64": [{
        "name": "test-baseos", "baseurl": built_repos()["baseos"].as_uri() + "/",
        "check_gpg": False}]}))
    server, env = start_embedded_serve(tmp_path, make_env, repositories_dir=repos_dir,
                                       default_distro="test-distro-1")
    try:
        busy = env.build_compose({"mode": "hang"})
        assert pipeline.send(env.config, busy, steps.BUILD, [])
        store = env.store
        wait_until(lambda: store.progress(busy), what="the build running")
        client = server.client
        bp = {"name": "quick", "version": "0.0.1", "distro": "test-distro-1",
              "packages": [{"name": "bash", "version": "*"}], "modules": [], "groups": []}
        assert client.post("/api/v1/blueprints/new", bp).status == 200
        r = client.post("/api/v1/compose", {"blueprint_name": "quick", "compose_type": "tar",
                                            "branch": "master"}, timeout=300)
        assert r.status == 200, r.text
        cid = r.json()["build_id"]
        states = {j["step"]: j["state"] for j in jobs.jobs(store.db, cid)}
        assert states.get("depsolve") == "done", (states, store.read_log(cid)[-2000:])
        assert [j["state"] for j in jobs.jobs(store.db, busy)] == ["running"]
        assert "bash" in {p["name"] for p in store.packages(cid)["os"]}
    finally:
        server.stop()
