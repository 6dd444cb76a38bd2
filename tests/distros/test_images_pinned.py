"""Whole manifests of today's disk and cloud types, pinned (issue 11).

Each entry is the complete manifest of one (distro, arch, image type, blueprint) on fixed fake
packages, for the empty blueprint and the all-customizations one of tests/distros/test_schemas.py,
on x86_64 and aarch64. They were reviewed against osbuild/images 1146ec23cd9c, class by class, with
its mock manifests: device and mount names (`pkg/osbuild/device.go` deviceName, getDevices,
pathEscape, GenMountsDevicesFromPT; `pkg/disk/lvm.go` genLVName), rpm gpgkeys
(`pkg/osbuild/rpm_stage.go` GPGKeysForPackages), unit drop-ins (`pkg/osbuild/systemd_unit_stage.go`),
RHSM (`pkg/distro/generic/images.go` osCustomizations, rhsm_config), Azure (`azure_image_config_base`,
`image_config_vhd` of data/distrodefs/rhel-9 and rhel-10, `vhd_image_config` of rhel-8), EC2
(`ec2_image_config`, `ami_image_config`), WSL (`wsl`), minimal-raw (`systemd_dropin`), OpenSCAP
(`pkg/customizations/oscap`, `pkg/osbuild/oscap_*_stage.go`) and the OS pipeline's stage order
(`pkg/manifest/os.go` serialize). What still differs from images (package sets, partition tables of
some types) is listed in /work/notes of the session and the closing note of issue 11.

A change of the engine that changes one of these manifests fails here with the difference; after
checking it against images, rewrite the pins with `PIN_UPDATE=1 pytest tests/distros/test_images_pinned.py`.
"""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path
from typing import Any

import pytest

import distros
from distros.compare import diff
from tests.distros.test_schemas import CUSTOM_BLUEPRINT, REPOS, fake_packages

PINS = Path(__file__).parent / "data" / "images_pinned.json.xz"
BLUEPRINTS: dict[str, dict[str, Any]] = {"empty": {}, "all-customizations": CUSTOM_BLUEPRINT}
CASES = [(distro, arch, image_type)
         for distro in ("centos-9", "rhel-9.6", "rhel-10.0", "rhel-8.10")
         for arch in ("x86_64", "aarch64")
         for image_type in ("qcow2", "ami", "ec2", "vhd", "azure-rhui", "gce", "wsl", "minimal-raw")
         if image_type in distros.get_distro(distro).image_types(arch)]
NAMES = [f"{d}-{a}-{t}-{b}" for d, a, t in CASES for b in BLUEPRINTS]


def generate(name: str) -> dict[str, Any]:
    for d, a, t in CASES:
        for b, bp in BLUEPRINTS.items():
            if name == f"{d}-{a}-{t}-{b}":
                it = distros.get_distro(d).image_type(a, t)
                return it.manifest(bp, fake_packages(a, list(it.package_sets(bp))), REPOS, {}, 0)
    raise KeyError(name)


def _pins() -> dict[str, Any]:
    if os.environ.get("PIN_UPDATE"):
        pins = {name: generate(name) for name in NAMES}
        PINS.write_bytes(lzma.compress(json.dumps(pins, sort_keys=True).encode()))
    return json.loads(lzma.decompress(PINS.read_bytes()))


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return _pins()


def test_every_case_is_pinned(pins: dict[str, Any]) -> None:
    assert sorted(pins) == sorted(NAMES)
    assert len(NAMES) > 40


@pytest.mark.parametrize("name", NAMES)
def test_whole_manifest(pins: dict[str, Any], name: str) -> None:
    # the pins are stored key-sorted; the engine's key order is checked by the osbuild/images
    # scoreboard (celery-composer gen-manifests --check)
    generated = json.loads(json.dumps(generate(name), sort_keys=True))
    difference = diff(pins[name], generated)
    assert not difference, f"{name} changed:\n{difference[:6000]}"
