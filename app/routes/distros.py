"""`GET /api/v1/distros/list`: the distros that have repositories for an arch (v1 only, as in OC)."""

from __future__ import annotations

from flask import Blueprint, Response

from app import get_config
from app.errors import json_response
from app.params import arch_arg, v1_only
from app.store import sources

bp = Blueprint("distros", __name__)


@bp.get("/distros/list")
@v1_only
def distros_list() -> Response:
    return json_response({"distros": sources.list_distros(get_config(), arch_arg())})
