"""Byte-level checks and CSV parsing that a hostile or careless provider file cannot lie to.

Everything here either returns rows (each with its record number) or raises ``UnusableFile`` with
a stable code and a one-line message that never quotes file content beyond a short, escaped
prefix of the header. Limits are checked before anything large is allocated.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from scoring.common.text import shown
from scoring.intake.layouts import HEADER_SEARCH_ROWS, Layout


@dataclass
class RawFile:
    path: str
    provider: str
    encoding: str
    file_format: str
    layout: Layout | None
    header: list[str]
    mapping: dict[str, str]
    missing_required: list[str]
    rows: pd.DataFrame  # canonical columns as raw strings, plus line_no
    raw: pd.DataFrame  # the same rows under the provider's own headers, plus line_no
    bad_rows: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["line_no", "reason", "raw"])
    )
    sha256: str = ""
    n_bytes: int = 0
    header_line: int = 1  # the (first) row of the header, as a spreadsheet numbers rows
    header_rows: int = 1  # 2: two merged header rows
    sheet: str | None = None  # XLSX: the sheet read

    @property
    def where(self) -> str:
        """Which header row (and sheet) was used, for the operator."""
        rows = (
            f"row {self.header_line}"
            if self.header_rows == 1
            else f"rows {self.header_line}-{self.header_line + self.header_rows - 1} (merged)"
        )
        return f"header {rows}" + (f" of sheet {self.sheet}" if self.sheet else "")

    @property
    def received(self) -> int:
        return len(self.rows) + len(self.bad_rows)


class UnusableFile(Exception):
    """The file cannot be read at all; the message is the one-line reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ReaderLimits:
    max_header_bytes: int = 64 * 1024  # a real 双公示 header is ~1 KB
    max_columns: int = 512  # the widest national layout has ~35
    max_cell_chars: int = 32_767  # Excel's own limit for one cell
    max_rows: int = 20_000_000
    max_cells: int = 50_000_000  # XLSX: cells in the sheet
    xlsx_max_ratio: int = 100  # inflated : packed, beyond the first 64 MB
    xlsx_free_bytes: int = 64 * 1024 * 1024
    xlsx_bytes_per_cell: int = 150


DEFAULT_LIMITS = ReaderLimits()


def escaped_prefix(text: str | bytes, limit: int = 40) -> str:
    """A short prefix of a header for a message: Chinese as Chinese, control and bidi characters
    escaped, so nothing is echoed that a terminal would hide or reorder."""
    if isinstance(text, bytes):
        text = text[: limit * 4].decode("utf-8", errors="replace")
    return shown(text, limit)


def header_hint(header: list[str]) -> str:
    """What a message may say about a header that matches no layout: a line that is not a
    comma-separated header (a password file, a log) is described, never quoted; a real header is
    quoted by its first three names, each cut short and escaped."""
    names = [h for h in header if h]
    if len(header) < 2:
        return f"a single column of {sum(len(h) for h in header):,} characters, not a CSV header"
    return f"{len(header):,} columns, starting " + ",".join(
        escaped_prefix(h, 12) for h in names[:3]
    )


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def check_bytes(data: bytes, limits: ReaderLimits = DEFAULT_LIMITS) -> None:
    """Checks on a CSV delivery's raw bytes, before decoding: UTF-16/32, NUL bytes, the header's size."""
    nul = data.find(b"\x00")
    check_head(data, nul, lambda: _line_of(data, nul), limits)


