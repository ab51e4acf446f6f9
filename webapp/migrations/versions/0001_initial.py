"""Initial tables: analyses, faces, corrections.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # frozen copy: migrations never change


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "analyses",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("model_name", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("delete_token_hash", sa.String(64), nullable=False),
        sa.Column("photo_path", sa.String(255), nullable=True),
    )
    op.create_table(
        "faces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("analysis_id", sa.String(32), sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False),
        sa.Column("face_index", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in ("x", "y", "w", "h")),
        *(sa.Column(f"p_{label}", sa.Float(), nullable=False) for label in EMOTIONS),
        sa.Column("top", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.UniqueConstraint("analysis_id", "face_index"),
    )
    op.create_index("ix_faces_analysis_id", "faces", ["analysis_id"])
    op.create_table(
        "corrections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("emotion", sa.String(16), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("consent_crop", sa.Boolean(), nullable=False),
        sa.Column("crop_path", sa.String(255), nullable=True),
    )
    op.create_index("ix_corrections_face_id", "corrections", ["face_id"])


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("corrections")
    op.drop_table("faces")
    op.drop_table("analyses")
