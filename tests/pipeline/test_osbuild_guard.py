"""The guard between a build worker and osbuild (`tasks/osbuild_guard.py`), with real processes.

osbuild is not installed here, so osbuild is played by `stand_in_osbuild.py` (a small Python script)
or by `python -c` one-liners.  The stand-in's `ignore_sigint` mode plays osbuild 191 hung after a
SIGINT: only SIGTERM (or SIGKILL) ends it.  What is checked: a `kill -9`'d worker leaves no osbuild
behind, cancel still works on such an osbuild, and the guard hands exit codes, deaths by signal,
the monitor fd and stdout/stderr through untouched.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from tasks.osbuild import KILL_GRACE, TERM_GRACE, guarded, run_osbuild
from tests.pipeline.test_osbuild import STAND_IN, _alive, manifest

PROJECT_DIR = Path(__file__).resolve().parents[2]
BOUND = KILL_GRACE + TERM_GRACE + 120  # the guard's escalation, and room for a loaded machine


def wait_for_file(path: Path, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def parent_of(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def wait_gone(pids: list[int], timeout: float = BOUND) -> list[int]:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def test_killed_worker_leaves_no_osbuild_even_one_deaf_to_sigint(tmp_path):
    """`kill -9` of the process running the build; its osbuild ignores SIGINT (osbuild 191's hang).
    The guard notices the worker's death and escalates: SIGINT, then SIGTERM, which ends it."""
    out = tmp_path / "out"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest("hang", ignore_sigint=True)))
    worker = subprocess.Popen([sys.executable, "-c", (
        "import json; from pathlib import Path; from tasks.osbuild import run_osbuild; "
        f"run_osbuild(json.loads(Path({str(tmp_path / 'manifest.json')!r}).read_text()), "
        f"command={STAND_IN!r}, store=Path({str(tmp_path / 'store')!r}), output_dir=Path({str(out)!r}), "
        f"log_path=Path({str(tmp_path / 'osbuild.log')!r}), exports=['image'], min_free_bytes=1)")],
        cwd=PROJECT_DIR)
    try:
        child = int(wait_for_file(out / "child.pid"))
        stand_in = int(wait_for_file(out / "stand_in.pid"))
        guard = parent_of(stand_in)
        assert "osbuild_guard.py" in Path(f"/proc/{guard}/cmdline").read_text()
        assert os.getpgid(stand_in) == stand_in != os.getpgid(guard)  # osbuild leads its own group
    finally:
        worker.kill()
        worker.wait()
    assert wait_gone([stand_in, child, guard]) == [], "the killed worker's osbuild outlived it"
    assert (out / "signals").read_text().split() == ["SIGINT", "SIGTERM"]


def test_cancel_stops_an_osbuild_deaf_to_sigint(tmp_path):
    seen: list[int] = []

    def cancel_once_started() -> bool:
        """Cancel once the stand-in runs its child: its SIGINT handler is installed by then."""
        pid_file = tmp_path / "out" / "child.pid"
        if not seen and pid_file.exists() and pid_file.read_text().strip():
            seen.append(int(pid_file.read_text()))
        return bool(seen)

    outcome = run_osbuild(manifest("hang", ignore_sigint=True), command=STAND_IN,
                          store=tmp_path / "store", output_dir=tmp_path / "out",
                          log_path=tmp_path / "osbuild.log", exports=["image"], min_free_bytes=1,
                          poll_interval=0.05, should_cancel=cancel_once_started)
    assert outcome.cancelled and outcome.returncode == -signal.SIGTERM, outcome
    assert outcome.reason == "the compose was cancelled; osbuild was stopped"
    assert (tmp_path / "out" / "signals").read_text().split() == ["SIGINT", "SIGTERM"]
    assert wait_gone(seen) == []


def run_guarded(code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(guarded([sys.executable, "-c", code]), capture_output=True, timeout=60, **kw)


def test_exit_codes_and_deaths_by_signal_pass_through():
    for code in (0, 1, 2, 3, 255):
        assert run_guarded(f"import sys; sys.exit({code})").returncode == code
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGSEGV):
        done = run_guarded(f"import os; os.kill(os.getpid(), {int(sig)})")
        assert done.returncode == -sig, (sig, done.stderr)


def test_monitor_fd_and_output_pass_through_untouched(tmp_path):
    read_fd, write_fd = os.pipe()
    records = b"\x1e" + json.dumps({"message": "Starting pipeline os"}).encode() + b"\n"
    code = (f"import os, sys; os.write({write_fd}, {records!r}); "
            "sys.stdout.buffer.write(bytes(range(256))); sys.stderr.buffer.write(b'no newline'); "
            "sys.stdout.flush(); "
            "print(os.getpid(), os.getppid(), os.getpgid(0), os.getsid(0), file=open('ids', 'w'))")
    proc = subprocess.Popen(guarded([sys.executable, "-c", code]), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, pass_fds=(write_fd,), cwd=tmp_path,
                            start_new_session=True)
    os.close(write_fd)
    out, err = proc.communicate(timeout=60)
    with os.fdopen(read_fd, "rb") as monitor:
        assert monitor.read() == records
    assert proc.returncode == 0
    assert out == bytes(range(256)) and err == b"no newline"
    pid, ppid, pgid, sid = map(int, (tmp_path / "ids").read_text().split())
    assert ppid == proc.pid  # under the guard…
    assert pgid == pid != proc.pid  # …but leading its own process group, in the guard's session
    assert sid == proc.pid  # the guard leads the session (and its own group) the runner starts


