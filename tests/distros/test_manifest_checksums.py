"""The scoreboard against osbuild/images' 1,929 mock manifest checksums must never go down.

Makes every entry of `../shared/reference/images-test/manifest-checksums.tsv` with our engine (as
`make manifest-checksums` does) and counts the sha1s that match.  Skipped without the shared copy.
"""

from __future__ import annotations

from pathlib import Path

from distros import genmanifests

# Raise this when an engine fix makes more entries byte-identical to images' manifests.
PINNED_MATCHES = 1739

REFERENCE = genmanifests.DEFAULT_REFERENCE


def test_every_checksum_entry_is_resolved(reference: genmanifests.Reference) -> None:
    entries = genmanifests.resolve_entries(genmanifests.read_checksums(reference.checksums), reference)
    assert len(entries) == 1929
    # bootc entries are out of scope, and said so
    assert {e.unsupported for e in entries if e.name.startswith("bootc_")} == {genmanifests.BOOTC_REASON}
    offered = [e for e in entries if not e.unsupported]
    assert offered and all(e.distro and e.arch and e.image_type and e.config for e in offered)


def test_match_count_never_goes_down(reference: genmanifests.Reference, tmp_path) -> None:
    entries = genmanifests.resolve_entries(genmanifests.read_checksums(reference.checksums), reference)
    todo = [e for e in entries if not e.unsupported]
    results = genmanifests.generate(todo, reference, str(tmp_path), workers=2)
    matches = sorted(e.name for e in todo if results[e.name][0] == e.sha1)
    assert len(matches) >= PINNED_MATCHES, f"{len(matches)} entries match, {PINNED_MATCHES} are pinned"
    # every written file is the one whose sha1 was taken
    assert len(list(tmp_path.glob("*.json"))) == sum(1 for sha1, _ in results.values() if sha1)


def test_blueprint_file_uris_are_rewritten_once_per_job_of_the_config() -> None:
    """images rewrites the shared blueprint once per collected job: the whole list has 18 jobs of
    file-customizations, and its manifests name the file after the 18th sha256 of the chain."""
    bp = {"customizations": {"files": [{"path": "/etc/x", "uri": "file:///etc/os-release"}, {"path": "/etc/y"}]}}
    once = genmanifests.mock_bpfile_uris(bp, 1)["customizations"]["files"][0]["uri"]
    assert once.endswith("/fake-bp-files-with-urls/" + __import__("hashlib").sha256(b"file:///etc/os-release").hexdigest())
    full = genmanifests.mock_bpfile_uris(bp, 18)["customizations"]["files"]
    assert full[0]["uri"] == ("file:///tmp/gen-manifests-tmpdir/fake-bp-files-with-urls/"
                              "6990c1a8f48eedd178def07c240abf0bec781a594f5af17f1dd7aec14e31a0c8")
    assert full[1] == {"path": "/etc/y"} and bp["customizations"]["files"][0]["uri"] == "file:///etc/os-release"
    # the file is there, 0600, holding the URI of the step before: its sha256 is its name
    written = Path(full[0]["uri"][len("file://"):])
    assert __import__("hashlib").sha256(written.read_bytes()).hexdigest() == written.name
    assert written.stat().st_mode & 0o777 == 0o600
