"""An XLSX delivery read in chunks of rows, with every verdict whole-file reading gives.

The workbook is read from its file (a ZIP over the open file, never its bytes in memory). One pass
hashes the file in blocks; opening the workbook inflates every member once through the counter
(`xlsx_parts`) and holds the shared strings and date styles. Then the sheets are parsed in
workbook order, as whole-file reading (`xlsx.read_xlsx`) parses them, keeping only each one's first
rows: every verdict on the sheets read (rows, columns, cells, cell length, XML, a shared string
out of range), the sheet chosen and its header are known before the first chunk. Then the chosen
sheet is parsed again and its rows come out `chunk_rows` at a time, numbered as the sheet numbers
them, with the rows wider than the header (quarantined) among them. What is held at any time: the
shared strings, a block of inflated XML and its rows, one chunk of rows. The chosen sheet is parsed
twice: the price of giving the whole file's verdicts first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass

from .readers import ReaderLimits, UnusableFile, python_frame
from .xlsx import SEARCH_ROWS, header_of, sheet_records
from .xlsx_parts import BLOCK, Book, open_book, zip_errors

ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class XlsxHead:
    sha256: str
    n_bytes: int
    header: list[str]
    header_line: int
    header_rows: int
    sheet: str
    encoding: str = "xlsx"


def digest(fh, limit: int) -> tuple[str, int, bytes]:
    """(SHA-256 of the file's first `limit` bytes, how many, its first 4), read in blocks."""
    fh.seek(0)
    sha, n, magic = hashlib.sha256(), 0, b""
    while n < limit:
        b = fh.read(min(BLOCK, limit - n))
        if not b:
            break
        if n < 4:
            magic = (magic + b)[:4]
        sha.update(b)
        n += len(b)
    return sha.hexdigest(), n, magic


def _first_rows(book: Book, path: str) -> list[tuple[int, list[str]]]:
    """A sheet's first SEARCH_ROWS records, the whole sheet parsed and checked."""
    return [r for batch in sheet_records(book, path, keep=SEARCH_ROWS) for r in batch]


def _choose(book: Book, locate) -> tuple[str, str, list, tuple]:
    """(sheet name, part, first records, (header index, rows, merged header)) of the sheet whole-file
    reading reads: the first whose header `locate` finds, else the first non-empty one."""
    fallback = None
    for name, path in book.sheets:
        first = _first_rows(book, path)
        if not first:
            continue
        found = locate([cells for _, cells in first]) if locate is not None else (0, 1, None)
        if found is None:
            fallback = fallback or (name, path, first)
            continue
        return name, path, first, found
    if fallback is None:
        raise UnusableFile("empty", "the workbook's first sheet is empty")
    return (*fallback, (0, 1, None))


def read_chunks(fh, locate, limits: ReaderLimits, chunk_rows: int, limit: int, block: int = BLOCK):
    """(XlsxHead, chunks of (rows of strings: columns 0..width-1 and line_no, bad records as
    (line_no, reason, text))) of an XLSX delivery open as `fh` (seekable), as whole-file reading
    (`xlsx.read_xlsx`) gives them, `chunk_rows` at a time (a sheet without rows: one chunk without
    rows); its sheets parsed `block` inflated bytes at a time. Every verdict on the whole file
    (UnusableFile, with the file's `sha256`) is given before this returns."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    sha, n_bytes, magic = digest(fh, limit)
    try:
        if magic != ZIP_MAGIC:
            raise UnusableFile("malformed", "named .xlsx but is not an XLSX (ZIP) file")
        with zip_errors():
            fh.seek(0)
            book = open_book(fh, n_bytes, limits, block)
            name, path, first, found = _choose(book, locate)
            first_line, header = header_of(first, found)
    except UnusableFile as exc:
        exc.sha256 = sha
        raise
    at, n_rows, _merged = found
    head = XlsxHead(sha, n_bytes, header, first_line, n_rows, name)
    return head, _chunks(book, path, at + n_rows, len(header), chunk_rows)


def _chunks(book: Book, path: str, skip: int, width: int, chunk_rows: int) -> Iterator:
    """The sheet's rows after its header, as whole-file reading frames them, in chunks: each
    with the rows wider than the header that come before the next chunk's first row."""
    with zip_errors():
        yield from _rows_in_chunks(sheet_records(book, path), skip, width, chunk_rows)


def _rows_in_chunks(batches, skip: int, width: int, chunk_rows: int):
    rows: list[list[str]] = []
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for batch in batches:
        if skip:
            batch, skip = batch[skip:], max(0, skip - len(batch))
        for line_no, cells in batch:
            if len(cells) > width:
                bad.append((line_no, "wrong_field_count", "\x1f".join(cells)))
                continue
            if len(rows) == chunk_rows:  # a row follows: the chunk is complete
                yield python_frame(rows, numbers, width), bad
                rows, numbers, bad = [], [], []
            rows.append(cells + [""] * (width - len(cells)))
            numbers.append(line_no)
    yield python_frame(rows, numbers, width), bad
