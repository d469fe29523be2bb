"""Pushing a published night to an agency's own system (a table of its database, an SFTP folder
or an HTTP endpoint), besides its outbox and the RLS views.

What an agency is sent is what changed for it since its last acknowledged-or-not push: every
entity in its scope whose tier or score differs from the one it holds (everything, the first
time). A row whose tier changed because an objection was upheld, a record corrected or revoked,
or a repair accepted carries that cause. One push is one database transaction or one atomic file
(written beside its name, then renamed), identified by its publication hash, the sha256 of its
rows; the agency's receipt (a row of its receipt table, a ``.ack`` file, or the HTTP response)
must carry that hash to count. A push that fails leaves nothing behind and changes nothing of
what the agency is known to hold, so the next push carries the same changes again."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable

import pandas as pd
import sqlalchemy as sa

from scoring.common.law import decision_result
from scoring.exchange.fetch import http_error, http_request, open_sftp, sftp_error
from scoring.exchange.rows import csv_bytes
from scoring.exchange.secrets import Conn, ExchangeError, redact
from scoring.exchange.sources import safe_remote_path
from scoring.history import exchange as hx
from scoring.history.store import entity_results, runs
from scoring.publication.publish import in_scope

PUSH_COLUMNS = ["uscc", "name", "tier", "previous_tier", "score", "cause"]
CAUSES = {"correct": "correction", "revoke": "revocation", "repair": "repair"}


def latest_published(conn) -> str | None:
    q = (
        sa.select(runs.c.run_id)
        .where(runs.c.status == "published")
        .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
    )
    return conn.execute(q.limit(1)).scalar()


def causes_since(store, conn, after_cutoff, cutoff) -> dict[str, str]:
    """Subject -> the causes (sorted, comma-joined) of the changes learned in (after, cutoff]."""
    batches = [
        b
        for b in store.visible_batches(conn, "changes", cutoff)
        if after_cutoff is None or b["known_from"] > pd.Timestamp(after_cutoff).date()
    ]
    if not batches:
        return {}
    ch = store.read_batches(batches)
    cause = ch["op"].map(CAUSES).astype("string")
    upheld = (ch["op"] == "objection_closed") & (decision_result(ch["result"]) == "upheld")
    cause = cause.mask(upheld.fillna(False).to_numpy(dtype=bool), "objection_upheld")
    ch = ch.assign(cause=cause).dropna(subset=["cause", "subject_code"])
    return {
        str(k): ",".join(sorted(set(v))) for k, v in ch.groupby("subject_code", sort=True)["cause"]
    }


def payload(store, conn, agency: dict, run_id: str) -> tuple[list[dict], int]:
    """The rows the agency is sent for this run (sorted by USCC), and how many carry a cause."""
    res = pd.read_sql(
        sa.select(
            entity_results.c.uscc,
            entity_results.c.name,
            entity_results.c.division_code,
            entity_results.c.industry,
            entity_results.c.tier,
            entity_results.c.score,
        ).where(entity_results.c.run_id == run_id),
        conn,
    )
    res = res[in_scope(res, agency).to_numpy()].sort_values("uscc", kind="stable")
    held = hx.pushed_tiers(conn, agency["id"])
    base_runs = sorted({r for _, _, r in held.values()})
    cutoffs = dict(
        conn.execute(
            sa.select(runs.c.run_id, runs.c.knowledge_cutoff).where(runs.c.run_id.in_(base_runs))
        ).all()
    )
    cutoff = conn.execute(
        sa.select(runs.c.knowledge_cutoff).where(runs.c.run_id == run_id)
    ).scalar()
    causes = causes_since(store, conn, min(cutoffs.values()) if cutoffs else None, cutoff)
    rows, changed = [], 0
    for r in res.itertuples(index=False):
        old = held.get(r.uscc)
        if old is not None and old[0] == r.tier and old[1] == int(r.score):
            continue
        tier_changed = old is not None and old[0] != r.tier
        cause = causes.get(r.uscc, "re-evaluation") if tier_changed else ""
        changed += bool(cause)
        rows.append(
            {
                "uscc": r.uscc,
                "name": r.name or "",
                "tier": r.tier,
                "previous_tier": old[0] if old else "",
                "score": int(r.score),
                "cause": cause,
            }
        )
    return rows, changed


def publication_hash(agency_id: str, run_id: str, rows: list[dict]) -> str:
    body = csv_bytes(
        ["agency_id", "run_id", *PUSH_COLUMNS],
        [[agency_id, run_id, *[str(r[c]) for c in PUSH_COLUMNS]] for r in rows],
    )
    return hashlib.sha256(body).hexdigest()


def push_agency(
    store,
    agency: dict,
    target: dict,
    conn: Conn | ExchangeError,
    run_id: str | None,
    pushed_at: dt.datetime,
    say: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Collect the receipts of earlier pushes, then push this run's changes to one agency.
    Never raises for the target's own failures: a failed push is recorded with one line."""
    aid = agency["id"]
    at = pushed_at.replace(tzinfo=None)
    if not isinstance(conn, ExchangeError):
        collect_receipts(store, agency, target, conn, at, say)
    with store.engine.connect() as c:
        run_id = run_id or latest_published(c)
        if run_id is None:
            raise ExchangeError("no_run", "no published night to push")
        rows, changed = payload(store, c, agency, run_id)
    sha = publication_hash(aid, run_id, rows)
    row = dict(agency_id=aid, run_id=run_id, kind=target["kind"], pushed_at=at, sha256=sha)
    row.update(rows=len(rows), changed=changed, target=_target_name(target, run_id, aid, sha))
    code = None
    try:
        if isinstance(conn, ExchangeError):
            raise conn
        if not rows:
            row.update(status="unchanged", message="nothing changed for this agency")
        else:
            receipt = WRITERS[target["kind"]](target, conn, aid, run_id, sha, rows, at)
            row.update(status="pushed", message=f"{len(rows)} rows ({changed} with a cause)")
            if receipt == sha:
                row.update(status="acknowledged", acknowledged_at=at, receipt=receipt)
    except ExchangeError as exc:
        row.update(status="failed", message=redact(str(exc), _conn(conn)))
        code = exc.code
    with store.engine.begin() as c:
        row["push_id"] = hx.record_push(c, **row)
        if row["status"] in ("pushed", "acknowledged"):
            hx.save_pushed_tiers(c, aid, rows, run_id)
    row["code"] = code  # why it failed (not stored: the message says it): the DAG retries some
    say(f"push {aid}: {row['status']} — {row['message']}")
    return row


