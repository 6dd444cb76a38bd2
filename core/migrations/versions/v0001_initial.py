"""The store's first versioned schema: every table the stores had before migrations existed.

A SQLite file written before migrations (tables created by the stores on import) already holds
these tables with the same columns: they are adopted as they are, and only missing ones created.

Revision ID: 0001
Revises: (none)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _create(name: str, *items: Any, indexes: tuple[tuple[str, list[str]], ...] = (),
            **kw: Any) -> None:
    """Create a table and its indexes unless an older celery-composer created them already."""
    if sa.inspect(op.get_bind()).has_table(name):
        return
    op.create_table(name, *items, **kw)
    for index, columns in indexes:
        op.create_index(index, name, columns)


def upgrade() -> None:
    _create("composes",
            sa.Column("id", sa.Text(), nullable=False),
            sa.Column("blueprint_name", sa.Text(), nullable=False),
            sa.Column("blueprint_version", sa.Text(), nullable=False),
            sa.Column("compose_type", sa.Text(), nullable=False),
            sa.Column("queue_status", sa.Text(), nullable=False),
            sa.Column("job_created", sa.Double(), nullable=False),
            sa.Column("job_started", sa.Double(), nullable=True),
            sa.Column("job_finished", sa.Double(), nullable=True),
            sa.Column("image_size", sa.BigInteger(), server_default="0", nullable=False),
            sa.Column("cancel_requested", sa.Integer(), server_default="0", nullable=False),
            sa.Column("record", sa.Text(), nullable=False),
            sa.Column("progress", sa.Text(), nullable=True),
            sa.PrimaryKeyConstraint("id"),
            indexes=(("composes_by_status", ["queue_status"]),))
    _create("compose_payloads",
            sa.Column("compose_id", sa.Text(), nullable=False),
            sa.Column("packages", sa.Text(), nullable=True),
            sa.Column("manifest", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["compose_id"], ["composes.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("compose_id"))
    _create("compose_uploads",
            sa.Column("id", sa.Text(), nullable=False),
            sa.Column("compose_id", sa.Text(), nullable=False),
            sa.Column("target", sa.Text(), nullable=False),
            sa.Column("image_name", sa.Text(), nullable=False),
            sa.Column("settings", sa.Text(), nullable=False),
            sa.Column("status", sa.Text(), nullable=False),
            sa.Column("progress", sa.Double(), server_default="0", nullable=False),
            sa.Column("created", sa.Double(), nullable=False),
            sa.Column("started", sa.Double(), nullable=True),
            sa.Column("finished", sa.Double(), nullable=True),
            sa.Column("error", sa.Text(), nullable=True),
            sa.Column("result", sa.Text(), nullable=True),
            sa.ForeignKeyConstraint(["compose_id"], ["composes.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            indexes=(("compose_uploads_by_compose", ["compose_id"]),))
    _create("compose_generation",
            sa.Column("one", sa.Integer(), autoincrement=False, nullable=False),
            sa.Column("value", sa.BigInteger(), nullable=False),
            sa.CheckConstraint("one = 1", name="compose_generation_one_row"),
            sa.PrimaryKeyConstraint("one"))
    op.execute(sa.text("INSERT INTO compose_generation (one, value) SELECT 1, 0"
                       " WHERE NOT EXISTS (SELECT 1 FROM compose_generation)"))
    _create("pipeline_jobs",
            sa.Column("compose_id", sa.Text(), nullable=False),
            sa.Column("step", sa.Text(), nullable=False),
            sa.Column("state", sa.Text(), server_default="queued", nullable=False),
            sa.Column("attempt", sa.Integer(), server_default="0", nullable=False),
            sa.Column("token", sa.Text(), nullable=True),
            sa.Column("worker", sa.Text(), nullable=True),
            sa.Column("heartbeat", sa.Double(), nullable=True),
            sa.Column("enqueued_at", sa.Double(), nullable=False),
            sa.Column("started_at", sa.Double(), nullable=True),
            sa.Column("finished_at", sa.Double(), nullable=True),
            sa.PrimaryKeyConstraint("compose_id", "step"),
            indexes=(("pipeline_jobs_state", ["state", "heartbeat"]),))
    _create("metric_counters",
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("labels", sa.Text(), nullable=False),
            sa.Column("value", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("name", "labels"))
    _create("metric_buckets",
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("labels", sa.Text(), nullable=False),
            sa.Column("le", sa.Double(), nullable=False),
            sa.Column("count", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("name", "labels", "le"))
    _create("blueprint_changes",
            sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("commit_id", sa.Text(), nullable=False),
            sa.Column("message", sa.Text(), nullable=False),
            sa.Column("timestamp", sa.Text(), nullable=False),
            sa.Column("revision", sa.Integer(), nullable=True),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("seq"),
            sa.UniqueConstraint("commit_id"),
            sqlite_autoincrement=True,
            indexes=(("blueprint_changes_by_name", ["name", "seq"]),))
    _create("blueprints",
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("commit_id", sa.Text(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("name"))
    _create("blueprint_workspace",
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("body", sa.Text(), nullable=False),
            sa.Column("saved", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("name"))
    _create("sources",
            sa.Column("id", sa.Text(), nullable=False),
            sa.Column("data", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"))
    _create("upload_logs",
            sa.Column("upload_id", sa.Text(), nullable=False),
            sa.Column("text", sa.Text(), server_default="", nullable=False),
            sa.ForeignKeyConstraint(["upload_id"], ["compose_uploads.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("upload_id"))
    _create("upload_profiles",
            sa.Column("provider", sa.Text(), nullable=False),
            sa.Column("name", sa.Text(), nullable=False),
            sa.Column("settings", sa.Text(), nullable=False),
            sa.Column("saved", sa.Double(), nullable=False),
            sa.PrimaryKeyConstraint("provider", "name"))
    # the stores' own version table from before migrations; Alembic's alembic_version replaces it
    op.execute(sa.text("DROP TABLE IF EXISTS schema_versions"))


def downgrade() -> None:
    for name in ("upload_profiles", "upload_logs", "sources", "blueprint_workspace", "blueprints",
                 "blueprint_changes", "metric_buckets", "metric_counters", "pipeline_jobs",
                 "compose_generation", "compose_uploads", "compose_payloads", "composes"):
        op.drop_table(name)
