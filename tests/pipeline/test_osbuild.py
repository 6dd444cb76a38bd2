"""The osbuild runner, without a broker.

osbuild is not installed on these machines, so these tests run `stand_in_osbuild.py` in its place: a
small script that takes osbuild's command line and writes JSON-seq monitor records the way osbuild's
JSONSeqMonitor does. What is tested is our side: command line, progress parsing, live log, process
group handling, and the failure reasons.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from tasks.osbuild import MonitorParser, build_command, exported_files, run_osbuild

from .conftest import snapshot, wait_gone

STAND_IN = [sys.executable, str(Path(__file__).with_name("stand_in_osbuild.py"))]


def manifest(mode: str = "ok", **behaviour) -> dict:
    return {
        "version": "2",
        "pipelines": [
            {"name": "build", "stages": [{"type": "org.osbuild.rpm"}, {"type": "org.osbuild.selinux"}]},
            {"name": "os", "stages": [{"type": "org.osbuild.rpm"}, {"type": "org.osbuild.locale"},
                                      {"type": "org.osbuild.fstab"}]},
            {"name": "image", "stages": [{"type": "org.osbuild.truncate"}]},
        ],
        "sources": {},
        "stand_in": {"mode": mode, **behaviour},
    }


def run(tmp_path: Path, m: dict, **kw):
    return run_osbuild(m, command=kw.pop("command", STAND_IN), store=tmp_path / "store",
                       output_dir=tmp_path / "out", log_path=tmp_path / "logs" / "osbuild.log",
                       exports=kw.pop("exports", ["image"]), checkpoints=["build", "os"],
                       min_free_bytes=kw.pop("min_free_bytes", 1), poll_interval=0.05, **kw)


def test_command_line_has_store_output_exports_checkpoints_and_monitor(tmp_path):
    argv = build_command(["python3", "-m", "osbuild", "--libdir", "/src"], manifest_path=tmp_path / "m.json",
                         store=Path("/s"), output_dir=Path("/o"), exports=["image"],
                         checkpoints=["build", "os"], cache_max_size="unlimited", monitor_fd=7)
    assert argv[:5] == ["python3", "-m", "osbuild", "--libdir", "/src"]
    joined = " ".join(argv)
    for part in ("--store /s", "--output-directory /o", "--export image", "--checkpoint build",
                 "--checkpoint os", "--cache-max-size unlimited", "--monitor JSONSeqMonitor",
                 "--monitor-fd 7"):
        assert part in joined
    assert argv[-1] == str(tmp_path / "m.json")


def test_monitor_parser_tracks_pipeline_and_stage_across_split_records():
    p = MonitorParser()
    rec1 = {"message": "Starting pipeline os", "context": {"id": "c1", "origin": "org.osbuild",
            "pipeline": {"name": "os", "id": "p", "stage": {"name": "org.osbuild.rpm", "id": "s"}}},
            "progress": {"name": "pipelines/sources", "total": 3, "done": 1,
                         "progress": {"name": "stages", "total": 4, "done": 2}}}
    rec2 = {"message": "again", "context": {"id": "c1"},
            "progress": {"name": "pipelines/sources", "total": 3, "done": 1,
                         "progress": {"name": "stages", "total": 4, "done": 3}},
            "result": {"name": "org.osbuild.rpm", "success": False}}
    data = ("\x1e" + json.dumps(rec1) + "\n\x1e" + json.dumps(rec2) + "\n").encode()
    got = []
    for i in range(0, len(data), 7):  # arbitrary pipe chunking
        got += p.feed(data[i:i + 7])
    assert [r["message"] for r in got] == ["Starting pipeline os", "again"]
    assert p.progress.as_dict() == {"pipeline": "os", "stage": "org.osbuild.rpm", "pipeline_n": 2,
                                    "pipeline_m": 3, "stage_n": 4, "stage_m": 4}
    assert p.last_failed_stage == "org.osbuild.rpm"


def test_successful_build_exports_image_and_streams_log(tmp_path):
    seen = []
    outcome = run(tmp_path, manifest(size=2000, stage_sleep=0.15), on_progress=lambda p: seen.append(p.as_dict()))
    assert outcome.ok, outcome.reason
    files = exported_files(tmp_path / "out", ["image"])
    assert [f.name for f in files] == ["disk.img"] and files[0].stat().st_size == 10000
    log = (tmp_path / "logs" / "osbuild.log").read_text()
    assert "--export image" in log and "Finished module org.osbuild.truncate" in log
    assert {d["pipeline"] for d in seen} >= {"build", "os", "image"}
    assert any(d["pipeline"] == "os" and d["stage_m"] == 3 and d["pipeline_n"] == 2 for d in seen)
    # the manifest file handed to osbuild is not left behind
    assert not list(tmp_path.glob(".*.manifest.json"))


def test_stage_failure_puts_reason_at_end_of_log(tmp_path):
    outcome = run(tmp_path, manifest("fail"))
    assert not outcome.ok and outcome.returncode == 1
    assert "stage org.osbuild.truncate in pipeline image failed" in outcome.reason
    log = (tmp_path / "logs" / "osbuild.log").read_text()
    assert log.splitlines()[-1] == outcome.reason
    # osbuild's stdout and its monitor records interleave in any order: both are in the log
    assert "Error: stage org.osbuild.truncate failed" in log and "Traceback: something broke" in log


def test_schema_error_exit_2(tmp_path):
    outcome = run(tmp_path, manifest("schema"))
    assert not outcome.ok and outcome.returncode == 2
    assert "schema validation failed" in outcome.reason
    log = (tmp_path / "logs" / "osbuild.log").read_text()
    assert "'stages' is a required property" in log
    assert log.rstrip().endswith(outcome.reason)


def test_disk_full_reported_in_plain_words(tmp_path):
    outcome = run(tmp_path, manifest("enospc"))
    assert not outcome.ok and "no space left on device" in outcome.reason
    # and before starting: less free space than required is refused up front
    outcome = run(tmp_path, manifest(), min_free_bytes=1 << 62)
    assert not outcome.ok and outcome.returncode is None
    assert outcome.reason.startswith("not enough free disk space")


def test_missing_osbuild_is_a_clear_failure(tmp_path):
    outcome = run(tmp_path, manifest(), command=["osbuild-does-not-exist-here"])
    assert not outcome.ok and "osbuild is not installed" in outcome.reason
    assert "osbuild_command" in (tmp_path / "logs" / "osbuild.log").read_text()


def test_export_missing_after_success_is_a_failure(tmp_path):
    outcome = run(tmp_path, manifest(), exports=[])
    assert outcome.ok  # nothing asked, nothing missing
    m = manifest()
    outcome = run_osbuild(m, command=[sys.executable, "-c", "import sys; sys.exit(0)"],
                          store=tmp_path / "store", output_dir=tmp_path / "out2",
                          log_path=tmp_path / "l.log", exports=["image"], min_free_bytes=1)
    assert not outcome.ok and "exported nothing for image" in outcome.reason


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_cancel_and_timeout_kill_the_whole_process_group(tmp_path, how):
    """Cancel once the stand-in runs its child (an event: its pid file), or a timeout that may come
    before or after that: either way nothing of the build's group is left."""
    pid_file = tmp_path / "out" / "child.pid"

    def started() -> bool:
        return pid_file.exists() and bool(pid_file.read_text().strip())

    kw = {"should_cancel": started} if how == "cancel" else {"timeout": 1.5}
    outcome = run(tmp_path, manifest("hang"), **kw)
    assert not outcome.ok
    assert outcome.cancelled if how == "cancel" else outcome.timed_out
    if started():  # a timeout may come before the stand-in started its child: then there is none
        child = snapshot([int(pid_file.read_text())])
        assert not wait_gone(child), "a process of the build's group outlived the cancel"
    log = (tmp_path / "logs" / "osbuild.log").read_text()
    assert log.rstrip().endswith(outcome.reason)
    assert ("cancelled" if how == "cancel" else "build_timeout") in outcome.reason


def test_process_that_ignores_sigterm_is_killed(tmp_path):
    script = ("import signal, time, sys; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
              "signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "print('ignoring INT and TERM', flush=True); time.sleep(60)")
    log = tmp_path / "l.log"

    def deaf() -> bool:  # cancel once the command said it ignores both signals, not on a timer
        return log.exists() and "ignoring INT and TERM" in log.read_text().splitlines()

    outcome = run_osbuild(manifest(), command=[sys.executable, "-c", script], store=tmp_path / "s",
                          output_dir=tmp_path / "o", log_path=log, exports=["image"],
                          should_cancel=deaf, min_free_bytes=1, poll_interval=0.05)
    assert outcome.cancelled and outcome.returncode == -signal.SIGKILL
