"""A streaming XLSX reader that believes only what is in the sheet.

Rows are the sheet's actual ``<row>`` elements (a ``<dimension>`` that says A1:M10 over 436 rows
is ignored); every part is inflated through a counter, so decompressed bytes, the packing ratio,
rows, columns and cell length are checked while reading, whatever the ZIP headers claim. XML is
parsed by expat with document type declarations refused (no entity expansion).
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import re
import zipfile
import zlib
from xml.parsers import expat

import numpy as np
import pandas as pd

from .readers import DEFAULT_LIMITS, ReaderLimits, UnusableFile

_CHUNK = 1 << 20
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | {45, 46, 47}
_STRIP_FORMAT = re.compile(r'"[^"]*"|\[(?!hh?\]|mm?\]|ss?\])[^\]]*\]')
_DATE_CODE = re.compile(r"(?<![\\_])[dmhysDMHYS]")
_COLUMN = re.compile(r"^([A-Z]{1,3})")


# Shared strings against the sheet that uses them: a cell takes at least ~20 bytes of sheet XML
# (<c r="A1" t="s"><v>0</v></c>), so a sheet of N bytes uses at most N / 20 strings; a real file's
# strings part is a few times its sheet. Millions of unused strings are refused before parsing.
SHARED_MIN_CELL_BYTES = 20
SHARED_FREE = 1024  # strings (and KB of strings) always allowed, whatever the sheet
SHARED_BYTES_PER_SHEET_BYTE = 16


class _Budget:
    """Decompressed bytes read so far, against an absolute limit and a packing ratio."""

    def __init__(self, packed: int, limits: ReaderLimits):
        self.packed = max(packed, 1)
        self.limits = limits
        self.total = 0
        self.sizes: dict[str, int] = {}  # inflated bytes of each member
        self.cap = max(limits.xlsx_free_bytes, limits.xlsx_bytes_per_cell * limits.max_cells)

    def add(self, n: int) -> None:
        self.total += n
        if self.total > self.cap:
            raise UnusableFile("too_large", f"XLSX expands beyond {self.cap:,} bytes")
        if (
            self.total > self.limits.xlsx_free_bytes
            and self.total > self.limits.xlsx_max_ratio * self.packed
        ):
            raise UnusableFile(
                "too_large",
                f"XLSX expands more than {self.limits.xlsx_max_ratio}:1 "
                f"({self.total:,} bytes from {self.packed:,}; a zip bomb?)",
            )


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _measure(zf: zipfile.ZipFile, budget: _Budget) -> None:
    """Inflate every member once, counting (C speed, nothing kept): a bomb is caught here,
    before any XML is parsed, whatever sizes the ZIP headers declare."""
    for info in zf.infolist():
        with zf.open(info) as fh:
            while True:
                block = fh.read(_CHUNK)
                if not block:
                    break
                budget.add(len(block))
                budget.sizes[info.filename] = budget.sizes.get(info.filename, 0) + len(block)


def _shared_limit(budget: _Budget, sheets: list[str], shared: str) -> int:
    """How many shared strings the sheets can use; a strings part far larger than its sheets is
    refused here, before it is parsed."""
    sheet_bytes = sum(budget.sizes.get(sheet, 0) for sheet in sheets)
    shared_bytes = budget.sizes.get(shared, 0)
    allowed = max(SHARED_FREE * 1024, SHARED_BYTES_PER_SHEET_BYTE * sheet_bytes)
    if shared_bytes > allowed:
        raise UnusableFile(
            "too_large",
            f"XLSX shared strings take {shared_bytes:,} bytes for a sheet of {sheet_bytes:,} "
            f"bytes (at most {allowed:,}): strings the sheet cannot use",
        )
    return sheet_bytes // SHARED_MIN_CELL_BYTES + SHARED_FREE


def _parse_part(zf: zipfile.ZipFile, name: str, budget, start, end=None, text=None) -> None:
    """Stream one XML part through expat with the given handlers."""
    parser = expat.ParserCreate(namespace_separator=" ")

    def no_dtd(*_args):
        raise UnusableFile("malformed", f"XLSX part {name} declares a document type (refused)")

    parser.StartDoctypeDeclHandler = no_dtd
    parser.EntityDeclHandler = no_dtd
    parser.StartElementHandler = start
    if end:
        parser.EndElementHandler = end
    if text:
        parser.CharacterDataHandler = text
    parser.buffer_text = True
    try:
        with zf.open(name) as fh:
            while True:
                block = fh.read(_CHUNK)
                if not block:
                    parser.Parse(b"", True)
                    break
                parser.Parse(block, False)
    except expat.ExpatError as exc:
        raise UnusableFile(
            "malformed", f"XLSX part {name} is not well-formed XML (line {exc.lineno})"
        ) from None


def _rels(zf, path: str, budget) -> dict[str, tuple[str, str]]:
    """Relationship id → (type, target path) of a part's .rels file."""
    folder, base = posixpath.split(path)
    rels_path = posixpath.join(folder, "_rels", base + ".rels")
    out: dict[str, tuple[str, str]] = {}
    if rels_path not in zf.NameToInfo:
        return out

    def start(name, attrs):
        if _local(name) == "Relationship" and attrs.get("TargetMode") != "External":
            target = attrs.get("Target", "")
            full = (
                target.lstrip("/")
                if target.startswith("/")
                else posixpath.normpath(posixpath.join(folder, target))
            )
            out[attrs.get("Id", "")] = (attrs.get("Type", ""), full)

    _parse_part(zf, rels_path, budget, start)
    return out


