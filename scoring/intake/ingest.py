"""Reading provider files: encoding and layout detection, raw rows, and staging to canonical columns.

Every physical row a provider sent ends up either in the staged frame or in the list of rows the
reader could not parse (with a reason), so received = staged + unparseable always holds.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from scoring.common import codes
from scoring.common.catalogue import Catalogue
from scoring.intake.layouts import Layout, match_header

DELIVERY_NAME = re.compile(r"^(?P<date>\d{8})_(?P<feed>[a-z_]+)\.(?P<ext>csv|xlsx)$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]+$")
SUBJECT_TYPES = {"法人及非法人组织": "legal", "法人": "legal", "非法人组织": "legal",
                 "自然人": "natural", "个体工商户": "individual"}


class UnusableFile(Exception):
    """The file cannot be read at all; the message is the one-line reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


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
    rows: pd.DataFrame                     # canonical columns as raw strings, plus line_no
    raw: pd.DataFrame                      # the same rows under the provider's own headers, plus line_no
    bad_rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["line_no", "reason", "raw"]))
    sha256: str = ""
    n_bytes: int = 0

    @property
    def received(self) -> int:
        return len(self.rows) + len(self.bad_rows)


def check_name(name: str) -> None:
    """Reject names that could escape the landing folder or confuse downstream tools."""
    if "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\x00" in name:
        raise UnusableFile("bad_file_name", f"file name {name!r} has path components or is hidden")
    if not SAFE_NAME.match(name):
        raise UnusableFile("bad_file_name", f"file name {name!r} has characters outside [A-Za-z0-9_.-] and CJK")


