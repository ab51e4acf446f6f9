"""Corrections: a kind (correction or confirmation) and one row per face per visitor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add kind and visitor; older rows become corrections of no known visitor (NULLs never collide)."""
    # Batch mode: SQLite cannot add a constraint to an existing table, so Alembic copies the table there.
    with op.batch_alter_table("corrections") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="correction"))
        batch.add_column(sa.Column("visitor", sa.String(64), nullable=True))
        batch.create_unique_constraint("uq_corrections_face_visitor", ["face_id", "visitor"])


def downgrade() -> None:
    """Drop the constraint and the two columns."""
    with op.batch_alter_table("corrections") as batch:
        batch.drop_constraint("uq_corrections_face_visitor", type_="unique")
        batch.drop_column("visitor")
        batch.drop_column("kind")
