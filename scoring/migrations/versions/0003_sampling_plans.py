"""sampling plans

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sampling_plans",
        sa.Column("plan_id", sa.String(length=120), nullable=False),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("as_of", sa.String(length=10), nullable=False),
        sa.Column("record_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id"),
    )
    with op.batch_alter_table("sampling_plans", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_sampling_plans_agency_id"), ["agency_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("sampling_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sampling_plans_agency_id"))

    op.drop_table("sampling_plans")
