"""The recovery loop: no compose is lost by the broker and none stays RUNNING forever.

It runs beside the API (`serve` starts it; any process may) and needs no Celery beat: one thread,
one pass at start and then every `interval` seconds.  Each pass:

1. **Dead workers**: a running job whose heartbeat is older than `task_stale_after` lost its worker
   (`kill -9`, host gone); so did, at once, one whose worker process on this host is gone.  It is
   queued again once (`MAX_ATTEMPTS`), then its compose is FAILED with a sentence saying so.  So a
   compose leaves RUNNING within `task_stale_after + interval` seconds.
2. **Lost messages**: queued jobs of a queue are compared with the messages the broker holds for it;
   fewer messages than jobs waiting longer than `requeue_after` means the broker lost some (Redis
   restarted without persistence, a publish failed while it was down): those jobs are sent again.
   A duplicate is harmless: a job runs only once its claim succeeds.
3. **Never queued**: a WAITING compose without any job (the API died between storing it and
   sending it) is submitted; a compose the pipeline took (RUNNING, or WAITING for its build after
   its depsolve) with nothing queued or running is FAILED.
4. **Stray builds**: an osbuild (seen through its guard, `tasks/osbuild_guard.py`) building into the
   directory of a compose that is not RUNNING any more (FAILED by step 1 while its worker hung,
   deleted) is stopped as cancel stops it.  Only builds of this installation's artifacts directory
   in this PID namespace are seen; a RUNNING compose's build is never touched (a retried build may
   briefly overlap its killed predecessor, whose guard stops it by itself).
5. **Scratch left in the osbuild store**: what stopped osbuilds left in `<store>/tmp` is removed
   while no build runs (`tasks.osbuild.sweep_store_tmp`).

Every change is guarded in the store (token and heartbeat must be unchanged), so several
recovery loops (several API processes) do not fight.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import jobs
from core.jobs import Step
from tasks import steps

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)


def default_interval(config: "Config") -> float:
    return max(0.5, min(30.0, config.task_stale_after / 3))


def broker_depths(config: "Config", queues: set[str]) -> dict[str, int] | None:
    """Messages waiting in each queue; None when the broker does not answer."""
    from tasks.pipeline import celery_for

    app = celery_for(config)
    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1)
            channel = conn.default_channel
            for queue in queues:
                try:
                    depths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except Exception:  # noqa: BLE001 - an undeclared queue holds nothing
                    depths[queue] = 0
                    channel = conn.default_channel
    except Exception as exc:  # noqa: BLE001
        log.info("broker unreachable during recovery: %s", exc)
        return None
    return depths


class Recovery:
    """One pass of the recovery loop; separate from the thread so tests can run a pass directly."""

    def __init__(self, config: "Config", requeue_after: float | None = None):
        from core.store.composes import ComposeStore

        self.config = config
        self.store = ComposeStore.from_config(config)
        self.db = self.store.db
        self.requeue_after = (requeue_after if requeue_after is not None
                              else max(2.0, min(60.0, config.task_stale_after / 2)))
        self._stopping: set[tuple[int, Path]] = set()  # guards told to stop (they take up to ~7 s)

    def run_once(self, first: bool = False) -> dict[str, int]:
        counts = {"retried": 0, "failed": 0, "resent": 0, "submitted": 0, "closed": 0}
        self._reap(counts)
        self._resend(counts, first)
        self._orphans(counts)
        counts["stopped"] = self.stop_stray_builds()
        from tasks.celery_app import prune_embedded_broker

        prune_embedded_broker(self.config)
        from tasks.osbuild import sweep_store_tmp

        counts["swept"] = len(sweep_store_tmp(self.config.store_path))
        if any(counts.values()):
            log.info("recovery: %s", counts)
        return counts

    def _compose_or_forget(self, compose_id: str) -> Any:
        """The compose a job row names, or None after dropping the run records of a compose
        deleted meanwhile (nothing is left to run or close for it)."""
        from core.store.composes import UnknownCompose

        try:
            return self.store.get(compose_id)
        except UnknownCompose:
            jobs.forget(self.db, compose_id)
            return None

    # 1. dead workers
    def _reap(self, counts: dict[str, int]) -> None:
        from core.store.composes import FINISHED, RUNNING, WAITING

        stale_after = self.config.task_stale_after
        stale = jobs.stale_jobs(self.db, stale_after)
        seen = {(r["compose_id"], r["step"]) for r in stale}
        gone = [r for r in self._jobs_of_dead_local_workers()
                if (r["compose_id"], r["step"]) not in seen]
        for row in stale + gone:
            why = (f"no heartbeat for {stale_after} s" if (row["compose_id"], row["step"]) in seen
                   else "its process on this host is gone")
            compose_id, step = row["compose_id"], Step.named(row["step"])
            compose = self._compose_or_forget(compose_id)
            if compose is None:
                continue
            if compose.queue_status == FINISHED and step.is_upload:
                self._reap_upload(row, step, why, counts)
                continue
            if compose.queue_status not in (WAITING, RUNNING):
                if jobs.fail_stale(self.db, row):
                    counts["closed"] += 1
                    if compose.queue_status == FINISHED and step == steps.BUILD:
                        self._queue_uploads(compose_id)
                continue
            worker = row["worker"] or "a worker"
            if row["attempt"] < steps.MAX_ATTEMPTS and not compose.cancel_requested:
                self._retry(row, step, why, counts)
            elif jobs.fail_stale(self.db, row):
                steps.close_uploads(self.store, compose_id, "its worker stopped responding")
                self.store.mark_failed(
                    compose_id, f"{step} failed: {worker} stopped responding ({why}) after "
                    f"{row['attempt']} attempt(s)")
                self.store.set_progress(compose_id, None)
                jobs.mark_done(self.db, compose_id)
                counts["failed"] += 1

    def _jobs_of_dead_local_workers(self) -> list[Any]:
        """Running jobs whose worker process (`<host>:<pid>`, `steps.worker_name`) ran on this
        host and no longer exists: a worker killed with `kill -9` (or by the OOM killer) next
        to this loop, as serve's embedded workers are.  Its job is re-queued at once rather than
        after `task_stale_after` (10 minutes by default).  A pid reused meanwhile only delays it
        to the heartbeat rule; other hosts' jobs are left to that rule."""
        import os
        import socket

        host = socket.gethostname()
        out = []
        for row in jobs.stale_jobs(self.db, float("-inf")):  # every running job
            name, _, pid = (row["worker"] or "").rpartition(":")
            if name != host or not pid.isdigit():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                out.append(row)
            except PermissionError:
                pass
        return out

    def _retry(self, row: Any, step: Step, why: str, counts: dict[str, int]) -> None:
        """Queue a stale step once more (if no other pass did meanwhile), saying why in the log."""
        if jobs.requeue_stale(self.db, row):
            compose_id, worker = row["compose_id"], row["worker"] or "a worker"
            self.store.append_log(
                compose_id, f"{step}: {worker} stopped responding ({why}); running it "
                f"again (attempt {row['attempt'] + 1})\n")
            self._send(compose_id, step)
            counts["retried"] += 1

    def _reap_upload(self, row: Any, step: Step, why: str, counts: dict[str, int]) -> None:
        """An upload whose worker died: run it again, or end its entries saying why (a FINISHED
        compose stays FINISHED; only the upload failed)."""
        compose_id, worker = row["compose_id"], row["worker"] or "a worker"
        if row["attempt"] < steps.MAX_ATTEMPTS:
            self._retry(row, step, why, counts)
        elif jobs.fail_stale(self.db, row):
            from uploaders import canonical_target

            reason = (f"{step} failed: {worker} stopped responding ({why}) after "
                      f"{row['attempt']} attempt(s)")
            for upload in self.store.uploads(compose_id):
                if canonical_target(upload.target) == step.target and \
                        upload.status in ("WAITING", "RUNNING"):
                    self.store.update_upload(upload.id, status="FAILED", error=reason)
            counts["failed"] += 1

    def _queue_uploads(self, compose_id: str) -> None:
        for target in steps.upload_targets_of(self.store, compose_id):
            jobs.enqueue(self.db, compose_id, Step.upload(target))
            self._send(compose_id, Step.upload(target))

    # 2. lost messages
    def _resend(self, counts: dict[str, int], first: bool) -> None:
        from core.store.composes import FINISHED, RUNNING, WAITING

        waiting = jobs.queued_jobs(self.db, 0 if first else self.requeue_after)
        if not waiting:
            return
        by_queue: dict[str, list[Any]] = defaultdict(list)
        for row in waiting:
            by_queue[Step.named(row["step"]).queue].append(row)
        depths = broker_depths(self.config, set(by_queue))
        if depths is None:
            return
        for queue, rows in by_queue.items():
            if depths.get(queue, 0) >= len(rows):
                continue  # the broker holds at least as many messages as jobs wait
            for row in rows:
                compose_id, step = row["compose_id"], Step.named(row["step"])
                compose = self._compose_or_forget(compose_id)
                if compose is None:
                    continue
                wanted = (compose.queue_status in (WAITING, RUNNING) or
                          (compose.queue_status == FINISHED and step.is_upload))
                if not wanted or compose.cancel_requested:
                    jobs.mark_done(self.db, compose_id, step)
                    counts["closed"] += 1
                    continue
                if self._send(compose_id, step):
                    counts["resent"] += 1

    # 3. composes the pipeline never heard of, or lost track of
    def _orphans(self, counts: dict[str, int]) -> None:
        from core.store.composes import RUNNING, WAITING
        from tasks import pipeline

        started = []  # WAITING composes the pipeline took (a depsolved compose waits for its build)
        for compose_id in self.store.ids_by_status(WAITING):
            if not jobs.jobs(self.db, compose_id):
                pipeline.submit(self.config, compose_id)
                counts["submitted"] += 1
            else:
                started.append(compose_id)
        for compose_id in self.store.ids_by_status(RUNNING) + started:
            rows = jobs.jobs(self.db, compose_id)
            if any(j["state"] != jobs.DONE for j in rows):
                continue
            compose = self.store.get(compose_id)
            last = max([j["finished_at"] or 0 for j in rows] + [compose.job_started or 0])
            if time.time() - last > self.config.task_stale_after:
                steps.close_uploads(self.store, compose_id, "the pipeline lost track of it")
                self.store.mark_failed(compose_id, "the pipeline lost track of this compose "
                                       "(no step queued or running)")
                counts["failed"] += 1

    # 4. builds whose compose is over
    def stop_stray_builds(self) -> int:
        import uuid

        from core.store.composes import RUNNING, UnknownCompose
        from tasks.osbuild import guarded_builds, stop_guarded

        artifacts = self.store.artifacts_dir.resolve()
        stopped = 0
        builds = guarded_builds()
        self._stopping &= set(builds)
        for pid, output_dir in builds:
            if (pid, output_dir) in self._stopping:
                continue
            compose_dir = output_dir.parent
            try:
                if compose_dir.parent.resolve() != artifacts:
                    continue  # another installation's build, or not a compose's
                compose_id = str(uuid.UUID(compose_dir.name))
            except (OSError, ValueError):
                continue
            try:
                state = self.store.get(compose_id).queue_status
            except UnknownCompose:
                state = "deleted"
            except Exception:  # noqa: BLE001 - in doubt, leave the build alone
                log.exception("reading compose %s", compose_id)
                continue
            if state == RUNNING:
                continue
            if stop_guarded(pid, output_dir):
                self._stopping.add((pid, output_dir))
                log.warning("compose %s is %s but its osbuild still ran: stopped it (guard pid %d)",
                            compose_id, state, pid)
                stopped += 1
        return stopped

    def _send(self, compose_id: str, step: Step) -> bool:
        from tasks import pipeline

        targets: list[str] = []
        if step in (steps.DEPSOLVE, steps.BUILD):
            compose = self.store.get(compose_id)
            targets = sorted({(u.get("provider") or u.get("target") or "")
                              for u in compose.upload_requests} - {""})
        return pipeline.send(self.config, compose_id, step, targets)


class RecoveryLoop:
    """`Recovery.run_once` in a daemon thread: at start, then every `interval` seconds."""

    def __init__(self, config: "Config", interval: float | None = None):
        self.config = config
        self.interval = interval if interval is not None else default_interval(config)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="compose-recovery", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        recovery = None
        first = True
        while True:
            try:
                recovery = recovery or Recovery(self.config)
                recovery.run_once(first=first)
                first = False
            except Exception:  # noqa: BLE001 - the loop must survive a bad pass
                log.exception("recovery pass failed")
            if self._stop.wait(self.interval):
                return


def main() -> int:
    """`python -m tasks.recovery`: the loop as its own process (what `serve` starts)."""
    import signal

    from core import config as config_mod

    config = config_mod.load()
    try:
        from core.logs import setup_logging

        setup_logging(config, "recovery")
    except ImportError:
        logging.basicConfig(level=config.log_level.upper())
    loop = RecoveryLoop(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    loop.start()
    stop.wait()
    loop.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
