"""The steps of a compose as plain functions: depsolve (+ manifest), build, upload, test.

Each Celery task in `tasks.compose` is one line over one of these, so everything here runs and is
tested without a broker.  Every step:

1. claims its job in `core.jobs` (a second delivery of the same message does nothing),
2. checks the compose is still wanted (not cancelled, not failed meanwhile),
3. works while a heartbeat thread proves it is alive and watches for a cancel request,
4. records the outcome in the compose store, the single source of truth.

A step that fails marks the compose FAILED and raises `ComposeFailed`, which stops the chain.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import jobs
from core.jobs import BUILD, DEPSOLVE, TEST, Step  # noqa: F401 - BUILD: steps.BUILD for callers
from core.pipeline import DepsolveOutcome

if TYPE_CHECKING:
    from core.config import Config
    from core.store.composes import ComposeStore

log = logging.getLogger(__name__)

CANCELLED_OSBUILD_STOPPED = "the compose was cancelled; osbuild was stopped"
CANCEL_POLL = 1.0  # seconds between a running step's looks at its compose's cancel flag
MAX_ATTEMPTS = 2  # a step whose worker died is run once more, then the compose fails
CHECKPOINTS = ("build", "os")  # trees an unchanged compose reuses from the shared store


class ComposeFailed(Exception):
    """The compose was marked FAILED; the chain must stop here."""


class Skip(Exception):
    """Nothing to do for this delivery (duplicate, already done, compose gone)."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def heartbeat_interval(config: "Config") -> float:
    return max(0.2, min(10.0, config.task_stale_after / 4))


class Heartbeat:
    """Proves a step alive while it works, and notices cancel requests and lost ownership.

    A thread, so a depsolve stuck inside libsolv for a minute still beats.  `stop_requested`
    is what the osbuild runner polls: cancelled by the user, or the reaper gave the job away.
    """

    def __init__(self, store: "ComposeStore", claim: jobs.Claim, interval: float):
        self.store, self.claim, self.interval = store, claim, interval
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{claim.compose_id}",
                                        daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        """Beat every `interval` s; look for a cancel every `CANCEL_POLL` s (one small read), so
        a cancel stops osbuild within seconds however long the heartbeat interval is."""
        poll = min(self.interval, CANCEL_POLL)
        last_beat = time.monotonic()
        while not self._stop.wait(poll):
            try:
                if time.monotonic() - last_beat >= self.interval:
                    last_beat = time.monotonic()
                    if not jobs.beat(self.store.db, self.claim):
                        self.lost.set()
                if self.store.cancel_requested(self.claim.compose_id):
                    self.cancelled.set()
            except Exception:  # noqa: BLE001 - a busy database must not kill the build
                log.exception("heartbeat of %s failed", self.claim.compose_id)

    def stop_requested(self) -> bool:
        return self.cancelled.is_set() or self.lost.is_set()


class LogShipper:
    """Ships osbuild's output from the build worker's local file into the compose log while the
    build runs (every `interval` seconds) and once more at the end, so `compose/log` on an API on
    any machine follows the build."""

    def __init__(self, store: "ComposeStore", compose_id: str, path: Path, interval: float = 1.0):
        self.store, self.compose_id, self.path, self.interval = store, compose_id, path, interval
        self.offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"log-{compose_id}", daemon=True)

    def __enter__(self) -> "LogShipper":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._ship(final=True)

    def _ship(self, final: bool = False) -> None:
        try:
            self.offset = self.store.ship_log(self.compose_id, self.path, self.offset, final)
        except Exception:  # noqa: BLE001 - a busy database must not kill the build; next round
            log.exception("shipping the osbuild log of %s", self.compose_id)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._ship()


@dataclass
class StepContext:
    config: "Config"
    store: "ComposeStore"


_stores: dict[tuple, "ComposeStore"] = {}


def store_for(config: "Config") -> "ComposeStore":
    """One store (one SQLite connection per thread) per process and state directory.

    Opening a database runs every schema's CREATE IF NOT EXISTS in a write transaction; per task
    that would cost more than the task itself.
    """
    from core.store.composes import ComposeStore

    key = (os.getpid(), str(config.state_dir), str(config.artifacts_path))
    store = _stores.get(key)
    if store is None:
        store = _stores[key] = ComposeStore.from_config(config)
    return store


def context(config: "Config") -> StepContext:
    return StepContext(config, store_for(config))


