"""An XLSX delivery read in chunks from its file gives what whole-file reading (`read_xlsx`) gives:
the same verdict (code and message, before the first chunk), head (sheet, header row, layout,
content hash), rows, raw values and quarantined rows with their reasons and line numbers, whatever
the chunk size (down to one row) and the block of XML parsed at a time (down to one byte)."""

from __future__ import annotations

import hashlib
import io
import re
import tempfile
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import pandas as pd
import provider_formats as pf
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scoring.intake.ingest import open_file, read_bytes
from scoring.intake.layouts import PENALTY
from scoring.intake.readers import UnusableFile
from scoring.world.xlsx_out import column_letter

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
NAME = "20260331_penalty.xlsx"
HEADER = PENALTY.standard_headers()
TOP, SUB, _MERGES = pf.merged_2021_licence_header()
NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = 'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"'
# cellXfs: 0 general, 1 a built-in date (14), 2 a custom date, 3 a custom number (not a date)
STYLES = (
    f'<styleSheet {NS}><numFmts count="2"><numFmt numFmtId="164" formatCode="yyyy/mm/dd"/>'
    '<numFmt numFmtId="165" formatCode="0.00&quot;天&quot;"/></numFmts><cellXfs count="4">'
    '<xf numFmtId="0"/><xf numFmtId="14"/><xf numFmtId="164"/><xf numFmtId="165"/></cellXfs>'
    "</styleSheet>"
)


class _Strings:
    """Shared strings as a workbook writer collects them."""

    def __init__(self):
        self.index: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        return self.index.setdefault(text, len(self.index))

    def xml(self) -> str:
        items = "".join(f"<si><t>{escape(t)}</t></si>" for t in self.index)
        return f'<sst {NS} count="{len(self.index)}">{items}</sst>'


def _cell(ref: str | None, value, strings: _Strings | None) -> str:
    """A cell: text (shared or inline), ("n", number, style), ("b", 0/1), ("str", text), None."""
    r = f' r="{ref}"' if ref else ""
    if value is None:
        return f"<c{r}/>"
    if isinstance(value, str):
        if strings is not None:
            return f'<c{r} t="s"><v>{strings(value)}</v></c>'
        return f'<c{r} t="inlineStr"><is><t>{escape(value)}</t></is></c>'
    kind, v, *style = value
    s = f' s="{style[0]}"' if style and style[0] else ""
    t = "" if kind == "n" else f' t="{kind}"'
    return f"<c{r}{t}{s}><v>{escape(str(v))}</v></c>"


def _sheet(rows: list[tuple[int | None, list, bool]], strings) -> str:
    """Rows as (row number or None: no r attribute, cells, cells carry references)."""
    out = []
    for n, cells, refs in rows:
        r = f' r="{n}"' if n is not None else ""
        xml = "".join(
            _cell(f"{column_letter(i)}{n or 1}" if refs else None, v, strings)
            for i, v in enumerate(cells)
            if not (refs and v is None)
        )
        out.append(f"<row{r}>{xml}</row>")
    return (
        f'<worksheet {NS}><dimension ref="A1:B2"/><sheetData>{"".join(out)}</sheetData></worksheet>'
    )


