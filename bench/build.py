"""Build benchmark: the same compose built twice by real osbuild (first vs repeated build).

    .venv/bin/python bench/build.py [--osbuild COMMAND] [--image-types tar,qcow2] [--rounds 3]

Needs osbuild and root: `--osbuild` (a shell-quoted command line), else `TEST_OSBUILD_COMMAND`,
else `osbuild` on PATH, e.g. `--osbuild 'env PYTHONPATH=/src/osbuild python3 -m osbuild --libdir
/src/osbuild'` for a source checkout.  The distro is `test-distro-1` (the host is the build root)
and its system repository the depsolve tests' local RPM repository; the blueprint asks for bash.

Each round starts from an empty state, metadata cache and osbuild store, then runs the product's
depsolve and build steps (`tasks.steps`, in this process: this measures the build, not the queue)
for one compose and then for the same compose again.  Printed per image type, medians over the
rounds: wall time of depsolve + build, osbuild's CPU time (its whole process tree), bytes that
landed in the store's `sources` (RPM downloads), and whether the repeat ran the `os` pipeline.

The same again with `osbuild_checkpoint_images = true` (the exported pipelines kept in the store
too), and beside them osbuild alone on the same manifest with a fresh store and no checkpoints
(what every build costs when nothing is kept between builds).
Target (issue 5): repeat ≤ 20 % of the first build's wall time, 0 bytes downloaded.
"""

from __future__ import annotations

import sys

# Run as `python bench/build.py`, this file's directory comes first on sys.path, where queue.py
# would stand in for the standard library's `queue`; take that entry out before any import.
if sys.path and sys.path[0] and __file__.startswith(sys.path[0].rstrip("/") + "/"):
    sys.path.pop(0)

import argparse  # noqa: E402
import json
import os
import resource
import shlex
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RPM_STAGE_MARK = "Starting module org.osbuild.rpm"  # in the log when the os pipeline runs


@dataclass
class Sample:
    wall: float  # depsolve + build step (or osbuild alone), seconds
    cpu: float  # osbuild's process tree, user + system seconds
    downloaded: int  # bytes added to the store's sources
    os_built: bool  # the os pipeline ran (False: its checkpoint was reused)
    ok: bool


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def find_osbuild(given: str | None) -> list[str] | None:
    text = given or os.environ.get("TEST_OSBUILD_COMMAND", "").strip()
    if text:
        return shlex.split(text)
    return ["osbuild"] if shutil.which("osbuild") else None


class Round:
    """One empty state + cache + osbuild store, where composes of one image type are built."""

    def __init__(self, command: list[str], image_type: str, repo_url: str,
                 checkpoint_images: bool = False):
        import distros
        from core import config as config_mod
        from tasks import steps

        self.base = Path(tempfile.mkdtemp(prefix="bench-build-"))
        repos = self.base / "repositories"
        repos.mkdir()
        arch = os.uname().machine
        (repos / "test-distro-1.json").write_text(json.dumps({arch: [{
            "name": "test-baseos", "baseurl": repo_url, "check_gpg": False}]}))
        self.config = config_mod.load(environ={}, state_dir=self.base / "state",
                                      cache_dir=self.base / "cache", repositories_dir=repos,
                                      osbuild_command=command,
                                      osbuild_checkpoint_images=checkpoint_images)
        self.store = steps.store_for(self.config)
        self.image_type = distros.get_distro("test-distro-1").image_type(arch, image_type)
        self.arch = arch
        self.command = command

    def compose(self) -> tuple[str, Sample]:
        """One compose through the product's depsolve and build steps."""
        from core import jobs
        from tasks import steps

        it = self.image_type
        c = self.store.create(blueprint={"name": "bench", "version": "0.0.1",
                                         "packages": [{"name": "bash", "version": "*"}]},
                              compose_type=it.name, distro="test-distro-1", arch=self.arch,
                              image_filename=it.filename, mime_type=it.mime_type)
        jobs.enqueue(self.store.db, c.id, steps.DEPSOLVE)
        sources = Path(self.config.store_path) / "sources"
        before = tree_bytes(sources)
        cpu0, t0 = children_cpu(), time.monotonic()
        steps.run_depsolve(self.config, c.id)
        steps.run_build(self.config, c.id)
        wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
        done = self.store.get(c.id)
        log = self.store.read_log(c.id)
        if done.queue_status != "FINISHED":
            print(f"  compose {c.id} {done.queue_status}; log tail:\n{log[-2000:]}", file=sys.stderr)
        return c.id, Sample(wall, cpu, tree_bytes(sources) - before, RPM_STAGE_MARK in log,
                            done.queue_status == "FINISHED")

    def osbuild_alone(self, manifest: dict, store: Path) -> Sample:
        """osbuild on `manifest` through the product's runner, in `store`, with no checkpoint."""
        from tasks.osbuild import run_osbuild

        out = Path(tempfile.mkdtemp(prefix="out-", dir=self.base))
        log = out.parent / (out.name + ".log")
        sources = store / "sources"
        before = tree_bytes(sources)
        cpu0, t0 = children_cpu(), time.monotonic()
        outcome = run_osbuild(manifest, command=self.command, store=store, output_dir=out / "o",
                              log_path=log, exports=self.image_type.exports,
                              cache_max_size=self.config.osbuild_cache_max_size)
        wall, cpu = time.monotonic() - t0, children_cpu() - cpu0
        text = log.read_text(errors="replace")
        shutil.rmtree(out, ignore_errors=True)
        return Sample(wall, cpu, tree_bytes(sources) - before, RPM_STAGE_MARK in text, outcome.ok)

    def close(self) -> None:
        shutil.rmtree(self.base, ignore_errors=True)


