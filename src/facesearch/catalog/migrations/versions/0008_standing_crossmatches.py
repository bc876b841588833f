"""Standing cross-matches: faces arriving in either of two collections are matched against the other.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``standing_crossmatches``."""
    op.create_table(
        "standing_crossmatches",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("collection", sa.String(200), nullable=False),
        sa.Column("against", sa.String(200), nullable=False),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("top_k", sa.Integer(), nullable=False),
        sa.Column("min_similarity", sa.Float(), nullable=True),
        sa.Column("seen_face_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    """Drop ``standing_crossmatches``."""
    op.drop_table("standing_crossmatches")
