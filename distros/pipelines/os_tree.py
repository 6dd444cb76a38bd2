"""The `os` pipeline: the image's root tree, installed from RPMs and configured.

Stage order is osbuild-composer's: RPMs, BLS fix-up, locale/keyboard/hostname/time, groups and
users, firewall, the image config's configuration stages, then the disk-dependent stages (fstab,
bootloader, kernel command line — the latter placed first in the pipeline), RHSM facts, the
blueprint's directories and files, services, FIPS, OpenSCAP and finally SELinux labelling.
"""

from __future__ import annotations

from typing import Any

from distros import ostree
from distros.containers import ContainerSpec, add_container_sources, skopeo_stages
from distros.customizations import (
    CONFIG_STAGES,
    EMPTY_OPTIONS_STAGES,
    FileNode,
    blueprint_packages,
    inline_source,
    split_certificates,
)
from distros.definitions import DefinitionError
from distros.engine import ManifestContext, PipelineKind, pipeline_kind
from distros.ostree import CommitSpec, add_commit_sources, ostree_first_boot_stage
from distros.pipelines.build import build_ref
from distros.stages import fstab_stage, mount_unit_stages, selinux_stage, source_file_input, stage

MACHINE_ID_PLACEHOLDER = "ffffffffffffffffffffffffffffffff"
# images gives every legacy grub menu entry this fixed id (pkg/manifest/os.go grubStage)
LEGACY_MENU_ENTRY_ID = "76a22bf4-f153-4541-b6c7-0332c0dfaeac"
# grub2-mkconfig's GRUB_DISTRIBUTOR as RHEL's /etc/default/grub sets it
LEGACY_DISTRIBUTOR = "$(sed 's, release .*$,,g' /etc/system-release)"
OSCAP_DATA_DIR = "/oscap_data"
CA_ANCHORS = "/etc/pki/ca-trust/source/anchors"


def _cert_name(pem: str) -> str:
    """A stable file name per certificate (osbuild-composer uses the serial; the digest is as stable)."""
    import hashlib

    return hashlib.sha256(pem.strip().encode()).hexdigest()[:16]


FIPS_FILES = {
    "/etc/system-fips": b"# FIPS module installation complete\n",
}


def platform(ctx: ManifestContext) -> dict[str, Any]:
    """Bootloader facts of the arch: family defaults, narrowed by the image type (for all
    arches, or per arch when the image type's `platform` is keyed by arch)."""
    plat = dict((ctx.data.get("platforms") or {}).get(ctx.arch) or {})
    override = ctx.data.get("platform") or {}
    plat.update(override.get(ctx.arch) or {} if ctx.arch in override else override)
    return plat


