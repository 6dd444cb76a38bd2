"""The layering of the packages (README "Code layout"): nothing imports upward.

Reads every module's import statements (top level and inside functions) with `ast`, so a lazy
import inside a function counts as much as one at the top; string imports (`importlib`) between our
packages are refused outright.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# package -> the packages of ours it may import (itself always allowed)
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "depsolve": {"core"},
    "distros": {"core", "depsolve"},
    "uploaders": {"core", "distros"},
    "tasks": {"core", "depsolve", "distros", "uploaders"},
    "app": {"core", "depsolve", "distros", "uploaders", "tasks"},
}
# app modules that may reach the pipeline's wiring: the process entry points, not the routes
APP_ENTRY_POINTS = {"app/server.py", "app/cli.py", "app/status.py"}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def test_nothing_imports_upward() -> None:
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, module in _imports(path):
                top = module.split(".")[0]
                if top not in ALLOWED or top == package:
                    continue
                ok = top in allowed
                if package == "app" and top == "tasks" and rel not in APP_ENTRY_POINTS:
                    ok = False  # routes get the pipeline handed in, never import it
                if not ok:
                    wrong.append(f"{rel}:{line} imports {module}")
    assert not wrong, "\n".join(wrong)


def test_no_string_imports_between_layers() -> None:
    wrong = []
    for package in ALLOWED:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            if "import_module(" in text and package != "depsolve":
                wrong.append(path.relative_to(ROOT).as_posix())
    assert not wrong, wrong