def _workbook(zf, budget) -> tuple[list[tuple[str, str]], str | None, str | None, bool]:
    """([(sheet name, sheet path)] in workbook order, shared strings path, styles path, 1904
    date system)."""
    book = next(
        (t for typ, t in _rels(zf, "", budget).values() if typ.endswith("/officeDocument")),
        "xl/workbook.xml",
    )
    if book not in zf.NameToInfo:
        raise UnusableFile("malformed", "XLSX has no workbook part")
    rels = _rels(zf, book, budget)
    sheets: list[tuple[str, str | None]] = []
    date1904 = [False]

    def start(name, attrs):
        local = _local(name)
        if local == "sheet":
            rid = next((v for k, v in attrs.items() if _local(k) == "id"), None)
            sheets.append((attrs.get("name", ""), rid))
        elif local == "workbookPr":
            date1904[0] = attrs.get("date1904") in ("1", "true")

    _parse_part(zf, book, budget, start)
    readable = [
        (name, rels[rid][1])
        for name, rid in sheets
        if rid in rels and rels[rid][1] in zf.NameToInfo
    ]
    if not sheets or sheets[0][1] not in rels or rels[sheets[0][1]][1] not in zf.NameToInfo:
        raise UnusableFile("empty", "the workbook has no readable first sheet")
    shared = next((t for typ, t in rels.values() if typ.endswith("/sharedStrings")), None)
    styles = next((t for typ, t in rels.values() if typ.endswith("/styles")), None)
    return (
        readable,
        shared if shared in zf.NameToInfo else None,
        styles if styles in zf.NameToInfo else None,
        date1904[0],
    )


def _shared_strings(zf, path, budget, limits, most: int) -> list[str]:
    strings: list[str] = []
    parts: list[str] = []
    state = {"in_t": False, "in_rph": 0, "len": 0}

    def start(name, _attrs):
        local = _local(name)
        if local == "si":
            parts.clear()
            state["len"] = 0
        elif local == "rPh":
            state["in_rph"] += 1
        elif local == "t" and not state["in_rph"]:
            state["in_t"] = True

    def end(name):
        local = _local(name)
        if local == "t":
            state["in_t"] = False
        elif local == "rPh":
            state["in_rph"] -= 1
        elif local == "si":
            strings.append("".join(parts))
            if len(strings) > most:
                raise UnusableFile(
                    "too_large",
                    f"XLSX has more than {most:,} shared strings, more than its sheet can use",
                )

    def text(data):
        if state["in_t"]:
            state["len"] += len(data)
            if state["len"] > limits.max_cell_chars:
                raise UnusableFile(
                    "too_large",
                    f"an XLSX shared string is longer than {limits.max_cell_chars:,} characters",
                )
            parts.append(data)

    _parse_part(zf, path, budget, start, end, text)
    return strings


def _date_styles(zf, path, budget) -> set[int]:
    """Indexes of cell formats that show a number as a date."""
    custom: dict[int, str] = {}
    xfs: list[int] = []
    depth = {"cellXfs": False}

    def start(name, attrs):
        local = _local(name)
        if local == "numFmt":
            try:
                custom[int(attrs.get("numFmtId", "-1"))] = attrs.get("formatCode", "")
            except ValueError:
                pass
        elif local == "cellXfs":
            depth["cellXfs"] = True
        elif local == "xf" and depth["cellXfs"]:
            try:
                xfs.append(int(attrs.get("numFmtId", "0")))
            except ValueError:
                xfs.append(0)

    def end(name):
        if _local(name) == "cellXfs":
            depth["cellXfs"] = False

    _parse_part(zf, path, budget, start, end)

    def is_date(fmt_id: int) -> bool:
        if fmt_id in custom:
            code = _STRIP_FORMAT.sub("", custom[fmt_id].split(";")[0])
            return _DATE_CODE.search(code) is not None
        return fmt_id in _BUILTIN_DATE_FORMATS

    return {i for i, f in enumerate(xfs) if is_date(f)}