def os_package_chain(ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]]:
    o = ctx.os
    plat = platform(ctx)
    base: list[str] = []
    exclude: list[str] = []
    today = ctx.distro.follows == "images"
    # images puts the platform's packages and the kernel into every OS tree (OS.getPackageSetChain):
    # an ostree commit is booted later, from a deployment, so it carries them too
    commit_tree = today and bool(spec.get("ostree"))
    if ctx.image_type.bootable or ctx.partition_table is not None or commit_tree:
        base += list(plat.get("packages") or [])
    if today and ctx.partition_table is not None and not ctx.distro.host_build_root:
        # images installs the table's tools into the image too (OS.getPackageSetChain); the
        # test distro builds with the host's tools from a small local repository
        base += ctx.partition_table.build_packages()
    elif ctx.partition_table is not None and ctx.partition_table.has_lvm():
        base.append("lvm2")
    for pset in (ctx.data.get("package_sets") or {}).get(spec["name"], []):
        base += list(pset.get("include") or [])
        exclude += list(pset.get("exclude") or [])
    # images installs a kernel into bootable and ostree trees only (a kernel name alone, e.g. a
    # blueprint's on a tar image, adds none); osbuild-composer in 2023 installed any named kernel
    wants_kernel = ctx.image_type.bootable or commit_tree or (not today and o.kernel_name != "kernel")
    if o.kernel_name and wants_kernel:
        base.append(o.kernel_name)
    extra: list[str] = []
    if o.chrony is not None:
        extra.append("chrony")
    if o.selinux:
        extra.append(f"selinux-policy-{o.selinux}")
    if o.openscap:
        extra += ["openscap-scanner", "scap-security-guide", "xz"]
    # images puts no accounts into an installer's payload tree (the kickstart creates them)
    accounts = not (today and spec.get("installer_payload"))
    if accounts and (o.users or o.groups or (today and o.lock_root_user)):
        extra += ["shadow-utils", "pam", "passwd"]
    elif accounts and o.lock_root_user:
        extra.append("shadow-utils")
    if o.versionlock_packages:
        extra += ["dnf", "python3-dnf-plugin-versionlock"] if today else ["python3-dnf-plugin-versionlock"]
    if o.firewall is not None:
        extra.append("firewalld")
    # images concatenates the lists as they are (a name twice is depsolved twice); osbuild-composer
    # in 2023 deduplicated them
    unique = (lambda names: list(names)) if today else _unique
    chain = []
    if base:
        chain.append({"include": unique(base), "exclude": unique(exclude), "install_weak_deps": o.install_weak_deps})
    if extra:
        chain.append({"include": unique(extra), "exclude": [], "install_weak_deps": False})
    bp = blueprint_packages(ctx.blueprint)
    streams = [f"{m['name']}:{m['stream']}" for m in ctx.blueprint.get("enabled_modules") or []]
    if bp or streams:
        chain.append({"include": unique(bp), "exclude": [], "install_weak_deps": False,
                      **({"enable_modules": streams} if streams else {})})
    return chain


def images_os_build_packages(ctx: ManifestContext, spec: dict[str, Any]) -> list[str]:
    """What an OS tree needs in the build root, in osbuild/images' order (`OS.getBuildPackages`)."""
    o = ctx.os
    plat = platform(ctx)
    bootable = ctx.image_type.bootable or ctx.partition_table is not None or bool(spec.get("ostree"))
    pkgs = list(plat.get("build_packages") or []) if bootable else []
    if ctx.partition_table is not None:
        pkgs += ctx.partition_table.build_packages()
    pkgs.append("rpm")
    if spec.get("ostree"):
        pkgs.append("rpm-ostree")
    if o.selinux:
        pkgs += ["policycoreutils", f"selinux-policy-{o.selinux}"]
    if o.stages.get("cloud_init"):
        # EL 7 spells the YAML module's package python3-PyYAML (images' OS.getBuildPackages)
        pkgs.append("python3-PyYAML" if ctx.distro.version.split(".")[0] == "7" else "python3-pyyaml")
    if o.stages.get("dnf_config") or o.stages.get("rhsm") or o.wsl_conf or o.wsl_distribution_conf:
        pkgs.append("python3-iniparse")
    if ctx.options.containers.get(spec["name"]) or ctx.blueprint.get("containers"):
        if spec.get("ostree"):
            pkgs.append(toml_writer_package(ctx))
        pkgs.append("skopeo")
    if o.openscap and (o.openscap.get("tailoring") or o.openscap.get("json_tailoring")):
        # any tailoring (rules or a JSON file) runs autotailor from the build root
        pkgs.append("openscap-utils")
    if spec.get("bootc_install_config"):
        # the stage writes TOML
        pkgs.append(toml_writer_package(ctx))
    if plat.get("bootloader") == "uki":
        pkgs.append("libkcapi-hmaccalc")
    if (o.users or o.groups or o.lock_root_user) and not spec.get("installer_payload"):
        pkgs.append("shadow-utils")
    if ctx.distro.rpmkeys.get("binary_path"):
        pkgs.append("pqrpm")
    return pkgs


def toml_writer_package(ctx: ManifestContext) -> str:
    """The Python TOML writer of the build root (images' tomlPkgsFor): EL 8/9 their old libraries,
    later releases tomli-w."""
    if ctx.distro.family == "fedora":
        return "python3-tomli-w"
    return {"8": "python3-pytoml", "9": "python3-toml"}.get(ctx.distro.version.split(".")[0], "python3-tomli-w")


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    return out


