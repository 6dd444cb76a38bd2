"""GET /metrics: the Prometheus exposition of `core.metrics`, with the pipeline's queue depths."""

from __future__ import annotations

from flask import Blueprint, Response

from app import get_config, get_db, get_pipeline
from core.metrics import render

root_bp = Blueprint("metrics", __name__)


@root_bp.get("/metrics")
def metrics() -> Response:
    pipeline = get_pipeline()
    depths = None if pipeline is None else (lambda: pipeline.queue_depths(3.0))
    body, content_type = render(get_config(), get_db(), depths)
    return Response(body, status=200, content_type=content_type)