def check_head(head: bytes, nul: int, nul_line, limits: ReaderLimits = DEFAULT_LIMITS) -> None:
    """check_bytes on a file's first bytes (at least the header's limit and 8 KB, or all of it),
    the offset of its first NUL byte (-1: none) and `nul_line()`, the line that byte is on."""
    data = head
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        raise UnusableFile(
            "bad_encoding", "UTF-32 encoded; CSV deliveries must be UTF-8 or GB18030"
        )
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise UnusableFile(
            "bad_encoding",
            "UTF-16 encoded (byte-order mark); CSV deliveries must be UTF-8 or GB18030",
        )
    if nul >= 0:
        utf16 = _utf16_without_bom(data)
        if utf16:
            raise UnusableFile(
                "bad_encoding",
                f"{utf16} encoded (no byte-order mark); CSV deliveries must be UTF-8 or GB18030",
            )
        raise UnusableFile(
            "binary", f"binary content: NUL byte at byte {nul:,} (line {nul_line():,})"
        )
    n = limits.max_header_bytes
    ends = [i for i in (data.find(b"\n", 0, n + 1), data.find(b"\r", 0, n + 1)) if i >= 0]
    end = min(ends) if ends else len(data)
    columns = (
        data.count(b",", 0, min(end, n)) + 1
    )  # counted in the bytes scanned, before any parsing
    if columns > limits.max_columns:
        more = "" if end <= n else " or more"
        raise UnusableFile(
            "too_many_columns",
            f"the header has {columns:,}{more} columns, beyond the limit {limits.max_columns:,}",
        )
    if end > n:
        raise UnusableFile("too_large", f"the header line is longer than {n:,} bytes")
    if not data[:end].strip(b" \t\xef\xbb\xbf"):
        raise UnusableFile("no_header", "the first line is blank; the header must be on line 1")


