"""The osbuild runner against real osbuild: the failure reasons and cancel, on osbuild's own output.

`test_osbuild.py` checks our side with a stand-in that imitates osbuild's monitor stream; these
check that real osbuild's stream, exit codes and process tree give the same results.  They skip
(saying why) where osbuild is not installed: see `tests.conftest.real_osbuild`.  The manifests are
tiny hand-made ones on the host build root (no RPMs needed): one stage that fails, one manifest
osbuild rejects, and one whose source download never ends, to cancel it mid-download.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import threading
import time
import uuid
from pathlib import Path

import pytest

from tasks.osbuild import run_osbuild
from tests.conftest import real_osbuild


def tree_manifest(*stages: dict, sources: dict | None = None) -> dict:
    return {"version": "2", "pipelines": [{"name": "tree", "stages": list(stages)}],
            "sources": sources or {}}


def build(tmp_path: Path, manifest: dict, **kw):
    return run_osbuild(manifest, command=real_osbuild(), store=tmp_path / "store",
                       output_dir=tmp_path / "out", log_path=tmp_path / "osbuild.log",
                       exports=["tree"], checkpoints=["tree"], min_free_bytes=1,
                       poll_interval=0.1, **kw)


def test_real_build_of_a_tiny_tree_is_exported(tmp_path):
    outcome = build(tmp_path, tree_manifest({"type": "org.osbuild.mkdir",
                                             "options": {"paths": [{"path": "/made"}]}}))
    assert outcome.ok, (tmp_path / "osbuild.log").read_text()[-3000:]
    assert (tmp_path / "out" / "tree" / "made").is_dir()
    assert outcome.progress.pipeline == "tree"


def test_real_stage_failure_names_the_stage_and_pipeline(tmp_path):
    outcome = build(tmp_path, tree_manifest({"type": "org.osbuild.chmod", "options": {
        "items": {"/does/not/exist": {"mode": "0755"}}}}))
    log = (tmp_path / "osbuild.log").read_text()
    assert not outcome.ok and outcome.returncode == 1, log[-3000:]
    assert outcome.reason == "osbuild failed (exit 1): stage org.osbuild.chmod in pipeline tree failed"
    assert log.rstrip().endswith(outcome.reason)


def test_real_schema_error_is_exit_2_with_osbuild_messages_above(tmp_path):
    outcome = build(tmp_path, tree_manifest({"type": "org.osbuild.mkdir",
                                             "options": {"paths": "not a list"}}))
    log = (tmp_path / "osbuild.log").read_text()
    assert outcome.returncode == 2, log[-3000:]
    assert "rejected the manifest" in outcome.reason
    assert "not a list" in log  # osbuild's validation message names the bad value


class Trickle(http.server.BaseHTTPRequestHandler):
    """Answers every GET with a large body sent one byte per 100 ms: a download that never ends."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(10 * 1024 * 1024))
        self.end_headers()
        try:
            for _ in range(3000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args) -> None:
        pass


