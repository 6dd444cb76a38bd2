"""GET /metrics on the real server's TCP listener after test composes went through the real API."""

from __future__ import annotations

import http.client
import json
import re
import socket
import time

from prometheus_client.parser import text_string_to_metric_families

V1 = "/api/v1"
BP = 'name = "metrics-bp"\ndescription = "for the metrics test"\nversion = "0.0.1"\n'


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tcp_get(port: int, path: str) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", path)
    response = conn.getresponse()
    response.body = response.read()  # type: ignore[attr-defined]
    conn.close()
    return response


def test_metrics_after_test_composes(start_weldr_server):
    port = free_port()
    # test-mode composes go through the queue: a real worker on `build` ends them
    server = start_weldr_server(args=["--listen", f"127.0.0.1:{port}"],
                                env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "false"},
                                queue_workers="build")
    client = server.client
    assert client.post_toml(f"{V1}/blueprints/new", BP).status == 200
    ids = {}
    for mode in ("2", "2", "1"):
        r = client.post(f"{V1}/compose?test={mode}",
                        {"blueprint_name": "metrics-bp", "compose_type": "qcow2", "branch": "master"})
        assert r.status == 200, r
        ids.setdefault(mode, []).append(r.json()["build_id"])
    deadline = time.monotonic() + 120
    while client.get(f"{V1}/compose/queue").json() != {"new": [], "run": []}:
        assert time.monotonic() < deadline, "test composes not ended by the worker"
        time.sleep(0.1)

    response = tcp_get(port, "/metrics")
    assert response.status == 200
    assert response.getheader("Content-Type").startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    composes = samples["celery_composer_composes"]
    assert composes[(("image_type", "qcow2"), ("state", "FINISHED"))] == 2
    assert composes[(("image_type", "qcow2"), ("state", "FAILED"))] == 1
    assert samples["celery_composer_up"][(("part", "store"),)] == 1
    assert samples["celery_composer_up"][(("part", "broker"),)] == 1
    assert samples["celery_composer_queue_depth"][(("queue", "build"),)] >= 0
    assert (("queue", "depsolve"),) in samples["celery_composer_queue_depth"]
    for name in ("celery_composer_metadata_cache_hit_bytes_total",
                 "celery_composer_rpm_cache_hit_bytes_total"):
        assert name in samples
    # the API itself still answers on the same listener, with the same store behind it
    finished = tcp_get(port, f"{V1}/compose/finished")
    assert finished.status == 200
    assert set(ids["2"]) <= {c["id"] for c in json.loads(finished.body)["finished"]}


def test_server_log_lines_are_structured(start_weldr_server):
    """gunicorn's own messages and ours share one format with the compose field on every line."""
    server = start_weldr_server(env={"CELERY_COMPOSER_EMBEDDED_WORKERS": "false",
                                     "CELERY_COMPOSER_LOG_LEVEL": "INFO"})
    assert server.client.get(f"{V1}/compose/queue").status == 200
    server.stop()
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    assert any("Booting worker" in line for line in lines)
    pattern = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z [A-Z]+ [a-z-]+\[\d+\] compose=\S+ \S+: ")
    odd = [line for line in lines if not pattern.match(line)]
    assert not odd, odd[:5]
