"""Fixtures of the distros tests: where the shared golden cases, schemas and osbuild/images' test
reference are (if present)."""

import pytest

from distros import genmanifests
from tests.golden import GOLDEN_DIR, SCHEMA_DIR, golden_dir, schema_dir  # noqa: F401

REFERENCE = genmanifests.DEFAULT_REFERENCE


@pytest.fixture(scope="module")
def reference() -> genmanifests.Reference:
    """images' test configs, list and checksums (../shared), loaded once per module."""
    if not (REFERENCE / "manifest-checksums.tsv").exists():
        pytest.skip(f"no images test reference at {REFERENCE}")
    ref = genmanifests.Reference(root=REFERENCE)
    ref.load_configs()
    return ref