def processes() -> dict[int, tuple[int, str, str]]:
    """pid → (parent pid, start time, command line) of every process now."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(pid)] = (int(fields[1]), fields[19], cmdline)
    return found


def tree_of(token: str) -> dict[int, str]:
    """The processes whose command line holds `token`, and all their descendants: pid → start time."""
    procs = processes()
    tree = {pid: start for pid, (_, start, cmd) in procs.items() if token in cmd and pid != os.getpid()}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, start, _) in procs.items():
            if ppid in tree and pid not in tree:
                tree[pid] = start
                grew = True
    return tree


def still_alive(tree: dict[int, str]) -> list[str]:
    """Those of `tree` that still run.  A zombie has exited: orphans are reparented to pid 1,
    which on some machines reaps them only after a while."""
    procs = processes()
    out = []
    for pid, start in tree.items():
        if pid in procs and procs[pid][1] == start:
            try:
                state = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            if state[state.rindex(")") + 2] not in "ZX":
                out.append(f"{pid}: {procs[pid][2][:200]}")
    return out


def test_real_cancel_mid_download_stops_osbuild_and_its_children(tmp_path):
    real_osbuild()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = uuid.uuid4().hex  # in osbuild's command line (the store path)
    checksum = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    url = f"http://127.0.0.1:{server.server_address[1]}/{token}/never-ends.rpm"
    manifest = tree_manifest({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/x"}]}},
                             sources={"org.osbuild.curl": {"items": {checksum: url}}})
    log = tmp_path / "osbuild.log"
    downloading = threading.Event()
    seen_at: list[float] = []
    tree: dict[int, str] = {}

    def should_cancel() -> bool:
        """Cancel a second after osbuild starts curl, noting its process tree then."""
        if not seen_at:
            procs = processes()
            if any(procs[pid][2].startswith("curl ") for pid in tree_of(token) if pid in procs):
                downloading.set()
                seen_at.append(time.monotonic())
        if seen_at and time.monotonic() - seen_at[0] > 1.0:
            tree.update(tree_of(token))
            return True
        return False

    store = tmp_path / token
    try:
        outcome = run_osbuild(manifest, command=real_osbuild(), store=store,
                              output_dir=tmp_path / "out", log_path=log, exports=["tree"],
                              min_free_bytes=1, poll_interval=0.1, timeout=600,
                              should_cancel=should_cancel)
    finally:
        server.shutdown()
    assert downloading.is_set(), "osbuild never started the download: " + log.read_text()[-2000:]
    assert outcome.cancelled and not outcome.ok, log.read_text()[-2000:]
    assert outcome.reason == "the compose was cancelled; osbuild was stopped"
    assert len(tree) >= 2, tree  # osbuild and at least its curl
    assert still_alive(tree) == []
    # the store is not left locked or half-written: the next build on it works
    outcome = run_osbuild(tree_manifest({"type": "org.osbuild.mkdir",
                                         "options": {"paths": [{"path": "/y"}]}}),
                          command=real_osbuild(), store=store, output_dir=tmp_path / "out2",
                          log_path=log, exports=["tree"], min_free_bytes=1)
    assert outcome.ok, log.read_text()[-2000:]


def test_real_build_timeout_stops_osbuild_and_its_children(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    token = uuid.uuid4().hex
    url = f"http://127.0.0.1:{server.server_address[1]}/{token}/never-ends.rpm"
    checksum = "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    manifest = tree_manifest({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/x"}]}},
                             sources={"org.osbuild.curl": {"items": {checksum: url}}})
    tree: dict[int, str] = {}

    def watch() -> bool:  # never cancels; notes the process tree while osbuild runs
        tree.update(tree_of(token))
        return False

    try:
        outcome = run_osbuild(manifest, command=real_osbuild(), store=tmp_path / token,
                              output_dir=tmp_path / "out", log_path=tmp_path / "osbuild.log",
                              exports=["tree"], min_free_bytes=1, poll_interval=0.2, timeout=4,
                              should_cancel=watch)
    finally:
        server.shutdown()
    assert outcome.timed_out and not outcome.ok
    assert "build_timeout (4 s)" in outcome.reason
    assert len(tree) >= 2, tree  # osbuild and at least its curl were seen
    assert still_alive(tree) == []


def distro_manifest(tmp_path: Path, image_type: str) -> tuple[dict, list[str]]:
    """The test distro's manifest of `image_type` for bash from the local test repository."""
    import distros
    from depsolve import PackageSet, depsolve
    from tests.depsolve.repos import built_repos

    arch = os.uname().machine
    repos = [{"id": "baseos", "baseurl": built_repos()["baseos"].as_uri() + "/", "check_gpg": False}]
    it = distros.get_distro("test-distro-1").image_type(arch, image_type)
    blueprint = {"packages": [{"name": "bash", "version": "*"}]}
    packages = {pipeline: depsolve([PackageSet(**s) for s in chain], repos, arch=arch,
                                   releasever="1", cache_dir=tmp_path / "rpmmd")[-1]
                for pipeline, chain in it.package_sets(blueprint).items()}
    return it.manifest(blueprint, packages, repos, None, seed=1), list(it.exports)


