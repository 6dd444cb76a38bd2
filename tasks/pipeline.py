"""What the API calls: submit, cancel, progress, upload scheduling, and the helpers `serve` runs.

`CeleryPipeline(config)` is these functions as the `core.pipeline.Pipeline` the API is handed.

Light at import (the API imports it for every POST /compose route module load): Celery and kombu
are imported on first use.  Every function takes the `Config`, because the API process may serve
several configurations in tests and the broker follows the configuration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from core.jobs import Step

if TYPE_CHECKING:
    from core.config import Config
    from core.pipeline import DepsolveOutcome
    from core.store.composes import Compose

log = logging.getLogger(__name__)

_configured: dict[int, Any] = {}
_lock = threading.Lock()


def celery_for(config: "Config") -> Any:
    """The Celery app pointed at `config`'s broker (configured once per process and config)."""
    from tasks import celery_app

    with _lock:
        current = celery_app._config
        if current is not config and current != config:
            celery_app.configure(config)
    return celery_app.celery


def _store(config: "Config") -> Any:
    from tasks.steps import store_for

    return store_for(config)


def first_step(compose: Any) -> Step:
    from core.jobs import DEPSOLVE, TEST

    return TEST if compose.test_mode else DEPSOLVE


def send(config: "Config", compose_id: str, step: Step, upload_targets: list[str]) -> bool:
    """Publish the work from `step` on; False (logged) when the broker cannot be reached."""
    from tasks.compose import canvas_from

    try:
        celery_for(config)
        canvas_from(compose_id, step, upload_targets).apply_async()
        return True
    except Exception as exc:  # noqa: BLE001 - the store has it; recovery re-sends
        log.warning("could not enqueue %s of compose %s (recovery will retry): %s",
                    step, compose_id, exc)
        return False


def submit(config: "Config", compose: "str | Compose") -> bool:
    """Queue a freshly stored WAITING compose, given as its id or as the store returned it (the
    API passes what `ComposeStore.create` gave back: no read of the row it just wrote).  Never
    raises for a broker outage.

    The job row is written before the message is sent, so a compose whose message never reached
    the broker is still known to the recovery loop, which sends it again.
    """
    from core import jobs

    store = _store(config)
    stored = store.get(compose) if isinstance(compose, str) else compose
    step = first_step(stored)
    jobs.enqueue(store.db, stored.id, step)
    targets = sorted({(u.get("provider") or u.get("target") or "")
                      for u in stored.upload_requests} - {""})
    return send(config, stored.id, step, targets)


def wait_depsolve(config: "Config", compose_id: str, timeout: float,
                  interval: float = 0.05) -> "DepsolveOutcome | None":
    """Wait, at most `timeout` s, for the depsolve step of a compose just submitted to end.

    What POST /compose needs to answer a depsolve error as osbuild-composer does (it depsolves
    inside the request) while the depsolve itself stays on its own queue.  Polls the store (two
    small reads, no write transaction) with a sleep growing from `interval` to 0.5 s.  Returns a
    `core.pipeline.DepsolveOutcome`, or None when the step is not over in time or was never queued
    (nothing to wait for).
    """
    import time

    from core import jobs
    from tasks import steps

    store = _store(config)
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        if not any(r["step"] == steps.DEPSOLVE.name for r in jobs.jobs(store.db, compose_id)):
            return None
        outcome = steps.depsolve_outcome(store, compose_id)
        if outcome is not None:
            return outcome
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, 0.5)


def submit_upload(config: "Config", compose_id: str, target: str) -> bool:
    """Run the WAITING uploads of `target` for a FINISHED compose (schedule, reset)."""
    from core import jobs

    store = _store(config)
    step = Step.upload(target)
    jobs.reset(store.db, compose_id, step)
    return send(config, compose_id, step, [])


def cancel(config: "Config", compose_id: str) -> None:
    """After the store recorded the cancel (the compose is FAILED already): stop what is queued
    or running for it.

    Queued steps are closed here (a worker that still gets their message finds nothing to do),
    the running step sees the request through its heartbeat within `steps.CANCEL_POLL` s (every
    broker); on Redis the queued messages are also revoked so workers drop them unread.
    """
    from core import jobs
    from tasks import celery_app, steps

    store = _store(config)
    if not store.exists(compose_id):
        return
    # the store made it FAILED already: what waits for a worker will not run, nor its uploads
    steps.close_uploads(store, compose_id, "compose cancelled")
    queued = [f"{compose_id}.{r['step']}" for r in jobs.jobs(store.db, compose_id)
              if r["state"] == jobs.QUEUED]
    jobs.close_queued(store.db, compose_id)
    if celery_app.is_embedded(config):
        return  # no remote control on the SQLite transport; the claim sees the cancel flag
    try:
        app = celery_for(config)
        ids = queued + [f"{compose_id}.{s.name}" for s in (steps.BUILD,)]
        app.control.revoke(sorted(set(ids)))
    except Exception as exc:  # noqa: BLE001 - revoke is an optimisation
        log.warning("could not revoke the tasks of %s: %s", compose_id, exc)


def progress(config: "Config", compose_id: str) -> dict | None:
    """Live osbuild progress of a RUNNING compose (pipeline/stage, n of m), else None."""
    try:
        return _store(config).progress(compose_id)
    except Exception:  # noqa: BLE001 - advisory
        return None


def forget(config: "Config", compose_id: str) -> None:
    """The compose was deleted: drop the pipeline's bookkeeping of it."""
    from core import jobs

    jobs.forget(_store(config).db, compose_id)


def start_recovery(config: "Config", interval: float | None = None) -> Callable[[], None]:
    from tasks.recovery import RecoveryLoop

    loop = RecoveryLoop(config, interval=interval)
    loop.start()
    return loop.stop


def run_embedded(config: "Config", stop: threading.Event) -> None:
    """`serve`'s helpers until `stop` is set: the recovery loop, and with the embedded broker the
    workers themselves, as supervised child processes (`tasks.supervisor`).  Blocks; must run in
    the process's main thread (parent-death signals follow the thread that started a child).

    The embedded broker's tables are created here, once, before any child starts: workers and the
    API creating them at the same moment is what lost the first worker of a fresh `serve`.
    """
    from tasks import celery_app
    from tasks.supervisor import Supervisor
    from tasks.worker import child_environ, embedded_children

    embedded = celery_app.is_embedded(config)
    if embedded:
        celery_app.prepare_embedded_broker(config)
    Supervisor(embedded_children(config, embedded and config.embedded_workers),
               child_environ(config)).run(stop)


class CeleryPipeline:
    """The Celery pipeline for one configuration, as `create_app(config, pipeline)` takes it."""

    def __init__(self, config: "Config"):
        self.config = config

    def submit(self, compose: "str | Compose") -> bool:
        return submit(self.config, compose)

    def wait_depsolve(self, compose_id: str, timeout: float) -> "DepsolveOutcome | None":
        return wait_depsolve(self.config, compose_id, timeout)

    def submit_upload(self, compose_id: str, target: str) -> bool:
        return submit_upload(self.config, compose_id, target)

    def cancel(self, compose_id: str) -> None:
        cancel(self.config, compose_id)

    def progress(self, compose_id: str) -> dict | None:
        return progress(self.config, compose_id)

    def forget(self, compose_id: str) -> None:
        forget(self.config, compose_id)

    def queue_depths(self, timeout: float) -> dict[str, int]:
        from tasks import celery_app

        return celery_app.queue_depths(self.config, timeout)
