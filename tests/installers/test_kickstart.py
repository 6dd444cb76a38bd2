"""Installer customizations: unattended installs, password-less sudo, user kickstarts, modules."""

from __future__ import annotations

import base64

import pytest

import distros
from distros.kickstart import (
    KickstartError,
    KickstartSettings,
    anaconda_modules,
    including,
    kickstart_stages,
    sudoers_post,
)
from distros.ostree import OSTreeOptionsError
from tests.distros.test_schemas import fake_packages, validate_manifest
from tests.installers.conftest import SCHEMA_DIR

COMMIT = {"Ref": "rhel/9/x86_64/edge", "URL": "http://127.0.0.1:9/repo", "Checksum": "ef" * 32}


def written(files):
    return [{"type": "org.osbuild.copy", "files": files}]


def test_unattended_answers_everything_with_blueprint_locale_and_time_zone():
    settings = KickstartSettings.from_blueprint({"installer": {"unattended": True},
                                                 "locale": {"languages": ["de_DE.UTF-8"], "keyboard": "de"},
                                                 "timezone": {"timezone": "Europe/Berlin"}})
    (stage,) = kickstart_stages({"path": "/osbuild.ks"}, settings, written)
    o = stage["options"]
    assert (o["lang"], o["keyboard"], o["timezone"]) == ("de_DE.UTF-8", "de", "Europe/Berlin")
    assert o["zerombr"] is True and o["clearpart"] == {"all": True, "initlabel": True}
    assert o["autopart"] == {"type": "plain", "fstype": "xfs", "nohome": True}
    assert o["rootpw"] == {"lock": True} and o["reboot"] == {"eject": True} and o["display_mode"] == "text"
    defaults = kickstart_stages({"path": "/osbuild.ks"}, KickstartSettings(unattended=True), written)[0]["options"]
    assert (defaults["lang"], defaults["keyboard"], defaults["timezone"]) == ("en_US.UTF-8", "us", "UTC")


def test_sudo_nopasswd_is_a_post_script_including_the_stage_kickstart():
    post = sudoers_post(["%wheel", "alice", "alice"])
    assert post.count("echo -e") == 2 and "restorecon -rvF /etc/sudoers.d\n%end\n" in post
    assert 'echo -e "alice\\tALL=(ALL)\\tNOPASSWD: ALL" > "/etc/sudoers.d/alice"' in post
    stages = kickstart_stages({"path": "/osbuild.ks", "liveimg": {"url": "x"}},
                              KickstartSettings(sudo_nopasswd=["alice"]), written)
    assert stages[0]["options"]["path"] == "/osbuild-base.ks"
    ((path, data),) = stages[1]["files"]
    assert path == "/osbuild.ks" and data.decode().startswith("%include /run/install/repo/osbuild-base.ks\n\n%post")
    assert including("/usr/share/anaconda/interactive-defaults.ks") == (
        "/usr/share/anaconda/interactive-defaults-base.ks", "%include /run/install/repo/interactive-defaults-base.ks\n")


def test_user_kickstart_excludes_generated_answers():
    with pytest.raises(KickstartError, match="unattended options are not compatible"):
        KickstartSettings.from_blueprint({"installer": {"unattended": True, "kickstart": {"contents": "text"}}})
    with pytest.raises(KickstartError, match="users and/or groups are not compatible"):
        KickstartSettings.from_blueprint({"installer": {"kickstart": {"contents": "text"}}, "user": [{"name": "a"}]})


def test_module_choices_are_applied_to_the_defaults():
    assert anaconda_modules([]) == ["org.fedoraproject.Anaconda.Modules." + m for m in ("Network", "Payloads", "Storage")]
    settings = KickstartSettings(enable_modules=["org.fedoraproject.Anaconda.Modules.Timezone"],
                                 disable_modules=["org.fedoraproject.Anaconda.Modules.Network"])
    assert anaconda_modules(["org.fedoraproject.Anaconda.Modules.Users"], settings) == [
        "org.fedoraproject.Anaconda.Modules.Payloads", "org.fedoraproject.Anaconda.Modules.Storage",
        "org.fedoraproject.Anaconda.Modules.Timezone", "org.fedoraproject.Anaconda.Modules.Users"]


def _manifest(distro, name, bp, options=None):
    it = distros.get_distro(distro).image_type("x86_64", name)
    sets = it.package_sets(bp, options)
    manifest = it.manifest(bp, fake_packages("x86_64", list(sets)), [], options, seed=3)
    if SCHEMA_DIR.is_dir():
        validate_manifest(manifest)
    return manifest


