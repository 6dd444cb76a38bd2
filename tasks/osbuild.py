"""Running osbuild for one compose: command line, progress, log, cancel, timeout and failure reasons.

Plain code, no Celery: `run_osbuild` is what the build task calls, and tests call it with a stand-in
command.  Why it is shaped like this:

- osbuild runs under `tasks/osbuild_guard.py`, in its own process group (it starts
  bubblewrap, stage helpers, loop devices, …).  Cancel and timeout send the guard one SIGTERM; the
  guard signals osbuild's whole group, SIGINT first so osbuild unmounts what it mounted, then SIGTERM
  and SIGKILL if it does not stop.  The guard gets the worker's parent-death signal and does the same
  when the worker is killed, so no osbuild outlives its worker, even one hung after its SIGINT.
- `--store` is shared by every build on the host: RPMs downloaded once are reused by every later build,
  and `--checkpoint` of the build/os trees lets an unchanged compose reuse its trees.  Checkpoints are
  only kept when `--cache-max-size` is given, so it always is.
- `--monitor JSONSeqMonitor --monitor-fd N` gives RFC 7464 records with the current pipeline/stage and
  done/total counts (progress for `compose/info`) and the stages' output (the log).  stdout and stderr
  go to the same log, so a schema error (exit 2) or a stage failure (exit 1) ends up at its end, followed
  by one line that says why the compose failed.
- Missing osbuild and a full disk are the two failures users hit first; both get a sentence of their
  own instead of a traceback.
"""

from __future__ import annotations

import errno
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tasks.osbuild_guard import EXEC_FAILED, KILL_GRACE, TERM_GRACE

RS = b"\x1e"  # RFC 7464 record separator
GUARD = Path(__file__).with_name("osbuild_guard.py")
GUARD_SLACK = 3.0  # seconds past the guard's own escalation before the runner kills it all itself
MIN_FREE_BYTES = 256 * 1024 * 1024  # refuse to start a build with less free space than this
# a full disk in osbuild's (and its tools') words; "database or disk is full" is SQLite's, seen
# from rpm's database when the store's disk fills during the rpm stage
ENOSPC_MARKERS = ("No space left on device", "ENOSPC", "Disk quota exceeded", "database or disk is full")
# a disk image's loop device reports a full backing disk as EIO (seen from mkfs with osbuild 191)
LOOP_EIO_MARKER = "Input/output error"


@dataclass
class Progress:
    """Where osbuild is: pipeline i of n (1-based, the one running), stage j of m within it."""

    pipeline: str | None = None
    stage: str | None = None
    pipelines_done: int = 0
    pipelines_total: int = 0
    stages_done: int = 0
    stages_total: int = 0

    def as_dict(self) -> dict:
        return {
            "pipeline": self.pipeline,
            "stage": self.stage,
            "pipeline_n": min(self.pipelines_done + 1, self.pipelines_total) if self.pipelines_total else 0,
            "pipeline_m": self.pipelines_total,
            "stage_n": min(self.stages_done + 1, self.stages_total) if self.stages_total else 0,
            "stage_m": self.stages_total,
        }


@dataclass
class BuildOutcome:
    ok: bool
    returncode: int | None
    reason: str = ""  # one sentence for the log's last line and compose status; empty when ok
    cancelled: bool = False
    timed_out: bool = False
    progress: Progress = field(default_factory=Progress)
    failed_stage: str | None = None
    duration: float = 0.0


class MonitorParser:
    """Incremental parser of osbuild's JSONSeqMonitor stream.

    Records name their context in full only the first time; later records carry just its id, so the
    parser remembers id → (pipeline, stage).
    """

    def __init__(self) -> None:
        self._buf = b""
        self._contexts: dict[str, tuple[str | None, str | None]] = {}
        self.progress = Progress()
        self.last_failed_stage: str | None = None

    def feed(self, data: bytes) -> list[dict]:
        """Records completed by `data`; an unparsable record is skipped, not fatal (it is only progress)."""
        self._buf += data
        records = []
        while True:
            start = self._buf.find(RS)
            if start < 0:
                self._buf = b""
                break
            end = self._buf.find(RS, start + 1)
            if end < 0:
                # the last record is complete once its newline arrived
                chunk = self._buf[start + 1:]
                if not chunk.endswith(b"\n"):
                    self._buf = self._buf[start:]
                    break
                self._buf = b""
            else:
                chunk = self._buf[start + 1:end]
                self._buf = self._buf[end:]
            try:
                record = json.loads(chunk.decode("utf-8", "replace"))
            except ValueError:
                continue
            if isinstance(record, dict):
                self._apply(record)
                records.append(record)
        return records

    def _apply(self, record: dict) -> None:
        ctx = record.get("context")
        if isinstance(ctx, dict):
            pipeline_info = ctx.get("pipeline")
            if isinstance(pipeline_info, dict):
                stage_info = pipeline_info.get("stage") or {}
                names = (pipeline_info.get("name"), stage_info.get("name"))
                if ctx.get("id"):
                    self._contexts[ctx["id"]] = names
            else:
                names = self._contexts.get(ctx.get("id", ""), (None, None))
            if names[0]:
                self.progress.pipeline = names[0]
            if names[1] or names[0]:
                self.progress.stage = names[1]
        prog = record.get("progress")
        if isinstance(prog, dict):
            self.progress.pipelines_total = int(prog.get("total") or 0)
            self.progress.pipelines_done = int(prog.get("done") or 0)
            sub = prog.get("progress")
            if isinstance(sub, dict):
                self.progress.stages_total = int(sub.get("total") or 0)
                self.progress.stages_done = int(sub.get("done") or 0)
            else:
                self.progress.stages_total = self.progress.stages_done = 0
        result = record.get("result")
        if isinstance(result, dict) and result.get("success") is False:
            self.last_failed_stage = result.get("name") or self.progress.stage


