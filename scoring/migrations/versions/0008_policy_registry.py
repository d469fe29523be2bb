"""one policy registry in the database (seeded from the shipped history; older histories carried over)

Revision ID: 0008
Revises: 0007

Until now two files decided which policy was in force: config/policy/history.yaml (approved
files were appended to it) and $CREDIT_HOME/policy/history.json (promoted candidates). The
registry replaces both. A new store gets the shipped seed; an existing one also gets the entries
its yaml holds beyond the shipped ones and those of its history.json, documents and diffs
included, so what was approved stays on record. Neither file is written or removed.
"""

from pathlib import Path

import sqlalchemy as sa
from alembic import context, op

from scoring.history.policy_registry import seed_and_carry_over

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_registry",
        sa.Column("entry_id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("origin", sa.String(length=40), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("document_json", sa.Text(), nullable=False),
        sa.Column("effective_from", sa.String(length=10), nullable=False),
        sa.Column("approved_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("diff_json", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("entry_id"),
        sa.UniqueConstraint("sha256", "effective_from", name="uq_policy_registry_entry"),
    )
    attrs = context.config.attributes
    home, seed = attrs.get("credit_home"), attrs.get("policy_seed")
    seed_and_carry_over(op.get_bind(), Path(seed) if seed else None, Path(home) if home else None)


def downgrade() -> None:
    op.drop_table("policy_registry")
