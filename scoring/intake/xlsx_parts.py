"""A workbook's parts other than its sheets' rows: the ZIP opened over a file or bytes, every
member inflated once through a counter, the workbook's sheets, shared strings and date styles.

Every part is inflated a block at a time (never a whole member in memory): decompressed bytes and
the packing ratio are checked while inflating, whatever the ZIP headers claim. XML is parsed by
expat with document type declarations refused (no entity expansion). The shared strings are the
one part held whole, bounded by the sheet that uses them (``shared_limit``) and the cell length.
"""

from __future__ import annotations

import contextlib
import posixpath
import re
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from xml.parsers import expat

from .readers import ReaderLimits, UnusableFile

BLOCK = 1 << 20  # inflated bytes read (and parsed) at a time
_BUILTIN_DATE_FORMATS = set(range(14, 23)) | {45, 46, 47}
_STRIP_FORMAT = re.compile(r'"[^"]*"|\[(?!hh?\]|mm?\]|ss?\])[^\]]*\]')
_DATE_CODE = re.compile(r"(?<![\\_])[dmhysDMHYS]")


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


@contextlib.contextmanager
def zip_errors():
    """What breaks inflating or indexing a workbook, as the UnusableFile it makes the file."""
    try:
        yield
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


def _local(name: str) -> str:
    return name.rsplit(" ", 1)[-1]


def _measure(zf: zipfile.ZipFile, budget: _Budget) -> None:
    """Inflate every member once, counting (C speed, nothing kept): a bomb is caught here,
    before any XML is parsed, whatever sizes the ZIP headers declare."""
    for info in zf.infolist():
        with zf.open(info) as fh:
            while True:
                block = fh.read(BLOCK)
                if not block:
                    break
                budget.add(len(block))
                budget.sizes[info.filename] = budget.sizes.get(info.filename, 0) + len(block)


def shared_limit(budget: _Budget, sheets: list[str], shared: str) -> int:
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


def parse_blocks(
    zf: zipfile.ZipFile, name: str, start, end=None, text=None, block: int = BLOCK
) -> Iterator[None]:
    """Stream one XML part through expat with the given handlers, `block` inflated bytes at a
    time; yields after each block (what the handlers gathered from it can be taken then)."""
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
    with zf.open(name) as fh:
        while True:
            data = fh.read(block)
            try:
                parser.Parse(data, not data)
            except expat.ExpatError as exc:
                raise UnusableFile(
                    "malformed", f"XLSX part {name} is not well-formed XML (line {exc.lineno})"
                ) from None
            yield
            if not data:
                return


def _parse_part(zf: zipfile.ZipFile, name: str, start, end=None, text=None) -> None:
    for _ in parse_blocks(zf, name, start, end, text):
        pass


def _rels(zf, path: str) -> dict[str, tuple[str, str]]:
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

    _parse_part(zf, rels_path, start)
    return out


def _workbook(zf) -> tuple[list[tuple[str, str]], str | None, str | None, bool]:
    """([(sheet name, sheet path)] in workbook order, shared strings path, styles path, 1904
    date system)."""
    book = next(
        (t for typ, t in _rels(zf, "").values() if typ.endswith("/officeDocument")),
        "xl/workbook.xml",
    )
    if book not in zf.NameToInfo:
        raise UnusableFile("malformed", "XLSX has no workbook part")
    rels = _rels(zf, book)
    sheets: list[tuple[str, str | None]] = []
    date1904 = [False]

    def start(name, attrs):
        local = _local(name)
        if local == "sheet":
            rid = next((v for k, v in attrs.items() if _local(k) == "id"), None)
            sheets.append((attrs.get("name", ""), rid))
        elif local == "workbookPr":
            date1904[0] = attrs.get("date1904") in ("1", "true")

    _parse_part(zf, book, start)
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


def _shared_strings(zf, path, limits, most: int) -> list[str]:
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

    _parse_part(zf, path, start, end, text)
    return strings


def _date_styles(zf, path) -> set[int]:
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

    _parse_part(zf, path, start, end)

    def is_date(fmt_id: int) -> bool:
        if fmt_id in custom:
            code = _STRIP_FORMAT.sub("", custom[fmt_id].split(";")[0])
            return _DATE_CODE.search(code) is not None
        return fmt_id in _BUILTIN_DATE_FORMATS

    return {i for i, f in enumerate(xfs) if is_date(f)}


@dataclass
class Book:
    """An open workbook: what reading its sheets' rows needs."""

    zf: zipfile.ZipFile
    limits: ReaderLimits
    sheets: list[tuple[str, str]]  # (name, part) of each readable sheet, in workbook order
    shared: list[str]
    date_styles: set[int]
    date1904: bool
    block: int = BLOCK  # inflated bytes of a sheet parsed at a time


def open_book(fh, n_bytes: int, limits: ReaderLimits, block: int = BLOCK) -> Book:
    """The workbook in `fh` (a seekable file or BytesIO of `n_bytes` bytes), every member
    inflated once and counted first; its sheets to be parsed `block` bytes at a time. Raises
    UnusableFile (run it under ``zip_errors``)."""
    try:
        zf = zipfile.ZipFile(fh)
    except zipfile.BadZipFile:
        raise UnusableFile(
            "truncated", "XLSX file is not a complete ZIP archive (truncated?)"
        ) from None
    budget = _Budget(n_bytes, limits)
    _measure(zf, budget)
    sheets, shared_path, styles_path, date1904 = _workbook(zf)
    shared = (
        _shared_strings(
            zf, shared_path, limits, shared_limit(budget, [p for _, p in sheets], shared_path)
        )
        if shared_path
        else []
    )
    date_styles = _date_styles(zf, styles_path) if styles_path else set()
    return Book(zf, limits, sheets, shared, date_styles, date1904, block)
