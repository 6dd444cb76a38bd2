"""Compose logs and build plans move into the database, so that no machine needs another's files.

The API shows `compose/log` from the table while a build worker on another machine appends to it;
the build step reads the plan the depsolve step (maybe on a third machine) wrote.  Logs written
before this revision stay in their files and are no longer shown.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compose_logs",
        sa.Column("compose_id", sa.Text(), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["compose_id"], ["composes.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("compose_id", "start"))
    with op.batch_alter_table("compose_payloads") as batch:
        batch.add_column(sa.Column("plan", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("compose_payloads") as batch:
        batch.drop_column("plan")
    op.drop_table("compose_logs")
