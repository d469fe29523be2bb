"""entity_results carries its entity-hash bucket; on PostgreSQL it is partitioned by range of it

Revision ID: 0007
Revises: 0006

Every result row gets ``part_bucket`` (0..1023, the bucket of its USCC by
scoring.common.partitions), computed here in Python by that module, never re-implemented in SQL.
On PostgreSQL the table is rebuilt as ``PARTITION BY RANGE (part_bucket)`` with 16 children of 64
buckets each (entity_results_p00 .. p15), so the rows of one partition of a night land in one
child. A table cannot be turned into a partitioned one in place, so it is rebuilt beside the old
one and swapped; what hangs on it (views, row-security policies, grants, owner, indexes, triggers,
comments) is read from the catalogue first and re-created on the new table as it was, so agency
roles read exactly as before. On SQLite the column is added (and filled) and joins the key.
"""

import sqlalchemy as sa
from alembic import op

from scoring.common.partitions import N_BUCKETS, bucket_of, bucket_range

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

TABLE = "entity_results"
PARTITIONS = 16
CHUNK = 200_000
TMP_BUCKETS = "_uscc_bucket_0007"


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        _rebuild_postgresql(conn, partitioned=True)
        return
    with op.batch_alter_table(TABLE, schema=None) as batch_op:
        batch_op.add_column(sa.Column("part_bucket", sa.Integer(), nullable=True))
    _fill_bucket_table(conn)
    conn.execute(
        sa.text(
            f"UPDATE {TABLE} SET part_bucket = (SELECT b.part_bucket FROM {TMP_BUCKETS} b "
            f"WHERE b.uscc = {TABLE}.uscc)"
        )
    )
    conn.execute(sa.text(f"DROP TABLE {TMP_BUCKETS}"))
    # Same key and nullability as on PostgreSQL, so the models describe both.
    with op.batch_alter_table(TABLE, schema=None, recreate="always") as batch_op:
        batch_op.alter_column("part_bucket", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("pk_entity_results", type_="primary")
        batch_op.create_primary_key("pk_entity_results", ["run_id", "uscc", "part_bucket"])


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        _rebuild_postgresql(conn, partitioned=False)
        return
    with op.batch_alter_table(TABLE, schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint("pk_entity_results", type_="primary")
        batch_op.create_primary_key("pk_entity_results", ["run_id", "uscc"])
        batch_op.drop_column("part_bucket")


# ------------------------------------------------------------------------------------ helpers


def _fill_bucket_table(conn) -> None:
    """A temporary table of (uscc, part_bucket) for every distinct USCC in the results, computed
    chunk by chunk (a whole nation's USCCs never sit in memory at once)."""
    conn.execute(
        sa.text(
            f"CREATE TEMPORARY TABLE {TMP_BUCKETS} (uscc VARCHAR(18) PRIMARY KEY, "
            f"part_bucket INTEGER NOT NULL)"
        )
    )
    # Options on the statement: Connection.execution_options would change the whole connection.
    res = conn.execute(
        sa.text(f"SELECT DISTINCT uscc FROM {TABLE}").execution_options(
            stream_results=True, max_row_buffer=CHUNK
        )
    )
    for rows in res.partitions(CHUNK):
        usccs = [r[0] for r in rows]
        buckets = bucket_of(usccs).tolist()
        if conn.dialect.name == "postgresql":
            with (
                conn.connection.driver_connection.cursor() as cur,
                cur.copy(f"COPY {TMP_BUCKETS} (uscc, part_bucket) FROM STDIN") as copy,
            ):
                for row in zip(usccs, buckets):
                    copy.write_row(row)
        else:
            conn.execute(
                sa.text(f"INSERT INTO {TMP_BUCKETS} (uscc, part_bucket) VALUES (:u, :b)"),
                [{"u": u, "b": b} for u, b in zip(usccs, buckets)],
            )


def _rebuild_postgresql(conn, partitioned: bool) -> None:
    """Build the new table beside the old, copy the rows, drop the old (and the views on it),
    rename the new into place and re-create everything that was attached to the old."""
    x = lambda sql, **kw: conn.execute(sa.text(sql), kw)  # noqa: E731
    attached = _attached(conn)
    new = f"{TABLE}_new"
    like = f"LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS"
    cols = [
        r[0]
        for r in x(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = CAST(:t AS regclass) "
            "AND attnum > 0 AND NOT attisdropped AND attname <> 'part_bucket' ORDER BY attnum",
            t=TABLE,
        )
    ]
    collist = ", ".join(cols)
    if partitioned:
        x(
            f"CREATE TABLE {new} ({like}, part_bucket INTEGER NOT NULL) PARTITION BY RANGE (part_bucket)"
        )
        for p in range(PARTITIONS):
            lo, hi = bucket_range(p, PARTITIONS)
            x(f"CREATE TABLE {TABLE}_p{p:02d} PARTITION OF {new} FOR VALUES FROM ({lo}) TO ({hi})")
        assert bucket_range(PARTITIONS - 1, PARTITIONS)[1] == N_BUCKETS
        _fill_bucket_table(conn)
        moved = x(
            f"INSERT INTO {new} ({collist}, part_bucket) SELECT {', '.join('e.' + c for c in cols)}, "
            f"b.part_bucket FROM {TABLE} e JOIN {TMP_BUCKETS} b ON b.uscc = e.uscc"
        ).rowcount
        x(f"DROP TABLE {TMP_BUCKETS}")
        key = "run_id, uscc, part_bucket"  # the partition key must be part of every unique key
    else:
        x(f"CREATE TABLE {new} ({like})")
        x(f"ALTER TABLE {new} DROP COLUMN part_bucket")
        moved = x(f"INSERT INTO {new} ({collist}) SELECT {collist} FROM {TABLE}").rowcount
        key = "run_id, uscc"
    total = x(f"SELECT count(*) FROM {TABLE}").scalar()
    if moved != total:
        raise RuntimeError(f"{TABLE}: copied {moved} rows of {total}; nothing was changed")

    for v in sorted(attached["views"], key=lambda v: -v["depth"]):
        x(f"DROP VIEW {v['name']}")
    x(f"DROP TABLE {TABLE}")  # no CASCADE: anything not re-created here stops the migration
    x(f"ALTER TABLE {new} RENAME TO {TABLE}")
    x(f"ALTER TABLE {TABLE} ADD CONSTRAINT pk_entity_results PRIMARY KEY ({key})")
    _restore(conn, attached, partitioned)


def _attached(conn) -> dict:
    """Everything attached to entity_results that a rebuild would lose, read from the catalogue
    while the table still has its name (so expressions deparse naming it)."""
    q = lambda sql: [dict(r._mapping) for r in conn.execute(sa.text(sql), {"t": TABLE})]  # noqa: E731
    rel = "CAST(:t AS regclass)"
    table = q(f"""SELECT quote_ident(pg_get_userbyid(relowner)) AS owner, relrowsecurity AS rls,
                         relforcerowsecurity AS force_rls, quote_literal(obj_description(oid, 'pg_class')) AS comment
                  FROM pg_class WHERE oid = {rel}""")[0]
    policies = q(f"""SELECT quote_ident(polname) AS name, polcmd AS cmd, polpermissive AS permissive,
                            ARRAY(SELECT CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END
                                  FROM unnest(polroles) r ORDER BY 1) AS roles,
                            pg_get_expr(polqual, polrelid) AS qual, pg_get_expr(polwithcheck, polrelid) AS wcheck
                     FROM pg_policy WHERE polrelid = {rel} ORDER BY polname""")
    constraints = q(f"""SELECT quote_ident(conname) AS name, pg_get_constraintdef(oid) AS def FROM pg_constraint
                        WHERE conrelid = {rel} AND contype IN ('u', 'f', 'x') ORDER BY conname""")
    indexes = q(f"""SELECT pg_get_indexdef(indexrelid) AS def FROM pg_index i WHERE indrelid = {rel}
                    AND NOT indisprimary AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
                    ORDER BY indexrelid""")
    triggers = q(f"""SELECT pg_get_triggerdef(oid) AS def FROM pg_trigger WHERE tgrelid = {rel} AND NOT tgisinternal
                     ORDER BY tgname""")
    views = q(f"""WITH RECURSIVE deps(oid, depth) AS (
                    SELECT r.ev_class, 1 FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid
                    WHERE d.classid = 'pg_rewrite'::regclass AND d.refobjid = {rel} AND r.ev_class <> {rel}
                    UNION
                    SELECT r.ev_class, deps.depth + 1 FROM deps JOIN pg_depend d ON d.refobjid = deps.oid
                    JOIN pg_rewrite r ON r.oid = d.objid
                    WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class <> deps.oid)
                  SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname) AS name, c.relkind AS kind,
                         max(deps.depth) AS depth, pg_get_viewdef(c.oid) AS def, c.reloptions AS options,
                         quote_ident(pg_get_userbyid(c.relowner)) AS owner,
                         quote_literal(obj_description(c.oid, 'pg_class')) AS comment
                  FROM deps JOIN pg_class c ON c.oid = deps.oid JOIN pg_namespace n ON n.oid = c.relnamespace
                  GROUP BY c.oid, n.nspname, c.relname ORDER BY max(deps.depth), c.oid""")
    for v in views:
        if v["kind"] != "v":
            raise NotImplementedError(
                f"{v['name']} (relkind {v['kind']}) depends on {TABLE}: only plain views "
                f"are re-created by this migration; drop it first and re-create it after"
            )
        v["grants"] = _grants(conn, v["oid"])
    return {
        "table": table,
        "policies": policies,
        "constraints": constraints,
        "indexes": indexes,
        "triggers": triggers,
        "views": views,
        "grants": _grants(conn, TABLE),
    }


def _grants(conn, rel) -> list[str]:
    """GRANT statements (table and column level) reproducing the relation's access list."""
    target = "CAST(:t AS regclass)" if isinstance(rel, str) else "CAST(:t AS oid)"
    rows = conn.execute(
        sa.text(f"""
        SELECT a.privilege_type AS priv, a.is_grantable AS grantable, NULL AS col,
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END AS grantee
        FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = {target}
        UNION ALL
        SELECT a.privilege_type, a.is_grantable, quote_ident(att.attname),
               CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END
        FROM pg_attribute att, aclexplode(att.attacl) a WHERE att.attrelid = {target} AND att.attacl IS NOT NULL
        ORDER BY 3 NULLS FIRST, 4, 1"""),
        {"t": rel},
    )
    return [
        f"GRANT {r.priv}{f' ({r.col})' if r.col else ''} ON {{rel}} TO {r.grantee}"
        f"{' WITH GRANT OPTION' if r.grantable else ''}"
        for r in rows
    ]


def _restore(conn, a: dict, partitioned: bool) -> None:
    # Replayed text is passed to the driver as is (no parameters): policy and view definitions hold
    # '%' and '::', which a parameter style would read as placeholders.
    raw = conn.connection.driver_connection
    x = lambda sql: raw.execute(sql)  # noqa: E731
    me = conn.execute(sa.text("SELECT quote_ident(current_user)")).scalar()
    t = a["table"]
    children = [f"{TABLE}_p{p:02d}" for p in range(PARTITIONS)] if partitioned else []
    if t["owner"] != me:
        for rel in [TABLE, *children]:
            x(f"ALTER TABLE {rel} OWNER TO {t['owner']}")
    if t["comment"] is not None:
        x(f"COMMENT ON TABLE {TABLE} IS {t['comment']}")
    # The table's privileges exactly as they were (a new table starts with the owner's only).
    x(f"REVOKE ALL ON {TABLE} FROM PUBLIC")
    for g in a["grants"]:
        x(g.format(rel=TABLE))
    for c in a["constraints"]:
        x(f"ALTER TABLE {TABLE} ADD CONSTRAINT {c['name']} {c['def']}")
    for i in a["indexes"]:
        x(i["def"])
    for tr in a["triggers"]:
        x(tr["def"])
    if t["rls"]:
        x(f"ALTER TABLE {TABLE} ENABLE ROW LEVEL SECURITY")
    if t["force_rls"]:
        x(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    # A query on the parent applies the parent's policies; the children get none and row security
    # on, so anyone ever granted a child directly reads nothing from it.
    for child in children:
        x(f"ALTER TABLE {child} ENABLE ROW LEVEL SECURITY")
    cmds = {"r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE", "*": "ALL"}
    for p in a["policies"]:
        using = f" USING ({p['qual']})" if p["qual"] else ""
        check = f" WITH CHECK ({p['wcheck']})" if p["wcheck"] else ""
        kind = "PERMISSIVE" if p["permissive"] else "RESTRICTIVE"
        x(
            f"CREATE POLICY {p['name']} ON {TABLE} AS {kind} FOR {cmds[p['cmd']]} TO {', '.join(p['roles'])}"
            f"{using}{check}"
        )
    for v in a["views"]:
        opts = f" WITH ({', '.join(v['options'])})" if v["options"] else ""
        x(f"CREATE VIEW {v['name']}{opts} AS {v['def']}")
        if v["owner"] != me:
            x(f"ALTER VIEW {v['name']} OWNER TO {v['owner']}")
        if v["comment"] is not None:
            x(f"COMMENT ON VIEW {v['name']} IS {v['comment']}")
        x(f"REVOKE ALL ON {v['name']} FROM PUBLIC")
        for g in v["grants"]:
            x(g.format(rel=v["name"]))
