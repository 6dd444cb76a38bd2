"""Logging of every celery-composer process: one format, and the compose id on every line.

A compose crosses several processes (API, depsolve worker, build worker, upload workers), often on
several machines.  Following one compose through them is a `grep <compose id>` only if every line
written on its behalf carries the id, including the continuation lines of a traceback.  The id
travels in a context variable: the API binds it for requests about one compose, the workers bind
it around each task (task arguments are the compose id), and any code can bind it explicitly with
`compose_context`.  Code that logs needs to know nothing about it.

Two formats (setting `log_format`): `text`, one line per record with `key=value` context, for
humans and journald; `json`, one object per line, for log shippers.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import Config

_compose_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("compose_id", default=None)

UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# attributes every LogRecord has; anything else on a record came from `extra=` and is context
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "compose_id", "process_role"}

_HANDLER_MARK = "_celery_composer_handler"


def current_compose_id() -> str | None:
    return _compose_id.get()


def bind_compose(compose_id: str | None) -> contextvars.Token:
    """Mark what follows (in this thread/task) as work for `compose_id`; undo with `unbind_compose`."""
    return _compose_id.set(compose_id)


def unbind_compose(token: contextvars.Token) -> None:
    """Undo `bind_compose`; a token from another context (thread pools, Celery's signal order)
    just clears the binding instead of raising."""
    try:
        _compose_id.reset(token)
    except ValueError:
        _compose_id.set(None)


@contextlib.contextmanager
def compose_context(compose_id: str | None) -> Iterator[None]:
    token = bind_compose(compose_id)
    try:
        yield
    finally:
        unbind_compose(token)


class ContextFilter(logging.Filter):
    """Stamps each record with the bound compose id and the process role.

    It sits on the handler, not on a logger, because handler filters also see records propagated
    from every library logger (celery, kombu, werkzeug), which logger filters do not.
    """

    def __init__(self, role: str):
        super().__init__()
        self.role = role

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "compose_id", None):
            record.compose_id = _compose_id.get() or _compose_of_celery_record(record)
        record.process_role = self.role
        return True


def _compose_of_celery_record(record: logging.LogRecord) -> str | None:
    """Celery's own "Task ... received/succeeded" lines carry the task's arguments in `data`;
    they are logged outside the task, where nothing is bound, yet they are about one compose."""
    data = getattr(record, "data", None)
    if isinstance(data, dict):
        match = UUID_RE.search(str(data.get("args", "")))
        if match:
            return match.group(0).lower()
    return None


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS and not k.startswith("_")}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
        f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """`<time> <level> <role>[<pid>] compose=<id|-> <logger>: <message> key=value ...`.

    Continuation lines (tracebacks, multi-line messages) repeat the prefix, so each line stands on
    its own in `grep` and in journald.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        # Celery's `data` repeats the message's task details: left to the JSON format
        extras = " ".join(f"{k}={_quote(v)}" for k, v in sorted(_extras(record).items())
                          if k != "data")
        if extras:
            message = f"{message} {extras}"
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        prefix = (f"{_timestamp(record)} {record.levelname} "
                  f"{getattr(record, 'process_role', '-')}[{record.process}] "
                  f"compose={getattr(record, 'compose_id', None) or '-'} {record.name}:")
        lines = message.splitlines() or [""]
        return "\n".join(f"{prefix} {line}" if i == 0 else f"{prefix} | {line}"
                         for i, line in enumerate(lines))


def _quote(value: Any) -> str:
    text = str(value)
    return json.dumps(text) if (not text or any(c.isspace() or c in '"=' for c in text)) else text


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `compose_id` is always present (null outside a compose)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "process": getattr(record, "process_role", None),
            "pid": record.process,
            "compose_id": getattr(record, "compose_id", None),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value if isinstance(value, (str, int, float, bool, type(None)))
                             else str(value))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def make_handler(config: "Config", role: str, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter(role))
    handler.setFormatter(JsonFormatter() if config.log_format == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    return handler


def setup_logging(config: "Config", role: str, stream: Any = None) -> logging.Handler:
    """Configure the root logger of this process; calling it again replaces our handler.

    `role` names the process in each line (api, worker, status, ...).  Handlers others installed
    are left alone, except Python's last-resort default, which would print a second copy.
    """
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, _HANDLER_MARK, False):
            root.removeHandler(old)
    handler = make_handler(config, role, stream)
    root.addHandler(handler)
    root.setLevel(config.log_level)
    logging.captureWarnings(True)
    return handler
