"""What the API asks of the build pipeline, as an interface the API is handed.

The API (Flask, `app/`) sits above the pipeline's Celery wiring (`tasks/`) in the layering but must
not import it: `create_app(config, pipeline)` takes any object with these methods.  `tasks.pipeline`
provides the Celery one; an API without a pipeline (benchmarks of the routes alone, tests) passes
None and its composes stay WAITING until a pipeline process picks them up through the store.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from core.store.composes import Compose


@dataclass(frozen=True)
class DepsolveOutcome:
    """How the depsolve step of a compose ended; `failure` is empty when it succeeded (or the
    compose failed for a reason that is not the depsolver's, e.g. cancelled)."""

    failed: bool
    failure: dict[str, str]


class Pipeline(Protocol):
    """The pipeline as the API sees it.  Every method is safe to call for any compose id; none
    raises for a broker outage (the store holds the truth and the recovery loop re-sends)."""

    def submit(self, compose: str | Compose) -> bool:
        """Queue a freshly stored WAITING compose, given as its id or as `ComposeStore.create`
        returned it (saves reading it back); False when the broker could not be reached."""

    def wait_depsolve(self, compose_id: str, timeout: float) -> DepsolveOutcome | None:
        """The outcome of the compose's depsolve step once over (at most `timeout` s), else None."""

    def submit_upload(self, compose_id: str, target: str) -> bool:
        """Run the WAITING uploads of `target` of a FINISHED compose (schedule, reset)."""

    def cancel(self, compose_id: str) -> None:
        """After the store recorded a cancel request: stop what is queued or running for it."""

    def progress(self, compose_id: str) -> dict | None:
        """Live osbuild progress of a RUNNING compose, else None."""

    def forget(self, compose_id: str) -> None:
        """The compose was deleted: drop the pipeline's bookkeeping of it."""

    def queue_depths(self, timeout: float) -> dict[str, int]:
        """Messages waiting in each of the pipeline's queues (raises when the broker is down)."""
