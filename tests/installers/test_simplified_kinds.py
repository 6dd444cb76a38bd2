"""Simplified installer pipelines (coreos-installer ISO): FDO, embedded ignition, inline data."""

import base64
import hashlib

import pytest

from distros import anaconda as A
from distros import simplified as S
from distros.ostree import OSTreeOptionsError


def make(fdo=None, ignition=None):
    inst = A.Installer(arch="x86_64", product="Acme OS", os_version="1", iso_label="Acme-1-BaseOS-x86_64",
                       uefi_vendor="acme", release="Acme OS 1", variant="edge")
    return S.SimplifiedInstaller(installer=inst, installation_device="/dev/vda", fdo=fdo, ignition_config=ignition,
                                 additional_dracut_modules=["prefixdevname"])


def test_kernel_options_name_the_device_the_image_and_fdo():
    fdo = S.FDO.from_blueprint({"manufacturing_server_url": "http://127.0.0.1:8080",
                                "diun_pub_key_root_certs": "CERT"})
    si = make(fdo=fdo)
    assert si.kernel_opts() == [
        "rd.neednet=1", "coreos.inst.crypt_root=1", "coreos.inst.isoroot=Acme-1-BaseOS-x86_64",
        "coreos.inst.install_dev=/dev/vda", "coreos.inst.image_file=/run/media/iso/image.raw.xz",
        "coreos.inst.insecure", "fdo.manufacturing_server_url=http://127.0.0.1:8080",
        "fdo.diun_pub_key_root_certs=/fdo_diun_pub_key_root_certs.pem",
    ]
    efi = A.efiboot_tree_pipeline(S.coi_installer(si))["stages"][0]["options"]["kernel"]["opts"]
    assert efi == si.kernel_opts()
    assert S.FDO.from_blueprint(None) is None


def test_fdo_root_certs_go_into_the_initramfs_from_an_inline_source():
    si = make(fdo=S.FDO(manufacturing_server_url="http://m", diun_pub_key_root_certs="CERT"))
    p = S.coi_tree_pipeline(si, rpm_stages=[{"type": "org.osbuild.rpm"}], kernel_ver="K")
    types = [s["type"] for s in p["stages"]]
    assert types == ["org.osbuild.rpm", "org.osbuild.buildstamp", "org.osbuild.locale", "org.osbuild.fdo",
                     "org.osbuild.dracut"]
    checksum = "sha256:" + hashlib.sha256(b"CERT").hexdigest()
    assert p["stages"][3]["inputs"]["rootcerts"]["references"] == [checksum]
    dracut = p["stages"][4]["options"]
    assert dracut["install"] == [S.FDO_ROOT_CERTS] and dracut["modules"][-3:] == ["prefixdevname", "coreos-installer", "fdo"]
    assert S.inline_sources(si.inline_data()) == {
        "org.osbuild.inline": {"items": {checksum: {"encoding": "base64", "data": base64.b64encode(b"CERT").decode()}}}
    }


def test_embedded_ignition_is_decoded_and_copied_to_the_iso_root():
    config = '{"ignition": {"version": "3.3.0"}}'
    decoded = S.embedded_ignition({"embedded": {"config": base64.b64encode(config.encode()).decode()}})
    assert decoded == config
    with pytest.raises(OSTreeOptionsError, match="can't decode Ignition config"):
        S.embedded_ignition({"embedded": {"config": "not base64!"}})
    assert S.firstboot_ignition_url({"firstboot": {"url": "http://p"}}) == "http://p"
    p = S.coi_bootiso_tree_pipeline(make(ignition=decoded), kernel_ver="K", efiboot_volid="12345678")
    types = [s["type"] for s in p["stages"]]
    assert types[:3] == ["org.osbuild.copy", "org.osbuild.copy", "org.osbuild.mkdir"]
    assert p["stages"][0]["inputs"]["file"]["references"] == {"name:xz": {"file": "image.raw.xz"}}
    assert p["stages"][1]["options"]["paths"][0]["to"] == "tree:///ignition_config"
    assert "org.osbuild.isolinux" in types and types[-1] == "org.osbuild.copy"
    assert p["stages"][-1]["options"]["paths"] == [{"from": "input://tree/EFI", "to": "tree:///"}]
