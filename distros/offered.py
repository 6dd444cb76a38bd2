"""Which distros the service offers, and what a depsolve for one of them needs.

A distro is offered when both halves exist: a repository file (`repositories_dir`, the core's
sources store reads it) and image definitions (this package).  The default distro and the solver's
release and module platform come from the same pair, so they live here, above both.
"""

from __future__ import annotations

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


def default_distro(config: Any) -> str:
    """The configured default, else the host's distro when we offer it, else centos-9."""
    if getattr(config, "default_distro", ""):
        return config.default_distro
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
