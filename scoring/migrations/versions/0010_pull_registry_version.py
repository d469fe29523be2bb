"""exchange pulls name the provider registry version whose sources they pulled with

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("exchange_pulls", sa.Column("registry_sha256", sa.String(64)))


def downgrade() -> None:
    op.drop_column("exchange_pulls", "registry_sha256")
