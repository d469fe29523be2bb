"""A CSV delivery read in chunks of rows, with every verdict whole-file reading gives.

A first pass over the bytes (in blocks) hashes them, finds the first NUL byte and judges UTF-8
(a second such pass judges GB18030 when UTF-8 fails); the file's first bytes and characters judge
the header. Which parser reads the rows is a verdict on the whole file too (Arrow's, unless a
value spans lines or Arrow fails: then record by record), so Arrow reads it once without keeping
anything first. Then the text is read again, block by block, and its rows come out `chunk_rows`
at a time, numbered as whole-file reading numbers them; the last row is kept back until the end,
where it may turn out truncated. What is held at any time: a block of bytes, a block of Arrow's
(READ_BLOCK), one chunk of rows.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from scoring.intake import readers as rd

BLOCK_BYTES = 1 << 20  # bytes read (and decoded) at a time
HEAD = 1 << 20  # bytes (and characters) whole-file reading looks at for the header
READ_BLOCK = 64 << 20  # Arrow's block, as whole-file reading has it (a longer record fails alike)
SMALL_READ_BLOCK = 4 << 20  # Arrow's block where no record is longer (the same rows, less held)
BOM = b"\xef\xbb\xbf"
LINE_END = re.compile(r"\r\n|\n|\r")


@dataclass
class Scan:
    """What one pass over a file's bytes found."""

    n_bytes: int
    sha256: str
    head: bytes  # the first HEAD bytes
    nul: int  # the first NUL byte's offset, -1: none
    utf8_error: tuple[int, str] | None  # (first bad byte after the BOM, reason)
    nonspace: bool  # the UTF-8 text has a character str.strip() keeps
    ends_in_line_end: bool  # its last byte is a LF or CR (and so is the text's last character)


def blocks(fh, limit: int, block: int) -> Iterator[bytes]:
    """The file's bytes from its start, `block` at a time (the first at least 4: a BOM is seen
    whole), at most `limit` in all."""
    fh.seek(0)
    left, size = limit, max(block, 4)
    while left > 0:
        b = fh.read(min(size, left))
        if not b:
            return
        left -= len(b)
        size = block
        yield b


def scan(fh, limit: int, block: int = BLOCK_BYTES) -> Scan:
    sha, n, head, nul, last = hashlib.sha256(), 0, bytearray(), -1, b""
    pending, base, error, nonspace = b"", 0, None, False  # UTF-8: base = body offset of pending
    for b in blocks(fh, limit, block):
        sha.update(b)
        if len(head) < HEAD:
            head += b[: HEAD - len(head)]
        if nul < 0 and (i := b.find(b"\x00")) >= 0:
            nul = n + i
        body = b[3:] if n == 0 and b.startswith(BOM) else b
        n, last = n + len(b), b[-1:]
        if error is None:
            data = pending + body
            try:
                text, used = codecs.utf_8_decode(data, "strict", False)
            except UnicodeDecodeError as exc:
                error = (base + exc.start, exc.reason)
                continue
            pending, base = data[used:], base + used
            nonspace = nonspace or bool(text.strip())
    if error is None and pending:
        try:
            codecs.utf_8_decode(pending, "strict", True)
        except UnicodeDecodeError as exc:
            error = (base + exc.start, exc.reason)
    ends = last in (b"\n", b"\r")
    return Scan(n, sha.hexdigest(), bytes(head), nul, error, nonspace, ends)


def scan_gb18030(fh, limit: int, block: int = BLOCK_BYTES) -> tuple[tuple | None, bool]:
    """(first error as (byte, reason), or None; the text has a character str.strip() keeps)."""
    dec, pos, nonspace = codecs.getincrementaldecoder("gb18030")(), 0, False
    try:
        for b in blocks(fh, limit, block):
            base = pos - len(dec.getstate()[0])
            pos += len(b)
            text = dec.decode(b)
            nonspace = nonspace or bool(text.strip())
        base = pos - len(dec.getstate()[0])
        dec.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return (base + exc.start, exc.reason), nonspace
    return None, nonspace


def line_at(fh, offset: int, block: int = BLOCK_BYTES) -> int:
    """The line (1-based, counted in LFs) of a byte offset, counted in blocks."""
    lines, seen = 1, 0
    for b in blocks(fh, offset, block):
        lines += b.count(b"\n")
        seen += len(b)
    return lines


