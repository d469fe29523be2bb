"""Reading provider files: encoding, header and layout detection, raw rows.

Every physical row a provider sent ends up either in the staged frame or in the list of rows the
reader could not parse (with a reason), so received = staged + unparseable always holds. The
header is looked for in the first rows (title rows above it), on every sheet of a workbook in
order, and as two merged rows; the file says which row and sheet it used. Staging the rows
(typing, keys) is in scoring.intake.staging, value parsers in scoring.intake.values; both are
re-exported here for the callers that read and stage in one place.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.intake import csv_stream as cs
from scoring.intake import xlsx_stream as xs
from scoring.intake.layouts import HEADER_SEARCH_ROWS, LayoutSet, locate_header
from scoring.intake.readers import (  # noqa: F401 (RawFile re-exported)
    DEFAULT_LIMITS,
    RawFile,
    ReaderLimits,
    UnusableFile,
    check_bytes,
    check_header,
    decode,
    header_at,
    header_hint,
    parse_csv,
    physical_lines,
)
from scoring.intake.staging import (  # noqa: F401 (re-exported)
    RECORD_CONTENT,
    STG_ENTITY_COLUMNS,
    STG_RECORD_COLUMNS,
    record_content_hash,
    record_key,
    stage_entities,
    stage_records,
)
from scoring.intake.staging_changes import STG_CHANGE_COLUMNS, stage_changes  # noqa: F401
from scoring.intake.values import (  # noqa: F401 (re-exported)
    MAX_AMOUNT_YUAN,
    clean_text,
    parse_amounts,
    parse_dates,
)
from scoring.intake.xlsx import read_xlsx

DELIVERY_NAME = re.compile(r"^(?P<date>\d{8})_(?P<feed>[a-z_]+)\.(?P<ext>csv|xlsx)$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]+$")


def check_name(name: str) -> None:
    """Reject names that could escape the landing folder or confuse downstream tools."""
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise UnusableFile("bad_file_name", f"file name {name!r} has path components or is hidden")
    if not SAFE_NAME.match(name):
        raise UnusableFile(
            "bad_file_name", f"file name {name!r} has characters outside [A-Za-z0-9_.-] and CJK"
        )


def delivery_date(name: str) -> pd.Timestamp | None:
    m = DELIVERY_NAME.match(name)
    if not m:
        return None
    return pd.to_datetime(m.group("date"), format="%Y%m%d", errors="coerce")


def delivery_path(path) -> Path:
    """A delivery's path, once its name is acceptable and it is no symbolic link."""
    path = Path(path)
    check_name(path.name)
    if path.is_symlink():
        raise UnusableFile(
            "symlink", f"{path.name} is a symbolic link; deliveries must be regular files"
        )
    return path


