"""`make manifest-diff`: dump the manifests of an engine revision, compare two dumps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import distros
from distros import manifestdiff


def test_dump_then_compare_shows_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(distros, "list_distros", lambda: ["test-distro-1"])
    old, new = tmp_path / "old", tmp_path / "new"
    assert manifestdiff.dump(old) == 0
    files = sorted(old.glob("*.json"))
    assert files and all(f.name.startswith("test-distro-1_") for f in files)
    # the same engine twice: nothing changed
    manifestdiff.dump(new)
    capsys.readouterr()
    manifestdiff.compare(old, new)
    assert capsys.readouterr().out.strip().endswith(f"{len(files)} manifests: 0 changed, 0 new, 0 gone")
    # one manifest changed, one type gone
    changed = json.loads(files[0].read_text())
    if "pipelines" in changed:
        changed["pipelines"][0]["name"] = "renamed"
    else:
        changed = {"error": "other"}
    (new / files[0].name).write_text(json.dumps(changed))
    (new / files[1].name).unlink()
    manifestdiff.compare(old, new)
    out = capsys.readouterr().out
    assert f"=== {files[0].name[:-5]}" in out and "renamed" in out
    assert f"--- gone: {files[1].name[:-5]}" in out
    assert out.strip().endswith("1 changed, 0 new, 1 gone")


def test_usage_is_refused() -> None:
    assert manifestdiff.main(["nonsense"]) == 2