def detect_encoding(data: bytes) -> tuple[str, str]:
    """Return (encoding label, decoded text); UTF-8 (with or without BOM) first, then GB18030."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return "utf-8-sig", data[3:].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnusableFile("bad_encoding", f"UTF-8 BOM but invalid UTF-8 at byte {exc.start + 3}") from None
    try:
        return "utf-8", data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return "gb18030", data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise UnusableFile("bad_encoding", f"neither UTF-8 nor GB18030 (invalid byte at {exc.start})") from None


def _read_csv_text(text: str) -> tuple[list[str], pd.DataFrame, list[tuple[int, str, str]]]:
    """Parse CSV text with Arrow's C++ reader. Returns (header, data frame of strings with
    line_no, bad lines as (line_no, reason, text)). Line numbers count records, header = 1, as a
    spreadsheet numbers rows."""
    invalid: list[tuple[int, str, int]] = []

    def on_invalid(row):
        invalid.append((row.number, row.text, row.actual_columns))
        return "skip"

    first_line = text.split("\n", 1)[0]
    try:
        width = len(next(csv.reader([first_line])))
    except (StopIteration, csv.Error):
        raise UnusableFile("empty", "the file has no header row") from None
    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            read_options=pacsv.ReadOptions(use_threads=False, autogenerate_column_names=True,
                                           block_size=64 << 20),
            parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=False,
                                             invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(column_types={f"f{i}": pa.string() for i in range(width)},
                                                 strings_can_be_null=False, quoted_strings_can_be_null=False))
    except pa.ArrowInvalid as exc:
        raise UnusableFile("malformed", f"CSV cannot be parsed: {str(exc).splitlines()[0][:160]}") from None
    frame = table.to_pandas()
    if frame.empty:
        raise UnusableFile("empty", "the file has no header row")
    header = [str(v) for v in frame.iloc[0].tolist()]
    data = frame.iloc[1:].reset_index(drop=True)
    data.columns = range(width)
    bad_numbers = {n for n, _, _ in invalid}
    total = len(frame) + len(invalid)
    lines = [n for n in range(2, total + 1) if n not in bad_numbers]
    data["line_no"] = np.asarray(lines[:len(data)], dtype=np.int64)
    last = total
    bad = [(n, "truncated_row" if n == last and not text.endswith(("\n", "\r")) else "wrong_field_count", t)
           for n, t, _ in invalid]
    return header, data, bad


XLSX_BYTES_PER_CELL = 150
XLSX_MAX_RATIO = 250


def _read_xlsx(data: bytes, max_cells: int) -> tuple[list[str], pd.DataFrame, list[tuple[int, str, str]]]:
    import openpyxl  # imported here: only XLSX deliveries pay for it

    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        expanded = sum(i.file_size for i in zf.infolist())
        packed = sum(i.compress_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise UnusableFile("truncated", "XLSX file is not a complete ZIP archive (truncated?)") from None
    # Checked before anything is inflated. Sheet XML costs roughly 70 bytes a cell and packs about
    # 10:1; a zip bomb packs hundreds or thousands to one.
    if expanded > max(64 * 1024 * 1024, XLSX_BYTES_PER_CELL * max_cells):
        raise UnusableFile("too_large", f"XLSX expands to {expanded:,} bytes, beyond the limit")
    if expanded > 8 * 1024 * 1024 and expanded > XLSX_MAX_RATIO * max(packed, 1):
        raise UnusableFile("too_large", f"XLSX packs {expanded / max(packed, 1):,.0f}:1 (a zip bomb?)")
    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for corrupt workbooks
        raise UnusableFile("malformed", f"XLSX cannot be opened: {type(exc).__name__}") from None
    ws = wb.worksheets[0]
    dims = ws.max_row or 0, ws.max_column or 0
    if dims[0] * dims[1] > max_cells:
        raise UnusableFile("too_large", f"XLSX sheet declares {dims[0]:,}×{dims[1]:,} cells, beyond {max_cells:,}")
    it = ws.iter_rows(values_only=True)
    try:
        header = [("" if v is None else str(v)) for v in next(it)]
    except StopIteration:
        raise UnusableFile("empty", "the workbook's first sheet is empty") from None
    rows, bad = [], []
    width = len(header)
    for i, rec in enumerate(it, start=2):
        cells = ["" if v is None else _cell_text(v) for v in rec]
        if len(cells) > width and not any(c.strip() for c in cells[width:]):
            cells = cells[:width]
        if len(cells) != width:
            bad.append((i, "wrong_field_count", "\x1f".join(cells)))
            continue
        rows.append(cells + [i])
    wb.close()
    data = pd.DataFrame(rows, columns=[*range(width), "line_no"])
    data[list(range(width))] = data[list(range(width))].astype("string")
    data["line_no"] = data["line_no"].astype(np.int64)
    return header, data, bad


def _cell_text(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if hasattr(v, "strftime"):
        return v.strftime("%Y-%m-%d")
    return str(v)


def delivery_date(name: str) -> pd.Timestamp | None:
    m = DELIVERY_NAME.match(name)
    if not m:
        return None
    return pd.to_datetime(m.group("date"), format="%Y%m%d", errors="coerce")


def read_file(path: Path | str, provider: str | None = None, max_cells: int = 50_000_000,
              max_bytes: int = 4_000_000_000) -> RawFile:
    """Read one provider file into raw canonical columns. Raises UnusableFile with a one-line reason."""
    path = Path(path)
    check_name(path.name)
    if path.is_symlink():
        raise UnusableFile("bad_file_name", f"{path.name} is a symbolic link; deliveries must be regular files")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UnusableFile("unreadable", f"cannot stat file: {exc.strerror}") from None
    if size == 0:
        raise UnusableFile("empty", "the file is empty (0 bytes)")
    if size > max_bytes:
        raise UnusableFile("too_large", f"the file has {size:,} bytes, beyond the limit {max_bytes:,}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UnusableFile("unreadable", f"cannot read file: {exc.strerror}") from None
    sha = hashlib.sha256(data).hexdigest()
    if data[:4] == b"PK\x03\x04" or path.suffix.lower() == ".xlsx":
        if data[:4] != b"PK\x03\x04":
            raise UnusableFile("malformed", "named .xlsx but is not an XLSX (ZIP) file")
        header, data_frame, bad = _read_xlsx(data, max_cells)
        encoding, fmt = "xlsx", "xlsx"
    else:
        if b"\x00" in data[:8192]:
            raise UnusableFile("binary", "binary content (NUL bytes) in a CSV delivery")
        encoding, text = detect_encoding(data)
        if not text.strip():
            raise UnusableFile("empty", "the file has no header row")
        header, data_frame, bad = _read_csv_text(text)
        fmt = "csv"
        if data_frame.shape[0] and not text.endswith(("\n", "\r")) and not bad:
            # No final newline: the last row may have been cut inside its last field.
            last = data_frame.iloc[-1]
            bad.append((int(last["line_no"]), "truncated_row", "\x1f".join(last.iloc[:-1].astype(str))))
            data_frame = data_frame.iloc[:-1]
    header = [h.strip() for h in header]
    if not any(header):
        raise UnusableFile("empty", "the header row is blank")
    layout, mapping, missing = match_header(header)
    if layout is None:
        raise UnusableFile("unknown_layout", f"header matches no known layout: {','.join(header[:6])}…")
    width = len(header)
    values = data_frame[list(range(width))]
    blank = (values.fillna("").apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    for ln in data_frame.loc[blank, "line_no"]:
        bad.append((int(ln), "blank_row", ""))
    data_frame = data_frame[~blank].reset_index(drop=True)
    raw = data_frame[list(range(width))].copy()
    raw.columns = header
    col_index = {h: i for i, h in enumerate(header)}
    frame = pd.DataFrame({canon: data_frame[col_index[h]] for h, canon in mapping.items()}, index=data_frame.index)
    for canon in layout.columns:
        if canon not in frame:
            frame[canon] = pd.Series(pd.NA, index=data_frame.index, dtype="string")
    frame["line_no"] = data_frame["line_no"].to_numpy(dtype=np.int64)
    raw["line_no"] = frame["line_no"].to_numpy()
    bad_rows = pd.DataFrame(sorted(bad), columns=["line_no", "reason", "raw"])
    return RawFile(path=str(path), provider=provider or path.parent.name, encoding=encoding,
                   file_format=fmt, layout=layout, header=header, mapping=mapping,
                   missing_required=missing, rows=frame, raw=raw, bad_rows=bad_rows, sha256=sha, n_bytes=size)


def raw_json(raw: pd.DataFrame) -> pd.Series:
    """Rows as the provider sent them (header → value), for quarantine and audit."""
    cols = [c for c in raw.columns if c != "line_no"]
    values = raw[cols].fillna("").to_numpy(dtype=object)
    return pd.Series([json.dumps(dict(zip(cols, v)), ensure_ascii=False) for v in values],
                     index=raw.index, dtype="string")


# --------------------------------------------------------------------------- typing helpers

def parse_dates(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse dates in the formats providers use. Returns (dates, unparseable-but-present mask)."""
    t = s.astype("string").str.normalize("NFKC").str.strip()
    t = t.mask(t == "", pd.NA)
    t = t.str.replace(r"(\d{4})年(\d{1,2})月(\d{1,2})日?", r"\1-\2-\3", regex=True)
    t = t.str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True)
    t = t.str.replace(r"[./]", "-", regex=True)
    t = t.str.replace(r"\s+\d{1,2}:\d{2}(:\d{2})?$", "", regex=True)
    d = pd.to_datetime(t, format="%Y-%m-%d", errors="coerce")
    return d.astype("datetime64[s]"), t.notna() & d.isna()


