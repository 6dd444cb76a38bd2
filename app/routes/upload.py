"""Weldr v1 upload routes (catalogue §6.38–6.46), with lorax-composer's shapes and messages.

osbuild-composer answers these with 501; lorax-composer implemented them and cockpit-composer's
upload dialogs were written against lorax, so its behaviour is the contract: errors about an
upload's state come back as `UploadError` with HTTP 200, missing body parts with 400. Secrets
never leave: every upload and profile passes through `uploaders.base.strip_secrets`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, request

from app import get_config, get_db, get_pipeline
from app.errors import json_response
from app.params import JSON_TYPE, check_api_string, v1_only
from core.errors import WeldrError
from core.store import uploads as upload_store
from core.store.composes import ComposeStore
from uploaders import canonical_target, service
from uploaders.base import SettingsError, get_uploader

log = logging.getLogger(__name__)

bp = Blueprint("upload", __name__)


def _store() -> ComposeStore:
    return ComposeStore.from_config(get_config(), get_db())


def _json_body() -> dict[str, Any] | None:
    """The body as a non-empty JSON object, None when there is none (or it does not parse).

    A body must come as `Content-Type: application/json`, as composer-cli and cockpit-composer
    send it: a cross-site form can post `text/plain` without the browser asking first (CSRF).
    """
    data = request.get_data(cache=False)
    if not data.strip():
        return None
    if request.mimetype != JSON_TYPE:
        raise service.upload_error(f"the body must be JSON sent as Content-Type: {JSON_TYPE}, "
                                   f"not {request.content_type or 'no Content-Type'}")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return body if isinstance(body, dict) and body else None


def _missing_post() -> WeldrError:
    return WeldrError("MissingPost", "Missing POST body")


def enqueue_upload(compose_id: str, target: str) -> bool:
    """Hand an upload of a FINISHED compose to the pipeline; False when there is none to take it."""
    pipeline = get_pipeline()
    if pipeline is None:
        return False
    pipeline.submit_upload(compose_id, target)
    return True


def _upload_uuid(upload_uuid: str) -> str:
    return check_api_string(upload_uuid)


@bp.post("/compose/uploads/schedule/<compose_uuid>")
@v1_only
def schedule(compose_uuid: str) -> Any:
    check_api_string(compose_uuid)
    body = _json_body()
    if body is None:
        raise _missing_post()
    store = _store()
    upload_id, target, ready = service.schedule_upload(store, get_config(), compose_uuid, body)
    if ready and not enqueue_upload(compose_uuid, target):
        upload_store.append_log(store.db, upload_id, "queued; no pipeline available to run it yet")
    return json_response({"status": True, "upload_id": upload_id})


@bp.get("/upload/info/<upload_uuid>")
@v1_only
def info(upload_uuid: str) -> Any:
    store = _store()
    upload = service.find_upload(store, _upload_uuid(upload_uuid))
    image_path = None
    try:
        image_path = store.image_path(store.get(upload.compose_id))
    except Exception:  # a damaged compose must not hide its upload
        pass
    return json_response({"status": True,
                          "upload": service.render_upload(upload, image_path, detail=True)})


@bp.get("/upload/log/<upload_uuid>")
@v1_only
def upload_log(upload_uuid: str) -> Any:
    store = _store()
    upload = service.find_upload(store, _upload_uuid(upload_uuid))
    return json_response({"status": True, "upload_id": upload.id,
                          "log": upload_store.read_log(store.db, upload.id)})


@bp.post("/upload/reset/<upload_uuid>")
@v1_only
def reset(upload_uuid: str) -> Any:
    body = _json_body() or {}
    store = _store()
    upload = service.reset_upload(store, get_config(), _upload_uuid(upload_uuid),
                                  body.get("image_name"), body.get("settings"))
    enqueue_upload(upload.compose_id, canonical_target(upload.target))
    return json_response({"status": True, "upload_id": upload.id})


@bp.delete("/upload/cancel/<upload_uuid>")
@v1_only
def cancel(upload_uuid: str) -> Any:
    upload_id = _upload_uuid(upload_uuid)
    service.cancel_upload(_store(), upload_id)
    return json_response({"status": True, "upload_id": upload_id})


@bp.delete("/upload/delete/<upload_uuid>")
@v1_only
def delete(upload_uuid: str) -> Any:
    upload_id = _upload_uuid(upload_uuid)
    service.delete_upload(_store(), upload_id)
    return json_response({"status": True, "upload_id": upload_id})


@bp.get("/upload/providers")
@v1_only
def providers() -> Any:
    return json_response({"status": True, "providers": service.providers(get_db())})


@bp.post("/upload/providers/save")
@v1_only
def save_profile() -> Any:
    body = _json_body()
    if body is None:
        raise _missing_post()
    try:
        provider, profile, settings = body["provider"], body["profile"], body["settings"]
    except KeyError as exc:
        raise service.upload_error(f"Missing parameter {exc}!") from None
    if not isinstance(provider, str):
        raise service.upload_error("'provider' must be a string")
    if not isinstance(profile, str):
        raise service.upload_error("'profile' must be a string")
    if not profile:
        raise service.upload_error("Profile name cannot be empty!", 200)
    check_api_string(profile, "Invalid characters in profile name")
    try:
        settings = service.check_settings(get_config(), provider, settings, None)
    except SettingsError as exc:
        raise service.upload_error(str(exc), 200) from None
    service.save_profile(get_db(), provider, profile, settings)
    return json_response({"status": True})


@bp.delete("/upload/providers/delete/<provider>/<profile>")
@v1_only
def delete_profile(provider: str, profile: str) -> Any:
    check_api_string(provider)
    check_api_string(profile)
    try:
        get_uploader(provider)
    except SettingsError as exc:
        raise service.upload_error(str(exc), 200) from None
    if not service.delete_profile(get_db(), provider, profile):
        raise service.upload_error(f'Profile "{profile}" for provider "{provider}" does not exist!', 200)
    return json_response({"status": True})
