"""Real osbuild loads our manifests: `osbuild --inspect` on a sample of every image type.

`test_schemas.py` checks the manifests against osbuild's JSON schemas from ../shared; this asks
osbuild itself (where it is installed, else skip: see `tests.conftest.real_osbuild`) with
`--inspect --export <each export>`: its own schemas for the stages of *this* osbuild version, and
its loader, which resolves runners, input/device/mount references and the exports.  Nothing is
built, so no RPM is needed (the packages are test_schemas' fake ones).

Every distro × arch × image type takes 0.15 s of osbuild each (~1,150 of them, several minutes),
so this samples one arch (x86_64 first) per image type and distro line (CentOS 8/9/10, RHEL 8/9/10
at their newest point release, the newest Fedora, the test distro), with test_schemas' customized
blueprint (the plain one where a type refuses those customizations).
"""

from __future__ import annotations

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import distros
from tests.conftest import real_osbuild
from tests.distros import test_schemas as ts


def line(distro: str) -> str:
    """The distro line a release belongs to: rhel-9.6 → rhel-9, fedora-44 → fedora."""
    name, version = distro.rsplit("-", 1)
    if name == "rhel":
        return f"rhel-{version.split('.')[0]}"
    return "fedora" if name == "fedora" else distro


def release_key(distro: str) -> tuple[int, ...]:
    return tuple(int(x) for x in distro.rsplit("-", 1)[1].split(".") if x.isdigit())


def sample() -> list[tuple[str, str, str]]:
    chosen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for distro, arch, name in ts.all_image_types():
        key = (line(distro), name)
        old = chosen.get(key)
        better = old is None or (arch == "x86_64", release_key(distro)) > (old[1] == "x86_64",
                                                                         release_key(old[0]))
        if better:
            chosen[key] = (distro, arch, name)
    return sorted(chosen.values())


def manifest_for(distro: str, arch: str, name: str) -> tuple[dict, list[str]]:
    it = distros.get_distro(distro).image_type(arch, name)
    customized = (ts.SIMPLIFIED_CUSTOMIZED if name.endswith("simplified-installer")
                  else ts.CUSTOM_BLUEPRINT)
    plain = ({"customizations": {"installation_device": "/dev/vda"}}
             if name.endswith("simplified-installer") else {})
    for bp in (customized, plain):
        try:
            sets = it.package_sets(bp, ts.options_for(it))
            return (it.manifest(bp, ts.fake_packages(arch, list(sets)), ts.REPOS,
                                ts.options_for(it), seed=7), list(it.exports))
        except ValueError:
            continue  # a type may refuse the customizations; the plain blueprint always works
    raise AssertionError(f"{distro}/{arch}/{name}: no manifest")


def test_osbuild_inspect_loads_a_manifest_of_every_image_type(tmp_path: Path) -> None:
    command = real_osbuild()
    jobs = []
    for distro, arch, name in sample():
        manifest, exports = manifest_for(distro, arch, name)
        path = tmp_path / f"{distro}-{arch}-{name}.json"
        path.write_text(json.dumps(manifest))
        jobs.append((f"{distro}/{arch}/{name}", path, exports))

    def inspect(job: tuple[str, Path, list[str]]) -> str | None:
        label, path, exports = job
        argv = [*command, "--inspect", *(a for e in exports for a in ("--export", e)), str(path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if done.returncode == 0 and json.loads(done.stdout).get("pipelines"):
            return None
        return f"{label}: exit {done.returncode}: {(done.stdout + done.stderr)[-1500:]}"

    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        failures = [f for f in pool.map(inspect, jobs) if f]
    assert len(jobs) > 100
    assert not failures, "\n\n".join(failures[:10]) + f"\n\n{len(failures)} of {len(jobs)} failed"
