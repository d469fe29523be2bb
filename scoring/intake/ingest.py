"""Reading provider files: encoding and layout detection, raw rows, and staging to canonical columns.

Every physical row a provider sent ends up either in the staged frame or in the list of rows the
reader could not parse (with a reason), so received = staged + unparseable always holds.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from scoring.common import codes, law
from scoring.common.catalogue import Catalogue
from scoring.intake.layouts import Layout, match_header
from scoring.intake.readers import (
    DEFAULT_LIMITS,
    ReaderLimits,
    UnusableFile,
    check_bytes,
    check_header,
    decode,
    header_hint,
    parse_csv,
)
from scoring.intake.xlsx import read_xlsx

DELIVERY_NAME = re.compile(r"^(?P<date>\d{8})_(?P<feed>[a-z_]+)\.(?P<ext>csv|xlsx)$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]+$")
SUBJECT_TYPES = {
    "法人及非法人组织": "legal",
    "法人": "legal",
    "非法人组织": "legal",
    "自然人": "natural",
    "个体工商户": "individual",
}


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

    @property
    def received(self) -> int:
        return len(self.rows) + len(self.bad_rows)


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


def _open_regular(path: Path, max_bytes: int) -> bytes:
    """The bytes of a regular file, opened without following a symbolic link (a FIFO, a device or
    a folder is refused before anything is read)."""
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
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(max_bytes + 1)
    except OSError as exc:
        raise UnusableFile("unreadable", f"cannot read file: {exc.strerror}") from None
    finally:
        os.close(fd)


def read_file(
    path: Path | str,
    provider: str | None = None,
    max_cells: int = 50_000_000,
    max_bytes: int = 4_000_000_000,
) -> RawFile:
    """Read one provider file into raw canonical columns. Raises UnusableFile with a one-line reason."""
    path = Path(path)
    check_name(path.name)
    if path.is_symlink():
        raise UnusableFile(
            "symlink", f"{path.name} is a symbolic link; deliveries must be regular files"
        )
    data = _open_regular(path, max_bytes)
    raw = read_bytes(data, path.name, provider=provider or path.parent.name, max_cells=max_cells)
    raw.path = str(path)
    return raw


def read_bytes(data: bytes, name: str, provider: str, max_cells: int = 50_000_000) -> RawFile:
    """Read one delivery's bytes (named ``name``). Raises UnusableFile with a one-line reason; every
    other problem inside the file also comes out as UnusableFile (code ``unreadable_content``)."""
    import hashlib

    limits = replace(DEFAULT_LIMITS, max_cells=max_cells)
    sha = hashlib.sha256(data).hexdigest()
    try:
        return _read_bytes(data, name, provider, limits, sha)
    except UnusableFile as exc:
        exc.sha256 = sha
        raise
    except Exception as exc:  # a file is the unit of failure: whatever breaks, it breaks this file
        err = UnusableFile(
            "unreadable_content", f"the reader failed on this file ({type(exc).__name__})"
        )
        err.sha256 = sha
        raise err from None


def _read_bytes(data: bytes, name: str, provider: str, limits: ReaderLimits, sha: str) -> RawFile:
    if not data:
        raise UnusableFile("empty", "the file is empty (0 bytes)")
    if data[:4] == b"PK\x03\x04" or name.lower().endswith(".xlsx"):
        if data[:4] != b"PK\x03\x04":
            raise UnusableFile("malformed", "named .xlsx but is not an XLSX (ZIP) file")
        header, data_frame, bad = read_xlsx(data, limits)
        encoding, fmt = "xlsx", "xlsx"
    else:
        check_bytes(data, limits)
        encoding, text = decode(data)
        if not text.strip():
            raise UnusableFile("empty", "the file has no header row")
        header, data_frame, bad = parse_csv(text, limits)
        fmt = "csv"
        if data_frame.shape[0] and not text.endswith(("\n", "\r")) and not bad:
            # No final newline: the last row may have been cut inside its last field.
            last = data_frame.iloc[-1]
            bad.append(
                (int(last["line_no"]), "truncated_row", "\x1f".join(last.iloc[:-1].astype(str)))
            )
            data_frame = data_frame.iloc[:-1]
    header = check_header(header, limits)
    layout, mapping, missing = match_header(header)
    if layout is None:
        raise UnusableFile(
            "unknown_layout", f"header matches no known layout ({header_hint(header)})"
        )
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
    )


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


MAX_AMOUNT_YUAN = 1e12  # a trillion yuan: beyond any fine or arrears a provider can send


def parse_amounts(s: pd.Series, max_value: float = MAX_AMOUNT_YUAN) -> tuple[pd.Series, pd.Series]:
    """Numbers with thousands separators or full-width digits. Returns (values, bad mask): a value
    that is not a number, not finite (inf, NaN), negative or above ``max_value`` is a bad value,
    and its amount is left empty."""
    t = s.astype("string").str.normalize("NFKC").str.replace(r"[,\s]", "", regex=True)
    t = t.mask(t == "", pd.NA)
    v = pd.to_numeric(t, errors="coerce").astype("float64")
    absurd = ~np.isfinite(v.fillna(0.0)) | (v < 0).fillna(False) | (v > max_value).fillna(False)
    v = v.mask(absurd)
    return v, t.notna() & v.isna()


def _max_amount(cat: Catalogue) -> float:
    return float(cat.gates.get("max_amount_yuan", MAX_AMOUNT_YUAN))


def clean_text(s: pd.Series) -> pd.Series:
    t = s.astype("string").str.strip()
    return t.mask(t == "", pd.NA)


# --------------------------------------------------------------------------- staging

STG_RECORD_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "layout",
    "delivered_on",
    "item_code",
    "subject_type",
    "subject_name",
    "uscc",
    "id_number",
    "legal_rep_name",
    "legal_rep_id_number",
    "doc_number",
    "penalty_category",
    "amount_yuan",
    "decision_date",
    "publicity_end_date",
    "valid_to_date",
    "authority_name",
    "inspection_result",
    "grade",
    "grade_basis",
    "removal_date",
    "removal_reason",
    "bad_values",
]
STG_ENTITY_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "delivered_on",
    "uscc",
    "subject_name",
    "entity_type",
    "eval_class",
    "industry",
    "division_code",
    "registered_date",
    "entity_status",
    "legal_rep_name",
    "legal_rep_id_number",
    "phone",
    "bad_values",
]
EVAL_CLASS = {
    "有限责任公司": "legal_person",
    "股份有限公司": "legal_person",
    "农民专业合作社": "legal_person",
    "事业单位": "legal_person",
    "社会团体": "legal_person",
    "民办非企业单位": "legal_person",
    "基金会": "legal_person",
    "农村集体经济组织": "legal_person",
    "个人独资企业": "unincorporated",
    "合伙企业": "unincorporated",
    "其他组织": "unincorporated",
    "个体工商户": "individual_business",
}


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


RECORD_CONTENT = [
    "item_code",
    "subject_type",
    "subject_name",
    "uscc",
    "id_number",
    "penalty_category",
    "amount_yuan",
    "decision_date",
    "publicity_end_date",
    "valid_to_date",
    "authority_name",
    "inspection_result",
    "grade",
    "removal_date",
    "removal_reason",
]


def record_content_hash(stg: pd.DataFrame) -> pd.Series:
    """A 64-bit hash of what a record says (not where it came from): equal for a resend, different
    for a re-delivery that corrects it."""
    cols = stg.reindex(columns=RECORD_CONTENT)
    text = {}
    for c in RECORD_CONTENT:
        v = cols[c]
        if c.endswith("_date"):
            v = pd.to_datetime(v).dt.strftime("%Y-%m-%d")
        elif c == "amount_yuan":
            v = (
                pd.to_numeric(v, errors="coerce")
                .round(2)
                .map(lambda x: "" if pd.isna(x) else f"{x:.2f}")
            )
        text[c] = v.astype("string").fillna("")
    if not len(stg):
        return pd.util.hash_pandas_object(pd.Series([], dtype=str), index=False).astype("uint64")
    # Joined column by column (not row by row in Python), then hashed as Python strings: the
    # hashes stay those of the stored history.
    first, *rest = (text[c] for c in RECORD_CONTENT)
    joined = first.str.cat(rest, sep="\x1f").astype(object)
    return pd.util.hash_pandas_object(joined, index=False).astype("uint64")


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
        is_person = code.str.fullmatch(r"\d{17}[\dX]").fillna(False).to_numpy(
            dtype=bool
        ) & ~codes.valid_uscc(code.to_numpy(dtype=object))
        out["uscc"] = code.where(~is_person, pd.NA)
        out["id_number"] = code.where(is_person, pd.NA)
        out["subject_type"] = pd.Series(
            np.where(is_person, "natural", np.where(_is_individual(code), "individual", "legal")),
            index=f.index,
            dtype="string",
        ).where(code.notna(), pd.NA)
    else:
        out["uscc"] = codes.normalise_code(f["uscc"])
        out["id_number"] = codes.normalise_code(f["id_number"]) if "id_number" in f else pd.NA
        out["subject_type"] = _subject_type(
            f.get("subject_category", pd.Series(pd.NA, index=f.index)), out["uscc"]
        )
    out["subject_name"] = clean_text(f["subject_name"])
    out["legal_rep_name"] = clean_text(f["legal_rep_name"]) if "legal_rep_name" in f else pd.NA
    out["legal_rep_id_number"] = (
        codes.normalise_code(f["legal_rep_id_number"]) if "legal_rep_id_number" in f else pd.NA
    )
    if (
        lay == "tax_credit_rating"
    ):  # no document number on the list: tax year and grade name the record
        out["doc_number"] = (
            "纳税信用"
            + clean_text(f["rating_year"])
            + "年度"
            + clean_text(f["credit_grade"]).str.upper().str.removesuffix("级")
            + "级"
        )
    else:
        out["doc_number"] = clean_text(f["doc_number"])
    out["authority_name"] = clean_text(f["authority_name"]) if "authority_name" in f else pd.NA
    out["penalty_category"] = (
        clean_text(f["penalty_category"]) if "penalty_category" in f else pd.NA
    )
    out["inspection_result"] = (
        clean_text(f["inspection_result"]) if "inspection_result" in f else pd.NA
    )

    for src, dst in (
        ("decision_date", "decision_date"),
        ("publicity_end", "publicity_end_date"),
        ("listing_end", "publicity_end_date"),
        ("valid_to", "valid_to_date"),
        ("removal_date", "removal_date"),
    ):
        if src not in f and dst in out:
            continue  # two sources of one column (a listing's end is its publicity end)
        if src in f:
            d, d_bad = parse_dates(f[src])
            note_bad(d_bad, src)
        else:
            d = pd.Series(pd.NaT, index=f.index, dtype="datetime64[s]")
        out[dst] = d

    out["removal_reason"] = clean_text(f["removal_reason"]) if "removal_reason" in f else pd.NA
    out["grade"] = pd.Series(pd.NA, index=f.index, dtype="string")
    out["grade_basis"] = pd.Series(pd.NA, index=f.index, dtype="string")
    if lay == "sgs_penalty":
        fine, fine_bad = parse_amounts(f["fine_wan_yuan"], _max_amount(cat) / 10_000)
        note_bad(fine_bad, "fine_wan_yuan")
        out["amount_yuan"] = (fine * 10_000).round(2)
        # Graded by procedure and penalty type under the rules in force on the decision date;
        # "simplified" rows are excluded by the gate (Art. 18), not quarantined.
        graded = law.grade_penalties(
            out.assign(
                procedure=clean_text(f["procedure"]),
                provider_grade=clean_text(f["provider_grade"]),
                bad_values=bad,
            ),
            cat.doc,
        )
        out["grade"], out["grade_basis"] = graded["grade"], graded["grade_basis"]
        out["item_code"] = pd.Series(
            np.where(graded["grade"] == "severe", "PENALTY_SEVERE", "PENALTY_GENERAL"),
            index=f.index,
            dtype="string",
        )
    elif lay == "credit_record":
        amt, amt_bad = parse_amounts(f["amount_yuan"], _max_amount(cat))
        note_bad(amt_bad, "amount_yuan")
        out["amount_yuan"] = amt
        out["item_code"] = clean_text(f["item_code"]).str.upper()
    else:
        out["amount_yuan"] = pd.Series(np.nan, index=f.index, dtype="float64")
        if lay == "sgs_licence":
            out["item_code"] = pd.Series("LICENCE", index=f.index, dtype="string")
        elif lay == "court_dishonest_debtor":
            out["item_code"] = pd.Series("DISHONEST_DEBTOR", index=f.index, dtype="string")
        elif (
            lay == "tax_credit_rating"
        ):  # TAX_CREDIT_A; another grade is an item the catalogue must list
            grade = clean_text(f["credit_grade"]).str.upper().str.removesuffix("级")
            out["item_code"] = ("TAX_CREDIT_" + grade).astype("string")
        elif lay == "commitment_result":
            result = clean_text(f["check_result"])
            breached = result.str.contains("未履|违背|不履", regex=True)
            out["item_code"] = pd.Series(
                np.where(breached.fillna(False), "COMMITMENT_BREACH", "COMMITMENT_KEPT"),
                index=f.index,
                dtype="string",
            ).where(result.notna(), pd.NA)
        elif lay == "inspection_result":
            ok = out["inspection_result"].str.contains("未发现", regex=False)
            out["item_code"] = pd.Series(
                np.where(ok.fillna(False), "INSPECTION_PASS", "INSPECTION_FAIL"),
                index=f.index,
                dtype="string",
            ).where(out["inspection_result"].notna(), pd.NA)
        else:
            raise ValueError(f"stage_records: layout {lay} is not a record layout")
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    for c in ("uscc", "id_number", "legal_rep_name", "legal_rep_id_number", "removal_reason"):
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
    out["bad_values"] = pd.Series(
        np.where(reg_bad, "registered_date;", ""), index=f.index, dtype="string"
    )
    out["bad_values"] = out["bad_values"].mask(out["bad_values"] == "", pd.NA)
    return out[STG_ENTITY_COLUMNS].reset_index(drop=True)


CHANGE_OPS = {
    "更正": "correct",
    "撤销": "revoke",
    "异议申请": "objection_filed",
    "异议受理": "objection_filed",
    "异议标注": "objection",
    "异议办结": "objection_closed",
    "异议处理": "objection_closed",
    "信用修复": "repair",
}
STG_CHANGE_COLUMNS = [
    "source_file",
    "line_no",
    "provider",
    "delivered_on",
    "op",
    "doc_number",
    "subject_code",
    "item_code",
    "effective_date",
    "result",
    "new_decision_date",
    "new_publicity_end_date",
    "new_item_code",
    "new_grade",
    "new_amount_yuan",
    "new_subject_code",
    "new_removal_date",
    "assisted",
    "record_key",
    "bad_values",
]
GRADE_WORDS = {
    "轻微": "minor",
    "轻微失信": "minor",
    "一般": "general",
    "一般失信": "general",
    "严重": "severe",
    "严重失信": "severe",
}


def stage_changes(raw: RawFile, delivered_on: pd.Timestamp) -> pd.DataFrame:
    """Typed change rows (stg_change): one correction, revocation, objection or repair of one record."""
    f = raw.rows
    out = _provenance(raw, delivered_on)
    op_text = clean_text(f["op"])
    out["op"] = (
        op_text.map(CHANGE_OPS, na_action="ignore").astype("string").where(op_text.notna(), pd.NA)
    )
    out["op"] = out["op"].where(op_text.isna() | out["op"].notna(), "unknown:" + op_text)
    out["doc_number"] = clean_text(f["doc_number"])
    out["subject_code"] = codes.normalise_code(f["subject_code"])
    out["item_code"] = clean_text(f["item_code"]).str.upper()
    bad = pd.Series("", index=f.index, dtype="string")
    for col, src in (
        ("effective_date", "effective_date"),
        ("new_decision_date", "new_decision_date"),
        ("new_publicity_end_date", "new_publicity_end"),
        ("new_removal_date", "new_removal_date"),
    ):
        d, d_bad = parse_dates(f[src])
        out[col] = d
        bad = bad.where(~d_bad, bad + col + ";")
    out["result"] = clean_text(f["result"])
    out["new_item_code"] = clean_text(f["new_item_code"]).str.upper()
    grade_text = clean_text(f["new_grade"])
    out["new_grade"] = grade_text.map(GRADE_WORDS, na_action="ignore").astype("string")
    bad = bad.where(~(grade_text.notna() & out["new_grade"].isna()), bad + "new_grade;")
    amt, amt_bad = parse_amounts(f["new_amount_yuan"])
    out["new_amount_yuan"] = amt
    bad = bad.where(~amt_bad, bad + "new_amount_yuan;")
    out["new_subject_code"] = codes.normalise_code(f["new_subject_code"]).astype("string")
    assisted = clean_text(f["assisted"])
    out["assisted"] = assisted.isin(["是", "需要", "Y", "y", "1", "true", "True"]).to_numpy(
        dtype=bool
    )
    out["record_key"] = (
        out["doc_number"].fillna("") + "|" + out["subject_code"].fillna("")
    ).astype("string")
    out["bad_values"] = bad.mask(bad == "", pd.NA)
    return out[STG_CHANGE_COLUMNS].reset_index(drop=True)


def list_deliveries(
    landing: Path | str, as_of: pd.Timestamp
) -> list[tuple[Path, pd.Timestamp | None]]:
    """Entries under landing/<provider>/ delivered by the as-of date, in a stable order.

    Files whose names carry no delivery date are included (they count as delivered on the as-of
    date of the first run that sees them); files dated after the as-of date are left for later.
    The landing folder is a boundary: no symbolic link is followed, at any depth. A link (to a
    file or to a provider folder) or a folder inside a provider's folder is listed as it is, never
    entered, so that reading it is refused and logged with its reason.
    """
    landing = Path(landing)
    out = []
    if not landing.is_dir():
        return out

    def due(path: Path) -> tuple[Path, pd.Timestamp | None] | None:
        if path.name.endswith(".partial"):
            return None
        d = delivery_date(path.name)
        if d is not None and not pd.isna(d) and d > as_of:
            return None
        return path, (d if d is not None and not pd.isna(d) else None)

    with os.scandir(landing) as top:
        providers = sorted((e for e in top if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in providers:
        if entry.is_symlink():
            out.append((Path(entry.path), None))  # a linked provider folder: refused, not entered
            continue
        if not entry.is_dir(follow_symlinks=False):
            continue
        with os.scandir(entry.path) as inner:
            for item in sorted(inner, key=lambda e: e.name):
                hit = due(Path(item.path))
                if hit is not None:
                    out.append(hit)
    return out
    for prov_dir in sorted(
        p for p in landing.iterdir() if p.is_dir() and not p.name.startswith(".")
    ):
        for path in sorted(prov_dir.iterdir()):
            if not path.is_file() or path.name.endswith(".partial"):
                continue
            d = delivery_date(path.name)
            if d is not None and not pd.isna(d) and d > as_of:
                continue
            out.append((path, d if d is not None and not pd.isna(d) else None))
    return out
