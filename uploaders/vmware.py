"""VMware target (osbuild-composer's `vmware`): the VMDK or OVA imported into vSphere as a VM in the
datacenter, cluster and datastore given, then marked as a template.

The disks our vmdk/ova types make are stream-optimized VMDKs, which ESXi cannot run from a file
copied onto a datastore; they go in through an OVF import lease, as govc's `import.vmdk` (what
osbuild-composer runs) does: `OvfManager.CreateImportSpec`, `ResourcePool.ImportVApp`, the disk
sent to the lease's device URL, `HttpNfcLeaseComplete`, then `VirtualMachine.MarkAsTemplate`.
Those are called through vCenter's JSON APIs (the Automation API's `/api` for the session and the
inventory lookups, the VI/JSON API's `/sdk/vim25` for the rest), over `requests`, so no vSphere SDK
is needed. For a plain VMDK the OVF descriptor is written here; an OVA carries its own.
"""

from __future__ import annotations

import struct
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from uploaders.base import (
    SettingInfo,
    UploadCancelled,
    UploadContext,
    Uploader,
    UploadError,
    register,
)

VIM_RELEASE = "8.0.1.0"  # the VI/JSON API's release path segment (vSphere 8.0 U1 and later)
CHUNK = 4 * 1024 * 1024
LEASE_PROGRESS_SECONDS = 30.0  # the lease times out after 5 minutes without progress


def vmdk_capacity(path: Path) -> int:
    """The virtual size (bytes) from a sparse/stream-optimized VMDK's header (magic KDMV)."""
    with open(path, "rb") as fh:
        header = fh.read(20)
    if len(header) < 20 or header[:4] != b"KDMV":
        raise UploadError(f"{path.name} is not a sparse or stream-optimized VMDK (no KDMV header)")
    return int(struct.unpack_from("<Q", header, 12)[0]) * 512


