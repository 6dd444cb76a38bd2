"""The ostree pipeline kinds and option checks on hand-made inputs (no ../shared needed)."""

import hashlib

import pytest

from distros import ostree as O

COMMIT = O.CommitSpec(ref="acme/1/x86_64/edge", url="http://127.0.0.1:1/repo", checksum="ab" * 32)


def test_options_from_request_accept_weldr_keys_and_empty_values():
    opts = O.OSTreeOptions.from_request({"ref": "a/b", "parent": "", "url": "http://x/repo", "rhsm": True})
    assert (opts.ref, opts.parent, opts.url, opts.rhsm) == ("a/b", "", "http://x/repo", True)
    assert O.OSTreeOptions.from_request(None).is_empty()


def test_parent_commit_defaults_to_the_ref_being_built_when_only_a_url_is_given():
    source, ref = O.parent_commit_source(O.OSTreeOptions(url="http://x/repo"), "acme/1/x86_64/edge")
    assert ref == "acme/1/x86_64/edge"
    assert source == O.SourceSpec(url="http://x/repo", ref="acme/1/x86_64/edge")
    source, ref = O.parent_commit_source(O.OSTreeOptions(ref="mine", parent="theirs", url="u", rhsm=True), "d")
    assert (ref, source) == ("mine", O.SourceSpec(url="u", ref="theirs", rhsm=True))
    assert O.parent_commit_source(O.OSTreeOptions(ref="mine"), "d") == (None, "mine")


def test_payload_commit_requires_a_url():
    with pytest.raises(O.OSTreeOptionsError, match="edge-installer: ostree commit URL required"):
        O.payload_commit_source(O.OSTreeOptions(ref="x"), "d", "edge-installer")
    assert O.payload_commit_source(O.OSTreeOptions(url="u"), "d", "t") == O.SourceSpec(url="u", ref="d")


RAW = O.RequestRules(allowed=("Ignition", "Kernel", "User", "Group"), requires_url=True, kernel_append=True)
ISO = O.RequestRules(allowed=("User", "Group"))
SIMPLIFIED = O.RequestRules(allowed=("InstallationDevice", "FDO", "Ignition", "Kernel", "User", "Group"),
                            kernel_append=True, installation_device=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(type_name="edge-commit", rpm_ostree=True, boot_iso=False, options=O.OSTreeOptions(parent="p")),
         "ostree parent ref specified, but no URL to retrieve it"),
        (dict(type_name="edge-installer", rpm_ostree=True, boot_iso=True, options=O.OSTreeOptions()),
         'boot ISO image type "edge-installer" requires specifying a URL'),
        (dict(type_name="edge-raw-image", rpm_ostree=True, boot_iso=False, options=None, rules=RAW),
         '"edge-raw-image" images require specifying a URL'),
        (dict(type_name="edge-installer", rpm_ostree=True, boot_iso=True, options=O.OSTreeOptions(url="u"),
              customizations={"hostname": "h"}, rules=ISO),
         r"unsupported blueprint customizations found for boot ISO image type \"edge-installer\": \(allowed: User, Group\)"),
        (dict(type_name="edge-simplified-installer", rpm_ostree=True, boot_iso=True, options=O.OSTreeOptions(url="u"),
              customizations={}, rules=SIMPLIFIED),
         "requires specifying an installation device"),
        (dict(type_name="edge-simplified-installer", rpm_ostree=True, boot_iso=True, options=O.OSTreeOptions(url="u"),
              customizations={"installation_device": "/dev/vda", "fdo": {"manufacturing_server_url": "http://m"}},
              rules=SIMPLIFIED),
         r"requires specifying one of \[FDO.DiunPubKeyHash"),
        (dict(type_name="edge-simplified-installer", rpm_ostree=True, boot_iso=True, options=O.OSTreeOptions(url="u"),
              customizations={"installation_device": "/dev/vda", "ignition": {"firstboot": {"url": ""}}},
              rules=SIMPLIFIED),
         "ignition.firstboot requires a provisioning url"),
        (dict(type_name="edge-commit", rpm_ostree=True, boot_iso=False, options=None,
              customizations={"kernel": {"append": "quiet"}}),
         "kernel boot parameter customizations are not supported for ostree types"),
        (dict(type_name="edge-commit", rpm_ostree=True, boot_iso=False, options=None,
              customizations={"filesystem": [{"mountpoint": "/var", "size": 1}]}),
         "Custom mountpoints are not supported for ostree types"),
        (dict(type_name="live-installer", rpm_ostree=False, boot_iso=True, options=None,
              customizations={"user": [{"name": "u"}]}, rules=O.RequestRules(allowed=())),
         r'boot ISO image type "live-installer": \(allowed: None\)'),
        (dict(type_name="edge-raw-image", rpm_ostree=True, boot_iso=False, options=O.OSTreeOptions(url="u"),
              has_containers=True, distro_name="centos-9", rules=RAW),
         "embedding containers is not supported for edge-raw-image on centos-9"),
    ],
)
def test_check_options_rejects_what_osbuild_composer_rejects(kwargs, message):
    with pytest.raises(O.OSTreeOptionsError, match=message) as err:
        O.check_options(**kwargs)
    assert err.value.api_id == "ManifestCreationFailed"
    assert err.value.api_message.startswith("failed to initialize osbuild manifest: ")


