"""Uploads as the API and the workers see them: validate a request, render an entry, run one.

The routes and the Celery task stay one-liners over these functions. Only ids cross the broker:
a worker reads the settings (credentials included) from the store, so no secret is ever a task
argument that Flower or a broker dump would show. Every line written to the upload log and every
error message is passed through `redact` with the upload's secret values first.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from core import metrics
from core.artifacts import ArtifactsUnavailable
from core.db import DatabaseUnavailable
from core.errors import WeldrError
from core.store import uploads as upload_store
from core.store.composes import FAILED, FINISHED, ComposeStore
from uploaders import canonical_target, target_aliases
from uploaders.base import (
    ProgressThrottle,
    SettingsError,
    UploadCancelled,
    UploadContext,
    UploadError,
    get_uploader,
    provider_names,
    redact,
    strip_secrets,
)

log = logging.getLogger(__name__)

CANCELLABLE = ("WAITING", "RUNNING")
CANCEL_POLL_SECONDS = 1.0


def upload_error(msg: str, http_status: int = 400) -> WeldrError:
    return WeldrError("UploadError", msg, http_status)


# --- settings and requests ------------------------------------------------------------------

def defaults_for(config: Any, provider: str) -> dict[str, Any]:
    """Operator defaults from `upload_defaults.<provider>` (minus operator-only keys); a table under
    an alias (`[upload_defaults.s3]`) counts for its target, the target's own table winning."""
    tables = getattr(config, "upload_defaults", None) or {}
    target = canonical_target(provider)
    defaults: dict[str, Any] = {}
    for name in target_aliases(target) + [target]:
        defaults.update(tables.get(name) or {})
    defaults.pop("allowed_directories", None)
    return defaults


def load_profile(db: Any, provider: str, profile: str) -> dict[str, Any] | None:
    """A saved profile of a target, also when it was saved under one of the target's aliases."""
    target = canonical_target(provider)
    for name in [target] + target_aliases(target):
        settings = upload_store.load_profile(db, name, profile)
        if settings is not None:
            return settings
    return None


def list_profiles(db: Any, provider: str) -> dict[str, dict[str, Any]]:
    target = canonical_target(provider)
    out: dict[str, dict[str, Any]] = {}
    for name in target_aliases(target) + [target]:  # the target's own name wins
        out.update(upload_store.list_profiles(db, name))
    return out


def save_profile(db: Any, provider: str, profile: str, settings: dict[str, Any]) -> None:
    target = canonical_target(provider)
    upload_store.save_profile(db, target, profile, settings)
    for alias in target_aliases(target):  # one profile per name: no stale twin under an alias
        upload_store.delete_profile(db, alias, profile)


def delete_profile(db: Any, provider: str, profile: str) -> bool:
    target = canonical_target(provider)
    found = False
    for name in [target] + target_aliases(target):
        found = upload_store.delete_profile(db, name, profile) or found
    return found


def check_settings(config: Any, provider: str, settings: dict[str, Any], image_name: str | None,
                   image_type: str | None = None) -> dict[str, Any]:
    """The request's settings, normalised; checked together with the operator defaults.

    Returns only what the request gave: defaults are applied again when the upload runs, so a
    changed default (a rotated key) reaches uploads that were already queued.
    """
    cls = get_uploader(provider)
    own = cls.normalize(settings)
    dropped = cls.unknown_keys(settings) if isinstance(settings, dict) else []
    if dropped:
        log.info("upload settings for %s: ignoring unknown %s", cls.name, ", ".join(dropped))
    merged = {**cls.normalize(defaults_for(config, provider)), **own}
    cls.validate(merged, image_name, image_type)
    if cls.name == "local" and merged.get("directory"):  # refused now, not by a worker later
        from uploaders.local import allowed_directory

        allowed_directory(str(merged["directory"]), getattr(config, "local_upload_dirs", []))
    return own


def resolve_request(db: Any, config: Any, body: dict[str, Any],
                    compose_type: str | None, *, check_values: bool = True) -> dict[str, Any]:
    """`{"image_name", "provider", "profile"|"settings"}` → an upload request for the store.

    Error wording follows lorax-composer (`Missing parameter 'x'!`, `Type "t" is not supported
    by provider "p"!`), as cockpit-composer shows these messages to the user.  Without
    `check_values` (a test compose: nothing will be uploaded) only the shape is checked — a known
    provider, settings an object — as osbuild-composer checks no more than that there.
    """
    if not isinstance(body, dict):
        raise upload_error("upload must be an object")
    try:
        image_name = body["image_name"]
        provider = body["provider"]
        if not isinstance(image_name, str) or not isinstance(provider, str):
            raise upload_error("'image_name' and 'provider' must be strings")
        if "profile" in body:
            if not isinstance(body["profile"], str):
                raise upload_error("'profile' must be a string")
            settings = load_profile(db, provider, body["profile"])
            if settings is None:
                raise upload_error(f'Profile "{body["profile"]}" for provider "{provider}" does not exist!')
        else:
            settings = body["settings"]
    except KeyError as exc:
        raise upload_error(f"Missing parameter {exc}!") from None
    try:
        if check_values:
            settings = check_settings(config, provider, settings, image_name, compose_type)
        else:
            settings = get_uploader(provider).normalize(settings)
    except SettingsError as exc:
        raise upload_error(str(exc)) from None
    return {"provider": get_uploader(provider).name, "image_name": image_name, "settings": settings}


