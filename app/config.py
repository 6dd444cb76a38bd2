"""Settings of every celery-composer process, from one TOML file and the environment.

One `Config` is shared by the API, the workers and the CLI so that a setting means the same thing
everywhere.  Precedence, lowest first: built-in defaults, the TOML file, `CELERY_COMPOSER_<KEY>`
environment variables, command-line options (applied by `app.cli`).  Anything unknown or of the
wrong type is refused at startup with the key named, because a typo silently ignored is how a
service ends up writing its state to the wrong disk.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULT_CONFIG_FILE = Path("/etc/celery-composer/celery-composer.toml")
ENV_PREFIX = "CELERY_COMPOSER_"
PROJECT_DIR = Path(__file__).resolve().parent.parent


class ConfigError(ValueError):
    """A setting is unknown or has a value of the wrong kind; the message names the key."""


def _is_root() -> bool:
    return os.geteuid() == 0


def default_state_dir() -> Path:
    """Root keeps state where osbuild-composer does; others get a place they can write."""
    if _is_root():
        return Path("/var/lib/celery-composer")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "celery-composer"


def default_cache_dir() -> Path:
    if _is_root():
        return Path("/var/cache/celery-composer")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return Path(base) / "celery-composer"


def default_repositories_dir() -> Path:
    return PROJECT_DIR / "repositories"


@dataclass
class Config:
    # API
    socket: Path = Path("/run/weldr/api.socket")
    socket_group: str = "weldr"
    listen: str = ""  # "HOST:PORT" to also serve TCP; empty: socket only
    api_workers: int = 2
    body_limit: int = 16 * 1024 * 1024
    # Storage
    state_dir: Path = field(default_factory=default_state_dir)
    cache_dir: Path = field(default_factory=default_cache_dir)
    repositories_dir: Path = field(default_factory=default_repositories_dir)
    # Celery; empty broker_url selects the embedded single-machine default
    broker_url: str = ""
    result_backend: str = ""
    worker_concurrency: int = 0  # 0: one per CPU
    embedded_workers: bool = True  # `serve` starts workers itself when the broker is embedded
    # Build
    osbuild_command: list[str] = field(default_factory=lambda: ["osbuild"])
    osbuild_store: Path | None = None  # default: <cache_dir>/osbuild-store
    osbuild_cache_max_size: str = "unlimited"
    build_timeout: int = 4 * 3600
    task_stale_after: int = 600  # a RUNNING task with no heartbeat for this long is failed
    # Depsolve
    metadata_expire: int = 6 * 3600
    # Logging
    log_level: str = "INFO"
    # Upload defaults: {"aws": {"region": ...}, ...}
    upload_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        return self.osbuild_store or (self.cache_dir / "osbuild-store")

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _field_kind(name: str) -> str:
    annotation = str(_FIELDS[name].type)
    for kind in ("list", "dict", "Path", "int", "bool", "str"):
        if kind in annotation:
            return kind
    return "str"


def _coerce(key: str, value: Any) -> Any:
    if key not in _FIELDS:
        raise ConfigError(f"unknown setting '{key}'")
    kind = _field_kind(key)
    try:
        if kind == "Path":
            if value in (None, ""):
                return None if "None" in str(_FIELDS[key].type) else Path(".")
            return Path(str(value))
        if kind == "int":
            if isinstance(value, bool):
                raise TypeError
            return int(value)
        if kind == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind == "list":
            if isinstance(value, str):
                import shlex

                return shlex.split(value)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TypeError
            return list(value)
        if kind == "dict":
            if isinstance(value, str):
                import json

                value = json.loads(value)
            if not isinstance(value, dict):
                raise TypeError
            return value
        if not isinstance(value, (str, int, float)):
            raise TypeError
        return str(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"setting '{key}': expected {kind}, got {value!r}") from exc


def load(path: Path | None = None, environ: Mapping[str, str] | None = None,
         **overrides: Any) -> Config:
    """Build the effective configuration.

    `path=None` reads the default file only if it exists: a fresh machine runs on defaults.
    An explicitly named file that is missing is an error.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    explicit = path is not None or bool(environ.get(ENV_PREFIX + "CONFIG"))
    path = Path(path or environ.get(ENV_PREFIX + "CONFIG") or DEFAULT_CONFIG_FILE)
    if path.exists():
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        for key, value in _flatten(data).items():
            values[key] = _coerce(key, value)
    elif explicit:
        raise ConfigError(f"configuration file {path} does not exist")
    for name, value in environ.items():
        if name.startswith(ENV_PREFIX) and name != ENV_PREFIX + "CONFIG":
            key = name[len(ENV_PREFIX):].lower()
            values[key] = _coerce(key, value)
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value)
    return Config(**values)


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Allow `[api] socket = ...` tables as well as top-level keys; tables map to `<key>`.

    Only `upload_defaults` is a real nested setting; every other table is a grouping for humans.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and key != "upload_defaults":
            for sub, subvalue in value.items():
                flat[sub] = subvalue
        else:
            flat[key] = value
    return flat
