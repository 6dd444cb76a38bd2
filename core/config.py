"""Settings of every celery-composer process, from one TOML file and the environment.

One `Config` is shared by the API, the workers and the CLI so that a setting means the same thing
everywhere.  Precedence, lowest first: built-in defaults, the TOML file, `CELERY_COMPOSER_<KEY>`
environment variables, command-line options (applied by `app.cli`).  Anything unknown or of the
wrong type is refused at startup with the key named, because a typo silently ignored is how a
service ends up writing its state to the wrong disk.

The TOML file may group settings in tables (`[api]`, `[storage]`, ...; see `SECTIONS`) or give
them at the top level; both spell the same flat setting.  `upload_defaults` is the only setting
that is itself a table of tables (one sub-table per upload target); `distro_aliases` is a top-level
table of names as in osbuild-composer (`[distro_aliases]`, `rhel-9 = "rhel-9.6"`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from core import records
from core.records import Record, field

DEFAULT_CONFIG_FILE = Path("/etc/celery-composer/celery-composer.toml")
ENV_PREFIX = "CELERY_COMPOSER_"
PROJECT_DIR = Path(__file__).resolve().parent.parent

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_FORMATS = ("text", "json")


# Environment variables with our prefix that are not settings of `Config`: read directly by the
# part named, so `load()` lets them through (checking the value where it can) instead of refusing
# them as unknown settings.  The first group is documented for users in the README.
ENV_ONLY: dict[str, tuple[str, ...] | None] = {
    ENV_PREFIX + "CONFIG": None,                              # the configuration file to read
    ENV_PREFIX + "DEPSOLVE_BACKEND": ("auto", "libdnf5", "libsolv"),  # depsolve.backend
    ENV_PREFIX + "DEPSOLVE_WORKERS": (),                      # API solver processes; () = integer
}
INTERNAL_ENV = frozenset({
    ENV_PREFIX + "DEPSOLVE_DEFER_CACHE_WRITES",  # set by `celery-composer depsolve` for itself
    ENV_PREFIX + "EMBEDDED_CONFIG",              # serve → its embedded-helpers child
})


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


# where `make install` puts the shipped repository definitions, for installs that are not a checkout
SHARED_REPOSITORIES_DIRS = (Path("/usr/local/share/celery-composer/repositories"),
                            Path("/usr/share/celery-composer/repositories"))


def default_repositories_dir() -> Path:
    """The checkout's `repositories/` when running from one, else the installed copy.

    A wheel install has no `repositories/` beside the package, so without this search an installed
    service would find no distro at all.
    """
    candidates = (PROJECT_DIR / "repositories",
                  Path(sys.prefix) / "share" / "celery-composer" / "repositories",
                  *SHARED_REPOSITORIES_DIRS)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


class Config(Record):
    # API
    socket: Path = Path("/run/weldr/api.socket")
    socket_group: str = "weldr"
    listen: str = ""  # "HOST:PORT" to also serve TCP; empty: socket only
    allowed_hosts: list[str] = field(default_factory=list)  # Host/Origin names TCP answers besides loopback
    api_workers: int = 2
    body_limit: int = 16 * 1024 * 1024
    default_distro: str = ""  # distro when a request names none; empty: the host's, else centos-9
    # alias → distro (osbuild-composer's [distro_aliases]); rhel-N already names the newest rhel-N.M
    distro_aliases: dict[str, str] = field(default_factory=dict)
    # Storage
    state_dir: Path = field(default_factory=default_state_dir)
    cache_dir: Path = field(default_factory=default_cache_dir)
    repositories_dir: Path = field(default_factory=default_repositories_dir)
    artifacts_dir: Path | None = None  # default: <state_dir>/artifacts
    # the store's database; empty: SQLite in state_dir, else e.g. postgresql://user@host/db
    database_url: str = ""
    sealing_key_file: Path | None = None  # the key sealing upload secrets; default: <state_dir>/sealing.key
    sealing_key: str = ""  # the key itself (machines sharing no file); wins over sealing_key_file
    # where images go; empty: artifacts_path on this machine, else s3://bucket/prefix
    artifacts_url: str = ""
    artifacts_endpoint_url: str = ""  # an S3-compatible service's URL; empty: AWS
    artifacts_region: str = ""
    # the bucket's own credentials; empty: boto3's usual places (environment, ~/.aws, a role)
    artifacts_access_key: str = ""
    artifacts_secret_key: str = ""
    # Celery; empty broker_url selects the embedded single-machine default
    broker_url: str = ""
    result_backend: str = ""
    worker_concurrency: int = 0  # 0: one per CPU
    embedded_workers: bool = True  # `serve` starts workers itself when the broker is embedded
    # Build
    osbuild_command: list[str] = field(default_factory=lambda: ["osbuild"])
    osbuild_store: Path | None = None  # default: <cache_dir>/osbuild-store
    osbuild_cache_max_size: str = "unlimited"
    osbuild_checkpoint_images: bool = False  # also keep the image pipelines in the store
    build_timeout: int = 4 * 3600
    task_stale_after: int = 600  # a RUNNING task with no heartbeat for this long is failed
    # Depsolve
    metadata_expire: int = 6 * 3600
    compose_depsolve_wait: int = 120  # POST /compose waits this long for the depsolve step's outcome
    # Logging
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line
    # Uploads
    local_upload_dirs: list[str] = field(default_factory=list)  # where the `local` target may write
    # Upload defaults: {"aws": {"region": ...}, ...}
    upload_defaults: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def store_path(self) -> Path:
        return self.osbuild_store or (self.cache_dir / "osbuild-store")

    @property
    def artifacts_path(self) -> Path:
        """Where finished images are kept; its own setting so it can be a separate volume."""
        return self.artifacts_dir or (self.state_dir / "artifacts")

    def replace(self, **changes: Any) -> "Config":
        return records.replace(self, **{k: _coerce(k, v) for k, v in changes.items()})


# Tables a TOML file may use to group settings, and the settings each one holds.  The README and
# the example configuration follow the same grouping.
SECTIONS: dict[str, tuple[str, ...]] = {
    "api": ("socket", "socket_group", "listen", "allowed_hosts", "api_workers", "body_limit",
            "default_distro", "distro_aliases"),
    "storage": ("state_dir", "cache_dir", "repositories_dir", "artifacts_dir", "database_url",
                "sealing_key_file", "sealing_key", "artifacts_url", "artifacts_endpoint_url",
                "artifacts_region", "artifacts_access_key", "artifacts_secret_key"),
    "celery": ("broker_url", "result_backend", "worker_concurrency", "embedded_workers"),
    "build": ("osbuild_command", "osbuild_store", "osbuild_cache_max_size",
              "osbuild_checkpoint_images", "build_timeout", "task_stale_after"),
    "depsolve": ("metadata_expire", "compose_depsolve_wait"),
    "logging": ("log_level", "log_format"),
    "uploads": ("local_upload_dirs",),
}
_SECTION_OF = {key: section for section, keys in SECTIONS.items() for key in keys}

# setting name → its annotation (a string: this module's annotations are not evaluated)
_FIELDS: dict[str, str] = {name: Config.__annotations__[name] for name in records.fields(Config)}


def _field_kind(name: str) -> str:
    annotation = _FIELDS[name]
    for kind in ("list", "dict", "Path", "int", "bool", "str"):
        if kind in annotation:
            return kind
    return "str"


def _optional(name: str) -> bool:
    return "None" in _FIELDS[name]


_LISTEN_RE = re.compile(r"^(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(?P<port>[0-9]{1,5})$")
_SIZE_RE = re.compile(r"^(unlimited|[0-9]+(\s*(B|kB|KB|KiB|MB|MiB|GB|GiB|TB|TiB))?)$")
_URL_RE = re.compile(r"^[a-z][a-z0-9+.-]*://")


def _check_listen(value: str) -> str:
    if value == "":
        return value
    match = _LISTEN_RE.match(value)
    if not match or not 0 < int(match["port"]) < 65536:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:8700")
    return value


def _check_log_level(value: str) -> str:
    if value.upper() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
    return value.upper()


def _check_log_format(value: str) -> str:
    if value.lower() not in LOG_FORMATS:
        raise ValueError(f"expected one of {', '.join(LOG_FORMATS)}")
    return value.lower()


def _check_url(value: str) -> str:
    if value and not _URL_RE.match(value):
        raise ValueError("expected a URL such as redis://127.0.0.1:6379/0, or empty for embedded")
    return value


def _check_database_url(value: str) -> str:
    if value and not re.match(r"^(postgresql|postgres|sqlite)(\+[a-z0-9]+)?://", value):
        raise ValueError("expected postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (or"
                         " sqlite:///PATH), or empty for the SQLite file in state_dir")
    return value


def _check_artifacts_url(value: str) -> str:
    if value and not re.match(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$", value):
        raise ValueError("expected s3://BUCKET[/PREFIX], or empty for artifacts_dir on this machine")
    return value


def _check_size(value: str) -> str:
    if not _SIZE_RE.match(value.strip()):
        raise ValueError("expected 'unlimited' or a size such as 20GiB")
    return value.strip()


def _check_sealing_key(value: str) -> str:
    import base64
    import binascii

    value = value.strip()
    if value:
        try:
            raw = base64.urlsafe_b64decode(value.encode())
        except (binascii.Error, ValueError):
            raw = b""
        if len(value) != 44 or len(raw) != 32:
            raise ValueError("expected a Fernet key: 44 characters of url-safe base64 (python3 -c "
                             "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')")
    return value


def _at_least(minimum: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value
    return check


def _check_command(value: list[str]) -> list[str]:
    if not value or not value[0]:
        raise ValueError("must name a program")
    return value


_DISTRO_NAME = re.compile(r"^[a-z][a-z0-9_]*(-[0-9a-z._]+)+$")


def _check_distro_aliases(value: dict[str, Any]) -> dict[str, str]:
    for alias, target in value.items():
        if not isinstance(target, str) or not _DISTRO_NAME.match(target) or not _DISTRO_NAME.match(alias):
            raise ValueError(f"'{alias}' must name a distro such as rhel-9.6")
    return dict(value)


def _check_upload_defaults(value: dict[str, Any]) -> dict[str, Any]:
    for target, settings in value.items():
        if not isinstance(settings, dict):
            raise ValueError(f"'{target}' must be a table of settings, e.g."
                             f" [upload_defaults.{target}]")
        if "allowed_directories" in settings:
            raise ValueError(f"'{target}.allowed_directories' is now the setting local_upload_dirs"
                             " (in [uploads])")
    return value


def _check_directories(value: list[str]) -> list[str]:
    for directory in value:
        if not os.path.isabs(directory) or ".." in Path(directory).parts:
            raise ValueError(f"{directory!r} is not an absolute path without '..'")
    return [os.path.normpath(d) for d in value]


# Checks beyond the type; each raises ValueError with the reason, `_coerce` adds the key.
_CHECKS: dict[str, Callable[[Any], Any]] = {
    "listen": _check_listen,
    "sealing_key": _check_sealing_key,
    "api_workers": _at_least(1),
    "body_limit": _at_least(1),
    "worker_concurrency": _at_least(0),
    "broker_url": _check_url,
    "database_url": _check_database_url,
    "artifacts_url": _check_artifacts_url,
    "artifacts_endpoint_url": _check_url,
    "result_backend": _check_url,
    "osbuild_command": _check_command,
    "osbuild_cache_max_size": _check_size,
    "build_timeout": _at_least(1),
    "task_stale_after": _at_least(1),
    "metadata_expire": _at_least(0),
    "compose_depsolve_wait": _at_least(0),
    "log_level": _check_log_level,
    "log_format": _check_log_format,
    "local_upload_dirs": _check_directories,
    "upload_defaults": _check_upload_defaults,
    "distro_aliases": _check_distro_aliases,
}


def _convert(key: str, kind: str, value: Any) -> Any:
    if kind == "Path":
        if value is None or value == "":
            if _optional(key):
                return None
            raise ValueError("must not be empty")
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError
        return Path(value)
    if kind == "int":
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            raise TypeError
        if isinstance(value, str):
            return int(value.strip())
        if not isinstance(value, (int, float)):
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
        raise ValueError
    if kind == "list":
        if isinstance(value, str):
            import shlex

            return shlex.split(value)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise TypeError
        return list(value)
    if kind == "dict":
        if isinstance(value, str) and key == "distro_aliases" and not value.lstrip().startswith("{"):
            # osbuild-composer's DISTRO_ALIASES form: rhel-9=rhel-9.6,rhel-8=rhel-8.10
            pairs = [part.split("=") for part in value.split(",") if part.strip()]
            if any(len(pair) != 2 for pair in pairs):
                raise ValueError("expected alias=distro pairs separated by commas")
            return {a.strip(): d.strip() for a, d in pairs}
        if isinstance(value, str):
            import json

            value = json.loads(value)
        if not isinstance(value, dict):
            raise TypeError
        return value
    if not isinstance(value, str):
        raise TypeError
    return value


def _coerce(key: str, value: Any) -> Any:
    if key not in _FIELDS:
        raise ConfigError(f"unknown setting '{key}'")
    kind = _field_kind(key)
    try:
        result = _convert(key, kind, value)
    except (TypeError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, ValueError) and str(exc) and kind == "Path" else ""
        expected = {"Path": "a path", "int": "an integer", "bool": "true or false",
                    "list": "a list of strings", "dict": "a table", "str": "a string"}[kind]
        raise ConfigError(f"setting '{key}': {reason or 'expected ' + expected}, got {value!r}") \
            from exc
    check = _CHECKS.get(key)
    if check is not None and result is not None:
        try:
            result = check(result)
        except ValueError as exc:
            raise ConfigError(f"setting '{key}': {exc}, got {value!r}") from exc
    return result


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
        # Imported here: compiling the TOML readers' expressions is ~8 ms of CPU that a
        # one-shot command on a machine without a configuration file need not pay.
        import tomllib

        from core import tomldoc

        try:
            data = tomldoc.loads(path.read_bytes().decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
        try:
            for key, value in _flatten(data).items():
                values[key] = _coerce(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    elif explicit:
        raise ConfigError(f"configuration file {path} does not exist")
    for name, value in environ.items():
        if name in ENV_ONLY:
            _check_env_only(name, value)
        elif name.startswith(ENV_PREFIX) and name not in INTERNAL_ENV:
            key = name[len(ENV_PREFIX):].lower()
            try:
                values[key] = _coerce(key, value)
            except ConfigError as exc:
                raise ConfigError(f"environment variable {name}: {exc}") from None
    for key, value in overrides.items():
        if value is not None:
            values[key] = _coerce(key, value)
    return Config(**values)


def _check_env_only(name: str, value: str) -> None:
    allowed = ENV_ONLY[name]
    if allowed is None:
        return
    if allowed == ():
        if not value.strip().isdigit() or int(value) < 1:
            raise ConfigError(f"environment variable {name}: expected a positive integer,"
                              f" got {value!r}")
    elif value not in allowed:
        raise ConfigError(f"environment variable {name}: expected one of {', '.join(allowed)},"
                          f" got {value!r}")


def _flatten(data: dict[str, Any]) -> dict[str, Any]:
    """Map `[section] key = ...` and top-level `key = ...` to the flat setting names.

    A key in the wrong table, or a table nobody knows, is refused: it is almost always a typo, and
    ignoring it would leave the default in force without a word.
    """
    flat: dict[str, Any] = {}

    def put(key: str, value: Any, where: str) -> None:
        if key in flat:
            raise ConfigError(f"setting '{key}' is given twice (again {where})")
        flat[key] = value

    for key, value in data.items():
        if key in SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"'{key}' is a section: write [{key}] and its settings below it")
            for sub, subvalue in value.items():
                if _SECTION_OF.get(sub) != key:
                    home = _SECTION_OF.get(sub)
                    hint = f"; it belongs in [{home}]" if home else ""
                    raise ConfigError(f"unknown setting '{sub}' in [{key}]{hint}")
                put(sub, subvalue, f"in [{key}]")
        elif isinstance(value, dict) and key not in _FIELDS:
            raise ConfigError(f"unknown section [{key}]; known sections:"
                              f" {', '.join(sorted(SECTIONS))}, distro_aliases, upload_defaults")
        else:
            put(key, value, "at the top level")
    return flat