def validate_upload_request(body_upload: dict[str, Any], compose_type: str, config: Any,
                            db: Any, *, check_values: bool = True) -> dict[str, Any]:
    """For POST /compose (api-core): the v1 `upload` object → an entry of `upload_requests`."""
    return resolve_request(db, config, body_upload, compose_type, check_values=check_values)


def render_upload(upload: Any, image_path: Path | str | None = None,
                  detail: bool = False) -> dict[str, Any]:
    """The Weldr upload shape (catalogue §5.8) with secrets stripped; `detail` adds result/error."""
    out: dict[str, Any] = {
        "uuid": upload.id, "status": upload.status, "provider_name": canonical_target(upload.target),
        "image_name": upload.image_name, "image_path": str(image_path) if image_path else None,
        "creation_time": upload.created, "settings": strip_secrets(upload.target, upload.settings),
    }
    if detail:
        if upload.result:
            out["result"] = upload.result
        if upload.error:
            out["error"] = upload.error
        out["progress"] = upload.progress
    return out


def providers(db: Any) -> dict[str, Any]:
    """`upload/providers`: every target with its settings-info and secret-free profiles."""
    out = {}
    for name in provider_names():
        info = get_uploader(name).provider_info()
        info["profiles"] = {profile: strip_secrets(name, settings)
                            for profile, settings in list_profiles(db, name).items()}
        out[name] = info
    return out


# --- running ----------------------------------------------------------------------------------

def _compose_store(config: Any, store: ComposeStore | None) -> ComposeStore:
    return store or ComposeStore.from_config(config)


def run_compose_uploads(config: Any, compose_id: str, target: str,
                        store: ComposeStore | None = None) -> list[str]:
    """Body of the `compose.upload.<target>` task: every WAITING upload of this compose and target.

    Returns the final statuses (for the task's result and tests). Never raises for an upload's own
    failure: that is recorded on the entry and the compose stays as it is.
    """
    store = _compose_store(config, store)
    statuses = []
    target = canonical_target(target)
    for upload in store.uploads(compose_id):
        if canonical_target(upload.target) != target:  # entries stored before a rename too
            continue
        if upload.status == "RUNNING":
            # The pipeline lets one task at a time hold this compose's upload step, so a RUNNING
            # entry here was left by a worker that died mid-upload: start it again.
            upload_store.append_log(store.db, upload.id, "the previous attempt stopped (worker lost); "
                                                         "starting again")
            store.update_upload(upload.id, status="WAITING", progress=0.0)
        elif upload.status != "WAITING":
            continue
        statuses.append(run_upload(config, upload.id, store=store))
    return statuses


def run_upload(config: Any, upload_id: str, *, store: ComposeStore | None = None,
               cancel_event: threading.Event | None = None, workers: int | None = None) -> str:
    """Run one upload to its end and record everything; returns the final status."""
    store = _compose_store(config, store)
    db = store.db
    try:
        upload = store.upload(upload_id)
    except KeyError:
        log.warning("upload %s no longer exists", upload_id)
        return "DELETED"
    if upload.status != "WAITING":
        return upload.status
    try:
        cls = get_uploader(upload.target)
    except SettingsError as exc:
        _fail(store, upload_id, str(exc), [])
        return FAILED
    defaults = defaults_for(config, upload.target)
    try:
        merged = {**cls.normalize(defaults), **cls.normalize(upload.settings)}
    except SettingsError as exc:
        _fail(store, upload_id, str(exc), [])
        return FAILED
    secrets = cls.secret_values(merged)

    def write_log(line: str) -> None:
        line = redact(line, secrets)
        log.info("upload %s: %s", upload_id, line)
        upload_store.append_log(db, upload_id, line)

    compose = store.get(upload.compose_id)
    if compose.queue_status != FINISHED:
        _fail(store, upload_id, f"compose {compose.id} is {compose.queue_status}, not FINISHED: "
                                "there is no image to upload", secrets, write_log)
        return FAILED
    try:  # the stored image itself, or a copy from the artifact store in this worker's cache
        image_path = store.artifacts.fetch(compose.id, compose.image_filename,
                                           Path(config.cache_dir) / "upload-images")
    except ArtifactsUnavailable as exc:
        _fail(store, upload_id, exc.msg, secrets, write_log)
        return FAILED
    except (OSError, ValueError):
        _fail(store, upload_id, f"the image file of compose {compose.id} is missing", secrets, write_log)
        return FAILED
    try:
        return _upload_image(config, store, upload, compose, image_path, cls, merged, secrets,
                             write_log, cancel_event, workers)
    finally:
        if Path(config.cache_dir) in image_path.parents:  # a copy fetched for this upload
            image_path.unlink(missing_ok=True)