def _open_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, opened without following a symbolic link (a FIFO, a device or
    a folder is refused before anything is read)."""
    with _open_checked(path, max_bytes) as fh:
        try:
            return fh.read(max_bytes + 1)
        except OSError as exc:
            raise UnusableFile("unreadable", f"cannot read file: {exc.strerror}") from None


def _open_checked(path: Path, max_bytes: int):
    """A regular file open for reading, not through a symbolic link, neither empty nor beyond
    `max_bytes`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnusableFile(
                "symlink", f"{path.name} is a symbolic link; deliveries must be regular files"
            ) from None
        raise UnusableFile("unreadable", f"cannot open file: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnusableFile("not_a_file", f"{path.name} is not a regular file")
        if st.st_size == 0:
            raise UnusableFile("empty", "the file is empty (0 bytes)")
        if st.st_size > max_bytes:
            raise UnusableFile(
                "too_large", f"the file has {st.st_size:,} bytes, beyond the limit {max_bytes:,}"
            )
        return os.fdopen(os.dup(fd), "rb")
    except OSError as exc:
        raise UnusableFile("unreadable", f"cannot read file: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_file(
    path: Path | str,
    provider: str | None = None,
    max_cells: int = 50_000_000,
    max_bytes: int = 4_000_000_000,
    layouts: LayoutSet | None = None,
    overrides: dict[str, dict[str, str]] | None = None,
) -> RawFile:
    """Read one provider file into raw canonical columns, with these layouts (default: the latest)
    and the provider's overrides (layout id -> {its header: canonical column}). Raises
    UnusableFile with a one-line reason."""
    path = delivery_path(path)
    data = _open_regular(path, max_bytes)
    raw = read_bytes(
        data,
        path.name,
        provider=provider or path.parent.name,
        max_cells=max_cells,
        layouts=layouts,
        overrides=overrides,
    )
    raw.path = str(path)
    return raw


def file_chunks(raw: RawFile, chunk_rows: int) -> Iterator[RawFile]:
    """A file read whole, as the chunks a chunked read gives: its rows `chunk_rows` at a time,
    each chunk with the unparseable rows among its lines (the last chunk those after them). A
    file without rows is one chunk without rows."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
    n, bad = len(raw.rows), raw.bad_rows
    starts = list(range(0, n, chunk_rows)) or [0]
    for i in starts:
        last = i + chunk_rows >= n
        upto = None if last else raw.rows["line_no"].iloc[i + chunk_rows]
        mine = bad if upto is None else bad[bad["line_no"] < upto]
        bad = bad.iloc[len(mine) :] if upto is not None else bad.iloc[0:0]
        yield replace(
            raw,
            rows=raw.rows.iloc[i : i + chunk_rows],
            raw=raw.raw.iloc[i : i + chunk_rows],
            bad_rows=mine,
        )


def open_file(
    path: Path | str,
    chunk_rows: int,
    provider: str | None = None,
    max_cells: int = 50_000_000,
    max_bytes: int = 4_000_000_000,
    layouts: LayoutSet | None = None,
    overrides: dict[str, dict[str, str]] | None = None,
    block: int = cs.BLOCK_BYTES,
) -> tuple[RawFile, Iterator[RawFile]]:
    """(the file's head: layout, header, encoding, hash, no rows; its rows `chunk_rows` at a
    time, each chunk a RawFile with the unparseable rows among its lines). A CSV is read in blocks
    of `block` bytes, never whole; an XLSX from its file, its sheet's rows `block` bytes of
    inflated XML at a time (csv_stream, xlsx_stream). Every verdict on the whole file
    (UnusableFile, as read_file gives it) comes before the first chunk."""
    path = delivery_path(path)
    fh = _open_checked(path, max_bytes)
    provider, pool = provider or path.parent.name, _pool(layouts, overrides)
    try:
        if fh.read(4) == b"PK\x03\x04" or path.name.lower().endswith(".xlsx"):
            limits = replace(DEFAULT_LIMITS, max_cells=max_cells)
            head, chunks = _open_rows(
                path,
                provider,
                pool,
                limits,
                "xlsx",
                lambda: xs.read_chunks(
                    fh, _locator(pool), limits, chunk_rows, max_bytes + 1, block
                ),
            )
        else:
            head, chunks = _open_rows(
                path,
                provider,
                pool,
                DEFAULT_LIMITS,
                "csv",
                lambda: cs.read_chunks(
                    fh, _locator(pool), DEFAULT_LIMITS, chunk_rows, max_bytes + 1, block
                ),
            )
    except BaseException:
        fh.close()
        raise
    return head, _Closing(chunks, fh)


def _open_rows(path, provider, pool, limits, file_format, read):
    """(head, chunks) of a file read in chunks by `read()` -> (its head, its parts)."""
    sha = ""
    try:
        got, parts = read()
        sha = got.sha256
        header, layout, mapping, missing = _layout_of(got.header, limits, pool)
    except Exception as exc:
        raise _as_unusable(exc, sha) from None
    head = RawFile(
        path=str(path),
        provider=provider,
        encoding=got.encoding,
        file_format=file_format,
        layout=layout,
        header=header,
        mapping=mapping,
        missing_required=missing,
        rows=pd.DataFrame(),
        raw=pd.DataFrame(),
        sha256=sha,
        n_bytes=got.n_bytes,
        header_line=got.header_line,
        header_rows=got.header_rows,
        sheet=getattr(got, "sheet", None),
    )

    def chunks():
        try:
            for rows, bad in parts:
                frame, raw, bad_rows = _shape(rows, bad, header, layout, mapping, limits)
                yield replace(head, rows=frame, raw=raw, bad_rows=bad_rows)
        except Exception as exc:
            raise _as_unusable(exc, sha) from None

    return head, chunks()


def _as_unusable(exc: Exception, sha: str) -> UnusableFile:
    """A file is the unit of failure: whatever breaks reading it, it breaks this file."""
    if not isinstance(exc, UnusableFile):
        exc = UnusableFile(
            "unreadable_content", f"the reader failed on this file ({type(exc).__name__})"
        )
    exc.sha256 = sha or getattr(exc, "sha256", "")
    return exc


class _Closing:
    """A file's chunks that close the file when they end, or when `close()` is called (before the
    first one, too: a file refused after its head is read)."""

    def __init__(self, chunks: Iterator[RawFile], fh):
        self.chunks, self.fh = chunks, fh

    def __iter__(self) -> Iterator[RawFile]:
        try:
            yield from self.chunks
        finally:
            self.close()

    def close(self) -> None:
        self.chunks.close()
        self.fh.close()


def _pool(layouts: LayoutSet | None, overrides: dict[str, dict[str, str]] | None) -> tuple:
    """The layouts a file is read with, each with the provider's own header names."""
    return tuple(
        lay.with_headers(overrides[lay.id]) if overrides and lay.id in overrides else lay
        for lay in (layouts or LayoutSet.latest()).layouts
    )


