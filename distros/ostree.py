"""OSTree image types: compose options, commit sources, and the ostree pipeline kinds.

An ostree image type either *produces* a commit (edge-commit, iot-commit, edge-container: the `os`
tree is committed by `ostree-commit`, then archived or served from a container) or *consumes* one
(edge-raw-image, edge-installer, simplified installer: a commit pulled from a URL is deployed or
embedded). Consumed and parent commits are named by a `SourceSpec` (URL + ref) that the compose
resolves to a `CommitSpec` (with checksum) before the manifest is serialized, the way
osbuild-composer resolves them; the manifest then carries them as `org.osbuild.ostree` sources.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from distros.errors import RequestError
from distros.kickstart import KickstartError, KickstartSettings
from distros.stages import path_escape

# osbuild's name for the subscription-manager secrets of an ostree remote
RHSM_SECRETS = "org.osbuild.rhsm.consumer"


class OSTreeOptionsError(RequestError):
    """A compose request's ostree options or blueprint do not fit the image type.

    A `RequestError`, so POST /compose answers it as every other request check does.
    """


# ostree's own rule for a ref name (ostree_validate_rev): `/`-separated parts, each starting with a
# letter, digit or underscore, then letters, digits and `-._`; a commit is 64 hex digits
_REF = re.compile(r"(?:[A-Za-z0-9_][-._A-Za-z0-9_]*/)*[A-Za-z0-9_][-._A-Za-z0-9_]*")
_CHECKSUM = re.compile(r"[0-9a-f]{64}")


def check_refs(options: "OSTreeOptions") -> None:
    """The ref to build and the parent ref or commit, refused as osbuild/images refuses them
    (`../../x`, `a b`, a ref that is really a checksum)."""
    if options.ref:
        if _CHECKSUM.fullmatch(options.ref):
            raise OSTreeOptionsError(f"ostree image ref looks like a checksum {_go_quote(options.ref)}")
        if not _REF.fullmatch(options.ref):
            raise OSTreeOptionsError(f"invalid ostree image ref {_go_quote(options.ref)}")
    if options.parent and not (_CHECKSUM.fullmatch(options.parent) or _REF.fullmatch(options.parent)):
        raise OSTreeOptionsError(f"invalid ostree parent ref or commit {_go_quote(options.parent)}")


class OSTreeResolveError(OSTreeOptionsError):
    """A commit could not be resolved (osbuild-composer's `OSTreeOptionsError`)."""

    api_id = "OSTreeOptionsError"

    @property
    def api_message(self) -> str:
        return str(self)


@dataclass(frozen=True)
class OSTreeOptions:
    """The `ostree` object of a compose request (Weldr: ref, parent, url; plus contenturl, rhsm)."""

    ref: str = ""
    parent: str = ""
    url: str = ""
    content_url: str = ""
    rhsm: bool = False

    @classmethod
    def from_request(cls, data: Mapping[str, Any] | None) -> "OSTreeOptions":
        data = data or {}
        return cls(
            ref=str(data.get("ref") or ""),
            parent=str(data.get("parent") or ""),
            url=str(data.get("url") or ""),
            content_url=str(data.get("contenturl") or data.get("content_url") or ""),
            rhsm=bool(data.get("rhsm") or False),
        )

    def is_empty(self) -> bool:
        return not (self.ref or self.parent or self.url or self.content_url or self.rhsm)


@dataclass(frozen=True)
class SourceSpec:
    """A commit to resolve: where to fetch it, which ref, and whether RHSM secrets are needed."""

    url: str
    ref: str
    rhsm: bool = False


@dataclass(frozen=True)
class CommitSpec:
    """A resolved commit, as the golden cases' `ostree-commits` list it."""

    ref: str
    url: str
    checksum: str
    content_url: str = ""
    secrets: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CommitSpec":
        def get(*names: str) -> str:
            for name in names:
                if data.get(name):
                    return str(data[name])
            return ""

        return cls(
            ref=get("Ref", "ref"),
            url=get("URL", "url"),
            checksum=get("Checksum", "checksum"),
            content_url=get("ContentURL", "content_url", "contenturl"),
            secrets=get("Secrets", "secrets"),
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "Ref": self.ref,
            "URL": self.url,
            "ContentURL": self.content_url,
            "Secrets": self.secrets,
            "Checksum": self.checksum,
        }


def test_commit(source: SourceSpec) -> CommitSpec:
    """The stand-in commit of a test-mode compose: no network, a checksum derived from URL + ref."""
    checksum = hashlib.sha256((source.url + source.ref).encode()).hexdigest()
    return CommitSpec(
        ref=source.ref,
        url=source.url,
        checksum=checksum,
        secrets=RHSM_SECRETS if source.rhsm else "",
    )


def parent_commit_source(options: OSTreeOptions | None, image_default_ref: str) -> tuple[SourceSpec | None, str]:
    """For commit-producing types: the optional parent to resolve and the ref of the new commit.

    A URL without a parent ref means "the parent is the current head of the ref being built".
    """
    ref = image_default_ref
    if options is None:
        return None, ref
    if options.ref:
        ref = options.ref
    if not options.url:
        return None, ref
    return SourceSpec(url=options.url, ref=options.parent or ref, rhsm=options.rhsm), ref


def payload_commit_source(options: OSTreeOptions | None, image_default_ref: str, type_name: str) -> SourceSpec:
    """For commit-consuming types: the commit to deploy or embed (a URL is mandatory)."""
    if options is None or not options.url:
        raise OSTreeOptionsError(f"{type_name}: ostree commit URL required")
    return SourceSpec(url=options.url, ref=options.ref or image_default_ref, rhsm=options.rhsm)


@dataclass(frozen=True)
class RequestRules:
    """What an image type accepts in a compose request (its data's `request_rules:`).

    osbuild-composer hard-codes these per image type name; here they are data, so a new ostree or
    installer type states its own. `allowed` lists customizations by osbuild-composer's names
    (User, Group, Kernel, ...); None means no restriction.
    """

    allowed: tuple[str, ...] | None = None
    kernel_append: bool = False  # ostree types refuse `kernel.append` unless this is set
    requires_url: bool = False  # a deployed commit must come from somewhere
    containers: bool = False  # ostree types embed blueprint containers only when set
    deprecated_accounts: bool = False  # users/groups still work but earn a warning
    installation_device: bool = False  # simplified installers: device, FDO and ignition rules

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> "RequestRules":
        data = dict(data or {})
        allowed = data.get("allowed")
        return cls(
            allowed=tuple(allowed) if allowed is not None else None,
            kernel_append=bool(data.get("kernel_append", False)),
            requires_url=bool(data.get("requires_url", False)),
            containers=bool(data.get("containers", False)),
            deprecated_accounts=bool(data.get("deprecated_accounts", False)),
            installation_device=bool(data.get("installation_device", False)),
        )


def check_options(
    *,
    type_name: str,
    rpm_ostree: bool,
    boot_iso: bool,
    options: OSTreeOptions | None,
    customizations: Mapping[str, Any] | None = None,
    has_containers: bool = False,
    distro_name: str = "",
    rules: RequestRules | None = None,
    today: bool = False,
) -> list[str]:
    """Reject what osbuild-composer rejects for this image type; return its warnings.

    `customizations` is the blueprint's customizations table with Weldr keys (user, group, kernel,
    filesystem, fdo, ignition, installation_device, openscap, ...).  With `today` (releases that
    follow osbuild/images' current definitions) custom mountpoints are refused only where the
    type's `allowed` list (images' supported options) leaves them out.
    """
    rules = rules or RequestRules()
    cust = dict(customizations or {})
    warnings: list[str] = []
    if has_containers and rpm_ostree and not rules.containers:
        raise OSTreeOptionsError(f"embedding containers is not supported for {type_name} on {distro_name}")

    url = ""
    if options is not None:
        check_refs(options)
        if options.parent and not options.url:
            raise OSTreeOptionsError("ostree parent ref specified, but no URL to retrieve it")
        url = options.url

    if boot_iso and rpm_ostree and not url:
        raise OSTreeOptionsError(
            f'boot ISO image type "{type_name}" requires specifying a URL from which to retrieve the OSTree commit'
        )
    if rules.requires_url and not url:
        raise OSTreeOptionsError(f'"{type_name}" images require specifying a URL from which to retrieve the OSTree commit')

    if rules.allowed is not None:
        present = {_CUSTOMIZATION_NAMES.get(k, k) for k, v in cust.items() if v not in (None, "", [], {})}
        if present - set(rules.allowed):
            kind = "boot ISO image type" if boot_iso else "image type"
            allowed = ", ".join(rules.allowed) or "None"
            raise OSTreeOptionsError(
                f'unsupported blueprint customizations found for {kind} "{type_name}": (allowed: {allowed})'
            )

    if boot_iso and cust.get("installer"):
        try:
            KickstartSettings.from_blueprint(cust)
        except KickstartError as exc:
            raise OSTreeOptionsError(str(exc)) from exc

    if rules.installation_device:
        if not cust.get("installation_device"):
            raise OSTreeOptionsError(
                f'boot ISO image type "{type_name}" requires specifying an installation device to install to'
            )
        _check_fdo(type_name, cust.get("fdo"))
        _check_ignition(cust.get("ignition"))

    if rules.deprecated_accounts:
        for key, what in (("user", "user"), ("group", "group")):
            if cust.get(key):
                warnings.append(
                    f'Please note that {what} customizations on "{type_name}" image type are deprecated and will be removed in the near future\n'
                )

    kernel = cust.get("kernel") or {}
    if rpm_ostree and kernel.get("append") and not rules.kernel_append:
        raise OSTreeOptionsError("kernel boot parameter customizations are not supported for ostree types")
    mountpoints_allowed = today and rules.allowed is not None and "Filesystem" in rules.allowed
    if rpm_ostree and cust.get("filesystem") and not mountpoints_allowed:
        raise OSTreeOptionsError("Custom mountpoints are not supported for ostree types")
    if rpm_ostree and cust.get("openscap"):
        raise OSTreeOptionsError("OpenSCAP customizations are not supported for ostree types")
    return warnings


# Weldr blueprint keys → the Go field names osbuild-composer prints in its "allowed" lists
_CUSTOMIZATION_NAMES = {
    "hostname": "Hostname",
    "kernel": "Kernel",
    "sshkey": "SSHKey",
    "user": "User",
    "group": "Group",
    "timezone": "Timezone",
    "locale": "Locale",
    "firewall": "Firewall",
    "services": "Services",
    "filesystem": "Filesystem",
    "installation_device": "InstallationDevice",
    "fdo": "FDO",
    "openscap": "OpenSCAP",
    "ignition": "Ignition",
    "directories": "Directories",
    "files": "Files",
    "repositories": "Repositories",
    "fips": "FIPS",
    "installer": "Installer",
    "disk": "Disk",
}


def _check_fdo(type_name: str, fdo: Mapping[str, Any] | None) -> None:
    if not fdo:
        return
    if not fdo.get("manufacturing_server_url"):
        raise OSTreeOptionsError(
            f'boot ISO image type "{type_name}" requires specifying FDO.ManufacturingServerURL configuration to install to when using FDO'
        )
    diun = [k for k in ("diun_pub_key_hash", "diun_pub_key_insecure", "diun_pub_key_root_certs") if fdo.get(k)]
    if len(diun) != 1:
        raise OSTreeOptionsError(
            f'boot ISO image type "{type_name}" requires specifying one of [FDO.DiunPubKeyHash,FDO.DiunPubKeyInsecure,FDO.DiunPubKeyRootCerts] configuration to install to when using FDO'
        )


def _check_ignition(ignition: Mapping[str, Any] | None) -> None:
    if not ignition:
        return
    if ignition.get("embedded") and ignition.get("firstboot"):
        raise OSTreeOptionsError("both ignition embedded and firstboot configurations found")
    firstboot = ignition.get("firstboot")
    if firstboot is not None and not firstboot.get("url"):
        raise OSTreeOptionsError("ignition.firstboot requires a provisioning url")


# ---------------------------------------------------------------------------------------------
# sources and inputs


def ostree_sources(commits: Iterable[CommitSpec]) -> dict[str, Any]:
    """The manifest's `org.osbuild.ostree` source: one item per commit checksum."""
    items: dict[str, Any] = {}
    for commit in commits:
        remote: dict[str, Any] = {"url": commit.url}
        if commit.content_url:
            remote["contenturl"] = commit.content_url
        if commit.secrets:
            remote["secrets"] = {"name": commit.secrets}
        items[commit.checksum] = {"remote": remote}
    return {"org.osbuild.ostree": {"items": items}} if items else {}


def pull_stage(repo: str, commits_input: dict[str, Any], remote: str = "") -> dict[str, Any]:
    options: dict[str, Any] = {"repo": repo}
    if remote:
        options["remote"] = remote
    return {"type": "org.osbuild.ostree.pull", "inputs": {"commits": commits_input}, "options": options}


def source_commit_input(commit: CommitSpec) -> dict[str, Any]:
    return {
        "type": "org.osbuild.ostree",
        "origin": "org.osbuild.source",
        "references": {commit.checksum: {"ref": commit.ref}},
    }


def pipeline_commit_input(pipeline: str, ref: str) -> dict[str, Any]:
    return {
        "type": "org.osbuild.ostree",
        "origin": "org.osbuild.pipeline",
        "references": {f"name:{pipeline}": {"ref": ref}},
    }


def tree_input(pipeline: str) -> dict[str, Any]:
    return {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": [f"name:{pipeline}"]}


def init_stage(path: str) -> dict[str, Any]:
    return {"type": "org.osbuild.ostree.init", "options": {"path": path}}


# ---------------------------------------------------------------------------------------------
# os tree additions (the `os` pipeline in ostree mode)


def passwd_stage(parent: CommitSpec) -> dict[str, Any]:
    """Carry uid/gid allocations over from the parent commit so file ownership stays stable.

    The stage reads the parent's /usr/etc/passwd and /usr/lib/passwd, so it takes the commit
    checked out (`org.osbuild.ostree.checkout`, as images' `NewOSTreePasswdStage` does)."""
    return {
        "type": "org.osbuild.ostree.passwd",
        "inputs": {
            "commits": {
                "type": "org.osbuild.ostree.checkout",
                "origin": "org.osbuild.source",
                "references": [parent.checksum],
            }
        },
    }


def journald_persistent_stage() -> dict[str, Any]:
    """ostree systems keep the journal across boots (the /var of a deployment persists)."""
    return {
        "type": "org.osbuild.systemd-journald",
        "options": {"filename": "10-persistent.conf", "config": {"Journal": {"Storage": "persistent"}}},
    }


def bootupd_gen_metadata_stage() -> dict[str, Any]:
    """`bootupctl backend generate-update-metadata` in the prepared tree: /usr/lib/ostree-boot
    becomes the update payload bootupd installs from (images' rhel-9 edge commits from 9.8 on,
    where greenboot pulls bootupd in)."""
    return {"type": "org.osbuild.bootupd.gen-metadata"}


def preptree_stage(etc_group_members: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "org.osbuild.ostree.preptree",
        "options": {"etc_group_members": list(etc_group_members or ["wheel", "docker"])},
    }


# ---------------------------------------------------------------------------------------------
# pipelines that produce a commit


def commit_pipeline(
    *, ref: str, os_version: str, parent: CommitSpec | None = None, tree: str = "os", name: str = "ostree-commit"
) -> dict[str, Any]:
    options: dict[str, Any] = {"ref": ref, "os_version": os_version}
    if parent is not None:
        options["parent"] = parent.checksum
    return {
        "name": name,
        "build": "name:build",
        "stages": [
            init_stage("/repo"),
            {"type": "org.osbuild.ostree.commit", "inputs": {"tree": tree_input(tree)}, "options": options},
        ],
    }


def commit_archive_pipeline(*, filename: str, commit: str = "ostree-commit", name: str = "commit-archive") -> dict[str, Any]:
    return {
        "name": name,
        "build": "name:build",
        "stages": [
            {"type": "org.osbuild.tar", "inputs": {"tree": tree_input(commit)}, "options": {"filename": filename}}
        ],
    }


NGINX_CONFIG = "/etc/nginx.conf"
NGINX_ROOT = "/usr/share/nginx/html"
NGINX_PORT = "8080"


def commit_server_tree_pipeline(
    *, rpm_stages: list[dict[str, Any]], language: str, ref: str, commit: str = "ostree-commit", name: str = "container-tree"
) -> dict[str, Any]:
    """A small nginx tree serving the new commit as a repo, runnable as an unprivileged container."""
    repo = f"{NGINX_ROOT}/repo"
    stages = [
        *rpm_stages,
        {"type": "org.osbuild.locale", "options": {"language": language}},
        init_stage(repo),
        pull_stage(repo, pipeline_commit_input(commit, ref)),
    ]
    # nginx writes its logs and state there: make them writable for any uid
    for path in ("/var/log/nginx", "/var/lib/nginx"):
        stages.append({"type": "org.osbuild.chmod", "options": {"items": {path: {"mode": "a+rwX", "recursive": True}}}})
    stages.append(
        {
            "type": "org.osbuild.nginx.conf",
            "options": {
                "path": NGINX_CONFIG,
                "config": {"listen": NGINX_PORT, "root": NGINX_ROOT, "pid": "/tmp/nginx.pid", "daemon": False},
            },
        }
    )
    return {"name": name, "build": "name:build", "stages": stages}


def commit_server_container_pipeline(*, arch: str, filename: str, tree: str = "container-tree", name: str = "container") -> dict[str, Any]:
    return {
        "name": name,
        "build": "name:build",
        "stages": [
            {
                "type": "org.osbuild.oci-archive",
                "inputs": {"base": tree_input(tree)},
                "options": {
                    "architecture": arch,
                    "filename": filename,
                    "config": {"Cmd": ["nginx", "-c", NGINX_CONFIG], "ExposedPorts": [NGINX_PORT]},
                },
            }
        ],
    }


# ---------------------------------------------------------------------------------------------
# the deployment of a commit (edge/iot raw images, simplified installer)


@dataclass
class Deployment:
    """What `ostree-deployment` needs besides the commit; images' OSTreeDeployment fields."""

    os_name: str
    remote_name: str
    remote_url: str = ""
    remote_content_url: str = ""
    remote_gpgkey_paths: list[str] = field(default_factory=list)
    kernel_opts: list[str] = field(default_factory=list)  # partition-table options + appended ones
    ignition: bool = False
    # today's image config names the ignition platform ("metal", "qemu"); the image config's own
    # kernel options then carry coreos.no_persist_ip
    ignition_platform: str = ""
    sysroot_readonly: bool = False
    keyboard: str = ""
    locale: str = ""
    fstab_options: dict[str, Any] | None = None
    grub2_options: dict[str, Any] | None = None  # without kernel_opts / greenboot / ignition / config
    users_options: dict[str, Any] | None = None  # org.osbuild.users options for blueprint users
    groups_options: dict[str, Any] | None = None
    has_root_user: bool = False
    extra_stages: list[dict[str, Any]] = field(default_factory=list)  # directories/files, mounted below
    enabled_services: list[str] = field(default_factory=list)
    disabled_services: list[str] = field(default_factory=list)
    # today's definitions (images' OSTreeDeployment): root is locked only when the image config
    # says so, the remote is configured only when the type uses the request's URL, and
    # blueprint mountpoints get a unit that recreates them after an ostree upgrade
    today: bool = False
    lock_root_user: bool = False
    use_remotes: bool = True
    custom_filesystems: list[str] = field(default_factory=list)
    fips_stages: list[dict[str, Any]] = field(default_factory=list)  # files, crypto policy, dracut conf
    fips_kernel_opts: list[str] = field(default_factory=list)  # after ignition's


def deployment_mount(os_name: str, ref: str) -> dict[str, Any]:
    return {
        "name": f"ostree-{ref}",
        "type": "org.osbuild.ostree.deployment",
        "options": {"deployment": {"osname": os_name, "ref": ref, "serial": 0}},
    }


def deployment_kernel_opts(dep: Deployment) -> list[str]:
    opts = list(dep.kernel_opts)
    if dep.ignition_platform:
        opts += [f"ignition.platform.id={dep.ignition_platform}", "$ignition_firstboot"]
    elif dep.ignition:
        # no live ISO to configure networking: keep initrd connections out of the system
        opts += ["coreos.no_persist_ip", "ignition.platform.id=metal", "$ignition_firstboot"]
    return opts + list(dep.fips_kernel_opts)


def deployment_pipeline(commit: CommitSpec, dep: Deployment, name: str = "ostree-deployment") -> dict[str, Any]:
    if dep.today:
        return today_deployment_pipeline(commit, dep, name)
    repo = "/ostree/repo"
    mount = deployment_mount(dep.os_name, commit.ref)

    def mounted(stage: dict[str, Any]) -> dict[str, Any]:
        stage = dict(stage)
        stage["mounts"] = [mount]
        return stage

    kernel_opts = deployment_kernel_opts(dep)
    stages: list[dict[str, Any]] = [
        {"type": "org.osbuild.ostree.init-fs"},
        pull_stage(repo, source_commit_input(commit), remote=dep.remote_name),
        {"type": "org.osbuild.ostree.os-init", "options": {"osname": dep.os_name}},
        {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/boot/efi", "mode": 0o700}]}},
        {
            "type": "org.osbuild.ostree.deploy",
            "options": {
                "osname": dep.os_name,
                "ref": commit.ref,
                "remote": dep.remote_name,
                "mounts": ["/boot", "/boot/efi"],
                "rootfs": {"label": "root"},
                "kernel_opts": kernel_opts,
            },
        },
    ]
    remote: dict[str, Any] = {"name": dep.remote_name, "url": dep.remote_url or commit.url}
    if dep.remote_content_url:
        remote["contenturl"] = dep.remote_content_url
    if dep.remote_gpgkey_paths:
        remote["gpgkeypaths"] = list(dep.remote_gpgkey_paths)
    stages.append({"type": "org.osbuild.ostree.remotes", "options": {"repo": repo, "remotes": [remote]}})
    stages.append(
        {"type": "org.osbuild.ostree.fillvar", "options": {"deployment": {"osname": dep.os_name, "ref": commit.ref}}}
    )
    stages.append(
        mounted(
            {
                "type": "org.osbuild.ostree.config",
                "options": {
                    "repo": repo,
                    "config": {"sysroot": {"readonly": dep.sysroot_readonly, "bootloader": "none"}},
                },
            }
        )
    )
    if dep.fstab_options is not None:
        stages.append(mounted({"type": "org.osbuild.fstab", "options": dep.fstab_options}))
    if dep.users_options:
        stages.append(mounted({"type": "org.osbuild.users", "options": dep.users_options}))
    if dep.groups_options:
        stages.append(mounted({"type": "org.osbuild.groups", "options": dep.groups_options}))
    if dep.ignition or dep.ignition_platform:
        # ships /etc/machine-id, so systemd must be told it is the first boot for ignition's presets
        stages.append(
            {
                "type": "org.osbuild.ignition",
                "options": {"network": ["systemd.firstboot=off", "systemd.condition-first-boot=true"]},
            }
        )
    if not dep.has_root_user:
        stages.append(mounted({"type": "org.osbuild.users", "options": {"users": {"root": {"password": "!locked"}}}}))
    if dep.keyboard:
        stages.append(mounted({"type": "org.osbuild.keymap", "options": {"keymap": dep.keyboard}}))
    if dep.locale:
        stages.append(mounted({"type": "org.osbuild.locale", "options": {"language": dep.locale}}))
    if dep.grub2_options is not None:
        grub = dict(dep.grub2_options)
        grub["kernel_opts"] = " ".join(kernel_opts)
        grub["greenboot"] = True
        grub["write_cmdline"] = False
        grub["config"] = {"default": "saved", "terminal_output": ["console"], "timeout": 1}
        if dep.ignition or dep.ignition_platform:
            grub["ignition"] = True
        stages.append(mounted({"type": "org.osbuild.grub2", "options": _order_grub(grub)}))
    stages.extend(mounted(stage) for stage in dep.extra_stages)
    if dep.enabled_services or dep.disabled_services:
        options: dict[str, Any] = {}
        if dep.enabled_services:
            options["enabled_services"] = list(dep.enabled_services)
        if dep.disabled_services:
            options["disabled_services"] = list(dep.disabled_services)
        stages.append(mounted({"type": "org.osbuild.systemd", "options": options}))
    stages.append(
        {"type": "org.osbuild.ostree.selinux", "options": {"deployment": {"osname": dep.os_name, "ref": commit.ref}}}
    )
    return {"name": name, "build": "name:build", "stages": stages}


MOUNTPOINTS_SERVICE = "osbuild-ostree-mountpoints.service"


def mountpoints_unit(mountpoints: list[str]) -> dict[str, Any]:
    """A oneshot unit recreating the blueprint's mountpoints before they are mounted: an ostree
    upgrade deploys a fresh /, without the directories the custom filesystems mount on."""
    # on composefs the root is not immutable-flagged: only warn there
    toggle = ("/bin/sh -c \"if grep -Uq composefs /run/ostree-booted; then echo 'Warning: composefs enabled! "
              "ensure transient rootfs is enabled too.'; else chattr {flag} /; fi\"")
    return {"type": "org.osbuild.systemd.unit.create", "options": {
        "filename": MOUNTPOINTS_SERVICE, "unit-type": "system", "unit-path": "etc",
        "config": {
            "Unit": {"Description": "Ensure custom filesystem mountpoints exist", "DefaultDependencies": False,
                     "ConditionPathIsDirectory": ["|!" + m for m in mountpoints],
                     "After": ["ostree-remount.service"],
                     "Before": [f"{path_escape(m)}.mount" for m in mountpoints]},
            "Service": {"Type": "oneshot", "ExecStartPre": [toggle.format(flag="-i")],
                        "ExecStopPost": [toggle.format(flag="+i")],
                        "ExecStart": ["mkdir -p " + " ".join(mountpoints)]},
            "Install": {"WantedBy": ["local-fs.target"]}}}}


def today_deployment_pipeline(commit: CommitSpec, dep: Deployment, name: str) -> dict[str, Any]:
    """The deployment as today's definitions build it (images' OSTreeDeployment stage order)."""
    repo = "/ostree/repo"
    mount = deployment_mount(dep.os_name, commit.ref)

    def mounted(stage: dict[str, Any]) -> dict[str, Any]:
        return {**stage, "mounts": [mount]}

    kernel_opts = deployment_kernel_opts(dep)
    stages: list[dict[str, Any]] = [
        {"type": "org.osbuild.ostree.init-fs"},
        {"type": "org.osbuild.ostree.os-init", "options": {"osname": dep.os_name}},
        {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/boot/efi", "mode": 0o700}]}},
        pull_stage(repo, source_commit_input(commit), remote=dep.remote_name),
        {"type": "org.osbuild.ostree.deploy", "options": {
            "osname": dep.os_name, "ref": commit.ref, "remote": dep.remote_name, "mounts": ["/boot", "/boot/efi"],
            "rootfs": {"label": "root"}, "kernel_opts": kernel_opts}},
    ]
    url = dep.remote_url if dep.use_remotes else ""
    if url:
        remote: dict[str, Any] = {"name": dep.remote_name, "url": url}
        if dep.remote_content_url:
            remote["contenturl"] = dep.remote_content_url
        if dep.remote_gpgkey_paths:
            remote["gpgkeypaths"] = list(dep.remote_gpgkey_paths)
        stages.append({"type": "org.osbuild.ostree.remotes", "options": {"repo": repo, "remotes": [remote]}})
    stages.append(
        {"type": "org.osbuild.ostree.fillvar", "options": {"deployment": {"osname": dep.os_name, "ref": commit.ref}}})
    stages.append(mounted({"type": "org.osbuild.ostree.config", "options": {
        "repo": repo, "config": {"sysroot": {"readonly": dep.sysroot_readonly, "bootloader": "none"}}}}))
    if dep.fstab_options is not None:
        stages.append(mounted({"type": "org.osbuild.fstab", "options": dep.fstab_options}))
    if dep.groups_options:
        stages.append(mounted({"type": "org.osbuild.groups", "options": dep.groups_options}))
    if dep.users_options:
        stages.append(mounted({"type": "org.osbuild.users", "options": dep.users_options}))
    enabled = list(dep.enabled_services)
    if dep.ignition_platform:
        # the tree ships /etc/machine-id: tell systemd the real first boot is one, for ignition's presets
        stages.append({"type": "org.osbuild.ignition",
                       "options": {"network": ["systemd.firstboot=off", "systemd.condition-first-boot=true"]}})
        if dep.custom_filesystems:
            stages.append(mounted(mountpoints_unit(dep.custom_filesystems)))
            enabled.append(MOUNTPOINTS_SERVICE)
        if enabled or dep.disabled_services:
            # systemd may reset enablement on an ignition first boot; presets survive it
            presets = [{"name": n, "state": "enable"} for n in enabled]
            presets += [{"name": n, "state": "disable"} for n in dep.disabled_services]
            stages.append(mounted({"type": "org.osbuild.systemd.preset", "options": {"presets": presets}}))
    if dep.lock_root_user and not dep.has_root_user:
        stages.append(mounted({"type": "org.osbuild.users", "options": {"users": {"root": {"password": "!locked"}}}}))
    if dep.keyboard:
        stages.append(mounted({"type": "org.osbuild.keymap", "options": {"keymap": dep.keyboard}}))
    if dep.locale:
        stages.append(mounted({"type": "org.osbuild.locale", "options": {"language": dep.locale}}))
    stages.extend(mounted(stage) for stage in dep.fips_stages)
    if dep.grub2_options is not None:
        grub = dict(dep.grub2_options)
        grub["kernel_opts"] = " ".join(kernel_opts)
        grub["greenboot"] = True
        grub["write_cmdline"] = False
        grub["config"] = {"default": "saved", "terminal_output": ["console"], "timeout": 1}
        if dep.ignition_platform:
            grub["ignition"] = True
        stages.append(mounted({"type": "org.osbuild.grub2", "options": _order_grub(grub)}))
    stages.extend(mounted(stage) for stage in dep.extra_stages)
    if enabled or dep.disabled_services:
        options: dict[str, Any] = {}
        if enabled:
            options["enabled_services"] = enabled
        if dep.disabled_services:
            options["disabled_services"] = list(dep.disabled_services)
        stages.append(mounted({"type": "org.osbuild.systemd", "options": options}))
    stages.append(
        {"type": "org.osbuild.ostree.selinux", "options": {"deployment": {"osname": dep.os_name, "ref": commit.ref}}})
    return {"name": name, "build": "name:build", "stages": stages}


_GRUB_ORDER = (
    "compat_version",
    "root_fs_uuid",
    "boot_fs_uuid",
    "kernel_opts",
    "legacy",
    "uefi",
    "saved_entry",
    "greenboot",
    "write_cmdline",
    "config",
    "ignition",
)


def _order_grub(options: dict[str, Any]) -> dict[str, Any]:
    """Key order as osbuild-composer writes it, so serialized manifests read the same."""
    ordered = {key: options[key] for key in _GRUB_ORDER if key in options}
    ordered.update({key: value for key, value in options.items() if key not in ordered})
    return ordered


def add_commit_sources(ctx: Any, commits: Iterable[CommitSpec]) -> None:
    """Register commits as `org.osbuild.ostree` sources of the manifest being built (ctx.extra_sources)."""
    for name, section in ostree_sources(commits).items():
        ctx.extra_sources.setdefault(name, {}).update(section["items"])


def ostree_first_boot_stage(users: Mapping[str, Mapping[str, Any]], *, today: bool = True) -> dict[str, Any]:
    """Write users' SSH keys on first boot, into the deployment's /var homes.

    `today` (releases following osbuild/images): images leaves `wait_for_network` out when it is
    false (`pkg/osbuild/first_boot_stage.go`, omitempty); osbuild-composer's 2023 output wrote it."""
    var_home, root_home = "/var/home", "/var/roothome"
    commands: list[str] = []
    for name, user in users.items():
        key = user.get("key")
        if not key:
            continue
        ssh_dir = f"{root_home if name == 'root' else var_home + '/' + name}/.ssh"
        commands.append(f"mkdir -p {ssh_dir}")
        commands.append(f"sh -c 'echo {_go_quote(key)} >> {_go_quote(ssh_dir + '/authorized_keys')}'")
        commands.append(f"chown {name}:{name} -Rc {ssh_dir}")
    commands += [f"restorecon -rvF {var_home}", f"restorecon -rvF {root_home}"]
    options: dict[str, Any] = {"commands": commands}
    if not today:
        options["wait_for_network"] = False
    return {"type": "org.osbuild.first-boot", "options": options}


def _go_quote(text: str) -> str:
    """A double-quoted string with backslash escapes, as osbuild-composer writes these commands."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
