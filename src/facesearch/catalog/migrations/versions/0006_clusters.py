"""Clusters of faces: how each pack was clustered, the clusters, their faces, and reviewers' cannot-links.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``clusterings``, ``clusters``, ``cluster_faces`` and ``cluster_apart``."""
    op.create_table(
        "clusterings",
        sa.Column("pack", sa.String(120), primary_key=True),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("fmr", sa.Float(), nullable=True),
        sa.Column("neighbours", sa.Integer(), nullable=False),
        sa.Column("resolution", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "clusters",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("subject_id", sa.Integer(), sa.ForeignKey("subjects.id", ondelete="SET NULL"), nullable=True),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("weakest_link", sa.Float(), nullable=True),
        sa.Column("mean_similarity", sa.Float(), nullable=True),
        sa.Column("mixed", sa.Boolean(), nullable=False),
        sa.Column("mixed_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_clusters_pack", "clusters", ["pack"])
    op.create_table(
        "cluster_faces",
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cluster_id", sa.Integer(), sa.ForeignKey("clusters.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pinned", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_cluster_faces_cluster_id", "cluster_faces", ["cluster_id"])
    op.create_table(
        "cluster_apart",
        sa.Column("cluster_a", sa.Integer(), sa.ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("cluster_b", sa.Integer(), sa.ForeignKey("clusters.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the cluster tables."""
    op.drop_table("cluster_apart")
    op.drop_index("ix_cluster_faces_cluster_id", table_name="cluster_faces")
    op.drop_table("cluster_faces")
    op.drop_index("ix_clusters_pack", table_name="clusters")
    op.drop_table("clusters")
    op.drop_table("clusterings")
