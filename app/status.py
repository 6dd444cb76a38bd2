"""`celery-composer status`: is this deployment able to build images right now?

One short answer per part a compose needs — the API on its socket (and TCP), the broker, workers
consuming each queue, osbuild on this host — so an operator sees at a glance which link of the
chain is missing.  `--check PART` asks about one part only and answers with the exit code alone,
which is what a container healthcheck or a systemd `ExecStartPost=` needs.

Only the standard library is imported at module level; each check imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.config import Config

PARTS = ("api", "broker", "workers", "osbuild")
REPLY_WINDOW = 1.0  # seconds to collect the workers' answers to a broadcast


@dataclass
class Part:
    name: str
    ok: bool
    detail: str
    data: dict[str, Any] = field(default_factory=dict)
    required: bool = True  # a part that is not does not fail the overall exit code


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--check", choices=PARTS, default=None,
                        help="check one part only; silent unless it fails, exit code 0 or 1")
    parser.add_argument("--queue", default=None,
                        help="with --check workers: a worker must consume this queue")
    parser.add_argument("--local", action="store_true",
                        help="with --check workers: only workers on this host count"
                             " (a container's own worker)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for each part (default 5)")


def run(args: argparse.Namespace, config: "Config") -> int:
    parts = [args.check] if args.check else list(PARTS)
    results = [CHECKS[name](config, args) for name in parts]
    if args.json:
        print(json.dumps({p.name: {"ok": p.ok, "required": p.required, "detail": p.detail, **p.data}
                          for p in results}, indent=2))
    elif args.check:
        if not results[0].ok:
            print(f"{results[0].name}: {results[0].detail}", file=sys.stderr)
    else:
        width = max(len(p.name) for p in results)
        for p in results:
            mark = "ok  " if p.ok else ("FAIL" if p.required else "--  ")
            print(f"{p.name:<{width}}  {mark}  {p.detail}")
    if args.check:
        return 0 if results[0].ok else 1
    return 0 if all(p.ok or not p.required for p in results) else 1


# --- API -------------------------------------------------------------------------------------

def _http_get(sock: socket.socket, path: str, timeout: float) -> tuple[int, bytes]:
    import http.client

    class _Conn(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = sock

    conn = _Conn("localhost", timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _api_status(connect: Any, timeout: float) -> tuple[bool, str, dict[str, Any]]:
    started = time.monotonic()
    try:
        sock = connect()
        status, body = _http_get(sock, "/api/status", timeout)
    except OSError as exc:
        return False, f"not answering ({exc.strerror or exc})", {}
    elapsed = time.monotonic() - started
    if status != 200:
        return False, f"answered HTTP {status}", {}
    try:
        info = json.loads(body)
    except ValueError:
        return False, "answered, but not with Weldr status JSON", {}
    return True, f"api v{info.get('api')} build {info.get('build')} ({elapsed * 1000:.0f} ms)", info


def check_api(config: "Config", args: argparse.Namespace) -> Part:
    timeout = args.timeout

    def unix() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(config.socket))
        except OSError:
            sock.close()
            raise
        return sock

    ok, detail, info = _api_status(unix, timeout)
    details = [f"{config.socket}: {detail}"]
    data: dict[str, Any] = {"socket": str(config.socket), "socket_ok": ok}
    if config.listen:
        host, _, port = config.listen.rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"

        def tcp() -> socket.socket:
            return socket.create_connection((host, int(port)), timeout=timeout)

        tcp_ok, tcp_detail, _ = _api_status(tcp, timeout)
        details.append(f"{config.listen}: {tcp_detail}")
        data.update(listen=config.listen, listen_ok=tcp_ok)
        ok = ok and tcp_ok
    return Part("api", ok, "; ".join(details), data)


# --- broker and workers ----------------------------------------------------------------------

def _redact(url: str) -> str:
    """A broker URL without its password, fit for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + \
            (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def check_broker(config: "Config", args: argparse.Namespace) -> Part:
    from kombu import Connection

    from tasks import celery_app

    url = celery_app.broker_url(config)
    shown = "embedded (SQLite in state_dir)" if celery_app.is_embedded(config) else _redact(url)
    options: dict[str, Any] = {"max_retries": 0}
    if url.startswith(("redis://", "rediss://", "unix://")):
        options.update(socket_connect_timeout=args.timeout, socket_timeout=args.timeout)
    try:
        with Connection(url, connect_timeout=args.timeout, transport_options=options) as conn:
            conn.ensure_connection(max_retries=1, timeout=args.timeout)
            depths = {}
            try:
                depths = celery_app.queue_depths(config, timeout=args.timeout)
            except Exception:  # noqa: BLE001 - depths are a bonus; reachability is the check
                pass
    except Exception as exc:  # noqa: BLE001 - any failure means "unreachable", say why
        return Part("broker", False, f"{shown}: unreachable ({exc})")
    waiting = ", ".join(f"{q} {n}" for q, n in sorted(depths.items()) if n)
    return Part("broker", True, f"{shown}: reachable; waiting tasks: {waiting or 'none'}",
                {"url": shown, "queue_depths": depths})


def worker_queues(config: "Config", timeout: float) -> dict[str, list[str]]:
    """Worker name -> queues it consumes, from a broadcast to every worker (Redis brokers)."""
    from celery import Celery

    from tasks import celery_app

    app = Celery("celery-composer-status", broker=celery_app.broker_url(config),
                 set_as_current=False)
    app.conf.broker_connection_retry_on_startup = False
    app.conf.broker_connection_max_retries = 1
    try:
        replies = app.control.inspect(timeout=timeout).active_queues() or {}
    finally:
        app.close()
    return {name: sorted(q["name"] for q in queues) for name, queues in replies.items()}


def check_workers(config: "Config", args: argparse.Namespace) -> Part:
    from tasks import celery_app

    if celery_app.is_embedded(config):
        # the embedded transport has no broadcast: workers cannot be asked, only trusted
        how = ("started by `serve` (embedded_workers = true)" if config.embedded_workers
               else "embedded_workers = false: run `celery-composer worker` yourself")
        return Part("workers", not args.local and config.embedded_workers,
                    f"embedded broker has no remote control; workers {how}", {"embedded": True})
    try:
        # workers answer a broadcast within milliseconds, but Celery waits the whole window since
        # it cannot know how many will answer: keep the window short, as `celery inspect` does
        workers = worker_queues(config, min(args.timeout, REPLY_WINDOW))
    except Exception as exc:  # noqa: BLE001
        return Part("workers", False, f"cannot ask workers ({exc})")
    if args.local:
        host = socket.gethostname()
        workers = {n: q for n, q in workers.items() if n.partition("@")[2] == host}
    per_queue = {q: sorted(n for n, qs in workers.items() if q in qs)
                 for q in celery_app.all_queues()}
    for queues in workers.values():
        for q in queues:
            per_queue.setdefault(q, [])
    if args.queue:
        wanted = [q for q in per_queue if q == args.queue or
                  (args.queue.endswith(".*") and q.startswith(args.queue[:-1]))] or [args.queue]
        missing = [q for q in wanted if not per_queue.get(q)]
        ok = not missing
    else:
        missing = [q for q, names in per_queue.items() if not names]
        ok = bool(workers) and not missing
    summary = ", ".join(f"{q} {len(n)}" for q, n in sorted(per_queue.items()))
    detail = f"{len(workers)} worker(s); per queue: {summary}"
    if missing:
        detail += f"; no worker for: {', '.join(missing)}"
    return Part("workers", ok, detail, {"workers": workers, "per_queue": per_queue})


# --- osbuild ---------------------------------------------------------------------------------

def check_osbuild(config: "Config", args: argparse.Namespace) -> Part:
    from tasks import celery_app

    command = list(config.osbuild_command)
    program = shutil.which(command[0])
    if program is None:
        if celery_app.is_embedded(config):
            return Part("osbuild", False, f"not found: {command[0]!r} (setting osbuild_command);"
                                          " builds will fail, depsolve and uploads still work")
        # with a shared broker, builds run wherever build workers run, not necessarily here
        return Part("osbuild", False, f"not found on this host: {command[0]!r}; needed only where"
                                      " a worker for queue 'build' runs", required=False)
    try:
        out = subprocess.run([program, *command[1:], "--version"], capture_output=True,
                             text=True, timeout=max(args.timeout, 10))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Part("osbuild", False, f"{program}: cannot run ({exc})")
    version = (out.stdout or out.stderr).strip().splitlines()
    if out.returncode != 0:
        return Part("osbuild", False, f"{' '.join(command)} --version exited {out.returncode}:"
                                      f" {version[-1] if version else ''}")
    return Part("osbuild", True, f"{program} ({version[0] if version else 'unknown version'})",
                {"path": program, "version": version[0] if version else ""})


CHECKS = {"api": check_api, "broker": check_broker, "workers": check_workers,
          "osbuild": check_osbuild}
