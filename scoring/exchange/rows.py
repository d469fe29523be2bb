"""Rows fetched from a source, made into an ordinary landing file: the exchange field codes (the
layout's ``codes``) renamed to its standard headers, rows the source marks deleted kept with
their 当前状态 (the layout withdraws them), and every value written as text in a stable order,
so a re-pull of the same window is the same bytes (the same content hash: a repeat)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
from dataclasses import dataclass, field

from scoring.exchange.secrets import ExchangeError
from scoring.exchange.sources import Source


@dataclass
class Fetched:
    """What one pull brought: files for the landing folder (name -> bytes), and its counts."""

    files: dict[str, bytes] = field(default_factory=dict)
    rows: int = 0
    revoked: int = 0
    watermark_after: str | None = None
    unknown_deletions: int = 0  # ids in the delete table this source never delivered


def text(value) -> str:
    """A value as the text a provider's file would carry (stable across drivers)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value.normalize(), "f") if value == value else ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def watermark_text(value) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    return text(value)


def header_map(source: Source, layout, columns: list[str]) -> dict[str, str]:
    """Source column -> the layout's standard header. Exchange field codes (the layout's
    ``codes``) and any of its headers are kept; anything else is left out of the delivery."""
    out = {}
    for canon, headers in layout.columns.items():
        for name in (*layout.codes.get(canon, ()), *headers):
            if name in columns and name not in out:
                out[name] = headers[0]
    missing = [
        c
        for c in layout.required
        if c not in layout.combine and layout.columns[c][0] not in out.values()
    ]
    missing += [
        c
        for c, parts in layout.combine.items()
        if c in layout.required and not any(layout.columns[p][0] in out.values() for p in parts)
    ]
    if missing:
        names = ", ".join(
            (layout.codes.get(c) or layout.columns.get(c) or (c,))[0] for c in sorted(missing)
        )
        raise ExchangeError(
            "schema", f"source {source.id}: required column(s) missing: {names} (renamed?)"
        )
    if source.status_column and out.get(source.status_column) is None:
        raise ExchangeError(
            "schema",
            f"source {source.id}: status column {source.status_column} is not in the table, or "
            f"layout {layout.id} has no 当前状态 column to carry deletions",
        )
    return out


def with_deletions(
    source: Source, layout, records: list[dict], columns: list[str], gone: list[dict], earlier
) -> tuple[list[dict], int]:
    """The rows of the source's delete table (ids of records the provider deleted) as rows of the
    delivery marked deleted (当前状态), so the night revokes them like a row marked 撤销: each
    built from the latest row this source delivered with that id (``earlier()``: the rows of its
    earlier pulled files, by standard header). Returns the rows and how many ids were never
    delivered (nothing to revoke; the pull's line says how many)."""
    if not gone:
        return records, 0
    hmap = header_map(source, layout, columns)
    back = {h: c for c, h in hmap.items()}
    key = hmap.get(source.delete_key)
    if key is None:
        raise ExchangeError(
            "schema", f"source {source.id}: delete key {source.delete_key} is not a layout column"
        )
    prior = {row.get(key): row for row in earlier()}
    mark = "删除" if "删除" in source.deleted_values else source.deleted_values[0]
    out, unknown = list(records), 0
    for g in gone:
        row = prior.get(text(g.get(source.delete_key)))
        if row is None:
            unknown += 1
            continue
        rec = {back[h]: v for h, v in row.items() if h in back}
        rec[source.status_column] = mark
        if source.watermark:
            rec[source.watermark] = g.get(source.watermark)
        out.append(rec)
    return out, unknown


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def delivery_files(
    source: Source,
    layout,
    records: list[dict],
    columns: list[str],
    day: dt.date,
    unknown: int = 0,
) -> Fetched:
    """The landing file of one pull. Rows the source marks deleted (当前状态 撤销/删除) travel
    with their status, which the layout maps to "withdrawn": the night revokes those records."""
    hmap = header_map(source, layout, columns)
    kept = [c for c in columns if c in hmap]
    gone = 0
    if source.status_column:
        gone = sum(
            text(r.get(source.status_column)).strip() in source.deleted_values for r in records
        )
    out = Fetched(rows=len(records), revoked=gone, unknown_deletions=unknown)
    if records:
        body = [[text(r.get(c)) for c in kept] for r in records]
        out.files[f"{day:%Y%m%d}_{source.feed}_{source.kind}.csv"] = csv_bytes(
            [hmap[c] for c in kept], body
        )
    if source.watermark:
        marks = [watermark_text(r.get(source.watermark)) for r in records]
        marks = [m for m in marks if m is not None]
        out.watermark_after = max(marks) if marks else None
    return out
