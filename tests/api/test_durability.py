"""Durable state: a restart keeps everything, and `kill -9` in the middle of a burst of writes
loses nothing the server acknowledged."""

from __future__ import annotations

import threading
import time

from tests.conftest import WeldrServer

V1 = "/api/v1"
BP = 'name = "durable"\ndescription = "d"\nversion = "1.0.0"\n'


def _source(i: int) -> dict:
    return {"id": f"src-{i}", "name": f"source {i}", "type": "yum-baseurl",
            "url": f"http://127.0.0.1:9/{i}/", "check_gpg": False, "check_ssl": False}


def test_restart_keeps_state(tmp_path):
    server = WeldrServer(tmp_path / "srv").start()
    try:
        c = server.client
        assert c.post_toml(f"{V1}/blueprints/new", BP).status == 200
        assert c.post(f"{V1}/projects/source/new", _source(1)).status == 200
        compose = c.post(f"{V1}/compose?test=2",
                         {"blueprint_name": "durable", "compose_type": "qcow2"}).json()["build_id"]
        before = {p: c.get(p).json() for p in (f"{V1}/compose/status/*", f"{V1}/projects/source/list",
                                               f"{V1}/blueprints/list")}
        assert server.stop() == 0, "SIGTERM is a clean shutdown"
        assert not server.socket.exists()
        server.start()
        after = {p: c.get(p).json() for p in before}
        assert after == before
        assert compose in c.get(f"{V1}/compose/status/*").text
    finally:
        server.stop()


def test_kill_9_during_write_burst_loses_nothing_acknowledged(tmp_path):
    server = WeldrServer(tmp_path / "srv", workers=2).start()
    acknowledged: list[str] = []
    acked_composes: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    try:
        c = server.client
        assert c.post_toml(f"{V1}/blueprints/new", BP).status == 200

        def writer(offset: int) -> None:
            i = offset
            while not stop.is_set():
                try:
                    if i % 2:
                        r = c.post(f"{V1}/projects/source/new", _source(i), timeout=10)
                        if r.status == 200:
                            with lock:
                                acknowledged.append(f"src-{i}")
                    else:
                        r = c.post(f"{V1}/compose?test=2", {"blueprint_name": "durable",
                                                            "compose_type": "qcow2"}, timeout=10)
                        if r.status == 200:
                            with lock:
                                acked_composes.append(r.json()["build_id"])
                except OSError:
                    pass  # the server died under us: this write was never acknowledged
                i += 4

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while ((len(acknowledged) < 30 or len(acked_composes) < 15)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        server.kill()
        stop.set()
        for t in threads:
            t.join()
        assert acknowledged and acked_composes, "the burst made progress before the kill"
        server.start()
        sources = set(c.get(f"{V1}/projects/source/list").json()["sources"])
        assert set(acknowledged) <= sources
        listed = c.get(f"{V1}/compose/status/*").text
        assert all(cid in listed for cid in acked_composes)
        # and the store still takes writes after the crash
        assert c.post(f"{V1}/projects/source/new", _source(99999)).status == 200
    finally:
        stop.set()
        server.stop()
