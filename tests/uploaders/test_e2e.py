"""End to end: the Weldr socket of a real `celery-composer serve`, its embedded Celery worker and
the store, with uploads scheduled over the API and run by the `compose.upload.<target>` tasks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.uploaders.conftest import MiB, write_image

SECRET = "e2e-secret-never-shown-9876"


def wait_upload(client: Any, upload_id: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"/api/v1/upload/info/{upload_id}").json()["upload"]
        if info["status"] in ("FINISHED", "FAILED", "CANCELLED") or time.monotonic() > deadline:
            return info
        time.sleep(0.2)


def test_uploads_scheduled_over_the_api_run_on_the_worker(start_weldr_server, tmp_path: Path) -> None:
    from core.store.composes import ComposeStore
    from tests.databases import database_for

    server = start_weldr_server(env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "true",
                                     "CELERY_COMPOSER_LOCAL_UPLOAD_DIRS": str(tmp_path)})
    client = server.client
    out = tmp_path / "published"
    out.mkdir()
    resp = client.post("/api/v0/blueprints/new", {"name": "e2e", "version": "0.0.1", "packages": [],
                                                  "modules": [], "groups": []})
    assert resp.status == 200, resp
    # a test-mode compose is FINISHED at once (no build), and so is the upload given with it:
    # nothing is uploaded for it (osbuild-composer shows its uploads in the compose's state)
    resp = client.post("/api/v1/compose?test=2", {
        "blueprint_name": "e2e", "compose_type": "qcow2", "branch": "master",
        "upload": {"image_name": "from-compose", "provider": "local", "settings": {"directory": str(out)}}})
    assert resp.status == 200, resp
    compose_id, first_upload = resp.json()["build_id"], resp.json()["upload_id"]
    assert client.get(f"/api/v1/compose/status/{compose_id}").json()["uuids"][0]["queue_status"] == "FINISHED"
    assert client.get(f"/api/v1/upload/info/{first_upload}").json()["upload"]["status"] == "FINISHED"
    store = ComposeStore(database_for(server.state_dir), server.state_dir / "artifacts")
    image = store.image_path(store.get(compose_id))
    image.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, 32 * MiB, [(0, 2 * MiB)])

    resp = client.post(f"/api/v1/compose/uploads/schedule/{compose_id}", {
        "image_name": "scheduled", "provider": "local", "settings": {"directory": str(out)}})
    assert resp.status == 200, resp
    second_upload = resp.json()["upload_id"]
    resp = client.post(f"/api/v1/compose/uploads/schedule/{compose_id}", {
        "image_name": "unreachable", "provider": "s3", "settings": {
            "bucket": "images", "endpoint_url": "http://127.0.0.1:9", "access_key_id": "AKIAE2E",
            "secret_access_key": SECRET}})
    failing_upload = resp.json()["upload_id"]

    info = wait_upload(client, second_upload)
    assert info["status"] == "FINISHED", info
    assert (out / "scheduled").with_suffix(image.suffix).read_bytes() == image.read_bytes()
    assert not list(out.glob("from-compose*"))

    info = wait_upload(client, failing_upload)
    assert info["status"] == "FAILED" and "network error" in info["error"], info
    compose = client.get(f"/api/v1/compose/info/{compose_id}")
    assert compose.status == 200
    body = compose.json()
    assert body["queue_status"] == "FINISHED"
    assert sorted(u["status"] for u in body["uploads"]) == ["FAILED", "FINISHED", "FINISHED"]
    assert SECRET not in compose.text
    assert SECRET not in client.get(f"/api/v1/upload/log/{failing_upload}").text
    assert SECRET not in (server.base / "server.log").read_text(errors="replace")


def test_local_target_writes_only_into_local_upload_dirs(start_weldr_server, tmp_path: Path) -> None:
    """Over the API of a real `serve` with its embedded worker: a `local` upload is refused at
    request time outside `local_upload_dirs` (a symlink out of it included) and nothing is
    stored; inside, the file keeps the image's whole extension (`.tar.xz`)."""
    from core.store.composes import ComposeStore
    from tests.databases import database_for

    pool, elsewhere = tmp_path / "pool", tmp_path / "elsewhere"
    pool.mkdir()
    elsewhere.mkdir()
    (pool / "escape").symlink_to(elsewhere)
    server = start_weldr_server(env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "true",
                                     "CELERY_COMPOSER_LOCAL_UPLOAD_DIRS": str(pool)})
    client = server.client
    store = ComposeStore(database_for(server.state_dir), server.state_dir / "artifacts")
    compose = store.create(blueprint={"name": "local-bp", "version": "0.0.1"}, compose_type="tar",
                           distro="centos-9", arch="x86_64", image_filename="root.tar.xz",
                           mime_type="application/x-tar")
    assert store.mark_running(compose.id)
    image = store.image_path(store.get(compose.id))
    image.parent.mkdir(parents=True, exist_ok=True)
    write_image(image, 2 * MiB, [(0, MiB)])
    assert store.mark_finished(compose.id, image_size=2 * MiB)

    for directory in (elsewhere, pool / "escape", Path("/etc")):
        r = client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", {
            "image_name": "my-local", "provider": "local", "settings": {"directory": str(directory)}})
        assert r.status == 400 and r.json()["errors"][0]["id"] == "UploadError", r
        assert "local_upload_dirs" in r.json()["errors"][0]["msg"]
    assert store.uploads(compose.id) == []

    r = client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", {
        "image_name": "my-local", "provider": "local", "settings": {"directory": str(pool)}})
    assert r.status == 200, r
    info = wait_upload(client, r.json()["upload_id"])
    assert info["status"] == "FINISHED", info
    assert (pool / "my-local.tar.xz").read_bytes() == image.read_bytes()
    assert sorted(p.name for p in pool.iterdir()) == ["escape", "my-local.tar.xz"]
    assert list(elsewhere.iterdir()) == []