def test_guard_whose_worker_is_gone_starts_nothing(tmp_path):
    """The worker died between starting the guard and the guard's parent-death signal being set:
    the guard sees it has another parent now and does not start osbuild."""
    marker = tmp_path / "ran"
    argv = guarded([sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    argv[argv.index("--parent") + 1] = "1"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 127 and "osbuild not started" in done.stderr
    assert not marker.exists()


def test_osbuild_that_cannot_be_executed_is_named(tmp_path):
    """On PATH and executable, but exec fails (no interpreter line): the guard's own message ends
    up in the log and its exit status 127 becomes the reason."""
    fake = tmp_path / "osbuild"
    fake.write_text("not a program\n")
    fake.chmod(0o755)
    outcome = run_osbuild(manifest(), command=[str(fake)], store=tmp_path / "store",
                          output_dir=tmp_path / "out", log_path=tmp_path / "osbuild.log",
                          exports=["image"], min_free_bytes=1)
    assert not outcome.ok and outcome.returncode == 127
    assert outcome.reason.startswith("osbuild could not be started")
    assert "osbuild guard: cannot run" in (tmp_path / "osbuild.log").read_text()


def test_recovery_stops_builds_of_composes_that_are_over(make_env):
    """The recovery loop stops an osbuild whose compose is FAILED or deleted (its worker hung, the
    reaper gave up on it), and leaves a RUNNING compose's build and builds outside this
    installation's artifacts directory alone."""
    import uuid

    from tasks.recovery import Recovery

    env = make_env("redis://127.0.0.1:1/0")  # no broker needed for this part of the loop
    store = env.store
    composes = {}
    for name in ("running", "failed", "deleted"):
        compose = store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                               distro="test-distro", arch="x86_64")
        store.mark_running(compose.id)
        composes[name] = store.compose_dir(compose.id) / "osbuild-output"
    composes["elsewhere"] = env.base / "elsewhere" / str(uuid.uuid4()) / "osbuild-output"
    outcomes: dict[str, object] = {}
    finish = threading.Event()

    def build(name: str) -> None:
        outcomes[name] = run_osbuild(manifest("hang"), command=STAND_IN, store=env.base / "store",
                                     output_dir=composes[name], log_path=env.base / f"{name}.log",
                                     exports=["image"], min_free_bytes=1, poll_interval=0.05,
                                     should_cancel=finish.is_set)

    threads = {name: threading.Thread(target=build, args=(name,)) for name in composes}
    for thread in threads.values():
        thread.start()
    try:
        children = {name: int(wait_for_file(out / "child.pid")) for name, out in composes.items()}
        for name in ("failed", "deleted"):
            store.mark_failed(composes[name].parent.name, "its worker stopped responding")
        store.delete(composes["deleted"].parent.name)  # only an ended compose can be deleted
        recovery = Recovery(env.config)
        assert recovery.stop_stray_builds() == 2
        for name in ("failed", "deleted"):
            threads[name].join(BOUND)
            outcome = outcomes[name]
            assert not outcome.ok and not outcome.cancelled, outcome  # stopped from outside
            assert outcome.returncode == -signal.SIGINT  # the first step was enough for it
        assert wait_gone([children["failed"], children["deleted"]]) == []
        assert recovery.stop_stray_builds() == 0
        assert threads["running"].is_alive() and threads["elsewhere"].is_alive()
        assert _alive(children["running"]) and _alive(children["elsewhere"])
    finally:
        finish.set()
        for thread in threads.values():
            thread.join(BOUND)
    assert outcomes["running"].cancelled and outcomes["elsewhere"].cancelled


def test_what_osbuild_leaves_mounted_does_not_reach_the_host(tmp_path):
    """As root the guard runs osbuild in a private mount namespace: a mount left behind (osbuild
    SIGTERMed or SIGKILLed mid-build leaves its build root's) goes with osbuild's last process."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("mounting needs root (so does osbuild)")
    target = tmp_path / "left-mounted"
    target.mkdir()
    done = subprocess.run(guarded(["sh", "-c", f"mount -t tmpfs osbuild-leftover {target} && "
                                   f"grep -c {target} /proc/mounts"]),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "1", done  # mounted where osbuild runs
    assert str(target) not in Path("/proc/mounts").read_text()  # never on the host
