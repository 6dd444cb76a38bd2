"""osbuild-composer's golden cases and osbuild's schemas under ../shared, for the distros and
installers tests: one place that knows where they are, how a case is read, and what "reproduced"
means, so both areas check their cases the same way (and skip the same way when ../shared is absent).
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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


def load_case(path: Path) -> dict:
    with lzma.open(path) as f:
        return json.load(f)


def assert_golden_manifest(golden_dir: Path, case: str) -> None:
    """The engine writes the manifest osbuild-composer wrote for the case's request and packages
    (seeded random values compared up to consistent renaming by distros.compare)."""
    from distros.cases import manifest_for_case
    from distros.compare import diff

    data = load_case(golden_dir / f"{case}.json.xz")
    difference = diff(data["manifest"], manifest_for_case(data))
    assert not difference, f"{case}: generated manifest differs\n{difference[:6000]}"
