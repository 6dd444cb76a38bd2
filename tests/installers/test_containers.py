"""Blueprint container images in the OS tree: skopeo sources and stages, ostree storage."""

import distros
from distros.containers import ContainerSpec, blueprint_containers, container_sources, skopeo_stages
from tests.distros.test_schemas import fake_packages, validate_manifest
from tests.installers.conftest import SCHEMA_DIR

IMAGE_ID = "sha256:" + "1" * 64
DIGEST = "sha256:" + "2" * 64
LIST = "sha256:" + "3" * 64
SPEC = {"Source": "registry.example.com/app:1", "Digest": DIGEST, "ImageID": IMAGE_ID, "LocalName": "app:1",
        "TLSVerify": False, "ListDigest": LIST}


def test_specs_become_skopeo_and_index_sources():
    spec = ContainerSpec.from_dict(SPEC)
    assert container_sources([spec]) == {
        "org.osbuild.skopeo": {IMAGE_ID: {"image": {"name": "registry.example.com/app:1", "digest": DIGEST,
                                                    "tls-verify": False}}},
        "org.osbuild.skopeo-index": {LIST: {"image": {"name": "registry.example.com/app:1", "tls-verify": False}}},
    }
    assert blueprint_containers({"containers": [{"source": "a"}, {"name": "no source"}]}) == [{"source": "a"}]


def test_ostree_trees_store_images_under_usr_share():
    stages = skopeo_stages([ContainerSpec.from_dict(SPEC)], ostree=True)
    assert [s["type"] for s in stages] == ["org.osbuild.containers.storage.conf", "org.osbuild.skopeo"]
    assert stages[1]["options"]["destination"] == {"type": "containers-storage",
                                                   "storage-path": "/usr/share/containers/storage"}
    assert stages[1]["inputs"]["images"]["references"] == {IMAGE_ID: {"name": "app:1"}}
    assert stages[1]["inputs"]["manifest-lists"]["references"] == [LIST]
    plain = skopeo_stages([ContainerSpec.from_dict(SPEC)], ostree=False)
    assert [s["type"] for s in plain] == ["org.osbuild.skopeo"]
    assert skopeo_stages([], ostree=True) == []


def test_edge_commit_manifest_embeds_resolved_containers():
    it = distros.get_distro("centos-9").image_type("x86_64", "edge-commit")
    bp = {"containers": [{"source": "registry.example.com/app:1"}]}
    options = {"containers": {"os": [SPEC]}}
    sets = it.package_sets(bp, options)
    assert "skopeo" in sets["build"][0]["include"]
    manifest = it.manifest(bp, fake_packages("x86_64", list(sets)), [], options, seed=1)
    os_stages = [s["type"] for s in manifest["pipelines"][1]["stages"]]
    assert os_stages[:4] == ["org.osbuild.rpm", "org.osbuild.fix-bls", "org.osbuild.containers.storage.conf",
                             "org.osbuild.skopeo"]
    assert IMAGE_ID in manifest["sources"]["org.osbuild.skopeo"]["items"]
    if SCHEMA_DIR.is_dir():
        validate_manifest(manifest)
