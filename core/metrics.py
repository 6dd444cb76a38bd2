"""Prometheus metrics: what workers record, and what a scrape of the API's `/metrics` reads.

A deployment runs many processes — API workers, Celery workers in other containers or on other
machines — and a scrape reaches one API process.  So nothing here lives in process memory:
- composes and uploads by state are counted from the store at scrape time;
- queue depths are asked of the broker at scrape time;
- durations and byte counts, which only a worker sees, are recorded by that worker into the
  shared database (one small transaction per job) and read back at scrape time.
Every process of a deployment already shares that database (it holds the composes), so these
numbers are the deployment's, whichever process answers the scrape.

A part that cannot be read (broker down) is reported by `celery_composer_up{part=...} 0` and
leaves its metrics out, instead of failing the scrape: Prometheus would then lose the others too.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.db import Database

if TYPE_CHECKING:
    from core.config import Config

log = logging.getLogger(__name__)

PREFIX = "celery_composer"

# upper bounds of the duration buckets, seconds: depsolves take seconds, builds minutes to hours
DURATION_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0,
                    3600.0, 7200.0, 14400.0, math.inf)

# what workers may record: kind -> (metric name, help, labels it takes)
DURATIONS = {
    "depsolve": ("depsolve_duration_seconds", "Time to depsolve the package sets of one compose",
                 ("image_type",)),
    "build": ("build_duration_seconds", "Time osbuild ran for one compose", ("image_type",)),
    "upload": ("upload_duration_seconds", "Time to upload one image", ("target",)),
}
BYTES = {
    "metadata_cache_hit": ("metadata_cache_hit_bytes_total",
                           "Repository metadata bytes served from the cache instead of the network",
                           ()),
    "metadata_download": ("metadata_download_bytes_total",
                          "Repository metadata bytes downloaded", ()),
    "rpm_cache_hit": ("rpm_cache_hit_bytes_total",
                      "RPM bytes found in the osbuild store instead of downloaded", ()),
    "rpm_download": ("rpm_download_bytes_total", "RPM bytes downloaded for builds", ()),
    "upload": ("upload_bytes_total", "Image bytes uploaded", ("target",)),
}

def _database(config: "Config") -> Database:
    return Database.from_config(config)


def _label_key(allowed: tuple[str, ...], labels: dict[str, Any]) -> str:
    unknown = set(labels) - set(allowed)
    if unknown:
        raise ValueError(f"unexpected labels {sorted(unknown)}; this metric takes {list(allowed)}")
    return json.dumps({k: str(labels.get(k) or "") for k in allowed}, sort_keys=True)


def observe_duration(config: "Config", kind: str, seconds: float, **labels: Any) -> None:
    """Record how long one job of `kind` took (see `DURATIONS` for kinds and labels)."""
    name, _, allowed = DURATIONS[kind]
    key = _label_key(allowed, labels)
    seconds = max(0.0, float(seconds))
    le = next(b for b in DURATION_BUCKETS if seconds <= b)
    with _database(config).transaction() as conn:
        conn.execute("INSERT INTO metric_buckets (name, labels, le, count) VALUES (?, ?, ?, 1)"
                     " ON CONFLICT(name, labels, le) DO UPDATE SET count = metric_buckets.count + 1",
                     (name, key, le if le != math.inf else 1e308))
        _add(conn, name + "_sum", key, seconds)
        _add(conn, name + "_count", key, 1)


def add_bytes(config: "Config", kind: str, n: int, **labels: Any) -> None:
    """Add `n` bytes to the counter of `kind` (see `BYTES`); call once per job with its total."""
    name, _, allowed = BYTES[kind]
    if n <= 0:
        return
    key = _label_key(allowed, labels)
    with _database(config).transaction() as conn:
        _add(conn, name, key, n)


def _add(conn: Any, name: str, key: str, value: float) -> None:
    conn.execute("INSERT INTO metric_counters (name, labels, value) VALUES (?, ?, ?)"
                 " ON CONFLICT(name, labels) DO UPDATE SET value = metric_counters.value + excluded.value",
                 (name, key, value))


# osbuild keeps downloaded sources in its store under sources/<source type>/<checksum>; the curl and
# librepo sources (RPMs) share org.osbuild.files
_SOURCE_FILES_DIR = ("sources", "org.osbuild.files")
_RPM_SOURCES = ("org.osbuild.curl", "org.osbuild.librepo")


def manifest_checksums(manifest: dict[str, Any]) -> set[str]:
    """Checksums of the files (RPMs) a manifest asks osbuild to fetch."""
    sums: set[str] = set()
    for kind in _RPM_SOURCES:
        items = (manifest.get("sources") or {}).get(kind, {}).get("items", {})
        sums.update(str(k) for k in items)
    return sums


class RpmCacheProbe:
    """Splits a build's RPM bytes into found-in-the-osbuild-store and downloaded.

    Made before osbuild runs (it notes which files the store already holds), `record()`ed after
    it ran (by then the store holds every file, so both sizes are known), so nothing in osbuild
    has to report anything.
    """

    def __init__(self, manifest: dict[str, Any], store: Path):
        self.files_dir = Path(store).joinpath(*_SOURCE_FILES_DIR)
        try:
            self.wanted = manifest_checksums(manifest)
            self.present = {c for c in self.wanted if (self.files_dir / c).exists()}
        except Exception:  # noqa: BLE001 - an odd manifest is osbuild's to refuse, not ours
            log.exception("rpm cache probe: cannot read the manifest's sources")
            self.wanted, self.present = set(), set()

    def sizes(self) -> tuple[int, int]:
        """(bytes found in the store before the build, bytes the build downloaded)."""
        def size(checksum: str) -> int:
            try:
                return (self.files_dir / checksum).stat().st_size
            except OSError:
                return 0
        hit = sum(size(c) for c in self.present)
        downloaded = sum(size(c) for c in self.wanted - self.present)
        return hit, downloaded

    def record(self, config: "Config") -> tuple[int, int]:
        hit, downloaded = self.sizes()
        add_bytes(config, "rpm_cache_hit", hit)
        add_bytes(config, "rpm_download", downloaded)
        return hit, downloaded


def record_depsolve(config: "Config", seconds: float, *, image_type: str,
                    traffic: dict[str, int] | None = None) -> None:
    """Everything a depsolve step knows, in one call that never fails the compose.

    `traffic` is `depsolve.take_metadata_traffic()`: {"cache_hit": n, "downloaded": n}.
    """
    try:
        observe_duration(config, "depsolve", seconds, image_type=image_type)
        traffic = traffic or {}
        add_bytes(config, "metadata_cache_hit", int(traffic.get("cache_hit", 0)))
        add_bytes(config, "metadata_download", int(traffic.get("downloaded", 0)))
    except Exception:  # noqa: BLE001 - a metric is never worth a failed compose
        log.exception("recording depsolve metrics")


def record_build(config: "Config", seconds: float, *, image_type: str,
                 probe: RpmCacheProbe | None = None) -> None:
    """Everything a build step knows (duration, RPM cache split), never failing the compose."""
    try:
        observe_duration(config, "build", seconds, image_type=image_type)
        if probe is not None:
            probe.record(config)
    except Exception:  # noqa: BLE001
        log.exception("recording build metrics")


# --- reading, at scrape time --------------------------------------------------------------------

def compose_counts(db: Database) -> dict[tuple[str, str], int]:
    """Composes by (state, image type), from the compose store's table."""
    from core.store.composes import STATES

    rows = db.query("SELECT queue_status, compose_type, COUNT(*) AS n FROM composes"
                    " GROUP BY queue_status, compose_type")
    counts = {(r["queue_status"], r["compose_type"]): int(r["n"]) for r in rows}
    for state in STATES:  # every state appears, so a dashboard shows 0 rather than nothing
        if not any(s == state for s, _ in counts):
            counts[(state, "")] = 0
    return counts


