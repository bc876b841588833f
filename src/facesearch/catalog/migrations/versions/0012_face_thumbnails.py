"""Face thumbnails: each face's grid crop, cut at ingest (the workbench shows candidates without decoding photos).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``face_thumbnails`` (deleted with their faces)."""
    op.create_table(
        "face_thumbnails",
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    """Drop ``face_thumbnails``."""
    op.drop_table("face_thumbnails")
