"""The Celery tasks of a compose: one line each over `tasks.steps`, plus the canvas that chains them.

A compose is `depsolve → build → uploads` (the uploads as a group, one task per target, in
parallel) or a single `compose.test` for a test-mode compose.  Every task takes the compose id
only (an upload task also its target, which its name already says): settings and credentials stay
in the store, so neither the broker nor Flower ever sees a secret.

A step that finds nothing to do (duplicate delivery) returns normally, so the chain goes on and the
next step decides for itself; a step that failed the compose raises `ComposeFailed`, which stops
the chain and shows as a failed task in Flower.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import chain, group, signature

from core.jobs import BUILD, DEPSOLVE, TEST, Step
from tasks import steps
from tasks.celery_app import celery, current_config, upload_targets


def _run(fn: Callable[..., str], *args: Any) -> str:
    try:
        return fn(current_config(), *args)
    except steps.Skip as skip:
        return f"skipped: {skip}"


@celery.task(name=DEPSOLVE.task, throws=(steps.ComposeFailed,))
def depsolve(compose_id: str) -> str:
    return _run(steps.run_depsolve, compose_id)


@celery.task(name=BUILD.task, throws=(steps.ComposeFailed,))
def build(compose_id: str) -> str:
    return _run(steps.run_build, compose_id)


@celery.task(name=TEST.task, throws=(steps.ComposeFailed,))
def test(compose_id: str) -> str:
    return _run(steps.run_test, compose_id)


def _make_upload_task(target: str) -> Any:
    @celery.task(name=Step.upload(target).task, throws=(steps.ComposeFailed,))
    def upload(compose_id: str) -> str:
        return _run(steps.run_upload, compose_id, target)

    return upload


UPLOAD_TASKS = {target: _make_upload_task(target) for target in upload_targets()}


def _sig(compose_id: str, step: Step) -> Any:
    # a readable, deterministic task id: Flower shows it, revoke finds it
    return signature(step.task, args=(compose_id,), immutable=True,
                     task_id=f"{compose_id}.{step.name}", app=celery)


def upload_signatures(compose_id: str, targets: list[str]) -> list[Any]:
    return [_sig(compose_id, Step.upload(t)) for t in targets]


def canvas_from(compose_id: str, step: Step, upload_targets_: list[str]) -> Any:
    """The rest of a compose's work starting at `step` (what submit and recovery send)."""
    if step.is_upload or step == TEST:
        return _sig(compose_id, step)
    uploads = upload_signatures(compose_id, upload_targets_)
    tail: list[Any] = []
    if uploads:
        tail = [uploads[0] if len(uploads) == 1 else group(uploads)]
    if step == DEPSOLVE:
        return chain(_sig(compose_id, DEPSOLVE), _sig(compose_id, BUILD), *tail)
    if step == BUILD:
        return chain(_sig(compose_id, BUILD), *tail) if tail else _sig(compose_id, BUILD)
    raise ValueError(f"unknown step {step!r}")