def _claim(ctx: StepContext, compose_id: str, step: Step) -> jobs.Claim:
    claim = jobs.claim(ctx.store.db, compose_id, step, worker_name(), ctx.config.task_stale_after)
    if claim is None:
        raise Skip(f"{step} of {compose_id} is done or running elsewhere")
    return claim


def close_uploads(store: "ComposeStore", compose_id: str, message: str) -> None:
    """A compose that failed has no image: its waiting uploads end too, saying why."""
    try:
        cancelled = store.cancel_requested(compose_id)
        for upload in store.uploads(compose_id):
            if upload.status == "WAITING":
                store.update_upload(upload.id, status="CANCELLED" if cancelled else "FAILED",
                                    error=f"the compose failed: {message}")
    except Exception:  # noqa: BLE001 - the compose's own state matters more
        log.exception("closing the uploads of %s", compose_id)


def _fail(ctx: StepContext, claim: jobs.Claim | None, compose_id: str, message: str,
          failure: dict[str, str] | None = None) -> ComposeFailed:
    # uploads first: whoever sees the compose FAILED also sees its uploads ended
    close_uploads(ctx.store, compose_id, message)
    ctx.store.mark_failed(compose_id, message, failure=failure)
    ctx.store.set_progress(compose_id, None)
    # last: a step closed as done has written everything (see `depsolve_outcome`)
    jobs.mark_done(ctx.store.db, compose_id)
    log.info("compose %s failed: %s", compose_id, message)
    return ComposeFailed(message)


def _load(ctx: StepContext, compose_id: str) -> Any:
    from core.store.composes import UnknownCompose

    try:
        return ctx.store.get(compose_id)
    except UnknownCompose:
        jobs.forget(ctx.store.db, compose_id)
        raise Skip(f"compose {compose_id} no longer exists") from None


def _start_running(ctx: StepContext, claim: jobs.Claim, compose: Any) -> None:
    """WAITING → RUNNING, or find out the compose is no longer wanted."""
    from core.store.composes import RUNNING, WAITING

    if compose.cancel_requested:
        raise _fail(ctx, claim, compose.id, "compose cancelled before it started")
    if compose.queue_status == WAITING:
        if not ctx.store.mark_running(compose.id):
            jobs.mark_done(ctx.store.db, compose.id)
            raise Skip(f"compose {compose.id} left WAITING meanwhile")
    elif compose.queue_status != RUNNING:
        jobs.mark_done(ctx.store.db, compose.id)
        raise Skip(f"compose {compose.id} is {compose.queue_status}")


def _begin(ctx: StepContext, compose_id: str, step: Step, *,
           start: bool = True) -> tuple[jobs.Claim, Any]:
    """Claim the step and move the compose WAITING → RUNNING in one write transaction (one fsync
    instead of two: this is most of what a test-mode compose costs); the unusual cases (cancelled,
    gone, already over) are sorted out after it.

    `start=False` (the depsolve step) leaves a WAITING compose WAITING: osbuild-composer reports a
    compose WAITING until its build starts, and a depsolved compose may wait for a build worker.
    """
    from core.store.composes import WAITING

    with ctx.store.db.transaction():
        claim = _claim(ctx, compose_id, step)
        if start:
            started = ctx.store.start(compose_id)
            if started is not None:
                return claim, started
        compose = _load(ctx, compose_id)
        if not start and compose.queue_status == WAITING and not compose.cancel_requested:
            return claim, compose
    _start_running(ctx, claim, compose)
    return claim, compose


# --- test mode ------------------------------------------------------------------------------

def run_test(config: "Config", compose_id: str) -> str:
    """A test-mode compose (`?test=1|2`): RUNNING, then FAILED or FINISHED with no artifacts."""
    ctx = context(config)
    claim, compose = _begin(ctx, compose_id, TEST)
    if compose.test_mode == 1:
        raise _fail(ctx, claim, compose_id, "TESTING FAILED compose")
    with ctx.store.db.transaction():
        jobs.done(ctx.store.db, claim)
        # no image; the size shown is the requested one, as OC
        ctx.store.mark_finished(compose_id, image_size=compose.size)
    return "FINISHED"


# --- depsolve + manifest --------------------------------------------------------------------

