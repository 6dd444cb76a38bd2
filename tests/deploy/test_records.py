"""core.records: the value classes the CLI's start-up path uses instead of dataclasses."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from core.records import Record, field, fields, replace

PROJECT_DIR = Path(__file__).resolve().parents[2]


class Point(Record, frozen=True):
    x: int
    y: int = 0
    tags: dict = field(default_factory=dict, compare=False)


class Bag(Record):
    name: str
    items: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.name = self.name.strip()


def test_defaults_factories_and_equality():
    a, b = Point(1), Point(1, tags={"k": "v"})
    assert (a.x, a.y, a.tags) == (1, 0, {})
    assert a == b and hash(a) == hash(b)  # tags are not compared, as compare=False says
    assert Point(1, 2) != Point(2, 1) and Point(1) != (1, 0)
    assert Bag("x").items is not Bag("x").items  # a fresh list each time
    assert fields(Point) == ("x", "y", "tags")
    assert repr(Point(1, 2)) == "Point(x=1, y=2, tags={})"


def test_frozen_and_mutable():
    p = Point(1)
    with pytest.raises(AttributeError):
        p.x = 2  # type: ignore[misc]
    bag = Bag(" b ")
    assert bag.name == "b"  # __post_init__ ran
    bag.items.append(1)
    bag.name = "c"
    assert bag == Bag("c", [1])
    with pytest.raises(TypeError):
        hash(bag)  # mutable records are unhashable, as dataclasses makes them


def test_constructor_errors_and_replace():
    with pytest.raises(TypeError):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, z=3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=1)  # type: ignore[misc]
    moved = replace(Point(1, 2), y=5)
    assert moved == Point(1, 5)
    assert pickle.loads(pickle.dumps(moved)) == moved


def test_depsolve_cli_path_imports_no_dataclasses():
    """What the records are for: `celery-composer depsolve` starts without dataclasses and the
    other modules only a cold or a searching run needs."""
    code = ("import sys; import app.cli, depsolve.cli, depsolve.solver_solv; "
            "print(' '.join(sorted(sys.modules)))")
    loaded = set(subprocess.run([sys.executable, "-c", code], cwd=PROJECT_DIR, check=True,
                                capture_output=True, text=True).stdout.split())
    assert not loaded & {"dataclasses", "inspect", "tempfile", "shutil", "datetime",
                         "xml.etree.ElementTree", "urllib.request", "gzip", "lzma", "platform"}