def upload_counts(db: Database) -> dict[tuple[str, str], int]:
    rows = db.query("SELECT status, target, COUNT(*) AS n FROM compose_uploads"
                    " GROUP BY status, target")
    return {(r["status"], r["target"]): int(r["n"]) for r in rows}


def compose_durations(db: Database) -> list[tuple[str, float]]:
    """(image type, seconds from start to end) of finished composes that really ran."""
    rows = db.query("SELECT compose_type, job_finished - job_started AS d FROM composes"
                    " WHERE queue_status = 'FINISHED' AND job_started IS NOT NULL"
                    " AND job_finished IS NOT NULL AND job_finished > job_started")
    return [(r["compose_type"], float(r["d"])) for r in rows]


def recorded(db: Database) -> tuple[list[Any], list[Any]]:
    counters = db.query("SELECT name, labels, value FROM metric_counters")
    buckets = db.query("SELECT name, labels, le, count FROM metric_buckets")
    return counters, buckets


class Collector:
    """Reads every metric afresh on each scrape (see the module docstring for why)."""

    def __init__(self, config: "Config", db: Database | None = None,
                 queue_depths: Callable[[], dict[str, int]] | None = None):
        self.config = config
        self.db = db
        self.queue_depths = queue_depths

    def describe(self) -> list:
        return []  # unchecked collector: the families depend on what the store holds

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        up = GaugeMetricFamily(f"{PREFIX}_up", "1 when this part could be read for this scrape",
                               labels=["part"])
        db = self.db or _database(self.config)
        try:
            composes = GaugeMetricFamily(f"{PREFIX}_composes", "Composes by state and image type",
                                         labels=["state", "image_type"])
            for (state, image_type), n in sorted(compose_counts(db).items()):
                composes.add_metric([state, image_type], n)
            yield composes
            uploads = GaugeMetricFamily(f"{PREFIX}_uploads", "Upload entries by status and target",
                                        labels=["status", "target"])
            for (status, target), n in sorted(upload_counts(db).items()):
                uploads.add_metric([status, target], n)
            yield uploads
            yield _histogram(HistogramMetricFamily, "compose_duration_seconds",
                             "Start to end of finished composes (depsolve, build and uploads)",
                             ["image_type"], [((t,), d) for t, d in compose_durations(db)])
            up.add_metric(["store"], 1)
        except Exception:  # noqa: BLE001 - report, keep the other parts of the scrape
            log.exception("metrics: reading the compose store failed")
            up.add_metric(["store"], 0)
        try:
            yield from self._recorded(db, CounterMetricFamily, HistogramMetricFamily)
            up.add_metric(["recorded"], 1)
        except Exception:  # noqa: BLE001
            log.exception("metrics: reading recorded metrics failed")
            up.add_metric(["recorded"], 0)
        if self.queue_depths is None:  # an API without a pipeline has no queues to report
            yield up
            return
        try:
            depths = self.queue_depths()
            family = GaugeMetricFamily(f"{PREFIX}_queue_depth",
                                       "Tasks waiting in each broker queue", labels=["queue"])
            for queue, n in sorted(depths.items()):
                family.add_metric([queue], n)
            yield family
            up.add_metric(["broker"], 1)
        except Exception as exc:  # noqa: BLE001
            log.warning("metrics: broker unreachable for queue depths: %s", exc)
            up.add_metric(["broker"], 0)
        yield up

    def _recorded(self, db: Database, counter_cls: Any, histogram_cls: Any) -> Iterator[Any]:
        counters, buckets = recorded(db)
        values = {(r["name"], r["labels"]): float(r["value"]) for r in counters}
        for name, help_text, allowed in BYTES.values():
            family = counter_cls(f"{PREFIX}_{name[:-len('_total')]}", help_text,
                                 labels=list(allowed))
            rows = [(json.loads(k), v) for (n, k), v in values.items() if n == name]
            for labels, value in sorted(rows, key=lambda r: sorted(r[0].items())):
                family.add_metric([labels[a] for a in allowed], value)
            if not rows and not allowed:
                family.add_metric([], 0.0)
            yield family
        for name, help_text, allowed in DURATIONS.values():
            series: dict[str, dict[float, int]] = {}
            for r in buckets:
                if r["name"] == name:
                    le = math.inf if r["le"] >= 1e308 else float(r["le"])
                    series.setdefault(r["labels"], {})[le] = int(r["count"])
            family = histogram_cls(f"{PREFIX}_{name}", help_text, labels=list(allowed))
            for key, counts in sorted(series.items()):
                labels = json.loads(key)
                family.add_metric([labels[a] for a in allowed], _cumulative(counts),
                                  sum_value=values.get((name + "_sum", key), 0.0))
            yield family


