"""Which distros the service offers, and what a depsolve for one of them needs.

A distro is offered when both halves exist: a repository file (`repositories_dir`, the core's
sources store reads it) and image definitions (this package).  The default distro and the solver's
release and module platform come from the same pair, so they live here, above both.

Distro aliases (osbuild-composer's `distro_aliases`): `rhel-8`, `rhel-9`, `rhel-10`, ... name the
newest offered minor of that major release unless the `distro_aliases` setting maps them
elsewhere (osbuild-composer itself ships rhel-7 → rhel-7.9, rhel-8 → rhel-8.10, rhel-9 → rhel-9.6,
rhel-10 → rhel-10.0).  An alias is accepted wherever a distro name is (blueprints, composes,
`?distro=`) and stands for its target; `/distros/list` lists only real distros, and a real distro
always wins over an alias of the same name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import distros
from core.db import Database
from core.store.sources import host_distro, releasever, repo_file, repositories_for

FALLBACK_DISTRO = "centos-9"


def list_distros(config: Any, arch: str | None = None) -> list[str]:
    """Sorted distros that have repositories (for `arch` when given) and image definitions."""
    directory = Path(config.repositories_dir)
    names = sorted(p.stem for p in directory.glob("*.json")) if directory.is_dir() else []
    known = set(distros.list_distros())
    out = []
    for name in names:
        if name not in known:
            continue
        repos = repo_file(config, name)
        if arch is None and repos or arch is not None and repos.get(arch):
            out.append(name)
    return out


_MINOR = re.compile(r"^(?P<major>rhel-[0-9]+)\.(?P<minor>[0-9]+)$")


def distro_aliases(config: Any) -> dict[str, str]:
    """alias → offered distro: `rhel-N` → the newest offered `rhel-N.M`, then the configured
    `distro_aliases` on top; aliases whose target is not offered, or that are real distros, drop."""
    offered = list_distros(config)
    newest: dict[str, tuple[int, str]] = {}
    for name in offered:
        m = _MINOR.match(name)
        if m and (m["major"] not in newest or int(m["minor"]) > newest[m["major"]][0]):
            newest[m["major"]] = (int(m["minor"]), name)
    aliases = {alias: name for alias, (_minor, name) in sorted(newest.items())}
    aliases.update(dict(getattr(config, "distro_aliases", None) or {}))
    known = set(offered)
    return {alias: target for alias, target in aliases.items() if target in known and alias not in known}


def resolve_distro(config: Any, name: str) -> str:
    """The offered distro `name` stands for: itself, or an alias's target (unknown names unchanged)."""
    if not name:
        return name
    return distro_aliases(config).get(name, name)


def default_distro(config: Any) -> str:
    """The configured default, else the host's distro when we offer it, else centos-9."""
    if getattr(config, "default_distro", ""):
        return resolve_distro(config, config.default_distro)
    offered = list_distros(config)
    host = host_distro()
    if host in offered:
        return host
    if host and host.startswith("centos-") and host.split(".")[0] in offered:
        return host.split(".")[0]
    return FALLBACK_DISTRO if FALLBACK_DISTRO in offered or not offered else offered[0]


def solver_inputs(config: Any, db: Database, distro: str, arch: str,
                  image_type: str | None = None) -> tuple[list[dict[str, Any]], str, str | None]:
    """What a depsolve for `distro`/`arch` needs: (repositories, releasever, module_platform_id).

    The image definitions know the distro's release and platform; without them we derive both
    from the name (`rhel-9.6` → `9`, `platform:el9`).
    """
    rel, platform_id = releasever(distro), None
    try:
        d = distros.get_distro(distro)
        rel = str(getattr(d, "release_version", "") or rel)
        platform_id = getattr(d, "module_platform_id", None) or None
    except Exception:  # noqa: BLE001 - no definitions for it: fall back to the name
        name = distro.rsplit("-", 1)[0]
        platform_id = f"platform:f{rel}" if name == "fedora" else f"platform:el{rel}"
    return repositories_for(config, db, distro, arch, image_type), rel, platform_id
