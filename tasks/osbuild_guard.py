"""A small process between a build worker and osbuild that outlives the worker long enough to stop
osbuild properly.

    python -I -S tasks/osbuild_guard.py [--parent PID] -- osbuild --store ... manifest.json

Why it exists: a killed osbuild must get SIGINT first, so it unwinds and unmounts its build root
(SIGTERM or SIGKILL leave the host's bind mounts and a devtmpfs behind).  But osbuild 191 can hang
for good when SIGINT lands while it starts one of its API threads; only SIGTERM/SIGKILL end it then.
The runner escalates on cancel and timeout, but when the worker itself is killed (`kill -9`, OOM)
nobody is left to escalate, and a kernel parent-death signal is one signal, not a sequence.  This
guard gets the parent-death signal (SIGTERM) instead and runs the whole sequence against osbuild's
process group: SIGINT, up to `KILL_GRACE` s, SIGTERM, up to `TERM_GRACE` s, SIGKILL.  The runner
stops a build the same way: one SIGTERM to the guard.

What the guard leaves alone: osbuild's stdin/stdout/stderr and the `--monitor-fd` descriptor are
inherited as they are (the guard never reads or writes them), and it exits with osbuild's status —
the same exit code, or killed by the same signal — because the runner tells exit 1 (a stage failed)
from exit 2 (manifest rejected) from a signal.  osbuild leads its own process group (in the guard's
session, which the runner starts without a terminal), so signals to that group reach its stages and
helpers and never the guard, and (as root) it runs in a private mount namespace, so whatever it
leaves mounted disappears with its last process.

It imports only the standard library's smallest modules (run with `-I -S` it starts in ~10-16 ms; osbuild
itself needs ~0.4 s of CPU to start), so it also runs from a plain file path, outside the project.
"""

from __future__ import annotations

import os
import sys
import time

try:  # the signal module without its enum wrappers, which cost half of the guard's start-up
    import _signal as signal
except ImportError:  # not CPython
    import signal  # type: ignore[no-redef]

KILL_GRACE = 5.0  # seconds osbuild gets after SIGINT to unwind (unmount, detach loop devices)
TERM_GRACE = 2.0  # then seconds between SIGTERM and SIGKILL of osbuild's process group
EXEC_FAILED = 127  # exit status when osbuild could not be started at all (as a shell says it)
PR_SET_PDEATHSIG = 1
CLONE_NEWNS = 0x00020000
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
WATCHED = {signal.SIGTERM, signal.SIGCHLD}  # handled synchronously (sigwaitinfo), never by a handler


def _libc():  # noqa: ANN202 - ctypes.CDLL, imported only when needed
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _set_parent_death_signal(sig: int) -> bool:
    try:
        return _libc().prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _private_mount_namespace() -> str:
    """Give osbuild a mount namespace of its own, not propagating back to the host's.

    Its mounts (host bind mounts of the build root, the devtmpfs under /run/osbuild, image
    filesystems on loop devices) then live only there, and the kernel unmounts them all when the
    last process in it ends — also when SIGTERM or SIGKILL cut osbuild's own cleanup short, as the
    guard's escalation must when osbuild hangs after SIGINT.  Files osbuild writes (store, output
    directory) are on the host's filesystems as before.  Returns "" or why it could not.
    """
    import ctypes

    try:
        libc = _libc()
        if libc.unshare(CLONE_NEWNS) != 0:
            return os.strerror(ctypes.get_errno())
        if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
            return "cannot make / private: " + os.strerror(ctypes.get_errno())
    except (OSError, AttributeError) as exc:
        return str(exc)
    return ""


def _parse(argv: list[str]) -> tuple[int | None, list[str]]:
    parent = None
    if "--" not in argv:
        raise SystemExit("usage: osbuild_guard [--parent PID] -- COMMAND [ARG...]")
    split = argv.index("--")
    options, command = argv[:split], argv[split + 1:]
    if options[:1] == ["--parent"] and len(options) == 2:
        parent = int(options[1])
    elif options:
        raise SystemExit(f"osbuild_guard: unknown options {options}")
    if not command:
        raise SystemExit("osbuild_guard: no command after --")
    return parent, command


def _exec_osbuild(command: list[str], guard: int, mask: set) -> None:
    """In the forked child: own process group, default signal handling, then exec; never returns."""
    try:
        os.setpgid(0, 0)  # the guard does the same from its side: whoever comes first
        why = _private_mount_namespace()
        if why and os.geteuid() == 0:  # without root osbuild cannot mount anything anyway
            os.write(2, f"osbuild guard: osbuild shares the host's mounts ({why})\n".encode())
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        # if the guard itself is SIGKILLed, osbuild still gets the one signal it unwinds on
        _set_parent_death_signal(signal.SIGINT)
        if os.getppid() != guard:
            os._exit(EXEC_FAILED)
        os.execvp(command[0], command)
    except OSError as exc:
        os.write(2, f"osbuild guard: cannot run {command[0]}: {exc.strerror or exc}\n".encode())
    finally:
        os._exit(EXEC_FAILED)


def _exited(pid: int, timeout: float | None) -> bool:
    """Wait until `pid` has exited, without reaping it (its pid keeps naming its process group).

    SIGCHLD is blocked, so it stays pending until taken here; a SIGTERM that arrives meanwhile stays
    pending too and is ignored (the guard is stopping osbuild already)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if deadline is None:
            signal.sigwaitinfo({signal.SIGCHLD})
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        signal.sigtimedwait({signal.SIGCHLD}, remaining)
    return True


def _escalate(pid: int) -> None:
    """Stop osbuild's group as Ctrl-C would, harder each time it does not stop."""
    for sig, grace in ((signal.SIGINT, KILL_GRACE), (signal.SIGTERM, TERM_GRACE), (signal.SIGKILL, None)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        if _exited(pid, grace):
            return
    _exited(pid, None)


def _exit_like(status: int) -> None:
    """End the guard as osbuild ended: the same exit code, or death by the same signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # osbuild's core, not the guard's
        except (ImportError, OSError, ValueError):
            pass
        if sig != signal.SIGKILL:  # whose handling cannot be changed
            try:
                signal.signal(sig, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {sig})
            except (OSError, ValueError):
                pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)  # a signal whose default is not to terminate
    os._exit(os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    parent, command = _parse(argv)
    # a Ctrl-C on a terminal reaches osbuild's own group; the guard only acts on SIGTERM
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED)
    if parent is not None:
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent:
            sys.stderr.write("osbuild guard: the worker is gone already; osbuild not started\n")
            os._exit(EXEC_FAILED)
    guard = os.getpid()
    pid = os.fork()
    if pid == 0:
        _exec_osbuild(command, guard, mask)
    try:  # so that a SIGTERM taken right away already finds osbuild's group
        os.setpgid(pid, pid)
    except OSError:  # the child did it and exec'd already
        pass
    # checked before each wait: a SIGCHLD that came in between is pending and ends the wait at once
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        if signal.sigwaitinfo(WATCHED).si_signo == signal.SIGTERM:
            _escalate(pid)
            break
    # osbuild is a zombie now, so its pid still names its group: helpers it left there go too
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    _, status = os.waitpid(pid, 0)
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv[1:])
