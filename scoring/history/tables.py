"""The credit database's tables (SQLAlchemy Core): the runs, what landed and what was quarantined,
the gates, the record batches, the results, publications and reads, sampling plans, artifacts and
the policy registry. Alembic compares the database with ``metadata``."""

from __future__ import annotations

import sqlalchemy as sa

from scoring.common.partitions import BUCKET_COLUMN, bucket_of

metadata = sa.MetaData()


def _bucket_default(context) -> int:
    """The bucket of a result row inserted without one, from its USCC."""
    return int(bucket_of([context.get_current_parameters()["uscc"]])[0])


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # nightly | rerun | backfill
    sa.Column("as_of", sa.Date, nullable=False),
    sa.Column("knowledge_cutoff", sa.Date, nullable=False),
    sa.Column(
        "status", sa.String(20), nullable=False
    ),  # running | gate_failed | scored | published | failed | loaded (a backfill file)
    sa.Column("step", sa.String(20)),
    sa.Column("catalogue_sha256", sa.String(64)),
    sa.Column("policy_sha256", sa.String(64)),
    sa.Column("input_sha256", sa.String(64)),
    sa.Column("output_sha256", sa.String(64)),
    sa.Column("entities_scored", sa.Integer),
    sa.Column("tiers_json", sa.Text),
    sa.Column("manifest_json", sa.Text),
    sa.Column("message", sa.Text),
)

landed_files = sa.Table(
    "landed_files",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("path", sa.String(500), nullable=False),  # relative to the landing folder
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("feed", sa.String(40)),
    sa.Column("layout", sa.String(40)),
    sa.Column("encoding", sa.String(20)),
    sa.Column("file_format", sa.String(10)),
    sa.Column("delivered_on", sa.Date),
    sa.Column("arrived_at", sa.DateTime),  # file modification time (UTC): when it landed
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("n_bytes", sa.BigInteger),
    sa.Column(
        "status", sa.String(20), nullable=False
    ),  # staged | stored | rejected | held | same_content
    sa.Column("reject_code", sa.String(40)),
    sa.Column("message", sa.Text),
    sa.Column("received", sa.Integer, nullable=False, default=0),
    sa.Column("accepted", sa.Integer, nullable=False, default=0),
    sa.Column("quarantined", sa.Integer, nullable=False, default=0),
    sa.Column(
        "excluded", sa.Integer, nullable=False, default=0, server_default="0"
    ),  # repeats of an earlier delivery, rows of a snapshot unchanged since the previous one
    # rows a snapshot withdrew (keys of the previous snapshot it no longer carries): staged beside
    # the received ones, so received + withdrawn = accepted + quarantined + excluded
    sa.Column("withdrawn", sa.Integer, nullable=False, default=0, server_default="0"),
    sa.PrimaryKeyConstraint("run_id", "path", name="pk_landed_files"),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("line_no", sa.Integer, nullable=False),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("reasons", sa.String(400), nullable=False),  # comma-separated stable reason codes
    sa.Column("raw_json", sa.Text),
    sa.PrimaryKeyConstraint("run_id", "path", "line_no", name="pk_quarantine"),
)

gate_results = sa.Table(
    "gate_results",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("gate", sa.String(60), nullable=False),
    sa.Column("scope", sa.String(500), nullable=False),
    sa.Column("hard", sa.Boolean, nullable=False),
    sa.Column("passed", sa.Boolean, nullable=False),
    sa.Column("observed", sa.String(200)),
    sa.Column("threshold", sa.String(200)),
    sa.Column("message", sa.Text),
    sa.Column("waiver", sa.Text),  # who waived this failed gate, and why
    sa.PrimaryKeyConstraint("run_id", "gate", "scope", name="pk_gate_results"),
)

record_batches = sa.Table(
    "record_batches",
    metadata,
    sa.Column("batch_id", sa.String(120), primary_key=True),
    sa.Column("run_id", sa.String(80), nullable=False, index=True),
    sa.Column("table_name", sa.String(40), nullable=False),  # records | entities
    sa.Column("known_from", sa.Date, nullable=False),
    sa.Column("path", sa.String(500), nullable=False),  # relative to the lake folder
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
)