def ovf_for_vmdk(name: str, disk_file: str, capacity: int) -> str:
    """A minimal OVF descriptor for one stream-optimized disk on a SCSI controller (EFI boot)."""
    name = escape(name)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1"
 xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
 xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
 xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:id="file1" ovf:href="{escape(disk_file)}"/></References>
  <DiskSection><Info>Virtual disks</Info>
    <Disk ovf:diskId="disk1" ovf:fileRef="file1" ovf:capacity="{capacity}" ovf:capacityAllocationUnits="byte"
     ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>Networks</Info><Network ovf:name="VM Network"><Description>VM Network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="{name}"><Info>A virtual machine</Info><Name>{name}</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info>Guest OS</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>Virtual hardware</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID>
        <vssd:VirtualSystemType>vmx-15</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 CPUs</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2048 MB</rasd:ElementName>
        <rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID>
        <rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/disk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID>
        <rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection>
        <rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID>
        <rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"""


class Disks:
    """The OVF descriptor and a way to read each file it references, from a VMDK or an OVA."""

    def __init__(self, image_path: Path, image_name: str):
        self.path = image_path
        self.tar: tarfile.TarFile | None = None
        if image_path.suffix == ".ova":
            try:
                self.tar = tarfile.open(image_path)
                ovf = next(m for m in self.tar.getmembers() if m.name.endswith(".ovf"))
            except (tarfile.TarError, StopIteration) as exc:
                raise UploadError(f"{image_path.name} is not an OVA (a tar holding an .ovf)") from exc
            data = self.tar.extractfile(ovf)
            assert data is not None
            self.descriptor = data.read().decode()
        else:
            self.descriptor = ovf_for_vmdk(image_name, "disk.vmdk", vmdk_capacity(image_path))

    def size(self, name: str) -> int:
        if self.tar is None:
            return self.path.stat().st_size
        return self.tar.getmember(name).size

    def chunks(self, name: str) -> Iterator[bytes]:
        source = open(self.path, "rb") if self.tar is None else self.tar.extractfile(name)
        assert source is not None
        with source:
            while data := source.read(CHUNK):
                yield data

    def close(self) -> None:
        if self.tar is not None:
            self.tar.close()


class _Sized:
    """A generator with a length: requests then sends a Content-Length body, not chunked."""

    def __init__(self, chunks: Iterator[bytes], length: int):
        self.chunks, self.length = chunks, length

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def __len__(self) -> int:
        return self.length


def moref(kind: str, value: str) -> dict[str, str]:
    return {"_typeName": "ManagedObjectReference", "type": kind, "value": value}


class VCenter:
    """A logged-in session: the `/api` and `/sdk/vim25` calls, errors naming their part."""

    def __init__(self, settings: dict[str, Any]):
        import requests

        self.host = settings["host"]
        self.base = f"https://{self.host}"
        self.http = requests.Session()
        self.http.verify = settings.get("tls_verify", True)
        self.http.trust_env = False  # vCenter is reached directly, never through a proxy
        try:
            resp = self.http.post(f"{self.base}/api/session", auth=(settings["username"],
                                                                    settings["password"]), timeout=60)
        except requests.exceptions.SSLError as exc:
            raise UploadError(f"vCenter {self.host}: its TLS certificate is not trusted (set "
                              f"tls_verify = false for a self-signed one): {exc}") from exc
        except requests.exceptions.RequestException as exc:
            raise UploadError(f"vCenter {self.host}: network error: {exc}") from exc
        if resp.status_code == 401:
            raise UploadError(f"vCenter {self.host}: authentication failed: check username and password")
        self._check(resp, f"vCenter {self.host}: login")
        self.http.headers["vmware-api-session-id"] = resp.json()

    @staticmethod
    def _check(resp: Any, what: str) -> Any:
        if resp.status_code >= 400:
            try:
                body = resp.json()
                message = body.get("faultMessage") or body.get("messages") or body.get("error_type") or body
            except ValueError:
                message = resp.text[:200]
            raise UploadError(f"{what}: HTTP {resp.status_code} ({message})")
        return resp.json() if resp.content else None

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        import requests

        try:
            resp = self.http.request(method, f"{self.base}{path}", timeout=120, **kwargs)
        except requests.exceptions.RequestException as exc:
            raise UploadError(f"{what}: network error: {exc}") from exc
        return self._check(resp, what)

    def vim(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        return self.call(method, f"/sdk/vim25/{VIM_RELEASE}/{path}", what, **kwargs)

    def find(self, kind: str, name: str, **filters: str) -> str:
        """The id of the one `kind` (datacenter, cluster, datastore, folder) named `name`."""
        found = self.call("GET", f"/api/vcenter/{kind}", f"{kind} '{name}'",
                          params={"names": name, **filters}) or []
        if not found:
            raise UploadError(f"{kind} '{name}' does not exist")
        return str(found[0][kind])

    def logout(self) -> None:
        try:
            self.http.delete(f"{self.base}/api/session", timeout=30)
        except Exception:
            pass


@register
class VMwareUploader(Uploader):
    name = "vmware"
    display = "VMware vSphere"
    supported_types = ("vmdk", "ova")
    settings_info = (
        SettingInfo("host", "vCenter host", required=True, placeholder="vcenter.example.com",
                    regex=r"[A-Za-z0-9.-]+(:[0-9]{1,5})?"),
        SettingInfo("username", "User name", required=True),
        SettingInfo("password", "Password", secret=True, required=True),
        SettingInfo("datacenter", "Datacenter", required=True),
        SettingInfo("cluster", "Cluster", required=True),
        SettingInfo("datastore", "Datastore", required=True),
        SettingInfo("folder", "VM folder", placeholder="the datacenter's VM folder"),
        SettingInfo("tls_verify", "Verify vCenter's TLS certificate (default: true)", type="boolean"),
    )
    poll_seconds = 1.0

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        disks = Disks(image_path, image_name)
        vc = VCenter(settings)
        try:
            return self._import(vc, disks, image_name, settings, ctx)
        finally:
            disks.close()
            vc.logout()

    def _import(self, vc: VCenter, disks: Disks, image_name: str, settings: dict[str, Any],
                ctx: UploadContext) -> dict[str, Any]:
        dc = vc.find("datacenter", settings["datacenter"])
        cluster = vc.find("cluster", settings["cluster"], datacenters=dc)
        datastore = vc.find("datastore", settings["datastore"], datacenters=dc)
        folder = vc.find("folder", settings.get("folder") or "vm", datacenters=dc, type="VIRTUAL_MACHINE")
        pools = vc.call("GET", "/api/vcenter/resource-pool", f"cluster '{settings['cluster']}'",
                        params={"clusters": cluster}) or []
        if not pools:
            raise UploadError(f"cluster '{settings['cluster']}' has no resource pool")
        pool = pools[0]["resource_pool"]
        what = f"importing '{image_name}' into datastore '{settings['datastore']}'"
        spec = vc.vim("POST", "OvfManager/OvfManager/CreateImportSpec", what, json={
            "ovfDescriptor": disks.descriptor, "resourcePool": moref("ResourcePool", pool),
            "datastore": moref("Datastore", datastore),
            "cisp": {"_typeName": "OvfCreateImportSpecParams", "entityName": image_name,
                     "locale": "", "deploymentOption": "", "diskProvisioning": "thin"}})
        if spec.get("error"):
            raise UploadError(f"{what}: the OVF descriptor was refused: "
                              + "; ".join(str(e.get("localizedMessage") or e) for e in spec["error"]))
        lease = vc.vim("POST", f"ResourcePool/{pool}/ImportVApp", what, json={
            "spec": spec["importSpec"], "folder": moref("Folder", folder)})["value"]
        ctx.log(f"import lease {lease} in datacenter {settings['datacenter']}, cluster "
                f"{settings['cluster']}, datastore {settings['datastore']}")
        try:
            info = self._wait_ready(vc, lease, what, ctx)
            self._send_disks(vc, lease, info, spec.get("fileItem") or [], disks, what, ctx)
            vc.vim("POST", f"HttpNfcLease/{lease}/HttpNfcLeaseComplete", what)
        except BaseException as exc:
            try:
                vc.vim("POST", f"HttpNfcLease/{lease}/HttpNfcLeaseAbort", what, json={})
                ctx.log(f"aborted import lease {lease}: vSphere removes the partial VM")
            except UploadError:
                pass
            raise exc
        vm = info["entity"]["value"]
        vc.vim("POST", f"VirtualMachine/{vm}/MarkAsTemplate", f"marking '{image_name}' as a template")
        ctx.log(f"{image_name} ({vm}) is a template in {settings['datacenter']}/{settings['cluster']}")
        return {"template": image_name, "vm": vm, "datacenter": settings["datacenter"],
                "cluster": settings["cluster"], "datastore": settings["datastore"]}

    def _wait_ready(self, vc: VCenter, lease: str, what: str, ctx: UploadContext) -> dict[str, Any]:
        while True:
            ctx.check_cancelled()
            state = vc.vim("GET", f"HttpNfcLease/{lease}/state", what)
            if state == "ready":
                return dict(vc.vim("GET", f"HttpNfcLease/{lease}/info", what))
            if state == "error":
                fault = vc.vim("GET", f"HttpNfcLease/{lease}/error", what) or {}
                raise UploadError(f"{what}: {fault.get('localizedMessage') or fault}")
            time.sleep(self.poll_seconds)

    def _send_disks(self, vc: VCenter, lease: str, info: dict[str, Any], items: list[dict[str, Any]],
                    disks: Disks, what: str, ctx: UploadContext) -> None:
        urls = {d["importKey"]: d["url"].replace("://*", f"://{vc.host}") for d in info.get("deviceUrl") or []}
        total = sum(disks.size(item["path"] if disks.tar else "disk.vmdk") for item in items) or 1
        done = {"bytes": 0}
        reported = {"at": time.monotonic()}

        def body(name: str) -> Iterator[bytes]:
            for data in disks.chunks(name):
                ctx.check_cancelled()
                yield data
                done["bytes"] += len(data)
                ctx.add_sent(len(data))
                ctx.progress(done["bytes"], total)
                if time.monotonic() - reported["at"] > LEASE_PROGRESS_SECONDS:
                    reported["at"] = time.monotonic()
                    vc.vim("POST", f"HttpNfcLease/{lease}/HttpNfcLeaseProgress", what,
                           json={"percent": min(99, 100 * done["bytes"] // total)})

        for item in items:
            url = urls.get(item["deviceId"])
            if url is None:
                raise UploadError(f"{what}: the lease has no device URL for {item['path']}")
            name = item["path"] if disks.tar else "disk.vmdk"
            ctx.log(f"sending {name} ({disks.size(name)} bytes)")
            try:
                vc.call("PUT" if item.get("create") else "POST", url[len(vc.base):], what,
                        data=_Sized(body(name), disks.size(name)),
                        headers={"Content-Type": "application/x-vnd.vmware-streamVmdk"})
            except UploadError as exc:
                if isinstance(exc.__cause__, UploadCancelled) or ctx.should_cancel():
                    raise UploadCancelled("upload cancelled") from exc
                raise