def directory_stages(dirs: list[FileNode]) -> list[dict[str, Any]]:
    if not dirs:
        return []
    paths = []
    for d in dirs:
        p: dict[str, Any] = {"path": d.path}
        if d.ensure_parents:
            p["parents"] = True
        if d.mode is None and d.user is None and d.group is None:
            p["exist_ok"] = True
        paths.append(p)
    stages = [stage("mkdir", {"paths": paths})]
    stages += _chmod_chown(dirs)
    return stages


def _chmod_chown(nodes: list[FileNode]) -> list[dict[str, Any]]:
    out = []
    chmod = {n.path: {"mode": n.mode} for n in nodes if n.mode is not None}
    if chmod:
        out.append(stage("chmod", {"items": chmod}))
    chown: dict[str, Any] = {}
    for n in nodes:
        if n.user is None and n.group is None:
            continue
        item: dict[str, Any] = {}
        if n.user is not None:
            item["user"] = n.user
        if n.group is not None:
            item["group"] = n.group
        chown[n.path] = item
    if chown:
        out.append(stage("chown", {"items": chown}))
    return out


def file_stages(ctx: ManifestContext, files: list[FileNode]) -> list[dict[str, Any]]:
    """Files travel as inline sources and are copied into the tree, then get mode and owner."""
    if not files:
        return []
    inputs: dict[str, Any] = {}
    paths = []
    for f in files:
        checksum, item = inline_source(f)
        if f.source_path is not None:
            # a local file travels by its `file:` URL (images' GenSources FileRefs)
            ctx.extra_sources.setdefault("org.osbuild.curl", {})[checksum] = {"url": f"file:{f.source_path}"}
        else:
            ctx.inline_sources[checksum] = item
        digest = checksum.split(":", 1)[1]
        name = f"file-{digest}"
        inputs[name] = source_file_input(checksum)
        paths.append({"from": f"input://{name}/{checksum}", "to": f"tree://{f.path}", "remove_destination": True})
    stages = [stage("copy", {"paths": paths}, inputs=dict(sorted(inputs.items())))]
    stages += _chmod_chown(files)
    return stages


_GRUB2_CONFIG_ORDER = ["default", "disable_recovery", "disable_submenu", "distributor", "terminal", "terminal_input",
                       "terminal_output", "timeout", "timeout_style", "serial"]


def bootc_install_config_stage(ctx: ManifestContext, cfg: dict[str, Any]) -> dict[str, Any]:
    """`bootc install`'s defaults inside the image: /usr/lib/bootc/install/20-<distro>.toml naming
    the root filesystem type (images' bootable containers: `20-fedora.toml`, ext4)."""
    filename = str(cfg.get("filename", "20-{family}.toml")).format(family=ctx.distro.family)
    return stage("bootc.install.config", {"filename": filename, "config": {
        "install": {"filesystem": {"root": {"type": cfg["root_fs_type"]}}}}})


