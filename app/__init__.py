"""The Weldr API service: a Flask application speaking osbuild-composer's HTTP API.

`create_app(config, pipeline)` builds the application.  Route modules live in `app/routes/`; each
exposes a Flask `Blueprint` object named `bp` (we say "route module" to avoid confusion with Weldr
blueprints) whose rules are relative (`/compose/types`).  `bp` is mounted twice, under `/api/v0`
and `/api/v1`; a route that exists only in v1 is decorated with `app.params.v1_only`.  A module may
also expose `root_bp`, mounted at `/` (for `/api/status` and `/metrics`).

Routes reach the shared state through `get_config()`, `get_db()` and `get_pipeline()`.  The
pipeline is handed in (`tasks.pipeline.CeleryPipeline` when `serve` runs it), never imported: the
API sits above the pipeline's wiring and depends only on the `core.pipeline.Pipeline` interface.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from core.config import Config
    from core.db import Database
    from core.pipeline import Pipeline

log = logging.getLogger(__name__)

EXTENSION = "celery_composer"


def _route_modules() -> list[ModuleType]:
    """In registration order."""
    from app.routes import blueprints, compose, metrics, projects, sources, status, upload

    return [status, blueprints, sources, projects, compose, upload, metrics]


def create_app(config: "Config | None" = None, pipeline: "Pipeline | None" = None, *,
               db: "Database | None" = None) -> "Flask":
    """The Flask application over the store in `config.state_dir`.

    `pipeline` receives the composes POST /compose records; without one they stay WAITING (the
    recovery loop of a pipeline process submits them) and test composes end at once.
    """
    from flask import Flask

    from app import hosts
    from app.errors import register_error_handlers
    from app.params import StrictJSONProvider, check_request_chars
    from app.request_logs import install_flask
    from core import config as config_mod
    from core import sealing, statedir

    config = config or config_mod.load()
    app = Flask(__name__)
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = config.body_limit
    app.config["JSON_SORT_KEYS"] = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    if db is None:
        statedir.prepare(config, umask=False)  # serve and worker set the umask for the process
        db = sealing.open_database(config)
    _seal_clear_upload_settings(db, config)
    app.extensions[EXTENSION] = {"config": config, "db": db, "pipeline": pipeline}
    register_error_handlers(app)
    install_flask(app)  # log lines of a request about a compose carry its id

    allowed_hosts = hosts.allowed_names(config)

    @app.before_request
    def _guard() -> None:
        from flask import abort, request

        hosts.check_request(request.environ, request.headers, allowed_hosts)  # CSRF, DNS rebinding
        if request_content_length() > app.config["MAX_CONTENT_LENGTH"]:
            abort(413)  # rendered as a Weldr HTTPError body by app.errors
        check_request_chars()

    for module in _route_modules():
        bp = getattr(module, "bp", None)
        if bp is not None:
            app.register_blueprint(bp, url_prefix="/api/v0", name=f"{bp.name}_v0")
            app.register_blueprint(bp, url_prefix="/api/v1", name=f"{bp.name}_v1")
        root_bp = getattr(module, "root_bp", None)
        if root_bp is not None:
            app.register_blueprint(root_bp)
    return app


def _seal_clear_upload_settings(db: Any, config: Any) -> None:
    """Upload settings stored in clear by an older version are sealed once, at start."""
    from core.store import uploads as upload_store
    from core.store.composes import ComposeStore

    changed = ComposeStore(db, config.artifacts_path).seal_clear_settings()
    changed += upload_store.seal_clear_profiles(db)
    if changed:
        log.info("sealed %d stored upload settings written in clear by an older version", changed)


def request_content_length() -> int:
    from flask import request

    return request.content_length or 0


def _ext() -> dict:
    from flask import current_app

    return current_app.extensions[EXTENSION]


def get_config() -> "Config":
    """The service's configuration (inside a request)."""
    return _ext()["config"]


def get_db() -> "Database":
    """The store's database (inside a request); store modules take it as their first argument."""
    return _ext()["db"]


def get_pipeline() -> "Pipeline | None":
    """The pipeline composes are handed to (inside a request); None when the API runs alone."""
    return _ext()["pipeline"]
