#!/usr/bin/env python3
"""A stand-in for osbuild, used because osbuild is not installed on the test machines.

It accepts osbuild's command line (the options celery-composer passes), writes RFC 7464 JSON-seq
records like osbuild's JSONSeqMonitor to `--monitor-fd`, and behaves as the manifest's `stand_in`
object says: {"mode": "ok" | "fail" | "schema" | "hang" | "enospc", "stage_sleep": seconds,
"wait_for": path}; with "wait_for" it waits (before its last stage ends) until that path exists.
"hang" starts a child process in its group and sleeps, for cancel/timeout tests, with a scratch
directory `<store>/tmp/host…` as osbuild's build root would leave on a hard stop; the child's pid is
written to `<output-directory>/child.pid`, its own to `stand_in.pid`.  With "ignore_sigint": true it
behaves as osbuild 191 hung after a SIGINT (see tasks/osbuild_guard.py): SIGINT does not stop it,
SIGTERM does; each signal's name is appended to `<output-directory>/signals` as it arrives.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--output-directory", required=True)
    p.add_argument("--export", action="append", default=[])
    p.add_argument("--checkpoint", action="append", default=[])
    p.add_argument("--cache-max-size")
    p.add_argument("--monitor")
    p.add_argument("--monitor-fd", type=int)
    p.add_argument("manifest")
    args = p.parse_args()
    manifest = json.load(open(args.manifest))
    behaviour = manifest.get("stand_in", {})
    mode = behaviour.get("mode", "ok")
    stage_sleep = float(behaviour.get("stage_sleep", 0))
    mon = os.fdopen(args.monitor_fd, "w", buffering=1)
    if behaviour.get("ignore_sigint"):
        def noted(signum, frame):
            with open(os.path.join(args.output_directory, "signals"), "a") as fh:
                fh.write(signal.Signals(signum).name + "\n")
            if signum == signal.SIGTERM:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)

        signal.signal(signal.SIGINT, noted)
        signal.signal(signal.SIGTERM, noted)
    print(f"stand-in osbuild: store={args.store} exports={args.export}", flush=True)

    if mode == "schema":
        print(json.dumps([{"path": ["pipelines", 0], "message": "'stages' is a required property"}]))
        return 2

    pipelines = manifest.get("pipelines", [])
    seen = set()

    def record(message, pipeline, stage, done_p, done_s, total_s, result=None):
        ctx_key = (pipeline["name"], stage)
        ctx = {"id": f"{pipeline['name']}/{stage}"}
        if ctx_key not in seen:
            seen.add(ctx_key)
            ctx.update({"origin": "org.osbuild",
                        "pipeline": {"name": pipeline["name"], "id": "x",
                                     "stage": {"name": stage, "id": "y"} if stage else {}}})
        entry = {"message": message, "context": ctx,
                 "progress": {"name": "pipelines/sources", "total": len(pipelines), "done": done_p,
                              "progress": {"name": "stages", "total": total_s, "done": done_s}},
                 "timestamp": time.time()}
        if result is not None:
            entry["result"] = result
        mon.write("\x1e" + json.dumps(entry) + "\n")

    for i, pipeline in enumerate(pipelines):
        stages = pipeline.get("stages", [])
        for j, stage in enumerate(stages):
            record(f"Starting module {stage['type']}", pipeline, stage["type"], i, j, len(stages))
            print(f"running {stage['type']}", flush=True)
            if mode == "hang":
                # as osbuild's host build root: a scratch directory in the store that only a
                # normal exit removes (osbuild unmounts and deletes it in its cleanup)
                os.makedirs(os.path.join(args.store, "tmp"), exist_ok=True)
                scratch = tempfile.mkdtemp(prefix="host", dir=os.path.join(args.store, "tmp"))
                os.makedirs(os.path.join(scratch, "usr"))
                with open(os.path.join(args.output_directory, "stand_in.pid"), "w") as fh:
                    fh.write(str(os.getpid()))
                child = subprocess.Popen(["sleep", "300"])
                with open(os.path.join(args.output_directory, "child.pid"), "w") as fh:
                    fh.write(str(child.pid))
                time.sleep(300)
            if behaviour.get("wait_for") and i == len(pipelines) - 1 and j == len(stages) - 1:
                while not os.path.exists(behaviour["wait_for"]):
                    time.sleep(0.01)
            if stage_sleep:
                time.sleep(stage_sleep)
            if mode == "fail" and i == len(pipelines) - 1:
                record("Traceback: something broke\n", pipeline, stage["type"], i, j, len(stages),
                       result={"name": stage["type"], "success": False})
                print(f"Error: stage {stage['type']} failed", flush=True)
                return 1
            if mode == "enospc" and i == len(pipelines) - 1:
                print("cp: error writing 'disk.img': No space left on device", flush=True)
                return 1
            record(f"Finished module {stage['type']}", pipeline, stage["type"], i, j + 1, len(stages),
                   result={"name": stage["type"], "success": True})
    for name in args.export:
        out = os.path.join(args.output_directory, name)
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, behaviour.get("filename", "disk.img")), "wb") as fh:
            fh.write(b"IMAGE" * int(behaviour.get("size", 1000)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
