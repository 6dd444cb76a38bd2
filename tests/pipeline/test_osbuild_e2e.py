"""A real compose through the API, built by real osbuild, then the same compose again.

Needs osbuild, which is not installed on the test machines: the test skips, saying why
(`tests.conftest.real_osbuild`).  To run it, install osbuild, or point `TEST_OSBUILD_COMMAND` at a
source checkout, e.g. `env PYTHONPATH=/src/osbuild python3 -m osbuild --libdir /src/osbuild` (with
bubblewrap, python3-jsonschema and an existing /etc/containers; qcow2 also needs qemu-utils, fdisk).

The distro is the distros area's `test-distro-1` (the host is the build root); its system
repository is the depsolve tests' local RPM repository, given through a repositories directory
made here.  The second compose must download nothing (RPMs are in the shared osbuild store) and
reuse the `os` checkpoint (osbuild does not run that pipeline again).
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from pathlib import Path

import pytest

from tests.conftest import WeldrServer, real_osbuild


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def wait_info(client, compose_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get(f"/api/v1/compose/info/{compose_id}").json()
        if info["queue_status"] in ("FINISHED", "FAILED") or time.monotonic() > deadline:
            return info
        time.sleep(0.5)


@pytest.mark.parametrize("image_type", ["tar", "qcow2"])
def test_real_compose_twice_downloads_once_and_reuses_checkpoints(tmp_path, redis_url, make_env,
                                                                  image_type):
    command = real_osbuild(image_type)
    from tests.depsolve.repos import built_repos

    repos_dir = tmp_path / "repositories"
    repos_dir.mkdir()
    (repos_dir / "test-distro-1.json").write_text(json.dumps({"x86_64": [{
        "name": "test-baseos", "baseurl": built_repos()["baseos"].as_uri() + "/",
        "check_gpg": False}]}))
    server = WeldrServer(tmp_path / "api")
    env = make_env(redis_url, state_dir=server.state_dir, repositories_dir=repos_dir,
                   osbuild_command=shlex.join(command), task_stale_after=60,
                   default_distro="test-distro-1")
    server.extra_env = {k: v for k, v in env.environ.items() if k.startswith("CELERY_COMPOSER_")}
    server.start()
    try:
        env.start_worker("depsolve,build")
        client = server.client
        bp = {"name": "e2e", "version": "0.0.1", "distro": "test-distro-1",
              "packages": [{"name": "bash", "version": "*"}], "modules": [], "groups": []}
        assert client.post("/api/v1/blueprints/new", bp).status == 200
        sources = Path(env.config.store_path) / "sources"
        results = []
        for _ in range(2):
            before = tree_bytes(sources)
            t0 = time.monotonic()
            r = client.post("/api/v1/compose", {"blueprint_name": "e2e", "compose_type": image_type,
                                                "branch": "master"})
            assert r.status == 200, r.text
            compose_id = r.json()["build_id"]
            info = wait_info(client, compose_id)
            elapsed = time.monotonic() - t0
            log = env.store.read_log(compose_id)
            assert info["queue_status"] == "FINISHED", log[-3000:]
            results.append((compose_id, elapsed, tree_bytes(sources) - before, log))
        (first, t1, dl1, log1), (second, t2, dl2, log2) = results
        assert dl1 > 0 and dl2 == 0, "the repeated compose downloaded RPMs again"
        assert "Starting module org.osbuild.rpm" in log1
        assert "Starting module org.osbuild.rpm" not in log2, "the os checkpoint was not reused"
        image = client.get(f"/api/v1/compose/image/{second}")
        assert image.status == 200
        assert int(image.headers["Content-Length"]) == len(image.body) > 0
        info = client.get(f"/api/v1/compose/info/{second}").json()
        assert info["image_size"] == len(image.body)
        if image_type == "tar":
            assert image.headers["Content-Type"].startswith("application/x-tar")
            names = tarfile.open(fileobj=io.BytesIO(image.body)).getnames()
            assert any(n.endswith("bin/bash") for n in names)
        else:
            assert image.body[:4] == b"QFI\xfb"  # qcow2 magic
        print(f"{image_type}: first {t1:.1f} s ({dl1} bytes downloaded), "
              f"repeat {t2:.1f} s ({dl2} bytes)")
    finally:
        server.stop()