def run_depsolve(config: "Config", compose_id: str) -> str:
    """Resolve every pipeline's package set, then write the manifest the build will run."""
    ctx = context(config)
    claim, compose = _begin(ctx, compose_id, DEPSOLVE, start=False)
    ctx.store.append_log(compose_id, f"depsolve started on {worker_name()} (attempt {claim.attempt})\n")
    with Heartbeat(ctx.store, claim, heartbeat_interval(config)) as hb:
        try:
            import distros
            from distros.offered import solver_inputs

            image_type = distros.get_distro(compose.distro).image_type(compose.arch,
                                                                       compose.compose_type)
            repositories, releasever, platform_id = solver_inputs(
                config, ctx.store.db, compose.distro, compose.arch, image_type.name)
            options = manifest_options(compose)
            sets = image_type.package_sets(compose.blueprint, options)
            started = time.monotonic()
            packages = _depsolve_sets(config, compose, sets, repositories, releasever,
                                      platform_id)
            _record_depsolve_metrics(config, time.monotonic() - started, compose.compose_type)
            ctx.store.record_packages(compose_id, packages)
            # the rpm stages take repository keys as text; a URL key is fetched here, once
            from distros.gpgkeys import inline_gpgkeys

            manifest = image_type.manifest(compose.blueprint, packages,
                                           inline_gpgkeys(repositories), options,
                                           manifest_seed(compose, options))
            ctx.store.record_manifest(compose_id, manifest)
            pipeline_names = [p.get("name") for p in manifest.get("pipelines", [])]
            wanted = list(CHECKPOINTS)
            if config.osbuild_checkpoint_images:
                wanted += list(image_type.exports)
            plan = {"exports": list(image_type.exports),
                    "checkpoints": [c for c in wanted if c in pipeline_names],
                    "filename": compose.image_filename or image_type.filename}
            ctx.store.record_plan(compose_id, plan)
        except Exception as exc:  # noqa: BLE001 - any failure fails the compose, with its words
            if hb.lost.is_set():
                raise Skip("job was taken over by another worker") from exc
            raise _fail(ctx, claim, compose_id, f"depsolve failed: {exc}",
                        depsolve_failure(exc)) from exc
    if hb.cancelled.is_set() or ctx.store.cancel_requested(compose_id):
        raise _fail(ctx, claim, compose_id, "compose cancelled")
    if not jobs.advance(ctx.store.db, claim, [BUILD]):
        raise Skip("job was taken over by another worker")
    ctx.store.append_log(compose_id, f"depsolved {sum(len(v) for v in packages.values())} packages\n")
    return "depsolved"


def depsolve_failure(exc: BaseException) -> dict[str, str] | None:
    """The Weldr error of a depsolve that the depsolver refused (unknown package, impossible
    version, unusable repository): osbuild-composer's POST /compose answers these as a 500
    `DepsolveError` with the depsolver's words.  None for anything else (manifest, keys, bugs)."""
    from depsolve import DepsolveError, RepositoryError

    if isinstance(exc, (DepsolveError, RepositoryError)):
        return {"id": "DepsolveError", "msg": str(exc)}
    return None


def depsolve_outcome(store: "ComposeStore", compose_id: str) -> DepsolveOutcome | None:
    """The outcome once the depsolve step is over, else None (queued, running, never queued).

    Two small reads, no write: cheap enough to poll.  The step is over when its job is done:
    `advance` (success) and `_fail` (failure, after the compose is FAILED) close it last.
    """
    from core.store.composes import FAILED, UnknownCompose

    row = next((r for r in jobs.jobs(store.db, compose_id) if r["step"] == DEPSOLVE.name), None)
    if row is None or row["state"] != jobs.DONE:
        return None
    try:
        compose = store.get(compose_id)
    except UnknownCompose:
        return None
    if compose.queue_status != FAILED:
        return DepsolveOutcome(False, {})
    return DepsolveOutcome(True, dict(compose.failure))


def _record_depsolve_metrics(config: "Config", seconds: float, image_type: str) -> None:
    try:
        import depsolve as depsolve_mod
        from core import metrics

        metrics.record_depsolve(config, seconds, image_type=image_type,
                                traffic=depsolve_mod.take_metadata_traffic())
    except ImportError:
        pass


def manifest_options(compose: Any) -> dict[str, Any]:
    """The distros engine's options for this compose (its `ManifestOptions` keys)."""
    options: dict[str, Any] = {"size": int(compose.size or 0), "api_type": "weldr"}
    if compose.ostree:
        options["ostree"] = dict(compose.ostree)
    for key in ("partitioning_mode", "containers", "ostree_commits", "flatpaks"):
        if key in compose.options:
            options[key] = compose.options[key]
    return options


