"""A picture's own legal basis, when its manifest gave one (the collection's applies otherwise).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``images.legal_basis`` (nullable: no table is rewritten)."""
    op.add_column("images", sa.Column("legal_basis", sa.Text(), nullable=True))


def downgrade() -> None:
    """Drop ``images.legal_basis``."""
    with op.batch_alter_table("images") as table:
        table.drop_column("legal_basis")
