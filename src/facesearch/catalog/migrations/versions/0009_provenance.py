"""Provenance of images: PDQ hashes, the source's date, and what a file claims (EXIF camera and position,
C2PA content credentials).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

COLUMNS = (
    ("source_date", sa.DateTime(timezone=True)),
    ("pdq", sa.LargeBinary()),
    ("pdq_quality", sa.Integer()),
    ("camera", sa.Text()),
    ("latitude", sa.Float()),
    ("longitude", sa.Float()),
    ("content_credentials", sa.Text()),
)


def upgrade() -> None:
    """Add the provenance columns to ``images`` (nullable: no table is rewritten, even on SQLite)."""
    for name, kind in COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    """Drop the provenance columns."""
    with op.batch_alter_table("images") as table:
        for name, _kind in reversed(COLUMNS):
            table.drop_column(name)
