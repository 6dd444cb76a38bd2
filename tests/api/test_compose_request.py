"""POST /compose's request preparation as plain code: no server, a real store on disk."""

from __future__ import annotations

import pytest

from app import compose_request
from core.config import load
from core.errors import WeldrError
from core.store.blueprints import BlueprintStore
from tests.databases import database_for


@pytest.fixture
def env(tmp_path):
    config = load(environ={}, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache",
                  default_distro="fedora-43")
    db = database_for(config.state_dir)
    BlueprintStore(db).push({"name": "web", "version": "0.0.1",
                             "packages": [{"name": "tmux", "version": "*"}]})
    BlueprintStore(db).push({"name": "etc", "version": "0.0.1", "customizations": {
        "filesystem": [{"mountpoint": "/etc", "minsize": 1 << 30}]}})
    return config, db


def prepare(env, body, **kw):
    config, db = env
    return compose_request.prepare(body, config=config, db=db, api_version=kw.get("api_version", 1),
                                   test_mode=kw.get("test_mode", 0))


def test_alias_resolves_to_the_type_with_its_file_and_size(env):
    p = prepare(env, {"blueprint_name": "web", "compose_type": "qcow2", "size": 5})
    assert (p.compose_type, p.distro, p.image_filename, p.warnings) == \
        ("generic-qcow2", "fedora-43", "disk.qcow2", [])
    assert p.size > 5 and p.options == {"requested_size": 5}
    assert p.store_arguments()["compose_type"] == "generic-qcow2"


@pytest.mark.parametrize("body,error", [
    ({"blueprint_name": "web", "compose_type": "qcow2", "size": -1},
     ("ComposeError", "Invalid size: -1")),
    ({"blueprint_name": "web", "compose_type": "qcow2", "ostree": ["ref"]},
     ("ComposeError", "Invalid ostree options")),
    ({"blueprint_name": "nope", "compose_type": "qcow2"},
     ("UnknownBlueprint", "Unknown blueprint name: nope")),
    ({"blueprint_name": "web", "compose_type": "punchcard"},
     ("ComposeError", 'Failed to get compose type "punchcard": invalid image type: punchcard')),
    ({"blueprint_name": "etc", "compose_type": "server-qcow2"},
     ("ManifestCreationFailed", "failed to initialize osbuild manifest: The following custom "
                                "mountpoints are not supported ['/etc']")),
    ({"blueprint_name": "web", "compose_type": "server-qcow2", "upload": "aws"},
     ("UploadError", "'upload' must be an object")),
])
def test_refusals_are_weldr_errors(env, body, error):
    with pytest.raises(WeldrError) as info:
        prepare(env, body)
    assert (info.value.id, info.value.msg) == error


def test_upload_is_ignored_on_v0(env):
    p = prepare(env, {"blueprint_name": "web", "compose_type": "server-qcow2", "upload": "aws"},
                api_version=0)
    assert p.upload_requests == []
