"""publication times and read registration

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "delivered_at",
                sa.DateTime(timezone=True),
                server_default=sa.text("(CURRENT_TIMESTAMP)"),
                nullable=True,
            )
        )
    with op.batch_alter_table("read_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("db_role", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("query", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("read_log", schema=None) as batch_op:
        batch_op.drop_column("query")
        batch_op.drop_column("db_role")
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.drop_column("delivered_at")
