"""osbuild-composer's installer and ostree manifests, reproduced exactly (up to seeded identifiers).

Given a golden case's compose request, depsolved packages and resolved ostree commits, the engine
must write the manifest osbuild-composer wrote. Random values (filesystem UUIDs, the FAT serial of
efiboot.img) come from a seeded generator and are compared up to consistent renaming
(distros.compare); everything else must be identical.

Retired (issue 11): `centos_9-x86_64-image_installer-boot` and `centos_9-x86_64-edge_installer-boot`.
CentOS Stream 9 follows osbuild/images' current installer code, which rebuilt every installer
pipeline since July 2023 (lorax templates with branding, dracut's own module list, activatable
anaconda modules, a 5 GiB rootfs, the FAT device named `-`, leading `/` in ISO paths, kickstart
`%post` instead of an including file; see distros.anaconda). Their installer pipelines are pinned
by tests/installers/test_today_installers.py; here only their payload pipelines (`build`, `os`)
still have to be osbuild-composer's (with images' naming changes, tests.golden.expected_manifest).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import assert_golden_manifest, expected_manifest, load_case

CASES = [
    "centos_9-x86_64-edge_commit-boot",
    "centos_9-x86_64-edge_container-boot",
    "centos_9-x86_64-edge_raw_image-boot",
    "fedora_38-x86_64-iot_commit-boot",
]

# the installer ISOs of a release that follows osbuild/images: installer pipelines are today's
RETIRED = {
    "centos_9-x86_64-image_installer-boot": ["build", "os"],
    "centos_9-x86_64-edge_installer-boot": ["build"],
}


@pytest.mark.parametrize("case", CASES)
def test_golden_manifest(golden_dir: Path, case: str) -> None:
    assert_golden_manifest(golden_dir, case)


@pytest.mark.parametrize("case", sorted(RETIRED))
def test_retired_installer_cases_keep_their_payload_pipelines(golden_dir: Path, case: str) -> None:
    from distros.cases import manifest_for_case
    from distros.compare import diff

    data = load_case(golden_dir / f"{case}.json.xz")
    expected, ours = expected_manifest(data), manifest_for_case(data)
    keep = RETIRED[case]

    def part(m: dict) -> dict:
        return {"version": m["version"], "pipelines": [p for p in m["pipelines"] if p["name"] in keep]}

    difference = diff(part(expected), part(ours))
    assert not difference, f"{case}: payload pipelines differ\n{difference[:6000]}"
    # and the installer pipelines are today's: no isolinux-era 4 GiB rootfs, a branded lorax template
    names = [p["name"] for p in ours["pipelines"]]
    assert names == [p["name"] for p in expected["pipelines"]]
    anaconda = next(p for p in ours["pipelines"] if p["name"] == "anaconda-tree")["stages"]
    lorax = [s["options"] for s in anaconda if s["type"] == "org.osbuild.lorax-script"]
    assert [o["path"] for o in lorax] == ["80-rhel/runtime-postinstall.tmpl", "80-rhel/runtime-cleanup.tmpl"]
    rootfs = next(p for p in ours["pipelines"] if p["name"] == "rootfs-image")["stages"]
    truncate = next(s for s in rootfs if s["type"] == "org.osbuild.truncate")["options"]
    assert truncate == {"filename": "/LiveOS/rootfs.img",
                        "size": str((5 if "image_installer" in case else 4) * 1024 ** 3)}