def _upload_image(config: Any, store: ComposeStore, upload: Any, compose: Any, image_path: Path,
                  cls: Any, merged: dict[str, Any], secrets: list[str],
                  write_log: Callable[[str], None], cancel_event: threading.Event | None,
                  workers: int | None) -> str:
    upload_id = upload.id
    store.update_upload(upload_id, status="RUNNING", progress=0.0, error="")
    write_log(f"starting {upload.target} upload of {image_path.name} as \"{upload.image_name}\"")
    ctx = UploadContext(progress=_progress_sink(store, upload_id, write_log),
                        should_cancel=_cancel_probe(store, upload_id, cancel_event),
                        log=write_log, workers=workers or 10, image_type=compose.compose_type,
                        distro=compose.distro, arch=compose.arch)
    started = time.monotonic()
    try:
        with _RedactingLogs(secrets):
            settings = cls.validate(merged, upload.image_name)
            uploader = cls()
            if cls.name == "local":
                uploader.allowed_directories = tuple(config.local_upload_dirs)  # type: ignore[attr-defined]
            result = uploader.upload(image_path, upload.image_name, settings, ctx)
    except UploadCancelled:
        message = f"cancelled on request after {ctx.bytes_sent} bytes were sent; partial data removed"
        write_log(message)
        if _status(store, upload_id) is not None:
            store.update_upload(upload_id, status="CANCELLED", error=message)
        return "CANCELLED"
    except UploadError as exc:
        _fail(store, upload_id, str(exc), secrets, write_log)
        return FAILED
    except Exception as exc:  # an SDK surprise: still a FAILED entry with a reason, never a lost task
        log.exception("upload %s failed unexpectedly", upload_id)
        _fail(store, upload_id, f"unexpected error: {type(exc).__name__}: {exc}", secrets, write_log)
        return FAILED
    if _status(store, upload_id) != "RUNNING":  # cancelled or deleted in the last moment
        return _status(store, upload_id) or "DELETED"
    elapsed = time.monotonic() - started
    store.update_upload(upload_id, status="FINISHED", progress=1.0, result=result)
    write_log(f"finished in {elapsed:.1f} s, {ctx.bytes_sent} bytes sent: "
              + ", ".join(f"{k}={v}" for k, v in result.items() if k != "presigned_url"))
    _record_metrics(config, upload.target, elapsed, ctx.bytes_sent)
    return FINISHED


def _record_metrics(config: Any, target: str, seconds: float, nbytes: int) -> None:
    try:
        metrics.observe_duration(config, "upload", seconds, target=target)
        metrics.add_bytes(config, "upload", nbytes, target=target)
    except (SQLAlchemyError, DatabaseUnavailable) as exc:  # a busy metrics table must not turn a
        # finished upload FAILED
        log.warning("could not record upload metrics: %s", exc)


