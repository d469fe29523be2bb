"""exchange: pulls from provider sources with their watermarks, pushes to agencies with receipts

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exchange_watermarks",
        sa.Column("source_id", sa.String(80), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("watermark", sa.String(40)),
        sa.Column("run_id", sa.String(80)),
    )
    op.create_table(
        "exchange_pulls",
        sa.Column("pull_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("source_id", sa.String(80), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("pulled_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("revoked", sa.Integer, nullable=False),
        sa.Column("watermark_before", sa.String(40)),
        sa.Column("watermark_after", sa.String(40)),
        sa.Column("paths_json", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("committed_by", sa.String(80)),
    )
    op.create_index("ix_exchange_pulls_source_id", "exchange_pulls", ["source_id"])
    op.create_table(
        "exchange_pushes",
        sa.Column("push_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("agency_id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("pushed_at", sa.DateTime, nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("changed", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64)),
        sa.Column("target", sa.String(300)),
        sa.Column("acknowledged_at", sa.DateTime),
        sa.Column("receipt", sa.Text),
        sa.Column("message", sa.Text),
    )
    op.create_index("ix_exchange_pushes_agency_id", "exchange_pushes", ["agency_id"])
    op.create_table(
        "exchange_pushed_tiers",
        sa.Column("agency_id", sa.String(40), nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False),
        sa.Column("tier", sa.String(1), nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("run_id", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("agency_id", "uscc", name="pk_exchange_pushed_tiers"),
    )


def downgrade() -> None:
    op.drop_table("exchange_pushed_tiers")
    op.drop_index("ix_exchange_pushes_agency_id", table_name="exchange_pushes")
    op.drop_table("exchange_pushes")
    op.drop_index("ix_exchange_pulls_source_id", table_name="exchange_pulls")
    op.drop_table("exchange_pulls")
    op.drop_table("exchange_watermarks")
