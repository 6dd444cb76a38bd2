"""`GET /api/status`: the unversioned server description composer-cli asks for first.

composer-cli's integration tests check `backend == "osbuild-composer"` and that there is no
`messages` key, so we answer exactly the keys osbuild-composer answers.
"""

from __future__ import annotations

from importlib import metadata

from flask import Blueprint, Response

from app.errors import json_response

root_bp = Blueprint("status", __name__)


def _build() -> str:
    try:
        return metadata.version("celery-composer")
    except metadata.PackageNotFoundError:
        return "devel"


@root_bp.get("/api/status")
def status() -> Response:
    return json_response({
        "api": "1",
        "db_supported": True,
        "db_version": "0",
        "schema_version": "0",
        "backend": "osbuild-composer",
        "build": _build(),
        "msgs": [],
    })