def run_image_type(command: list[str], image_type: str, rounds: int, repo_url: str) -> dict:
    rows: dict[str, list[Sample]] = {k: [] for k in (
        "first", "repeat", "kept_first", "kept_repeat", "alone", "alone_repeat")}
    for _ in range(rounds):
        r = Round(command, image_type, repo_url)
        try:
            cid, first = r.compose()
            _, repeat = r.compose()
            rows["first"].append(first)
            rows["repeat"].append(repeat)
            manifest = r.store.manifest(cid)
            # nothing kept between builds: a fresh store every time
            fresh = Path(tempfile.mkdtemp(prefix="fresh-store-", dir=r.base))
            rows["alone"].append(r.osbuild_alone(manifest, fresh))
            rows["alone_repeat"].append(r.osbuild_alone(manifest, fresh))
        finally:
            r.close()
        # osbuild_checkpoint_images = true: the exported pipelines are kept in the store as well
        r = Round(command, image_type, repo_url, checkpoint_images=True)
        try:
            rows["kept_first"].append(r.compose()[1])
            rows["kept_repeat"].append(r.compose()[1])
        finally:
            r.close()
    return rows


def median(samples: list[Sample], attr: str) -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def report(image_type: str, rows: dict[str, list[Sample]], rounds: int) -> None:
    first, repeat = rows["first"], rows["repeat"]
    ok = all(s.ok for v in rows.values() for s in v)
    print(f"\n{image_type}: {rounds} round(s), medians (wall: median / fastest){'' if ok else '  (SOME BUILDS FAILED)'}")
    print(f"  {'':44} {'wall s':>11} {'cpu s':>7} {'downloaded':>11}  os pipeline")
    labels = [("first", "celery-composer, first compose"),
              ("repeat", "celery-composer, same compose again"),
              ("kept_first", "… osbuild_checkpoint_images, first compose"),
              ("kept_repeat", "… osbuild_checkpoint_images, same again"),
              ("alone", "osbuild alone, fresh store, no checkpoints"),
              ("alone_repeat", "… same store again, no checkpoints")]
    for key, label in labels:
        samples = rows[key]
        built = sum(s.os_built for s in samples)
        fastest = min(x.wall for x in samples)
        print(f"  {label:44} {median(samples, 'wall'):5.2f} / {fastest:4.2f} {median(samples, 'cpu'):7.2f} "
              f"{int(median(samples, 'downloaded')):>11}  "
              f"{'built' if built == len(samples) else 'reused' if not built else f'built {built}x'}")
    wall = median(repeat, "wall") / median(first, "wall")
    cpu = median(repeat, "cpu") / median(first, "cpu")
    kept = median(rows["kept_repeat"], "wall") / median(rows["kept_first"], "wall")
    kept_cpu = median(rows["kept_repeat"], "cpu") / median(rows["kept_first"], "cpu")
    for name, w, c, samples in (("default", wall, cpu, repeat),
                                ("osbuild_checkpoint_images", kept, kept_cpu, rows["kept_repeat"])):
        dl = max(s.downloaded for s in samples)
        print(f"  repeat / first, {name}: wall {w:.0%}, cpu {c:.0%}; downloaded on repeat: {dl} bytes "
              f"(target ≤ 20 %, 0 bytes: {'met' if w <= 0.2 and dl == 0 else 'NOT met'})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--osbuild", metavar="COMMAND", default=None,
                    help="osbuild command line (default: $TEST_OSBUILD_COMMAND, else osbuild on PATH)")
    ap.add_argument("--image-types", default="tar,qcow2")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    command = find_osbuild(args.osbuild)
    if command is None:
        print("osbuild is not installed: pass --osbuild COMMAND or set TEST_OSBUILD_COMMAND",
              file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("osbuild needs root", file=sys.stderr)
        return 2
    from tests.depsolve.repos import built_repos

    repo_url = built_repos()["baseos"].as_uri() + "/"
    print(f"build benchmark: test-distro-1, bash from a local repository, osbuild: {shlex.join(command)}")
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores")
    for image_type in args.image_types.split(","):
        report(image_type, run_image_type(command, image_type, args.rounds, repo_url), args.rounds)
    print("\nreference: osbuild 191 alone, tar of five small RPMs: 3.2 s from an empty store, "
          "0.57 s with both pipelines checkpointed (issue 5)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
