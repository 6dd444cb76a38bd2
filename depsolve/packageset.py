"""A package set: what one transaction of a depsolve chain asks for.

osbuild-composer resolves an image's build root and its OS tree as separate chains, and an OS
set may extend a base set; so a depsolve takes a list of package sets, each resolved on top of
the packages chosen for the sets before it (those are pinned, exactly as chosen).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from core.records import Record


def _names(value: Iterable[str] | str | None, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"package set {what} must be non-empty strings, got {item!r}")
        out.append(item.strip())
    return tuple(out)


class PackageSet(Record, frozen=True):
    """Names to install (`@group` for comps groups, `@^env` for environments), names to exclude.

    `include` entries may be names, `name.arch`, NEVRAs, provides (`pkgconfig(glib-2.0)`),
    file paths or globs; `exclude` entries are name globs (`langpacks-*`) hidden from this
    transaction, as dnf's `exclude_specs`.  `install_weak_deps` pulls Recommends/Supplements.
    `enable_modules` (`name:stream`, a blueprint's `enabled_modules`) makes a module stream's
    packages available for this set and the ones after it; `@name:stream[/profile]` in `include`
    enables the stream and installs its (default) profile, as dnf does.
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    install_weak_deps: bool = True
    enable_modules: tuple[str, ...] = ()

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = (),
                 install_weak_deps: bool = True, enable_modules: Iterable[str] = ()) -> None:
        object.__setattr__(self, "include", _names(include, "include"))
        object.__setattr__(self, "exclude", _names(exclude, "exclude"))
        object.__setattr__(self, "install_weak_deps", bool(install_weak_deps))
        modules = _names(enable_modules, "enable_modules")
        for spec in modules:
            if ":" not in spec:
                raise ValueError(f"module streams to enable are name:stream, got {spec!r}")
        object.__setattr__(self, "enable_modules", modules)

    @classmethod
    def from_dict(cls, data: "PackageSet | Mapping[str, Any]") -> "PackageSet":
        """Our spelling (`include`, `exclude`) or osbuild's (`package-specs`, `exclude-specs`)."""
        if isinstance(data, PackageSet):
            return data
        include = data.get("include", data.get("package-specs", data.get("packages", ())))
        exclude = data.get("exclude", data.get("exclude-specs", ()))
        weak = data.get("install_weak_deps", True)
        modules = data.get("enable_modules", data.get("module-enable-specs", ()))
        return cls(include or (), exclude or (), True if weak is None else weak, modules or ())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"include": list(self.include), "exclude": list(self.exclude),
                               "install_weak_deps": self.install_weak_deps}
        if self.enable_modules:
            out["enable_modules"] = list(self.enable_modules)
        return out


def as_chain(chain: Iterable["PackageSet | Mapping[str, Any]"]) -> list[PackageSet]:
    return [PackageSet.from_dict(item) for item in chain]