def build_command(command: list[str], *, manifest_path: Path, store: Path, output_dir: Path,
                  exports: Iterable[str], checkpoints: Iterable[str], cache_max_size: str,
                  monitor_fd: int) -> list[str]:
    argv = list(command) + [
        "--store", str(store),
        "--output-directory", str(output_dir),
        "--cache-max-size", str(cache_max_size),
        "--monitor", "JSONSeqMonitor",
        "--monitor-fd", str(monitor_fd),
    ]
    for name in exports:
        argv += ["--export", name]
    for name in checkpoints:
        argv += ["--checkpoint", name]
    argv.append(str(manifest_path))
    return argv


def guarded(argv: list[str]) -> list[str]:
    """`argv` run under the guard, which watches this process (see `tasks/osbuild_guard.py`).

    The guard runs from its file with `-I -S`: no site-packages, no project imports, ~10 ms.
    """
    return [sys.executable or "python3", "-I", "-S", str(GUARD), "--parent", str(os.getpid()),
            "--", *argv]


def _free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def _stop(proc: subprocess.Popen) -> None:
    """Stop the build: one SIGTERM to the guard, which stops osbuild's group as Ctrl-C would and
    harder if it does not stop (SIGINT, `KILL_GRACE` s, SIGTERM, `TERM_GRACE` s, SIGKILL), then exits
    with osbuild's status.  Should the guard itself not end in time, the runner kills osbuild's group
    and the guard."""
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=KILL_GRACE + TERM_GRACE + GUARD_SLACK)
        return
    except subprocess.TimeoutExpired:
        pass
    for child in _children(proc.pid):
        try:
            os.killpg(child, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    proc.kill()
    proc.wait()


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def guarded_builds() -> list[tuple[int, Path]]:
    """(guard pid, osbuild's output directory) of every guarded osbuild this process can see.

    Read from /proc command lines: the guard's is `<python> -I -S …/osbuild_guard.py --parent N --
    <osbuild argv>`, as `guarded` writes it.  Builds in other PID namespaces (other containers) are
    not visible, and not wanted either.
    """
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        output_dir = _guarded_output_dir(int(entry.name))
        if output_dir is not None:
            found.append((int(entry.name), output_dir))
    return found


def _guarded_output_dir(pid: int) -> Path | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    args = [a.decode("utf-8", "surrogateescape") for a in argv]
    if len(args) < 5 or not args[3].endswith("/" + GUARD.name) or "--" not in args:
        return None
    osbuild_argv = args[args.index("--") + 1:]
    if "--output-directory" not in osbuild_argv[:-1]:
        return None
    return Path(osbuild_argv[osbuild_argv.index("--output-directory") + 1])


def stop_guarded(pid: int, output_dir: Path) -> bool:
    """SIGTERM to the guard `pid` (it then stops its osbuild as cancel does), if that pid still is
    the guard of a build into `output_dir`: a pidfd pins the process while its command line is
    checked again, so a reused pid is never signalled."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if _guarded_output_dir(pid) != Path(output_dir):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


BUILDS_LOCK = ".celery-composer-builds.lock"  # in the store: held shared by every running build
STORE_TMP = "tmp"  # osbuild's scratch directories in its store (`host…` build roots, store-server-…)


def _hold_builds_lock(store: Path) -> int | None:
    """The store's builds lock, taken shared; the descriptor is handed to the guard and so to
    osbuild, so the lock stays held as long as any of worker, guard or osbuild lives."""
    import fcntl

    try:
        fd = os.open(Path(store) / BUILDS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _mount_points() -> list[str]:
    """Mount points this process can see (`/proc/self/mountinfo`, octal escapes decoded)."""
    points = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            fields = line.split()
            if len(fields) > 4:
                points.append(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4]))
    except OSError:
        pass
    return points


def sweep_store_tmp(store: Path) -> list[str]:
    """Remove what stopped osbuilds left in the store's `tmp/`, when no build runs; returns the
    names removed.

    osbuild makes its scratch directories there (the `host…` build root, with /usr bind-mounted
    into it) and removes them as it exits normally; a cancel or timeout that had to go past
    SIGINT leaves them behind, and they pile up.  The store is shared by concurrent builds, so
    this only runs when the builds lock can be taken exclusively at once (no build of ours
    alive); anything with a mount point beneath it is left alone, never deleted through.
    """
    import fcntl

    tmp = Path(store) / STORE_TMP
    try:
        entries = list(tmp.iterdir())
    except OSError:
        return []
    if not entries:
        return []
    try:
        fd = os.open(Path(store) / BUILDS_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return []
    removed = []
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return []  # a build runs: the next one to end (or the recovery loop) sweeps
        mounts = _mount_points()
        for entry in entries:
            prefix = str(entry) + "/"
            if any(m == str(entry) or m.startswith(prefix) for m in mounts):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(entry.name)
    finally:
        os.close(fd)
    return removed


def _explain_exit(returncode: int, log_tail: str, failed_stage: str | None,
                  progress: Progress) -> str:
    if returncode == EXEC_FAILED:
        return f"osbuild could not be started (exit {EXEC_FAILED}); see the message above"
    if returncode == 2:
        return "osbuild rejected the manifest (exit 2: schema validation failed); see the messages above"
    if any(m in log_tail for m in ENOSPC_MARKERS):
        return "osbuild failed: no space left on device (the osbuild store or output directory is full)"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = str(-returncode)
        return f"osbuild was killed by signal {name}"
    where = failed_stage or progress.stage
    hint = (" (an input/output error on a disk image usually means the disk holding the osbuild "
            "store is full)" if LOOP_EIO_MARKER in log_tail else "")
    if where:
        pipeline = f" in pipeline {progress.pipeline}" if progress.pipeline else ""
        return f"osbuild failed (exit {returncode}): stage {where}{pipeline} failed{hint}"
    return f"osbuild failed (exit {returncode}){hint}"


def run_osbuild(manifest: dict, *, command: list[str], store: Path, output_dir: Path, log_path: Path,
                exports: Iterable[str], checkpoints: Iterable[str] = (),
                cache_max_size: str = "unlimited", timeout: float | None = None,
                should_cancel: Callable[[], bool] | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                min_free_bytes: int = MIN_FREE_BYTES, poll_interval: float = 0.25,
                env: dict[str, str] | None = None) -> BuildOutcome:
    """Build `manifest` with osbuild; never raises for build failures, returns why instead.

    `should_cancel` is polled every `poll_interval` seconds (the caller throttles any store access
    and uses the call as its heartbeat); `on_progress` is called when the pipeline or stage changes.
    The log at `log_path` is appended to while osbuild runs, so `compose/log` can show it live.
    """
    started = time.monotonic()
    output_dir = Path(output_dir)
    log_path = Path(log_path)
    exports = list(exports)
    checkpoints = list(checkpoints)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        Path(store).mkdir(parents=True, exist_ok=True)
        log = open(log_path, "ab", buffering=0)
    except OSError as exc:
        reason = (_disk_full_message(exc) if exc.errno in (errno.ENOSPC, errno.EDQUOT)
                  else f"cannot prepare the build directories: {exc}")
        return BuildOutcome(False, None, reason)

    log_full = False

    def write_log(data: bytes) -> None:
        """A full disk must not abort the build's bookkeeping: remember it and keep going."""
        nonlocal log_full
        try:
            log.write(data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log_full = True

    def note(line: str) -> None:
        write_log((line.rstrip("\n") + "\n").encode())

    with log:
        exe = shutil.which(command[0]) if command else None
        if not exe:
            reason = (f"osbuild is not installed: command {command[0] if command else '(empty)'!r} "
                      "was not found (install osbuild or set osbuild_command)")
            note(reason)
            return BuildOutcome(False, None, reason)
        for where in (Path(store), output_dir):
            free = _free_bytes(where)
            if free < min_free_bytes:
                reason = (f"not enough free disk space for a build: {free // (1024 * 1024)} MiB free "
                          f"on {where}, at least {min_free_bytes // (1024 * 1024)} MiB needed")
                note(reason)
                return BuildOutcome(False, None, reason)
        manifest_path = output_dir.parent / f".{output_dir.name}.manifest.json"
        try:
            manifest_path.write_text(json.dumps(manifest))
        except OSError as exc:
            reason = _disk_full_message(exc) if exc.errno == errno.ENOSPC else f"cannot write the manifest: {exc}"
            note(reason)
            return BuildOutcome(False, None, reason)

        builds_lock = _hold_builds_lock(Path(store))
        read_fd, write_fd = os.pipe()
        argv = build_command(command, manifest_path=manifest_path, store=Path(store),
                             output_dir=output_dir, exports=exports, checkpoints=checkpoints,
                             cache_max_size=cache_max_size, monitor_fd=write_fd)
        note("$ " + " ".join(argv))
        try:
            proc = subprocess.Popen(guarded(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,
                                    pass_fds=(write_fd,) if builds_lock is None else
                                    (write_fd, builds_lock),
                                    start_new_session=True, env=env)
        except OSError as exc:
            os.close(read_fd)
            os.close(write_fd)
            if builds_lock is not None:
                os.close(builds_lock)
            reason = f"cannot start osbuild ({argv[0]}): {exc.strerror or exc}"
            note(reason)
            return BuildOutcome(False, None, reason)
        os.close(write_fd)

        parser = MonitorParser()
        tail = bytearray()  # the last output, to recognise a full disk in osbuild's own words
        cancelled = timed_out = False
        last_progress: tuple | None = None
        sel = selectors.DefaultSelector()
        assert proc.stdout is not None
        os.set_blocking(proc.stdout.fileno(), False)
        os.set_blocking(read_fd, False)
        sel.register(proc.stdout.fileno(), selectors.EVENT_READ, "out")
        sel.register(read_fd, selectors.EVENT_READ, "monitor")
        open_streams = 2
        try:
            while open_streams:
                for key, _ in sel.select(timeout=poll_interval):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fd)
                        open_streams -= 1
                        continue
                    if key.data == "out":
                        write_log(data)
                        tail.extend(data)
                    else:
                        for record in parser.feed(data):
                            message = record.get("message")
                            if isinstance(message, str) and message:
                                chunk = message if message.endswith("\n") else message + "\n"
                                write_log(chunk.encode("utf-8", "replace"))
                                tail.extend(chunk.encode("utf-8", "replace"))
                    del tail[:-16384]
                snapshot = tuple(parser.progress.as_dict().values())
                if on_progress and snapshot != last_progress:
                    last_progress = snapshot
                    on_progress(parser.progress)
                # once both streams closed osbuild is exiting by itself: not stopped by a cancel
                if open_streams and should_cancel is not None and should_cancel():
                    cancelled = True
                    break
                if timeout is not None and time.monotonic() - started > timeout:
                    timed_out = True
                    break
        finally:
            sel.close()
            if not (cancelled or timed_out):
                # both streams closed: osbuild is exiting; give it a moment to do so by itself
                try:
                    proc.wait(timeout=KILL_GRACE)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None:
                _stop(proc)  # the guard also kills what osbuild left in its group
            os.close(read_fd)
            proc.stdout.close()
            try:
                manifest_path.unlink()
            except OSError:
                pass
        returncode = proc.wait()
        if builds_lock is not None:
            os.close(builds_lock)
        sweep_store_tmp(Path(store))
        duration = time.monotonic() - started
        if cancelled:
            reason = "the compose was cancelled; osbuild was stopped"
        elif timed_out:
            reason = f"the build took longer than build_timeout ({timeout:.0f} s); osbuild was stopped"
        elif returncode == 0:
            missing = [name for name in exports if not (output_dir / name).exists()]
            if missing:
                reason = f"osbuild succeeded but exported nothing for {', '.join(missing)}"
                note(reason)
                return BuildOutcome(False, 0, reason, progress=parser.progress, duration=duration)
            return BuildOutcome(True, 0, progress=parser.progress, duration=duration)
        else:
            reason = _explain_exit(returncode, tail.decode("utf-8", "replace"),
                                   parser.last_failed_stage, parser.progress)
            if log_full and "space" not in reason:
                reason += "; the disk holding the compose log is full"
        note(reason)
        return BuildOutcome(False, returncode, reason, cancelled=cancelled, timed_out=timed_out,
                            progress=parser.progress,
                            failed_stage=parser.last_failed_stage, duration=duration)


def _disk_full_message(exc: OSError) -> str:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return f"no space left on device{where}: free space in the state or cache directory"


def exported_files(output_dir: Path, exports: Iterable[str]) -> list[Path]:
    """Files osbuild exported, largest first (the image of an image pipeline is its largest file)."""
    files: list[Path] = []
    for name in exports:
        root = Path(output_dir) / name
        if root.is_file():
            files.append(root)
        elif root.is_dir():
            files.extend(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())
    return sorted(files, key=lambda p: p.stat().st_size, reverse=True)
