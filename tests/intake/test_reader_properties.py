"""Property-based tests of the CSV and XLSX readers: for arbitrary bytes no exception but a named
rejection escapes, and for any rows a provider can write, every row comes back (as a row, or as
a quarantined line with a reason) with its values intact."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.intake.ingest import read_bytes
from scoring.intake.layouts import PENALTY
from scoring.intake.readers import UnusableFile

HEADER = PENALTY.standard_headers()
WIDTH = len(HEADER)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any text a provider's tool can write into a cell, NUL aside (a NUL makes the file binary).
cell_text = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
# XML 1.0 cannot carry most control characters; spreadsheet tools cannot write them either.
xml_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=12,
).filter(lambda t: not t.startswith("="))  # "=…" is a formula to openpyxl


def _read(data: bytes, name: str):
    try:
        return read_bytes(data, name, provider="p")
    except UnusableFile as exc:
        assert exc.code and str(exc) and "\n" not in str(exc)
        return exc


@SETTINGS
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_as_csv_never_escape_as_an_exception(data):
    _read(data, "20260331_penalty.csv")


@SETTINGS
@given(st.binary(max_size=400), st.sampled_from(["\n", "\r\n", "\r"]))
def test_bytes_after_a_valid_header_never_escape(tail, eol):
    _read(("\ufeff" + ",".join(HEADER) + eol).encode() + tail, "20260331_penalty.csv")


def _csv_line(row) -> str:
    # Written with CRLF so that the writer quotes any value holding a CR or an LF (with "\n" as
    # its terminator, Python's writer leaves a bare CR unquoted), then joined with the line end.
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(row)
    return buf.getvalue()[:-2]


def _csv_bytes(rows, eol, encoding):
    return "".join(_csv_line(r) + eol for r in [HEADER, *rows]).encode(encoding)


rows_strategy = st.lists(st.lists(cell_text, min_size=WIDTH, max_size=WIDTH), max_size=12)


@SETTINGS
@given(
    rows_strategy,
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]),
)
def test_csv_rows_are_conserved_with_their_values(rows, eol, encoding):
    try:
        data = _csv_bytes(rows, eol, encoding)
    except UnicodeEncodeError:
        return  # not representable in that encoding: not a file a provider could send
    raw = read_bytes(data, "20260331_penalty.csv", provider="p")
    assert raw.received == len(rows)
    blank = [i + 2 for i, r in enumerate(rows) if not any(c.strip() for c in r)]
    assert sorted(raw.bad_rows["line_no"]) == blank and set(raw.bad_rows["reason"]) <= {"blank_row"}
    kept = [r for r in rows if any(c.strip() for c in r)]
    got = raw.raw.drop(columns="line_no").fillna("").astype(str).values.tolist()
    assert got == kept


def _xlsx_bytes(rows) -> bytes:
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    for r in rows:
        ws.append([c if c != "" else None for c in r])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


xlsx_rows = st.lists(
    st.lists(xml_text, min_size=WIDTH, max_size=WIDTH).filter(lambda r: r[0].strip() != ""),
    max_size=8,
)


@SETTINGS
@given(xlsx_rows)
def test_xlsx_rows_are_conserved_with_their_values(rows):
    import openpyxl.utils.exceptions

    try:
        data = _xlsx_bytes(rows)
    except openpyxl.utils.exceptions.IllegalCharacterError:
        return
    raw = read_bytes(data, "20260331_penalty.xlsx", provider="p")
    assert raw.received == len(rows) and raw.bad_rows.empty
    got = raw.raw.drop(columns="line_no").fillna("").astype(str).values.tolist()
    assert got == rows


@pytest.fixture(scope="module")
def clean_xlsx() -> bytes:
    return _xlsx_bytes([["某公司", *["x"] * (WIDTH - 1)]] * 5)


@SETTINGS
@given(data=st.data())
def test_damaged_xlsx_never_escapes_as_an_exception(clean_xlsx, data):
    blob = bytearray(clean_xlsx)
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(blob) - 1))
        blob[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(blob) // 2, len(blob)))
    _read(bytes(blob[:cut]), "20260331_penalty.xlsx")


@SETTINGS
@given(st.binary(max_size=2000))
def test_arbitrary_sheet_xml_never_escapes(sheet):
    """A well-formed package whose sheet part is any bytes at all."""
    import openpyxl

    wb = openpyxl.Workbook()
    buf = io.BytesIO()
    wb.save(buf)
    zin = zipfile.ZipFile(io.BytesIO(buf.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            zout.writestr(
                info.filename,
                sheet if info.filename.endswith("sheet1.xml") else zin.read(info.filename),
            )
    _read(out.getvalue(), "20260331_penalty.xlsx")