def test_edge_installer_with_unattended_sudo_and_modules():
    """Today's edge installer (images' makeKickstartStages, makeKickstartSudoersPost): the
    unattended answers and the sudoers `%post` are options of the one /osbuild.ks; no including file."""
    bp = {"customizations": {"user": [{"name": "alice", "groups": ["wheel"]}],
                             "installer": {"unattended": True, "sudo-nopasswd": ["alice"],
                                           "modules": {"disable": ["org.fedoraproject.Anaconda.Modules.Users"]}}}}
    options = {"ostree": {"url": COMMIT["URL"]}, "ostree_commits": {"bootiso-tree": [COMMIT]}}
    manifest = _manifest("centos-9", "edge-installer", bp, options)
    tree = next(p for p in manifest["pipelines"] if p["name"] == "bootiso-tree")["stages"]
    types = [s["type"] for s in tree]
    assert types.count("org.osbuild.kickstart") == 1 and "org.osbuild.copy" not in types[types.index("org.osbuild.kickstart"):]
    ks = tree[types.index("org.osbuild.kickstart")]["options"]
    assert ks["path"] == "/osbuild.ks" and ks["zerombr"] is True
    assert ks["ostree"] == {"osname": "rhel-edge", "remote": "", "url": "file:///run/install/repo/ostree/repo",
                            "ref": COMMIT["Ref"], "gpg": False}
    assert ks["%post"] == [{"commands": ['echo -e "alice\\tALL=(ALL)\\tNOPASSWD: ALL" > "/etc/sudoers.d/alice"',
                                         "chmod 0440 /etc/sudoers.d/alice", "restorecon -rvF /etc/sudoers.d"]}]
    anaconda = next(p for p in manifest["pipelines"] if p["name"] == "anaconda-tree")["stages"]
    modules = next(s for s in anaconda if s["type"] == "org.osbuild.anaconda")["options"]["activatable-modules"]
    assert "org.fedoraproject.Anaconda.Modules.Users" not in modules


def test_fedora_39_image_installer_user_kickstart_goes_to_interactive_defaults():
    """osbuild-composer's July-2023 Fedora image installer, kept for Fedora 37-39."""
    bp = {"customizations": {"installer": {"kickstart": {"contents": "text --non-interactive\n"}}}}
    manifest = _manifest("fedora-39", "image-installer", bp)
    anaconda = next(p for p in manifest["pipelines"] if p["name"] == "anaconda-tree")["stages"]
    ks = next(s for s in anaconda if s["type"] == "org.osbuild.kickstart")["options"]
    assert ks["path"] == "/usr/share/anaconda/interactive-defaults-base.ks"
    copy = anaconda[-1]
    assert copy["type"] == "org.osbuild.copy"
    assert copy["options"]["paths"][0]["to"] == "tree:///usr/share/anaconda/interactive-defaults.ks"


def test_today_image_installer_user_kickstart_is_the_iso_kickstart():
    """Today's minimal/image installer (images' AnacondaTarInstaller, tarPayloadStages,
    makeKickstartStages, kickstart IncludeRaw): the user's kickstart is /osbuild.ks on the ISO,
    `%include`-ing ours renamed /osbuild-base.ks (images writes that kickstart stage twice), and
    the ISO boots with `inst.ks=` pointing at it."""
    user = "text --non-interactive\n"
    bp = {"customizations": {"installer": {"kickstart": {"contents": user}}}}
    for distro, name in [("fedora-40", "image-installer"), ("rhel-9.6", "image-installer")]:
        manifest = _manifest(distro, name, bp)
        anaconda = next(p for p in manifest["pipelines"] if p["name"] == "anaconda-tree")["stages"]
        assert not [s for s in anaconda if s["type"] == "org.osbuild.kickstart"]
        tree = next(p for p in manifest["pipelines"] if p["name"] == "bootiso-tree")["stages"]
        kss = [s for s in tree if s["type"] == "org.osbuild.kickstart"]
        assert len(kss) == 2 and kss[0] == kss[1]
        assert kss[0]["options"] == {"path": "/osbuild-base.ks",
                                     "liveimg": {"url": "file:///run/install/repo/liveimg.tar.gz"}}
        last = max(i for i, st in enumerate(tree) if st["type"] == "org.osbuild.kickstart")
        copy = tree[last + 1]
        assert copy["options"]["paths"][0]["to"] == "tree:///osbuild.ks"
        checksum = copy["options"]["paths"][0]["from"].rsplit(":", 1)[1]
        data = base64.b64decode(manifest["sources"]["org.osbuild.inline"]["items"][f"sha256:{checksum}"]["data"])
        assert data.decode() == "%include /run/install/repo/osbuild-base.ks\n" + user
        efi = next(p for p in manifest["pipelines"] if p["name"] == "efiboot-tree")["stages"][0]["options"]
        assert efi["kernel"]["opts"][1].endswith(":/osbuild.ks")


def test_conflicting_installer_customizations_are_refused_as_osbuild_composer_does():
    it = distros.get_distro("centos-9").image_type("x86_64", "image-installer")
    bp = {"customizations": {"installer": {"unattended": True, "kickstart": {"contents": "x"}}}}
    with pytest.raises(OSTreeOptionsError, match="not compatible with user-supplied kickstart content") as err:
        it.check(bp)
    assert err.value.api_id == "ManifestCreationFailed"
    edge = distros.get_distro("centos-9").image_type("x86_64", "edge-installer")
    with pytest.raises(OSTreeOptionsError, match=r"allowed: User, Group, Installer, Locale, Timezone"):
        edge.check({"customizations": {"hostname": "h"}}, {"ostree": {"url": COMMIT["URL"]}})
