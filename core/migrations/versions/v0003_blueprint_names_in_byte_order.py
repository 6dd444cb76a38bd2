"""Blueprint names compare in byte order on PostgreSQL too, so `blueprints/list` pages in SQL.

osbuild-composer lists names as Go's sort.Strings does: byte order.  SQLite's default collation
(BINARY) is that already; a PostgreSQL database's default follows its locale, so the column gets
the "C" collation there.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":  # SQLite's BINARY is byte order already
        op.alter_column("blueprints", "name", type_=sa.Text(collation="C"),
                        existing_type=sa.Text(), existing_nullable=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("blueprints", "name", type_=sa.Text(), existing_type=sa.Text(collation="C"),
                        existing_nullable=False)
