"""Fixtures of the distros tests: where the shared golden cases and schemas are (if present)."""

from tests.golden import GOLDEN_DIR, SCHEMA_DIR, golden_dir, schema_dir  # noqa: F401
