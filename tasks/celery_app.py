"""The one Celery application of celery-composer: broker, queues, routing and delivery guarantees.

Every process (API, workers, benchmarks) calls `configure(config)` before it sends or runs work, so
the broker, the queues and the routing are decided here and nowhere else.

Why these settings:
- The store (SQLite under the state directory) is the source of truth for a compose; the broker only
  carries "work on compose <id>, step <s>".  Task arguments are therefore compose ids only, never
  settings or credentials, which is also what Flower shows.
- Late acks + `task_reject_on_worker_lost` + prefetch 1: a message leaves the broker only after its
  task ended, and a worker never sits on queued builds it is not running.  A worker killed with
  `kill -9` is detected through the store's heartbeats (see `tasks.recovery`), which works the same on
  every broker; Redis' visibility timeout is only a backstop and is set longer than any build may run,
  so a healthy long build is never handed to a second worker.
- Embedded default (empty `broker_url`): kombu's SQLAlchemy transport over a SQLite file in the state
  directory, results in another SQLite file.  One machine, nothing to install.  Its limits: it polls
  (50 ms), and it has no remote control (no broadcast revoke, no Flower), so cancel goes through the
  store; a message taken by a worker that is then killed with `kill -9` stays taken, so recovery of
  such a compose relies on the store's reaper re-enqueueing it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from celery import Celery
from kombu import Exchange, Queue

from core.jobs import BUILD, DEPSOLVE, Step, upload_queues

if TYPE_CHECKING:
    from core.config import Config

EMBEDDED_POLLING_INTERVAL = 0.05  # seconds; the SQLite transport polls its tables
BROKER_DB = "broker.sqlite3"
RESULTS_DB = "results.sqlite3"

celery = Celery("celery_composer", set_as_current=True)
_config: "Config | None" = None


def upload_targets() -> list[str]:
    """Upload targets, each with its own queue and task name (`uploaders.TARGETS`, a constant that
    imports no cloud SDK)."""
    from uploaders import TARGETS

    return sorted(TARGETS)


def all_queues() -> list[str]:
    return [DEPSOLVE.queue, BUILD.queue] + upload_queues(upload_targets())


def route_for(task_name: str) -> str:
    """The queue of a task, as its `core.jobs.Step` names it; the build queue for other tasks."""
    try:
        return Step.of_task(task_name).queue
    except ValueError:
        return BUILD.queue


def _route(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> dict:
    return {"queue": route_for(name)}


def is_embedded(config: "Config") -> bool:
    return not config.broker_url


def broker_url(config: "Config") -> str:
    if config.broker_url:
        return config.broker_url
    return f"sqla+sqlite:///{Path(config.state_dir).resolve() / BROKER_DB}"


def result_backend(config: "Config") -> str:
    if config.result_backend:
        return config.result_backend
    if config.broker_url.startswith(("redis://", "rediss://", "unix://")):
        return config.broker_url
    return f"db+sqlite:///{Path(config.state_dir).resolve() / RESULTS_DB}"


def _prepare_embedded(config: "Config") -> None:
    """WAL + a busy timeout let the API and several worker processes share the SQLite broker.

    WAL is a property of the database file, so setting it once here holds for kombu's own engine.
    """
    # kombu passes broker_transport_options to SQLAlchemy's create_engine, so the polling interval
    # can only be given to the transport class itself; the same holds for its channel class.
    from kombu.transport import sqlalchemy as sqla_transport

    sqla_transport.Transport.polling_interval = EMBEDDED_POLLING_INTERVAL
    sqla_transport.Transport.Channel = _embedded_channel_class()  # type: ignore[assignment]
    prepare_embedded_broker(config)


_broker_ready: set[str] = set()


def prepare_embedded_broker(config: "Config") -> None:
    """Create kombu's tables and a row for each of our queues in the SQLite broker, once per
    process, under an exclusive file lock.

    kombu creates them lazily in every process that connects (`CREATE TABLE` after a check, then
    an `INSERT` of the queue's name after a lookup): the API and a fresh `serve`'s workers doing
    that at the same moment made one of them die at start with "table kombu_queue already exists"
    or "UNIQUE constraint failed: kombu_queue.name".  Under the lock the first process creates
    everything and the others find it there.  `serve` calls this before it starts any worker.
    """
    import fcntl

    url = broker_url(config)
    if url in _broker_ready:
        return
    state_dir = Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / (BROKER_DB + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in (BROKER_DB, RESULTS_DB):
            _use_wal(state_dir / name)
        _declare_queues(url)
    _broker_ready.add(url)


def _use_wal(path: Path) -> None:
    """Switch a SQLite file to WAL unless it is there already.

    Changing the journal mode needs the file to itself and SQLite answers "database is locked" at
    once, without its busy timeout, while another process converts it: done only under the broker
    lock, and a file already in WAL (the usual case) is only asked, not changed.
    """
    conn = sqlite3.connect(path, timeout=30)
    try:
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()


def _declare_queues(url: str) -> None:
    """Every queue declared through kombu itself (its tables and rows, as it wants them); the
    engine kombu caches is then disposed, so no SQLite connection is inherited by a process
    forked later (Celery's pool, gunicorn's workers)."""
    from kombu import Connection
    from kombu.transport import sqlalchemy as sqla_transport

    before = set(sqla_transport.Channel._engines)
    with Connection(url, transport_options={"connect_args": {"timeout": 30}}) as conn:
        channel = conn.channel()
        try:
            for queue in all_queues():
                channel.queue_declare(queue=queue)
        finally:
            channel.close()
    for key in set(sqla_transport.Channel._engines) - before:
        engine, _ = sqla_transport.Channel._engines.pop(key)
        engine.dispose()


def _embedded_channel_class() -> type:
    """kombu's SQLAlchemy channel, tolerant of a queue row another process inserted between its
    lookup and its insert (kombu only retries on OperationalError; the IntegrityError killed the
    worker with "Unrecoverable error").  With `prepare_embedded_broker` this is a backstop."""
    global _EmbeddedChannel
    if _EmbeddedChannel is not None:
        return _EmbeddedChannel
    from kombu.transport import sqlalchemy as sqla_transport
    from sqlalchemy.exc import IntegrityError

    class EmbeddedChannel(sqla_transport.Channel):  # type: ignore[misc,name-defined]
        def _get_or_create(self, queue: str) -> Any:
            try:
                return super()._get_or_create(queue)
            except IntegrityError:
                self.session.rollback()
                return super()._get_or_create(queue)

    _EmbeddedChannel = EmbeddedChannel
    return EmbeddedChannel


_EmbeddedChannel: type | None = None


def prune_embedded_broker(config: "Config") -> int:
    """Delete the messages the SQLite transport has delivered; returns how many.

    kombu keeps every delivered message as a row marked invisible and never deletes it (acks live
    in the worker's memory), so without this the broker file grows with every task ever run.
    Deleting them is safe at any time: an unacked message a worker returns on shutdown is written
    back as a new row.
    """
    path = Path(config.state_dir) / BROKER_DB
    if not is_embedded(config) or not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=30)
    try:
        with conn:
            return conn.execute("DELETE FROM kombu_message WHERE visible = 0").rowcount
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()


def configure(config: "Config") -> Celery:
    """Point the application at the configured broker; idempotent, cheap to call again."""
    global _config
    previous = _config
    _config = config
    if previous is not None and (broker_url(previous), result_backend(previous)) != (
            broker_url(config), result_backend(config)):
        # pooled connections and producers keep talking to the old broker: drop them, as Celery
        # itself does after a fork (tests and benchmarks switch brokers within one process)
        celery._pool = None
        if "amqp" in celery.__dict__:
            celery.amqp._producer_pool = None
    embedded = is_embedded(config)
    if embedded:
        _prepare_embedded(config)
        transport_options: dict[str, Any] = {"connect_args": {"timeout": 30}}
    else:
        transport_options = {
            # longer than any build may legitimately run: redelivery of a live build's message would
            # start it twice; dead workers are found through heartbeats long before this
            "visibility_timeout": int(config.build_timeout + 2 * config.task_stale_after + 60),
            # a broker host that does not answer must fail a publish in seconds, not hang the API
            "socket_connect_timeout": 5,
        }
    exchange = Exchange("celery-composer", type="direct")
    celery.conf.update(
        broker_url=broker_url(config),
        result_backend=result_backend(config),
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # Redis down: keep trying to publish for a while instead of failing POST /compose at once;
        # the compose is in the store already and the periodic re-enqueue catches the rest
        broker_connection_max_retries=None,
        task_publish_retry=True,
        task_publish_retry_policy={"max_retries": 3, "interval_start": 0.2, "interval_step": 0.5,
                                   "interval_max": 2},
        task_queues=[Queue(q, exchange, routing_key=q) for q in all_queues()],
        task_default_queue=BUILD.queue,
        task_default_exchange="celery-composer",
        task_default_routing_key=BUILD.queue,
        task_routes=(_route,),
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,  # the store holds outcomes; results would be a second truth
        result_expires=3600,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # task events cost a broker round trip per state change; Flower switches them on in the
        # workers when it starts (its enable_events), so they are off until someone watches
        task_send_sent_event=False,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        timezone="UTC",
        enable_utc=True,
    )
    # import for registration: the chain's tasks live in tasks.compose
    import tasks.compose  # noqa: F401,PLC0415  (registers the tasks)

    return celery


def current_config() -> "Config":
    """The configuration the app was configured with (loaded from file/environment if never)."""
    if _config is None:
        from core import config as config_mod

        configure(config_mod.load())
    assert _config is not None
    return _config


def queue_depths(config: "Config", timeout: float = 3.0) -> dict[str, int]:
    """Messages waiting in each of our queues, asked of the broker (Redis or the embedded one)."""
    from kombu import Connection
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    options: dict[str, Any] = {"max_retries": 0}
    url = broker_url(config)
    if url.startswith(("redis://", "rediss://", "unix://")):
        options.update(socket_connect_timeout=timeout, socket_timeout=timeout)
    with Connection(url, connect_timeout=timeout, transport_options=options) as conn:
        conn.ensure_connection(max_retries=1, timeout=timeout)
        channel = conn.default_channel
        for queue in all_queues():
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except ChannelError:  # never declared: nobody sent to it yet
                depths[queue] = 0
    return depths