def _cumulative(counts: dict[float, int]) -> list[tuple[str, float]]:
    total, out = 0, []
    for le in DURATION_BUCKETS:
        total += counts.get(le, 0)
        out.append(("+Inf" if le == math.inf else _fmt(le), float(total)))
    return out


def _fmt(value: float) -> str:
    return repr(float(value))


def _histogram(cls: Any, name: str, help_text: str, labels: list[str],
               observations: Iterable[tuple[tuple[str, ...], float]]) -> Any:
    family = cls(f"{PREFIX}_{name}", help_text, labels=labels)
    series: dict[tuple[str, ...], dict[float, int]] = {}
    sums: dict[tuple[str, ...], float] = {}
    for key, seconds in observations:
        le = next(b for b in DURATION_BUCKETS if seconds <= b)
        series.setdefault(key, {}).setdefault(le, 0)
        series[key][le] += 1
        sums[key] = sums.get(key, 0.0) + seconds
    for key, counts in sorted(series.items()):
        family.add_metric(list(key), _cumulative(counts), sum_value=sums[key])
    return family


def render(config: "Config", db: Database | None = None,
           queue_depths: Callable[[], dict[str, int]] | None = None) -> tuple[bytes, str]:
    """The exposition text of one scrape and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(config, db, queue_depths))  # type: ignore[arg-type]
    return generate_latest(registry), CONTENT_TYPE_LATEST
