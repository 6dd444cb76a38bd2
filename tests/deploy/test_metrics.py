"""Prometheus metrics: what a scrape shows after composes, recorded jobs and queued tasks."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core import metrics
from core.config import Config, load
from core.store.composes import ComposeStore

ROOT = Path(__file__).resolve().parents[2]


def scrape(config: Config) -> dict[str, dict[tuple, float]]:
    """name -> {sorted label items -> value} for every sample of one scrape, with the Celery
    pipeline's queue depths as the API reports them."""
    from tasks.pipeline import CeleryPipeline

    pipeline = CeleryPipeline(config)
    body, content_type = metrics.render(config, None, lambda: pipeline.queue_depths(3.0))
    assert content_type.startswith("text/plain")
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load(environ={}, state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_composes_by_state_and_image_type(config):
    store = ComposeStore.from_config(config)
    blueprint = {"name": "base", "version": "0.0.1"}
    for compose_type, mode in (("qcow2", 2), ("qcow2", 2), ("ami", 1), ("qcow2", 0)):
        store.create(blueprint=blueprint, compose_type=compose_type, distro="centos-9",
                     arch="x86_64", test_mode=mode)
    composes = scrape(config)["celery_composer_composes"]
    assert composes[(("image_type", "qcow2"), ("state", "FINISHED"))] == 2
    assert composes[(("image_type", "ami"), ("state", "FAILED"))] == 1
    assert composes[(("image_type", "qcow2"), ("state", "WAITING"))] == 1
    assert composes[(("image_type", ""), ("state", "RUNNING"))] == 0


def test_finished_compose_durations_come_from_the_store(config):
    store = ComposeStore.from_config(config)
    compose = store.create(blueprint={"name": "b", "version": "1"}, compose_type="qcow2",
                           distro="centos-9", arch="x86_64", now=1000.0)
    store.mark_running(compose.id, now=1000.0)
    store.mark_finished(compose.id, image_size=10, now=1090.0)
    samples = scrape(config)
    labels = (("image_type", "qcow2"),)
    assert samples["celery_composer_compose_duration_seconds_sum"][labels] == 90.0
    assert samples["celery_composer_compose_duration_seconds_count"][labels] == 1
    assert samples["celery_composer_compose_duration_seconds_bucket"][
        (("image_type", "qcow2"), ("le", "60.0"))] == 0
    assert samples["celery_composer_compose_duration_seconds_bucket"][
        (("image_type", "qcow2"), ("le", "120.0"))] == 1


def test_recorded_durations_and_bytes(config):
    metrics.observe_duration(config, "depsolve", 3.2, image_type="qcow2")
    metrics.observe_duration(config, "depsolve", 0.2, image_type="qcow2")
    metrics.observe_duration(config, "build", 700, image_type="ami")
    metrics.add_bytes(config, "metadata_cache_hit", 5000)
    metrics.add_bytes(config, "metadata_cache_hit", 1000)
    metrics.add_bytes(config, "rpm_cache_hit", 7 << 20)
    metrics.add_bytes(config, "upload", 123, target="aws")
    metrics.add_bytes(config, "upload", 0, target="azure")  # nothing uploaded: no series
    s = scrape(config)
    qcow2 = (("image_type", "qcow2"),)
    assert s["celery_composer_depsolve_duration_seconds_count"][qcow2] == 2
    assert s["celery_composer_depsolve_duration_seconds_sum"][qcow2] == pytest.approx(3.4)
    buckets = s["celery_composer_depsolve_duration_seconds_bucket"]
    assert buckets[(("image_type", "qcow2"), ("le", "0.5"))] == 1
    assert buckets[(("image_type", "qcow2"), ("le", "5.0"))] == 2
    assert buckets[(("image_type", "qcow2"), ("le", "+Inf"))] == 2
    assert s["celery_composer_build_duration_seconds_bucket"][
        (("image_type", "ami"), ("le", "1200.0"))] == 1
    assert s["celery_composer_metadata_cache_hit_bytes_total"][()] == 6000
    assert s["celery_composer_rpm_cache_hit_bytes_total"][()] == 7 << 20
    assert s["celery_composer_upload_bytes_total"] == {(("target", "aws"),): 123}


def test_recording_refuses_unknown_kinds_and_labels(config):
    with pytest.raises(KeyError):
        metrics.add_bytes(config, "downloads", 1)
    with pytest.raises(ValueError, match="target"):
        metrics.observe_duration(config, "build", 1, target="aws")


def test_values_recorded_by_another_process_are_scraped(config):
    """Workers run in other processes (or containers); the API process must see their numbers."""
    code = ("import sys; from core.config import load; from core import metrics;"
            "cfg = load(environ={}, state_dir=sys.argv[1], cache_dir=sys.argv[2]);"
            "metrics.add_bytes(cfg, 'upload', 4096, target='azure');"
            "metrics.observe_duration(cfg, 'upload', 12.5, target='azure')")
    subprocess.run([sys.executable, "-c", code, str(config.state_dir), str(config.cache_dir)],
                   cwd=ROOT, check=True, timeout=60)
    s = scrape(config)
    assert s["celery_composer_upload_bytes_total"][(("target", "azure"),)] == 4096
    assert s["celery_composer_upload_duration_seconds_sum"][(("target", "azure"),)] == 12.5


def _publish(url: str, queue: str, n: int) -> None:
    from kombu import Connection

    with Connection(url) as conn:
        q = conn.SimpleQueue(queue)
        for i in range(n):
            q.put({"compose_id": str(uuid.uuid4()), "i": i})
        q.close()


def test_queue_depths_embedded_broker(config):
    from tasks import celery_app

    celery_app._prepare_embedded(config)
    _publish(celery_app.broker_url(config), "build", 3)
    s = scrape(config)
    depth = s["celery_composer_queue_depth"]
    assert depth[(("queue", "build"),)] == 3
    assert depth[(("queue", "depsolve"),)] == 0
    assert set(q for ((_, q),) in depth) >= {"depsolve", "build"}
    assert s["celery_composer_up"][(("part", "broker"),)] == 1


def test_queue_depths_redis(config, private_redis):
    from tasks import celery_app

    cfg = config.replace(broker_url=private_redis)
    _publish(cfg.broker_url, "depsolve", 2)
    _publish(cfg.broker_url, "upload.aws", 1)
    depth = scrape(cfg)["celery_composer_queue_depth"]
    assert depth[(("queue", "depsolve"),)] == 2
    assert depth[(("queue", "build"),)] == 0
    if "upload.aws" in celery_app.all_queues():
        assert depth[(("queue", "upload.aws"),)] == 1


def test_broker_down_keeps_the_rest_of_the_scrape(config):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cfg = config.replace(broker_url=f"redis://127.0.0.1:{port}/0")
    s = scrape(cfg)
    assert s["celery_composer_up"][(("part", "broker"),)] == 0
    assert s["celery_composer_up"][(("part", "store"),)] == 1
    assert "celery_composer_queue_depth" not in s
    assert "celery_composer_composes" in s


def test_rpm_cache_probe_splits_hits_and_downloads(config, tmp_path):
    """The probe reads osbuild's store layout (sources/org.osbuild.files/<checksum>); osbuild is
    not installed here, so the test plays its part by writing the downloaded file itself."""
    store = tmp_path / "osbuild-store"
    files = store / "sources" / "org.osbuild.files"
    files.mkdir(parents=True)
    cached, fetched, absent = ("sha256:" + c * 64 for c in "abc")
    (files / cached).write_bytes(b"x" * 3000)
    manifest = {"version": "2", "sources": {
        "org.osbuild.curl": {"items": {cached: {"url": "http://127.0.0.1:9/a.rpm"},
                                       fetched: "http://127.0.0.1:9/b.rpm"}},
        "org.osbuild.librepo": {"items": {absent: {"path": "c.rpm", "mirror": "m"}}}}}
    probe = metrics.RpmCacheProbe(manifest, store)
    (files / fetched).write_bytes(b"y" * 500)  # "osbuild downloaded it"
    assert probe.record(config) == (3000, 500)
    s = scrape(config)
    assert s["celery_composer_rpm_cache_hit_bytes_total"][()] == 3000
    assert s["celery_composer_rpm_download_bytes_total"][()] == 500


def test_step_helpers_record_and_never_raise(config, tmp_path, caplog):
    metrics.record_depsolve(config, 2.0, image_type="qcow2",
                            traffic={"cache_hit": 100, "downloaded": 40})
    metrics.record_build(config, 30.0, image_type="qcow2", probe=None)
    s = scrape(config)
    assert s["celery_composer_metadata_cache_hit_bytes_total"][()] == 100
    assert s["celery_composer_metadata_download_bytes_total"][()] == 40
    assert s["celery_composer_build_duration_seconds_count"][(("image_type", "qcow2"),)] == 1
    broken = config.replace(state_dir=tmp_path / "file")
    (tmp_path / "file").write_text("not a directory")
    metrics.record_depsolve(broken, 1.0, image_type="qcow2")  # logged, not raised
    assert "recording depsolve metrics" in caplog.text


def test_rpm_cache_probe_tolerates_odd_manifests(tmp_path):
    probe = metrics.RpmCacheProbe({"sources": {"org.osbuild.curl": ["not", "a", "dict"]}}, tmp_path)
    assert probe.sizes() == (0, 0)
