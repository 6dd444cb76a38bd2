"""osbuild-composer's installer and ostree manifests, reproduced exactly (up to seeded identifiers).

Given a golden case's compose request, depsolved packages and resolved ostree commits, the engine
must write the manifest osbuild-composer wrote. Random values (filesystem UUIDs, the FAT serial of
efiboot.img) come from a seeded generator and are compared up to consistent renaming
(distros.compare); everything else must be identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.golden import assert_golden_manifest

CASES = [
    "centos_9-x86_64-image_installer-boot",
    "centos_9-x86_64-edge_commit-boot",
    "centos_9-x86_64-edge_container-boot",
    "centos_9-x86_64-edge_installer-boot",
    "centos_9-x86_64-edge_raw_image-boot",
    "fedora_38-x86_64-iot_commit-boot",
]


@pytest.mark.parametrize("case", CASES)
def test_golden_manifest(golden_dir: Path, case: str) -> None:
    assert_golden_manifest(golden_dir, case)
