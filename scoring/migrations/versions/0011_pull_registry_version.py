"""exchange pulls name the provider registry version whose sources they pulled with

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchange_pulls", sa.Column("registry_sha256", sa.String(64)))


def downgrade() -> None:
    op.drop_column("exchange_pulls", "registry_sha256")
