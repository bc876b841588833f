"""The review queue: decisions waiting for a person (mixed clusters, cross-match pairs, near-threshold faces).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``review_items``."""
    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(120), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=True),
        sa.Column("face_a", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=True),
        sa.Column("face_b", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=True),
        sa.Column("similarity", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sqlite_autoincrement=True,
    )
    for column in ("kind", "cluster_id", "face_a", "face_b"):
        op.create_index(f"ix_review_items_{column}", "review_items", [column])


def downgrade() -> None:
    """Drop ``review_items``."""
    for column in ("kind", "cluster_id", "face_a", "face_b"):
        op.drop_index(f"ix_review_items_{column}", table_name="review_items")
    op.drop_table("review_items")
