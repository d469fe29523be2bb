"""agency scopes and read log

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agency_scope",
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("role_name", sa.String(length=80), nullable=False),
        sa.Column("division_prefix", sa.String(length=12), nullable=False),
        sa.Column("industry", sa.String(length=2), nullable=True),
    )
    with op.batch_alter_table("agency_scope", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agency_scope_role_name"), ["role_name"], unique=False)

    op.create_table(
        "read_log",
        sa.Column("read_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=True),
        sa.Column("rows", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column(
            "read_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("(CURRENT_TIMESTAMP)"),
            nullable=True,
        ),
        sa.PrimaryKeyConstraint("read_id"),
    )


def downgrade() -> None:
    op.drop_table("read_log")
    with op.batch_alter_table("agency_scope", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agency_scope_role_name"))

    op.drop_table("agency_scope")
