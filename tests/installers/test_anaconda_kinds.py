"""The installer ISO pipeline kinds on hand-made inputs (no ../shared needed)."""

import pytest

from distros import anaconda as A
from distros.ostree import CommitSpec

PACKAGES = [
    {"name": "bash", "version": "5.1", "release": "1.acme1", "arch": "x86_64"},
    {"name": "kernel", "version": "6.1.0", "release": "3.acme1", "arch": "x86_64"},
]


def installer(**kw):
    base = dict(arch="x86_64", product="Acme OS", os_version="1", iso_label="Acme-1-BaseOS-x86_64",
                uefi_vendor="acme", release="Acme OS 1")
    base.update(kw)
    return A.Installer(**base)


def test_kernel_version_names_the_boot_files():
    assert A.kernel_version(PACKAGES) == "6.1.0-3.acme1.x86_64"
    with pytest.raises(A.InstallerError):
        A.kernel_version(PACKAGES, "kernel-rt")


def test_iso_kernel_options_point_at_stage2_and_the_kickstart_on_the_iso():
    inst = installer(additional_kernel_opts=["console=ttyS0"])
    assert inst.kernel_opts() == [
        "inst.stage2=hd:LABEL=Acme-1-BaseOS-x86_64",
        "inst.ks=hd:LABEL=Acme-1-BaseOS-x86_64:/osbuild.ks",
        "console=ttyS0",
    ]
    assert installer(kickstart_in_iso_root=False).kernel_opts() == ["inst.stage2=hd:LABEL=Acme-1-BaseOS-x86_64"]
    assert installer(live=True).kernel_opts() == ["root=live:CDLABEL=Acme-1-BaseOS-x86_64", "rd.live.image", "quiet", "rhgb"]
    assert installer(only_additional_kernel_opts=True, additional_kernel_opts=["a"]).kernel_opts() == ["a"]


def test_payload_anaconda_tree_has_the_install_user_modules_and_dracut():
    inst = installer(additional_anaconda_modules=[A.USERS_MODULE], additional_dracut_modules=["nvdimm"],
                     additional_drivers=["cuse"])
    rpm = {"type": "org.osbuild.rpm"}
    p = A.anaconda_tree_pipeline(inst, rpm_stages=[rpm], kernel_ver="K")
    types = [s["type"] for s in p["stages"]]
    assert types == ["org.osbuild.rpm", "org.osbuild.buildstamp", "org.osbuild.locale", "org.osbuild.users",
                     "org.osbuild.anaconda", "org.osbuild.lorax-script", "org.osbuild.dracut",
                     "org.osbuild.selinux.config"]
    assert p["stages"][3]["options"]["users"]["install"]["shell"] == "/usr/libexec/anaconda/run-anaconda"
    assert p["stages"][4]["options"]["kickstart-modules"][-1] == A.USERS_MODULE
    dracut = p["stages"][6]["options"]
    assert dracut["kernel"] == ["K"] and dracut["add_drivers"] == ["cuse"]
    # biosdevname on x86_64, then the image type's modules, then the installer's own
    i = dracut["modules"].index("biosdevname")
    assert dracut["modules"][i + 1] == "nvdimm" and dracut["modules"][-9:] == A.INSTALLER_DRACUT_MODULES


def test_interactive_defaults_kickstart_when_the_kickstart_is_not_on_the_iso_root():
    users = {"users": {"alice": {"groups": ["wheel"]}}}
    p = A.anaconda_tree_pipeline(installer(kickstart_in_iso_root=False, users_options=users),
                                 rpm_stages=[{"type": "org.osbuild.rpm"}], kernel_ver="K")
    ks = p["stages"][-1]
    assert ks["type"] == "org.osbuild.kickstart"
    assert ks["options"] == {"path": "/usr/share/anaconda/interactive-defaults.ks",
                             "liveimg": {"url": "file:///run/install/repo/liveimg.tar.gz"},
                             "users": users["users"]}


