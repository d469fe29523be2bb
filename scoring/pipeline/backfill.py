"""The go-live backfill: a province's history loaded from its landing folder file by file, each file
a run of its own (``backfill-YYYYMMDD-nnnn``) through the night's ingest and gate steps, committed
as the gate commits a night, so a crash loses at most the file in hand.

What a file run stores is what one first night over the whole landing would store for that file:
the same staging (scoring.intake.deliveries), the same suites, quarantine rows and per-file
gates, and its accepted rows appended as batches known from the backfill's as-of date, the night
the platform learned them (a change's "applied" date, Art. 38, is that night, not the day the
provider sent it). Two things differ, by design:

- A file is the unit of failure. A file a hard gate stops is held on its own (``gate_failed``);
  the backfill goes on with the others. The night after reads a held file again, as it reads any
  held file, and its gate decides; nothing of a held file is in the history.
- Feed presence is a night's gate, not a file's: the night after the backfill judges it.

Files are loaded in the order their checks need: the register first (records are judged against
registration dates), the credit-change feed last (a change names records stored before it), the
other feeds between; provider by provider, oldest delivery first. The order follows the feed the
file name names (``YYYYMMDD_feed``); a file named otherwise is loaded with the record feeds.

Resuming is starting again: files whose verdict is stored (stored, rejected, same content) are
known to intake and skipped without being read; a file a crash left half done (its run staged, or
started and not judged) is redone in place under its own run id, which replaces every row of the
earlier try, so nothing is counted twice. Held files are judged again (a corrected file replaces
a held one under the same name).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import sqlalchemy as sa

from scoring.common.errors import GateFailed, PipelineError
from scoring.history import files as landed
from scoring.history.runlock import run_lock
from scoring.history.runs import BACKFILL_KIND, LOADED
from scoring.history.store import Store, landed_files, quarantine, record_batches, runs
from scoring.intake import arrivals as arr
from scoring.intake.deliveries import intake_config
from scoring.intake.ingest import DELIVERY_NAME
from scoring.pipeline.context import RunContext
from scoring.pipeline.runner import note_failure
from scoring.pipeline.steps.common import open_store
from scoring.pipeline.steps.gate import gate
from scoring.pipeline.steps.ingest import ingest

# Load order of the feeds a file name names (anything else: with the record feeds).
FIRST_FEEDS, LAST_FEEDS = ("register",), ("credit_change",)
_SEQ_DIGITS = 4


@dataclass
class FileRun(RunContext):
    """The context of one file's run: the backfill's night, numbered by the file's place in it."""

    seq: int = 0

    @property
    def night_id(self) -> str:
        return f"{BACKFILL_KIND}-{self.as_of:%Y%m%d}-{self.seq:0{_SEQ_DIGITS}d}"


def feed_rank(rel: str) -> int:
    """0 for the register, 2 for the change feed, 1 for the others (by the file's name)."""
    m = DELIVERY_NAME.match(rel.rsplit("/", 1)[-1])
    feed = m.group("feed") if m else ""
    return 0 if feed in FIRST_FEEDS else 2 if feed in LAST_FEEDS else 1


def load_order(candidates: list[arr.Candidate], as_of: dt.date) -> list[arr.Candidate]:
    """The backfill's order: feed rank, then provider, delivery date, path."""

    def key(c: arr.Candidate):
        day = c.name_date.date() if c.name_date is not None else as_of
        return (feed_rank(c.rel), c.provider, day, c.rel)

    return sorted(candidates, key=key)


def refuse_published(conn) -> None:
    """A backfill loads the history before the first published night: afterwards, history arrives
    as deliveries (a late file is known from the night that reads it)."""
    row = conn.execute(
        sa.select(runs.c.run_id)
        .where(runs.c.kind == "nightly")
        .where(runs.c.status.in_(["published", "superseded"]))
        .order_by(runs.c.run_id)
        .limit(1)
    ).first()
    if row is not None:
        raise PipelineError(
            f"this store has published nights ({row.run_id}); a backfill loads the history before "
            "go-live: deliver later files to the landing folder for the nights to read"
        )