def judge(fh, s: Scan, limits: rd.ReaderLimits, limit: int, block: int) -> str:
    """The verdicts of readers.check_bytes and readers.decode on the whole file, in their order;
    the encoding label it is read in."""
    rd.check_head(s.head, s.nul, lambda: line_at(fh, s.nul, block), limits)
    skip = 3 if s.head.startswith(BOM) else 0
    if s.utf8_error is None:
        label, nonspace = ("utf-8-sig" if skip else "utf-8"), s.nonspace
    else:
        start, reason = s.utf8_error
        rd.not_utf8(start, reason, skip, s.n_bytes, lambda at: line_at(fh, at, block))
        error, nonspace = scan_gb18030(fh, limit, block)
        if error is not None:
            raise rd.not_gb18030(*error, start, s.n_bytes, lambda at: line_at(fh, at, block))
        label = "gb18030"
    if not nonspace:
        raise rd.UnusableFile("empty", "the file has no header row")
    return label


def text_blocks(fh, label: str, limit: int, block: int) -> Iterator[str]:
    """The file's text (as readers.decode gives it), a block at a time."""
    dec = codecs.getincrementaldecoder("utf-8" if label != "gb18030" else "gb18030")()
    first = label == "utf-8-sig"
    for b in blocks(fh, limit, block):
        if first:
            b, first = b[3:], False
        if text := dec.decode(b):
            yield text
    if rest := dec.decode(b"", final=True):
        yield rest


def head_text(fh, label: str, limit: int, block: int) -> str:
    """The text's first HEAD characters (what whole-file reading looks for the header in)."""
    out, n = [], 0
    for t in text_blocks(fh, label, limit, block):
        out.append(t)
        n += len(t)
        if n >= HEAD:
            break
    return "".join(out)[:HEAD]


class Body:
    """The text from a character offset on (the header's last row), with readers.one_line_end
    applied, as blocks, physical lines or UTF-8 bytes; counts its line breaks as it goes."""

    def __init__(self, make_blocks: Callable[[], Iterator[str]], offset: int, swap: bool):
        self.make_blocks, self.offset, self.swap = make_blocks, offset, swap
        self.breaks = 0

    def blocks(self) -> Iterator[str]:
        """The text's blocks; a CR LF (or LF CR) split between two blocks counts (or is
        replaced) as it is in the whole text."""
        self.breaks, skip, sent_last, read_last = 0, self.offset, "", ""
        for t in self.make_blocks():
            if skip:
                t, skip = t[skip:], max(0, skip - len(t))
                if not t:
                    continue
            last = t[-1]
            if self.swap:
                if read_last == "\n" and t[0] == "\r":
                    t = t[1:]  # the LF CR began in the block before
                t = t.replace("\n\r", "\n")
            read_last = last
            if not t:
                continue
            self.breaks += t.count("\n") + t.count("\r") - t.count("\r\n")
            if sent_last == "\r" and t[0] == "\n":
                self.breaks -= 1
            sent_last = t[-1]
            yield t

    def lines(self, sep: str) -> Iterator[str]:
        rest = ""
        for t in self.blocks():
            parts = (rest + t).split(sep)
            rest = parts.pop()
            yield from (p + sep for p in parts)
        if rest:
            yield rest

    def utf8(self) -> io.RawIOBase:
        return _Utf8(self.blocks())


