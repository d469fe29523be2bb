"""deliveries: arrival time and rows excluded as repeats; gate waivers

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("landed_files", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arrived_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("excluded", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("gate_results", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waiver", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("gate_results", schema=None) as batch_op:
        batch_op.drop_column("waiver")
    with op.batch_alter_table("landed_files", schema=None) as batch_op:
        batch_op.drop_column("excluded")
        batch_op.drop_column("arrived_at")