def read_bytes(
    data: bytes,
    name: str,
    provider: str,
    max_cells: int = 50_000_000,
    layouts: LayoutSet | None = None,
    overrides: dict[str, dict[str, str]] | None = None,
) -> RawFile:
    """Read one delivery's bytes (named ``name``). Raises UnusableFile with a one-line reason; every
    other problem inside the file also comes out as UnusableFile (code ``unreadable_content``)."""
    import hashlib

    limits = replace(DEFAULT_LIMITS, max_cells=max_cells)
    sha = hashlib.sha256(data).hexdigest()
    pool = _pool(layouts, overrides)
    try:
        return _read_bytes(data, name, provider, limits, sha, pool)
    except UnusableFile as exc:
        exc.sha256 = sha
        raise
    except Exception as exc:  # a file is the unit of failure: whatever breaks, it breaks this file
        err = UnusableFile(
            "unreadable_content", f"the reader failed on this file ({type(exc).__name__})"
        )
        err.sha256 = sha
        raise err from None


def _read_bytes(
    data: bytes, name: str, provider: str, limits: ReaderLimits, sha: str, pool
) -> RawFile:
    if not data:
        raise UnusableFile("empty", "the file is empty (0 bytes)")
    locate = _locator(pool)
    sheet = None
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".xlsx"):
        if data[:4] != b"PK\x03\x04":
            raise UnusableFile("malformed", "named .xlsx but is not an XLSX (ZIP) file")
        header, data_frame, bad, where = read_xlsx(data, limits, locate)
        encoding, fmt, sheet = "xlsx", "xlsx", where["sheet"]
        header_line, header_rows = where["header_line"], where["header_rows"]
    else:
        check_bytes(data, limits)
        encoding, text = decode(data)
        if not text.strip():
            raise UnusableFile("empty", "the file has no header row")
        header, data_frame, bad, header_line, header_rows = _parse_csv_at_header(
            text, limits, locate
        )
        fmt = "csv"
    header, layout, mapping, missing = _layout_of(header, limits, pool)
    frame, raw, bad_rows = _shape(data_frame, bad, header, layout, mapping, limits)
    return RawFile(
        path=name,
        provider=provider,
        encoding=encoding,
        file_format=fmt,
        layout=layout,
        header=header,
        mapping=mapping,
        missing_required=missing,
        rows=frame,
        raw=raw,
        bad_rows=bad_rows,
        sha256=sha,
        n_bytes=len(data),
        header_line=header_line,
        header_rows=header_rows,
        sheet=sheet,
    )


def _locator(pool):
    """Where a header is among a file's first rows, for readers.header_at and read_xlsx."""

    def locate(rows):
        at = locate_header([[str(c) for c in r] for r in rows], pool)
        return None if at is None else (at.row, at.rows, at.header if at.rows > 1 else None)

    return locate