class _Utf8(io.RawIOBase):
    """Text blocks as a readable stream of UTF-8 bytes (what Arrow reads): a read is filled
    whole, as from a file, so Arrow's blocks are the blocks it reads a whole text in."""

    def __init__(self, texts: Iterator[str]):
        self.texts, self.piece, self.at = texts, b"", 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes, built from the pieces at hand (Arrow asks for a whole block:
        nothing of that size is allocated ahead of the text)."""
        parts, n = [], 0
        while size < 0 or n < size:
            if self.at == len(self.piece):
                t = next(self.texts, None)
                if t is None:
                    break
                self.piece, self.at = t.encode("utf-8"), 0
            k = len(self.piece) - self.at if size < 0 else min(size - n, len(self.piece) - self.at)
            parts.append(self.piece[self.at : self.at + k] if k < len(self.piece) else self.piece)
            n, self.at = n + k, self.at + k
        return b"".join(parts)

    def readinto(self, out) -> int:
        view, n = memoryview(out).cast("B"), 0
        while n < len(view):
            if self.at == len(self.piece):
                t = next(self.texts, None)
                if t is None:
                    break
                self.piece, self.at = t.encode("utf-8"), 0
            k = min(len(view) - n, len(self.piece) - self.at)
            view[n : n + k] = memoryview(self.piece)[self.at : self.at + k]
            n, self.at = n + k, self.at + k
        return n


def _arrow(stream, width: int, on_invalid, block: int):
    return pacsv.open_csv(stream, **rd.arrow_csv_options(width, on_invalid, block))


ARROW_FAILS = (pa.ArrowInvalid, pa.ArrowCapacityError, pa.ArrowNotImplementedError)


def arrow_reads_it(body: Body, width: int, ends_in_line_end: bool) -> int | None:
    """Whole-file reading's choice (readers.parse_csv): Arrow's reader, when it reads the text
    with the header's width and one record per line; else (None) record by record. Arrow's block
    for it: a small one, unless a record is longer (Arrow fails on a record longer than its
    block): then the block whole-file reading has, which fails where that reading fails."""
    for block in (SMALL_READ_BLOCK, READ_BLOCK):
        got = _arrow_count(body, width, block)
        if got is not None:
            rows, invalid = got
            fits = rows > 0 and rows + invalid == body.breaks + (0 if ends_in_line_end else 1)
            return block if fits else None
    return None


def _arrow_count(body: Body, width: int, block: int) -> tuple[int, int] | None:
    """(records read, invalid records) of Arrow's reader, None where it fails or reads another
    width."""
    invalid = [0]

    def count(_row):
        invalid[0] += 1
        return "skip"

    rows = 0
    try:
        reader = _arrow(body.utf8(), width, count, block)
        if len(reader.schema) != width:
            return None
        for batch in reader:
            rows += batch.num_rows
    except ARROW_FAILS:
        return None
    return rows, invalid[0]


def arrow_records(body: Body, width: int, chunk_rows: int, block: int):
    """(header, then (rows numbered as whole-file reading numbers them, invalid records as
    (number, None, text)) per piece of at most `chunk_rows` rows)."""
    invalid: list[tuple[int, str]] = []  # reported since the last piece
    ahead: deque[int] = deque()  # numbers of invalid records not before the next row

    def keep(row):
        invalid.append((row.number, row.text))
        return "skip"

    reader = _arrow(body.utf8(), width, keep, block)
    header, next_no = None, 2
    for batch in reader:
        if header is None:
            header = [str(v) for v in batch.slice(0, 1).to_pylist()[0].values()]
            yield header
            batch = batch.slice(1)
        for at in range(0, max(batch.num_rows, 1), chunk_rows):
            part = batch.slice(at, chunk_rows).to_pandas()
            part.columns = range(width)
            new = [(n, None, t) for n, t in invalid]
            invalid.clear()
            ahead.extend(n for n, _, _ in new)
            skipped = np.asarray(ahead, dtype=np.int64)
            numbers = np.arange(next_no, next_no + len(part) + len(skipped), dtype=np.int64)
            numbers = numbers[~np.isin(numbers, skipped)][: len(part)]
            part["line_no"] = numbers
            if len(part):
                next_no = int(numbers[-1]) + 1
            while ahead and ahead[0] < next_no:
                ahead.popleft()
            yield part, new


def chunked(records, chunk_rows: int, ends_in_line_end: bool, fast: bool):
    """Pieces of rows and bad records as chunks of `chunk_rows` rows, each with the bad records
    before its last row, in line order. Whole-file verdicts wait for the end: an Arrow record that
    is the file's last is unterminated or truncated, not of the wrong width; with no bad record in
    the file and no final line end, the last row is a truncated one."""
    rows: list[pd.DataFrame] = []
    held, bad_seen, n_rows, n_bad = 0, False, 0, 0
    bad: list = []
    for part, new_bad in records:
        bad += new_bad
        bad_seen = bad_seen or bool(new_bad)
        n_rows, n_bad = n_rows + len(part), n_bad + len(new_bad)
        rows.append(part)
        held += len(part)
        while held > chunk_rows:
            both = pd.concat(rows) if len(rows) > 1 else rows[0]
            out, rest = both.iloc[:chunk_rows], both.iloc[chunk_rows:]
            upto = int(rest["line_no"].iloc[0])
            mine = [b for b in bad if b[0] < upto]
            bad = bad[len(mine) :]
            yield out.reset_index(drop=True), [(n, r or "wrong_field_count", t) for n, r, t in mine]
            rows, held = [rest], len(rest)
    both = pd.concat(rows) if len(rows) > 1 else rows[0]
    total = 1 + n_rows + n_bad

    def reason(n: int, r: str | None, t: str) -> str:
        if r is not None:
            return r
        if fast and n == total and not ends_in_line_end:
            return "unterminated_quote" if t.count('"') % 2 else "truncated_row"
        return "wrong_field_count"

    tail = [(n, reason(n, r, t), t) for n, r, t in bad]
    if len(both) and not ends_in_line_end and not bad_seen:
        # No final newline: the last row may have been cut inside its last field.
        last = both.iloc[-1]
        tail.append(
            (int(last["line_no"]), "truncated_row", "\x1f".join(last.iloc[:-1].astype(str)))
        )
        both = both.iloc[:-1]
    yield both.reset_index(drop=True), sorted(tail)


class _Lines:
    """Physical lines with a way back: lines taken for a record that turned out unterminated are
    given back, to be read again from the one after its first."""

    def __init__(self, lines: Iterator[str]):
        self.it, self.back = lines, deque()

    def take(self) -> str | None:
        return self.back.popleft() if self.back else next(self.it, None)

    def give_back(self, lines: list[str]) -> None:
        self.back.extendleft(reversed(lines))

    def at_end(self) -> bool:
        if self.back:
            return False
        line = next(self.it, None)
        if line is None:
            return True
        self.back.append(line)
        return False


def _feed(src: _Lines, taken: list[str]) -> Iterator[str]:
    """Lines for csv.reader, each noted in `taken` (csv.reader takes only the lines it needs)."""
    while (line := src.take()) is not None:
        taken.append(line)
        yield line


def python_records(lines: Iterator[str], width: int, ends_in_line_end: bool, chunk_rows: int):
    """readers._parse_python over a stream of physical lines (the header's first), in pieces."""
    csv.field_size_limit(max(rd.DEFAULT_LIMITS.max_cell_chars * 4, 131072))
    src = _Lines(lines)
    src.take()  # the header
    rows, numbers, bad, rec = [], [], [], 1
    while not src.at_end():
        rec += 1
        taken: list[str] = []
        try:
            fields = next(csv.reader(_feed(src, taken)), None)
        except csv.Error:
            src.give_back(taken[1:])
            bad.append((rec, "malformed_row", taken[0]))
            continue
        if fields is None:
            break
        last = src.at_end()
        kind = rd.record_kind(taken, fields, width, last, ends_in_line_end)
        if kind == "unterminated_quote":
            src.give_back(taken[1:])
            bad.append((rec, kind, taken[0]))
        elif kind is not None:
            bad.append((rec, kind, "".join(taken)))
        else:
            rows.append(fields)
            numbers.append(rec)
        if len(rows) >= chunk_rows:
            yield rd.python_frame(rows, numbers, width), bad
            rows, numbers, bad = [], [], []
    yield rd.python_frame(rows, numbers, width), bad


@dataclass
class CsvHead:
    encoding: str
    sha256: str
    n_bytes: int
    header: list[str]
    header_line: int
    header_rows: int


def read_chunks(fh, locate, limits: rd.ReaderLimits, chunk_rows: int, limit: int, block: int):
    """(CsvHead, chunks of (rows of strings: columns 0..width-1 and line_no, bad records as
    (line_no, reason, text))) of a CSV delivery open as `fh`, as whole-file reading
    (ingest._parse_csv_at_header) gives them, `chunk_rows` rows at a time. Every verdict on the
    whole file is given (UnusableFile) before this returns."""
    s = scan(fh, limit, block)
    if s.n_bytes == 0:
        raise rd.UnusableFile("empty", "the file is empty (0 bytes)")
    label = judge(fh, s, limits, limit, block)
    head = head_text(fh, label, limit, block)
    at, n_rows, merged, offset = rd.header_at(head, locate)
    skip = at + n_rows - 1
    body_head = rd.one_line_end(head[offset:])
    m = re.search(r"\r\n|\n\r|\n|\r", head[offset:][: 1 << 20])
    swap = bool(m and m.group() == "\n\r")
    body = Body(lambda: text_blocks(fh, label, limit, block), offset, swap)
    header = rd.header_fields(body_head)
    width = len(header)
    if width > limits.max_columns:
        raise rd.UnusableFile(
            "too_many_columns",
            f"the header has {width:,} columns, beyond the limit {limits.max_columns:,}",
        )
    ends = s.ends_in_line_end
    arrow_block = arrow_reads_it(body, width, ends)
    fast = arrow_block is not None
    if fast:
        records = arrow_records(body, width, chunk_rows, arrow_block)
        header = next(records)
    else:
        sep = LINE_END.search(body_head)
        records = python_records(
            body.lines("\r" if sep and sep.group() == "\r" else "\n"), width, ends, chunk_rows
        )
    if merged is not None:
        header = list(merged) + [""] * (len(header) - len(merged))
    csv_head = CsvHead(label, s.sha256, s.n_bytes, header, at + 1, n_rows)
    return csv_head, _renumbered(chunked(records, chunk_rows, ends, fast), skip)


def _renumbered(chunks, skip: int):
    for rows, bad in chunks:
        if skip:
            rows = rows.assign(line_no=rows["line_no"] + skip)
            bad = [(n + skip, r, t) for n, r, t in bad]
        yield rows, bad