def _utf16_without_bom(data: bytes) -> str | None:
    """'UTF-16LE' or 'UTF-16BE' if the start of the data reads as text in it, else None."""
    sample = data[:8192]
    sample = sample[: len(sample) // 2 * 2]
    for enc, label in (("utf-16-le", "UTF-16LE"), ("utf-16-be", "UTF-16BE")):
        text = sample.decode(enc, errors="replace")
        if not text or "\x00" in text or text.count("\ufffd") > 2:
            continue
        plain = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
        if plain >= 0.95 * len(text) and ("," in text or "\n" in text):
            return label
    return None


def decode(data: bytes) -> tuple[str, str]:
    """(encoding label, text): UTF-8 (with or without BOM), then GB18030. A file cut inside a
    multi-byte character is named as truncated, at the right byte."""
    body, label, skip = (
        (data[3:], "utf-8-sig", 3) if data.startswith(b"\xef\xbb\xbf") else (data, "utf-8", 0)
    )
    try:
        return label, body.decode("utf-8")
    except UnicodeDecodeError as exc:
        utf8_error = exc.start
        not_utf8(exc.start, exc.reason, skip, len(data), lambda at: _line_of(data, at))
    try:
        return "gb18030", data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise not_gb18030(
            exc.start, exc.reason, utf8_error, len(data), lambda at: _line_of(data, at)
        ) from None


def not_utf8(start: int, reason: str, skip: int, n_bytes: int, line_of) -> None:
    """The verdict on a file that is not UTF-8 (`start`: the first bad byte after a BOM of `skip`
    bytes), where GB18030 is not tried: cut inside a character, or invalid after a UTF-8 BOM."""
    if reason == "unexpected end of data" and start >= n_bytes - skip - 3:
        raise UnusableFile(
            "truncated",
            f"the file ends inside a UTF-8 character at byte {start + skip:,} "
            f"of {n_bytes:,} (truncated?)",
        )
    if skip:
        raise UnusableFile(
            "bad_encoding",
            f"UTF-8 byte-order mark but invalid UTF-8 at byte {start + skip:,} "
            f"(line {line_of(start + skip):,})",
        )


def not_gb18030(start: int, reason: str, utf8_error: int, n_bytes: int, line_of) -> UnusableFile:
    """The verdict on a file that is neither UTF-8 nor GB18030."""
    if start >= n_bytes - 3 and reason in (
        "incomplete multibyte sequence",
        "unexpected end of data",
    ):
        return UnusableFile(
            "truncated",
            f"the file ends inside a GB18030 character at byte {start:,} "
            f"of {n_bytes:,} (truncated?)",
        )
    at = min(utf8_error, start)
    return UnusableFile(
        "bad_encoding",
        f"neither UTF-8 nor GB18030: invalid byte at {at:,} (line {line_of(at):,})",
    )


def physical_lines(text: str) -> list[str]:
    """Lines with their endings. A file whose first line ends in LF or CRLF is split at LFs only
    (a CR inside a quoted value is part of it); one whose first line ends in a lone CR (classic
    Mac) at its CRs."""
    m = re.search(r"\r\n|\n|\r", text)
    sep = "\r" if m and m.group() == "\r" else "\n"
    lines = text.split(sep)
    out = [ln + sep for ln in lines[:-1]]
    if lines[-1]:
        out.append(lines[-1])
    return out


def _line_breaks(text: str) -> int:
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def header_at(text: str, locate) -> tuple[int, int, list[str] | None, int]:
    """Where the header is in a CSV text's first rows (title rows above it): (its first row,
    1 or 2 merged rows, the merged header or None, characters before its last row). `locate`
    (rows of fields) -> (row, rows, merged header) or None: the first row."""
    head = physical_lines(text[: 1 << 20])[:HEADER_SEARCH_ROWS]
    rows = []
    for line in head:
        try:
            rows.append(next(csv.reader([line.rstrip("\r\n")]), []))
        except csv.Error:
            rows.append([])
    found = locate(rows) if rows else None
    at, n_rows, merged = found if found else (0, 1, None)
    skip = at + n_rows - 1  # parse from the header's last row
    return at, n_rows, merged, sum(len(line) for line in head[:skip])


def header_fields(text: str) -> list[str]:
    first = physical_lines(text[: 1 << 20])[:1]
    if not first:
        raise UnusableFile("no_header", "the file has no header row")
    try:
        return next(csv.reader([first[0].rstrip("\r\n")]))
    except (StopIteration, csv.Error):
        raise UnusableFile("no_header", "the header row cannot be parsed as CSV") from None


def one_line_end(text: str) -> str:
    """A file whose lines end in LF CR (``\\n\\r``, CR LF written the wrong way round) read with
    one line end per line, not a blank line after each: its header decides."""
    m = re.search(r"\r\n|\n\r|\n|\r", text[: 1 << 20])
    return text.replace("\n\r", "\n") if m and m.group() == "\n\r" else text


def arrow_csv_options(width: int, on_invalid, block: int) -> dict:
    """How Arrow reads a delivery's records: every field text (never null, never inferred),
    quoted line breaks inside values, blank lines kept (they are rows to account for), each
    malformed row handed to ``on_invalid``."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    return {
        "read_options": pacsv.ReadOptions(
            use_threads=False, autogenerate_column_names=True, block_size=block
        ),
        "parse_options": pacsv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=on_invalid
        ),
        "convert_options": pacsv.ConvertOptions(
            column_types={f"f{i}": pa.string() for i in range(width)},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        ),
    }


def parse_csv(
    text: str, limits: ReaderLimits = DEFAULT_LIMITS
) -> tuple[list[str], pd.DataFrame, list[tuple[int, str, str]]]:
    """Parse CSV text. Returns (header, data frame of strings with line_no, bad records as
    (line_no, reason, text)). Record numbers count records, header = 1, as a spreadsheet numbers
    rows. Arrow's C++ reader does the work; only a file whose values span lines (a quoted newline,
    or an unterminated quote that swallowed the records after it) is re-read record by record."""
    text = one_line_end(text)
    header = header_fields(text)
    width = len(header)
    if width > limits.max_columns:
        raise UnusableFile(
            "too_many_columns",
            f"the header has {width:,} columns, beyond the limit {limits.max_columns:,}",
        )
    fast = _parse_arrow(text, width)
    if fast is not None:
        frame, invalid = fast
        if len(frame) + len(invalid) == _line_breaks(text) + (
            0 if text.endswith(("\n", "\r")) else 1
        ):
            return _finish_fast(frame, invalid, width, text)
    return _parse_python(text, width, limits)


def _parse_arrow(text: str, width: int):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    invalid: list[tuple[int, str]] = []

    def on_invalid(row):
        invalid.append((row.number, row.text))
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")), **arrow_csv_options(width, on_invalid, 64 << 20)
        )
    except (pa.ArrowInvalid, pa.ArrowCapacityError, pa.ArrowNotImplementedError):
        return None  # the record-by-record reader names what is wrong
    if table.num_columns != width or table.num_rows == 0:
        return None
    return table.to_pandas(), invalid


def _finish_fast(frame: pd.DataFrame, invalid, width: int, text: str):
    header = [str(v) for v in frame.iloc[0].tolist()]
    data = frame.iloc[1:].reset_index(drop=True)
    data.columns = range(width)
    bad_numbers = {n for n, _ in invalid}
    total = len(frame) + len(invalid)
    lines = [n for n in range(2, total + 1) if n not in bad_numbers]
    data["line_no"] = np.asarray(lines[: len(data)], dtype=np.int64)
    unterminated_end = not text.endswith(("\n", "\r"))

    def reason(n: int, t: str) -> str:
        if n == total and unterminated_end:
            return "unterminated_quote" if t.count('"') % 2 else "truncated_row"
        return "wrong_field_count"

    bad = [(n, reason(n, t), t) for n, t in invalid]
    return header, data, bad


def _looks_like_records(lines: list[str], width: int) -> bool:
    """Does any of these lines parse on its own as a complete record of the file's width?"""
    if width < 2:
        return False
    for line in lines:
        try:
            fields = next(csv.reader([line.rstrip("\r\n")]))
        except (StopIteration, csv.Error):
            continue
        if len(fields) == width and line.count('"') % 2 == 0:
            return True
    return False