def run_ids(conn, as_of: dt.date, plan: list[arr.Candidate]) -> dict[str, str]:
    """The run id of each planned file: its place in the plan, or, for a file an earlier try of
    this backfill left unjudged (staged or held), that try's id (redone in place). An id whose run
    has another file, or a file stored, is never reused: a new number after the highest."""
    prefix = f"{BACKFILL_KIND}-{as_of:%Y%m%d}-"
    f = landed_files.c
    rows = conn.execute(
        sa.select(f.run_id, f.path, f.status).where(f.run_id.like(f"{prefix}%"))
    ).all()
    unsettled = {r.path: r.run_id for r in rows if r.status not in arr.SETTLED}
    taken = {r.run_id for r in rows}
    numbers = [int(r[len(prefix) :]) for r in taken if r[len(prefix) :].isdigit()]
    highest = max([len(plan), *numbers])
    out: dict[str, str] = {}
    for i, c in enumerate(plan, start=1):
        rid = unsettled.get(c.rel)
        if rid is None:
            rid = f"{prefix}{i:0{_SEQ_DIGITS}d}"
            if rid in taken:
                highest += 1
                rid = f"{prefix}{highest:0{_SEQ_DIGITS}d}"
        taken.add(rid)
        out[c.rel] = rid
    return out


@dataclass
class Progress:
    """Files done of the plan, rows received, rows/s, and the time left by bytes still to read."""

    total_files: int
    total_bytes: int
    started: float
    files: int = 0
    rows: int = 0
    bytes: int = 0

    def add(self, rows: int, n_bytes: int) -> dict:
        self.files += 1
        self.rows += rows
        self.bytes += n_bytes
        spent = max(time.perf_counter() - self.started, 1e-9)  # clock-ok: progress only
        left = self.total_bytes - self.bytes
        return {
            "files_done": self.files,
            "files_total": self.total_files,
            "rows": self.rows,
            "seconds": round(spent, 1),
            "rows_per_s": round(self.rows / spent, 1),
            "eta_s": round(spent / self.bytes * left, 1) if self.bytes else None,
        }


def progress_line(event: dict) -> str:
    return (
        f"backfill [{event['files_done']}/{event['files_total']}] {event['path']}: "
        f"{event['outcome']}, {event['received']:,} rows ({event['accepted']:,} accepted, "
        f"{event['quarantined']:,} quarantined) — {event['rows']:,} rows in {event['seconds']} s, "
        f"{event['rows_per_s']:,.0f} rows/s, ETA {duration(event['eta_s'])}"
    )


def duration(seconds: float | None) -> str:
    if not seconds:
        return "0 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    return (
        f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"
        if seconds >= 3600
        else (f"{int(seconds // 60)} min {int(seconds % 60)} s")
    )


def backfill(
    base: RunContext,
    report: Callable[[dict], None] = lambda _e: None,
    wait_seconds: float = 0.0,
) -> dict:
    """Load every file of ``base.landing`` due by ``base.as_of`` that the store does not hold yet,
    file by file (see the module's docstring); ``report(event)`` after each file. Holds the
    store's run lock throughout. Returns the summary: files by outcome, rows, seconds, problems."""
    store = open_store(base)
    try:
        with run_lock(store, f"{BACKFILL_KIND}-{base.as_of:%Y%m%d}", wait_seconds):
            return _load(store, base, report)
    finally:
        store.engine.dispose()


def _plan(store: Store, base: RunContext) -> tuple[list[arr.Candidate], arr.Listing]:
    _, registry = intake_config(base.as_of)
    with store.engine.connect() as conn:
        refuse_published(conn)
        history = landed.earlier_files(conn, "")
    listing = arr.list_landing(base.landing, pd.Timestamp(base.as_of), None, registry)
    everything = load_order(listing.candidates, base.as_of)
    todo = arr.classify(copy.deepcopy(listing), history)  # hashed: what the store holds is skipped
    todo.candidates = load_order(todo.candidates, base.as_of)
    return everything, todo


