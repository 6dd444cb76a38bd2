"""Who is working on which step of a compose, and since when: the pipeline's own bookkeeping.

The compose store says what a compose *is* (WAITING, RUNNING, FINISHED, FAILED); these tables say
what the pipeline is *doing* about it, so that nothing depends on the broker remembering anything:

- `pipeline_jobs`: one row per `Step` of a compose (`depsolve`, `build`, `test`, `upload:<target>`):
  queued → running → done, with the attempt count, a token naming the task run that owns it, and a
  heartbeat.  A task claims its job before it works; a second delivery of the same message (Redis'
  visibility timeout, a re-enqueue after a broker restart) finds the job running with a fresh heartbeat
  or already done, and does nothing.  That makes every task idempotent per compose id.
Cancel requests and live progress live in the compose store (`core.store.composes`), not here.

A job whose heartbeat stopped (worker killed with `kill -9`, host lost) is found by `stale_jobs` and
retried or failed by `tasks.recovery`; a queued job whose message the broker lost is found by
`queued_jobs` and re-enqueued.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from core.db import Database, Row
from core.tables import pipeline_jobs

QUEUED, RUNNING, DONE = "queued", "running", "done"
UPLOAD_PREFIX = "upload:"  # pipeline_jobs.step of an upload: upload:<target>
UPLOAD_QUEUE_PREFIX = "upload."


@dataclass(frozen=True)
class Step:
    """One step of a compose under each of its names: `name` in `pipeline_jobs.step` (and in
    task ids), `task` the Celery task that runs it, `queue` the broker queue that task goes to.

    The whole naming scheme lives here; everything else asks a `Step` instead of building or
    parsing these strings.
    """

    name: str
    task: str
    queue: str
    target: str = ""  # the upload target of an upload step

    def __str__(self) -> str:
        return self.name

    @property
    def is_upload(self) -> bool:
        return bool(self.target)

    @staticmethod
    def upload(target: str) -> "Step":
        return Step(UPLOAD_PREFIX + target, "compose.upload." + target, UPLOAD_QUEUE_PREFIX + target,
                    target)

    @staticmethod
    def named(name: str) -> "Step":
        """The step a `pipeline_jobs.step` value names; ValueError for none of ours."""
        if name.startswith(UPLOAD_PREFIX) and len(name) > len(UPLOAD_PREFIX):
            return Step.upload(name[len(UPLOAD_PREFIX):])
        for step in (DEPSOLVE, BUILD, TEST):
            if step.name == name:
                return step
        raise ValueError(f"unknown pipeline step {name!r}")

    @staticmethod
    def of_task(task: str) -> "Step":
        """The step a Celery task name runs; ValueError for none of ours."""
        if task.startswith("compose.upload.") and len(task) > len("compose.upload."):
            return Step.upload(task[len("compose.upload."):])
        for step in (DEPSOLVE, BUILD, TEST):
            if step.task == task:
                return step
        raise ValueError(f"unknown pipeline task {task!r}")


DEPSOLVE = Step("depsolve", "compose.depsolve", "depsolve")
BUILD = Step("build", "compose.build", "build")
# a test-mode compose pretends to build, so it takes a build worker's slot like a build
TEST = Step("test", "compose.test", "build")


def upload_queues(targets: list[str]) -> list[str]:
    return [Step.upload(t).queue for t in targets]


@dataclass(frozen=True)
class Claim:
    """The right to run one step of one compose, until the heartbeat stops."""

    compose_id: str
    step: Step
    token: str
    attempt: int
    enqueued_at: float
    started_at: float

    @property
    def wait_seconds(self) -> float:
        return self.started_at - self.enqueued_at


def enqueue(db: Database, compose_id: str, step: Step, now: float | None = None) -> None:
    """Record that a message for this step is (again) on its way; a done step stays done."""
    now = time.time() if now is None else now
    db.execute(
        "INSERT INTO pipeline_jobs (compose_id, step, state, enqueued_at) VALUES (?, ?, 'queued', ?)"
        # the first enqueue time stays: it is what enqueue→start latency is measured from
        " ON CONFLICT (compose_id, step) DO NOTHING",
        (compose_id, step.name, now))


def claim(db: Database, compose_id: str, step: Step, worker: str, stale_after: float) -> Claim | None:
    """Take the step for this task run, or None when it is done or another live run has it.

    One statement in the usual case (the job row is there, queued): an UPDATE of the row found
    by a sub-select that locks it, `FOR UPDATE SKIP LOCKED` on PostgreSQL, so a second delivery
    of the same message claiming at this moment skips it instead of waiting and then finding it
    taken (SQLite: the write transaction already serialises claims).  Only when no row was taken
    does a second statement adopt a message sent before the API recorded its job (or by hand).
    """
    now = time.time()
    token = uuid.uuid4().hex
    c = pipeline_jobs.c
    takeable = (sa.select(c.step)
                .where(c.compose_id == compose_id, c.step == step.name,
                       sa.or_(c.state == QUEUED,
                              # a running job whose heartbeat stopped: its run is dead
                              sa.and_(c.state == RUNNING,
                                      sa.func.coalesce(c.heartbeat, 0) <= now - stale_after)))
                .with_for_update(skip_locked=True)
                .scalar_subquery())
    with db.transaction() as conn:
        row = conn.execute(
            pipeline_jobs.update()
            .where(c.compose_id == compose_id, c.step == takeable)
            .values(state=RUNNING, token=token, worker=worker, heartbeat=now, started_at=now,
                    attempt=c.attempt + 1)
            .returning(c.attempt, c.enqueued_at)).fetchone()
        if row is None:
            row = conn.execute(
                "INSERT INTO pipeline_jobs (compose_id, step, state, token, worker, heartbeat,"
                " started_at, attempt, enqueued_at) VALUES (?, ?, 'running', ?, ?, ?, ?, 1, ?)"
                " ON CONFLICT (compose_id, step) DO NOTHING RETURNING attempt, enqueued_at",
                (compose_id, step.name, token, worker, now, now, now)).fetchone()
        if row is None:  # done, running elsewhere, or locked by a run claiming it right now
            return None
    return Claim(compose_id, step, token, row["attempt"], row["enqueued_at"], now)


def beat(db: Database, claim: Claim) -> bool:
    """Heartbeat; False when the job is no longer ours (the reaper gave it to another run)."""
    return db.execute("UPDATE pipeline_jobs SET heartbeat = ? WHERE compose_id = ? AND step = ?"
                      " AND token = ? AND state = 'running'",
                      (time.time(), claim.compose_id, claim.step.name, claim.token)) == 1


def done(db: Database, claim: Claim) -> bool:
    """Mark the step done if this run still owns it; False means the reaper already moved on."""
    return db.execute("UPDATE pipeline_jobs SET state = 'done', finished_at = ?, token = NULL"
                      " WHERE compose_id = ? AND step = ? AND token = ?",
                      (time.time(), claim.compose_id, claim.step.name, claim.token)) == 1


def advance(db: Database, claim: Claim, next_steps: list[Step]) -> bool:
    """Mark the step done and queue the next ones, in one transaction: a worker dying in between
    would otherwise leave a compose with nothing queued and nothing running."""
    now = time.time()
    with db.transaction() as conn:
        cur = conn.execute("UPDATE pipeline_jobs SET state = 'done', finished_at = ?, token = NULL"
                           " WHERE compose_id = ? AND step = ? AND token = ?",
                           (now, claim.compose_id, claim.step.name, claim.token))
        if cur.rowcount != 1:
            return False
        for step in next_steps:
            conn.execute("INSERT INTO pipeline_jobs (compose_id, step, enqueued_at) VALUES (?, ?, ?)"
                         " ON CONFLICT (compose_id, step) DO NOTHING", (claim.compose_id, step.name, now))
    return True


def reset(db: Database, compose_id: str, step: Step) -> None:
    """Queue a step again even if it ran before (an upload scheduled anew)."""
    db.execute("INSERT INTO pipeline_jobs (compose_id, step, enqueued_at) VALUES (?, ?, ?)"
               " ON CONFLICT (compose_id, step) DO UPDATE SET state = 'queued', token = NULL,"
               " attempt = 0, enqueued_at = excluded.enqueued_at"
               " WHERE pipeline_jobs.state != 'running'",  # bare 'state' is ambiguous on PostgreSQL
               (compose_id, step.name, time.time()))


def mark_done(db: Database, compose_id: str, step: Step | None = None) -> None:
    """Close the steps of a compose that ended another way (failed, cancelled before it ran)."""
    if step is None:
        db.execute("UPDATE pipeline_jobs SET state = 'done', token = NULL, finished_at = ?"
                   " WHERE compose_id = ? AND state != 'done'", (time.time(), compose_id))
    else:
        db.execute("UPDATE pipeline_jobs SET state = 'done', token = NULL, finished_at = ?"
                   " WHERE compose_id = ? AND step = ?", (time.time(), compose_id, step.name))


def close_queued(db: Database, compose_id: str) -> None:
    """Close the steps of a compose still waiting for a worker (cancelled): a running step is
    left to its worker, which ends it and closes it itself."""
    db.execute("UPDATE pipeline_jobs SET state = 'done', token = NULL, finished_at = ?"
               " WHERE compose_id = ? AND state = 'queued'", (time.time(), compose_id))


def forget(db: Database, compose_id: str) -> None:
    """A deleted compose leaves no bookkeeping behind."""
    db.execute("DELETE FROM pipeline_jobs WHERE compose_id = ?", (compose_id,))


def stale_jobs(db: Database, stale_after: float) -> list[Row]:
    """Running steps whose heartbeat stopped: their worker is gone."""
    return db.query("SELECT * FROM pipeline_jobs WHERE state = 'running' AND heartbeat < ?",
                    (time.time() - stale_after,))


def queued_jobs(db: Database, older_than: float = 0.0) -> list[Row]:
    """Steps waiting for a worker since at least `older_than` seconds, oldest first."""
    return db.query("SELECT * FROM pipeline_jobs WHERE state = 'queued' AND enqueued_at <= ?"
                    " ORDER BY enqueued_at", (time.time() - older_than,))


def _unchanged(row: Row) -> sa.ColumnElement[bool]:
    """The job as `row` saw it: nobody claimed it or beat since (the stale-job guard)."""
    c = pipeline_jobs.c
    return sa.and_(c.compose_id == row["compose_id"], c.step == row["step"],
                   c.token.is_not_distinct_from(row["token"]), c.heartbeat == row["heartbeat"],
                   c.state == RUNNING)


def requeue_stale(db: Database, row: Row) -> bool:
    """Take a stale job away from its dead owner and queue it again (only if nobody beat since)."""
    return db.execute(pipeline_jobs.update().where(_unchanged(row))
                      .values(state=QUEUED, token=None, enqueued_at=time.time())) == 1


def fail_stale(db: Database, row: Row) -> bool:
    """Close a stale job for good (attempts used up); same guard as `requeue_stale`."""
    return db.execute(pipeline_jobs.update().where(_unchanged(row))
                      .values(state=DONE, token=None, finished_at=time.time())) == 1


def jobs(db: Database, compose_id: str) -> list[Row]:
    return db.query("SELECT * FROM pipeline_jobs WHERE compose_id = ? ORDER BY enqueued_at",
                    (compose_id,))
