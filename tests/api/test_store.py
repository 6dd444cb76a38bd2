"""The store's domain code without a server: compose lifecycle rules and source handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.config import load
from core.store import composes as cs
from core.store import sources
from distros import offered
from tests.databases import database_for


@pytest.fixture
def store(tmp_path: Path) -> cs.ComposeStore:
    return cs.ComposeStore(database_for(tmp_path / "state"), tmp_path / "artifacts")


def _new(store: cs.ComposeStore, **kw) -> cs.Compose:
    return store.create(blueprint={"name": "bp", "version": "1.0.0"}, compose_type="qcow2",
                        distro="centos-9", arch="x86_64", size=1 << 30,
                        image_filename="disk.qcow2", **kw)


def test_lifecycle_transitions_and_generation(store):
    c = _new(store)
    g0 = store.generation()
    assert c.queue_status == cs.WAITING and store.ids_by_status(cs.WAITING) == [c.id]
    assert not store.mark_finished(c.id), "FINISHED only from RUNNING"
    assert store.mark_running(c.id) and not store.mark_running(c.id)
    assert store.get(c.id).job_started is not None
    assert store.mark_finished(c.id)
    done = store.get(c.id)
    assert done.queue_status == cs.FINISHED and done.image_size == 1 << 30
    assert not store.mark_failed(c.id, "late"), "a finished compose stays finished"
    assert store.generation() > g0
    with pytest.raises(cs.UnknownCompose):
        store.get("00000000-0000-0000-0000-000000000000")


def test_failed_message_logged_and_cancel_rules(store):
    c = _new(store)
    store.mark_running(c.id)
    assert store.request_cancel(c.id) == cs.RUNNING and store.cancel_requested(c.id)
    # a cancel acknowledged is final at once, as osbuild-composer's job queue makes it: the
    # worker that finishes the build afterwards cannot turn it FINISHED
    assert store.get(c.id).queue_status == cs.FAILED
    assert store.read_log(c.id).endswith("compose cancelled\n")
    assert not store.mark_finished(c.id) and not store.mark_failed(c.id, "boom")
    assert store.get(c.id).queue_status == cs.FAILED
    with pytest.raises(cs.WrongState):
        store.request_cancel(c.id)
    f = _new(store)
    store.mark_running(f.id)
    assert store.mark_failed(f.id, "osbuild failed")
    assert "osbuild failed" in store.read_log(f.id) and store.get(f.id).error == "osbuild failed"
    done = _new(store)
    store.mark_running(done.id)
    store.mark_finished(done.id)
    with pytest.raises(cs.WrongState):  # finished before the cancel: the cancel is refused
        store.request_cancel(done.id)
    w = _new(store)
    assert store.request_cancel(w.id) == cs.WAITING and store.get(w.id).queue_status == cs.FAILED
    assert not store.mark_running(w.id), "a cancelled compose is never built"


def test_delete_only_final_and_removes_files(store):
    c = _new(store)
    store.append_log(c.id, "x\n")
    with pytest.raises(cs.WrongState):
        store.delete(c.id)
    store.mark_failed(c.id, "boom")
    store.delete(c.id)
    assert not store.exists(c.id) and not store.compose_dir(c.id).exists()
    with pytest.raises(ValueError):
        store.compose_dir("../../etc")


def test_test_modes_and_uploads(store):
    finished, failed = _new(store, test_mode=2), _new(store, test_mode=1)
    assert (finished.queue_status, failed.queue_status) == (cs.FINISHED, cs.FAILED)
    up = _new(store, upload_requests=[{"provider": "aws", "image_name": "i", "settings": {"k": 1}}])
    [u] = store.uploads(up.id)
    assert (u.target, u.status, u.settings) == ("aws", "WAITING", {"k": 1})
    store.update_upload(u.id, status="RUNNING", progress=0.5)
    store.update_upload(u.id, status="FINISHED", result={"ami": "ami-1"})
    u = store.upload(u.id)
    assert u.started and u.finished and u.result == {"ami": "ami-1"} and u.progress == 0.5
    with pytest.raises(ValueError):
        store.update_upload(u.id, status="BOGUS")
    assert store.delete_upload(u.id) and store.uploads(up.id) == []


def test_payloads_roundtrip_and_damage(store):
    c = _new(store)
    store.record_packages(c.id, {"os": [{"name": "bash"}]})
    store.record_manifest(c.id, {"version": "2"})
    assert store.packages(c.id) == {"os": [{"name": "bash"}]}
    assert store.manifest(c.id) == {"version": "2"}
    store.db.execute("UPDATE compose_payloads SET manifest = 'nope' WHERE compose_id = ?",
                          (c.id,))
    with pytest.raises(cs.DamagedCompose):
        store.manifest(c.id)


def test_summaries_filters(store):
    a, b = _new(store), _new(store, test_mode=2)
    assert [s.id for s in store.summaries(statuses=[cs.FINISHED])] == [b.id]
    assert {s.id for s in store.summaries(ids=[a.id, b.id])} == {a.id, b.id}
    assert store.summaries(ids=[]) == [] and store.summaries(blueprint="other") == []
    assert [s.id for s in store.summaries(compose_type="qcow2")] == sorted([a.id, b.id])


def test_source_normalise_v0_v1_and_table_form():
    v1 = sources.normalise_source({"id": "a", "name": "A", "type": "yum-baseurl", "url": "u",
                                   "gpgkey_urls": ["k"], "check_gpg": True}, 1)
    assert v1["id"] == "a" and v1["gpgkeys"] == ["k"] and v1["check_gpg"] is True
    v0 = sources.normalise_source({"name": "b", "type": "yum-metalink", "url": "u"}, 0)
    assert v0["id"] == "b"
    table = sources.normalise_source({"t": {"name": "T", "type": "yum-baseurl", "url": "u"}}, 1)
    assert table["id"] == "t"
    with pytest.raises(sources.SourceError, match="'url' field is missing"):
        sources.normalise_source({"id": "a", "name": "A", "type": "yum-baseurl"}, 1)
    with pytest.raises(sources.SourceError, match="check_ssl"):
        sources.normalise_source({"id": "a", "name": "A", "type": "yum-baseurl", "url": "u",
                                  "check_ssl": "yes"}, 1)
    assert sources.as_v0(v1)["gpgkey_urls"] == ["k"] and "id" not in sources.as_v0(v1)


def test_substitution_releasever_and_defaults(tmp_path):
    src = {"id": "x", "name": "$releasever-$basearch", "type": "yum-baseurl",
           "url": "http://h/$releasever/$basearch", "gpgkeys": ["http://h/$releasever.key"]}
    out = sources.substitute(src, "rhel-9.6", "aarch64")
    assert out["name"] == "9-aarch64" and out["url"] == "http://h/9/aarch64"
    assert out["gpgkeys"] == ["http://h/9.key"] and src["url"].endswith("$basearch")
    assert sources.releasever("fedora-43") == "43"
    config = load(state_dir=tmp_path, default_distro="fedora-43")
    assert offered.default_distro(config) == "fedora-43"
    listed = offered.list_distros(load(state_dir=tmp_path), "x86_64")
    assert "centos-9" in listed and listed == sorted(listed)
    assert offered.default_distro(load(state_dir=tmp_path)) in listed


def test_system_sources_and_repositories_for(tmp_path):
    config = load(state_dir=tmp_path)
    db = database_for(tmp_path)
    system = sources.system_sources(config, "centos-9", "x86_64")
    assert system and all(s["system"] and s["type"].startswith("yum-") for s in system.values())
    store = sources.SourceStore(db)
    store.put(sources.normalise_source({"id": "mine", "name": "m", "type": "yum-baseurl",
                                        "url": "http://h/$basearch", "distros": ["fedora-43"]}, 1))
    assert [r.get("id") for r in sources.repositories_for(config, db, "centos-9", "x86_64")
            if r.get("id")] == []
    fed = sources.repositories_for(config, db, "fedora-43", "x86_64")
    assert fed[-1]["url"] == "http://h/x86_64"
    repos, rel, platform = offered.solver_inputs(config, db, "centos-9", "x86_64")
    assert repos and rel == "9" and platform == "platform:el9"


def test_uploads_of_many_composes(store):
    with store.db.transaction():
        made = [_new(store) for _ in range(2000)]
    store.add_upload(made[-1].id, "aws", "img", {})
    grouped = store.uploads_of(c.id for c in made)
    assert list(grouped) == [made[-1].id]


SHARED_REPOS = Path(__file__).resolve().parents[3] / "shared" / "reference" / "images-repositories"


def test_our_repository_files_are_well_formed():
    import json

    import distros

    known = set(distros.list_distros())
    files = sorted((Path(__file__).resolve().parents[2] / "repositories").glob("*.json"))
    assert len(files) >= 8
    for path in files:
        assert path.stem in known, f"{path.name}: no image definitions for this distro"
        data = json.loads(path.read_text())
        # aarch64 too where the release has image types for it (RHEL 7.9 is x86_64 only)
        arches = set(distros.get_distro(path.stem).arches())
        assert "x86_64" in data and ("aarch64" in data or "aarch64" not in arches), path.name
        for arch, repos in data.items():
            assert repos, (path.name, arch)
            for repo in repos:
                assert repo["name"] and isinstance(repo["check_gpg"], bool)
                urls = [k for k in ("baseurl", "metalink", "mirrorlist") if repo.get(k)]
                assert len(urls) == 1, (path.name, repo)
                assert arch in repo[urls[0]], "each arch points at its own tree"
                assert all(k.startswith("https://") for k in repo.get("gpgkeys", []))


def test_repository_files_use_the_images_schema_keys():
    import json

    if not SHARED_REPOS.is_dir():
        pytest.skip(f"osbuild/images repositories not present at {SHARED_REPOS}")
    theirs: set[str] = set()
    for path in SHARED_REPOS.glob("*.json"):
        for repos in json.loads(path.read_text()).values():
            for repo in repos:
                theirs |= set(repo)
    ours: set[str] = set()
    for path in (Path(__file__).resolve().parents[2] / "repositories").glob("*.json"):
        for repos in json.loads(path.read_text()).values():
            for repo in repos:
                ours |= set(repo)
    # `gpgkeys` (key URLs) is the list form of `gpgkey` that osbuild's repository configs accept
    assert ours - theirs <= {"gpgkeys"}


def test_compose_log_lives_in_the_database(store, tmp_path):
    """An API on another machine reads what a worker appends: no file is involved; a tail reads
    only the last bytes; a worker's local osbuild output is shipped in whole lines."""
    c = _new(store)
    store.append_log(c.id, "first line\n")
    store.append_log(c.id, "é" * 10 + "\n")  # 21 bytes
    assert store.read_log(c.id) == "first line\n" + "é" * 10 + "\n"
    assert store.read_log(c.id, tail_bytes=5) == "éé\n"
    assert store.read_log(c.id, tail_bytes=0) == ""
    assert not store.compose_dir(c.id).exists()
    local = tmp_path / "osbuild.log"
    local.write_bytes(b"stage one\nstage tw")
    offset = store.ship_log(c.id, local, 0)
    assert offset == len(b"stage one\n") and store.read_log(c.id).endswith("stage one\n")
    with local.open("ab") as fh:
        fh.write(b"o\x00 done")
    assert store.ship_log(c.id, local, offset, final=True) == local.stat().st_size
    assert store.read_log(c.id).endswith("stage one\nstage two\ufffd done")
    store.mark_running(c.id)
    store.mark_failed(c.id, "boom")
    store.delete(c.id)
    store.append_log(c.id, "late line from a worker\n")  # the compose is gone: nothing happens
    assert store.read_log(c.id) == ""
