"""A pull is a delivery: what a source holds after its watermark is written into the landing
area as ordinary files (landing/<provider>/YYYYMMDD_<feed>_<kind>.csv, or the SFTP file's own
name), with the pull's moment as their arrival time, so gates, freshness, quarantine and audit
reruns treat them exactly like a dropped file. The source's watermark moves only once a
published night has read those very bytes (``commit_watermarks``); until then every pull starts
again from the old one, and a pull of the same window gives the same bytes: a repeat."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from scoring.exchange.fetch import fetch
from scoring.exchange.secrets import RETRIED, Conn, ExchangeError, redact
from scoring.exchange.sources import Exchange, Source
from scoring.history import exchange as hx


def commit_watermarks(conn) -> list[dict]:
    """Advance the watermark of every source whose pulled files a published night has read;
    returns the pulls committed now. Watermarks never move back."""
    done = []
    marks = {k: v["watermark"] for k, v in hx.watermarks(conn).items()}
    for p in hx.uncommitted_pulls(conn):
        pairs = [tuple(x) for x in json.loads(p["paths_json"] or "[]")]
        read = hx.read_by_published_runs(conn, pairs)
        if not pairs or len(read) < len(pairs):
            continue
        run_id = max(read.values())
        old = marks.get(p["source_id"])
        advance = p["watermark_after"] is not None and (old is None or p["watermark_after"] > old)
        hx.commit_pull(conn, p, run_id, advance)
        if advance:
            marks[p["source_id"]] = p["watermark_after"]
        done.append({**p, "committed_by": run_id})
    return done


# Failures worth another try (the network); anything else fails the same way again. A pull
# outside its source's schedule window is "skipped" (nothing fetched): a missing delivery too.
TRANSIENT = RETRIED


def write_landing(folder: Path, files: dict[str, bytes], arrived_at: dt.datetime) -> list:
    """Write the files into the provider's landing folder, all or none visible: each is written
    beside its name as .partial (never read by a night), synced, then renamed. A file already
    there with the same bytes is left as it is (the night knows it: nothing new)."""
    folder.mkdir(parents=True, exist_ok=True)
    staged, out = [], []
    stamp = arrived_at.replace(tzinfo=dt.UTC).timestamp()
    for name, data in sorted(files.items()):
        sha = hashlib.sha256(data).hexdigest()
        target = folder / name
        out.append((name, sha))
        if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == sha:
            continue
        tmp = folder / f"{name}.partial"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.utime(tmp, (stamp, stamp))
        staged.append((tmp, target))
    for tmp, target in staged:
        os.replace(tmp, target)
    return out


def pull_source(
    store,
    landing: Path,
    exchange: Exchange,
    source: Source,
    conn: Conn | ExchangeError,
    as_of: dt.date,
    pulled_at: dt.datetime,
    since: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict:
    """Pull one source for the night ``as_of``; ``pulled_at`` (UTC) is the delivery's arrival
    time. ``since`` overrides the stored watermark (a re-pull of an older window). Never raises
    for the source's own failures: they are recorded, with a one-line reason, as a failed pull."""
    with store.engine.begin() as c:
        commit_watermarks(c)
        stored = hx.watermark(c, source.id)
        earlier = hx.pulls(c, source_id=source.id)
    before = since if since is not None else stored
    row = dict(
        source_id=source.id,
        provider=source.provider,
        kind=source.kind,
        as_of=as_of,
        pulled_at=pulled_at.replace(tzinfo=None),
        watermark_before=before,
        watermark_after=before,
        rows=0,
        revoked=0,
        committed_by=None,
        registry_sha256=exchange.registry_sha256 or None,
    )
    code = None
    try:
        if isinstance(conn, ExchangeError):  # its credentials could not be resolved
            raise conn
        got = fetch(source, conn, before, as_of, lambda: earlier_rows(landing, source, earlier))
        written = write_landing(Path(landing) / source.provider, got.files, pulled_at)
        pairs = [[f"{source.provider}/{n}", sha] for n, sha in written]
        shas = sorted(s for _, s in pairs)
        repeat = any(
            p["status"] in hx.PULLED and sorted(s for _, s in json.loads(p["paths_json"])) == shas
            for p in earlier
        )
        status = "empty" if not pairs else "repeat" if repeat else "ok"
        note = (
            f"; {got.unknown_deletions} deleted id(s) this source never delivered: nothing to revoke"
            if got.unknown_deletions
            else ""
        )
        row.update(
            status=status,
            rows=got.rows,
            revoked=got.revoked,
            watermark_after=got.watermark_after or before,
            paths_json=json.dumps(pairs, ensure_ascii=False),
            message=_summary(source, got.rows, got.revoked, pairs, status) + note,
        )
    except ExchangeError as exc:
        secret = conn if isinstance(conn, Conn) else None
        status = "skipped" if exc.code == "window" else "failed"
        row.update(status=status, paths_json="[]", message=redact(str(exc), secret))
        code = exc.code
    except OSError as exc:  # the landing folder itself: the pull is lost, never half-written
        row.update(
            status="failed",
            paths_json="[]",
            message=f"source {source.id}: landing folder: {exc.strerror or type(exc).__name__}",
        )
        code = "landing"
    with store.engine.begin() as c:
        row["pull_id"] = hx.record_pull(c, **row)
    row["code"] = code  # why it failed (not stored: the message says it): the DAG retries some
    say(f"pull {source.id}: {row['status']} — {row['message']}")
    return row


def earlier_rows(landing: Path, source: Source, earlier: list[dict]) -> list[dict]:
    """The rows of this source's earlier pulled files still in the landing area, oldest first
    (by standard header): what a delete table's ids are revoked from."""
    out = []
    seen = set()
    for p in earlier:
        if p["status"] not in hx.PULLED:
            continue
        for path, _sha in json.loads(p["paths_json"] or "[]"):
            f = Path(landing) / path
            if path in seen or not f.is_file() or f.suffix != ".csv":
                continue
            seen.add(path)
            with open(f, encoding="utf-8-sig", newline="") as fh:
                out.extend(csv.DictReader(fh))
    return out


def _summary(source: Source, rows: int, revoked: int, pairs: list, status: str) -> str:
    unit = "files" if source.kind == "sftp" else "rows"
    names = ", ".join(p for p, _ in pairs) or "nothing new after the watermark"
    extra = f", {revoked} marked deleted (withdrawn by the night)" if revoked else ""
    tail = " (the same bytes as an earlier pull)" if status == "repeat" else ""
    return f"{rows} {unit}{extra} -> {names}{tail}"
