"""Initial catalog: collections, images, image files, scans, subjects, faces.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the first version of every table."""
    op.create_table(
        "collections",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text()),
        sa.Column("legal_basis", sa.Text()),
        sa.Column("source", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("source_url", sa.Text()),
        sa.Column("source_page", sa.Text()),
        sa.Column("captured_at", TS),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("file_size", sa.BigInteger()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.String(32)),
        sa.Column("error_detail", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("collection_id", "sha256", name="uq_images_collection_sha256"),
    )
    op.create_index("ix_images_status", "images", ["status"])
    op.create_table(
        "image_files",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("collection_id", sa.Integer(), sa.ForeignKey("collections.id", ondelete="CASCADE"), nullable=False),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("file_size", sa.BigInteger()),
        sa.Column("mtime", sa.Float()),
        sa.UniqueConstraint("collection_id", "path", name="uq_image_files_collection_path"),
    )
    op.create_index("ix_image_files_image_id", "image_files", ["image_id"])
    op.create_table(
        "image_scans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("image_id", "pack", name="uq_image_scans_image_pack"),
    )
    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("label", sa.String(300), nullable=False, unique=True),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "faces",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("x", sa.Float(), nullable=False),
        sa.Column("y", sa.Float(), nullable=False),
        sa.Column("w", sa.Float(), nullable=False),
        sa.Column("h", sa.Float(), nullable=False),
        sa.Column("landmarks", sa.Text()),
        sa.Column("detector_score", sa.Float(), nullable=False),
        sa.Column("quality", sa.Float(), nullable=False),
        sa.Column("quality_reasons", sa.Text()),
        sa.Column("subject_id", sa.Integer(), sa.ForeignKey("subjects.id", ondelete="SET NULL")),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_faces_pack_id", "faces", ["pack", "id"])
    op.create_index("ix_faces_image_id", "faces", ["image_id"])
    op.create_index("ix_faces_subject_id", "faces", ["subject_id"])


def downgrade() -> None:
    """Drop every table."""
    for table in ("faces", "subjects", "image_scans", "image_files", "images", "collections"):
        op.drop_table(table)
