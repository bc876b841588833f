"""Case members and case candidates: who may read a case, and which faces its reviewers may read and decide on.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``case_members`` and ``case_candidates``."""
    op.create_table(
        "case_members",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("added_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_case_members_user_id", "case_members", ["user_id"])
    op.create_table(
        "case_candidates",
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("audit_seq", sa.BigInteger(), nullable=False),
        sa.Column("similarity", sa.Float(), nullable=False),
    )
    op.create_index("ix_case_candidates_face_id", "case_candidates", ["face_id"])


def downgrade() -> None:
    """Drop ``case_candidates`` and ``case_members``."""
    op.drop_index("ix_case_candidates_face_id", table_name="case_candidates")
    op.drop_table("case_candidates")
    op.drop_index("ix_case_members_user_id", table_name="case_members")
    op.drop_table("case_members")
