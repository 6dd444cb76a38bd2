"""Archives of a tree: tar balls and OCI container archives."""

from __future__ import annotations

from typing import Any

from distros.engine import ManifestContext, PipelineKind, pipeline_kind
from distros.pipelines.build import INSTALL_EXEC, build_ref
from distros.pipelines.disk import output_filename
from distros.stages import stage, tree_input

# osbuild's oci-archive stage takes the OCI/Go architecture names
OCI_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x"}


@pipeline_kind("tar")
class TarArchive(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["tar"], {"/usr/bin/tar": INSTALL_EXEC}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {"filename": output_filename(ctx, spec["name"])}
        options.update(spec.get("options") or {})
        return {"name": spec["name"], **build_ref(ctx), "stages": [
            stage("tar", options, inputs={"tree": tree_input(spec.get("input", "os"))})]}


@pipeline_kind("oci-archive")
class OCIArchive(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["tar"], {"/usr/bin/tar": INSTALL_EXEC}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        # images names the architecture as Go does (GoArch); osbuild-composer's 2023 releases kept
        # the RPM name unless the type asked otherwise
        go_names = spec.get("oci_arch_names") or ctx.distro.follows == "images"
        arch = OCI_ARCH.get(ctx.arch, ctx.arch) if go_names else ctx.arch
        options = {"architecture": arch, "filename": output_filename(ctx, spec["name"]),
                   "config": dict(spec.get("config") or {})}
        return {"name": spec["name"], **build_ref(ctx), "stages": [
            stage("oci-archive", options, inputs={"base": tree_input(spec.get("input", "os"))})]}


@pipeline_kind("ovf")
class OVFDescriptor(PipelineKind):
    """A tree holding a VMDK and its OVF descriptor and manifest (the content of an OVA)."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        # images' OVF pipeline lists qemu-img as its build-root tool (OVF.getBuildPackages)
        return ["qemu-img"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("input", "vmdk")
        vmdk = output_filename(ctx, source)
        copy = stage("copy", {"paths": [{"from": f"input://vmdk-tree/{vmdk}", "to": "tree:///"}]},
                     inputs={"vmdk-tree": tree_input(source)})
        return {"name": spec["name"], **build_ref(ctx), "stages": [copy, stage("ovf", {"vmdk": vmdk})]}


@pipeline_kind("ova")
class OVAArchive(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["tar"], {"/usr/bin/tar": INSTALL_EXEC}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("input", "ovf")
        filename = output_filename(ctx, spec["name"])
        options: dict[str, Any] = {"filename": filename, "format": "oldgnu", "root-node": "omit"}
        if ctx.distro.follows == "images":
            # images: a ustar archive naming its members, the .ovf descriptor first as OVA demands
            stem = filename.rsplit(".", 1)[0]
            options = {"filename": filename, "format": "ustar", "paths": [f"{stem}.{ext}" for ext in ("ovf", "mf", "vmdk")]}
        return {"name": spec["name"], **build_ref(ctx), "stages": [
            stage("tar", options, inputs={"tree": tree_input(source)})]}


@pipeline_kind("vagrant")
class VagrantBox(PipelineKind):
    """The tree of a Vagrant box (metadata + disk) for libvirt or VirtualBox; `tar` packs it."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        # images' Vagrant pipeline lists qemu-img as its build-root tool (Vagrant.getBuildPackages)
        return ["qemu-img"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        from distros.stages import pipeline_file_input

        source = spec.get("input", "qcow2")
        disk = output_filename(ctx, source)
        provider = spec.get("provider", "libvirt")
        options: dict[str, Any] = {"provider": provider}
        stages = []
        if provider == "virtualbox":
            options["synced_folders"] = {"/vagrant": {"type": "rsync"}}
            # images' virtualboxMacAddress: VirtualBox's OUI and three bytes of the seeded generator
            options["virtualbox"] = {"mac_address": "080027" + ctx.rng.read(3).hex()}
            # VirtualBox imports the box through an OVF descriptor beside the disk
            stages += [stage("copy", {"paths": [{"from": f"input://vmdk-tree/{disk}", "to": "tree:///"}]},
                             inputs={"vmdk-tree": tree_input(source)}),
                       stage("ovf", {"vmdk": disk})]
        stages.append(stage("vagrant", options, inputs={"image": pipeline_file_input(source, disk)}))
        return {"name": spec["name"], **build_ref(ctx), "stages": stages}
