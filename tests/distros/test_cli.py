"""`celery-composer manifest` as a user runs it: a real subprocess, real files, a real RPM repo."""

from __future__ import annotations

import json
import lzma
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from distros.compare import diff
from tests.golden import expected_manifest

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd),
                                                       "CELERY_COMPOSER_CACHE_DIR": str(cwd / "cache"),
                                                       "CELERY_COMPOSER_STATE_DIR": str(cwd / "state")})


def test_case_document_prints_the_golden_manifest(golden_dir: Path, tmp_path: Path) -> None:
    case = golden_dir / "centos_9-x86_64-qcow2_customize-boot.json.xz"
    out = run_cli("manifest", str(case), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    expected = expected_manifest(json.load(lzma.open(case)))
    assert diff(expected, json.loads(out.stdout)) == ""


def test_blueprint_is_resolved_with_the_depsolver(tmp_path: Path) -> None:
    for tool in ("rpmbuild", "createrepo_c"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (tests/debian-packages.txt)")
    from tests.depsolve.repos import built_repos

    baseos = built_repos()["baseos"]
    bp = tmp_path / "bp.toml"
    bp.write_text('name = "cli"\n\n[[packages]]\nname = "bash"\nversion = "*"\n\n'
                  '[customizations]\nhostname = "from-toml"\n')
    out = run_cli("manifest", "--distro", "test-distro-1", "--arch", "x86_64", "--image-type", "tar",
                  "--blueprint", str(bp), "--repo", baseos.as_uri() + "/", "--seed", "3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    manifest = json.loads(out.stdout)
    os_ = manifest["pipelines"][0]
    assert os_["name"] == "os" and "build" not in os_          # the host is the build root
    rpm = os_["stages"][0]
    assert rpm["options"]["dbpath"] == "/var/lib/rpm"
    urls = [item["url"] for item in manifest["sources"]["org.osbuild.curl"]["items"].values()]
    assert any(u.endswith(".rpm") and "/bash-" in u for u in urls)
    assert len(rpm["inputs"]["packages"]["references"]) == len(urls) >= 2   # bash and its deps
    assert {"type": "org.osbuild.hostname", "options": {"hostname": "from-toml"}} in os_["stages"]


def test_unknown_image_type_is_a_clear_error(tmp_path: Path) -> None:
    out = run_cli("manifest", "--distro", "centos-9", "--arch", "x86_64", "--image-type", "floppy",
                  cwd=tmp_path)
    assert out.returncode == 1
    assert "floppy" in out.stderr and "Traceback" not in out.stderr