@pipeline_kind("os")
class OSTree(PipelineKind):
    # `bootc_install_config`: {filename, root_fs_type} of the bootc install configuration a bootable
    # container carries
    spec_keys = frozenset({"bootc_install_config"})

    def package_sets(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[dict[str, Any]] | None:
        return os_package_chain(ctx, spec)

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        if ctx.distro.follows == "images":
            return images_os_build_packages(ctx, spec), {}
        plat = platform(ctx)
        bootable = ctx.image_type.bootable or ctx.partition_table is not None
        pkgs = (list(plat.get("build_packages") or []) if bootable else []) + ["rpm"]
        if ctx.os.selinux:
            pkgs += ["policycoreutils", f"selinux-policy-{ctx.os.selinux}"]
        if ctx.os.stages.get("cloud_init"):
            pkgs.append("python3-pyyaml")
        if (ctx.os.stages.get("dnf_config") or ctx.os.stages.get("rhsm") or ctx.os.wsl_conf
                or ctx.os.wsl_distribution_conf):
            pkgs.append("python3-iniparse")
        if ctx.os.users or ctx.os.groups or ctx.os.lock_root_user:
            pkgs.append("shadow-utils")
        if ctx.os.openscap and (ctx.os.openscap.get("tailoring") or {}):
            pkgs.append("openscap-utils")
        if ctx.options.containers.get(spec["name"]) or ctx.blueprint.get("containers"):
            if spec.get("ostree"):
                pkgs.append("python3-toml")
            pkgs.append("skopeo")
        return pkgs, {}

    def ostree_sources(self, ctx: ManifestContext, spec: dict[str, Any]) -> list[Any]:
        """An ostree tree with a compose URL has a parent commit to resolve."""
        if not spec.get("ostree"):
            return []
        from distros.pipelines.installers import parent_source

        source = parent_source(ctx)
        return [source] if source is not None else []

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        name = spec["name"]
        o = ctx.os
        pt = ctx.partition_table
        plat = platform(ctx)
        stages: list[dict[str, Any]] = []
        dracut_first = bool(ctx.data.get("dracut_conf_first")) or ctx.distro.follows == "images"
        if dracut_first:
            # the initramfs is built while the kernel package installs: its dracut configuration
            # has to be in the tree before; images prepends each one (pkg/manifest/os.go
            # prependStage), so the last configured comes first
            confs = list(o.stages.get("dracut_conf") or [])
            if ctx.distro.follows == "images":
                confs.reverse()
            stages += [stage("dracut.conf", options) for options in confs]

        rpm_options: dict[str, Any] = {}
        if o.exclude_docs:
            rpm_options["exclude"] = {"docs": True}
        rpm_options.update(ctx.data.get("rpm_options") or {})
        if o.gpgkey_files:
            rpm_options["gpgkeys.fromtree"] = list(o.gpgkey_files)
        if plat.get("bootloader") == "uki" and pt is not None:
            # kernel-install puts the unified kernel image straight onto the ESP
            rpm_options["kernel_install_env"] = {"boot_root": esp_mountpoint(pt)}
        if spec.get("ostree"):
            rpm_options.update({"dbpath": "/usr/share/rpm", "ostree_booted": True})
            if ctx.distro.follows == "images":
                # rpm-ostree runs dracut itself when it composes the commit, and a second kernel
                # (dracut-config-rescue's) would break it: images turns dracut off here
                rpm_options["disable_dracut"] = True
            parents = [CommitSpec.from_dict(c) for c in ctx.options.ostree_commits.get(name) or []]
            if parents:
                # keep the parent commit's uid/gid allocations
                stages.append(ostree.passwd_stage(parents[0]))
                add_commit_sources(ctx, parents[:1])
        stages += ctx.rpm_stages(name, **rpm_options)

        if not ctx.data.get("no_bls"):
            boot = pt.find("/boot") if pt is not None else None
            on_plain_partition = boot is not None and len(boot[1]) == 1
            stages.append(stage("fix-bls", {"prefix": ""} if on_plain_partition else {}))

        containers = [ContainerSpec.from_dict(c) for c in ctx.options.containers.get(name) or []]
        if containers:
            # the blueprint's container images, pre-pulled into the tree's container storage
            stages += skopeo_stages(containers, ostree=bool(spec.get("ostree")))
            add_container_sources(ctx, containers)

        if o.language:
            stages.append(stage("locale", {"language": o.language}))
        if o.keyboard:
            km: dict[str, Any] = {"keymap": o.keyboard}
            if o.x11_layouts:
                km["x11-keymap"] = {"layouts": o.x11_layouts}
            stages.append(stage("keymap", km))
        if o.hostname:
            stages.append(stage("hostname", {"hostname": o.hostname}))
        if o.timezone:
            stages.append(stage("timezone", {"zone": o.timezone}))
        if o.chrony is not None:
            stages.append(stage("chrony", o.chrony))
        # an installer's payload gets its users from the kickstart, not in the tree
        in_tree_accounts = not spec.get("installer_payload")
        if o.groups and in_tree_accounts:
            options: dict[str, Any] = {"groups": o.groups}
            if ctx.distro.follows == "images":
                # groupadd --force: a group the blueprint names may already come from a package
                options["force"] = True
            stages.append(stage("groups", options))
        if o.lock_root_user and in_tree_accounts:
            stages.append(stage("users", {"users": {"root": {"password": "!locked"}}}))
        if o.users and in_tree_accounts:
            if spec.get("ostree"):
                # keys are written on first boot: in a commit they would land in the read-only /usr side
                stages.append(stage("users", {"users": {n: {k: v for k, v in u.items() if k != "key"}
                                                         for n, u in o.users.items()}}))
                stages.append(ostree_first_boot_stage(o.users, today=ctx.distro.follows == "images"))
            else:
                stages.append(stage("users", {"users": o.users}))
        if o.firewall is not None:
            stages.append(stage("firewall", o.firewall))
        for key, type_, many in CONFIG_STAGES:
            value = o.stages.get(key)
            if value is None or (not value and key not in EMPTY_OPTIONS_STAGES) or (key == "dracut_conf"
                                                                                  and dracut_first):
                continue
            for options in (value if many else [value]):
                stages.append(stage(type_, options))

        kernel_opts = list(o.kernel_options)
        if pt is not None:
            root = pt.find("/")
            assert root is not None
            root_uuid = root[0].uuid
            mount_units = ctx.data.get("mount_configuration") == "units"
            if mount_units:
                # without an fstab nothing remounts / read-write after the initrd: boot it rw, with
                # its mount options on the command line
                if "ro" in kernel_opts:
                    kernel_opts[kernel_opts.index("ro")] = "rw"
                if root[0].fstab_options != "defaults":
                    kernel_opts.insert(0, f"rootflags={root[0].fstab_options}")
            elif root[0].subvol:
                # the initrd mounts the volume's root subvolume, not its top
                kernel_opts.insert(0, f"rootflags=subvol={root[0].subvol}")
            if o.fips:
                kernel_opts.append("fips=1")
                boot = pt.find("/boot")
                if boot is not None:
                    label = boot[0].label
                    kernel_opts.append(f"boot=LABEL={label}" if label else f"boot=UUID={boot[0].uuid}")
                stages.append(stage("dracut", {"kernel": [ctx.kernel_version()], "add_modules": ["fips"]}))
            stages += mount_unit_stages(pt) if mount_units else [fstab_stage(pt)]
            loader = plat.get("bootloader", "grub2")
            if loader == "grub2":
                stages.append(self._grub2(ctx, plat, root_uuid, kernel_opts))
            elif loader == "grub2-legacy":
                stages.append(self._grub2_legacy(ctx, plat, root_uuid, kernel_opts))
            elif loader == "zipl":
                stages.append(stage("zipl", {}))
            elif loader == "uki":
                stages += uki_boot_stages(ctx, pt, plat)
            if loader == "zipl" or (loader in ("grub2", "grub2-legacy") and not o.kernel_options_bootloader):
                stages.insert(0, stage("kernel-cmdline", {"root_fs_uuid": root_uuid,
                                                          "kernel_opts": " ".join(kernel_opts)}))
        if o.rhsm_facts:
            # only the API type: images writes the OpenSCAP profile as a fact only when the caller
            # passes one in its ImageOptions.Facts (osbuild-composer's cloud API for Insights
            # compliance), never from the blueprint; the Weldr API passes the API type alone
            stages.append(stage("rhsm.facts", {"facts": {"image-builder.osbuild-composer.api-type": ctx.options.api_type}}))

        if spec.get("ostree"):
            stages.append(ostree.journald_persistent_stage())
        stages += directory_stages(o.directories)
        stages += file_stages(ctx, o.files)

        systemd: dict[str, Any] = {}
        if o.enabled_services:
            systemd["enabled_services"] = o.enabled_services
        if o.disabled_services:
            systemd["disabled_services"] = o.disabled_services
        if o.masked_services:
            systemd["masked_services"] = o.masked_services
        if o.default_target:
            systemd["default_target"] = o.default_target
        if systemd:
            stages.append(stage("systemd", systemd))
        if o.shell_init:
            stages.append(stage("shell.init", o.shell_init))
        if o.wsl_conf:
            stages.append(stage("wsl.conf", o.wsl_conf))
        if o.wsl_distribution_conf:
            dist = json_copy(o.wsl_distribution_conf)
            oobe = dist.get("oobe") or {}
            if "default_name" in oobe:
                oobe["default_name"] = oobe["default_name"].replace("%s", ctx.distro.os_version)
            stages.append(stage("wsl-distribution.conf", dist))

        if o.fips:
            stages.append(stage("update-crypto-policies", {"policy": "FIPS"}))
            stages.append(stage("dracut.conf", {"filename": "40-fips.conf", "config": {"add_dracutmodules": ["fips"]}}))
            stages += file_stages(ctx, [FileNode(path=p, data=d, mode="0644", user="root", group="root")
                                        for p, d in FIPS_FILES.items()])
        if o.openscap:
            stages += self._openscap(ctx)
        if o.presets:
            stages.append(stage("systemd.preset", {"presets": [dict(p) for p in o.presets]}))
        if o.ca_certs and ctx.distro.follows == "images":
            # one anchor per certificate, named after its serial (NewCAFileNodes), each bundle's
            # files copied on their own, then the trust store rebuilt
            for bundle in o.ca_certs:
                stages += file_stages(ctx, [FileNode(path=f"{CA_ANCHORS}/{serial}.pem", data=cert.encode(),
                                                     user="root", group="root")
                                            for serial, cert in split_certificates(bundle)])
            stages.append(stage("pki.update-ca-trust"))
        elif o.ca_certs:
            # anchors, then the trust store rebuilt from them
            stages += file_stages(ctx, [FileNode(path=f"{CA_ANCHORS}/{_cert_name(pem)}.pem", data=pem.encode(),
                                                 mode="0644", user="root", group="root") for pem in o.ca_certs])
            stages.append(stage("pki.update-ca-trust", {}))
        if o.versionlock_packages:
            stages += versionlock_stages(ctx, name, o.versionlock_packages)
        if o.machine_id_uninitialized:
            stages.append(stage("machine-id", {"first-boot": "yes"}))
        if o.selinux:
            stages.append(selinux_stage(o.selinux, force_autorelabel=o.selinux_force_relabel))
        if spec.get("ostree"):
            stages.append(ostree.preptree_stage(spec.get("etc_group_members")))
            if o.bootupd_gen_metadata or spec.get("bootc_install_config"):
                # a bootable container always carries bootupd's metadata: `bootc install` updates
                # the bootloader through it
                stages.append(ostree.bootupd_gen_metadata_stage())
            bootc = spec.get("bootc_install_config")
            if bootc:
                stages.append(bootc_install_config_stage(ctx, bootc))
        elif spec.get("bootc_install_config"):
            raise DefinitionError(f"pipeline {name}: bootc_install_config needs an ostree tree")
        return {"name": name, **build_ref(ctx), "stages": stages}

    def _grub2(self, ctx: ManifestContext, plat: dict[str, Any], root_uuid: str,
               kernel_opts: list[str]) -> dict[str, Any]:
        pt = ctx.partition_table
        assert pt is not None
        opts: dict[str, Any] = {"root_fs_uuid": root_uuid}
        if ctx.distro.follows == "images":
            # images always asks for the highest grub2 stage compatibility (NewGrub2StageOptions)
            opts = {"compat_version": 2, **opts}
        boot = pt.find("/boot")
        if boot is not None and len(boot[1]) == 1:
            # only a /boot filesystem right on a partition (images' FindMountableOnPlain), not a
            # logical volume, LUKS payload or btrfs subvolume
            opts["boot_fs_uuid"] = boot[0].uuid
        opts["kernel_opts"] = " ".join(kernel_opts)
        if plat.get("bios"):
            opts["legacy"] = plat["bios"]
        if plat.get("uefi"):
            opts["uefi"] = {"vendor": ctx.distro.vendor}
            if plat.get("uefi_unified", True):   # EL 8 keeps a separate EFI grub.cfg
                opts["uefi"]["unified"] = True
        kver = ctx.kernel_version()
        if kver:
            opts["saved_entry"] = f"{MACHINE_ID_PLACEHOLDER}-{kver}"
        if not ctx.os.kernel_options_bootloader:
            opts["write_cmdline"] = False
        config = {"default": "saved", **ctx.os.grub2_config}
        # in the order of osbuild/images' GRUB2Config fields (pkg/osbuild/grub2_stage.go)
        opts["config"] = {k: config[k] for k in sorted(config, key=_GRUB2_CONFIG_ORDER.index)}
        return stage("grub2", opts)

    def _grub2_legacy(self, ctx: ManifestContext, plat: dict[str, Any], root_uuid: str,
                      kernel_opts: list[str]) -> dict[str, Any]:
        """Menu entries written into grub.cfg, for grub without BLS support (RHEL 7), as images'
        grub2.legacy stage options (pkg/osbuild/grub2_legacy_stage.go): one default entry for
        the installed kernel, a rescue entry when dracut-config-rescue is in the tree."""
        pt = ctx.partition_table
        assert pt is not None
        product = {"name": ctx.distro.product, "version": ctx.distro.os_version}
        if ctx.distro.codename:
            product["nick"] = ctx.distro.codename
        kver = ctx.kernel_version()
        entries: list[dict[str, Any]] = [{"default": True, "id": LEGACY_MENU_ENTRY_ID, "kernel": kver,
                                          "product": product}]
        if any(p["name"] == "dracut-config-rescue" for p in ctx.packages.get("os", [])):
            entries.append({"id": LEGACY_MENU_ENTRY_ID, "kernel": f"0-rescue-{MACHINE_ID_PLACEHOLDER}",
                            "product": product})
        opts: dict[str, Any] = {"rootfs": {"uuid": root_uuid}, "entries": entries}
        if plat.get("bios"):
            opts["bios"] = {"platform": plat["bios"]}
        if plat.get("uefi"):
            opts["uefi"] = {"vendor": ctx.distro.vendor}
        boot = pt.find("/boot")
        if boot is not None:
            opts["bootfs"] = {"uuid": boot[0].uuid}
        config = {"distributor": LEGACY_DISTRIBUTOR, **ctx.os.grub2_config}
        config = {k: config[k] for k in sorted(config, key=_GRUB2_CONFIG_ORDER.index)}
        config["cmdline"] = " ".join(kernel_opts)
        opts["config"] = config
        return stage("grub2.legacy", opts)

    def _openscap(self, ctx: ManifestContext) -> list[dict[str, Any]]:
        """Remediation last before labelling; a blueprint tailoring becomes a tailored profile first.

        Releases following osbuild/images write its options (`pkg/osbuild/oscap_autotailor_stage.go`,
        `oscap_remediation_stage.go`: field order, `compress_results`, JSON tailoring files; the
        data directory is made with the blueprint's directories); July-2023 ones osbuild-composer's."""
        scap = ctx.os.openscap or {}
        today = ctx.distro.follows != "osbuild-composer-2023"
        datastream = scap.get("datastream") or ctx.image_type.image_config().get("oscap_datastream", "")
        profile = scap["profile_id"]
        path = f"{OSCAP_DATA_DIR}/tailoring.xml"
        stages = []
        tailoring = scap.get("tailoring") or {}
        json_tailoring = scap.get("json_tailoring") or {}
        tailored = ""
        if tailoring.get("selected") or tailoring.get("unselected"):
            tailored = f"{profile}_osbuild_tailoring"
            if today:
                tcfg: dict[str, Any] = {"new_profile": tailored, "datastream": datastream, "profile_id": profile}
            else:
                tcfg = {"profile_id": profile, "datastream": datastream, "new_profile": tailored}
            for key in ("selected", "unselected"):
                if tailoring.get(key):
                    tcfg[key] = list(tailoring[key])
            if not today:
                stages.append(stage("mkdir", {"paths": [{"path": OSCAP_DATA_DIR, "exist_ok": True}]}))
            stages.append(stage("oscap.autotailor", {"filepath": path, "config": tcfg}))
        elif json_tailoring:
            # a tailoring file the blueprint puts into the tree (e.g. under /oscap_data)
            tailored = json_tailoring["profile_id"]
            stages.append(stage("oscap.autotailor", {"filepath": path, "config": {
                "tailored_profile_id": tailored, "datastream": datastream,
                "tailoring_file": json_tailoring["filepath"]}}))
        if today:
            config: dict[str, Any] = {"datastream": datastream, "profile_id": tailored or profile}
            if tailored:
                config["tailoring"] = path
            config["compress_results"] = True
        else:
            config = {"profile_id": tailored or profile, "datastream": datastream}
            if tailored:
                config["tailoring"] = path
        stages.append(stage("oscap.remediation", {"data_dir": OSCAP_DATA_DIR, "config": config}))
        return stages


ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
UKI_SHIM_ARCH = {"x86_64": "x64", "aarch64": "aa64"}
# uki-direct writes the kernel's .hmac and add-on directory itself from this version on
UKI_DIRECT_SELF_SUFFICIENT = (25, 3)


def esp_mountpoint(pt: Any) -> str:
    for fs, path in pt.filesystems():
        if len(path) == 1 and path[0].type.upper() in (ESP_GUID, "EF"):
            return fs.mountpoint
    raise ValueError("a UKI image needs an EFI system partition")


def uki_boot_stages(ctx: ManifestContext, pt: Any, plat: dict[str, Any]) -> list[dict[str, Any]]:
    """No boot loader configuration: shim boots the UKI named in its BOOT<ARCH>.CSV (UTF-16)."""
    esp = esp_mountpoint(pt)
    short = UKI_SHIM_ARCH.get(ctx.arch)
    if short is None:
        raise ValueError(f"UKIs are built for x86_64 and aarch64, not {ctx.arch}")
    vendor = str(plat.get("uefi_vendor") or ctx.distro.vendor)
    kver = ctx.kernel_version()
    uki = f"{MACHINE_ID_PLACEHOLDER}-{kver}.efi"
    csv = f"shim{short}.efi,{vendor},\\EFI\\Linux\\{uki} ,UKI bootentry\n"
    stages = file_stages(ctx, [FileNode(path=f"{esp}/EFI/{vendor}/BOOT{short.upper()}.CSV",
                                        data=csv.encode("utf-16-le"))])
    direct = next((p for p in ctx.packages.get("os", []) if p["name"] == "uki-direct"), None)
    if direct is not None and _version(direct["version"]) < UKI_DIRECT_SELF_SUFFICIENT:
        kernel_path = f"{esp}/EFI/Linux/{uki}"
        stages.append(stage("hmac", {"paths": [kernel_path], "algorithm": "sha512"}))
        stages += directory_stages([FileNode(path=kernel_path + ".extra.d", ensure_parents=True)])
    return stages


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(".") if x.isdigit())


def versionlock_stages(ctx: ManifestContext, pipeline: str, names: list[str]) -> list[dict[str, Any]]:
    """dnf4's versionlock list: each named package at the version the image installed."""
    installed = {p["name"]: p for p in ctx.packages.get(pipeline, [])}
    locks = [f"{n}-{installed[n].get('epoch') or 0}:{installed[n]['version']}-{installed[n]['release']}"
             for n in names if n in installed]
    return [stage("dnf4.versionlock", {"add": locks})] if locks else []


def json_copy(value: Any) -> Any:
    import copy

    return copy.deepcopy(value)
