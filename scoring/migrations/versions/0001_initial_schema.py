"""initial schema

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=True),
        sa.Column("content_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )
    op.create_table(
        "entity_results",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("division_code", sa.String(length=6), nullable=True),
        sa.Column("industry", sa.String(length=2), nullable=True),
        sa.Column("eval_class", sa.String(length=30), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("tier", sa.String(length=1), nullable=False),
        sa.Column("dim_law_abiding", sa.Float(), nullable=True),
        sa.Column("dim_contracts_promises", sa.Float(), nullable=True),
        sa.Column("dim_qualifications_honours", sa.Float(), nullable=True),
        sa.Column("dim_social_responsibility", sa.Float(), nullable=True),
        sa.Column("dim_supervisory_risk", sa.Float(), nullable=True),
        sa.Column("override", sa.String(length=40), nullable=True),
        sa.Column("flags", sa.String(length=200), nullable=True),
        sa.Column("reasons", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "uscc", name="pk_entity_results"),
    )
    op.create_table(
        "gate_results",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("gate", sa.String(length=60), nullable=False),
        sa.Column("scope", sa.String(length=500), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("observed", sa.String(length=200), nullable=True),
        sa.Column("threshold", sa.String(length=200), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "gate", "scope", name="pk_gate_results"),
    )
    with op.batch_alter_table("gate_results", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gate_results_run_id"), ["run_id"], unique=False)

    op.create_table(
        "landed_files",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("feed", sa.String(length=40), nullable=True),
        sa.Column("layout", sa.String(length=40), nullable=True),
        sa.Column("encoding", sa.String(length=20), nullable=True),
        sa.Column("file_format", sa.String(length=10), nullable=True),
        sa.Column("delivered_on", sa.Date(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("n_bytes", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reject_code", sa.String(length=40), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("quarantined", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "path", name="pk_landed_files"),
    )
    with op.batch_alter_table("landed_files", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_landed_files_run_id"), ["run_id"], unique=False)

    op.create_table(
        "publications",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("agency_id", sa.String(length=40), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "agency_id", "path", name="pk_publications"),
    )
    op.create_table(
        "quarantine",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("provider", sa.String(length=40), nullable=False),
        sa.Column("reasons", sa.String(length=400), nullable=False),
        sa.Column("raw_json", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id", "path", "line_no", name="pk_quarantine"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_quarantine_run_id"), ["run_id"], unique=False)

    op.create_table(
        "record_batches",
        sa.Column("batch_id", sa.String(length=120), nullable=False),
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("known_from", sa.Date(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("batch_id"),
    )
    with op.batch_alter_table("record_batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_record_batches_run_id"), ["run_id"], unique=False)

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=80), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("knowledge_cutoff", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=True),
        sa.Column("catalogue_sha256", sa.String(length=64), nullable=True),
        sa.Column("policy_sha256", sa.String(length=64), nullable=True),
        sa.Column("input_sha256", sa.String(length=64), nullable=True),
        sa.Column("output_sha256", sa.String(length=64), nullable=True),
        sa.Column("entities_scored", sa.Integer(), nullable=True),
        sa.Column("tiers_json", sa.Text(), nullable=True),
        sa.Column("manifest_json", sa.Text(), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("run_id"),
    )


def downgrade() -> None:
    op.drop_table("runs")
    with op.batch_alter_table("record_batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_batches_run_id"))

    op.drop_table("record_batches")
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_quarantine_run_id"))

    op.drop_table("quarantine")
    op.drop_table("publications")
    with op.batch_alter_table("landed_files", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_landed_files_run_id"))

    op.drop_table("landed_files")
    with op.batch_alter_table("gate_results", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gate_results_run_id"))

    op.drop_table("gate_results")
    op.drop_table("entity_results")
    op.drop_table("artifacts")
