"""Rows fetched from a source, made into ordinary landing files: the exchange field codes renamed
to the layout's standard headers, rows the source marks deleted split off as revocations, and
every value written as text in a stable order, so a re-pull of the same window is the same bytes
(the same content hash: a repeat)."""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import io
from dataclasses import dataclass, field

from scoring.exchange.secrets import ExchangeError
from scoring.exchange.sources import Source
from scoring.intake.layouts import BY_ID, CHANGES

REVOKE_OP = "撤销"


@dataclass
class Fetched:
    """What one pull brought: files for the landing folder (name -> bytes), and its counts."""

    files: dict[str, bytes] = field(default_factory=dict)
    rows: int = 0
    revoked: int = 0
    watermark_after: str | None = None


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


def header_map(source: Source, codes: dict, columns: list[str]) -> dict[str, str]:
    """Source column -> the layout's header. Field codes are renamed; a column that already is
    one of the layout's headers is kept; anything else (the watermark, 当前状态) is left out."""
    layout = BY_ID.get(source.layout)
    if layout is None:
        raise ExchangeError("unknown_layout", f"source {source.id}: no layout {source.layout}")
    headers = {h for aliases in layout.columns.values() for h in aliases}
    out = {}
    for c in columns:
        if c in codes:
            out[c] = codes[c]
        elif c in headers:
            out[c] = c
    required = [layout.columns[c][0] for c in layout.required]
    have = set(out.values())
    missing = [h for h in required if h not in have and not _alias_present(layout, h, have)]
    if missing:
        back = {v: k for k, v in codes.items()}
        names = ", ".join(back.get(h, h) for h in missing)
        raise ExchangeError(
            "schema", f"source {source.id}: required column(s) missing: {names} (renamed?)"
        )
    return out


def _alias_present(layout, header: str, have: set[str]) -> bool:
    for aliases in layout.columns.values():
        if aliases[0] == header:
            return any(a in have for a in aliases)
    return False


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue().encode("utf-8-sig")


def delivery_files(
    source: Source, codes: dict, records: list[dict], columns: list[str], day: dt.date
) -> Fetched:
    """The landing files of one pull: the feed's rows, and the rows marked deleted as revocations
    (信用信息变更, 操作类型 撤销) of the records they name."""
    hmap = header_map(source, codes, columns)
    kept = [c for c in columns if c in hmap]
    live, gone = [], []
    for r in records:
        status = text(r.get(source.status_column)).strip() if source.status_column else ""
        (gone if status in source.deleted_values else live).append(r)
    out = Fetched(rows=len(records), revoked=len(gone))
    stamp = day.strftime("%Y%m%d")
    if live:
        body = [[text(r.get(c)) for c in kept] for r in live]
        out.files[f"{stamp}_{source.feed}_{source.kind}.csv"] = csv_bytes(
            [hmap[c] for c in kept], body
        )
    if gone:
        out.files[f"{stamp}_credit_change_{source.kind}.csv"] = _revocations(
            source, hmap, gone, day
        )
    if source.watermark:
        marks = [watermark_text(r.get(source.watermark)) for r in records]
        marks = [m for m in marks if m is not None]
        out.watermark_after = max(marks) if marks else None
    return out


def _revocations(source: Source, hmap: dict, rows: list[dict], day: dt.date) -> bytes:
    by_header = {h: c for c, h in hmap.items()}
    layout = BY_ID[source.layout]

    def value(r: dict, canonical: str) -> str:
        for h in layout.columns.get(canonical, ()):
            if h in by_header:
                v = text(r.get(by_header[h])).strip()
                if v:
                    return v
        return ""

    header = [CHANGES.columns[c][0] for c in ("op", "doc_number", "subject_code", "subject_name")]
    header += [CHANGES.columns[c][0] for c in ("effective_date", "remarks", "source_unit")]
    body = []
    for r in rows:
        when = watermark_text(r.get(source.watermark)) if source.watermark else None
        body.append(
            [
                REVOKE_OP,
                value(r, "doc_number"),
                value(r, "uscc") or value(r, "id_number") or value(r, "subject_code"),
                value(r, "subject_name"),
                (when or day.isoformat())[:10],
                f"{source.status_column}={text(r.get(source.status_column)).strip()} ({source.id})",
                value(r, "source_unit"),
            ]
        )
    return csv_bytes(header, body)
