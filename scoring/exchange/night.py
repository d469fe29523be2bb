"""The exchange steps of a night, one definition for the DAG and the CLI: pull every source (of
some providers) before ingest, push the published night to every agency with a push target
after publication, and the exchange status the night's report and `credit reads` show."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from scoring.exchange.pull import commit_watermarks, pull_source
from scoring.exchange.push import push_agency
from scoring.exchange.secrets import Conn, ExchangeError
from scoring.exchange.sources import Exchange, Source, push_target
from scoring.history import exchange as hx

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def night_of(moment: dt.datetime) -> dt.date:
    """The night a pull made at this moment feeds: the run of as-of D starts at 01:00 on D+1
    (Asia/Shanghai), so anything before then is for D."""
    return (moment.astimezone(SHANGHAI) - dt.timedelta(hours=1)).date()


def night_window(source: Source, as_of: dt.date) -> tuple[dt.datetime, dt.datetime] | None:
    """The moments (Asia/Shanghai) the source may be pulled for night ``as_of``: from ``from``
    (on D if it is in the afternoon or evening, else the next morning) to the first ``to`` after."""
    if not source.window:
        return None
    f = dt.time.fromisoformat(source.window["from"])
    to = source.window["to"]
    start = dt.datetime.combine(as_of + dt.timedelta(days=0 if f.hour >= 12 else 1), f, SHANGHAI)
    if to == "24:00":
        end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(0), SHANGHAI)
    else:
        end = dt.datetime.combine(start.date(), dt.time.fromisoformat(to), SHANGHAI)
    return start, end if end > start else end + dt.timedelta(days=1)


def outside_window(source: Source, as_of: dt.date, now: dt.datetime | None) -> str | None:
    """Why a pull at ``now`` is not made (outside the source's window), or None."""
    win = night_window(source, as_of) if now is not None else None
    if win is None or win[0] <= now <= win[1]:
        return None
    w = source.window
    when = "before" if now < win[0] else "after"
    return (
        f"source {source.id}: not pulled at {now.astimezone(SHANGHAI):%Y-%m-%d %H:%M}, {when} its "
        f"window {w['from']}–{w['to']} (Asia/Shanghai) for the night of {as_of}: a missing delivery"
    )


def resolve(connect: Callable[[str], Conn], conn_id: str) -> Conn | ExchangeError:
    try:
        return connect(conn_id)
    except ExchangeError as exc:
        return exc


def pulled_sources(exchange: Exchange, providers: list[str] | None = None) -> list[Source]:
    """The sources a night pulls (``landing`` sources are files dropped by the provider)."""
    return [
        s
        for s in exchange.sources
        if s.kind != "landing" and (providers is None or s.provider in providers)
    ]


def pull_all(
    store,
    landing: Path,
    exchange: Exchange,
    connect: Callable[[str], Conn],
    as_of: dt.date,
    pulled_at: dt.datetime,
    providers: list[str] | None = None,
    since: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
    now: dt.datetime | None = None,
) -> list[dict]:
    """Pull every source (of ``providers``). With ``now`` (the wall clock of a scheduled pull), a
    source whose window does not hold ``now`` is skipped with a line instead."""
    out = []
    for source in pulled_sources(exchange, providers):
        out.append(
            _pull(store, landing, exchange, source, connect, as_of, pulled_at, since, say, now)
        )
    return out


def _pull(store, landing, exchange, source, connect, as_of, pulled_at, since, say, now) -> dict:
    why = outside_window(source, as_of, now)
    if why is not None:
        conn = ExchangeError("window", why)
    else:
        conn = resolve(connect, source.conn_id)
        if isinstance(conn, ExchangeError):
            conn = ExchangeError(conn.code, f"source {source.id}: {conn}")
    return pull_source(store, landing, exchange, source, conn, as_of, pulled_at, since, say)


def push_all(
    store,
    agencies: list[dict],
    connect: Callable[[str], Conn],
    pushed_at: dt.datetime,
    run_id: str | None = None,
    only: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
    again: bool = False,
) -> list[dict]:
    """Push ``run_id`` (the latest published night without) to every agency with a push target.
    ``again`` (a retry after a network error): only the agencies whose last push of this run
    failed, so an agency that has it is not sent an empty push again."""
    out = []
    with store.engine.begin() as c:
        commit_watermarks(c)  # the night just published: its pulls are settled
        done = pushed_already(c, run_id) if again and run_id else set()
    for agency in agencies:
        target = push_target(agency)
        if target is None or (only and agency["id"] != only) or agency["id"] in done:
            continue
        conn = resolve(connect, target["conn_id"])
        if isinstance(conn, ExchangeError):
            conn = ExchangeError(conn.code, f"push {agency['id']}: {conn}")
        out.append(push_agency(store, agency, target, conn, run_id, pushed_at, say))
    return out


def record_missing(
    store, landing: Path, source_id: str, as_of: dt.date, pulled_at, code: str, message: str
) -> dict:
    """Record a source that was not pulled because its provider never signalled that the night
    was complete (or its signal could not be read): a failed pull, its provider's missing
    delivery, with the line that says why."""
    from scoring.exchange.sources import load_exchange

    exchange = load_exchange(as_of)
    source = exchange.source(source_id)
    why = ExchangeError(code, message)
    return pull_source(store, landing, exchange, source, why, as_of, pulled_at)


def pushed_already(conn, run_id: str) -> set[str]:
    """The agencies whose last push of ``run_id`` did not fail."""
    last: dict[str, str] = {}
    for p in hx.pushes(conn):
        if p["run_id"] == run_id:
            last[p["agency_id"]] = p["status"]
    return {a for a, status in last.items() if status != "failed"}


def exchange_status(store, as_of) -> dict:
    """Per source: this night's pulls, rows, watermark before/after and whether a published
    night has read them; per agency: last pushed, last acknowledged, outstanding."""
    with store.engine.connect() as c:  # a read: the publish step settles watermarks
        pulls = hx.pulls(c, as_of=as_of)
        marks = hx.watermarks(c)
        agencies = hx.agency_exchange(c)
    sources = []
    for p in pulls:
        sources.append(
            {
                "source_id": p["source_id"],
                "provider": p["provider"],
                "kind": p["kind"],
                "status": p["status"],
                "rows": p["rows"],
                "revoked": p["revoked"],
                "watermark_before": p["watermark_before"],
                "watermark_after": p["watermark_after"],
                "committed_by": p["committed_by"],
                "watermark_now": (marks.get(p["source_id"]) or {}).get("watermark"),
                "message": p["message"],
            }
        )
    return {"sources": sources, "agencies": agencies}


# A pull by the night's own run counts as arriving by the night's cut (the run starts at the cut:
# what it pulls then is what was there when the night was due); a catch-up run days later does
# not pull: whatever it would fetch arrived after its cut, and the latest night pulls it.
CATCH_UP_AFTER = dt.timedelta(hours=6)


def pull_moment(now: dt.datetime, arrival_cut: dt.datetime | None) -> dt.datetime | None:
    """The arrival time of a pull made ``now`` for a night with this arrival cut, or None when
    the night is a catch-up and must not pull."""
    if arrival_cut is None:
        return now
    if now - arrival_cut > CATCH_UP_AFTER:
        return None
    return min(now, arrival_cut)


def pull_one(
    store,
    landing: Path,
    source_id: str,
    connect: Callable[[str], Conn],
    as_of: dt.date,
    pulled_at: dt.datetime,
    exchange: Exchange | None = None,
    say: Callable[[str], None] = lambda _m: None,
    now: dt.datetime | None = None,
) -> dict:
    """One source (the DAG maps this over the sources): the same as ``pull_all`` for one."""
    from scoring.exchange.sources import load_exchange

    exchange = exchange or load_exchange(as_of)
    source = exchange.source(source_id)
    return _pull(store, landing, exchange, source, connect, as_of, pulled_at, None, say, now)