@pytest.mark.parametrize("stage", ["org.osbuild.rpm", "org.osbuild.copy"])
def test_real_cancel_mid_stage_leaves_no_mount_or_loop_device(tmp_path, stage):
    """A cancelled build must not leave its build root's bind mounts or the disk image's loop
    device behind on the host (osbuild killed by SIGTERM does: it gets SIGINT first)."""
    real_osbuild("qcow2")
    manifest, exports = distro_manifest(tmp_path, "qcow2")
    store = tmp_path / "store"
    started: list[float] = []

    def on_progress(p) -> None:
        if p.stage == stage and not started:
            started.append(time.monotonic())

    outcome = run_osbuild(manifest, command=real_osbuild("qcow2"), store=store,
                          output_dir=tmp_path / "out", log_path=tmp_path / "osbuild.log",
                          exports=exports, checkpoints=["os"], min_free_bytes=1,
                          poll_interval=0.05, on_progress=on_progress,
                          should_cancel=lambda: bool(started) and time.monotonic() - started[0] > 0.05)
    log = (tmp_path / "osbuild.log").read_text()
    assert started and outcome.cancelled, log[-3000:]
    assert outcome.progress.stage == stage
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if str(store) in line]
    assert mounts == [], "osbuild's mounts outlived the cancelled build"
    import subprocess

    loops = subprocess.run(["losetup", "--all"], capture_output=True, text=True).stdout
    assert str(store) not in loops, loops


def test_real_worker_killed_mid_stage_leaves_no_mount(tmp_path):
    """`kill -9` of the process running the build: osbuild's guard gets the parent-death signal and
    stops osbuild as cancel does; osbuild unwinds, nothing of it stays mounted or running.

    osbuild 191 alone may not exit after its SIGINT: one that lands while it starts one of its API
    threads (`osbuild.api.BaseAPI.__enter__` waiting on its barrier) leaves that thread waiting
    forever and the interpreter's exit waits for it.  The guard's SIGTERM 5 s later ends that, so
    the bound here is the guard's whole escalation.
    """
    import json
    import signal
    import subprocess
    import sys

    from tasks.osbuild import KILL_GRACE, TERM_GRACE

    command = real_osbuild("qcow2")
    manifest, exports = distro_manifest(tmp_path, "qcow2")
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    store, log = tmp_path / "store", tmp_path / "osbuild.log"
    worker = subprocess.Popen([sys.executable, "-c", (
        "import json, sys; from pathlib import Path; from tasks.osbuild import run_osbuild; "
        f"run_osbuild(json.loads(Path({str(tmp_path / 'manifest.json')!r}).read_text()), "
        f"command={command!r}, store=Path({str(store)!r}), output_dir=Path({str(tmp_path / 'out')!r}), "
        f"log_path=Path({str(log)!r}), exports={exports!r}, checkpoints=['os'], min_free_bytes=1)")],
        cwd=Path(__file__).resolve().parents[2])
    deadline = time.monotonic() + 300
    while not (log.exists() and "Starting module org.osbuild.copy" in log.read_text()):
        assert worker.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)
    osbuild = tree_of(str(store))  # the guard, osbuild and its helpers
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    deadline = time.monotonic() + KILL_GRACE + TERM_GRACE + 120  # room for a loaded machine
    while still_alive(osbuild) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = still_alive(osbuild)
    try:
        assert survivors == [], "the killed worker's osbuild outlived its guard's escalation"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if str(store) in line]
        assert mounts == [], "osbuild's mounts outlived its killed worker"
    finally:
        for entry in survivors:
            os.kill(int(entry.split(":")[0]), signal.SIGKILL)


@pytest.mark.parametrize("size", ["400K", "2M"])
def test_real_full_disk_is_named_in_the_reason(tmp_path, size):
    """The store on a tiny tmpfs: 400K fills up in the rpm stage (rpm's SQLite says "database or
    disk is full"), 2M while mkfs writes the disk image through its loop device (EIO)."""
    import subprocess

    manifest, exports = distro_manifest(tmp_path, "qcow2")
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(small)], check=True)
    try:
        outcome = run_osbuild(manifest, command=real_osbuild("qcow2"), store=small / "store",
                              output_dir=small / "out", log_path=tmp_path / "osbuild.log",
                              exports=exports, checkpoints=["os"], min_free_bytes=1)
    finally:
        subprocess.run(["umount", "--lazy", str(small)], check=True)
    log = (tmp_path / "osbuild.log").read_text()
    assert not outcome.ok and outcome.returncode == 1, log[-3000:]
    assert "full" in outcome.reason, log[-3000:]
    assert log.rstrip().endswith(outcome.reason)


@pytest.fixture(autouse=True)
def _needs_osbuild() -> None:
    real_osbuild()