def _conn(conn) -> Conn | None:
    return conn if isinstance(conn, Conn) else None


def _target_name(target: dict, run_id: str, agency_id: str, sha: str) -> str:
    if target["kind"] == "sql":
        return str(target["table"])
    if target["kind"] == "sftp":
        return f"{target['path'].rstrip('/')}/{_file_name(run_id, agency_id, sha)}"
    return str(target.get("endpoint", ""))


def _file_name(run_id: str, agency_id: str, sha: str) -> str:
    return f"{run_id}_{agency_id}_{sha[:12]}.csv"


# ------------------------------------------------------------------------------------ writers


def _sql_engine(conn: Conn, timeout: float):
    return sa.create_engine(
        conn.sqlalchemy_url(),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": max(1, int(timeout))},
    )


def write_sql(target, conn, agency_id, run_id, sha, rows, at) -> str | None:
    eng = _sql_engine(conn, float(target.get("timeout_s", 30)))
    table = sa.table(
        target["table"],
        *[sa.column(c) for c in ["publication_sha256", "run_id", *PUSH_COLUMNS, "pushed_at"]],
    )
    try:
        with eng.begin() as c:  # one transaction: the agency sees all of it or nothing
            c.execute(
                table.insert(),
                [{"publication_sha256": sha, "run_id": run_id, "pushed_at": at, **r} for r in rows],
            )
    except sa.exc.SQLAlchemyError as exc:
        raise _write_error(agency_id, conn, exc) from None
    finally:
        eng.dispose()
    return None


def _write_error(agency_id: str, conn: Conn, exc) -> ExchangeError:
    """A database that did not answer may on the next try; one that answered and refused the
    login or the write (a constraint, a missing table) will refuse again."""
    msg = redact(str(getattr(exc, "orig", None) or exc), conn).split(" [SQL:")[0]
    low = msg.lower()
    if isinstance(exc, sa.exc.OperationalError):
        if "authentication failed" in low or "password" in low or "role" in low:
            return ExchangeError("auth", f"push {agency_id}: the target database refused the login")
        if "timeout" in low or "timed out" in low:
            return ExchangeError("timeout", f"push {agency_id}: the target did not answer in time")
        if ("connection" in low and "refused" in low) or "could not connect" in low:
            return ExchangeError("unreachable", f"push {agency_id}: {msg[:160]}")
    return ExchangeError("refused", f"push {agency_id}: the target refused the write: {msg[:160]}")


