"""`serve`'s helpers as supervised child processes: started, restarted when they die, and never
left behind.

With the embedded broker `serve` runs its own Celery workers (one per queue kind, so a depsolve
never waits behind builds) and, with every broker, the recovery loop.  They are children of one
supervisor process (`Supervisor.run`, in `app.server._embedded_main`), itself a child of gunicorn's
arbiter.  What holds that tree together:

- **Nothing outlives `serve`.**  Each child asks the kernel for a parent-death signal toward the
  process that started it (`die_with_parent`, `PR_SET_PDEATHSIG`), so `kill -9` of the arbiter
  reaches the supervisor (SIGTERM: it stops its children in order) and `kill -9` of the supervisor
  reaches the workers (SIGKILL: Celery's warm shutdown would wait for a build of hours) and the
  recovery loop.  Celery's pool processes have their own parent-death SIGKILL, and the osbuild
  guard its SIGTERM, which stops osbuild properly.  A parent-death signal follows the *thread* that
  forked the child, so every child is started from the supervisor's main thread.
- **Each child leads its own process group**, so Ctrl-C at a terminal reaches `serve`, which stops
  them in order; and the supervisor signals whole groups (`killpg`), so a worker's pool processes
  go with it, on stop and when a worker dies on its own.
- **A child that dies is started again**, after a delay that doubles with each quick death
  (`MIN_BACKOFF` … `MAX_BACKOFF`) and starts over once a child stayed up `HEALTHY_AFTER` seconds:
  a worker killed by the OOM killer comes back, one that cannot start does not spin.  The job it
  had is re-queued by the recovery loop (its heartbeat stops) and taken by the new worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_GRACE = 8.0  # seconds children get after SIGTERM before their groups are killed
MIN_BACKOFF = 1.0
MAX_BACKOFF = 60.0
HEALTHY_AFTER = 30.0  # a child that ran this long died of something new: restart it at once
TICK = 0.5  # how often the supervisor looks at its children


def set_parent_death_signal(sig: int) -> bool:
    """Ask the kernel to send `sig` to this process when its parent (thread) ends."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(sig: int) -> Callable[[], None]:
    """A `preexec_fn` for a child that must die with the calling process.

    The parent's pid is taken now, before the fork: a parent that died between the fork and the
    `prctl` would never send the signal, so the child then ends itself at once.
    """
    parent = os.getpid()

    def preexec() -> None:
        set_parent_death_signal(sig)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


@dataclass
class ChildSpec:
    """One supervised command: its name in logs, its argv, and the signal it gets when the
    supervisor dies."""

    name: str
    argv: list[str]
    death_signal: int = signal.SIGKILL


@dataclass
class _Child:
    spec: ChildSpec
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    next_start: float = 0.0
    starts: int = 0
    pids: list[int] = field(default_factory=list)


class Supervisor:
    """Starts `specs`, restarts those that die, stops them all (whole process groups) on `stop`.

    Not thread-safe: every method is called from the one thread that owns the children (see the
    module docstring on parent-death signals).
    """

    def __init__(self, specs: list[ChildSpec], env: dict[str, str] | None = None, *,
                 min_backoff: float = MIN_BACKOFF, max_backoff: float = MAX_BACKOFF,
                 healthy_after: float = HEALTHY_AFTER, stop_grace: float = STOP_GRACE):
        self.children = [_Child(spec) for spec in specs]
        self.env = env
        self.min_backoff, self.max_backoff = min_backoff, max_backoff
        self.healthy_after = healthy_after
        self.stop_grace = stop_grace

    def run(self, stop: threading.Event, tick: float = TICK) -> None:
        """Start everything, keep it running until `stop` is set, then stop everything."""
        try:
            self.start()
            while not stop.wait(tick):
                self.poll()
        finally:
            self.stop()

    def start(self) -> None:
        for child in self.children:
            if child.proc is None:
                self._spawn(child)

    def pids(self) -> dict[str, int]:
        """The live child of each spec (for logs and tests)."""
        return {c.spec.name: c.proc.pid for c in self.children if c.proc is not None}

    def _spawn(self, child: _Child) -> None:
        try:
            child.proc = subprocess.Popen(child.spec.argv, env=self.env, start_new_session=True,
                                          preexec_fn=die_with_parent(child.spec.death_signal))
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("cannot start %s: %s", child.spec.name, exc)
            child.proc = None
            child.started_at = time.monotonic()  # a failed start counts as a quick death
            self._schedule_restart(child, child.started_at)
            return
        child.started_at = time.monotonic()
        child.starts += 1
        child.pids.append(child.proc.pid)
        log.info("started %s (pid %d)%s", child.spec.name, child.proc.pid,
                 f", start {child.starts}" if child.starts > 1 else "")

    def _schedule_restart(self, child: _Child, now: float) -> None:
        if now - child.started_at >= self.healthy_after:
            child.quick_deaths = 0
        delay = 0.0 if child.quick_deaths == 0 else min(
            self.max_backoff, self.min_backoff * 2 ** (child.quick_deaths - 1))
        child.quick_deaths += 1
        child.next_start = now + delay

    def poll(self) -> None:
        """Reap children that died (and what they left in their group); restart those due."""
        now = time.monotonic()
        for child in self.children:
            proc = child.proc
            if proc is not None:
                if not _has_exited(proc.pid):
                    continue
                # the dead leader's pid still names its group until it is reaped: nothing else
                # can have taken it, so the group signal reaches only its leftovers
                _kill_group(proc.pid, signal.SIGKILL)
                status = proc.wait()
                log.warning("%s (pid %d) ended (%s); starting it again", child.spec.name,
                            proc.pid, _describe(status))
                child.proc = None
                self._schedule_restart(child, now)
            if child.proc is None and now >= child.next_start:
                self._spawn(child)

    def stop(self, grace: float | None = None) -> None:
        """SIGTERM to every child's group, SIGKILL to the groups still there after `grace`."""
        grace = self.stop_grace if grace is None else grace
        live = [c.proc for c in self.children if c.proc is not None]
        for proc in live:
            if not _has_exited(proc.pid):
                _kill_group(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in live:
            while not _has_exited(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            _kill_group(proc.pid, signal.SIGKILL)  # leftovers of a leader that exited too
            proc.wait()
        for child in self.children:
            child.proc = None


def _has_exited(pid: int) -> bool:
    """True once `pid` (our child) has exited, without reaping it."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:  # reaped already
        return True


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _describe(returncode: int | None) -> str:
    if returncode is None:
        return "unknown status"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"
