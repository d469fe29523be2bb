"""A streaming XLSX reader that believes only what is in the sheet.

Rows are the sheet's actual ``<row>`` elements (a ``<dimension>`` that says A1:M10 over 436 rows
is ignored); rows, columns, cells and cell length are checked while reading, and every part is
inflated through a counter (``xlsx_parts``). ``sheet_records`` gives a sheet's rows a block of XML
at a time; ``read_xlsx`` collects them into one frame (the whole-file reader, the reference the
chunked one, ``xlsx_stream``, is held to).
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd

from .readers import DEFAULT_LIMITS, ReaderLimits, UnusableFile
from .xlsx_parts import Book, open_book, parse_blocks, zip_errors

_COLUMN = re.compile(r"^([A-Z]{1,3})")
SEARCH_ROWS = 10  # a sheet's first rows, where its header is looked for


_CACHED = 4096  # distinct element names and column letters remembered (a hostile sheet has more)
_LOCALS: dict[str, str] = {}
_COLUMNS: dict[str, int | None] = {}
_DIGITS = "0123456789"


def _local(name: str) -> str:
    local = _LOCALS.get(name)
    if local is None:
        local = name.rsplit(" ", 1)[-1]
        if len(_LOCALS) < _CACHED:
            _LOCALS[name] = local
    return local


def _column_index(ref: str | None) -> int | None:
    """The column of a cell reference's letters (A1 → 0), remembered by its letters: the trailing
    digits stripped never change what the leading letters say."""
    if not ref:
        return None
    letters = ref.rstrip(_DIGITS)
    if letters in _COLUMNS:
        return _COLUMNS[letters]
    m = _COLUMN.match(letters)
    n = 0
    for ch in m.group(1) if m else "":
        n = n * 26 + ord(ch) - 64
    col = n - 1 if m else None
    if len(_COLUMNS) < _CACHED:
        _COLUMNS[letters] = col
    return col


def _number_text(v: str, as_date: bool, date1904: bool) -> str:
    """A numeric cell as text, as openpyxl would give it: integers without a decimal point,
    date-formatted serials as YYYY-MM-DD."""
    try:
        num = float(v) if any(c in v for c in ".eE") else int(v)
    except ValueError:
        return v
    if as_date and isinstance(num, (int, float)) and 0 < num < 2_958_466:
        epoch = dt.datetime(1904, 1, 1) if date1904 else dt.datetime(1899, 12, 30)
        day = int(num // 1)
        if not date1904 and 0 < num < 60:
            day += 1
        moment = epoch + dt.timedelta(days=day, milliseconds=round((num - num // 1) * 86_400_000))
        return moment.strftime("%Y-%m-%d")
    if isinstance(num, float):
        if num != num or num in (float("inf"), float("-inf")):
            return v
        return str(int(num)) if num.is_integer() else str(num)
    return str(num)


def _cell_value(raw: str, t: str, shared: list[str], as_date: bool, date1904: bool) -> str:
    """A cell's text by its type: shared or inline string, boolean, ISO date, or number."""
    if t == "s":
        return shared[int(raw)] if raw.strip() else ""
    if t in ("inlineStr", "str", "e"):
        return raw
    if t == "b":
        return "True" if raw.strip() in ("1", "true") else "False" if raw.strip() else ""
    if t == "d":
        return raw[:10]
    return _number_text(raw.strip(), as_date, date1904) if raw.strip() else ""


def read_xlsx(
    data: bytes, limits: ReaderLimits = DEFAULT_LIMITS, locate=None
) -> tuple[list[str], pd.DataFrame, list[tuple[int, str, str]], dict]:
    """(header, data frame of strings with line_no, bad rows as (line_no, reason, text), where:
    {"sheet", "header_line", "header_rows"}). ``locate(first rows) -> (index, n rows, header) or
    None`` finds a sheet's header (title rows above it, two merged rows); the first sheet where
    it finds one is read, else the first non-empty sheet from its first row. Raises UnusableFile
    for anything that makes the workbook unreadable."""
    with zip_errors():
        return _read(data, limits, locate)


def _read(data: bytes, limits: ReaderLimits, locate=None):
    book = open_book(io.BytesIO(data), len(data), limits)
    fallback = None
    for name, path in book.sheets:
        records = [r for batch in sheet_records(book, path) for r in batch]
        if not records:
            continue
        found = (
            locate([cells for _, cells in records[:SEARCH_ROWS]])
            if locate is not None
            else (0, 1, None)
        )
        if found is None:
            fallback = fallback or (name, records)
            continue
        return _frame(records, found, name)
    if fallback is None:
        raise UnusableFile("empty", "the workbook's first sheet is empty")
    return _frame(fallback[1], (0, 1, None), fallback[0])


def _start_cell(cur: dict, attrs, limits) -> None:
    col = _column_index(attrs.get("r"))
    cur["col"] = cur["col"] + 1 if col is None else col
    if cur["col"] >= limits.max_columns:
        raise UnusableFile(
            "too_many_columns",
            f"XLSX has a cell in column {cur['col'] + 1:,}, "
            f"beyond the limit {limits.max_columns:,}",
        )
    cur["type"] = attrs.get("t", "n")
    try:
        cur["style"] = int(attrs.get("s", "0"))
    except ValueError:
        cur["style"] = 0
    cur["text"] = []
    cur["len"] = 0


