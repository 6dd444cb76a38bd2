"""`/compose*`: start composes and read, cancel, delete and download them (catalogue §6.24–6.37).

The routes validate, call `core.store.composes`, and render osbuild-composer's shapes and
messages.  Building is the pipeline's job: POST /compose stores the compose WAITING and hands
its id to the pipeline (`get_pipeline()`), then waits for its depsolve step so that a depsolve
error is answered as osbuild-composer answers it.  Test-mode composes (`?test=1|2`) are stored
FAILED/FINISHED at once, as osbuild-composer stores them: clients delete or cancel them right away.
Listing replies are cached per process on the store's generation counter, so cockpit polling
`compose/status/*` over thousands of composes costs one small query per request until something
changes.
"""

from __future__ import annotations

import logging
import re
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, abort, request

from app import compose_request, get_config, get_db, get_pipeline
from app.errors import json_response
from app.params import JSON_TYPE, api_version, arch_arg, check_blueprint_name, distro_arg, parse_uuid
from core import jsontext
from core.errors import WeldrError, error_entry
from core.pipeline import Pipeline
from core.store import composes as cs
from uploaders.service import render_upload

bp = Blueprint("compose", __name__)
log = logging.getLogger(__name__)


def _store() -> cs.ComposeStore:
    return cs.ComposeStore.from_config(get_config(), get_db())


# --- image type definitions ---------------------------------------------------------------

@bp.get("/compose/types")
def compose_types() -> Response:
    distro, arch = distro_arg(), arch_arg()
    d = compose_request.distro_for(distro, arch)
    return json_response({"types": [{"name": name, "enabled": True}
                                    for name in sorted(d.image_types(arch))]})


# --- rendering ----------------------------------------------------------------------------

def _render_uploads(uploads: Iterable[cs.Upload]) -> list[dict[str, Any]]:
    return [render_upload(u) for u in uploads]


def _entry(s: cs.ComposeSummary, uploads: list[cs.Upload] | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": s.id, "blueprint": s.blueprint_name, "version": s.blueprint_version,
        "compose_type": s.compose_type,
        "image_size": s.image_size if s.queue_status == cs.FINISHED else 0,
        "queue_status": s.queue_status, "job_created": s.job_created,
    }
    if s.job_started:
        out["job_started"] = s.job_started
    if s.job_finished:
        out["job_finished"] = s.job_finished
    if uploads:
        out["uploads"] = _render_uploads(uploads)
    return out


def _entries(summaries: list[cs.ComposeSummary], store: cs.ComposeStore) -> list[dict[str, Any]]:
    uploads = store.uploads_of(s.id for s in summaries) if api_version() >= 1 else {}
    return [_entry(s, uploads.get(s.id)) for s in summaries]


class _ListingCache:
    """Rendered listing bodies, valid while the store's generation is unchanged.

    A large body is also kept gzip-compressed for clients that accept it: composer-cli (Go's
    HTTP client) always does, and `compose/status/*` over 10,000 composes is 2 MB of JSON.
    """

    MAX = 64
    GZIP_FROM = 64 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bodies: dict[tuple, tuple[int, str, bytes, list[bytes]]] = {}

    def get(self, key: tuple, render: Callable[[], Any]) -> Response:
        store = _store()
        db_key = store.db.name
        generation = store.generation()
        with self._lock:
            hit = self._bodies.get(key)
        if hit is None or hit[0] != generation or hit[1] != db_key:
            body = json_response(render()).get_data()
            hit = (generation, db_key, body, [])
            with self._lock:
                if len(self._bodies) >= self.MAX:
                    self._bodies.clear()
                self._bodies[key] = hit
        body, packed = hit[2], hit[3]
        headers = {}
        if len(body) >= self.GZIP_FROM:
            headers["Vary"] = "Accept-Encoding"
            if "gzip" in request.headers.get("Accept-Encoding", ""):
                if not packed:
                    import gzip

                    packed.append(gzip.compress(body, compresslevel=1, mtime=0))
                body = packed[0]
                headers["Content-Encoding"] = "gzip"
        return Response(body, status=200, headers=headers,
                        content_type="application/json; charset=utf-8")


