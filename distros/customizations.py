"""Blueprint customizations merged over an image type's configuration: what the OS tree gets.

`OSConfig` is the single place where the image config of the definitions (distro defaults, then
image type) and the blueprint meet; the `os` pipeline turns it into stages.  Blueprint values win
over image config where osbuild-composer lets them (hostname, timezone, locale, keyboard, kernel
append, services); lists of configuration stages (cloud-init, modprobe, …) come from the image
config only.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import stat
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from distros.errors import RequestError

# image config keys whose values are osbuild stage options, in the order osbuild-composer adds
# the stages to the OS tree; `True` marks keys that hold a list of stages.
CONFIG_STAGES: list[tuple[str, str, bool]] = [
    ("sysconfig", "org.osbuild.sysconfig", True),
    ("systemd_logind", "org.osbuild.systemd-logind", True),
    ("cloud_init", "org.osbuild.cloud-init", True),
    ("modprobe", "org.osbuild.modprobe", True),
    ("dracut_conf", "org.osbuild.dracut.conf", True),
    ("systemd_unit", "org.osbuild.systemd.unit", True),
    # whole units the image type ships (images' `systemd_unit`; our `systemd_unit` are drop-ins)
    ("systemd_unit_create", "org.osbuild.systemd.unit.create", True),
    ("authselect", "org.osbuild.authselect", False),
    ("selinux_config", "org.osbuild.selinux.config", False),
    ("tuned", "org.osbuild.tuned", False),
    ("tmpfilesd", "org.osbuild.tmpfilesd", True),
    ("pam_limits_conf", "org.osbuild.pam.limits.conf", True),
    ("sysctld", "org.osbuild.sysctld", True),
    ("dnf_config", "org.osbuild.dnf.config", False),
    ("dnf_automatic_config", "org.osbuild.dnf-automatic.config", False),
    ("yum_repos", "org.osbuild.yum.repos", True),
    ("yum_config", "org.osbuild.yum.config", False),
    ("gcp_guest_agent_config", "org.osbuild.gcp.guest-agent.conf", False),
    ("sshd_config", "org.osbuild.sshd.config", False),
    ("network_manager", "org.osbuild.nm.conf", False),
    ("authconfig", "org.osbuild.authconfig", False),
    ("pwquality", "org.osbuild.pwquality.conf", False),
    ("rhsm", "org.osbuild.rhsm", False),
    ("waagent_config", "org.osbuild.waagent.conf", False),
    ("udev_rules", "org.osbuild.udev.rules", False),
]

# stages written even with empty options: images' authconfig stage (RHEL 7) runs authconfig with
# its defaults (an empty `authselect` in the data, by contrast, means "no stage")
EMPTY_OPTIONS_STAGES = {"authconfig"}

GPG_KEY_DIR = "/etc/pki/rpm-gpg"


class CustomizationError(RequestError):
    """The blueprint asks for something this image type cannot do."""


# Where blueprint directories and files may go (longest matching prefix decides; True = allowed).
# These are osbuild-composer's July-2023 policies, which osbuild/images keeps for ostree types only.
DIRECTORY_POLICY = {"/": False, "/etc": True}
FILE_POLICY = {"/": False, "/etc": True, "/root": True, "/usr/local/bin": True, "/usr/local/sbin": True,
               "/etc/fstab": False, "/etc/shadow": False, "/etc/passwd": False, "/etc/group": False}
# osbuild/images' policies for every other image type (`pkg/policies/policies.go`
# CustomDirectoriesPolicies, CustomFilesPolicies): anywhere but the system's own trees, so e.g. an
# OpenSCAP tailoring file can go to /oscap_data
_SYSTEM_TREES = {"/bin": False, "/boot": False, "/dev": False, "/efi": False, "/lib": False, "/lib64": False,
                 "/lost+found": False, "/proc": False, "/run": False, "/sbin": False, "/sys": False, "/sysroot": False,
                 "/tmp": False, "/usr": False, "/usr/local": True, "/var/run": False, "/var/tmp": False}
DIRECTORY_POLICY_TODAY = {"/": True, **_SYSTEM_TREES}
FILE_POLICY_TODAY = {"/": True, **_SYSTEM_TREES, "/etc/fstab": False, "/etc/group": False, "/etc/passwd": False,
                     "/etc/shadow": False}
# where osbuild/images keeps OpenSCAP's tailoring and results (`pkg/customizations/oscap` DataDir)
OSCAP_DATA_DIR = "/oscap_data"


def path_allowed(path: str, policy: dict[str, bool]) -> bool:
    if not path.startswith("/") or path.endswith("/") or "/../" in path + "/" or "/./" in path + "/":
        return False
    best = "/"
    for prefix in policy:
        if path == prefix or path.startswith(prefix.rstrip("/") + "/"):
            if len(prefix) > len(best):
                best = prefix
    return policy[best]


def check_paths(c: dict[str, Any], strict: bool = True) -> None:
    """Blueprint directories and files against the path policies: `strict` are osbuild-composer's
    July-2023 ones (and images' for ostree types), else images' of today."""
    dir_policy, file_policy = (DIRECTORY_POLICY, FILE_POLICY) if strict else (DIRECTORY_POLICY_TODAY, FILE_POLICY_TODAY)
    dirs = [d.get("path", "") for d in c.get("directories") or [] if not path_allowed(d.get("path", ""), dir_policy)]
    if dirs:
        raise CustomizationError(f"the following custom directories are not allowed: {dirs}")
    files = [f.get("path", "") for f in c.get("files") or [] if not path_allowed(f.get("path", ""), file_policy)]
    if files:
        raise CustomizationError(f"the following custom files are not allowed: {files}")


@dataclass
class FileNode:
    path: str
    data: bytes | None = None
    mode: str | None = None
    user: str | int | None = None
    group: str | int | None = None
    ensure_parents: bool = False
    # a file the blueprint names by URI: its path on this host (osbuild fetches it by a `file:` URL)
    source_path: str | None = None

    @property
    def checksum(self) -> str:
        return "sha256:" + hashlib.sha256(self.data or b"").hexdigest()


@dataclass
class OSConfig:
    language: str | None = None
    keyboard: str | None = None
    x11_layouts: list[str] = field(default_factory=list)
    hostname: str | None = None
    timezone: str | None = None
    chrony: dict[str, Any] | None = None
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    firewall: dict[str, Any] | None = None
    stages: dict[str, Any] = field(default_factory=dict)   # CONFIG_STAGES key -> options (list or dict)
    kernel_name: str = "kernel"
    kernel_options: list[str] = field(default_factory=list)
    grub2_config: dict[str, Any] = field(default_factory=dict)
    enabled_services: list[str] = field(default_factory=list)
    disabled_services: list[str] = field(default_factory=list)
    masked_services: list[str] = field(default_factory=list)
    default_target: str | None = None
    selinux: str | None = None
    # relabel the whole filesystem on first boot (images' selinux_force_relabel, RHEL 7)
    selinux_force_relabel: bool = False
    exclude_docs: bool = False
    install_weak_deps: bool = True
    rhsm_facts: bool = False
    fips: bool = False
    openscap: dict[str, Any] | None = None
    directories: list[FileNode] = field(default_factory=list)
    files: list[FileNode] = field(default_factory=list)
    gpgkey_files: list[str] = field(default_factory=list)   # keys rpm imports from the tree
    kernel_options_bootloader: bool = False   # EL 8: options live in the bootloader config only
    ca_certs: list[str] = field(default_factory=list)      # PEM texts for the trust anchors
    shell_init: dict[str, Any] | None = None               # org.osbuild.shell.init options
    # today's Fedora: root cannot log in until someone sets a password (server), and the image
    # ships an uninitialized machine-id so the first boot runs as systemd's first boot
    lock_root_user: bool = False
    machine_id_uninitialized: bool = False
    # an ostree commit's tree carries bootupd's update metadata (images' bootupd_gen_metadata)
    bootupd_gen_metadata: bool = False
    # packages dnf must keep at their installed version (a UKI image's shim, today's EL CVM types)
    versionlock_packages: list[str] = field(default_factory=list)
    # WSL images: /etc/wsl.conf and /etc/wsl-distribution.conf (stage options as osbuild takes them;
    # `%s` in the OOBE default_name becomes the OS version)
    wsl_conf: dict[str, Any] | None = None
    wsl_distribution_conf: dict[str, Any] | None = None
    # systemd presets of the image config (`{name, state}`): an ostree commit's first-boot units
    # are enabled by preset, which survives systemd's preset reset on a deployment's first boot
    presets: list[dict[str, str]] = field(default_factory=list)


def _customizations(blueprint: dict[str, Any]) -> dict[str, Any]:
    return blueprint.get("customizations") or {}


def blueprint_packages(blueprint: dict[str, Any]) -> list[str]:
    """Package names (and `@group`s) of a blueprint, as the depsolver takes them."""
    names: list[str] = []
    for pkg in list(blueprint.get("packages") or []) + list(blueprint.get("modules") or []):
        name = pkg["name"]
        version = pkg.get("version") or ""
        if version and version != "*":
            names.append(f"{name}-{version}")
        else:
            names.append(name)
    for group in blueprint.get("groups") or []:
        names.append("@" + group["name"])
    return names


def os_config(image_config: dict[str, Any], blueprint: dict[str, Any], rng: random.Random,
              follows: str = "images", ostree: bool = False, local_file_uris: bool = False) -> OSConfig:
    """The OS tree's configuration: the image config, then the blueprint's customizations.

    `follows` is the release's DistroDef.follows: where osbuild-composer's July-2023 output and
    osbuild/images' code differ, the release reproduces the one it names; `ostree` types keep
    the strict path policies; `local_file_uris` lets blueprint files name a file of this host by
    URI (images' tools do; a shared service must not read its host's files for any client)."""
    c = _customizations(blueprint)
    today = follows != "osbuild-composer-2023"
    check_paths(c, strict=ostree or not today)
    ic = image_config
    cfg = OSConfig()
    cfg.language = ic.get("locale")
    kb = ic.get("keyboard") or {}
    cfg.keyboard = kb.get("keymap")
    cfg.x11_layouts = list(kb.get("x11_layouts") or [])
    cfg.hostname = ic.get("hostname")
    cfg.timezone = ic.get("timezone")
    cfg.chrony = dict(ic["chrony"]) if ic.get("chrony") else None
    cfg.firewall = dict(ic["firewall"]) if ic.get("firewall") else None
    cfg.stages = {key: ic[key] for key, _, _ in CONFIG_STAGES
                  if ic.get(key) or (key in EMPTY_OPTIONS_STAGES and ic.get(key) is not None)}
    cfg.kernel_name = ic.get("default_kernel", "kernel")
    cfg.kernel_options = list(ic.get("kernel_options") or [])
    cfg.grub2_config = dict(ic.get("grub2_config") or {})
    cfg.enabled_services = list(ic.get("enabled_services") or [])
    cfg.disabled_services = list(ic.get("disabled_services") or [])
    cfg.masked_services = list(ic.get("masked_services") or [])
    cfg.default_target = ic.get("default_target")
    cfg.selinux = ic.get("selinux", "targeted") or None
    cfg.selinux_force_relabel = bool(ic.get("selinux_force_relabel", False))
    cfg.exclude_docs = bool(ic.get("exclude_docs", False))
    cfg.install_weak_deps = bool(ic.get("install_weak_deps", True))
    cfg.rhsm_facts = bool(ic.get("rhsm_facts", False))
    cfg.kernel_options_bootloader = bool(ic.get("kernel_options_bootloader", False))
    cfg.shell_init = dict(ic["shell_init"]) if ic.get("shell_init") else None
    cfg.lock_root_user = bool(ic.get("lock_root_user", False))
    cfg.machine_id_uninitialized = bool(ic.get("machine_id_uninitialized", False))
    cfg.bootupd_gen_metadata = bool(ic.get("bootupd_gen_metadata", False))
    cfg.versionlock_packages = list(ic.get("versionlock_packages") or [])
    cfg.wsl_conf = dict(ic["wsl_conf"]) if ic.get("wsl_conf") else None
    cfg.wsl_distribution_conf = dict(ic["wsl_distribution_conf"]) if ic.get("wsl_distribution_conf") else None
    cfg.presets = [{"name": p["name"], "state": p["state"]} for p in ic.get("presets") or []]

    # accounts and files an image type always has (e.g. vagrant's user), blueprint may add more;
    # images writes the type's files after the blueprint's and the custom repositories' keys
    # (generic/images.go osCustomizations), osbuild-composer in 2023 before them
    type_files = [_image_config_file(f) for f in ic.get("files") or []]
    if ic.get("users") or (type_files and not today):
        c = dict(c)
        c["user"] = list(ic.get("users") or []) + list(c.get("user") or [])
        if not today:
            c["files"] = type_files + list(c.get("files") or [])

    # --- blueprint ---------------------------------------------------------------------
    if c.get("hostname"):
        cfg.hostname = c["hostname"]
    kernel = c.get("kernel") or {}
    if kernel.get("name"):
        cfg.kernel_name = kernel["name"]
    if kernel.get("append"):
        cfg.kernel_options.append(kernel["append"])
    tz = c.get("timezone") or {}
    if tz.get("timezone"):
        cfg.timezone = tz["timezone"]
    if tz.get("ntpservers"):
        chrony: dict[str, Any] = {"servers": [{"hostname": s} for s in tz["ntpservers"]]}
        # images replaces the whole chrony configuration (generic/images.go osCustomizations);
        # osbuild-composer kept the image's leapsectz
        if cfg.chrony and "leapsectz" in cfg.chrony and follows == "osbuild-composer-2023":
            chrony["leapsectz"] = cfg.chrony["leapsectz"]
        cfg.chrony = chrony
    locale = c.get("locale") or {}
    if locale.get("languages"):
        cfg.language = locale["languages"][0]
    if locale.get("keyboard"):
        cfg.keyboard = locale["keyboard"]
        cfg.x11_layouts = []
    _apply_users(cfg, c, rng)
    _apply_firewall(cfg, c)
    services = c.get("services") or {}
    cfg.enabled_services += [s for s in services.get("enabled") or [] if s not in cfg.enabled_services]
    cfg.disabled_services += [s for s in services.get("disabled") or [] if s not in cfg.disabled_services]
    cfg.masked_services += [s for s in services.get("masked") or [] if s not in cfg.masked_services]
    if c.get("fips"):
        cfg.fips = True
    if c.get("openscap"):
        cfg.openscap = dict(c["openscap"])
        if c["openscap"].get("tailoring") and c["openscap"].get("json_tailoring"):
            raise CustomizationError("Multiple tailoring types set, only one type can be chosen (JSON/Override rules)")
        json_tailoring = c["openscap"].get("json_tailoring")
        if json_tailoring is not None and not (json_tailoring.get("filepath") and json_tailoring.get("profile_id")):
            raise CustomizationError("an OpenSCAP JSON tailoring needs a filepath and a profile_id")
    for d in c.get("directories") or []:
        cfg.directories.append(FileNode(path=d["path"], mode=d.get("mode"), user=d.get("user"),
                                        group=d.get("group"), ensure_parents=bool(d.get("ensure_parents", False))))
    if cfg.openscap and today and not ostree:
        # images creates OpenSCAP's data directory with the blueprint's (generic/images.go)
        cfg.directories.append(FileNode(path=OSCAP_DATA_DIR, ensure_parents=True))
    for f in c.get("files") or []:
        if f.get("uri"):
            cfg.files.append(_file_from_uri(f, local_file_uris))
            continue
        data = f.get("data")
        cfg.files.append(FileNode(path=f["path"], data=(data or "").encode(), mode=f.get("mode"),
                                  user=f.get("user"), group=f.get("group")))
    _apply_repositories(cfg, c)
    if today:
        cfg.files += [FileNode(path=f["path"], data=(f.get("data") or "").encode(), mode=f.get("mode"),
                               user=f.get("user"), group=f.get("group")) for f in type_files]
    _apply_rhsm(cfg, c)
    for pem in (c.get("cacerts") or {}).get("pem_certs") or []:
        try:
            if not split_certificates(pem):
                raise ValueError("no certificate")
        except (ValueError, IndexError) as e:
            raise CustomizationError(f"cacerts: failed to parse CA certificates: {e}") from None
        cfg.ca_certs.append(pem)
    import_keys = (c.get("rpm") or {}).get("import_keys") or {}
    cfg.gpgkey_files = list(ic.get("gpgkey_files") or []) + [
        f for f in import_keys.get("files") or [] if f not in (ic.get("gpgkey_files") or [])]
    return cfg


def _image_config_file(node: dict[str, Any]) -> dict[str, Any]:
    """An image config's file with its mode as the chmod stage spells it.

    images decodes these files through JSON into an `os.FileMode`, so the YAML's number is the mode
    itself (`mode: 440` is 0o670, not 0o440) and the stage gets it as Go's `%#o` prints it."""
    mode = node.get("mode")
    if not isinstance(mode, int):
        return node
    return {**node, "mode": ("0" + format(mode, "o")) if mode else "0"}


def _apply_users(cfg: OSConfig, c: dict[str, Any], rng: random.Random) -> None:
    for g in c.get("group") or []:
        opts: dict[str, Any] = {}
        if g.get("gid") is not None:
            opts["gid"] = g["gid"]
        cfg.groups[g["name"]] = opts
    for k in c.get("sshkey") or []:
        cfg.users.setdefault(k["user"], {})["key"] = k["key"]
    for u in c.get("user") or []:
        opts = {}
        for key in ("uid", "gid", "groups", "description", "home", "shell"):
            if u.get(key) not in (None, "", []):
                opts[key] = u[key]
        if u.get("password"):
            opts["password"] = _crypted(u["password"], rng)
        if u.get("key"):
            opts["key"] = u["key"]
        if u.get("expiredate") is not None:
            opts["expiredate"] = u["expiredate"]
        if u.get("force_password_reset"):
            opts["force_password_reset"] = True
        cfg.users[u["name"]] = opts
    cfg.groups = dict(sorted(cfg.groups.items()))
    cfg.users = dict(sorted(cfg.users.items()))


def _crypted(password: str, rng: random.Random) -> str:
    from core.passwords import is_crypted, sha512_crypt

    if is_crypted(password):
        return password
    alphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    salt = "".join(rng.choice(alphabet) for _ in range(16))
    return sha512_crypt(password, f"$6${salt}")


def _apply_firewall(cfg: OSConfig, c: dict[str, Any]) -> None:
    fw = c.get("firewall")
    if not fw:
        return
    opts: dict[str, Any] = dict(cfg.firewall or {})
    if fw.get("ports"):
        opts["ports"] = list(opts.get("ports", [])) + list(fw["ports"])
    services = fw.get("services") or {}
    if services.get("enabled"):
        opts["enabled_services"] = list(opts.get("enabled_services", [])) + list(services["enabled"])
    if services.get("disabled"):
        opts["disabled_services"] = list(opts.get("disabled_services", [])) + list(services["disabled"])
    if fw.get("zones"):
        opts["zones"] = [{k: v for k, v in z.items() if v} for z in fw["zones"]]
    cfg.firewall = opts or None


def _apply_repositories(cfg: OSConfig, c: dict[str, Any]) -> None:
    """Custom repositories become .repo files in the image, inline keys files under rpm-gpg."""
    by_file: dict[str, list[dict[str, Any]]] = {}
    for repo in c.get("repositories") or []:
        rid = repo["id"]
        r: dict[str, Any] = {"id": rid}
        for src, dst in (("baseurls", "baseurl"), ("metalink", "metalink"), ("mirrorlist", "mirrorlist")):
            if repo.get(src):
                r[dst] = repo[src]
        if repo.get("enabled") is not None:
            r["enabled"] = repo["enabled"]
        keys = []
        for i, key in enumerate(repo.get("gpgkeys") or []):
            if key.lstrip().startswith("-----BEGIN"):
                path = f"{GPG_KEY_DIR}/RPM-GPG-KEY-{rid}-{i}"
                cfg.files.append(FileNode(path=path, data=key.encode()))
                keys.append(f"file://{path}")
            else:
                keys.append(key)
        if keys:
            r["gpgkey"] = keys
        for key in ("name", "gpgcheck", "repo_gpgcheck", "sslverify", "priority", "module_hotfixes"):
            if repo.get(key) is not None:
                r[key] = repo[key]
        filename = repo.get("filename") or f"{rid}.repo"
        by_file.setdefault(filename, []).append(r)
    if by_file:
        existing = list(cfg.stages.get("yum_repos") or [])
        cfg.stages["yum_repos"] = existing + [{"filename": f, "repos": repos} for f, repos in sorted(by_file.items())]


def _apply_rhsm(cfg: OSConfig, c: dict[str, Any]) -> None:
    """Blueprint RHSM settings override the image type's, key by key (stage option spelling)."""
    conf = (c.get("rhsm") or {}).get("config") or {}
    if not conf:
        return
    opts: dict[str, Any] = {k: dict(v) for k, v in (cfg.stages.get("rhsm") or {}).items()}
    plugins = conf.get("dnf_plugins") or {}
    for bp_key, stage_key in (("product_id", "product-id"), ("subscription_manager", "subscription-manager")):
        if (plugins.get(bp_key) or {}).get("enabled") is not None:
            opts.setdefault("dnf-plugins", {})[stage_key] = {"enabled": bool(plugins[bp_key]["enabled"])}
    subman = conf.get("subscription_manager") or {}
    rhsm_section = {k: v for k, v in (subman.get("rhsm") or {}).items()
                    if k in ("manage_repos", "auto_enable_yum_plugins") and v is not None}
    certd = {k: v for k, v in (subman.get("rhsmcertd") or {}).items() if k == "auto_registration" and v is not None}
    if rhsm_section or certd:
        sm = dict(opts.get("subscription-manager") or {})
        if rhsm_section:
            sm["rhsm"] = {**(sm.get("rhsm") or {}), **rhsm_section}
        if certd:
            sm["rhsmcertd"] = {**(sm.get("rhsmcertd") or {}), **certd}
        opts["subscription-manager"] = sm
    if opts:
        cfg.stages["rhsm"] = opts


def _file_from_uri(f: dict[str, Any], allowed: bool) -> FileNode:
    """A blueprint file whose content is a local file (images' fsnode.NewFileForURI): only `file:`
    URIs or plain paths; the mode is the local file's unless the blueprint gives one, the owner is
    not taken from it. The content is read now: the manifest names it by its sha256."""
    if not allowed:
        raise CustomizationError(f"file {f['path']}: files from a URI ({f['uri']}) are not supported here")
    uri = urllib.parse.urlsplit(f["uri"])
    if uri.scheme not in ("", "file"):
        raise CustomizationError(f"unsupported scheme for {f['uri']} (try file://)")
    path = urllib.parse.unquote(uri.path)
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            raise CustomizationError(f"{path} is not a regular file")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise CustomizationError(f"cannot include blueprint file: {e}") from None
    mode = f.get("mode")
    if mode is None:
        # Go's %#o of the file's permission bits, as images writes it
        perm = stat.S_IMODE(st.st_mode)
        mode = f"0{perm:o}" if perm else "0"
    return FileNode(path=f["path"], data=data, mode=mode, user=f.get("user"), group=f.get("group"),
                    source_path=path)


def inline_source(node: FileNode) -> tuple[str, dict[str, str]]:
    return node.checksum, {"encoding": "base64", "data": base64.b64encode(node.data or b"").decode()}


def _der_element(data: bytes, at: int) -> tuple[int, int, int]:
    """(tag, start of content, end of content) of the DER element at `at`."""
    tag, length = data[at], data[at + 1]
    at += 2
    if length & 0x80:
        count = length & 0x7F
        length = int.from_bytes(data[at:at + count], "big")
        at += count
    return tag, at, at + length


def split_certificates(bundle: str) -> list[tuple[str, str]]:
    """A PEM bundle → (serial number in lowercase hex, PEM of that certificate) per certificate.

    images names each trust anchor after its certificate's serial (big.Int.Text(16)) and writes the
    certificate re-encoded as PEM (pem.EncodeToMemory): base64 in lines of 64 characters."""
    import re

    out = []
    for body in re.findall(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", bundle, re.S):
        der = base64.b64decode("".join(body.split()))
        _, cert, _ = _der_element(der, 0)            # Certificate ::= SEQUENCE
        _, tbs, _ = _der_element(der, cert)           # tbsCertificate ::= SEQUENCE
        tag, start, end = _der_element(der, tbs)
        if tag == 0xA0:                               # [0] EXPLICIT version
            tag, start, end = _der_element(der, end)
        serial = int.from_bytes(der[start:end], "big", signed=True)
        text = base64.b64encode(der).decode()
        lines = "".join(text[i:i + 64] + "\n" for i in range(0, len(text), 64))
        out.append((format(serial, "x"), f"-----BEGIN CERTIFICATE-----\n{lines}-----END CERTIFICATE-----\n"))
    return out
