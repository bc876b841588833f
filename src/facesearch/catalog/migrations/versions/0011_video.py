"""Videos: an image row may be a video (``media``, ``duration_s``), and its faces are tracks (``time_start``,
``time_end``, ``frame_time``).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

IMAGE_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("media", sa.String(16)),
    ("duration_s", sa.Float()),
)
FACE_COLUMNS: tuple[tuple[str, sa.types.TypeEngine[Any]], ...] = (
    ("time_start", sa.Float()),
    ("time_end", sa.Float()),
    ("frame_time", sa.Float()),
)


def upgrade() -> None:
    """Add the video columns (nullable: no table is rewritten)."""
    for name, kind in IMAGE_COLUMNS:
        op.add_column("images", sa.Column(name, kind, nullable=True))
    for name, kind in FACE_COLUMNS:
        op.add_column("faces", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    """Drop the video columns."""
    with op.batch_alter_table("faces") as table:
        for name, _kind in reversed(FACE_COLUMNS):
            table.drop_column(name)
    with op.batch_alter_table("images") as table:
        for name, _kind in reversed(IMAGE_COLUMNS):
            table.drop_column(name)
