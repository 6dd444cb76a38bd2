"""Celery's side of our logging: the compose id of the running task on every line it logs."""

from __future__ import annotations

import contextvars
from typing import Any

from core.logs import UUID_RE, bind_compose, unbind_compose

_installed = False


def install_celery(celery_app: Any) -> None:
    """Bind the compose id around each task and keep Celery from installing its own handlers.

    Our task arguments are compose ids, first positional argument (see tasks.celery_app); a task
    that takes something else simply runs unbound.
    """
    from celery import signals

    global _installed
    if _installed:  # Celery's signals are process-wide: connect once
        return
    _installed = True
    tokens: dict[str, contextvars.Token] = {}

    def keep_our_logging(**_: Any) -> None:
        """Connected to `setup_logging`: its presence alone stops Celery configuring logging."""

    def before(task_id: str | None = None, args: Any = None, kwargs: Any = None, **_: Any) -> None:
        compose_id = None
        if args and isinstance(args[0], str) and UUID_RE.fullmatch(args[0]):
            compose_id = args[0]
        elif kwargs and isinstance(kwargs.get("compose_id"), str):
            compose_id = kwargs["compose_id"]
        if compose_id and task_id:
            tokens[task_id] = bind_compose(compose_id)

    def after(task_id: str | None = None, **_: Any) -> None:
        token = tokens.pop(task_id, None) if task_id else None
        if token is not None:
            unbind_compose(token)

    signals.setup_logging.connect(keep_our_logging, weak=False)
    signals.task_prerun.connect(before, weak=False)
    signals.task_postrun.connect(after, weak=False)
