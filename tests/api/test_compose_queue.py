"""POST /compose with real workers behind it: depsolve errors answered as osbuild-composer answers
them, the bound on that wait, and test-mode composes ending at once without the queue.

Servers here run `serve` with the embedded broker and its own workers (every queue), against the
depsolve area's real RPM repository (built by rpmbuild + createrepo_c, served over file:// or a
local HTTP server), for the test distro whose image types install only the blueprint's packages.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.pipeline import DepsolveOutcome
from tests.depsolve.repos import built_repos

V1 = "/api/v1"
DISTRO = "test-distro-1"
WORKERS = {"CELERY_COMPOSER_EMBEDDED_WORKERS": "true", "CELERY_COMPOSER_WORKER_CONCURRENCY": "1",
           "CELERY_COMPOSER_DEFAULT_DISTRO": DISTRO}


@pytest.fixture(scope="module")
def baseos() -> Path:
    for tool in ("rpmbuild", "createrepo_c", "modifyrepo_c"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (tests/debian-packages.txt)")
    return built_repos()["baseos"]


def _repositories(base: Path, baseurl: str) -> Path:
    repo_dir = base / "repositories"
    repo_dir.mkdir(parents=True)
    entry = {"name": "test-baseos", "baseurl": baseurl, "check_gpg": False}
    (repo_dir / f"{DISTRO}.json").write_text(json.dumps({os.uname().machine: [entry]}))
    return repo_dir


def _blueprint(client: Any, name: str, packages: list[tuple[str, str]]) -> None:
    bp = {"name": name, "version": "0.0.1", "distro": DISTRO, "modules": [], "groups": [],
          "packages": [{"name": n, "version": v} for n, v in packages]}
    r = client.post(f"{V1}/blueprints/new", bp)
    assert r.status == 200, r


def _compose(client: Any, blueprint: str, test: str = "", **extra: Any) -> Any:
    return client.post(f"{V1}/compose" + (f"?test={test}" if test else ""),
                       {"blueprint_name": blueprint, "compose_type": "tar", "branch": "master",
                        **extra}, timeout=180)


def _wait_status(client: Any, compose_id: str, states: tuple[str, ...],
                 timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        entries = client.get(f"{V1}/compose/status/{compose_id}").json()["uuids"]
        if entries and entries[0]["queue_status"] in states:
            return entries[0]
        assert time.monotonic() < deadline, f"compose {compose_id} not in {states}: {entries}"
        time.sleep(0.1)


def _leftovers(server: Any) -> dict[str, Any]:
    """Everything a compose can leave behind: records, pipeline jobs, artifact directories."""
    from tests.databases import database_for

    db = database_for(server.state_dir)
    artifacts = server.state_dir / "artifacts"
    return {"composes": [r[0] for r in db.query("SELECT id FROM composes")],
            "uploads": [r[0] for r in db.query("SELECT id FROM compose_uploads")],
            "jobs": [tuple(r) for r in db.query("SELECT compose_id, step, state FROM pipeline_jobs")],
            "artifacts": sorted(p.name for p in artifacts.iterdir()) if artifacts.exists() else []}


def test_depsolve_error_is_a_500_and_leaves_nothing(start_weldr_server, tmp_path, baseos):
    repos = _repositories(tmp_path, baseos.as_uri() + "/")
    server = start_weldr_server(args=["--repositories", str(repos)],
                                env={**WORKERS, "CELERY_COMPOSER_LOCAL_UPLOAD_DIRS": str(tmp_path)})
    client = server.client
    _blueprint(client, "unknown-pkg", [("no-such-package", "*")])
    _blueprint(client, "impossible", [("bash", "0")])  # weldr-client's case: tmux version "0"
    _blueprint(client, "fine", [("bash", "*")])

    upload = {"image_name": "img", "provider": "local", "settings": {"directory": str(tmp_path)}}
    for name, named in (("unknown-pkg", "no-such-package"), ("impossible", "bash")):
        r = _compose(client, name, upload=upload)  # its upload entry must go too
        assert r.status == 500, r
        body = r.json()
        assert body["status"] is False and len(body["errors"]) == 1, body
        assert body["errors"][0]["id"] == "DepsolveError"
        assert named in body["errors"][0]["msg"], body
        assert _leftovers(server) == {"composes": [], "uploads": [], "jobs": [], "artifacts": []}
    assert client.get(f"{V1}/compose/status/*").json() == {"uuids": []}

    # a blueprint that depsolves: the usual reply, the compose goes on past depsolve
    r = _compose(client, "fine")
    assert r.status == 200, r
    compose_id = r.json()["build_id"]
    info = client.get(f"{V1}/compose/info/{compose_id}").json()
    assert info["queue_status"] in ("WAITING", "RUNNING", "FINISHED", "FAILED")  # build may not have started
    assert "bash" in [p["name"] for p in info["deps"]["packages"]]
    # (osbuild is not installed here: its build fails later; the depsolve is what this checks)
    _wait_status(client, compose_id, ("FINISHED", "FAILED"))


class _SlowRepository:
    """The test repository over HTTP on 127.0.0.1, holding every answer back `delay` seconds:
    a depsolve that takes longer than POST /compose is willing to wait."""

    def __init__(self, root: Path, delay: float):
        self.release = threading.Event()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kw: Any) -> None:
                super().__init__(*args, directory=str(root), **kw)

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(handler) -> None:  # noqa: N805 - the handler, not the repository
                self.release.wait(delay)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def slow_repository(baseos: Path) -> Iterator[_SlowRepository]:
    repo = _SlowRepository(baseos, delay=8.0)
    yield repo
    repo.close()


def test_depsolve_slower_than_the_bound_answers_the_build_id(start_weldr_server, tmp_path,
                                                             slow_repository):
    repos = _repositories(tmp_path, slow_repository.url)
    server = start_weldr_server(args=["--repositories", str(repos)],
                                env={**WORKERS, "CELERY_COMPOSER_COMPOSE_DEPSOLVE_WAIT": "1"})
    client = server.client
    _blueprint(client, "unknown-pkg", [("no-such-package", "*")])
    r = _compose(client, "unknown-pkg")
    assert r.status == 200, r
    compose_id = r.json()["build_id"]
    # the reply came while the depsolve was still waiting for the repository
    assert slow_repository.release.is_set() is False
    state = client.get(f"{V1}/compose/status/{compose_id}").json()["uuids"][0]["queue_status"]
    assert state in ("WAITING", "RUNNING")
    slow_repository.release.set()
    # the depsolve error arrives later: it fails the compose, which stays (nobody waits any more)
    entry = _wait_status(client, compose_id, ("FINISHED", "FAILED"))
    assert entry["queue_status"] == "FAILED"
    log = client.get(f"{V1}/compose/log/{compose_id}").text
    assert "depsolve failed" in log and "no-such-package" in log


def test_depsolved_compose_waits_for_its_build_as_waiting(start_weldr_server, tmp_path, baseos):
    """A worker takes depsolve, none takes build: after its depsolve the compose waits for a build
    worker, and says WAITING (osbuild-composer's state until the build starts), not RUNNING."""
    repos = _repositories(tmp_path, baseos.as_uri() + "/")
    server = start_weldr_server(queue_workers="depsolve",  # the worker reads the env too
                                env={"CELERY_COMPOSER_DEFAULT_DISTRO": DISTRO,
                                     "CELERY_COMPOSER_REPOSITORIES_DIR": str(repos)})
    client = server.client
    _blueprint(client, "waits", [("bash", "*")])
    r = _compose(client, "waits")
    assert r.status == 200, r
    compose_id = r.json()["build_id"]
    info = client.get(f"{V1}/compose/info/{compose_id}").json()
    assert "bash" in [p["name"] for p in info["deps"]["packages"]]  # depsolved before the reply
    assert info["queue_status"] == "WAITING", info
    [entry] = client.get(f"{V1}/compose/status/{compose_id}").json()["uuids"]
    assert entry["queue_status"] == "WAITING" and "job_started" not in entry, entry
    queue = client.get(f"{V1}/compose/queue").json()
    assert [e["id"] for e in queue["new"]] == [compose_id] and queue["run"] == []
    log = client.get(f"{V1}/compose/log/{compose_id}").json()
    assert log["errors"][0]["id"] == "BuildInWrongState"  # not started: no log yet, as OC
    from core import jobs
    from tests.databases import database_for

    rows = {r["step"]: r["state"] for r in jobs.jobs(database_for(server.state_dir), compose_id)}
    assert rows == {"depsolve": jobs.DONE, "build": jobs.QUEUED}


# composer-cli's integration suite (TestStartComposeUpload) sends lorax-style placeholders
SUITE_UPLOAD = {"image_name": "test-image", "provider": "aws",
                "settings": {"aws_access_key": "AWS Access Key", "aws_bucket": "AWS Bucket",
                             "aws_region": "AWS Region", "aws_secret_key": "AWS Secret Key"}}


def test_test_mode_composes_end_at_once(start_weldr_server, tmp_path, baseos):
    """`?test=1|2` composes are stored FAILED/FINISHED by the request itself, as osbuild-composer
    stores them: no queue round trip (the server has a pipeline but no worker at all), so a
    client may delete or cancel right after starting.  Their uploads end with them, and the
    upload settings are not checked (osbuild-composer checks none there)."""
    repos = _repositories(tmp_path, baseos.as_uri() + "/")
    server = start_weldr_server(args=["--repositories", str(repos)])
    client = server.client
    _blueprint(client, "tm", [])
    failed = _compose(client, "tm", test="1", upload=SUITE_UPLOAD)
    finished = _compose(client, "tm", test="2", upload=SUITE_UPLOAD)
    assert failed.status == 200 and finished.status == 200, (failed, finished)
    assert failed.json()["upload_id"] and finished.json()["upload_id"]
    failed, finished = failed.json()["build_id"], finished.json()["build_id"]
    assert client.get(f"{V1}/compose/queue").json() == {"new": [], "run": []}
    states = {e["id"]: e for e in client.get(f"{V1}/compose/status/*").json()["uuids"]}
    assert states[failed]["queue_status"] == "FAILED"
    assert states[finished]["queue_status"] == "FINISHED"
    for entry in states.values():
        assert entry["job_created"] <= entry["job_started"] <= entry["job_finished"]
        assert [u["status"] for u in entry["uploads"]] == [entry["queue_status"]]
    info = client.get(f"{V1}/compose/info/{finished}").json()
    assert info["queue_status"] == "FINISHED" and info["deps"] == {"packages": []}
    # the pipeline never heard of them
    from tests.databases import database_for

    assert database_for(server.state_dir).query("SELECT * FROM pipeline_jobs") == []

    # TestCancelFinishedCompose, TestDeleteComposes: right after starting
    r = client.delete(f"{V1}/compose/cancel/{finished}")
    assert r.status == 400 and r.json()["errors"][0]["id"] == "BuildInWrongState", r
    r = client.delete(f"{V1}/compose/delete/{failed},{finished}")
    assert r.json() == {"uuids": [{"uuid": failed, "status": True},
                                  {"uuid": finished, "status": True}], "errors": []}, r
    assert _leftovers(server) == {"composes": [], "uploads": [], "jobs": [], "artifacts": []}

    # the shape is still checked: an unknown provider, settings that are not an object
    for upload in ({**SUITE_UPLOAD, "provider": "no-such-cloud"}, {**SUITE_UPLOAD, "settings": "x"}):
        r = _compose(client, "tm", test="2", upload=upload)
        assert r.status == 400 and r.json()["errors"][0]["id"] == "UploadError", r
    assert _leftovers(server)["composes"] == []


def test_wait_depsolve_reads_the_step_outcome_from_the_store(tmp_path):
    """The waiting itself, on a store of its own (no broker, no server): nothing queued → no wait;
    queued → None after the bound; the outcome as soon as the step closes its job."""
    from core import config as config_mod
    from core import jobs
    from core.store.composes import ComposeStore
    from tasks import pipeline, steps
    from tests.databases import database_url

    config = config_mod.load(environ={}, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache",
                             database_url=database_url(tmp_path / "state"))
    store = ComposeStore.from_config(config)

    def compose() -> str:
        return store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                            distro=DISTRO, arch="x86_64").id

    never_queued = compose()
    answers: list[Any] = []
    waiter = threading.Thread(target=lambda: answers.append(
        pipeline.wait_depsolve(config, never_queued, 3600)), daemon=True)
    waiter.start()
    waiter.join(60)  # a hang detector: it must not sit out the hour-long bound
    assert not waiter.is_alive() and answers == [None]

    slow = compose()
    jobs.enqueue(store.db, slow, steps.DEPSOLVE)
    assert pipeline.wait_depsolve(config, slow, 0.3) is None

    refused = compose()
    jobs.enqueue(store.db, refused, steps.DEPSOLVE)

    def fail_later() -> None:
        time.sleep(0.3)
        store.mark_failed(refused, "depsolve failed: No match for argument: nope",
                          failure={"id": "DepsolveError", "msg": "No match for argument: nope"})
        jobs.mark_done(store.db, refused)

    threading.Thread(target=fail_later).start()
    outcome = pipeline.wait_depsolve(config, refused, 30)
    assert outcome == DepsolveOutcome(True, {"id": "DepsolveError",
                                                   "msg": "No match for argument: nope"})

    fine = compose()
    jobs.enqueue(store.db, fine, steps.DEPSOLVE)
    store.mark_running(fine)
    jobs.mark_done(store.db, fine, steps.DEPSOLVE)
    assert pipeline.wait_depsolve(config, fine, 30) == DepsolveOutcome(False, {})
