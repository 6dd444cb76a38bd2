"""The store's tables, as SQLAlchemy Core objects: one schema for SQLite and PostgreSQL.

The migrations under `core/migrations/` create and change these tables; this module is what the
code queries with where plain SQL text would differ between the two databases (row locks in
`core.jobs` and the compose store).  `tests/api/test_migrations.py` checks that the migrations
produce exactly these tables, so the two cannot drift apart.

Types: timestamps are seconds since the epoch as `Double` (PostgreSQL's `REAL` is 4 bytes, too
coarse for them); sizes are `BigInteger` (images pass 2 GiB); documents are JSON in `Text`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

composes = sa.Table(
    "composes", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("blueprint_name", sa.Text, nullable=False),
    sa.Column("blueprint_version", sa.Text, nullable=False),
    sa.Column("compose_type", sa.Text, nullable=False),
    sa.Column("queue_status", sa.Text, nullable=False),
    sa.Column("job_created", sa.Double, nullable=False),
    sa.Column("job_started", sa.Double),
    sa.Column("job_finished", sa.Double),
    sa.Column("image_size", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("progress", sa.Text),
    sa.Index("composes_by_status", "queue_status"),
)

compose_payloads = sa.Table(
    "compose_payloads", metadata,
    sa.Column("compose_id", sa.Text, sa.ForeignKey("composes.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("packages", sa.Text),
    sa.Column("manifest", sa.Text),
    sa.Column("plan", sa.Text),  # what the build needs besides the manifest (exports, file name)
)

# the compose log in chunks as appended; `start` and `size` count UTF-8 bytes, so a tail is found
# without reading the whole log
compose_logs = sa.Table(
    "compose_logs", metadata,
    sa.Column("compose_id", sa.Text, sa.ForeignKey("composes.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("start", sa.BigInteger, primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("data", sa.Text, nullable=False),
)

compose_uploads = sa.Table(
    "compose_uploads", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("compose_id", sa.Text, sa.ForeignKey("composes.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("target", sa.Text, nullable=False),
    sa.Column("image_name", sa.Text, nullable=False),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("progress", sa.Double, nullable=False, server_default="0"),
    sa.Column("created", sa.Double, nullable=False),
    sa.Column("started", sa.Double),
    sa.Column("finished", sa.Double),
    sa.Column("error", sa.Text),
    sa.Column("result", sa.Text),
    sa.Index("compose_uploads_by_compose", "compose_id"),
)

compose_generation = sa.Table(
    "compose_generation", metadata,
    sa.Column("one", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.CheckConstraint("one = 1", name="compose_generation_one_row"),
)

pipeline_jobs = sa.Table(
    "pipeline_jobs", metadata,
    sa.Column("compose_id", sa.Text, primary_key=True),
    sa.Column("step", sa.Text, primary_key=True),
    sa.Column("state", sa.Text, nullable=False, server_default="queued"),
    sa.Column("attempt", sa.Integer, nullable=False, server_default="0"),
    sa.Column("token", sa.Text),
    sa.Column("worker", sa.Text),
    sa.Column("heartbeat", sa.Double),
    sa.Column("enqueued_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double),
    sa.Column("finished_at", sa.Double),
    sa.Index("pipeline_jobs_state", "state", "heartbeat"),
)

metric_counters = sa.Table(
    "metric_counters", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("labels", sa.Text, primary_key=True),
    sa.Column("value", sa.Double, nullable=False),
)

metric_buckets = sa.Table(
    "metric_buckets", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("labels", sa.Text, primary_key=True),
    sa.Column("le", sa.Double, primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)

blueprint_changes = sa.Table(
    "blueprint_changes", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("commit_id", sa.Text, nullable=False, unique=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("timestamp", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer),
    sa.Column("body", sa.Text, nullable=False),
    sa.Index("blueprint_changes_by_name", "name", "seq"),
    sqlite_autoincrement=True,
)

blueprints = sa.Table(
    "blueprints", metadata,
    # byte order, as Go's sort.Strings lists them (SQLite's default collation is that already)
    sa.Column("name", sa.Text().with_variant(sa.Text(collation="C"), "postgresql"),
              primary_key=True),
    sa.Column("commit_id", sa.Text, nullable=False),
    sa.Column("body", sa.Text, nullable=False),
)

blueprint_workspace = sa.Table(
    "blueprint_workspace", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("saved", sa.Double, nullable=False),
)

sources = sa.Table(
    "sources", metadata,
    sa.Column("id", sa.Text, primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)

upload_logs = sa.Table(
    "upload_logs", metadata,
    sa.Column("upload_id", sa.Text, sa.ForeignKey("compose_uploads.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("text", sa.Text, nullable=False, server_default=""),
)

upload_profiles = sa.Table(
    "upload_profiles", metadata,
    sa.Column("provider", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("settings", sa.Text, nullable=False),
    sa.Column("saved", sa.Double, nullable=False),
)