class _RedactingLogs(logging.Filter):
    """While an upload runs, every record reaching the root handlers loses the upload's secrets.

    The SDKs log at DEBUG what they send (botocore prints the Authorization header with the key
    id, errors may quote URLs with a SAS signature); an operator turning DEBUG on must still not
    get credentials in the journal.
    """

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]
        self.handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        return True

    def __enter__(self) -> "_RedactingLogs":
        self.handlers = list(logging.getLogger().handlers)
        for handler in self.handlers:
            handler.addFilter(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for handler in self.handlers:
            handler.removeFilter(self)


def _status(store: ComposeStore, upload_id: str) -> str | None:
    try:
        return store.upload(upload_id).status
    except KeyError:
        return None


def _fail(store: ComposeStore, upload_id: str, message: str, secrets: list[str],
          write_log: Callable[[str], None] | None = None) -> None:
    message = redact(message, secrets)
    if write_log:
        write_log(f"FAILED: {message}")
    try:
        store.update_upload(upload_id, status=FAILED, error=message)
    except KeyError:
        pass


# What the stored progress may reach while the target still works: 1.0 is written with FINISHED
# only, so a client never sees 100 % of an upload that can still fail (an import, a completion).
PROGRESS_BEFORE_FINISHED = 0.99


def _progress_sink(store: ComposeStore, upload_id: str,
                   write_log: Callable[[str], None]) -> ProgressThrottle:
    """Stored progress and the 25/50/75 % log lines, monotonic whatever order reports arrive in.

    Parts finish out of order on several threads and an SDK may take bytes back when it retries
    a part; the store and the log only ever move forward.
    """
    state = {"fraction": 0.0, "next_mark": 0.25}
    lock = threading.Lock()

    def sink(done: int, total: int) -> None:
        fraction = min(done / total if total else 1.0, PROGRESS_BEFORE_FINISHED)
        with lock:
            if fraction <= state["fraction"]:
                return
            state["fraction"] = fraction
            try:
                store.update_upload(upload_id, progress=round(fraction, 4))
            except KeyError:
                return
            while fraction >= state["next_mark"] and state["next_mark"] < 1.0:
                write_log(f"progress: {int(state['next_mark'] * 100)}% of {total} bytes sent")
                state["next_mark"] += 0.25

    return ProgressThrottle(sink, interval=1.0)


def _cancel_probe(store: ComposeStore, upload_id: str,
                  event: threading.Event | None) -> Callable[[], bool]:
    """Cancelled when the route marked the entry CANCELLED (or deleted it), polled at most 1/s."""
    state: dict[str, Any] = {"at": 0.0, "cancelled": False}
    lock = threading.Lock()

    def probe() -> bool:
        if event is not None and event.is_set():
            return True
        now = time.monotonic()
        with lock:
            if state["cancelled"] or now - state["at"] < CANCEL_POLL_SECONDS:
                return state["cancelled"]
            state["at"] = now
        status = _status(store, upload_id)
        cancelled = status in (None, "CANCELLED")
        with lock:
            state["cancelled"] = cancelled
        return cancelled

    return probe


# --- management (upload/* routes) ------------------------------------------------------------

def find_upload(store: ComposeStore, upload_id: str) -> Any:
    try:
        return store.upload(upload_id)
    except KeyError:
        raise upload_error(f"Could not find upload {upload_id}!", 200) from None


def cancel_upload(store: ComposeStore, upload_id: str) -> None:
    upload = find_upload(store, upload_id)
    if upload.status not in CANCELLABLE:
        raise upload_error(f"Can't cancel, status is already {upload.status}!", 200)
    store.update_upload(upload_id, status="CANCELLED")
    upload_store.append_log(store.db, upload_id, "cancel requested")


def reset_upload(store: ComposeStore, config: Any, upload_id: str, image_name: str | None,
                 settings: dict[str, Any] | None) -> Any:
    """Make a finished, failed or cancelled upload WAITING again, optionally renamed/re-set."""
    upload = find_upload(store, upload_id)
    if upload.status in CANCELLABLE:
        raise upload_error(f"Can't reset, status is {upload.status}!", 200)
    compose = store.get(upload.compose_id)
    if compose.queue_status != FINISHED:
        raise upload_error(f"Can't reset, compose {compose.id} is {compose.queue_status}!", 200)
    try:
        new_settings = check_settings(config, upload.target, settings if settings is not None
                                      else upload.settings, image_name or upload.image_name)
    except SettingsError as exc:
        raise upload_error(str(exc), 200) from None
    changes: dict[str, Any] = {}
    if image_name:
        changes["image_name"] = image_name
    if settings is not None:
        changes["settings"] = new_settings
    store.update_upload(upload_id, status="WAITING", progress=0.0, error="", result={}, **changes)
    upload_store.append_log(store.db, upload_id, "reset")
    return store.upload(upload_id)


def delete_upload(store: ComposeStore, upload_id: str) -> None:
    upload = find_upload(store, upload_id)
    if upload.status in CANCELLABLE:
        store.update_upload(upload_id, status="CANCELLED")
    store.delete_upload(upload_id)


def schedule_upload(store: ComposeStore, config: Any, compose_id: str,
                    body: dict[str, Any]) -> tuple[str, str, bool]:
    """compose/uploads/schedule: a new upload of an existing compose → (upload id, target, ready).

    `ready` means the compose is FINISHED, so the caller enqueues the upload now; for a WAITING or
    RUNNING compose the pipeline runs it after the build, as for uploads given at POST /compose.
    """
    try:
        compose = store.get(compose_id)
    except KeyError:
        raise WeldrError("UnknownUUID", f"{compose_id} is not a valid build uuid") from None
    if compose.queue_status == FAILED:
        raise upload_error(f"Compose {compose_id} FAILED: there is no image to upload")
    request = resolve_request(store.db, config, body, compose.compose_type)
    upload_id = store.add_upload(compose_id, request["provider"], request["image_name"],
                                 request["settings"])
    return upload_id, request["provider"], compose.queue_status == FINISHED