_cache = _ListingCache()


@bp.get("/compose/queue")
def compose_queue() -> Response:
    def render() -> dict[str, Any]:
        store = _store()
        return {"new": _entries(store.summaries(statuses=[cs.WAITING]), store),
                "run": _entries(store.summaries(statuses=[cs.RUNNING]), store)}

    return _cache.get(("queue", api_version()), render)


@bp.get("/compose/finished")
def compose_finished() -> Response:
    def render() -> dict[str, Any]:
        store = _store()
        return {"finished": _entries(store.summaries(statuses=[cs.FINISHED]), store)}

    return _cache.get(("finished", api_version()), render)


@bp.get("/compose/failed")
def compose_failed() -> Response:
    def render() -> dict[str, Any]:
        store = _store()
        return {"failed": _entries(store.summaries(statuses=[cs.FAILED]), store)}

    return _cache.get(("failed", api_version()), render)


@bp.get("/compose/status/<uuids>")
def compose_status(uuids: str) -> Response:
    blueprint = request.args.get("blueprint")
    if blueprint is not None:
        check_blueprint_name(blueprint, "Invalid characters in blueprint argument")
    status = request.args.get("status")
    compose_type = request.args.get("type")
    ids: list[str] | None = None
    if uuids != "*":
        ids = []
        for raw in uuids.split(","):
            parsed = parse_uuid(raw)
            if parsed is None:
                raise WeldrError("UnknownUUID", f"{raw} is not a valid build uuid")
            ids.append(parsed)

    def render() -> dict[str, Any]:
        store = _store()
        found = store.summaries(ids=ids, statuses=[status] if status else None,
                                blueprint=blueprint, compose_type=compose_type)
        return {"uuids": _entries(found, store)}

    if ids is None:
        return _cache.get(("status", api_version(), blueprint, status, compose_type), render)
    return json_response(render())


# --- one compose --------------------------------------------------------------------------

def _compose_id(raw: str, unknown_msg: str = "Compose {id} doesn't exist") -> str:
    compose_id = parse_uuid(raw)
    if compose_id is None:
        raise WeldrError("UnknownUUID", f"{raw} is not a valid build uuid")
    if not _store().exists(compose_id):
        raise WeldrError("UnknownUUID", unknown_msg.format(id=compose_id))
    return compose_id


def _load(compose_id: str) -> cs.Compose:
    try:
        return _store().get(compose_id)
    except cs.UnknownCompose as exc:
        raise WeldrError("UnknownUUID", f"Compose {compose_id} doesn't exist") from exc
    except cs.DamagedCompose as exc:
        raise WeldrError("ComposeStatusError", str(exc), 500) from exc


