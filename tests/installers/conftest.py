"""Fixtures of the installer tests: the shared golden cases and osbuild schemas, when present."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
GOLDEN_DIR = SHARED / "golden" / "dev"
SCHEMA_DIR = SHARED / "reference" / "osbuild-schemas"


@pytest.fixture
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip("../shared/golden/dev is not present")
    return GOLDEN_DIR


@pytest.fixture
def schema_dir() -> Path:
    if not SCHEMA_DIR.is_dir():
        pytest.skip("../shared/reference/osbuild-schemas is not present")
    return SCHEMA_DIR