def _start_row(cur: dict, attrs, limits) -> None:
    r = attrs.get("r")
    n = int(r) if r and r.isdigit() and int(r) > cur["last_row"] else cur["last_row"] + 1
    cur["last_row"] = n
    cur["row"], cur["cells"], cur["col"] = n, {}, -1
    if cur["rows_total"] >= limits.max_rows:
        raise UnusableFile("too_large", f"XLSX has more than {limits.max_rows:,} rows")


def _end_cell(cur: dict, book: Book) -> None:
    raw = "".join(cur["text"])
    if cur["keep"] is None or cur["rows_total"] < cur["keep"]:
        as_date = cur["style"] in book.date_styles
        value = _cell_value(raw, cur["type"], book.shared, as_date, book.date1904)
        if value:
            cur["cells"][cur["col"]] = value
    elif cur["type"] == "s" and raw.strip():
        book.shared[int(raw)]  # noqa: B018 (the one value that can fail: a string it names)
    cur["cells_total"] += 1
    if cur["cells_total"] > book.limits.max_cells:
        raise UnusableFile("too_large", f"XLSX has more than {book.limits.max_cells:,} cells")


def sheet_records(
    book: Book, sheet: str, keep: int | None = None
) -> Iterator[list[tuple[int, list[str]]]]:
    """A sheet's rows as (row number, cells), as the sheet holds them: those of each block of
    inflated XML (``book.block`` bytes) together, never the whole sheet's. With `keep`, only the
    first `keep` rows are given; the rest are parsed and checked alike (every verdict on the
    sheet) without their values being made."""
    limits = book.limits
    records: list[tuple[int, list[str]]] = []
    cur: dict = {
        "row": None,
        "cells": None,
        "col": 0,
        "type": None,
        "style": 0,
        "text": [],
        "in_v": False,
        "in_t": False,
        "in_rph": 0,
        "len": 0,
        "last_row": 0,
        "rows_total": 0,
        "cells_total": 0,
        "keep": keep,
    }

    def start(name, attrs):
        local = _local(name)
        if local == "c":
            _start_cell(cur, attrs, limits)
        elif local == "row":
            _start_row(cur, attrs, limits)
        elif local == "v":
            cur["in_v"] = True
        elif local == "rPh":
            cur["in_rph"] += 1
        elif local == "t" and not cur["in_rph"]:
            cur["in_t"] = True

    def end(name):
        local = _local(name)
        if local == "v":
            cur["in_v"] = False
        elif local == "t":
            cur["in_t"] = False
        elif local == "rPh":
            cur["in_rph"] -= 1
        elif local == "c" and cur["cells"] is not None:
            _end_cell(cur, book)
        elif local == "row" and cur["cells"] is not None:
            if keep is None or cur["rows_total"] < keep:
                cells = cur["cells"]
                width = max(cells) + 1 if cells else 0
                records.append((cur["row"], [cells.get(i, "") for i in range(width)]))
            cur["rows_total"] += 1
            cur["cells"] = None

    def text(data):
        if cur["in_v"] or (cur["in_t"] and cur["cells"] is not None):
            cur["len"] += len(data)
            if cur["len"] > limits.max_cell_chars:
                raise UnusableFile(
                    "too_large", f"an XLSX cell is longer than {limits.max_cell_chars:,} characters"
                )
            cur["text"].append(data)

    for _ in parse_blocks(book.zf, sheet, start, end, text, book.block):
        if records:
            yield records.copy()
            records.clear()


def header_of(first: list[tuple[int, list[str]]], found) -> tuple[int, list[str]]:
    """(the header's first row number, its names) among a sheet's first records, where
    ``found`` = (index, n rows, merged header or None) says it is."""
    at, _n_rows, merged = found
    first_line, header = first[at]
    if merged is not None:
        header = list(merged)
    elif first_line != 1 and not any(header) and at == 0:
        raise UnusableFile("no_header", "the first sheet has no header row")
    return first_line, header


def _frame(records, found, sheet_name: str):
    at, n_rows, _merged = found
    first_line, header = header_of(records, found)
    width = len(header)
    rows, numbers, bad = [], [], []
    for line_no, cells in records[at + n_rows :]:
        if len(cells) > width:
            bad.append((line_no, "wrong_field_count", "\x1f".join(cells)))
            continue
        rows.append(cells + [""] * (width - len(cells)))
        numbers.append(line_no)
    frame = (
        pd.DataFrame(rows, columns=range(width), dtype="string")
        if rows
        else pd.DataFrame({i: pd.Series([], dtype="string") for i in range(width)})
    )
    frame["line_no"] = np.asarray(numbers, dtype=np.int64)
    where = {"sheet": sheet_name, "header_line": first_line, "header_rows": n_rows}
    return header, frame, bad, where