def _payload_packages(packages: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The packages of the image itself (osbuild-composer's `deps.packages`), not the build root."""
    if "os" in packages:
        chosen = packages["os"]
    else:
        chosen = [p for name, pkgs in packages.items() if name != "build" for p in pkgs]
    keys = ("name", "epoch", "version", "release", "arch")
    return [{k: p.get(k, 0 if k == "epoch" else "") for k in keys} for p in chosen]


@bp.get("/compose/info/<uuid>")
def compose_info(uuid: str) -> Response:
    compose_id = _compose_id(uuid, "{id} is not a valid build uuid")
    compose = _load(compose_id)
    store = _store()
    try:
        packages = store.packages(compose_id)
    except cs.DamagedCompose as exc:
        raise WeldrError("ComposeStatusError", str(exc), 500) from exc
    body: dict[str, Any] = {
        "id": compose.id, "config": "", "blueprint": compose.blueprint, "commit": "",
        "deps": {"packages": _payload_packages(packages)},
        "compose_type": compose.compose_type, "queue_status": compose.queue_status,
        "image_size": compose.image_size if compose.queue_status == cs.FINISHED else 0,
    }
    if api_version() >= 1:
        uploads = store.uploads(compose_id)
        if uploads:
            body["uploads"] = _render_uploads(uploads)
    progress = _progress(compose)
    if progress:
        body["progress"] = progress
    return json_response(body)


def _progress(compose: cs.Compose) -> dict[str, Any] | None:
    if compose.queue_status != cs.RUNNING:
        return None
    pipeline = get_pipeline()
    if pipeline is not None:
        try:
            return pipeline.progress(compose.id)
        except Exception:  # noqa: BLE001 - advisory only
            return None
    return _store().progress(compose.id)


@bp.delete("/compose/cancel/<uuid>")
def compose_cancel(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    try:
        _store().request_cancel(compose_id)
    except cs.WrongState as exc:
        raise WeldrError("BuildInWrongState",
                         f"Build {compose_id} is not in WAITING or RUNNING.") from exc
    pipeline = get_pipeline()
    if pipeline is not None:
        try:
            pipeline.cancel(compose_id)
        except Exception:  # noqa: BLE001 - the store holds the request; workers poll it
            log.exception("compose %s: the pipeline was not told about the cancel", compose_id)
    return json_response({"status": True, "uuid": compose_id})


@bp.delete("/compose/delete/<uuids>")
def compose_delete(uuids: str) -> Response:
    store = _store()
    pipeline = get_pipeline()
    done: list[dict[str, Any]] = []
    errors: list[dict[str, str]] = []
    for raw in uuids.split(","):
        compose_id = parse_uuid(raw)
        if compose_id is None:
            errors.append(error_entry("UnknownUUID", f"{raw} is not a valid uuid"))
            continue
        try:
            store.delete(compose_id)
        except cs.UnknownCompose:
            errors.append(error_entry("UnknownUUID", f"compose {compose_id} doesn't exist"))
            continue
        except cs.WrongState:
            errors.append(error_entry("BuildInWrongState",
                                      f"Compose {compose_id} is not in FINISHED or FAILED."))
            continue
        if pipeline is not None:
            try:
                pipeline.forget(compose_id)
            except Exception:  # noqa: BLE001 - the compose is gone; its run records are advisory
                pass
        done.append({"uuid": compose_id, "status": True})
    return json_response({"uuids": done, "errors": errors})


@bp.get("/compose/log/<uuid>")
def compose_log(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    compose = _load(compose_id)
    size = request.args.get("size", "1024")
    if not size.isdigit():
        raise WeldrError("ComposeError", f"Invalid log size: {size}")
    if compose.queue_status == cs.WAITING:
        return json_response({"status": False, "errors": [error_entry(
            "BuildInWrongState", f"Build {compose_id} has not started yet. No logs to view.")]})
    text = _store().read_log(compose_id, tail_bytes=int(size) * 1024)
    if compose.queue_status == cs.RUNNING and not text:
        text = f"Build {compose_id} is still running.\n"
    return Response(text, content_type="text/plain; charset=utf-8")


def _finished_or_failed(compose: cs.Compose, message: str) -> None:
    if compose.queue_status not in (cs.FINISHED, cs.FAILED):
        raise WeldrError("BuildInWrongState", message)


def _manifest_bytes(compose_id: str) -> bytes | None:
    import json

    try:
        manifest = _store().manifest(compose_id)
    except cs.DamagedCompose as exc:
        raise WeldrError("ComposeStatusError", str(exc), 500) from exc
    return None if manifest is None else json.dumps(manifest, indent=2).encode()


@bp.get("/compose/metadata/<uuid>")
def compose_metadata(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    compose = _load(compose_id)
    _finished_or_failed(compose, f"Build {compose_id} is in wrong state: {compose.queue_status}")
    manifest = _manifest_bytes(compose_id)
    members = [(f"{compose_id}.json", manifest)] if manifest is not None else []
    return tar_response(f"{compose_id}-metadata.tar", members)


@bp.get("/compose/results/<uuid>")
def compose_results(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    compose = _load(compose_id)
    _finished_or_failed(compose, f"Build {compose_id} is in wrong state: {compose.queue_status}")
    store = _store()
    members: list[tuple[str, Any]] = []
    manifest = _manifest_bytes(compose_id)
    if manifest is not None:
        members.append((f"{compose_id}.json", manifest))
    log_text = store.read_log(compose_id)
    if log_text:
        members.append(("logs/osbuild.log", log_text.encode()))
    if compose.image_filename:
        try:
            name, size = _image_file(compose)
        except WeldrError:
            pass  # no image (a failed compose): the archive has the rest
        else:
            members.append((f"{compose_id}-{name}",
                            Streamed(size, lambda: store.artifacts.read(compose_id, name))))
    return tar_response(f"{compose_id}.tar", members)


@bp.get("/compose/logs/<uuid>")
def compose_logs(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    compose = _load(compose_id)
    _finished_or_failed(compose, f"Build {compose_id} not in FINISHED or FAILED state.")
    members: list[tuple[str, Any]] = [("logs/osbuild.log", _store().read_log(compose_id).encode())]
    return tar_response(f"{compose_id}-logs.tar", members)


_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) of a single `Range: bytes=a-b` request; None: the whole file.  Several
    ranges are answered with the whole file, which RFC 9110 allows."""
    match = _RANGE_RE.match(header or "")
    if not match or not (match[1] or match[2]):
        return None
    if not match[1]:  # the last N bytes
        return max(0, size - int(match[2])), size - 1
    first = int(match[1])
    last = min(int(match[2]), size - 1) if match[2] else size - 1
    if first >= size or last < first:
        raise WeldrError("InvalidRange", f"range {header} is outside the image's {size} bytes", 416,
                         extra={})
    return first, last


def _image_file(compose: cs.Compose) -> tuple[str, int]:
    """(file name, size) of the compose's stored image, or the Weldr error for its absence."""
    from core.artifacts import ArtifactsUnavailable

    name = Path(compose.image_filename).name if compose.image_filename else ""
    try:
        if not name:
            raise FileNotFoundError("the compose has no image file")
        return name, _store().artifacts.size(compose.id, name)
    except ArtifactsUnavailable:
        raise
    except (OSError, ValueError) as exc:
        raise WeldrError("InternalServerError",
                         f"Error accessing image file for compose {compose.id}: {exc}") from exc


@bp.get("/compose/image/<uuid>")
def compose_image(uuid: str) -> Response:
    compose_id = _compose_id(uuid)
    compose = _load(compose_id)
    if compose.queue_status != cs.FINISHED:
        raise WeldrError("BuildInWrongState",
                         f"Build {compose_id} is in wrong state: {compose.queue_status}")
    name, size = _image_file(compose)
    wanted = _byte_range(request.headers.get("Range"), size)
    first, last = wanted or (0, size - 1)
    # streamed from the artifact store (a local file or a bucket) as it is sent
    body = _store().artifacts.read(compose_id, name, first, last) if size else iter(())
    resp = Response(body, status=206 if wanted else 200, content_type=compose.mime_type,
                    direct_passthrough=True)
    resp.headers["Content-Length"] = str(last - first + 1 if size else 0)
    resp.headers["Accept-Ranges"] = "bytes"
    if wanted:
        resp.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    resp.headers["Content-Disposition"] = f"attachment; filename={compose_id}-{name}"
    return resp


# --- tar archives -------------------------------------------------------------------------
# Compose results hold whole disk images (gigabytes): the archive is produced as it is sent,
# never built in memory or on disk.

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20


def _header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * ((BLOCK - size % BLOCK) % BLOCK)


@dataclass(frozen=True)
class Streamed:
    """A tar member read as it is sent: its size and a function giving its chunks."""

    size: int
    chunks: Callable[[], Iterable[bytes]]


def tar_stream(members: Iterable[tuple[str, bytes | Path | Streamed]]) -> Iterator[bytes]:
    """Members are (name in the archive, bytes, a file path or `Streamed`); files and streamed
    members are sent in chunks, never held whole."""
    now = time.time()
    for name, content in members:
        if isinstance(content, (bytes, bytearray)):
            yield _header(name, len(content), now) + bytes(content) + _padding(len(content))
            continue
        if isinstance(content, Streamed):
            yield _header(name, content.size, now)
            sent = 0
            for block in content.chunks():
                block = block[:content.size - sent]
                sent += len(block)
                yield block
            if sent < content.size:  # the store gave less than it said: keep the archive well-formed
                yield b"\0" * (content.size - sent)
            yield _padding(content.size)
            continue
        with open(content, "rb") as fh:
            size = Path(content).stat().st_size
            yield _header(name, size, Path(content).stat().st_mtime)
            sent = 0
            while sent < size:
                block = fh.read(min(CHUNK, size - sent))
                if not block:  # the file shrank while we sent it: keep the archive well-formed
                    block = b"\0" * min(CHUNK, size - sent)
                sent += len(block)
                yield block
            yield _padding(size)
    yield b"\0" * (2 * BLOCK)


def tar_response(filename: str, members: Sequence[tuple[str, bytes | Path | Streamed]]) -> Response:
    resp = Response(tar_stream(members), content_type="application/x-tar",
                    direct_passthrough=True)
    resp.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return resp


# --- starting a compose -------------------------------------------------------------------

def _parse_compose_body() -> dict[str, Any]:
    if request.headers.get("Content-Type") != JSON_TYPE:
        raise WeldrError("MissingPost", "blueprint must be json")
    try:
        body = jsontext.loads(request.get_data(cache=True) or b"")
    except jsontext.JSONTextError:
        body = None
    if not isinstance(body, dict):
        abort(404)  # osbuild-composer answers an empty or unparsable body with its 404
    return body


def _refuse_on_depsolve_error(compose_id: str, pipeline: Pipeline | None) -> None:
    """osbuild-composer depsolves inside POST /compose and answers a depsolve error with 500
    `DepsolveError`, storing nothing.  Our depsolve runs on its own queue, so the request waits
    for that step (at most `compose_depsolve_wait` s, polling the store, no write transaction
    held); if it failed with a depsolve error the compose is removed (record, uploads, pipeline
    jobs, files) and the error is the answer.  Success, any other failure, or no outcome in time:
    the compose stays and the reply is the usual build_id."""
    config = get_config()
    if pipeline is None or config.compose_depsolve_wait <= 0:
        return
    try:
        outcome = pipeline.wait_depsolve(compose_id, config.compose_depsolve_wait)
    except Exception:  # noqa: BLE001 - stored and queued: the compose goes on, the reply stands
        log.exception("compose %s: waiting for its depsolve step failed", compose_id)
        return
    if outcome is None or not outcome.failed or outcome.failure.get("id") != "DepsolveError":
        return
    try:
        _store().delete(compose_id)
    except (cs.UnknownCompose, cs.WrongState):
        pass
    pipeline.forget(compose_id)
    raise WeldrError("DepsolveError", outcome.failure.get("msg", ""), 500)


@bp.post("/compose")
def compose_start() -> Response:
    body = _parse_compose_body()
    test = request.args.get("test", "")
    test_mode = int(test) if test in ("1", "2") else 0
    prepared = compose_request.prepare(body, config=get_config(), db=get_db(),
                                       api_version=api_version(), test_mode=test_mode)
    pipeline = get_pipeline() if test_mode == 0 else None  # a test compose is over once stored
    compose = _store().create(**prepared.store_arguments(), queued=pipeline is not None)
    if pipeline is not None:
        try:
            pipeline.submit(compose)
        except Exception:  # noqa: BLE001 - stored and acknowledged: the recovery loop sends it
            log.exception("compose %s stored WAITING but not handed to the pipeline", compose.id)
    if test_mode == 0:
        _refuse_on_depsolve_error(compose.id, pipeline)
    reply: dict[str, Any] = {"build_id": compose.id, "status": True, "warnings": prepared.warnings}
    if prepared.upload_requests:
        uploads = _store().uploads(compose.id)
        reply["upload_id"] = uploads[0].id if uploads else ""
    return json_response(reply)
