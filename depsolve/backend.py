"""Which solver backend runs: libdnf5 where the host has its bindings, else libsolv.

Both answer the same questions through the same three functions (`depsolve`, `search`,
`names`); the choice is made once per process and written to the log, because "which solver
produced this package list" is the first question when two hosts disagree.
`CELERY_COMPOSER_DEPSOLVE_BACKEND` (`auto`, `libdnf5`, `libsolv`) overrides the choice.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Callable
from types import ModuleType

from core.records import Record

log = logging.getLogger(__name__)

ENV = "CELERY_COMPOSER_DEPSOLVE_BACKEND"
CHOICES = ("auto", "libdnf5", "libsolv")
_MODULES = {"libdnf5": "depsolve.solver_dnf5", "libsolv": "depsolve.solver_solv"}


class Backend(Record, frozen=True):
    name: str
    version: str
    module: ModuleType
    reason: str = ""

    def describe(self) -> str:
        text = f"depsolve backend: {self.name} {self.version}"
        return f"{text} ({self.reason})" if self.reason else text


def _distribution_version(module: ModuleType, name: str) -> str:
    """The installed version of a module's distribution, from its dist-info directory name.

    importlib.metadata would do, but importing it costs a CLI run more than the solve."""
    location = getattr(module, "__file__", None)
    if location:
        from pathlib import Path

        for info in Path(location).resolve().parent.parent.glob(f"{name}-*.dist-info"):
            return info.name[len(name) + 1:-len(".dist-info")]
    return getattr(module, "__version__", None) or "unknown"


def select_backend(preferred: str | None = None,
                   importer: Callable[[str], ModuleType] = importlib.import_module) -> Backend:
    """Choose and import a backend; `importer` lets tests stand in for a host with libdnf5."""
    choice = (preferred or os.environ.get(ENV) or "auto").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{ENV} must be one of {', '.join(CHOICES)}, not {choice!r}")
    reason = ""
    if choice in ("auto", "libdnf5"):
        try:
            libdnf5 = importer("libdnf5")
            module = importer(_MODULES["libdnf5"])
            version = _libdnf5_version(libdnf5)
            return Backend("libdnf5", version, module)
        except ImportError as exc:
            if choice == "libdnf5":
                raise
            reason = f"libdnf5 unavailable: {exc}"
    module = importer(_MODULES["libsolv"])
    return Backend("libsolv", _distribution_version(importer("solv"), "solv"), module, reason)


def _libdnf5_version(libdnf5: ModuleType) -> str:
    try:
        v = libdnf5.utils.get_library_version()
        return f"{v.major}.{v.minor}.{v.micro}"
    except Exception:  # older bindings spell it differently; the name is what matters
        return "unknown"


_current: Backend | None = None


def current() -> Backend:
    """This process's backend, chosen and logged on first use."""
    global _current
    if _current is None:
        _current = select_backend()
        log.info(_current.describe())
    return _current


def reset() -> None:
    """Forget the choice (tests switch backends through the environment)."""
    global _current
    _current = None
