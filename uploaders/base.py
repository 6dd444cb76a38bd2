"""The contract every upload target keeps, and the registry the API and workers look targets up in.

A target is a class with osbuild-composer's provider name (`aws`, `aws.s3`, `gcp`, …), the Weldr
facts `upload/providers` shows (display name, supported image types, settings-info) and two
operations: `validate` (run by the API before anything is stored, so a bad value fails the request
instead of a worker an hour later) and `upload` (run by a worker). Settings carry
osbuild-composer's JSON names; the names lorax-composer and this service used before are accepted
as aliases. Secrets are declared per setting, so every output path can strip them with one
function instead of each route remembering which keys are sensitive.
"""

from __future__ import annotations

import lzma
import os
import re
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uploaders import canonical_target

SECRET_MASK = "********"

ProgressCallback = Callable[[int, int], None]


class UploadError(Exception):
    """An upload cannot go on; the message is shown to the user in `upload/info` and the log."""


class SettingsError(UploadError, ValueError):
    """A setting is missing or has a bad value; the message names the setting."""


class UploadCancelled(UploadError):
    """The user cancelled the upload (`upload/cancel`); raised between parts."""


@dataclass(frozen=True)
class SettingInfo:
    """One provider setting, as `upload/providers` describes it to cockpit-composer.

    `type` follows lorax: "string" or "boolean". `secret` settings are stored for use but never
    shown. `name` is osbuild-composer's JSON name where it has one; `aliases` are the other names
    (lorax-composer's, this service's earlier ones) accepted on input and stored under `name`.
    """

    name: str
    display: str
    type: str = "string"
    placeholder: str = ""
    regex: str = ""
    required: bool = False
    secret: bool = False
    aliases: tuple[str, ...] = ()

    def weldr(self) -> dict[str, Any]:
        return {"display": self.display, "type": self.type, "placeholder": self.placeholder,
                "regex": self.regex}


@dataclass
class UploadContext:
    """What a running upload may use to talk back: progress, cancellation and a log line sink.

    `should_cancel` is polled between parts; it must be cheap or throttle itself.
    """

    progress: ProgressCallback = lambda done, total: None
    should_cancel: Callable[[], bool] = lambda: False
    log: Callable[[str], None] = lambda line: None
    workers: int = 10
    # what was built, for targets whose result depends on it (AWS architecture, GCP guest OS
    # features, the container types); empty when unknown
    image_type: str = ""
    distro: str = ""
    arch: str = ""
    bytes_sent: int = 0  # image bytes put on the wire (skipped zeros excluded), for metrics
    _sent_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_sent(self, nbytes: int) -> None:
        with self._sent_lock:
            self.bytes_sent += nbytes

    def check_cancelled(self) -> None:
        if self.should_cancel():
            raise UploadCancelled("upload cancelled")


