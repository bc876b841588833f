"""Governance: accounts and keys, grants, cases and decisions, the audit chain, opt-outs, jobs, retention.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
GENESIS = "0" * 64


def upgrade() -> None:
    """Create the governance tables and the collections' retention column; seed the counters."""
    with op.batch_alter_table("collections") as batch:
        batch.add_column(sa.Column("retention_days", sa.Integer()))
    state = op.create_table(
        "catalog_state",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(state, [{"key": "generation", "value": 0}])
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("all_collections", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key_id", sa.String(32), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS),
    )
    op.create_index("ix_api_keys_user_id", "api_keys", ["user_id"])
    op.create_table(
        "collection_grants",
        sa.Column(
            "user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, nullable=False
        ),
        sa.Column(
            "collection_id",
            sa.Integer(),
            sa.ForeignKey("collections.id", ondelete="CASCADE"),
            primary_key=True,
            nullable=False,
        ),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("title", sa.Text()),
        sa.Column("opened_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS),
    )
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
        sa.Column("face_id", sa.Integer(), sa.ForeignKey("faces.id", ondelete="CASCADE"), nullable=False),
        sa.Column("audit_seq", sa.BigInteger()),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("decided_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_decisions_case_id", "decisions", ["case_id"])
    op.create_index("ix_decisions_face_id", "decisions", ["face_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("purpose", sa.String(100)),
        sa.Column("case_ref", sa.String(200)),
        sa.Column("probe_sha256", sa.Text()),
        sa.Column("details", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("seal", sa.String(64), nullable=False),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": GENESIS}])
    op.create_table(
        "optouts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "optout_embeddings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("optout_id", sa.Integer(), sa.ForeignKey("optouts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("pack", sa.String(120), nullable=False),
        sa.Column("embedding", sa.LargeBinary(), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
    )
    op.create_index("ix_optout_embeddings_optout_id", "optout_embeddings", ["optout_id"])
    op.create_index("ix_optout_embeddings_pack", "optout_embeddings", ["pack"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("collection", sa.String(200)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("files_total", sa.Integer(), nullable=False),
        sa.Column("files_done", sa.Integer(), nullable=False),
        sa.Column("faces", sa.Integer(), nullable=False),
        sa.Column("result", sa.Text()),
        sa.Column("error", sa.Text()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS),
        sa.Column("finished_at", TS),
    )


def downgrade() -> None:
    """Drop the governance tables and the retention column."""
    for table in (
        "jobs",
        "optout_embeddings",
        "optouts",
        "audit_head",
        "audit_log",
        "decisions",
        "cases",
        "collection_grants",
        "api_keys",
        "users",
        "catalog_state",
    ):
        op.drop_table(table)
    with op.batch_alter_table("collections") as batch:
        batch.drop_column("retention_days")
