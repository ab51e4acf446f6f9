"""Emoji rooms: per-minute aggregates, recorded only when the host and every participant agree.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # frozen copy: migrations never change


def upgrade() -> None:
    """Create room_minutes."""
    op.create_table(
        "room_minutes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("room_hash", sa.String(64), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("participants", sa.Integer(), nullable=False),
        sa.Column("samples", sa.Integer(), nullable=False),
        *(sa.Column(f"p_{label}", sa.Float(), nullable=False) for label in EMOTIONS),
    )
    op.create_index("ix_room_minutes_room_hash", "room_minutes", ["room_hash"])


def downgrade() -> None:
    """Drop room_minutes."""
    op.drop_table("room_minutes")
