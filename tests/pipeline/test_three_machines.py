"""Machines that share nothing but Redis, PostgreSQL and an S3 bucket.

Each "machine" is a process (or several) with a private state, cache and artifacts directory:
the API (`serve`, which also runs the recovery loop), a depsolve worker, build workers and an
upload worker.  PostgreSQL is the server on 127.0.0.1:5432 (a fresh database for the test), S3
is moto in server mode, Redis is this session's own.  osbuild is not installed on these machines:
the build worker runs the stand-in (tests/pipeline/stand_in_osbuild.py), which writes a known
image, so "byte-identical" is checked against the bytes the stand-in built.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from core import jobs
from tasks import pipeline, steps
from tests.databases import postgresql_database
from tests.pipeline.test_chain import _test_repo_source
from tests.uploaders.emulators import MotoServer

from .conftest import wait_until

BUCKET = "three-machines"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def shared(moto: MotoServer, tmp_path: Path) -> dict[str, str]:
    """The settings every machine has: where the database and the bucket are."""
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket=BUCKET)
    return {"database_url": postgresql_database(tmp_path / "database"),
            "artifacts_url": f"s3://{BUCKET}/images", "artifacts_endpoint_url": moto.url,
            "artifacts_region": "us-east-1", "artifacts_access_key": "testing",
            "artifacts_secret_key": "testing"}


_KEY: list[bytes] = []


def _give_key(state_dir: Path) -> None:
    """Each machine gets its own copy of the key sealing upload settings (as an operator copies
    it to every machine with the configuration file); nothing reads another machine's copy."""
    from cryptography.fernet import Fernet

    from core.sealing import KEY_FILENAME

    if not _KEY:
        _KEY.append(Fernet.generate_key() + b"\n")
    state_dir.mkdir(parents=True, exist_ok=True)
    (state_dir / KEY_FILENAME).write_bytes(_KEY[0])
    (state_dir / KEY_FILENAME).chmod(0o600)


def _api(start_weldr_server: Any, redis_url: str, shared: dict[str, str], tmp_path: Path) -> Any:
    env = {"CELERY_COMPOSER_" + k.upper(): v for k, v in shared.items()}
    env.update({"CELERY_COMPOSER_BROKER_URL": redis_url, "CELERY_COMPOSER_TASK_STALE_AFTER": "3"})
    _give_key(tmp_path / "server0" / "state")  # where start_weldr_server puts its first server
    return start_weldr_server(env=env)


def _machine(make_env: Any, redis_url: str, **settings: str) -> Any:
    env = make_env(redis_url, **settings)
    _give_key(Path(env.settings["state_dir"]))
    return env


def _machines_share_no_path(*bases: Path) -> None:
    for a in bases:
        for b in bases:
            assert a == b or not (a.resolve().is_relative_to(b.resolve())), (a, b)


def _download(api: Any, compose_id: str) -> bytes:
    r = api.client.get(f"/api/v1/compose/image/{compose_id}")
    assert r.status == 200, r
    return r.body


