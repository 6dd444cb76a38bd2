"""The Weldr API service: a Flask application speaking osbuild-composer's HTTP API.

`create_app(config)` builds the application.  Route modules live in `app/routes/`; each exposes a
Flask `Blueprint` object named `bp` (we say "route module" to avoid confusion with Weldr
blueprints) whose rules are relative (`/compose/types`).  `bp` is mounted twice, under `/api/v0`
and `/api/v1`; a route that exists only in v1 is decorated with `app.params.v1_only`.  A module may
also expose `root_bp`, mounted at `/` (for `/api/status`).

Routes reach the shared state through `get_config()`, `get_db()` and `submit_compose()`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Config
    from app.db import Database

# In registration order; a missing module (not yet written by its owner) is skipped.
ROUTE_MODULES = (
    "app.routes.status",
    "app.routes.blueprints",
    "app.routes.sources",
    "app.routes.projects",
    "app.routes.compose",
    "app.routes.upload",
    "app.metrics",  # root_bp: GET /metrics (Prometheus)
)

EXTENSION = "celery_composer"


def create_app(config: "Config | None" = None, *, db: "Database | None" = None,
               submit: Callable[[str], None] | None = None) -> "Flask":
    """The Flask application over the store in `config.state_dir`.

    `submit` is called with a compose id after POST /compose recorded it; default: the
    pipeline's `tasks.pipeline.submit(config, compose_id)` when that module exists, otherwise
    nothing (the compose stays WAITING).
    """
    from flask import Flask

    from app import config as config_mod
    from app.db import Database
    from app.errors import register_error_handlers
    from app.params import check_request_chars

    config = config or config_mod.load()
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = config.body_limit
    app.config["JSON_SORT_KEYS"] = False
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    db = db or Database.in_state_dir(config.state_dir)
    app.extensions[EXTENSION] = {"config": config, "db": db,
                                 "submit": submit or _default_submitter(config)}
    register_error_handlers(app)
    from app.logs import install_flask

    install_flask(app)  # log lines of a request about a compose carry its id

    @app.before_request
    def _guard() -> None:
        from flask import abort

        if request_content_length() > app.config["MAX_CONTENT_LENGTH"]:
            abort(413)  # rendered as a Weldr HTTPError body by app.errors
        check_request_chars()

    for name in ROUTE_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        bp = getattr(module, "bp", None)
        if bp is not None:
            app.register_blueprint(bp, url_prefix="/api/v0", name=f"{bp.name}_v0")
            app.register_blueprint(bp, url_prefix="/api/v1", name=f"{bp.name}_v1")
        root_bp = getattr(module, "root_bp", None)
        if root_bp is not None:
            app.register_blueprint(root_bp)
    return app


def request_content_length() -> int:
    from flask import request

    return request.content_length or 0


def _default_submitter(config: "Config") -> Callable[[str], None]:
    def submit(compose_id: str) -> None:
        module = pipeline_module()
        if module is not None:
            module.submit(config, compose_id)

    return submit


def pipeline_module():  # -> module | None
    """`tasks.pipeline` when the pipeline is installed; None leaves composes WAITING."""
    try:
        return importlib.import_module("tasks.pipeline")
    except ModuleNotFoundError as exc:
        if exc.name in ("tasks.pipeline", "tasks"):
            return None
        raise


def _ext() -> dict:
    from flask import current_app

    return current_app.extensions[EXTENSION]


def get_config() -> "Config":
    """The service's configuration (inside a request)."""
    return _ext()["config"]


def get_db() -> "Database":
    """The store's database (inside a request); store modules take it as their first argument."""
    return _ext()["db"]


def submit_compose(compose_id: str) -> None:
    """Hand a freshly recorded compose to the build pipeline."""
    _ext()["submit"](compose_id)