def test_live_anaconda_tree_enables_livesys_and_has_no_anaconda_stage():
    aarch = installer(live=True, arch="aarch64")
    p = A.anaconda_tree_pipeline(aarch, rpm_stages=[{"type": "org.osbuild.rpm"}], kernel_ver="K")
    types = [s["type"] for s in p["stages"]]
    assert "org.osbuild.anaconda" not in types and "org.osbuild.systemd" in types
    assert "biosdevname" not in p["stages"][types.index("org.osbuild.dracut")]["options"]["modules"]


def test_bootiso_tree_with_ostree_payload_pulls_the_commit_and_writes_the_kickstart():
    commit = CommitSpec(ref="acme/1/x86_64/edge", url="http://127.0.0.1:1/repo", checksum="cd" * 32)
    p = A.bootiso_tree_pipeline(installer(os_name="acme", groups_options={"groups": {"g": {"gid": 5}}}),
                                kernel_ver="K", efiboot_volid="abcd1234", commit=commit)
    types = [s["type"] for s in p["stages"]]
    assert types[-4:] == ["org.osbuild.ostree.init", "org.osbuild.ostree.pull", "org.osbuild.kickstart",
                          "org.osbuild.discinfo"]
    ks = p["stages"][-2]["options"]
    assert ks["ostree"] == {"osname": "acme", "url": "file:///run/install/repo/ostree/repo",
                            "ref": "acme/1/x86_64/edge", "gpg": False}
    assert ks["groups"] == {"g": {"gid": 5}}
    fat = next(s for s in p["stages"] if s["type"] == "org.osbuild.mkfs.fat")
    assert fat["options"] == {"volid": "abcd1234"}
    assert fat["devices"]["device"]["options"] == {"filename": "images/efiboot.img", "size": 40960, "lock": True}


def test_bootiso_tree_needs_exactly_one_payload():
    with pytest.raises(A.InstallerError):
        A.bootiso_tree_pipeline(installer(), kernel_ver="K", efiboot_volid="0")
    with pytest.raises(A.InstallerError):
        A.bootiso_tree_pipeline(installer(), kernel_ver="K", efiboot_volid="0", os_tree="os",
                                commit=CommitSpec(ref="r", url="u", checksum="c"))


def test_aarch64_iso_has_no_isolinux_and_arm_squashfs_filter():
    inst = installer(arch="aarch64", iso_label="Acme-1-BaseOS-aarch64")
    tree = A.bootiso_tree_pipeline(inst, kernel_ver="K", efiboot_volid="0", os_tree="os")
    types = [s["type"] for s in tree["stages"]]
    assert "org.osbuild.isolinux" not in types
    squash = next(s for s in tree["stages"] if s["type"] == "org.osbuild.squashfs")
    assert squash["options"]["compression"] == {"method": "xz", "options": {"bcj": "arm"}}
    iso = A.bootiso_pipeline(inst, filename="x.iso")["stages"][0]["options"]
    assert iso == {"filename": "x.iso", "volid": "Acme-1-BaseOS-aarch64", "sysid": "LINUX",
                   "efi": "images/efiboot.img", "isolevel": 3}
    assert A.efiboot_tree_pipeline(inst)["stages"][0]["options"]["architectures"] == ["AA64"]
    with pytest.raises(A.InstallerError):
        A.efiboot_tree_pipeline(installer(arch="s390x"))


def test_rootfs_image_is_an_ext4_file_filled_from_the_anaconda_tree():
    p = A.rootfs_image_pipeline(size=1 << 30)
    assert p["stages"][1]["options"] == {"filename": "LiveOS/rootfs.img", "size": str(1 << 30)}
    copy = p["stages"][3]
    assert copy["inputs"]["tree"]["references"] == ["name:anaconda-tree"]
    assert copy["mounts"][0]["type"] == "org.osbuild.ext4"