def test_check_options_warns_about_users_on_edge_commits_and_accepts_valid_requests():
    warnings = O.check_options(type_name="edge-commit", rpm_ostree=True, boot_iso=False, options=None,
                               customizations={"user": [{"name": "u"}]},
                               rules=O.RequestRules(deprecated_accounts=True, containers=True))
    assert len(warnings) == 1 and "user customizations" in warnings[0]
    assert O.check_options(type_name="edge-simplified-installer", rpm_ostree=True, boot_iso=True,
                           options=O.OSTreeOptions(url="u"), rules=SIMPLIFIED,
                           customizations={"installation_device": "/dev/vda", "kernel": {"append": "quiet"},
                                           "fdo": {"manufacturing_server_url": "http://m", "diun_pub_key_insecure": "true"}}) == []
    assert O.RequestRules.from_data({"allowed": ["User"], "kernel_append": True}) == O.RequestRules(
        allowed=("User",), kernel_append=True)


def test_test_mode_commit_checksum_is_sha256_of_url_and_ref():
    commit = O.test_commit(O.SourceSpec(url="http://a/repo", ref="r", rhsm=True))
    assert commit.checksum == hashlib.sha256(b"http://a/repo" + b"r").hexdigest()
    assert commit.secrets == O.RHSM_SECRETS
    assert O.CommitSpec.from_dict(commit.to_dict()) == commit


def test_ostree_sources_carry_rhsm_secrets_and_content_url():
    c = O.CommitSpec(ref="r", url="http://u", checksum="c1", content_url="http://cu", secrets=O.RHSM_SECRETS)
    assert O.ostree_sources([c, COMMIT]) == {
        "org.osbuild.ostree": {
            "items": {
                "c1": {"remote": {"url": "http://u", "contenturl": "http://cu", "secrets": {"name": O.RHSM_SECRETS}}},
                COMMIT.checksum: {"remote": {"url": COMMIT.url}},
            }
        }
    }
    assert O.ostree_sources([]) == {}


def test_commit_pipeline_names_the_parent_by_checksum():
    p = O.commit_pipeline(ref="a/b", os_version="1", parent=COMMIT)
    assert [s["type"] for s in p["stages"]] == ["org.osbuild.ostree.init", "org.osbuild.ostree.commit"]
    assert p["stages"][1]["options"] == {"ref": "a/b", "os_version": "1", "parent": COMMIT.checksum}
    assert p["stages"][1]["inputs"]["tree"]["references"] == ["name:os"]
    assert O.passwd_stage(COMMIT)["inputs"]["commits"] == {
        "type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.source", "references": [COMMIT.checksum]}


def test_commit_server_tree_serves_the_commit_of_the_commit_pipeline():
    rpm = {"type": "org.osbuild.rpm"}
    p = O.commit_server_tree_pipeline(rpm_stages=[rpm], language="en_US", ref="a/b")
    assert p["stages"][0] is rpm
    pull = p["stages"][3]
    assert pull["options"] == {"repo": "/usr/share/nginx/html/repo"}
    assert pull["inputs"]["commits"]["references"] == {"name:ostree-commit": {"ref": "a/b"}}
    c = O.commit_server_container_pipeline(arch="aarch64", filename="c.tar")
    assert c["stages"][0]["options"]["architecture"] == "aarch64"


def _deployment(**kw):
    base = dict(os_name="acme", remote_name="acme-edge", kernel_opts=["rw"], fstab_options={"filesystems": []},
                grub2_options={"root_fs_uuid": "r", "legacy": "i386-pc"})
    base.update(kw)
    return O.Deployment(**base)


def test_deployment_locks_root_unless_a_root_user_is_given_and_mounts_the_deployment():
    p = O.deployment_pipeline(COMMIT, _deployment())
    types = [s["type"] for s in p["stages"]]
    assert types[:5] == ["org.osbuild.ostree.init-fs", "org.osbuild.ostree.pull", "org.osbuild.ostree.os-init",
                         "org.osbuild.mkdir", "org.osbuild.ostree.deploy"]
    assert types[-1] == "org.osbuild.ostree.selinux"
    users = [s for s in p["stages"] if s["type"] == "org.osbuild.users"]
    assert users[0]["options"] == {"users": {"root": {"password": "!locked"}}}
    assert users[0]["mounts"][0]["options"]["deployment"] == {"osname": "acme", "ref": COMMIT.ref, "serial": 0}
    # the remote defaults to the URL the commit came from
    remotes = next(s for s in p["stages"] if s["type"] == "org.osbuild.ostree.remotes")
    assert remotes["options"]["remotes"] == [{"name": "acme-edge", "url": COMMIT.url}]
    assert "org.osbuild.ignition" not in types

    p = O.deployment_pipeline(COMMIT, _deployment(has_root_user=True, users_options={"users": {"root": {"password": "$6$x"}}},
                                                  ignition=True, enabled_services=["a.service"]))
    users = [s for s in p["stages"] if s["type"] == "org.osbuild.users"]
    assert [u["options"] for u in users] == [{"users": {"root": {"password": "$6$x"}}}]
    deploy = next(s for s in p["stages"] if s["type"] == "org.osbuild.ostree.deploy")
    assert deploy["options"]["kernel_opts"] == ["rw", "coreos.no_persist_ip", "ignition.platform.id=metal", "$ignition_firstboot"]
    grub = next(s for s in p["stages"] if s["type"] == "org.osbuild.grub2")["options"]
    assert grub["kernel_opts"] == " ".join(deploy["options"]["kernel_opts"]) and grub["ignition"] is True
    assert list(grub)[:3] == ["root_fs_uuid", "kernel_opts", "legacy"]
    systemd = next(s for s in p["stages"] if s["type"] == "org.osbuild.systemd")
    assert systemd["options"] == {"enabled_services": ["a.service"]} and systemd["mounts"]
