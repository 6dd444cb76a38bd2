"""The `vmware` target against `VCenterDouble`, a local HTTPS double of the vCenter JSON endpoints
it calls (no vCenter or ESXi can run here): session, inventory lookups, the OVF import lease, the
lease's disk upload and MarkAsTemplate. The uploader's real HTTP code path runs against it."""

from __future__ import annotations

import io
import os
import struct
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent
from tests.uploaders.doubles import VCenterDouble
from uploaders import service
from uploaders.service import run_upload

PASSWORD = "vsphere-password-for-tests"
INVENTORY = {"datacenter": "DC1", "cluster": "Cluster1", "datastore": "datastore1"}


@pytest.fixture
def vcenter(tls_cert, monkeypatch) -> Iterator[VCenterDouble]:
    from uploaders.vmware import VMwareUploader

    monkeypatch.setattr(VMwareUploader, "poll_seconds", 0.05)
    double = VCenterDouble(tls_cert, "composer@vsphere.local", PASSWORD, INVENTORY)
    yield double
    double.stop()


def settings(vcenter: VCenterDouble, **extra: Any) -> dict[str, Any]:
    return {"host": f"127.0.0.1:{vcenter.port}", "username": "composer@vsphere.local",
            "password": PASSWORD, "tls_verify": False, **{k: v for k, v in INVENTORY.items()}, **extra}


def stream_vmdk(size: int, capacity: int = 10 << 30) -> bytes:
    """Bytes shaped like a stream-optimized VMDK: the KDMV header with the capacity in sectors."""
    header = b"KDMV" + struct.pack("<IIQ", 3, 0x30001, capacity // 512)
    return header + os.urandom(size - len(header))


def test_vmdk_imported_and_marked_as_template(env, vcenter) -> None:
    upload_id, path = env.upload_for("vmware", settings(vcenter), "vmdk", "disk.vmdk", image_name="rhel-vm")
    data = stream_vmdk(12 * MiB)
    path.write_bytes(data)
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    assert result == {"template": "rhel-vm", "vm": "vm-41", "datacenter": "DC1", "cluster": "Cluster1",
                      "datastore": "datastore1"}
    assert vcenter.vms["vm-41"] == {"name": "rhel-vm", "folder": "group-v4", "template": True}
    assert vcenter.disks == {"lease-1/disk-0.vmdk": data}
    assert vcenter.sessions == set()  # logged out
    spec = vcenter.called("POST", r"/sdk/vim25/[0-9.]+/OvfManager/OvfManager/CreateImportSpec")[0]
    assert b'ovf:capacity=\\"10737418240\\"' in spec  # the capacity read from the VMDK header
    assert PASSWORD not in service.upload_store.read_log(env.db, upload_id)
    assert env.store.upload(upload_id).progress == 1.0


def test_ova_brings_its_own_descriptor(env, vcenter) -> None:
    upload_id, path = env.upload_for("vmware", settings(vcenter), "ova", "image.ova", image_name="rhel-ova")
    disk = stream_vmdk(2 * MiB)
    ovf = (b'<?xml version="1.0"?><Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" '
           b'xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"><References>'
           b'<File ovf:id="file1" ovf:href="image.vmdk"/></References></Envelope>')
    with tarfile.open(path, "w") as tar:
        for name, content in (("image.ovf", ovf), ("image.vmdk", disk)):
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    assert vcenter.disks == {"lease-1/disk-0.vmdk": disk}
    assert vcenter.vms["vm-41"]["template"] is True


@pytest.mark.parametrize("change,message", [
    ({"password": "wrong-password-value"}, "vCenter 127.0.0.1:{port}: authentication failed"),
    ({"datacenter": "DC9"}, "datacenter 'DC9' does not exist"),
    ({"cluster": "Nope"}, "cluster 'Nope' does not exist"),
    ({"datastore": "ds-missing"}, "datastore 'ds-missing' does not exist"),
    ({"tls_verify": True}, "vCenter 127.0.0.1:{port}: its TLS certificate is not trusted"),
])
def test_failures_name_the_part(env, vcenter, change: dict, message: str) -> None:
    upload_id, path = env.upload_for("vmware", settings(vcenter, **change), "vmdk", "disk.vmdk")
    path.write_bytes(stream_vmdk(64 * 1024))
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith(message.format(port=vcenter.port)), error
    assert "wrong-password-value" not in error and vcenter.vms == {}


def test_not_a_vmdk_is_refused_before_vcenter(env, vcenter) -> None:
    upload_id, path = env.upload_for("vmware", settings(vcenter), "vmdk", "disk.vmdk")
    path.write_bytes(os.urandom(4096))
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert "not a sparse or stream-optimized VMDK" in env.store.upload(upload_id).error
    assert vcenter.calls == []


def test_cancel_aborts_the_lease(env, vcenter, proxy_to, tmp_path: Path) -> None:
    """Cancelled mid-disk through a slow relay: the lease is aborted and no VM is left."""
    proxy = proxy_to(vcenter.port, rate=4 * MiB)
    upload_id, path = env.upload_for("vmware", settings(vcenter, host=f"127.0.0.1:{proxy.port}"),
                                     "vmdk", "disk.vmdk")
    path.write_bytes(stream_vmdk(48 * MiB))
    canceller = cancel_once_sent(env.store, upload_id, proxy, sent=2 * MiB)
    assert run_upload(env.config, upload_id, store=env.store) == "CANCELLED"
    canceller.join()
    assert proxy.sent < 40 * MiB
    assert vcenter.leases["lease-1"]["state"] == "error" and vcenter.vms == {} and vcenter.disks == {}