def manifest_seed(compose: Any, options: dict[str, Any]) -> int:
    """The seed of the manifest's random parts (filesystem and partition UUIDs): from what was
    asked, not from the compose id.  The same request then yields the same manifest, so osbuild
    finds the `os` tree of an unchanged compose in its store and does not build it again; a retried
    depsolve writes the same manifest too."""
    import hashlib

    request = {"blueprint": compose.blueprint, "compose_type": compose.compose_type,
               "distro": compose.distro, "arch": compose.arch, "options": options}
    digest = hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _depsolve_sets(config: "Config", compose: Any, sets: dict[str, list[Any]],
                   repositories: list[dict], releasever: str,
                   platform_id: str | None) -> dict[str, list[dict]]:
    """Each pipeline's chain of package sets → the packages that pipeline installs.

    The union of the chain's transactions, so it holds whether a transaction lists only what it
    added or everything installed so far.
    """
    import depsolve as depsolve_mod

    out: dict[str, list[dict]] = {}
    for pipeline, chain in sets.items():
        if not chain:
            continue
        results = depsolve_mod.depsolve(chain, repositories, arch=compose.arch,
                                        releasever=releasever, module_platform_id=platform_id,
                                        cache_dir=Path(config.cache_dir) / "rpmmd",
                                        metadata_expire=config.metadata_expire)
        seen: dict[tuple, dict] = {}
        for transaction in results:
            for pkg in transaction:
                key = (pkg["name"], pkg.get("epoch", 0), pkg["version"], pkg["release"], pkg["arch"])
                seen.setdefault(key, pkg)
        out[pipeline] = [seen[k] for k in sorted(seen)]
    return out


# --- build ----------------------------------------------------------------------------------

def run_build(config: "Config", compose_id: str) -> str:
    """Run osbuild on the stored manifest; move the image into the compose directory."""
    from tasks.osbuild import exported_files, run_osbuild

    ctx = context(config)
    db = ctx.store.db
    if any(r["step"] == DEPSOLVE.name and r["state"] != jobs.DONE for r in jobs.jobs(db, compose_id)):
        raise Skip("depsolve of this compose is not done yet")
    claim, compose = _begin(ctx, compose_id, BUILD)
    manifest = ctx.store.manifest(compose_id)
    from core.store.composes import DamagedCompose

    try:
        plan = ctx.store.plan(compose_id)
    except DamagedCompose:
        plan = None
    if manifest is None or plan is None:
        raise _fail(ctx, claim, compose_id, "build failed: no manifest was recorded for this compose")
    compose_dir = ctx.store.compose_dir(compose_id)
    work = compose_dir / "osbuild-output"
    shutil.rmtree(work, ignore_errors=True)  # a retried build starts clean; the store keeps the cache
    last_progress: dict | None = None

    def on_progress(p: Any) -> None:
        nonlocal last_progress
        d = p.as_dict()
        if d != last_progress:
            last_progress = d
            try:
                ctx.store.set_progress(compose_id, d)
            except Exception:  # noqa: BLE001 - progress is advisory
                log.exception("recording progress of %s", compose_id)

    try:
        from core.metrics import RpmCacheProbe, record_build

        probe = RpmCacheProbe(manifest, config.store_path)
    except ImportError:
        probe = record_build = None  # type: ignore[assignment]
    local_log = ctx.store.log_path(compose_id)
    local_log.unlink(missing_ok=True)  # a retry's osbuild output starts a new local file
    with Heartbeat(ctx.store, claim, heartbeat_interval(config)) as hb, \
            LogShipper(ctx.store, compose_id, local_log):
        outcome = run_osbuild(manifest, command=config.osbuild_command, store=config.store_path,
                              output_dir=work, log_path=local_log,
                              exports=plan["exports"], checkpoints=plan["checkpoints"],
                              cache_max_size=config.osbuild_cache_max_size,
                              timeout=config.build_timeout, should_cancel=hb.stop_requested,
                              on_progress=on_progress)
    if hb.cancelled.is_set() or ctx.store.cancel_requested(compose_id):
        raise _cancelled_build(ctx, claim, compose_id, work, outcome)
    if hb.lost.is_set():
        shutil.rmtree(work, ignore_errors=True)
        raise Skip("job was taken over by another worker")
    if record_build is not None and outcome.ok:
        record_build(config, outcome.duration, image_type=compose.compose_type, probe=probe)
    if not outcome.ok:
        shutil.rmtree(work, ignore_errors=True)
        raise _fail(ctx, claim, compose_id, outcome.reason)
    files = exported_files(work, plan["exports"])
    if not files:
        raise _fail(ctx, claim, compose_id, "build failed: osbuild exported no file")
    target = compose_dir / Path(plan["filename"]).name
    wanted = [f for f in files if f.name == target.name]
    os.replace(wanted[0] if wanted else files[0], target)
    shutil.rmtree(work, ignore_errors=True)
    ctx.store.set_progress(compose_id, None)
    ctx.store.append_log(compose_id, f"osbuild finished in {outcome.duration:.2f} s\n")
    from core.artifacts import ArtifactsUnavailable

    # into the artifact store every machine reads (a no-op for this machine's directory); a
    # multi-GiB image going to S3 takes long, so the step keeps beating meanwhile, or the reaper
    # would hand the build to another worker while this one is still storing its image
    put_beat = Heartbeat(ctx.store, claim, heartbeat_interval(config))
    try:
        with put_beat:
            image_size = ctx.store.artifacts.put(compose_id, target.name, target)
    except (ArtifactsUnavailable, OSError) as exc:
        target.unlink(missing_ok=True)
        raise _fail(ctx, claim, compose_id, f"build failed: the image could not be stored: "
                    f"{getattr(exc, 'msg', exc)}") from exc
    if put_beat.lost.is_set():  # the new owner builds and stores the image again
        raise Skip("job was taken over by another worker while the image was being stored")
    # one transaction: FINISHED and the uploads queued together, or neither (the reaper retries)
    with db.transaction():
        finished = ctx.store.mark_finished(compose_id, image_size=image_size)
        if finished:
            jobs.advance(db, claim, [Step.upload(t) for t in upload_targets_of(ctx.store, compose_id)])
    if not finished:  # cancelled between the check above and this transaction: cancel wins
        # (a copy in a shared artifact store goes when the compose is deleted)
        target.unlink(missing_ok=True)
        raise _cancelled_build(ctx, claim, compose_id, work, outcome)
    log.info("compose %s built in %.1f s", compose_id, outcome.duration)
    return "built"