def parse_amounts(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers with thousands separators or full-width digits. Returns (values, bad mask)."""
    t = s.astype("string").str.normalize("NFKC").str.replace(r"[,\s]", "", regex=True)
    t = t.mask(t == "", pd.NA)
    v = pd.to_numeric(t, errors="coerce")
    return v.astype("float64"), t.notna() & v.isna()


def clean_text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "", pd.NA)


# --------------------------------------------------------------------------- staging

STG_RECORD_COLUMNS = [
    "source_file", "line_no", "provider", "layout", "delivered_on",
    "item_code", "subject_type", "subject_name", "uscc", "id_number",
    "legal_rep_name", "legal_rep_id_number", "doc_number", "penalty_category",
    "amount_yuan", "decision_date", "publicity_end_date", "valid_to_date",
    "authority_name", "inspection_result", "bad_values",
]
STG_ENTITY_COLUMNS = [
    "source_file", "line_no", "provider", "delivered_on", "uscc", "subject_name", "entity_type",
    "eval_class", "industry", "division_code", "registered_date", "entity_status",
    "legal_rep_name", "legal_rep_id_number", "phone", "bad_values",
]
EVAL_CLASS = {"有限责任公司": "legal_person", "股份有限公司": "legal_person", "农民专业合作社": "legal_person",
              "事业单位": "legal_person", "社会团体": "legal_person", "民办非企业单位": "legal_person",
              "基金会": "legal_person", "农村集体经济组织": "legal_person", "个人独资企业": "unincorporated",
              "合伙企业": "unincorporated", "其他组织": "unincorporated", "个体工商户": "individual_business"}


def _is_individual(code: pd.Series) -> np.ndarray:
    """USCCs of individual businesses (个体工商户) start with 92."""
    return (code.str.slice(0, 2) == "92").fillna(False).to_numpy(dtype=bool)


def _subject_type(category: pd.Series, code: pd.Series) -> pd.Series:
    t = category.astype("string").str.strip().map(SUBJECT_TYPES, na_action="ignore")
    guess = pd.Series(np.where(_is_individual(code), "individual", "legal"), index=code.index)
    guess = guess.where(code.notna(), pd.NA)
    return t.fillna(guess).astype("string")


def _provenance(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Where each staged row came from: file, line, provider, delivery date."""
    f = raw.rows
    out = pd.DataFrame(index=f.index)
    out["source_file"] = pd.Series(raw.path, index=f.index, dtype="string")
    out["line_no"] = f["line_no"]
    out["provider"] = pd.Series(raw.provider, index=f.index, dtype="string")
    out["delivered_on"] = pd.Series(delivered_on, index=f.index).astype("datetime64[s]")
    return out


def record_key(stg: pd.DataFrame) -> pd.Series:
    """A record's identity: its decision document number and its subject (USCC, ID number or name)."""
    subject = stg["uscc"].fillna(stg["id_number"]).fillna(stg["subject_name"])
    return (stg["doc_number"].fillna("") + "|" + subject.fillna("")).astype("string")


def stage_records(raw: RawFile, cat: Catalogue, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed canonical rows (stg_record) for every non-register layout. Pure: no I/O."""
    f = raw.rows
    lay = raw.layout.id
    n = len(f)
    out = _provenance(raw, delivered_on)
    out["layout"] = pd.Series(lay, index=f.index, dtype="string")
    bad = pd.Series("", index=f.index, dtype="string")

    def note_bad(mask, col):
        nonlocal bad
        bad = bad.where(~mask, bad + col + ";")

    if lay == "court_dishonest_debtor":
        code = codes.normalise_code(f["subject_code"])
        is_person = (code.str.fullmatch(r"\d{17}[\dX]").fillna(False).to_numpy(dtype=bool)
                     & ~codes.valid_uscc(code.to_numpy(dtype=object)))
        out["uscc"] = code.where(~is_person, pd.NA)
        out["id_number"] = code.where(is_person, pd.NA)
        out["subject_type"] = pd.Series(np.where(is_person, "natural",
                                                 np.where(_is_individual(code), "individual", "legal")),
                                        index=f.index, dtype="string").where(code.notna(), pd.NA)
    else:
        out["uscc"] = codes.normalise_code(f["uscc"])
        out["id_number"] = codes.normalise_code(f["id_number"]) if "id_number" in f else pd.NA
        out["subject_type"] = _subject_type(f.get("subject_category", pd.Series(pd.NA, index=f.index)), out["uscc"])
    out["subject_name"] = clean_text(f["subject_name"])
    out["legal_rep_name"] = clean_text(f["legal_rep_name"]) if "legal_rep_name" in f else pd.NA
    out["legal_rep_id_number"] = (codes.normalise_code(f["legal_rep_id_number"])
                                  if "legal_rep_id_number" in f else pd.NA)
    if lay == "tax_credit_rating":  # no document number on the list: tax year and grade name the record
        out["doc_number"] = ("纳税信用" + clean_text(f["rating_year"]) + "年度"
                             + clean_text(f["credit_grade"]).str.upper().str.removesuffix("级") + "级")
    else:
        out["doc_number"] = clean_text(f["doc_number"])
    out["authority_name"] = clean_text(f["authority_name"]) if "authority_name" in f else pd.NA
    out["penalty_category"] = clean_text(f["penalty_category"]) if "penalty_category" in f else pd.NA
    out["inspection_result"] = clean_text(f["inspection_result"]) if "inspection_result" in f else pd.NA

    for src, dst in (("decision_date", "decision_date"), ("publicity_end", "publicity_end_date"),
                     ("valid_to", "valid_to_date")):
        if src in f:
            d, d_bad = parse_dates(f[src])
            note_bad(d_bad, src)
        else:
            d = pd.Series(pd.NaT, index=f.index, dtype="datetime64[s]")
        out[dst] = d

    if lay == "sgs_penalty":
        fine, fine_bad = parse_amounts(f["fine_wan_yuan"])
        note_bad(fine_bad, "fine_wan_yuan")
        out["amount_yuan"] = (fine * 10_000).round(2)
        sev = cat.doc["penalty_severity"]
        pat = "|".join(map(re.escape, sev["severe_categories"]))
        severe = out["penalty_category"].str.contains(pat, regex=True).fillna(False) | \
            (out["amount_yuan"] >= float(sev["severe_fine_yuan"])).fillna(False)
        out["item_code"] = pd.Series(np.where(severe, "PENALTY_SEVERE", "PENALTY_GENERAL"), index=f.index,
                                     dtype="string")
    elif lay == "credit_record":
        amt, amt_bad = parse_amounts(f["amount_yuan"])
        note_bad(amt_bad, "amount_yuan")
        out["amount_yuan"] = amt
        out["item_code"] = clean_text(f["item_code"]).str.upper()
    else:
        out["amount_yuan"] = pd.Series(np.nan, index=f.index, dtype="float64")
        if lay == "sgs_licence":
            out["item_code"] = pd.Series("LICENCE", index=f.index, dtype="string")
        elif lay == "court_dishonest_debtor":
            out["item_code"] = pd.Series("DISHONEST_DEBTOR", index=f.index, dtype="string")
        elif lay == "tax_credit_rating":  # TAX_CREDIT_A; another grade is an item the catalogue must list
            grade = clean_text(f["credit_grade"]).str.upper().str.removesuffix("级")
            out["item_code"] = ("TAX_CREDIT_" + grade).astype("string")
        elif lay == "commitment_result":
            result = clean_text(f["check_result"])
            breached = result.str.contains("未履|违背|不履", regex=True)
            out["item_code"] = pd.Series(np.where(breached.fillna(False), "COMMITMENT_BREACH", "COMMITMENT_KEPT"),
                                         index=f.index, dtype="string").where(result.notna(), pd.NA)
        elif lay == "inspection_result":
            ok = out["inspection_result"].str.contains("未发现", regex=False)
            out["item_code"] = pd.Series(np.where(ok.fillna(False), "INSPECTION_PASS", "INSPECTION_FAIL"),
                                         index=f.index, dtype="string").where(out["inspection_result"].notna(), pd.NA)
        else:
            raise ValueError(f"stage_records: layout {lay} is not a record layout")
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    for c in ("uscc", "id_number", "legal_rep_name", "legal_rep_id_number"):
        out[c] = out[c].astype("string")
    assert len(out) == n
    return out[STG_RECORD_COLUMNS].reset_index(drop=True)


def stage_entities(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed register rows (stg_entity). Pure: no I/O."""
    f = raw.rows
    out = _provenance(raw, delivered_on)
    out["uscc"] = codes.normalise_code(f["uscc"])
    out["subject_name"] = clean_text(f["subject_name"])
    out["entity_type"] = clean_text(f["entity_type"])
    out["eval_class"] = out["entity_type"].map(EVAL_CLASS, na_action="ignore").astype("string")
    out["industry"] = clean_text(f["industry"]).str.upper()
    out["division_code"] = clean_text(f["division_code"])
    reg, reg_bad = parse_dates(f["decision_date"])
    out["registered_date"] = reg
    out["entity_status"] = clean_text(f["entity_status"])
    out["legal_rep_name"] = clean_text(f["legal_rep_name"])
    out["legal_rep_id_number"] = codes.normalise_code(f["legal_rep_id_number"])
    out["phone"] = clean_text(f["phone"])
    out["bad_values"] = pd.Series(np.where(reg_bad, "registered_date;", ""), index=f.index, dtype="string")
    out["bad_values"] = out["bad_values"].mask(out["bad_values"] == "", pd.NA)
    return out[STG_ENTITY_COLUMNS].reset_index(drop=True)


CHANGE_OPS = {"更正": "correct", "撤销": "revoke", "异议标注": "objection", "异议办结": "objection_closed",
              "信用修复": "repair"}
STG_CHANGE_COLUMNS = [
    "source_file", "line_no", "provider", "delivered_on", "op", "doc_number", "subject_code", "item_code",
    "effective_date", "result", "new_decision_date", "new_publicity_end_date", "record_key", "bad_values",
]


def stage_changes(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed change rows (stg_change): one correction, revocation, objection or repair of one record."""
    f = raw.rows
    out = _provenance(raw, delivered_on)
    op_text = clean_text(f["op"])
    out["op"] = op_text.map(CHANGE_OPS, na_action="ignore").astype("string").where(op_text.notna(), pd.NA)
    out["op"] = out["op"].where(op_text.isna() | out["op"].notna(), "unknown:" + op_text)
    out["doc_number"] = clean_text(f["doc_number"])
    out["subject_code"] = codes.normalise_code(f["subject_code"])
    out["item_code"] = clean_text(f["item_code"]).str.upper()
    bad = pd.Series("", index=f.index, dtype="string")
    for col, src in (("effective_date", "effective_date"), ("new_decision_date", "new_decision_date"),
                     ("new_publicity_end_date", "new_publicity_end")):
        d, d_bad = parse_dates(f[src])
        out[col] = d
        bad = bad.where(~d_bad, bad + col + ";")
    out["result"] = clean_text(f["result"])
    out["record_key"] = (out["doc_number"].fillna("") + "|" + out["subject_code"].fillna("")).astype("string")
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    return out[STG_CHANGE_COLUMNS].reset_index(drop=True)


def list_deliveries(landing: Path | str, as_of: pd.Timestamp) -> list[tuple[Path, pd.Timestamp | None]]:
    """Files under landing/<provider>/ delivered by the as-of date, in a stable order.

    Files whose names carry no delivery date are included (they count as delivered on the as-of
    date of the first run that sees them); files dated after the as-of date are left for later.
    """
    landing = Path(landing)
    out = []
    if not landing.is_dir():
        return out
    for prov_dir in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(prov_dir.iterdir()):
            if not path.is_file() or path.name.endswith(".partial"):
                continue
            d = delivery_date(path.name)
            if d is not None and not pd.isna(d) and d > as_of:
                continue
            out.append((path, d if d is not None and not pd.isna(d) else None))
    return out