def _load(store: Store, base: RunContext, report: Callable[[dict], None]) -> dict:
    everything, todo = _plan(store, base)
    with store.engine.connect() as conn:
        ids = run_ids(conn, base.as_of, everything)
    for p in todo.problems:
        base.say(f"landing: {p['kind']}: {p['path']}: {p['message']}")
    skipped = len(everything) - len(todo.candidates)
    base.say(
        f"backfill {base.as_of}: {len(todo.candidates)} files to load"
        + (f" ({skipped} already stored)" if skipped else "")
    )
    prog = Progress(
        len(todo.candidates), sum(c.n_bytes for c in todo.candidates), time.perf_counter()
    )  # clock-ok: progress only
    outcomes: dict[str, int] = {}
    for c in todo.candidates:
        ctx = file_context(base, ids[c.rel])
        event = {"path": c.rel, "run_id": ctx.run_id, **load_file(store, ctx, c)}
        event.update(prog.add(event["received"], c.n_bytes))
        outcomes[event["outcome"]] = outcomes.get(event["outcome"], 0) + 1
        base.say(progress_line(event))
        report(event)
    return {
        "as_of": base.as_of.isoformat(),
        "files": len(everything),
        "loaded_now": prog.files,
        "already_stored": skipped,
        "outcomes": outcomes,
        "rows": prog.rows,
        "seconds": round(time.perf_counter() - prog.started, 1),  # clock-ok: progress only
        "landing_problems": todo.problems,
        "history_sha256": history_sha256(store),
    }


def file_context(base: RunContext, run_id: str) -> FileRun:
    seq = int(run_id.rsplit("-", 1)[1])
    return FileRun(
        as_of=base.as_of,
        landing=base.landing,
        home=base.home,
        db_url=base.db_url,
        catalogue_path=base.catalogue_path,
        policy_path=base.policy_path,
        kind=BACKFILL_KIND,
        seq=seq,
    )


def load_file(store: Store, ctx: FileRun, planned: arr.Candidate) -> dict:
    """One file through ingest and gate as a run of its own. Its verdict: loaded (rows stored,
    or nothing to store: a rejected file, a repeat), held (a hard gate stopped it) or known (the
    store holds it already)."""
    with store.engine.connect() as conn:
        history = landed.earlier_files(conn, ctx.run_id)
    # Classified again: an earlier file of the backfill may be its twin (same content).
    fresh = replace(planned, action="new", same_as=None, read_before=False)
    listing = arr.classify(arr.Listing(candidates=[fresh]), history, hasher=lambda _p: fresh.sha256)
    listing.problems = []  # the landing's lines were said once, with the plan
    if not listing.candidates:
        return {"outcome": "known", "received": 0, "accepted": 0, "quarantined": 0}
    try:
        ingest(ctx, listing)
        try:
            gate(ctx, backfill=True)
        except GateFailed:
            pass  # held: the gate recorded its verdicts; the backfill goes on
    except Exception as exc:
        note_failure(ctx, "backfill", exc)
        raise
    with store.engine.connect() as conn:
        f = landed.run_files(conn, ctx.run_id)
        status = conn.execute(sa.select(runs.c.status).where(runs.c.run_id == ctx.run_id)).scalar()
    outcome = {LOADED: "loaded", "gate_failed": "held"}.get(status, status)
    if len(f) and (f["status"] == "rejected").all():
        outcome = "rejected"
    return {
        "outcome": outcome,
        "received": int(f["received"].sum()),
        "accepted": int(f["accepted"].sum()),
        "quarantined": int(f["quarantined"].sum()),
    }


def history_sha256(store: Store) -> str:
    """One hash over what the store holds of its deliveries: every batch (table, content hash,
    rows, known from), every landed file's verdict and counts, every quarantined line, each with
    its run. Two loads of one landing that agree on it stored the same history (sorted here, not by
    the database, whose collation may differ: the hash is the same on SQLite and PostgreSQL)."""
    h = hashlib.sha256()
    b, f, q = record_batches.c, landed_files.c, quarantine.c
    queries = (
        sa.select(b.run_id, b.table_name, b.sha256, b.rows, b.known_from),
        sa.select(
            f.run_id, f.path, f.sha256, f.status, f.received, f.accepted, f.quarantined, f.excluded
        ),
        sa.select(q.run_id, q.path, q.line_no, q.reasons),
    )
    with store.engine.connect() as conn:
        for query in queries:
            for row in sorted(tuple(str(v) for v in r) for r in conn.execute(query)):
                h.update(repr(row).encode())
    return h.hexdigest()