def write_sftp(target, conn, agency_id, run_id, sha, rows, at) -> str | None:
    folder = safe_remote_path(target["path"])
    name = _file_name(run_id, agency_id, sha)
    body = csv_bytes(
        ["publication_sha256", "run_id", *PUSH_COLUMNS],
        [[sha, run_id, *[str(r[c]) for c in PUSH_COLUMNS]] for r in rows],
    )
    timeout = float(target.get("timeout_s", 30))
    client = None
    try:
        client, sftp = open_sftp(conn, timeout)
        with sftp.open(f"{folder}/{name}.partial", "wb") as fh:
            fh.write(body)
        sftp.posix_rename(f"{folder}/{name}.partial", f"{folder}/{name}")
    except Exception as exc:  # the target is the unit of failure
        raise sftp_error(f"push {agency_id}", conn, exc, timeout) from None
    finally:
        if client is not None:
            client.close()
    return None


def write_http(target, conn, agency_id, run_id, sha, rows, at) -> str | None:
    doc = {"agency_id": agency_id, "run_id": run_id, "publication_sha256": sha, "rows": rows}
    timeout = float(target.get("timeout_s", 30))
    what = f"push {agency_id}"
    try:
        _, ctype, body = http_request(
            conn,
            f"{conn.base_url()}{target.get('endpoint', '')}",
            timeout,
            json.dumps(doc, ensure_ascii=False, sort_keys=True).encode("utf-8"),
        )
    except Exception as exc:  # the target is the unit of failure
        raise http_error(what, conn, exc, timeout) from None
    try:
        answer = json.loads(body.decode("utf-8")) if "json" in ctype.lower() else {}
    except (UnicodeDecodeError, ValueError):
        answer = {}
    return answer.get("receipt") if isinstance(answer, dict) else None


WRITERS = {"sql": write_sql, "sftp": write_sftp, "http": write_http}


# ----------------------------------------------------------------------------------- receipts


def collect_receipts(store, agency: dict, target: dict, conn: Conn, at, say) -> int:
    """Record the receipts that came back for this agency's outstanding pushes."""
    with store.engine.connect() as c:
        open_ = hx.pushes(c, agency["id"], status="pushed")
    if not open_ or target["kind"] == "http":
        return 0
    try:
        if target["kind"] == "sql":
            got = _sql_receipts(target, conn, [p["sha256"] for p in open_])
        else:
            got = _sftp_receipts(target, conn, open_)
    except ExchangeError as exc:
        say(f"push {agency['id']}: receipts: {redact(str(exc), conn)}")
        return 0
    with store.engine.begin() as c:
        for p in open_:
            if p["sha256"] in got:
                hx.acknowledge(c, p["push_id"], at, got[p["sha256"]])
    return sum(p["sha256"] in got for p in open_)


def _sql_receipts(target: dict, conn: Conn, shas: list[str]) -> dict[str, str]:
    if not target.get("receipt_table"):
        return {}
    eng = _sql_engine(conn, float(target.get("timeout_s", 30)))
    t = sa.table(
        target["receipt_table"], sa.column("publication_sha256"), sa.column("acknowledged_at")
    )
    try:
        with eng.connect() as c:
            found = c.execute(
                sa.select(t.c.publication_sha256, t.c.acknowledged_at).where(
                    t.c.publication_sha256.in_(shas)
                )
            ).all()
    except sa.exc.SQLAlchemyError as exc:
        msg = redact(str(getattr(exc, "orig", None) or exc), conn).split(" [SQL:")[0]
        raise ExchangeError("receipts", f"receipt table unreadable: {msg[:160]}") from None
    finally:
        eng.dispose()
    return {sha: f"{target['receipt_table']} row at {when}" for sha, when in found}


def _sftp_receipts(target: dict, conn: Conn, open_: list[dict]) -> dict[str, str]:
    folder = safe_remote_path(target["path"])
    timeout = float(target.get("timeout_s", 30))
    out = {}
    client = None
    try:
        client, sftp = open_sftp(conn, timeout)
        names = set(sftp.listdir(folder))
        for p in open_:
            ack = _file_name(p["run_id"], p["agency_id"], p["sha256"]) + ".ack"
            if ack in names:
                with sftp.open(f"{folder}/{ack}", "rb") as fh:
                    if p["sha256"] in fh.read(4096).decode("utf-8", "replace"):
                        out[p["sha256"]] = ack
    except Exception as exc:  # receipts are retried with the next push
        raise sftp_error("receipts", conn, exc, timeout) from None
    finally:
        if client is not None:
            client.close()
    return out