def _layout_of(header: list[str], limits: ReaderLimits, pool):
    """(the header's names, its layout, header → canonical column, required columns missing)."""
    header = check_header(header, limits)
    at = locate_header([header], pool)
    if at is None:
        raise UnusableFile(
            "unknown_layout",
            f"header matches no known layout in its first {HEADER_SEARCH_ROWS} rows "
            f"(the first: {header_hint(header)})",
        )
    return header, at.match.layout, at.match.mapping, at.match.missing


def _shape(data_frame: pd.DataFrame, bad: list, header, layout, mapping, limits: ReaderLimits):
    """Parsed rows (columns 0..width-1, line_no) as (canonical columns, the provider's own
    columns, unparseable rows): blank rows and rows with a value beyond the limit join the bad
    ones. Row by row, so a chunk's rows give what the file's rows give."""
    bad = list(bad)
    width = len(header)
    values = data_frame[list(range(width))]
    blank = (values.fillna("").apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    too_long = _too_long(values, limits.max_cell_chars) & ~blank
    for reason, mask in (("blank_row", blank), ("value_too_long", too_long)):
        for ln in data_frame.loc[mask, "line_no"]:
            bad.append(
                (int(ln), reason, "" if reason == "blank_row" else "(value longer than the limit)")
            )
    data_frame = data_frame[~(blank | too_long)].reset_index(drop=True)
    raw = data_frame[list(range(width))].copy()
    raw.columns = [h or f"(column {i})" for i, h in enumerate(header, start=1)]
    col_index = {h: i for i, h in enumerate(header)}
    frame = pd.DataFrame(
        {canon: data_frame[col_index[h]] for h, canon in mapping.items()}, index=data_frame.index
    )
    for canon in layout.columns:
        if canon not in frame:
            frame[canon] = pd.Series(pd.NA, index=data_frame.index, dtype="string")
    frame["line_no"] = data_frame["line_no"].to_numpy(dtype=np.int64)
    raw["line_no"] = frame["line_no"].to_numpy()
    bad_rows = pd.DataFrame(sorted(bad), columns=["line_no", "reason", "raw"])
    return frame, raw, bad_rows


def _parse_csv_at_header(text: str, limits: ReaderLimits, locate):
    """Parse CSV text from its header row: the first row, or the row (or two merged rows) the
    header was found at below title rows. Rows keep their numbers in the whole file."""
    at, n_rows, merged, offset = header_at(text, locate)
    skip = at + n_rows - 1  # parse from the header's last row
    header, frame, bad = parse_csv(text[offset:] if skip else text, limits)
    if merged is not None:
        header = list(merged) + [""] * (len(header) - len(merged))
    if skip:
        frame["line_no"] = frame["line_no"] + skip
        bad = [(n + skip, r, t) for n, r, t in bad]
    if frame.shape[0] and not text.endswith(("\n", "\r")) and not bad:
        # No final newline: the last row may have been cut inside its last field.
        last = frame.iloc[-1]
        bad.append((int(last["line_no"]), "truncated_row", "\x1f".join(last.iloc[:-1].astype(str))))
        frame = frame.iloc[:-1]
    return header, frame, bad, at + 1, n_rows


def _too_long(values: pd.DataFrame, limit: int) -> np.ndarray:
    """Rows with a value longer than the limit (Arrow's length kernel; no per-row Python)."""
    out = np.zeros(len(values), dtype=bool)
    for col in values.columns:
        arr = pa.array(values[col].astype("string").array, type=pa.large_string())
        out |= pc.fill_null(pc.greater(pc.utf8_length(arr), limit), False).to_numpy(
            zero_copy_only=False
        )
    return out


def raw_json(raw: pd.DataFrame) -> pd.Series:
    """Rows as the provider sent them (header → value), for quarantine and audit."""
    cols = [c for c in raw.columns if c != "line_no"]
    values = raw[cols].fillna("").to_numpy(dtype=object)
    return pd.Series(
        [json.dumps(dict(zip(cols, v)), ensure_ascii=False) for v in values],
        index=raw.index,
        dtype="string",
    )
