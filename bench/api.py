"""Weldr API throughput and latency over the unix socket, against a store of realistic size.

    python bench/api.py [--blueprints 1000] [--composes 10000] [--seconds 5] [--clients N]

Fills a fresh state directory (1,000 blueprints, 10,000 composes in all four states), serves
it with the production stack (`celery-composer serve`'s gunicorn, 2 workers × 4 threads) and
drives it with keep-alive HTTP/1.1 clients in separate processes, as composer-cli and cockpit
do.  Printed per route: requests/s, p50 and p99 latency, and the ratio to an empty route
served by the same stack in the same run (the peer baseline: what the server costs with no work).
Targets (issue 2): each route ≥ 50 % of the empty route's requests/s; compose/status/* p99 < 50 ms.
"""

from __future__ import annotations

import sys
from pathlib import Path

# this directory holds bench/queue.py, which must not shadow the standard library's `queue`
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import argparse
import http.client
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import tempfile
import time

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

EMPTY = "/api/v1/bench/empty"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str):
        super().__init__("localhost", timeout=60)
        self.unix_path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.unix_path)


# --- filling the store ----------------------------------------------------------------------

def fill(state_dir: Path, n_blueprints: int, n_composes: int, database_url: str = "") -> str:
    from core import blueprint as model
    from core import sealing
    from core.config import load
    from core.store.blueprints import BlueprintStore
    from core.store.composes import ComposeStore

    config = load(state_dir=state_dir, database_url=database_url)
    db = sealing.open_database(config)
    blueprints = BlueprintStore(db)
    composes = ComposeStore(db, config.artifacts_path)
    rng = random.Random(7)
    names = [f"bench-{i:05d}" for i in range(n_blueprints)]
    with db.transaction():
        for name in names:
            text = (f'name = "{name}"\ndescription = "benchmark blueprint"\nversion = "1.0.0"\n'
                    '[[packages]]\nname = "tmux"\nversion = "*"\n'
                    '[[packages]]\nname = "openssh-server"\nversion = "*"\n'
                    '[customizations]\nhostname = "bench"\n')
            blueprints.push(model.decode(text, "text/x-toml"))
    with db.transaction():
        for i in range(n_composes):
            name = names[i % len(names)]
            c = composes.create(blueprint={"name": name, "version": "1.0.0"},
                                compose_type=rng.choice(["qcow2", "ami", "vhd", "tar"]),
                                distro="centos-9", arch="x86_64", size=2 << 30,
                                image_filename="disk.qcow2",
                                test_mode=rng.choice([0, 0, 1, 2, 2, 2]))
            if c.queue_status == "WAITING" and i % 5 == 0:
                composes.mark_running(c.id)
    return names[len(names) // 2]


# --- serving --------------------------------------------------------------------------------

def bench_app(config):
    """The real application plus one route doing nothing, on the same stack."""
    from app import create_app
    from app.errors import json_response

    app = create_app(config)

    @app.get(EMPTY)
    def empty():
        response = json_response({"status": True})
        response.headers["X-Bench-Pid"] = str(os.getpid())  # which worker answered (`warm`)
        return response

    return app


def serve(socket_path: str, state_dir: str, workers: int, database_url: str = "") -> None:
    from app.server import WeldrServer
    from core.config import load

    config = load(socket=socket_path, state_dir=state_dir, api_workers=workers,
                  embedded_workers=False, log_level="WARNING", database_url=database_url)
    WeldrServer(config, app_factory=bench_app, embedded=False).run()


# --- load -----------------------------------------------------------------------------------

def _get(conn: http.client.HTTPConnection, path: str) -> http.client.HTTPResponse:
    headers = {}
    if path.endswith("#gzip"):  # ask for gzip as Go's HTTP client (composer-cli) always does
        path, headers = path[:-len("#gzip")], {"Accept-Encoding": "gzip"}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{path}: HTTP {resp.status}")
    return resp


def _client(args: tuple[str, str, float]) -> list[float]:
    socket_path, path, seconds = args
    conn = UnixConnection(socket_path)
    latencies = []
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        _get(conn, path)
        latencies.append(time.perf_counter() - t0)
    conn.close()
    return latencies


def warm(socket_path: str, paths: list[str], workers: int, tries: int = 200) -> int:
    """Every route once on every server worker: fill each process's caches (the listing cache is
    per process) and import lazily loaded code, so no first render lands in the figures.  A
    keep-alive connection stays with the worker that accepted it; connections are opened until
    each worker has answered one.  Returns how many workers were warmed."""
    seen: set[str] = set()
    held = []
    for _ in range(tries):
        conn = UnixConnection(socket_path)
        held.append(conn)  # kept open: the next connection goes to a worker not busy with it
        pid = _get(conn, EMPTY).getheader("X-Bench-Pid") or ""
        if pid not in seen:
            seen.add(pid)
            for path in paths:
                _get(conn, path)
        if len(seen) >= workers:
            break
    for conn in held:
        conn.close()
    return len(seen)


def measure(pool, socket_path: str, routes: list[tuple[str, str]], seconds: float,
            clients: int, rounds: int) -> dict[str, dict]:
    """Routes take turns for `rounds` rounds, so that load from other processes on a shared
    machine spreads over all of them instead of hitting whichever runs at the wrong moment."""
    lat: dict[str, list[float]] = {label: [] for label, _ in routes}
    wall: dict[str, float] = {label: 0.0 for label, _ in routes}
    for _ in range(rounds):
        for label, path in routes:
            t0 = time.perf_counter()
            results = pool.map(_client, [(socket_path, path, seconds / rounds)] * clients)
            wall[label] += time.perf_counter() - t0
            lat[label].extend(x for r in results for x in r)
    out = {}
    for label, values in lat.items():
        values.sort()
        out[label] = {"rps": len(values) / wall[label], "p50": statistics.median(values) * 1000,
                      "p99": values[min(len(values) - 1, int(len(values) * 0.99))] * 1000}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blueprints", type=int, default=1000)
    parser.add_argument("--composes", type=int, default=10000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=os.cpu_count() or 2,
                        help="client processes (default: one per CPU)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="turns each route takes")
    parser.add_argument("--database-url", default="",
                        help="a PostgreSQL server (its maintenance database, e.g. postgresql://"
                             "postgres@127.0.0.1:5432/postgres): the store goes into a fresh "
                             "database there; default: the embedded SQLite file")
    parser.add_argument("--serve", nargs=3, metavar=("SOCKET", "STATE", "DB"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], args.workers, args.serve[2])
        return 0
    from bench.pgdb import fresh_database

    with fresh_database(args.database_url) as database_url:
        return run(args, database_url)


def run(args: argparse.Namespace, database_url: str) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        state, sock = Path(tmp) / "state", Path(tmp) / "api.socket"
        t0 = time.perf_counter()
        one = fill(state, args.blueprints, args.composes, database_url)
        print(f"store: {args.blueprints} blueprints, {args.composes} composes in "
              f"{'PostgreSQL' if database_url else 'SQLite'} "
              f"(filled in {time.perf_counter() - t0:.1f} s)")
        proc = subprocess.Popen([sys.executable, __file__, "--workers", str(args.workers),
                                 "--serve", str(sock), str(state), database_url],
                                start_new_session=True)
        try:
            for _ in range(300):
                if sock.exists():
                    try:
                        _client((str(sock), "/api/status", 0.0))
                        break
                    except OSError:
                        pass
                time.sleep(0.1)
            routes = [("empty route (baseline)", EMPTY),
                      ("blueprints/list", "/api/v0/blueprints/list"),
                      (f"blueprints/info/{one}", f"/api/v0/blueprints/info/{one}"),
                      ("compose/status/*", "/api/v1/compose/status/*"),
                      ("compose/status/* (gzip, composer-cli)", "/api/v1/compose/status/*#gzip")]
            print(f"server: gunicorn, {args.workers} workers x 4 threads; "
                  f"{args.clients} keep-alive clients, {args.seconds:.0f} s per route in "
                  f"{args.rounds} turns, "
                  f"{os.cpu_count()} CPUs\n")
            warmed = warm(str(sock), [path for _label, path in routes], args.workers)
            if warmed < args.workers:
                print(f"(only {warmed} of {args.workers} workers answered the warm-up)")
            with multiprocessing.get_context("spawn").Pool(args.clients) as pool:
                figures = measure(pool, str(sock), routes, args.seconds, args.clients,
                                  args.rounds)
            base = figures[routes[0][0]]["rps"]
            print(f"{'route':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs empty':>9}")
            for label, _path in routes:
                m = figures[label]
                print(f"{label:34} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} "
                      f"{m['rps'] / base:8.0%}")
            print("\ntargets: every route >= 50% of the empty route; compose/status/* p99 < 50 ms")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
