"""Kickstarts of the installer ISOs and the blueprint's `[customizations.installer]`.

osbuild's kickstart stage writes the file anaconda reads: the payload (liveimg tarball or ostree
repo on the ISO), users and groups, and for unattended installs the answers that keep anaconda
from asking (language, keyboard, time zone, disk wiping and automatic partitioning, network,
reboot). What the stage cannot express is written as a second file that `%include`s the stage's
output: the user's own kickstart contents, or the `%post` script granting password-less sudo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ISO_ROOT = "/run/install/repo"
MODULE_PREFIX = "org.fedoraproject.Anaconda.Modules."
# which anaconda DBus modules run unless the image type or blueprint says otherwise
DEFAULT_MODULES = ["Network", "Payloads", "Storage"]


class KickstartError(ValueError):
    """The installer customizations contradict each other (osbuild-composer refuses them too)."""


@dataclass
class KickstartSettings:
    """`[customizations.installer]` plus the locale/time zone an unattended install answers with."""

    unattended: bool = False
    sudo_nopasswd: list[str] = field(default_factory=list)
    user_contents: str | None = None
    enable_modules: list[str] = field(default_factory=list)
    disable_modules: list[str] = field(default_factory=list)
    language: str | None = None
    keyboard: str | None = None
    timezone: str | None = None

    @classmethod
    def from_blueprint(cls, customizations: Mapping[str, Any] | None) -> "KickstartSettings":
        cust = dict(customizations or {})
        inst = dict(cust.get("installer") or {})
        modules = dict(inst.get("modules") or {})
        locale = dict(cust.get("locale") or {})
        languages = list(locale.get("languages") or [])
        settings = cls(
            unattended=bool(inst.get("unattended", False)),
            sudo_nopasswd=list(inst.get("sudo-nopasswd") or inst.get("sudo_nopasswd") or []),
            user_contents=(inst.get("kickstart") or {}).get("contents"),
            enable_modules=list(modules.get("enable") or []),
            disable_modules=list(modules.get("disable") or []),
            language=languages[0] if languages else None,
            keyboard=locale.get("keyboard") or None,
            timezone=(cust.get("timezone") or {}).get("timezone") or None,
        )
        settings.validate(has_accounts=bool(cust.get("user") or cust.get("group")))
        return settings

    def validate(self, *, has_accounts: bool = False) -> None:
        if self.user_contents is None:
            return
        if self.unattended:
            raise KickstartError("kickstart unattended options are not compatible with user-supplied kickstart content")
        if self.sudo_nopasswd:
            raise KickstartError(
                "kickstart sudo nopasswd drop-in file creation is not compatible with user-supplied kickstart content"
            )
        if has_accounts:
            raise KickstartError("kickstart users and/or groups are not compatible with user-supplied kickstart content")


def kickstart_options(
    path: str,
    *,
    liveimg_url: str = "",
    ostree_url: str = "",
    ostree_ref: str = "",
    os_name: str = "",
    ostree_remote: str | None = None,
    users_options: Mapping[str, Any] | None = None,
    groups_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The kickstart stage's options; `ostree_remote` (today's images always writes one, maybe
    empty) names the remote anaconda adds for the deployed commit."""
    options: dict[str, Any] = {"path": path}
    if ostree_url:
        options["ostree"] = {"osname": os_name}
        if ostree_remote is not None:
            options["ostree"]["remote"] = ostree_remote
        options["ostree"].update({"url": ostree_url, "ref": ostree_ref, "gpg": False})
    if liveimg_url:
        options["liveimg"] = {"url": liveimg_url}
    if users_options and users_options.get("users"):
        options["users"] = users_options["users"]
    if groups_options and groups_options.get("groups"):
        options["groups"] = groups_options["groups"]
    return options


def unattended_options(settings: KickstartSettings) -> dict[str, Any]:
    """Answers for every question anaconda would ask; the disk is wiped and partitioned plainly."""
    return {
        "lang": settings.language or "en_US.UTF-8",
        "keyboard": settings.keyboard or "us",
        "timezone": settings.timezone or "UTC",
        "display_mode": "text",
        "reboot": {"eject": True},
        "rootpw": {"lock": True},
        "zerombr": True,
        "clearpart": {"all": True, "initlabel": True},
        "autopart": {"type": "plain", "fstype": "xfs", "nohome": True},
        "network": [{"bootproto": "dhcp", "device": "link", "activate": True, "onboot": "on"}],
    }


def sudoers_post(names: list[str]) -> str:
    """A `%post` giving each user or %group password-less sudo through /etc/sudoers.d."""
    lines = []
    for name in sorted(set(names)):
        lines.append(f'echo -e "{name}\\tALL=(ALL)\\tNOPASSWD: ALL" > "/etc/sudoers.d/{name}"')
        lines.append(f"chmod 0440 /etc/sudoers.d/{name}")
    if not lines:
        return ""
    return "\n%post\n" + "\n".join(lines) + "\nrestorecon -rvF /etc/sudoers.d\n%end\n"