def test_compose_through_four_machines_image_byte_identical(redis_url, make_env, shared,
                                                           start_weldr_server, tmp_path):
    api = _api(start_weldr_server, redis_url, shared, tmp_path)
    depsolver = _machine(make_env, redis_url, **shared)
    builder = _machine(make_env, redis_url, **shared)
    uploader = _machine(make_env, redis_url, **shared)
    _machines_share_no_path(api.base, depsolver.base, builder.base, uploader.base)
    depsolver.start_worker("depsolve")
    builder.start_worker("build")
    uploader.start_worker("upload")

    store = depsolver.store  # any machine's view: the database and the bucket
    from core.store.sources import SourceStore

    SourceStore(store.db).put(_test_repo_source())
    out_dir = uploader.base / "uploaded"
    out_dir.mkdir()
    compose = store.create(blueprint={"name": "three", "version": "0.0.1",
                                      "packages": [{"name": "bash", "version": "*"}]},
                           compose_type="tar", distro="test-distro-1", arch="x86_64",
                           image_filename="root.tar", mime_type="application/x-tar",
                           upload_requests=[{"provider": "local", "image_name": "img",
                                             "settings": {"directory": str(out_dir)}}])
    assert pipeline.submit(depsolver.config, compose.id)
    assert depsolver.wait_for([compose.id]) == {compose.id: "FINISHED"}, \
        store.read_log(compose.id)

    built = b"IMAGE" * 1000  # what the stand-in osbuild exports
    assert _download(api, compose.id) == built
    assert b"".join(store.artifacts.read(compose.id, "root.tar")) == built
    # the build machine kept nothing; the API machine never had the image
    for machine in (builder, api):
        assert not list(Path(machine.base).rglob("root.tar")), machine.base
    # the log the API shows came from the depsolve and build machines through the database
    log = api.client.get(f"/api/v1/compose/log/{compose.id}?size=1024").text
    assert "depsolved" in log and "osbuild finished" in log
    # the upload step is closed after the upload ended and its copy of the image was removed
    # (the upload's own FINISHED comes before that removal: not the event to wait on)
    wait_until(lambda: any(j["step"].startswith("upload:") and j["state"] == "done"
                           for j in jobs.jobs(store.db, compose.id)), what="the upload step done")
    [upload] = store.uploads(compose.id)
    assert upload.status == "FINISHED", upload.error
    assert (out_dir / "img.tar").read_bytes() == built  # the upload machine read it from S3
    assert not list((Path(uploader.base) / "cache").rglob("root.tar"))  # its copy is gone

    assert api.client.delete(f"/api/v1/compose/delete/{compose.id}").json()["uuids"][0]["status"]
    s3 = boto3.client("s3", endpoint_url=shared["artifacts_endpoint_url"], region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_kill_9_of_a_build_machine_mid_build_moves_the_build(redis_url, make_env, shared,
                                                             start_weldr_server, tmp_path):
    """The first build machine dies (kill -9 of its worker and osbuild) in the middle of a build;
    the API machine's recovery loop hands the step to the second build machine."""
    api = _api(start_weldr_server, redis_url, shared, tmp_path)
    first = _machine(make_env, redis_url, **shared)
    second = _machine(make_env, redis_url, **shared)
    worker = first.start_worker("build")
    cid = first.build_compose({"mode": "ok", "stage_sleep": 1.5, "size": 2000})
    pipeline.send(first.config, cid, steps.BUILD, [])
    store = first.store
    wait_until(lambda: store.progress(cid), what="the build running")
    assert store.get(cid).queue_status == "RUNNING"
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    second.start_worker("build")
    assert second.wait_for([cid]) == {cid: "FINISHED"}, store.read_log(cid)
    assert _download(api, cid) == b"IMAGE" * 2000
    assert [j["attempt"] for j in jobs.jobs(store.db, cid)] == [2]
    assert "stopped responding" in store.read_log(cid) or "attempt 2" in store.read_log(cid)


def test_unreachable_bucket_fails_the_build_with_the_store_named(redis_url, make_env, shared,
                                                                start_weldr_server, tmp_path):
    """The build machine cannot reach S3 when its image is done: the compose ends FAILED and says
    why, and the API answers for it; nothing is left RUNNING."""
    api = _api(start_weldr_server, redis_url, shared, tmp_path)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    cut_off = _machine(make_env, redis_url, **{**shared, "artifacts_endpoint_url": dead})
    cut_off.start_worker("build")
    cid = cut_off.build_compose({"mode": "ok", "size": 100})
    pipeline.send(cut_off.config, cid, steps.BUILD, [])
    assert cut_off.wait_for([cid]) == {cid: "FAILED"}
    compose = api.client.get(f"/api/v1/compose/info/{cid}").json()
    assert compose["queue_status"] == "FAILED"
    log = api.client.get(f"/api/v1/compose/log/{cid}").text
    assert "the image could not be stored" in log and f"s3://{BUCKET}/images at {dead}" in log
    assert not list(Path(cut_off.base).rglob("root.tar"))  # no half-kept image on the machine


class PrivatePostgres:
    """A PostgreSQL server of this test alone (initdb in a temporary directory, its own loopback
    port, trust authentication), so it can be restarted while workers use it."""

    def __init__(self) -> None:
        import glob
        import shutil
        import subprocess
        import tempfile

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            pytest.fail("PostgreSQL server binaries are not installed (apt-get install postgresql)")
        # under /tmp, not pytest's directory: the postgres user must reach it
        base = Path(tempfile.mkdtemp(prefix="celery-composer-test-pg-"))
        self.base = base
        self.bin, self.data = Path(bins[-1]), base / "pgdata"
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.data.mkdir(parents=True)
        self._as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as_postgres:
            shutil.chown(base, "postgres")
            shutil.chown(self.data, "postgres")
        subprocess.run([*self._as_postgres, str(self.bin / "initdb"), "-D", str(self.data),
                        "-U", "postgres", "--auth=trust"], check=True, capture_output=True)
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.ctl("start")

    def stop(self) -> None:
        import shutil

        self.ctl("stop")
        shutil.rmtree(self.base, ignore_errors=True)

    def ctl(self, action: str) -> None:
        import subprocess

        subprocess.run([*self._as_postgres, str(self.bin / "pg_ctl"), "-D", str(self.data), "-w",
                        "-l", str(self.data / "server.log"), "-o",
                        f"-c listen_addresses=127.0.0.1 -c port={self.port} -c fsync=off"
                        f" -c unix_socket_directories={self.data}", "-m", "fast", action],
                       check=True, capture_output=True, timeout=120)


def test_postgresql_restarted_mid_build_loses_nothing(redis_url, make_env, moto,
                                                     start_weldr_server, tmp_path):
    """The database server restarts while a build runs on a build machine: heartbeats, log
    shipping and progress fail for a moment and are retried; pooled connections are replaced;
    the compose ends FINISHED and everything answered before is still there."""
    server = PrivatePostgres()
    try:
        s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        shared = {"database_url": server.url, "artifacts_url": f"s3://{BUCKET}/restart",
                  "artifacts_endpoint_url": moto.url, "artifacts_region": "us-east-1",
                  "artifacts_access_key": "testing", "artifacts_secret_key": "testing"}
        api = _api(start_weldr_server, redis_url, shared, tmp_path)
        builder = _machine(make_env, redis_url, **shared)
        builder.start_worker("build")
        store = builder.store
        before = store.create(blueprint={"name": "kept", "version": "0.0.1"}, compose_type="tar",
                              distro="d", arch="x86_64", test_mode=2)
        cid = builder.build_compose({"mode": "ok", "stage_sleep": 2, "size": 500})
        pipeline.send(builder.config, cid, steps.BUILD, [])
        wait_until(lambda: store.progress(cid), what="the build running")
        assert store.get(cid).queue_status == "RUNNING"
        server.ctl("restart")
        assert builder.wait_for([cid]) == {cid: "FINISHED"}, store.read_log(cid)
        assert _download(api, cid) == b"IMAGE" * 500
        assert store.get(before.id).queue_status == "FINISHED"
        assert "Finished module org.osbuild.tar" in store.read_log(cid)
    finally:
        server.stop()


def _kill_when_running(store: Any, cid: str, step: str, worker: Any) -> None:
    """kill -9 the worker (and its pool) once its step of the compose is running: mid-step."""
    def running() -> bool:
        state = {j["step"]: j["state"] for j in jobs.jobs(store.db, cid)}.get(step)
        assert state != "done", f"{step} ended before it could be interrupted"
        return state == "running"

    wait_until(running, what=f"{step} running")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    assert {j["step"]: j["state"] for j in jobs.jobs(store.db, cid)}[step] == "running"


def test_kill_9_of_a_depsolve_machine_mid_depsolve(redis_url, make_env, shared,
                                                   start_weldr_server, tmp_path):
    api = _api(start_weldr_server, redis_url, shared, tmp_path)
    first, second = (_machine(make_env, redis_url, **shared) for _ in range(2))
    builder = _machine(make_env, redis_url, **shared)
    victim = first.start_worker("depsolve")
    builder.start_worker("build")
    store = builder.store
    from core.store.sources import SourceStore

    SourceStore(store.db).put(_test_repo_source())
    compose = store.create(blueprint={"name": "killed", "version": "0.0.1",
                                      "packages": [{"name": "bash", "version": "*"}]},
                           compose_type="tar", distro="test-distro-1", arch="x86_64",
                           image_filename="root.tar", mime_type="application/x-tar")
    assert pipeline.submit(first.config, compose.id)
    _kill_when_running(store, compose.id, "depsolve", victim)
    second.start_worker("depsolve")
    assert second.wait_for([compose.id], timeout=120) == {compose.id: "FINISHED"}, \
        store.read_log(compose.id)
    assert _download(api, compose.id) == b"IMAGE" * 1000
    assert [j["attempt"] for j in jobs.jobs(store.db, compose.id) if j["step"] == "depsolve"] == [2]


def test_kill_9_of_an_upload_machine_mid_upload(redis_url, make_env, shared, start_weldr_server,
                                               tmp_path):
    _api(start_weldr_server, redis_url, shared, tmp_path)
    builder = _machine(make_env, redis_url, **shared)
    out_dir = tmp_path / "upload-target"  # a directory both upload machines may write to
    out_dir.mkdir()
    first, second = (_machine(make_env, redis_url, local_upload_dirs=str(out_dir), **shared)
                     for _ in range(2))
    builder.start_worker("build")
    victim = first.start_worker("upload")
    size = 8 * 1024 * 1024  # 40 MiB: fetched from the bucket, then copied: long enough to interrupt
    cid = builder.build_compose({"mode": "ok", "size": size},
                                uploads=[{"provider": "local", "image_name": "img",
                                          "settings": {"directory": str(out_dir)}}])
    pipeline.send(builder.config, cid, steps.BUILD, ["local"])
    store = builder.store
    _kill_when_running(store, cid, "upload:local", victim)
    second.start_worker("upload")
    wait_until(lambda: store.uploads(cid)[0].status in ("FINISHED", "FAILED"),
               what="the upload ended")
    [upload] = store.uploads(cid)
    assert upload.status == "FINISHED", upload.error
    assert (out_dir / "img.tar").read_bytes() == b"IMAGE" * size
