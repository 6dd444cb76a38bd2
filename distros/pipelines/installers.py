"""Pipeline kinds of installer ISOs and ostree image types, wired to the engine.

The pipeline builders themselves live in `distros.anaconda`, `distros.ostree` and
`distros.simplified`; this module reads what they need from the manifest context (the image
type's `installer:` and `ostree:` data, the distro's ISO label, the compose's ostree options and
resolved commits) and declares the package sets and build-root needs of each pipeline.

Image-type data keys used here:
- `ostree: {ref: "{family}/{major}/{arch}/edge", remote: rhel-edge, os_name: redhat, ...}`: the
  default ref of the commit built or consumed (`{family}`, `{major}`, `{version}`, `{arch}`), and
  for deployments the remote name, its URL/content URL/GPG key paths and the deployment's osname.
- `installer: {variant, os_name, additional_dracut_modules, additional_drivers,
  anaconda_modules, users_module: always|if-users|never, squashfs_compression,
  kickstart_in_iso_root, kernel_opts, live}`.
- distro `iso_label: "CentOS-Stream-9-BaseOS-{arch}"` (distros.yaml).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from distros import anaconda, flatpaks, ostree, simplified
from distros.containers import ContainerSpec, add_container_sources
from distros.customizations import FileNode
from distros.definitions import parse_size
from distros.engine import ManifestContext, PipelineKind, pipeline_kind
from distros.kickstart import KickstartSettings
from distros.pipelines.build import INSTALL_EXEC, build_ref
from distros.pipelines.disk import output_filename
from distros.pipelines.os_tree import FIPS_FILES, directory_stages, file_stages, platform
from distros.stages import device_name, fstab_stage, stage, tree_mounts


class MissingCommit(ostree.OSTreeOptionsError):
    """The compose did not resolve the ostree commit a pipeline needs."""


# --- facts from the context -------------------------------------------------------------------


def ostree_data(ctx: ManifestContext) -> dict[str, Any]:
    return dict(ctx.data.get("ostree") or {})


def compose_ostree_options(ctx: ManifestContext) -> ostree.OSTreeOptions:
    return ostree.OSTreeOptions.from_request(ctx.options.ostree)


def default_ref(ctx: ManifestContext) -> str:
    template = ostree_data(ctx).get("ref", "")
    d = ctx.distro
    return template.format(family=d.family, major=d.release_version, version=d.version, arch=ctx.arch)


def image_ref(ctx: ManifestContext) -> str:
    """The ref of the commit built by this compose (the request's `ref` wins over the default)."""
    return ostree.parent_commit_source(compose_ostree_options(ctx), default_ref(ctx))[1]


def parent_source(ctx: ManifestContext) -> ostree.SourceSpec | None:
    return ostree.parent_commit_source(compose_ostree_options(ctx), default_ref(ctx))[0]


def payload_source(ctx: ManifestContext) -> ostree.SourceSpec:
    return ostree.payload_commit_source(compose_ostree_options(ctx), default_ref(ctx), ctx.image_type.name)


def commits_of(ctx: ManifestContext, pipeline: str) -> list[ostree.CommitSpec]:
    return [ostree.CommitSpec.from_dict(c) for c in (ctx.options.ostree_commits.get(pipeline) or [])]


def flatpak_sources(ctx: ManifestContext) -> list[flatpaks.FlatpakSource]:
    """The Flatpaks an installer embeds (today's layout): the data's `installer.today.flatpaks`
    (references may use `{arch}`, `{family}`, `{major}`, `{version}`), unless the blueprint
    forces its own list."""
    if not follows_images(ctx):
        return []
    d = ctx.distro
    found = flatpaks.sources_from_data(today_config(ctx).get("flatpaks"), arch=ctx.arch,
                                       variables={"family": d.family, "major": d.release_version,
                                                  "version": d.version})
    return flatpaks.apply_blueprint(found, ctx.blueprint.get("customizations"), ctx.arch)


def flatpak_specs(ctx: ManifestContext, pipeline: str) -> list[ContainerSpec]:
    """The resolved Flatpak images of the pipeline, registered as skopeo sources (images collects
    them into the sources even where no stage imports them)."""
    wanted = flatpak_sources(ctx)
    if not wanted:
        return []
    resolved = ctx.options.flatpaks.get(pipeline) or []
    if len(resolved) != len(wanted):
        raise flatpaks.MissingFlatpaks(f"{ctx.image_type.name}: {len(wanted)} flatpaks to embed, "
                                       f"{len(resolved)} resolved")
    specs = [flatpaks.spec_from_dict(s) for s in resolved]
    add_container_sources(ctx, specs)
    return specs


def payload_commit(ctx: ManifestContext, pipeline: str) -> ostree.CommitSpec:
    """The one resolved commit a deployment or ostree installer embeds; registered as a source."""
    source = payload_source(ctx)
    commits = commits_of(ctx, pipeline)
    if len(commits) != 1:
        raise MissingCommit(f"{ctx.image_type.name}: ostree commit {source.ref} from {source.url} is not resolved")
    ostree.add_commit_sources(ctx, commits)
    return commits[0]


def iso_label(ctx: ManifestContext) -> str:
    # today's Fedora ISOs name their variant in the label (Fedora-43-IoT-x86_64): an image type may
    # bring its own template
    template = (ctx.data.get("iso_label") or ctx.distro.raw.get("iso_label")
                or f"{ctx.distro.product.replace(' ', '-')}-{ctx.distro.version}-BaseOS-{{arch}}")
    return template.format(arch=ctx.arch, version=ctx.distro.version)


def installer_config(ctx: ManifestContext) -> dict[str, Any]:
    return dict(ctx.data.get("installer") or {})


def follows_images(ctx: ManifestContext) -> bool:
    """Releases osbuild/images still defines get its current installer layout (distros.anaconda)."""
    return ctx.distro.follows == "images"


def payload_kind(ctx: ManifestContext) -> str:
    """`os` (tarball), `ostree` (a commit), `live` or `netinst`: what the ISO installs."""
    cfg = installer_config(ctx)
    if cfg.get("live"):
        return "live"
    if cfg.get("netinst"):
        return "netinst"
    for spec in ctx.image_type.pipelines:
        if spec.get("kind") == "bootiso-tree" and spec.get("payload"):
            return str(spec["payload"])
    return ""


def iso_syslinux(ctx: ManifestContext) -> bool:
    """Whether the ISO boots BIOS machines with isolinux (always in the 2023 layout)."""
    from distros.isoboot import ISOConfig

    return not follows_images(ctx) or ISOConfig.from_data(ctx.data.get("iso")).boot_type == "syslinux"


def today_config(ctx: ManifestContext) -> dict[str, Any]:
    return dict(installer_config(ctx).get("today") or {})


def payload_in_rootfs(ctx: ManifestContext) -> bool:
    """Today's Atomic installers carry their ostree commit inside the installer's root filesystem."""
    return (follows_images(ctx) and payload_kind(ctx) == "ostree"
            and (today_config(ctx).get("payload") or {}).get("location") == "rootfs")


def make_installer(ctx: ManifestContext, *, anaconda_iso: bool = True) -> anaconda.Installer:
    """The installer facts; `anaconda_iso=False` for the coreos-installer ISOs (distros.simplified),
    which keep their own layout."""
    cfg = installer_config(ctx)
    modules = list(cfg.get("anaconda_modules") or [])
    users_module = cfg.get("users_module", "always")
    has_users = bool(ctx.os.users or ctx.os.groups)
    if users_module == "always" or (users_module == "if-users" and has_users):
        if anaconda.USERS_MODULE not in modules:
            modules.append(anaconda.USERS_MODULE)
    inst = _make_installer(ctx, cfg, modules)
    if anaconda_iso and follows_images(ctx):
        _today(ctx, cfg, inst)
    return inst


def _today(ctx: ManifestContext, cfg: dict[str, Any], inst: anaconda.Installer) -> None:
    """images' installerCustomizations/isoCustomizations and the image kinds' InstantiateManifest
    (`pkg/distro/generic/images.go`: imageInstallerImage, ostreeInstallerImage,
    networkInstallerImage, liveInstallerImage).

    The data: `installer.today` is images' `installer_config` (enabled_anaconda_modules,
    additional_dracut_modules, additional_drivers, default_menu, lorax_templates,
    lorax_template_package, lorax_logos_package, lorax_release_package, iso_files,
    payload: {location, kickstart}, kickstart_unattended_extra_kernel_opts,
    use_legacy_anaconda_config) plus the platform's `fips_menu`, `extra_uefi_architectures` and
    `platform_build_packages`, and the distro's `preview` (a buildstamp that is not final);
    the image type's `iso:` is images' `iso_config` (distros.isoboot.ISOConfig)."""
    from distros.isoboot import ISOConfig

    today = dict(cfg.get("today") or {})
    payload = dict(today.get("payload") or {})
    kind = payload_kind(ctx)
    cust = ctx.blueprint.get("customizations") or {}
    ks = inst.kickstart
    inst.today = True
    inst.iso = ISOConfig.from_data(ctx.data.get("iso"))
    modules = list(today.get("enabled_anaconda_modules") or [])
    if kind == "os" or (kind == "ostree" and (ctx.os.users or ctx.os.groups)):
        modules.append(anaconda.USERS_MODULE)
    inst.additional_anaconda_modules = modules
    inst.additional_dracut_modules = list(today.get("additional_dracut_modules") or [])
    inst.additional_drivers = list(today.get("additional_drivers") or [])
    inst.squashfs_compression = "xz"
    inst.default_menu = int(today.get("default_menu", 0))
    inst.lorax_templates = list(today.get("lorax_templates") or [])
    inst.lorax_logos_package = str(today.get("lorax_logos_package") or "")
    inst.lorax_release_package = str(today.get("lorax_release_package") or "")
    inst.legacy_anaconda_config = bool(today.get("use_legacy_anaconda_config", False))
    inst.fips = bool(cust.get("fips"))
    inst.fips_menu = bool(today.get("fips_menu", False))
    inst.extra_uefi_architectures = list(today.get("extra_uefi_architectures") or [])
    inst.iso_files = [(str(a), str(b)) for a, b in (today.get("iso_files") or [])]
    inst.payload_location = str(payload.get("location") or "iso")
    inst.payload_kickstart = str(payload.get("kickstart") or "root")
    inst.preview = bool(today.get("preview", False))
    image_locale = str((ctx.image_type.image_config() or {}).get("locale") or "")
    languages = list((cust.get("locale") or {}).get("languages") or [])
    append = list((ctx.data.get("image_config") or {}).get("kernel_options") or [])
    if (cust.get("kernel") or {}).get("append"):
        append.append(cust["kernel"]["append"])
    if kind == "os":
        inst.rootfs_size = 5 * anaconda.GIB
        inst.locale = ctx.os.language or ""
        inst.has_kickstart = True
        # the unattended answers follow the payload's own locale, keyboard and time zone
        ks.language = ctx.os.language or ks.language
        ks.keyboard = ctx.os.keyboard or ks.keyboard
        ks.timezone = ctx.os.timezone or ks.timezone
        if ks.unattended:
            append = list(today.get("kickstart_unattended_extra_kernel_opts") or []) + append
    elif kind == "ostree":
        inst.rootfs_size = 4 * anaconda.GIB
        inst.locale = image_locale
        inst.has_kickstart = inst.payload_kickstart == "root" or bool(
            ctx.os.users or ctx.os.groups or ks.unattended or ks.sudo_nopasswd or ks.user_contents is not None
            or languages or (cust.get("locale") or {}).get("keyboard") or (cust.get("timezone") or {}).get("timezone"))
    elif kind == "netinst":
        inst.rootfs_size = 5 * anaconda.GIB
        inst.locale = languages[0] if languages else ""
        inst.has_kickstart = inst.netinst_kickstart
    elif kind == "live":
        inst.rootfs_size = 8 * anaconda.GIB
        inst.locale = image_locale
        inst.has_kickstart = False
    inst.append_kernel_opts = append
    inst.ostree_remote = str(ostree_data(ctx).get("remote") or "")


def _make_installer(ctx: ManifestContext, cfg: dict[str, Any], modules: list[str]) -> anaconda.Installer:
    d = ctx.distro
    return anaconda.Installer(
        arch=ctx.arch,
        product=d.product,
        os_version=d.os_version,
        iso_label=iso_label(ctx),
        uefi_vendor=d.vendor,
        release=f"{d.product} {d.os_version}",
        os_name=cfg.get("os_name", "redhat"),
        variant=cfg.get("variant", ""),
        live=bool(cfg.get("live", False)),
        additional_dracut_modules=list(cfg.get("additional_dracut_modules") or []),
        additional_drivers=list(cfg.get("additional_drivers") or []),
        additional_anaconda_modules=modules,
        squashfs_compression=cfg.get("squashfs_compression", "xz"),
        kickstart_in_iso_root=bool(cfg.get("kickstart_in_iso_root", True)),
        additional_kernel_opts=list(cfg.get("kernel_opts") or []),
        users_options={"users": ctx.os.users} if ctx.os.users else None,
        groups_options={"groups": ctx.os.groups} if ctx.os.groups else None,
        kickstart=KickstartSettings.from_blueprint(ctx.blueprint.get("customizations")),
        netinst=bool(cfg.get("netinst", False)),
    )


def tree_file_stages(ctx: ManifestContext) -> Callable[[list[tuple[str, bytes]]], list[dict[str, Any]]]:
    """Write extra files (e.g. the including kickstart) into a tree via inline sources."""
    return lambda files: file_stages(ctx, [FileNode(path=path, data=data) for path, data in files])


def data_package_chain(ctx: ManifestContext, name: str, extra: list[str]) -> list[dict[str, Any]]:
    """The pipeline's package sets plus `extra`: concatenated as they come on releases following
    osbuild/images (a name listed twice is asked twice), deduplicated as osbuild-composer did."""
    today = ctx.distro.follows == "images"
    include: list[str] = []
    exclude: list[str] = []
    for pset in (ctx.data.get("package_sets") or {}).get(name, []):
        include += [p for p in pset.get("include") or [] if today or p not in include]
        exclude += [p for p in pset.get("exclude") or [] if today or p not in exclude]
    include += [p for p in extra if today or p not in include]
    return [{"include": include, "exclude": exclude, "install_weak_deps": True}]


def efiboot_volid(ctx: ManifestContext) -> str:
    """The FAT serial of efiboot.img: images' EFIBootPartitionTable volume id, without its dash."""
    from distros.gorand import volid

    return volid(ctx.rng).replace("-", "")


def kernel_of(ctx: ManifestContext, pipeline: str) -> str:
    return anaconda.kernel_version(ctx.packages.get(pipeline, []), installer_config(ctx).get("kernel", "kernel"))


# --- installer ISO kinds ----------------------------------------------------------------------


@pipeline_kind("anaconda-tree")
class AnacondaTree(PipelineKind):
    def package_sets(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        extra = anaconda.anaconda_boot_packages(ctx.arch, syslinux=iso_syslinux(ctx))
        if follows_images(ctx):
            # images' AnacondaInstaller.getPackageSetChain: the (installer) platform's packages
            # join the boot packages, and the live tree is relabelled with the targeted policy
            extra += list(platform(ctx).get("packages") or [])
        if ctx.arch == "x86_64":
            extra.append("biosdevname")
        if follows_images(ctx) and installer_config(ctx).get("live"):
            extra.append("selinux-policy-targeted")
        chain = data_package_chain(ctx, spec["name"], extra)
        if follows_images(ctx) and not installer_config(ctx).get("live"):
            # images' InstallerCustomizations.InstallWeakDeps: only where the installer config asks
            # (the network and Atomic installers leave weak dependencies out)
            chain[-1]["install_weak_deps"] = bool(today_config(ctx).get("install_weak_deps", False))
        return chain

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        if not follows_images(ctx):
            return anaconda.anaconda_boot_packages(ctx.arch) + ["rpm", "lorax-templates-generic"], {}
        # images' AnacondaInstaller.getBuildPackages
        cfg = installer_config(ctx)
        pkgs = anaconda.anaconda_boot_packages(ctx.arch, syslinux=iso_syslinux(ctx)) + ["rpm", "shadow-utils"]
        if today_config(ctx).get("lorax_template_package"):
            pkgs.append(str(today_config(ctx)["lorax_template_package"]))
        if cfg.get("live"):
            pkgs += ["policycoreutils", "selinux-policy-targeted"]
        if ctx.distro.rpmkeys.get("binary_path"):
            pkgs.append("pqrpm")     # rpmkeys of post-quantum signatures (RHEL 9.7+)
        if payload_in_rootfs(ctx):
            pkgs.append("rpm-ostree")
        if flatpak_sources(ctx):
            pkgs.append("flatpak")
        return pkgs, {}

    def ostree_sources(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[Any]:
        if payload_in_rootfs(ctx):
            return [payload_source(ctx)]
        return []

    def flatpak_sources(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[Any]:
        return list(flatpak_sources(ctx))

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        inst = make_installer(ctx)
        commit = None
        if inst.today and payload_kind(ctx) == "ostree":
            if inst.payload_location == "rootfs":
                commit = payload_commit(ctx, name)
            elif inst.payload_kickstart == "interactive-defaults":
                commit = payload_commit(ctx, "bootiso-tree")
        embedded = flatpak_specs(ctx, name)
        live_files = None
        if inst.live:
            node = FileNode(path=anaconda.LIVESYS_PATH, data=anaconda.LIVESYS_DATA, mode="0644", user="root", group="root")
            live_files = file_stages(ctx, [node])
        pipeline = anaconda.anaconda_tree_pipeline(
            inst,
            rpm_stages=ctx.rpm_stages(name),
            kernel_ver=kernel_of(ctx, name),
            live_file_stages=live_files,
            file_stages=tree_file_stages(ctx),
            commit=commit,
            flatpak_stages=flatpaks.import_stages(embedded),
        )
        return _with_build(ctx, pipeline)


@pipeline_kind("rootfs-image")
class RootfsImage(PipelineKind):
    """The ext4 root image, only for a `squashfs-ext4` ISO root (images' ISORootfsImg)."""

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[override]
        tree = spec.get("input", "anaconda-tree")
        if follows_images(ctx):
            inst = make_installer(ctx)
            if not inst.iso.has_rootfs_image:
                return None
            return _with_build(ctx, anaconda.rootfs_image_pipeline(size=inst.rootfs_size, tree=tree, today=True))
        size = parse_size(spec.get("size", anaconda.ROOTFS_SIZE))
        return _with_build(ctx, anaconda.rootfs_image_pipeline(size=size, tree=tree))


@pipeline_kind("efiboot-tree")
class EFIBootTree(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        """images' EFIBootTree.getBuildPackages: the installer platform's build packages
        (`installer.today.platform_build_packages`, else the family platform's)."""
        if spec.get("simplified") or not follows_images(ctx) or not make_installer(ctx).iso.uefi:
            return [], {}
        today = today_config(ctx)
        if "platform_build_packages" in today:
            return list(today["platform_build_packages"] or []), {}
        from distros.pipelines.os_tree import platform

        return list(platform(ctx).get("build_packages") or []), {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any] | None:  # type: ignore[override]
        if spec.get("simplified"):
            return _with_build(ctx, simplified.coi_efiboot_tree_pipeline(make_simplified(ctx)))
        inst = make_installer(ctx)
        if inst.today and not inst.iso.uefi:
            return None     # ppc64le and s390x ISOs boot without UEFI: no EFI boot tree
        return _with_build(ctx, anaconda.efiboot_tree_pipeline(inst))


@pipeline_kind("bootiso-tree")
class BootISOTree(PipelineKind):
    """The ISO's files; `payload: os` (tarball of a pipeline) or `payload: ostree` (a resolved commit)."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        from distros.isoboot import ISOConfig, build_packages

        payload = spec.get("payload")
        pkgs = build_packages(ISOConfig.from_data(ctx.data.get("iso"))) if follows_images(ctx) else ["squashfs-tools"]
        labels: dict[str, str] = {}
        if payload == "ostree" and not payload_in_rootfs(ctx):
            pkgs.append("rpm-ostree")
        if payload == "os":
            pkgs.append("tar")
            labels["/usr/bin/tar"] = INSTALL_EXEC
        return pkgs, labels

    def ostree_sources(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[Any]:
        if spec.get("payload") != "ostree":
            return []
        if payload_in_rootfs(ctx):
            return []   # the anaconda tree holds the payload
        return [payload_source(ctx)]

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        payload = spec.get("payload")
        inst = make_installer(ctx)
        kver = kernel_of(ctx, "anaconda-tree")
        volid = efiboot_volid(ctx)
        if payload == "ostree":
            where = "anaconda-tree" if inst.today and inst.payload_location == "rootfs" else spec["name"]
            commit = payload_commit(ctx, where)
            pipeline = anaconda.bootiso_tree_pipeline(
                inst, kernel_ver=kver, efiboot_volid=volid, commit=commit, file_stages=tree_file_stages(ctx)
            )
        else:
            pipeline = anaconda.bootiso_tree_pipeline(
                inst,
                kernel_ver=kver,
                efiboot_volid=volid,
                os_tree=spec.get("input", "os") if payload == "os" else None,
                file_stages=tree_file_stages(ctx),
            )
        return _with_build(ctx, pipeline)


@pipeline_kind("bootiso")
class BootISO(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["isomd5sum", "xorriso"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        inst = make_installer(ctx)
        pipeline = anaconda.bootiso_pipeline(
            inst, filename=output_filename(ctx, spec["name"]), tree=spec.get("input", "bootiso-tree")
        )
        return _with_build(ctx, pipeline)


# --- ostree commit kinds ----------------------------------------------------------------------


@pipeline_kind("ostree-commit")
class OSTreeCommit(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["rpm-ostree"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        tree = spec.get("input", "os")
        parents = commits_of(ctx, tree)
        pipeline = ostree.commit_pipeline(
            ref=image_ref(ctx),
            os_version=ctx.distro.os_version,
            parent=parents[0] if parents else None,
            tree=tree,
            name=spec["name"],
        )
        return _with_build(ctx, pipeline)


@pipeline_kind("ostree-encapsulate")
class OSTreeEncapsulate(PipelineKind):
    """The commit wrapped as an OCI image (ostree-rs-ext's container bridging): a bootable
    container `bootc` and `rpm-ostree rebase` take, images' iot-bootable-container."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        # images' OSTreeEncapsulate.getBuildPackages
        return ["rpm-ostree", "python3-pyyaml"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        commit = spec.get("input", "ostree-commit")
        return {"name": spec["name"], **build_ref(ctx), "stages": [stage(
            "ostree.encapsulate", {"filename": output_filename(ctx, spec["name"])},
            inputs={"commit": {"type": "org.osbuild.ostree", "origin": "org.osbuild.pipeline",
                               "references": [f"name:{commit}"]}})]}


@pipeline_kind("commit-server-tree")
class CommitServerTree(PipelineKind):
    """nginx serving the new commit, the content of an edge/iot container."""

    def package_sets(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        return data_package_chain(ctx, spec["name"], ["nginx"])

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["rpm", "rpm-ostree"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        pipeline = ostree.commit_server_tree_pipeline(
            rpm_stages=ctx.rpm_stages(name),
            language=ctx.os.language or "en_US",
            ref=image_ref(ctx),
            commit=spec.get("input", "ostree-commit"),
            name=name,
        )
        return _with_build(ctx, pipeline)


# --- deployment of a commit -------------------------------------------------------------------


def deployment_spec(ctx: ManifestContext, commit: ostree.CommitSpec) -> ostree.Deployment:
    if ctx.distro.follows == "images":
        return today_deployment_spec(ctx)
    data = ostree_data(ctx)
    pt = ctx.partition_table
    opts = compose_ostree_options(ctx)
    cust = ctx.blueprint.get("customizations") or {}
    kernel_opts = deployment_partition_kernel_opts(ctx)
    kernel_opts += list(data.get("kernel_opts") or [])
    ignition = bool(data.get("ignition", False))
    url = simplified.firstboot_ignition_url(cust.get("ignition"))
    if url:
        kernel_opts.append(f"ignition.config.url={url}")
    append = (cust.get("kernel") or {}).get("append")
    if append:
        kernel_opts.append(append)
    fstab = grub = None
    if pt is not None:
        fstab = fstab_stage(pt)["options"]
        grub = deployment_grub_options(ctx)
    return ostree.Deployment(
        os_name=data.get("os_name", "redhat"),
        remote_name=data.get("remote", "rhel-edge"),
        remote_url=data.get("remote_url") or opts.url,
        remote_content_url=data.get("remote_content_url") or opts.content_url,
        remote_gpgkey_paths=list(data.get("remote_gpgkey_paths") or []),
        kernel_opts=kernel_opts,
        ignition=ignition,
        ignition_platform=str(data.get("ignition_platform") or ""),
        sysroot_readonly=bool(data.get("sysroot_readonly", False)),
        keyboard=data.get("keyboard", ""),
        locale=data.get("locale", ""),
        fstab_options=fstab,
        grub2_options=grub,
        users_options={"users": ctx.os.users} if ctx.os.users else None,
        groups_options={"groups": ctx.os.groups} if ctx.os.groups else None,
        has_root_user="root" in ctx.os.users,
        extra_stages=directory_stages(ctx.os.directories) + file_stages(ctx, ctx.os.files),
        # only the blueprint's services: the commit brought the image's own presets
        enabled_services=list((cust.get("services") or {}).get("enabled") or []),
        disabled_services=list((cust.get("services") or {}).get("disabled") or []),
    )


def today_deployment_spec(ctx: ManifestContext) -> ostree.Deployment:
    """images' ostreeDeploymentCustomizations: the image config's kernel options, then the
    blueprint's append, then the ignition provisioning URL (metal only); the blueprint's locale
    and keyboard win over the image config's."""
    data = ostree_data(ctx)
    pt = ctx.partition_table
    opts = compose_ostree_options(ctx)
    cust = ctx.blueprint.get("customizations") or {}
    platform_id = str(data.get("ignition_platform") or "")
    kernel_opts = deployment_partition_kernel_opts(ctx) + list(data.get("kernel_opts") or [])
    append = (cust.get("kernel") or {}).get("append")
    if append:
        kernel_opts.append(append)
    url = simplified.firstboot_ignition_url(cust.get("ignition"))
    if url and platform_id == "metal":
        kernel_opts.append(f"ignition.config.url={url}")
    fips = bool(cust.get("fips"))
    fips_stages: list[dict[str, Any]] = []
    fips_kernel_opts: list[str] = []
    if fips:
        fips_kernel_opts = ["fips=1"]
        boot = pt.find("/boot") if pt is not None else None
        if boot is not None:
            fs = boot[0]
            fips_kernel_opts.append(f"boot=LABEL={fs.label}" if fs.label else f"boot=UUID={fs.uuid}")
        fips_stages = file_stages(ctx, [FileNode(path=p, data=d, mode="0644", user="root", group="root")
                                        for p, d in FIPS_FILES.items()])
        fips_stages += [stage("update-crypto-policies", {"policy": "FIPS"}),
                        stage("dracut.conf", {"filename": "40-fips.conf", "config": {"add_dracutmodules": ["fips"]}})]
    fstab = grub = None
    if pt is not None:
        fstab = fstab_stage(pt)["options"]
        grub = deployment_grub_options(ctx)
    locale = ctx.os.language if (cust.get("locale") or {}).get("languages") else data.get("locale", "")
    keyboard = ctx.os.keyboard if (cust.get("locale") or {}).get("keyboard") else data.get("keyboard", "")
    services = cust.get("services") or {}
    return ostree.Deployment(
        os_name=data.get("os_name", "redhat"),
        remote_name=data.get("remote", ""),
        remote_url=opts.url if data.get("use_remotes") else "",
        remote_content_url=opts.content_url if data.get("use_remotes") else "",
        kernel_opts=kernel_opts,
        fips_kernel_opts=fips_kernel_opts,
        ignition_platform=platform_id,
        sysroot_readonly=bool(data.get("sysroot_readonly", False)),
        keyboard=keyboard or "",
        locale=locale or "",
        fstab_options=fstab,
        grub2_options=grub,
        users_options={"users": ctx.os.users} if ctx.os.users else None,
        groups_options={"groups": ctx.os.groups, "force": True} if ctx.os.groups else None,
        has_root_user="root" in ctx.os.users,
        extra_stages=directory_stages(ctx.os.directories) + file_stages(ctx, ctx.os.files),
        enabled_services=list(services.get("enabled") or []),
        disabled_services=list(services.get("disabled") or []),
        today=True,
        lock_root_user=bool(data.get("lock_root_user", False)),
        use_remotes=bool(data.get("use_remotes", False)),
        custom_filesystems=[str(f["mountpoint"]) for f in (cust.get("filesystem") or []) if f.get("mountpoint")],
        fips_stages=fips_stages,
    )


def ostree_boot_files_stages(ctx: ManifestContext, filename: str) -> list[dict[str, Any]]:
    """Board firmware (e.g. Raspberry Pi) copied from the deployed commit onto the disk's ESP.

    The platform lists `boot_files: [[path in the commit, destination], ...]`; the files come
    from a checkout of the commit, since the deployment tree only has them under /usr.
    """
    boot_files = platform(ctx).get("boot_files") or []
    pt = ctx.partition_table
    if not boot_files or pt is None:
        return []
    commit = payload_commit(ctx, "ostree-deployment")
    devices, mounts = tree_mounts(pt, filename)
    root = device_name(pt, "/")
    paths = [{"from": f"input://ostree-tree/{commit.checksum}{src}", "to": f"mount://{root}{dst}"} for src, dst in boot_files]
    checkout = {"type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.source", "references": [commit.checksum]}
    return [stage("copy", {"paths": paths}, inputs={"ostree-tree": checkout}, devices=devices, mounts=mounts)]


def deployment_partition_kernel_opts(ctx: ManifestContext) -> list[str]:
    """Options the partition table implies: `luks.uuid=` of encrypted containers."""
    pt = ctx.partition_table
    if pt is None:
        return []
    luks = getattr(pt, "luks_uuids", None)
    return [f"luks.uuid={u}" for u in (luks() if luks else [])]


def deployment_grub_options(ctx: ManifestContext) -> dict[str, Any]:
    pt = ctx.partition_table
    assert pt is not None
    plat = platform(ctx)
    root = pt.find("/")
    assert root is not None
    opts: dict[str, Any] = {"root_fs_uuid": root[0].uuid}
    if ctx.distro.follows == "images":
        opts = {"compat_version": 2, **opts}     # images' NewGrub2StageOptions, as for disks
    boot = pt.find("/boot")
    if boot is not None:
        opts["boot_fs_uuid"] = boot[0].uuid
    if plat.get("bios"):
        opts["legacy"] = plat["bios"]
    if plat.get("uefi"):
        opts["uefi"] = {"vendor": ctx.distro.vendor, "install": True, "unified": True}
    return opts


@pipeline_kind("ostree-deployment")
class OSTreeDeployment(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        # images' OSTreeDeployment.getBuildPackages: shadow-utils for a users stage (the
        # blueprint's users, or root locked where the image config asks)
        if not follows_images(ctx):
            return ["rpm-ostree"], {}
        accounts = bool(ctx.os.users) or bool(ostree_data(ctx).get("lock_root_user", False))
        return ["rpm-ostree"] + (["shadow-utils"] if accounts else []), {}

    def ostree_sources(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[Any]:
        return [payload_source(ctx)]

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        commit = payload_commit(ctx, spec["name"])
        return _with_build(ctx, ostree.deployment_pipeline(commit, deployment_spec(ctx, commit), name=spec["name"]))


# --- simplified installer ---------------------------------------------------------------------


def make_simplified(ctx: ManifestContext) -> simplified.SimplifiedInstaller:
    cust = ctx.blueprint.get("customizations") or {}
    cfg = installer_config(ctx)
    return simplified.SimplifiedInstaller(
        installer=make_installer(ctx, anaconda_iso=False),
        installation_device=str(cust.get("installation_device") or ""),
        fdo=simplified.FDO.from_blueprint(cust.get("fdo")),
        ignition_config=simplified.embedded_ignition(cust.get("ignition")),
        additional_dracut_modules=list(cfg.get("additional_dracut_modules") or []),
        today=follows_images(ctx),
    )


def coi_boot_packages(ctx: ManifestContext) -> list[str]:
    """What the coreos-installer tree boots with; on releases following images also the platform's
    packages and biosdevname on x86_64 (images' CoreOSInstaller.getBootPackages)."""
    pkgs = anaconda.anaconda_boot_packages(ctx.arch)
    if follows_images(ctx):
        pkgs += list(platform(ctx).get("packages") or [])
        if ctx.arch == "x86_64":
            pkgs.append("biosdevname")
    return pkgs


@pipeline_kind("coi-tree")
class CoreOSInstallerTree(PipelineKind):
    def package_sets(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        return data_package_chain(ctx, spec["name"], coi_boot_packages(ctx))

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        pkgs = coi_boot_packages(ctx) + ["rpm", "lorax-templates-generic"]
        if follows_images(ctx) and ctx.distro.rpmkeys.get("binary_path"):
            pkgs.append("pqrpm")
        return pkgs, {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        si = make_simplified(ctx)
        for data in si.inline_data():
            checksum = simplified.inline_checksum(data)
            ctx.inline_sources[checksum] = simplified.inline_sources([data])["org.osbuild.inline"]["items"][checksum]
        pipeline = simplified.coi_tree_pipeline(
            si, rpm_stages=ctx.rpm_stages(name), kernel_ver=kernel_of(ctx, name)
        )
        return _with_build(ctx, pipeline)


@pipeline_kind("coi-bootiso-tree")
class CoreOSISOTree(PipelineKind):
    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        pipeline = simplified.coi_bootiso_tree_pipeline(
            make_simplified(ctx),
            kernel_ver=kernel_of(ctx, "coi-tree"),
            efiboot_volid=efiboot_volid(ctx),
            image_pipeline=spec.get("input", "xz"),
        )
        return _with_build(ctx, pipeline)


def _with_build(ctx: ManifestContext, pipeline: dict[str, Any]) -> dict[str, Any]:
    """Our builders write `build: name:build`; a host-build-root distro has none."""
    out = {k: v for k, v in pipeline.items() if k != "build"}
    ref = build_ref(ctx)
    if ref:
        out = {"name": out["name"], **ref, **{k: v for k, v in out.items() if k != "name"}}
    return out
