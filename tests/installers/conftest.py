"""Fixtures of the installer tests: the shared golden cases and osbuild schemas, when present."""

from tests.golden import GOLDEN_DIR, SCHEMA_DIR, golden_dir, schema_dir  # noqa: F401