def including(base_path: str) -> tuple[str, str]:
    """Where the stage's kickstart goes when another file includes it, and the include line."""
    directory, _, name = base_path.rpartition("/")
    stem, dot, ext = name.partition(".")
    base_name = f"{stem}-base{dot}{ext}"
    new_path = f"{directory}/{base_name}" if directory else f"/{base_name}"
    return new_path, f"%include {ISO_ROOT}/{base_name}\n"


def kickstart_stages(
    options: dict[str, Any],
    settings: KickstartSettings,
    file_stages: Callable[[list[tuple[str, bytes]]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The kickstart stage for `options`, plus the including file when one is needed.

    `file_stages([(path, data)])` writes files into the tree (the caller's inline-source copy).
    """
    options = dict(options)
    if settings.unattended:
        options.update(unattended_options(settings))
    raw = settings.user_contents if settings.user_contents is not None else sudoers_post(settings.sudo_nopasswd)
    if not raw:
        return [{"type": "org.osbuild.kickstart", "options": options}]
    path = options["path"]
    options["path"], include = including(path)
    return [{"type": "org.osbuild.kickstart", "options": options}] + file_stages([(path, (include + raw).encode())])


ROOT_USER_UNSUPPORTED = ("expiredate", "force_password_reset", "gid", "groups", "home", "shell", "uid")


def adjust_root_user(options: dict[str, Any]) -> dict[str, Any] | None:
    """images' adjustRootUserOptions: kickstart's `user` cannot set root's password, so a root
    account becomes `rootpw` (crypted); root stays in `users` only for its SSH key."""
    users = options.get("users")
    if not users or "root" not in users:
        return None
    root = dict(users["root"])
    rootpw = None
    if root.get("password") is not None:
        rootpw = {"iscrypted": True, "password": root.pop("password")}
    bad = [k for k in ROOT_USER_UNSUPPORTED if root.get(k) is not None]
    if bad:
        raise KickstartError(f'org.osbuild.kickstart: unsupported options for user "root": {", ".join(bad)}')
    users = dict(users)
    if root.get("key") is not None:
        users["root"] = root
    else:
        del users["root"]
    if users:
        options["users"] = users
    else:
        options.pop("users")
    return rootpw


def today_kickstart_stages(
    options: dict[str, Any],
    settings: KickstartSettings,
    file_stages: Callable[[list[tuple[str, bytes]]], list[dict[str, Any]]],
) -> list[dict[str, Any]]:
    """osbuild/images' AnacondaInstallerISOTree.makeKickstartStages (reviewed at 1146ec23cd9c).

    A user kickstart becomes the ISO's kickstart including ours (renamed `-base`), and images
    writes the kickstart stage twice then; the unattended answers and the sudoers `%post`
    (makeKickstartSudoersPost) go into the stage's own options instead of an including file.
    """
    options = dict(options)
    rootpw = adjust_root_user(options)
    if rootpw is not None:
        options["rootpw"] = rootpw
    stages: list[dict[str, Any]] = []
    files: list[tuple[str, bytes]] = []
    if settings.user_contents is not None:
        path = options["path"]
        options["path"], include = including(path)
        files.append((path, (include + settings.user_contents).encode()))
        stages.append({"type": "org.osbuild.kickstart", "options": options})
    if settings.unattended:
        options.update(unattended_options(settings))
    if settings.sudo_nopasswd:
        commands: list[str] = []
        for name in sorted(set(settings.sudo_nopasswd)):
            commands.append(f'echo -e "{name}\\tALL=(ALL)\\tNOPASSWD: ALL" > "/etc/sudoers.d/{name}"')
            commands.append(f"chmod 0440 /etc/sudoers.d/{name}")
        commands.append("restorecon -rvF /etc/sudoers.d")
        options["%post"] = [{"commands": commands}]
    stages.append({"type": "org.osbuild.kickstart", "options": options})
    if files:
        stages += file_stages(files)
    return stages


def anaconda_modules(additional: list[str], settings: KickstartSettings | None = None) -> list[str]:
    """The kickstart modules anaconda activates: defaults, the image type's, the blueprint's.

    Without blueprint choices the image type's modules follow the defaults in order (as
    osbuild-composer lists them); with them, the enabled set is listed sorted.
    """
    base = [MODULE_PREFIX + m for m in DEFAULT_MODULES]
    modules = base + [m for m in additional if m not in base]
    if settings is None or not (settings.enable_modules or settings.disable_modules):
        return modules
    enabled = set(modules) | set(settings.enable_modules)
    enabled -= set(settings.disable_modules)
    return sorted(enabled)