class Uploader(ABC):
    """Base class of a target. Subclasses set the class attributes and implement `upload`."""

    name: str = ""
    display: str = ""
    supported_types: tuple[str, ...] = ()  # empty: any image type
    settings_info: tuple[SettingInfo, ...] = ()

    # --- settings -------------------------------------------------------------------------
    @classmethod
    def info(cls, name: str) -> SettingInfo | None:
        for item in cls.settings_info:
            if item.name == name:
                return item
        return None

    @classmethod
    def secret_names(cls) -> frozenset[str]:
        names: set[str] = set()
        for item in cls.settings_info:
            if item.secret:
                names.add(item.name)
                names.update(item.aliases)
        return frozenset(names)

    @classmethod
    def setting_for(cls, key: str) -> SettingInfo | None:
        for item in cls.settings_info:
            if key == item.name or key in item.aliases:
                return item
        return None

    @classmethod
    def normalize(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """Aliases → the setting's name; unknown keys dropped, as osbuild-composer's JSON decoding
        ignores them (a profile written for a newer release still works). A name given twice
        (`region` and `aws_region`) keeps the value under the setting's own name."""
        if not isinstance(settings, dict):
            raise SettingsError("settings must be an object")
        out: dict[str, Any] = {}
        for key, value in settings.items():
            item = cls.setting_for(key)
            if item is None or (key != item.name and item.name in settings):
                continue
            out[item.name] = value
        return out

    @classmethod
    def unknown_keys(cls, settings: dict[str, Any]) -> list[str]:
        """Keys `normalize` drops, for a log line (never an error)."""
        return sorted(k for k in settings if cls.setting_for(k) is None)

    @classmethod
    def validate(cls, settings: dict[str, Any], image_name: str | None = None,
                 image_type: str | None = None) -> dict[str, Any]:
        """Check names, types, patterns and required settings; return the normalised settings."""
        if image_name is not None and not str(image_name).strip():
            raise SettingsError("Image name cannot be empty!")
        if image_type is not None and cls.supported_types and image_type not in cls.supported_types:
            raise SettingsError(f'Type "{image_type}" is not supported by provider "{cls.name}"!')
        settings = cls.normalize(settings)
        for key, value in settings.items():
            item = cls.info(key)
            assert item is not None
            if value is None:  # JSON null, as an omitted setting
                continue
            if item.type == "boolean":
                if not isinstance(value, bool):
                    raise SettingsError(f'Expected a boolean for "{key}", received {type(value).__name__}!')
                continue
            if not isinstance(value, str):
                raise SettingsError(f'Expected a string for "{key}", received {type(value).__name__}!')
            if item.regex and value and not re.fullmatch(item.regex, value):
                shown = SECRET_MASK if item.secret else value
                raise SettingsError(f'Value "{shown}" is invalid for setting "{key}"!')
        settings = {k: v for k, v in settings.items() if v is not None}
        for item in cls.settings_info:
            if item.required and not settings.get(item.name):
                raise SettingsError(f"Missing setting '{item.name}' ({item.display}) for provider "
                                    f"\"{cls.name}\"")
        cls.check(settings)
        return settings

    @classmethod  # noqa: B027 - an optional hook: most targets have no cross-setting rule
    def check(cls, settings: dict[str, Any]) -> None:
        """Cross-setting rules of a target (e.g. one of two credentials); raise SettingsError."""

    @classmethod
    def strip_secrets(cls, settings: dict[str, Any]) -> dict[str, Any]:
        secrets = cls.secret_names()
        return {k: v for k, v in settings.items() if k not in secrets}

    @classmethod
    def secret_values(cls, settings: dict[str, Any]) -> list[str]:
        secrets = cls.secret_names()
        return [str(v) for k, v in settings.items() if k in secrets and v]

    @classmethod
    def provider_info(cls) -> dict[str, Any]:
        """The `upload/providers` entry, without profiles (those come from the store)."""
        return {"display": cls.display, "supported_types": list(cls.supported_types),
                "settings-info": {item.name: item.weldr() for item in cls.settings_info}}

    # --- upload ---------------------------------------------------------------------------
    @abstractmethod
    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        """Move the image; return the result (ids, URLs) to show the user. Settings are validated."""


_REGISTRY: dict[str, type[Uploader]] = {}


def register(cls: type[Uploader]) -> type[Uploader]:
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin() -> None:
    # The target modules import their SDKs inside the functions that use them, so listing the
    # providers (the API's `upload/providers`) needs none of the optional SDKs installed.
    from uploaders import aws, azure, container, gcp, local, oci, s3, vmware  # noqa: F401


def get_uploader(name: str) -> type[Uploader]:
    """The target a provider name means; osbuild-composer's and earlier aliases included."""
    _load_builtin()
    try:
        return _REGISTRY[canonical_target(name)]
    except KeyError:
        raise SettingsError(f'Couldn\'t find provider "{name}"!') from None


def provider_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def strip_secrets(provider: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Settings safe to show anywhere. Unknown providers lose everything: better empty than leaked."""
    try:
        cls = get_uploader(provider)
    except SettingsError:
        return {}
    try:
        settings = cls.normalize(settings)
    except SettingsError:
        return {}
    return cls.strip_secrets(settings)


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every secret value in a text (log lines, error messages from SDKs)."""
    for secret in sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, SECRET_MASK)
    return text


# --- reading images: sparse-aware chunking ----------------------------------------------------

def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of the allocated regions of a file; holes are skipped without reading them.

    A 4 GiB disk image with 200 MiB of data is mostly holes; reading the holes would still cost
    seconds of copying zeros. Where SEEK_DATA is unsupported the whole file is one extent.
    """
    if not hasattr(os, "SEEK_DATA"):
        yield 0, size
        return
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: no data after offset
            return
        end = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, min(end, size)
        offset = end


def nonzero_chunks(path: Path, chunk_size: int,
                   on_skip: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(index, bytes) of the `chunk_size`-aligned chunks that hold any non-zero byte.

    Only chunks touching an allocated extent are read; the last chunk may be short. A generator,
    so the caller's bounded parallelism bounds the memory too.
    """
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        last = -1
        for start, end in data_extents(fd, size):
            first_idx = max(start // chunk_size, last + 1)
            last_idx = (end - 1) // chunk_size
            for idx in range(first_idx, last_idx + 1):
                length = min(chunk_size, size - idx * chunk_size)
                data = os.pread(fd, length, idx * chunk_size)
                if data.count(0) != len(data):
                    yield idx, data
                elif on_skip is not None:
                    on_skip(len(data))
            last = max(last, last_idx)
    finally:
        os.close(fd)


def nonzero_runs(path: Path, window: int, granule: int,
                 on_skip: Callable[[int], None] | None = None) -> Iterator[tuple[int, bytes]]:
    """(offset, bytes) of runs of non-zero `granule`s, each inside one `window`-aligned window.

    For targets that accept writes of any aligned length (Azure pages: 512-byte multiples up to
    4 MiB): data scattered through an image costs its own size on the wire, not whole windows.
    """
    for index, data in nonzero_chunks(path, window, on_skip):
        base = index * window
        run_start = None
        for pos in range(0, len(data), granule):
            piece = data[pos:pos + granule]
            if piece.count(0) == len(piece):
                if run_start is not None:
                    yield base + run_start, data[run_start:pos]
                    run_start = None
                if on_skip is not None:
                    on_skip(min(granule, len(data) - pos))
            elif run_start is None:
                run_start = pos
        if run_start is not None:
            yield base + run_start, data[run_start:]


def allocated_bytes(path: Path) -> int:
    """Bytes in allocated extents: the upper bound of what a zero-skipping upload sends."""
    size = path.stat().st_size
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(end - start for start, end in data_extents(fd, size))
    finally:
        os.close(fd)


def run_parallel(jobs: Iterable[Any], work: Callable[[Any], int], ctx: UploadContext,
                 total: int, done: int = 0) -> int:
    """Run `work(job)` for every job on `ctx.workers` threads; `work` returns bytes it sent.

    At most twice the worker count is in flight, so a huge image is never queued in memory.
    Cancellation is checked before each new job; the first failure stops scheduling and is
    re-raised after the running jobs end, so no thread writes after we report FAILED.
    """
    lock = threading.Lock()
    progress = {"done": done}
    failure: list[BaseException] = []

    def one(job: Any) -> None:
        sent = work(job)
        with lock:
            progress["done"] += sent
            current = progress["done"]
        ctx.progress(min(current, total), total)

    pending: set[Future] = set()
    limit = max(1, ctx.workers) * 2
    with ThreadPoolExecutor(max_workers=max(1, ctx.workers), thread_name_prefix="upload") as pool:
        try:
            for job in jobs:
                if ctx.should_cancel():
                    raise UploadCancelled("upload cancelled")
                while len(pending) >= limit:
                    finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for fut in finished:
                        if fut.exception() is not None:
                            raise fut.exception()  # type: ignore[misc]
                pending.add(pool.submit(one, job))
            finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
            for fut in finished:
                if fut.exception() is not None:
                    raise fut.exception()  # type: ignore[misc]
        except BaseException as exc:
            failure.append(exc)
            for fut in pending:
                fut.cancel()
    if failure:
        raise failure[0]
    return progress["done"]


@dataclass
class ProgressThrottle:
    """Forward progress at most every `interval` seconds (and always at the end): the store fsyncs."""

    sink: ProgressCallback
    interval: float = 1.0
    _last: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        with self._lock:
            if done < total and now - self._last < self.interval:
                return
            self._last = now
        self.sink(done, total)


def unpack_xz(path: Path, ctx: UploadContext) -> Path:
    """Decompress an `.xz` image (`image.raw.xz`, `disk.vhd.xz`) beside it into a sparse file:
    all-zero MiBs stay holes, so the unpacked disk costs only its data on disk and the
    zero-skipping uploads read no zeros. No target takes xz itself."""
    raw = path.with_name(f".{path.name[:-3]}.{uuid.uuid4().hex[:8]}.unpacked{''.join(path.suffixes[-2:-1])}")
    ctx.log(f"unpacking {path.name}")
    chunk = 1024 * 1024
    try:
        with lzma.open(path, "rb") as src, open(raw, "wb") as out:
            offset = 0
            while True:
                ctx.check_cancelled()
                data = src.read(chunk)
                if not data:
                    break
                if data.count(0) != len(data):
                    out.seek(offset)
                    out.write(data)
                offset += len(data)
            out.truncate(offset)
    except (lzma.LZMAError, EOFError) as exc:
        raw.unlink(missing_ok=True)
        raise UploadError(f"{path.name} is not a valid xz file: {exc}") from exc
    except BaseException:
        raw.unlink(missing_ok=True)
        raise
    return raw