def _cancelled_build(ctx: StepContext, claim: jobs.Claim, compose_id: str, work: Path,
                     outcome: Any) -> ComposeFailed:
    """The compose was cancelled while its build ran: it stays FAILED (the cancel was final when
    the API acknowledged it) and the log says what osbuild really did meanwhile."""
    shutil.rmtree(work, ignore_errors=True)
    if outcome.ok:
        ctx.store.append_log(compose_id, "osbuild finished, but the compose had been cancelled "
                             "meanwhile: its image was discarded\n")
    elif not outcome.cancelled:
        # stopped for the cancel before this worker saw it (the recovery loop stops the build of
        # a compose that is not RUNNING any more); the line above is osbuild's exit as seen here
        ctx.store.append_log(compose_id, f"{CANCELLED_OSBUILD_STOPPED}\n")
    return _fail(ctx, claim, compose_id, "compose cancelled")


# --- uploads --------------------------------------------------------------------------------

def upload_targets_of(store: "ComposeStore", compose_id: str) -> list[str]:
    """Distinct targets of the compose's WAITING uploads, in a stable order; an entry stored under
    an earlier name of its target (`s3`) runs on the target's queue (`upload.aws.s3`)."""
    from uploaders import canonical_target

    return sorted({canonical_target(u.target) for u in store.uploads(compose_id)
                   if u.status == "WAITING"})


def run_upload(config: "Config", compose_id: str, target: str) -> str:
    """Hand the finished image to the uploaders' code for every WAITING upload of `target`."""
    from core.store.composes import FINISHED

    ctx = context(config)
    step = Step.upload(target)
    db = ctx.store.db
    if any(r["step"] in (DEPSOLVE.name, BUILD.name) and r["state"] != jobs.DONE
           for r in jobs.jobs(db, compose_id)):
        raise Skip("the build of this compose is not done yet")
    compose = _load(ctx, compose_id)
    if compose.queue_status != FINISHED:
        jobs.mark_done(db, compose_id, step)
        raise Skip(f"compose {compose_id} is {compose.queue_status}: nothing to upload")
    claim = _claim(ctx, compose_id, step)
    with Heartbeat(ctx.store, claim, heartbeat_interval(config)):
        from uploaders.service import run_compose_uploads

        run_compose_uploads(config, compose_id, target, store=ctx.store)
    jobs.done(db, claim)
    return "uploaded"

