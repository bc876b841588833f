"""Quality policy per collection: faces below ``min_quality`` are not indexed (none: index all, marked).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the collections' minimum face quality."""
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("min_quality", sa.Float()))


def downgrade() -> None:
    """Drop the collections' minimum face quality."""
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("min_quality")
