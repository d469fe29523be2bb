"""A streaming XLSX writer for agency deliveries: rows are added chunk by chunk as Arrow tables
and turned into sheet XML column-wise in Arrow (no per-cell Python), text as inline strings,
numbers as numbers. The archive is deterministic (fixed member times and order, no creation
date), so publishing the same run again gives the same bytes. A sheet holds at most 1,048,576
rows; a larger scope continues on a second sheet with the header repeated.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

MAX_ROWS = 1_048_576  # Excel's and WPS's sheet limit, header included
_EPOCH = (1980, 1, 1, 0, 0, 0)
_ILLEGAL_XML = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def _lit(text: str) -> pa.Scalar:
    return pa.scalar(text, pa.large_string())


def _text_cells(col) -> pa.Array:
    s = pc.replace_substring_regex(col.cast(pa.large_string()), _ILLEGAL_XML, "")
    for a, b in (("&", "&amp;"), ("<", "&lt;"), (">", "&gt;")):
        s = pc.replace_substring(s, a, b)
    cell = pc.binary_join_element_wise(
        _lit('<c t="inlineStr"><is><t xml:space="preserve">'), s, _lit("</t></is></c>"), _lit("")
    )
    return pc.fill_null(cell, _lit("<c/>"))


def _number_cells(col) -> pa.Array:
    cell = pc.binary_join_element_wise(
        _lit("<c><v>"), col.cast(pa.large_string()), _lit("</v></c>"), _lit("")
    )
    return pc.fill_null(cell, _lit("<c/>"))


class XlsxFile:
    """One workbook written row chunk by row chunk; ``numeric`` names the columns written as
    numbers (their text must be a plain decimal, as the CSV's is)."""

    def __init__(self, path: Path, header: list[str], numeric: set[str] = frozenset()):
        self.path, self.header, self.numeric = path, header, set(numeric)
        self._dir = Path(tempfile.mkdtemp(prefix=".xlsx-", dir=path.parent))
        self._sheets: list[Path] = []
        self._fh = None
        self._rows = 0
        self._new_sheet()

    def _new_sheet(self) -> None:
        if self._fh:
            self._fh.write(b"</sheetData></worksheet>")
            self._fh.close()
        p = self._dir / f"sheet{len(self._sheets) + 1}.xml"
        self._sheets.append(p)
        self._fh = open(p, "wb")
        self._fh.write(
            f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns="{_NS}">'
            "<sheetData>".encode()
        )
        head = pa.table([pa.array([h], pa.string()) for h in self.header], names=self.header)
        self._rows = 0
        self._put(head, numeric=False)

    def _put(self, table: pa.Table, numeric: bool = True) -> None:
        cells = [
            _number_cells(table[i])
            if numeric and name in self.numeric
            else _text_cells(table[i].cast(pa.string()))
            for i, name in enumerate(table.column_names)
        ]
        rows = pc.binary_join_element_wise(_lit("<row>"), *cells, _lit("</row>"), _lit(""))
        for chunk in rows.chunks if isinstance(rows, pa.ChunkedArray) else [rows]:
            self._fh.write("".join(chunk.to_pylist()).encode("utf-8"))
        self._rows += table.num_rows

    def write(self, table: pa.Table) -> None:
        start = 0
        while start < table.num_rows:
            room = MAX_ROWS - self._rows
            if room == 0:
                self._new_sheet()
                continue
            part = table.slice(start, room)
            self._put(part)
            start += part.num_rows

    def close(self) -> dict:
        self._fh.write(b"</sheetData></worksheet>")
        self._fh.close()
        n = len(self._sheets)
        parts = {
            "[Content_Types].xml": _content_types(n),
            "_rels/.rels": _root_rels(),
            "xl/workbook.xml": _workbook(n),
            "xl/_rels/workbook.xml.rels": _workbook_rels(n),
        }
        tmp = self.path.with_name(self.path.name + ".partial")
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, data in parts.items():
                zf.writestr(_member(name), data)
            for i, sheet in enumerate(self._sheets, start=1):
                with (
                    open(sheet, "rb") as src,
                    zf.open(_member(f"xl/worksheets/sheet{i}.xml"), "w") as dst,
                ):
                    shutil.copyfileobj(src, dst, 1 << 20)
        shutil.rmtree(self._dir, ignore_errors=True)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        sha = hashlib.sha256()
        with open(self.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                sha.update(block)
        return {"sha256": sha.hexdigest(), "bytes": self.path.stat().st_size}


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _content_types(n: int) -> bytes:
    sheets = "".join(
        f'<Override PartName="/xl/worksheets/sheet{i}.xml" ContentType="application/'
        'vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        for i in range(1, n + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>' + sheets + "</Types>"
    ).encode()


def _root_rels() -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ).encode()


def _workbook(n: int) -> bytes:
    sheets = "".join(
        f'<sheet name="{"结果" if i == 1 else f"结果{i}"}" sheetId="{i}" r:id="rId{i}"/>'
        for i in range(1, n + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        f'<workbook xmlns="{_NS}" xmlns:r="{_REL}"><sheets>{sheets}</sheets></workbook>'
    ).encode()


def _workbook_rels(n: int) -> bytes:
    rels = "".join(
        f'<Relationship Id="rId{i}" Type="{_REL}/worksheet" Target="worksheets/sheet{i}.xml"/>'
        for i in range(1, n + 1)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        + rels
        + "</Relationships>"
    ).encode()