entity_results = sa.Table(
    "entity_results",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("uscc", sa.String(18), nullable=False),
    sa.Column("name", sa.String(200)),
    sa.Column("division_code", sa.String(6)),
    sa.Column("industry", sa.String(2)),
    sa.Column("eval_class", sa.String(30)),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("tier", sa.String(1), nullable=False),
    sa.Column("dim_law_abiding", sa.Float),
    sa.Column("dim_contracts_promises", sa.Float),
    sa.Column("dim_qualifications_honours", sa.Float),
    sa.Column("dim_social_responsibility", sa.Float),
    sa.Column("dim_supervisory_risk", sa.Float),
    sa.Column("override", sa.String(40)),
    sa.Column("flags", sa.String(200)),
    sa.Column("reasons", sa.Text),
    # The entity-hash bucket of the USCC: on PostgreSQL the table is partitioned by range of it
    # (migration 0007), so it is part of the key. Bulk writes fill it (insert_frame); single-row
    # Core inserts get it from the USCC through the default.
    sa.Column(BUCKET_COLUMN, sa.Integer, nullable=False, default=_bucket_default),
    sa.PrimaryKeyConstraint("run_id", "uscc", BUCKET_COLUMN, name="pk_entity_results"),
)

publications = sa.Table(
    "publications",
    metadata,
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("path", sa.String(500), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("delivered_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.PrimaryKeyConstraint("run_id", "agency_id", "path", name="pk_publications"),
)

agency_scope = sa.Table(
    "agency_scope",
    metadata,
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("role_name", sa.String(80), nullable=False, index=True),
    sa.Column("division_prefix", sa.String(12), nullable=False),
    sa.Column("industry", sa.String(2)),
)

read_log = sa.Table(
    "read_log",
    metadata,
    sa.Column("read_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("run_id", sa.String(80)),
    sa.Column("rows", sa.Integer),
    sa.Column("channel", sa.String(20), nullable=False),  # sql | file | cli
    sa.Column("read_at", sa.DateTime(timezone=True), server_default=sa.func.now()),
    sa.Column("db_role", sa.String(80)),  # the database role that read
    sa.Column("query", sa.Text),  # the statement it ran (query registration)
    sa.Column("backend_pid", sa.Integer),  # with statement_at: "once per statement"
    sa.Column("statement_at", sa.DateTime(timezone=True)),
    sa.Index("ix_read_log_statement", "backend_pid", "statement_at"),
)

sampling_plans = sa.Table(
    "sampling_plans",
    metadata,
    sa.Column("plan_id", sa.String(120), primary_key=True),
    sa.Column("agency_id", sa.String(40), nullable=False, index=True),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("as_of", sa.String(10), nullable=False),
    sa.Column("record_json", sa.Text, nullable=False),  # the draw record, hashed inside
)

artifacts = sa.Table(
    "artifacts",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(20), nullable=False),  # catalogue | policy | model
    sa.Column("label", sa.String(100)),
    sa.Column("content_json", sa.Text, nullable=False),
)


# Every policy approval, in the order recorded: the one record of which policy is in force from
# when, by whose approval (scoring.history.policy_registry reads and writes it).
policy_registry = sa.Table(
    "policy_registry",
    metadata,
    sa.Column("entry_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("origin", sa.String(40), nullable=False),  # shipped seed | file | candidate | ...
    sa.Column("source", sa.String(200), nullable=False),  # the file name or candidate id
    sa.Column("document_json", sa.Text, nullable=False),  # the policy itself, as approved
    sa.Column("effective_from", sa.String(10), nullable=False),
    sa.Column("approved_by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("diff_json", sa.Text),  # the diff it was approved on (reference and body)
    # None: shipped with the code, or carried over from a history that kept no time
    sa.Column("recorded_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("sha256", "effective_from", name="uq_policy_registry_entry"),
)


def schema_include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Alembic's filter for comparing the database with these models: a partition of a table
    (PostgreSQL reflects it as a table inheriting from its parent) is that table's storage, not a
    table of its own, so autogenerate and the drift check leave it out."""
    return not (
        type_ == "table"
        and reflected
        and compare_to is None
        and obj.kwargs.get("postgresql_inherits")
    )
