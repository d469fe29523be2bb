"""read registration keyed by backend and statement (no reader-settable marker)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("read_log", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backend_pid", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("statement_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(
            "ix_read_log_statement", ["backend_pid", "statement_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("read_log", schema=None) as batch_op:
        batch_op.drop_index("ix_read_log_statement")
        batch_op.drop_column("statement_at")
        batch_op.drop_column("backend_pid")