def workbook(sheets: list[tuple[str, list]], shared=True, date1904=False) -> bytes:
    """A workbook of these sheets (name, rows as `_sheet` takes them)."""
    strings = _Strings() if shared else None
    parts = {
        f"xl/worksheets/sheet{i + 1}.xml": _sheet(rows, strings)
        for i, (_, rows) in enumerate(sheets)
    }
    entries = "".join(
        f'<sheet name="{escape(name)}" sheetId="{i + 1}" r:id="s{i + 1}"/>'
        for i, (name, _) in enumerate(sheets)
    )
    rels = "".join(
        f'<Relationship Id="s{i + 1}" Type="{REL}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
        for i in range(len(sheets))
    )
    rels += f'<Relationship Id="st" Type="{REL}/styles" Target="styles.xml"/>'
    if strings is not None:
        rels += f'<Relationship Id="ss" Type="{REL}/sharedStrings" Target="sharedStrings.xml"/>'
        parts["xl/sharedStrings.xml"] = strings.xml()
    pr = '<workbookPr date1904="1"/>' if date1904 else ""
    parts |= {
        "_rels/.rels": f'<Relationships {PKG}><Relationship Id="r1" Type="{REL}/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>',
        "xl/workbook.xml": f'<workbook {NS} xmlns:r="{REL}">{pr}<sheets>{entries}</sheets></workbook>',
        "xl/_rels/workbook.xml.rels": f"<Relationships {PKG}>{rels}</Relationships>",
        "xl/styles.xml": STYLES,
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in parts.items():
            z.writestr(name, text)
    return out.getvalue()


# --------------------------------------------------------------------------- reading both ways


def _whole(data: bytes, max_cells: int = 50_000_000):
    try:
        raw = read_bytes(data, NAME, provider="p", max_cells=max_cells)
    except UnusableFile as exc:
        return ("rejected", exc.code, str(exc), exc.sha256), None, None, None
    return pf.file_head(raw), raw.rows, raw.raw, raw.bad_rows


def _chunked(path: Path, chunk_rows: int, block: int, max_cells: int = 50_000_000):
    """As `_whole`, from the file in chunks; a verdict must come before the first chunk."""
    try:
        head, chunks = open_file(path, chunk_rows, provider="p", block=block, max_cells=max_cells)
    except UnusableFile as exc:
        return ("rejected", exc.code, str(exc), exc.sha256), None, None, None
    parts = list(chunks)
    assert all(len(c.rows) <= chunk_rows for c in parts)
    return (
        pf.file_head(head),
        *(pd.concat([getattr(c, a) for c in parts]) for a in ("rows", "raw", "bad_rows")),
    )


def _same(data: bytes, chunk_rows: int, block: int, max_cells: int = 50_000_000):
    whole = _whole(data, max_cells)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "p" / NAME
        path.parent.mkdir()
        path.write_bytes(data)
        chunked = _chunked(path, chunk_rows, block, max_cells)
    what = f"{chunk_rows}/{block}"
    assert chunked[0] == whole[0], what
    if whole[1] is None:
        assert whole[0][3] == hashlib.sha256(data).hexdigest()
        return whole
    for got, want, name in zip(chunked[1:], whole[1:], ("rows", "raw", "bad_rows"), strict=True):
        got, want = got.reset_index(drop=True), want.reset_index(drop=True)
        if name == "bad_rows":  # (an empty chunk's list of unparsed rows has no string dtype)
            got = got.astype({"reason": str, "raw": str, "line_no": "int64"})
            want = want.astype({"reason": str, "raw": str, "line_no": "int64"})
        pd.testing.assert_frame_equal(got, want, obj=f"{what} {name}")
    return whole


# --------------------------------------------------------------------------- generated workbooks

_text = st.lists(st.sampled_from(list("ab 7-中文\u3000&<") + ["某公司", "x" * 20]), max_size=5).map(
    "".join
)
_value = st.one_of(
    _text,
    st.tuples(
        st.just("n"),
        st.sampled_from(["0", "45000", "45000.75", "1.5", "59", "61", "1e3"]),
        st.integers(0, 3),
    ),
    st.tuples(st.just("b"), st.sampled_from(["0", "1"])),
    st.tuples(st.just("str"), _text),
    st.none(),
)


@st.composite
def xlsx_deliveries(draw) -> bytes:
    """Workbooks a provider (or a careless one) sends: title rows above the header, two merged
    header rows, rows wider than the header, blank rows, row numbers with gaps or none, cells
    with and without references, dates by built-in and custom formats, the 1904 date system, shared
    or inline strings, notes or an empty sheet before the data, a header no layout knows."""
    family = draw(st.sampled_from(["penalty", "merged", "unknown"]))
    header = {"penalty": [HEADER], "merged": [TOP, SUB], "unknown": [["名称", "金额"]]}[family]
    width = len(header[-1])
    titles = draw(st.sampled_from([[], [["某市行政处罚信息公示"]], [["表一"], []]]))
    body = draw(
        st.lists(st.lists(_value, min_size=max(width - 2, 0), max_size=width + 1), max_size=12)
    )
    rows, n = [], 0
    for cells in titles + header + body:
        if draw(st.booleans()):  # a row number, perhaps past a gap
            n += draw(st.sampled_from([1, 1, 2, 5]))
            rows.append((n, cells, draw(st.booleans())))
        else:  # none: the reader numbers it after the last
            n += 1
            rows.append((None, cells, draw(st.booleans())))
    before = draw(st.sampled_from([[], [("说明", [(1, ["本表说明"], True)])], [("空", [])]]))
    return workbook(
        before + [("数据", rows)], shared=draw(st.booleans()), date1904=draw(st.booleans())
    )


@settings(SETTINGS)
@given(
    data=xlsx_deliveries(),
    chunk_rows=st.integers(min_value=1, max_value=6),
    block=st.one_of(st.integers(min_value=1, max_value=64), st.just(1 << 20)),
)
def test_chunked_reading_of_any_xlsx_gives_what_whole_file_reading_gives(data, chunk_rows, block):
    _same(data, chunk_rows, block)


def _penalty_row(i: int, **cells) -> list:
    row = [f"某公司{i}", "法人及非法人组织", f"91230100000000{i:04d}"] + [""] * (len(HEADER) - 3)
    row[HEADER.index("行政处罚决定书文号")] = f"哈市监罚〔2026〕{i}号"
    for name, value in cells.items():
        row[HEADER.index(name)] = value
    return row


def test_title_rows_dates_gaps_and_quarantine_read_alike(tmp_path):
    """The data on the second sheet, its header on row 3 below a title, a blank row, a row wider
    than the header, a gap in the row numbers, dates by a built-in and a custom format in the 1904
    date system, a number by a format that is not a date: read in chunks of one row from 16-byte
    blocks of XML as whole-file reading reads them."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904, from_excel

    date = "处罚决定日期"
    sheet = [
        (1, ["某市行政处罚信息公示"], True),
        (3, HEADER, True),
        (4, _penalty_row(1, **{date: ("n", "45000", 1)}), True),
        (5, [None, "", None], False),
        (6, _penalty_row(2) + ["多出的一列"], True),
        (9, _penalty_row(3, **{date: ("n", "45000.75", 2)}), False),
        (None, _penalty_row(4, **{date: ("n", "1.5", 3)}), True),
    ]
    data = workbook([("说明", [(1, ["本表说明"], True)]), ("数据", sheet)], date1904=True)
    whole = _same(data, 1, 16)
    head, rows, _raw, bad = whole
    assert head[-1] == "header row 3 of sheet 数据"
    assert bad[["line_no", "reason"]].values.tolist() == [
        [5, "blank_row"],
        [6, "wrong_field_count"],
    ]
    assert rows["line_no"].tolist() == [4, 9, 10]
    day = from_excel(45000, epoch=CALENDAR_MAC_1904).date().isoformat()
    assert rows["decision_date"].tolist()[:2] == [day, day]
    assert rows["decision_date"].tolist()[2] == "1.5"
    _same(data, 2, 1 << 20)


# --------------------------------------------------------------------------- hostile workbooks


def _clean(rows: int = 40) -> bytes:
    body = [(i + 2, _penalty_row(i), True) for i in range(rows)]
    return workbook([("Sheet1", [(1, HEADER, True), *body])])


def _edit(sheet_edit, data: bytes | None = None, compresslevel: int = 6) -> bytes:
    import hostile_corpus

    return hostile_corpus._xlsx_rewrite(data or _clean(), sheet_edit, compresslevel=compresslevel)


def _append(row_xml: bytes):
    return lambda xml: xml.replace(b"</sheetData>", row_xml + b"</sheetData>")


def _encrypted(data: bytes) -> bytes:
    """Every member flagged as encrypted (general purpose bit 0), in the local headers and the
    central directory."""
    out = bytearray(data)
    for sig, at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        for m in re.finditer(re.escape(sig), data):
            out[m.start() + at] |= 1
    return bytes(out)


def _shared_bomb() -> bytes:
    """600,000 shared strings for a sheet that uses a hundred."""
    strings = "".join(f"<si><t>s{i}</t></si>" for i in range(600_000))

    def many(data: bytes) -> bytes:
        zin = zipfile.ZipFile(io.BytesIO(data))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
            for info in zin.infolist():
                part = zin.read(info.filename)
                if info.filename.endswith("sharedStrings.xml"):
                    part = part.replace(b"</sst>", strings.encode() + b"</sst>")
                z.writestr(info.filename, part)
        return out.getvalue()

    return many(_clean(5))


def _hostile() -> dict[str, tuple[bytes, str, int]]:
    """name -> (workbook, the code it is refused with, max_cells)."""
    clean = _clean()
    big = 50_000_000
    bomb_row = b'<row><c t="inlineStr"><is><t>0</t></is></c></row>'
    return {
        "truncated": (clean[: len(clean) // 2], "truncated", big),
        "not_a_zip": (b"PK\x03\x04" + b"\x00" * 64, "truncated", big),
        "named_xlsx_but_csv": (",".join(HEADER).encode() + b"\n", "malformed", big),
        "zip_bomb": (
            _edit(
                lambda x: x.replace(b"</sheetData>", bomb_row * 1_500_000 + b"</sheetData>"),
                compresslevel=9,
            ),
            "too_large",
            big,
        ),
        "entity_expansion": (
            _edit(
                lambda x: (
                    b'<!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
                    + x.replace(
                        b"</sheetData>",
                        b'<row><c t="inlineStr"><is><t>&b;</t></is></c></row></sheetData>',
                    )
                )
            ),
            "malformed",
            big,
        ),
        "cell_far_right_last": (
            _edit(_append(b'<row><c r="ZZZ99"><v>1</v></c></row>')),
            "too_many_columns",
            big,
        ),
        "long_cell_last": (
            _edit(
                _append(b'<row><c t="inlineStr"><is><t>' + b"x" * 40_000 + b"</t></is></c></row>")
            ),
            "too_large",
            big,
        ),
        "shared_string_out_of_range_last": (
            _edit(_append(b'<row><c t="s"><v>99999999</v></c></row>')),
            "malformed",
            big,
        ),
        "shared_string_not_a_number_last": (
            _edit(_append(b'<row><c t="s"><v>x</v></c></row>')),
            "malformed",
            big,
        ),
        "empty_sheet": (
            _edit(lambda x: re.sub(rb"<sheetData>.*</sheetData>", b"<sheetData/>", x, flags=re.S)),
            "empty",
            big,
        ),
        "sheet_not_well_formed_at_its_end": (_edit(lambda x: x[: len(x) - 30]), "malformed", big),
        "encrypted": (_encrypted(clean), "malformed", big),
        "shared_strings_the_sheet_cannot_use": (_shared_bomb(), "too_large", big),
        "too_many_cells": (clean, "too_large", 1_000),
    }


HOSTILE = _hostile()


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("chunk_rows,block", [(1, 64), (7, 1 << 20)])
def test_a_hostile_workbook_is_refused_alike_before_its_first_chunk(name, chunk_rows, block):
    """Each is refused by open_file itself (never part-way through its chunks) with whole-file
    reading's code and message and the file's content hash; the faults placed in the sheet's last
    row come after many blocks of its XML."""
    data, code, max_cells = HOSTILE[name]
    verdict = _same(data, chunk_rows, block, max_cells)[0]
    assert verdict[:2] == ("rejected", code), verdict


def test_the_clean_workbook_reads():
    head, rows, _raw, bad = _same(_clean(), 3, 64)
    assert head[0] == "read" and len(rows) == 40 and bad.empty


@settings(SETTINGS, max_examples=60)
@given(data=st.data(), chunk_rows=st.integers(1, 5), block=st.integers(1, 200))
def test_a_damaged_workbook_gives_whole_file_readings_verdict(data, chunk_rows, block):
    """Cut short anywhere, or with any byte changed: the same verdict, or the same rows."""
    clean = bytearray(_clean(12))
    if data.draw(st.booleans()):
        blob = bytes(clean[: data.draw(st.integers(4, len(clean)))])
    else:
        at = data.draw(st.integers(4, len(clean) - 1))
        clean[at] = data.draw(st.integers(0, 255))
        blob = bytes(clean)
    _same(blob, chunk_rows, block)
