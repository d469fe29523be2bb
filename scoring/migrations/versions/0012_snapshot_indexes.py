"""full-snapshot providers: the index of each feed's last accepted snapshot, and the rows a file
withdrew counted on its landed_files row

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshot_indexes",
        sa.Column("index_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("feed", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(80), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("index_file", sa.String(300), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_index("ix_snapshot_indexes_feed", "snapshot_indexes", ["provider", "feed"])
    op.add_column(
        "landed_files",
        sa.Column("withdrawn", sa.Integer, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("landed_files", "withdrawn")
    op.drop_index("ix_snapshot_indexes_feed", "snapshot_indexes")
    op.drop_table("snapshot_indexes")