def _column_index(ref: str | None) -> int | None:
    if not ref:
        return None
    m = _COLUMN.match(ref)
    if not m:
        return None
    n = 0
    for ch in m.group(1):
        n = n * 26 + ord(ch) - 64
    return n - 1


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
    try:
        return _read(data, limits, locate)
    except UnusableFile:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise UnusableFile(
            "truncated" if "CRC" not in str(exc) else "malformed",
            f"XLSX is not a complete ZIP archive ({type(exc).__name__})",
        ) from None
    except (NotImplementedError, RuntimeError) as exc:  # encrypted members, unsupported compression
        raise UnusableFile("malformed", f"XLSX cannot be inflated ({type(exc).__name__})") from None
    except (KeyError, ValueError, IndexError, OverflowError) as exc:
        raise UnusableFile(
            "malformed", f"XLSX structure is inconsistent ({type(exc).__name__})"
        ) from None


def _read(data: bytes, limits: ReaderLimits, locate=None):
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise UnusableFile(
            "truncated", "XLSX file is not a complete ZIP archive (truncated?)"
        ) from None
    budget = _Budget(len(data), limits)
    _measure(zf, budget)
    sheets, shared_path, styles_path, date1904 = _workbook(zf, budget)
    shared = (
        _shared_strings(
            zf,
            shared_path,
            budget,
            limits,
            _shared_limit(budget, [p for _, p in sheets], shared_path),
        )
        if shared_path
        else []
    )
    date_styles = _date_styles(zf, styles_path, budget) if styles_path else set()
    fallback = None
    for name, path in sheets:
        records = _sheet_records(zf, path, budget, limits, shared, date_styles, date1904)
        if not records:
            continue
        found = locate([cells for _, cells in records[:10]]) if locate is not None else (0, 1, None)
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


def _start_row(cur: dict, attrs, limits, records: list) -> None:
    r = attrs.get("r")
    n = int(r) if r and r.isdigit() and int(r) > cur["last_row"] else cur["last_row"] + 1
    cur["last_row"] = n
    cur["row"], cur["cells"], cur["col"] = n, {}, -1
    if len(records) >= limits.max_rows:
        raise UnusableFile("too_large", f"XLSX has more than {limits.max_rows:,} rows")


def _end_cell(cur: dict, limits, shared, date_styles, date1904) -> None:
    raw = "".join(cur["text"])
    as_date = cur["style"] in date_styles
    value = _cell_value(raw, cur["type"], shared, as_date, date1904)
    if value:
        cur["cells"][cur["col"]] = value
    cur["cells_total"] += 1
    if cur["cells_total"] > limits.max_cells:
        raise UnusableFile("too_large", f"XLSX has more than {limits.max_cells:,} cells")


def _sheet_records(zf, sheet, budget, limits, shared, date_styles, date1904):
    """A sheet's rows as (row number, cells), as the sheet holds them."""

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
        "cells_total": 0,
    }

    def start(name, attrs):
        local = _local(name)
        if local == "c":
            _start_cell(cur, attrs, limits)
        elif local == "row":
            _start_row(cur, attrs, limits, records)
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
            _end_cell(cur, limits, shared, date_styles, date1904)
        elif local == "row" and cur["cells"] is not None:
            cells = cur["cells"]
            width = max(cells) + 1 if cells else 0
            records.append((cur["row"], [cells.get(i, "") for i in range(width)]))
            cur["cells"] = None

    def text(data):
        if cur["in_v"] or (cur["in_t"] and cur["cells"] is not None):
            cur["len"] += len(data)
            if cur["len"] > limits.max_cell_chars:
                raise UnusableFile(
                    "too_large", f"an XLSX cell is longer than {limits.max_cell_chars:,} characters"
                )
            cur["text"].append(data)

    _parse_part(zf, sheet, budget, start, end, text)
    return records


def _frame(records, found, sheet_name: str):
    at, n_rows, merged = found
    first_line, header = records[at]
    if merged is not None:
        header = list(merged)
    elif first_line != 1 and not any(header) and at == 0:
        raise UnusableFile("no_header", "the first sheet has no header row")
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
