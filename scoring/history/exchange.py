"""Exchange state: what was pulled from each provider source, its watermark, what was pushed to
each agency and the receipts that came back. Every statement about them is a function here.

A source's watermark moves only when a night that read the pulled delivery has published
(``commit_watermarks``): a pull of a night that fails is pulled again, from the same watermark."""

from __future__ import annotations

import json

import sqlalchemy as sa

from scoring.history.store import landed_files, metadata, runs

# Statuses of a pull: ok (a delivery written), repeat (the same bytes as an earlier pull of this
# source), empty (nothing after the watermark), failed (nothing written; the reason is one line).
PULLED = ("ok", "repeat")
READ_STATUSES = ("stored", "same_content")

exchange_watermarks = sa.Table(
    "exchange_watermarks",
    metadata,
    sa.Column("source_id", sa.String(80), primary_key=True),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("watermark", sa.String(40)),  # ISO timestamp or the source's own sortable text
    sa.Column("run_id", sa.String(80)),  # the published night that moved it
)

exchange_pulls = sa.Table(
    "exchange_pulls",
    metadata,
    sa.Column("pull_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_id", sa.String(80), nullable=False, index=True),
    sa.Column("provider", sa.String(40), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # sql | sftp | http
    sa.Column("as_of", sa.Date, nullable=False),  # the night the pull was made for
    sa.Column("pulled_at", sa.DateTime, nullable=False),  # UTC: the delivery's arrival time
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("rows", sa.Integer, nullable=False, default=0),
    sa.Column("revoked", sa.Integer, nullable=False, default=0),
    sa.Column("watermark_before", sa.String(40)),
    sa.Column("watermark_after", sa.String(40)),
    sa.Column("paths_json", sa.Text),  # [[landing path, sha256], ...] written by this pull
    sa.Column("message", sa.Text),  # secrets never reach it (scoring.exchange.secrets)
    sa.Column("committed_by", sa.String(80)),  # the published run that read it
    sa.Column("registry_sha256", sa.String(64)),  # the provider registry version it pulled with
)

exchange_pushes = sa.Table(
    "exchange_pushes",
    metadata,
    sa.Column("push_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("agency_id", sa.String(40), nullable=False, index=True),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),  # sql | sftp | http
    sa.Column("pushed_at", sa.DateTime, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pushed|acknowledged|failed|unchanged
    sa.Column("rows", sa.Integer, nullable=False, default=0),
    sa.Column("changed", sa.Integer, nullable=False, default=0),  # rows marked with a cause
    sa.Column("sha256", sa.String(64)),  # the publication hash the receipt must carry
    sa.Column("target", sa.String(300)),  # table, remote file or endpoint (never a secret)
    sa.Column("acknowledged_at", sa.DateTime),
    sa.Column("receipt", sa.Text),
    sa.Column("message", sa.Text),
)

# What each agency holds: the tier it was last sent per entity (the base of the next push).
exchange_pushed_tiers = sa.Table(
    "exchange_pushed_tiers",
    metadata,
    sa.Column("agency_id", sa.String(40), nullable=False),
    sa.Column("uscc", sa.String(18), nullable=False),
    sa.Column("tier", sa.String(1), nullable=False),
    sa.Column("score", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(80), nullable=False),
    sa.PrimaryKeyConstraint("agency_id", "uscc", name="pk_exchange_pushed_tiers"),
)


def watermark(conn, source_id: str) -> str | None:
    return conn.execute(
        sa.select(exchange_watermarks.c.watermark).where(
            exchange_watermarks.c.source_id == source_id
        )
    ).scalar()


def record_pull(conn, **row) -> int:
    return conn.execute(exchange_pulls.insert().values(**row)).inserted_primary_key[0]


def pulls(conn, source_id: str | None = None, as_of=None) -> list[dict]:
    q = sa.select(exchange_pulls).order_by(exchange_pulls.c.pull_id)
    if source_id is not None:
        q = q.where(exchange_pulls.c.source_id == source_id)
    if as_of is not None:
        q = q.where(exchange_pulls.c.as_of == as_of)
    return [dict(r._mapping) for r in conn.execute(q)]


def read_by_published_runs(conn, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(path, sha256) -> the first published run that read these very bytes."""
    if not pairs:
        return {}
    q = (
        sa.select(landed_files.c.path, landed_files.c.sha256, landed_files.c.run_id)
        .join(runs, runs.c.run_id == landed_files.c.run_id)
        .where(runs.c.status == "published")
        .where(landed_files.c.status.in_(READ_STATUSES))
        .where(landed_files.c.path.in_(sorted({p for p, _ in pairs})))
        .order_by(landed_files.c.run_id)
    )
    out: dict[tuple[str, str], str] = {}
    wanted = set(pairs)
    for path, sha, run_id in conn.execute(q):
        if (path, sha) in wanted:
            out.setdefault((path, sha), run_id)
    return out


def commit_pull(conn, pull: dict, run_id: str, advance: bool) -> None:
    """The pull was read by a published night; ``advance``: its watermark becomes the source's."""
    conn.execute(
        exchange_pulls.update()
        .where(exchange_pulls.c.pull_id == pull["pull_id"])
        .values(committed_by=run_id)
    )
    if not advance or pull["watermark_after"] is None:
        return
    values = dict(provider=pull["provider"], watermark=pull["watermark_after"], run_id=run_id)
    done = conn.execute(
        exchange_watermarks.update()
        .where(exchange_watermarks.c.source_id == pull["source_id"])
        .values(**values)
    )
    if not done.rowcount:
        conn.execute(exchange_watermarks.insert().values(source_id=pull["source_id"], **values))


def uncommitted_pulls(conn) -> list[dict]:
    q = (
        sa.select(exchange_pulls)
        .where(exchange_pulls.c.status.in_(PULLED))
        .where(exchange_pulls.c.committed_by.is_(None))
        .order_by(exchange_pulls.c.pull_id)
    )
    return [dict(r._mapping) for r in conn.execute(q)]


def pulled_with(conn, files: list[dict]) -> list[dict]:
    """The pulls whose files a night read (not yet settled by a published night), each with the
    provider registry version whose sources it pulled with: the manifest names them."""
    read = {(f["path"], f["sha256"]) for f in files if f.get("status") != "rejected"}
    out = []
    for p in uncommitted_pulls(conn):
        pairs = {tuple(x) for x in json.loads(p["paths_json"] or "[]")}
        if pairs & read:
            out.append(
                {
                    "pull_id": p["pull_id"],
                    "source_id": p["source_id"],
                    "providers_sha256": p["registry_sha256"],
                }
            )
    return out


def watermarks(conn) -> dict[str, dict]:
    return {
        r.source_id: dict(r._mapping)
        for r in conn.execute(sa.select(exchange_watermarks).order_by("source_id"))
    }


def record_push(conn, **row) -> int:
    return conn.execute(exchange_pushes.insert().values(**row)).inserted_primary_key[0]


def acknowledge(conn, push_id: int, at, receipt: str) -> None:
    conn.execute(
        exchange_pushes.update()
        .where(exchange_pushes.c.push_id == push_id)
        .values(status="acknowledged", acknowledged_at=at, receipt=receipt)
    )


def pushes(conn, agency_id: str | None = None, status: str | None = None) -> list[dict]:
    q = sa.select(exchange_pushes).order_by(exchange_pushes.c.push_id)
    if agency_id is not None:
        q = q.where(exchange_pushes.c.agency_id == agency_id)
    if status is not None:
        q = q.where(exchange_pushes.c.status == status)
    return [dict(r._mapping) for r in conn.execute(q)]


def pushed_tiers(conn, agency_id: str) -> dict[str, tuple[str, int, str]]:
    t = exchange_pushed_tiers
    q = sa.select(t.c.uscc, t.c.tier, t.c.score, t.c.run_id).where(t.c.agency_id == agency_id)
    return {r.uscc: (r.tier, r.score, r.run_id) for r in conn.execute(q)}


def save_pushed_tiers(conn, agency_id: str, rows: list[dict], run_id: str) -> None:
    t = exchange_pushed_tiers
    keys = sorted(r["uscc"] for r in rows)
    for i in range(0, len(keys), 5000):
        conn.execute(
            t.delete().where(t.c.agency_id == agency_id).where(t.c.uscc.in_(keys[i : i + 5000]))
        )
    if rows:
        conn.execute(
            t.insert(),
            [
                {
                    "agency_id": agency_id,
                    "uscc": r["uscc"],
                    "tier": r["tier"],
                    "score": int(r["score"]),
                    "run_id": run_id,
                }
                for r in rows
            ],
        )


def agency_exchange(conn) -> list[dict]:
    """Per agency: last pushed, last acknowledged, outstanding (pushed, not acknowledged)."""
    out: dict[str, dict] = {}
    for p in pushes(conn):
        a = out.setdefault(
            p["agency_id"],
            {
                "agency_id": p["agency_id"],
                "last_pushed": None,
                "last_acknowledged": None,
                "outstanding": [],
                "failed": 0,
            },
        )
        if p["status"] == "unchanged":  # nothing was sent, nothing to confirm
            continue
        if p["status"] == "failed":
            a["failed"] += 1
            a["last_failure"] = p["message"]
            continue
        a["last_pushed"] = p["run_id"]
        if p["status"] == "acknowledged":
            a["last_acknowledged"] = p["run_id"]
        else:
            a["outstanding"].append(p["run_id"])
    return [out[k] for k in sorted(out)]
