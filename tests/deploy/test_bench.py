"""The benchmarks run on what `make venv` installs: no pytest, no test-only packages.

`make bench-queue` once imported the tests' conftest (and so pytest) for its Weldr client. Here the
queue benchmark runs for real (a `celery-composer serve`, one worker, a private Redis) in a Python
where `import pytest` fails, as it does in a venv made by `make venv` alone.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[2]

# Run a benchmark script as `python bench/X.py` would, with pytest made unimportable.
WITHOUT_PYTEST = """
import runpy, sys
sys.modules["pytest"] = None  # any `import pytest` now raises ImportError
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
"""


def test_bench_queue_runs_without_pytest(private_redis: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYTEST, "bench/queue.py", "--composes", "3", "--workers", "1",
         "--idle-samples", "1", "--timeout", "120", "--broker", private_redis],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "queue benchmark: 3 test-mode composes" in result.stdout
    assert "not done (lost) 0" in result.stdout