def _strict_fields(record_lines: list[str]) -> list[str] | None:
    """The record's fields under strict CSV rules, or None where they are broken (an open quote
    at the end of the data, text after a closing quote)."""
    try:
        return next(csv.reader(iter(record_lines), strict=True), None)
    except csv.Error:
        return None


def _parse_python(text: str, width: int, limits: ReaderLimits):
    """Record by record, for files whose values span lines. An open quote that swallows lines which
    are complete records on their own is an unterminated quote: its line is quarantined with that
    reason and reading resumes on the next physical line, so the records after it are kept."""
    lines = physical_lines(text)
    csv.field_size_limit(max(limits.max_cell_chars * 4, 131072))
    rows: list[list[str]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    k = 1  # physical line index (0 is the header)
    rec = 1  # record number (header = 1)
    n = len(lines)
    while k < n:
        rec += 1
        start = k

        def feed():
            nonlocal k
            while k < n:
                k += 1
                yield lines[k - 1]

        try:
            fields = next(csv.reader(feed()), None)
        except csv.Error:
            k = start + 1
            bad.append((rec, "malformed_row", lines[start]))
            continue
        if fields is None:
            break
        kind = record_kind(lines[start:k], fields, width, k == n, text.endswith(("\n", "\r")))
        if kind == "unterminated_quote":
            # The quote opened on this line never closed where a value could end: quarantine the
            # line and read on from the next one, so the records it swallowed are kept.
            k = start + 1
            bad.append((rec, kind, lines[start]))
        elif kind is not None:
            bad.append((rec, kind, "".join(lines[start:k])))
        else:
            rows.append(fields)
            numbers.append(rec)
    return header_fields(text), python_frame(rows, numbers, width), bad


def record_kind(
    taken: list[str], fields: list[str], width: int, at_end: bool, ends_in_line_end: bool
) -> str | None:
    """What is wrong with a record read from the physical lines `taken` (None: nothing);
    `at_end`: no line follows it."""
    span = len(taken)
    unterminated = False
    if span > 1 or at_end:
        strict = _strict_fields(taken)
        # A well-formed record of the file's width is kept whatever its values hold.
        unterminated = (strict is None or len(strict) != width) and (
            (span > 1 and _looks_like_records(taken[1:], width)) or (at_end and strict is None)
        )
    if unterminated:
        return "unterminated_quote"
    if len(fields) != width:
        return "truncated_row" if at_end and not ends_in_line_end else "wrong_field_count"
    return None


def python_frame(rows: list[list[str]], numbers: list[int], width: int) -> pd.DataFrame:
    data = (
        pd.DataFrame(rows, columns=range(width), dtype="string")
        if rows
        else pd.DataFrame({i: pd.Series([], dtype="string") for i in range(width)})
    )
    data["line_no"] = np.asarray(numbers, dtype=np.int64)
    return data


def check_header(header: list[str], limits: ReaderLimits = DEFAULT_LIMITS) -> list[str]:
    """Stripped header names; blank, duplicate or oversized names reject the file by name."""
    names = [str(h).strip() for h in header]
    if not any(names):
        raise UnusableFile("no_header", "the header row is blank")
    if any(len(h) > 200 for h in names):
        raise UnusableFile("bad_header", "a header name is longer than 200 characters")
    seen: dict[str, int] = {}
    for i, h in enumerate(names, start=1):
        if h and h in seen:
            raise UnusableFile(
                "duplicate_header",
                f"header column {i} repeats column {seen[h]} ({escaped_prefix(h, 20)})",
            )
        seen.setdefault(h, i)
    return names
