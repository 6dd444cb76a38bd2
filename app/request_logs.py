"""The API's side of our logging: the compose id a request names on every line it logs, and
gunicorn's own messages in our format."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from core.logs import UUID_RE, bind_compose, unbind_compose


def install_flask(app: Any) -> None:
    """Bind the compose id(s) named in a request path (compose/status/<ids>, compose/log/<id>, ...)."""
    from flask import g, request

    @app.before_request
    def _bind_compose_from_path() -> None:
        ids = UUID_RE.findall(request.path)
        if ids:
            g._compose_log_token = bind_compose(",".join(dict.fromkeys(i.lower() for i in ids)))

    @app.teardown_request
    def _unbind_compose(_exc: BaseException | None = None) -> None:
        token = g.pop("_compose_log_token", None)
        if token is not None:
            unbind_compose(token)


class GunicornLogger(Logger):
    """gunicorn's own messages (worker boots, timeouts) through our handler and format."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True
