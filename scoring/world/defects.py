"""Defects injected into the deliveries at a known rate, each labelled with the reason the gate
should give (the ground truth of the quality checks)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scoring.common import codes
from scoring.intake.ingest import parse_dates

# --------------------------------------------------------------------------- defects


CODE_COLUMNS = (
    "行政相对人代码_1(统一社会信用代码)",
    "统一社会信用代码",
    "统一社会信用代码/身份证号码",
    "纳税人识别号",
)
DATE_COLUMNS = (
    "处罚决定日期",
    "许可决定日期",
    "发布时间",
    "认定日期",
    "检查日期",
    "成立日期",
    "核查日期",
    "发布日期",
)
# The mandatory field a missing_field defect empties, per layout.
MANDATORY = {
    "sgs_penalty": "行政处罚决定书文号",
    "sgs_licence": "行政相对人名称",
    "court_dishonest_debtor": "案号",
    "credit_record": "文书编号",
    "inspection_result": "检查对象名称",
    "entity_register": "主体名称",
    "commitment_result": "核查编号",
    "tax_credit_rating": "纳税人名称",
}


def inject_defects(
    frame: pd.DataFrame, layout_id: str, rate: float, rng, delivered_on: pd.Timestamp
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (frame with defects, labels[row_index, defect]) — row_index is the position in the output."""
    n = len(frame)
    if n == 0 or rate <= 0:
        return frame, pd.DataFrame(
            {"row_index": pd.Series([], dtype=int), "defect": pd.Series([], dtype=str)}
        )
    kinds = ["bad_check_digit", "future_date", "duplicate", "missing_field"]
    if layout_id == "credit_record":
        kinds.append("unknown_item")
    if layout_id == "sgs_penalty":
        kinds.append("simplified_procedure")
    if layout_id == "entity_register":
        kinds = ["bad_check_digit", "missing_field", "duplicate"]
    hit = np.flatnonzero(rng.random(n) < rate)
    kind = np.array(kinds)[rng.integers(0, len(kinds), len(hit))]
    f = frame.copy()
    cols = list(f.columns)
    code_col = next((c for c in CODE_COLUMNS if c in cols), None)
    date_col = next(c for c in DATE_COLUMNS if c in cols)
    mandatory = MANDATORY[layout_id]
    labels = []
    for i, k in zip(hit, kind):
        label = _apply(f, i, k, cols, code_col, date_col, mandatory, rng, delivered_on)
        if label is not None:
            labels.append((i, label))
    lab = pd.DataFrame(labels, columns=["row_index", "defect"])
    return _with_duplicates(f, lab, n)


def _apply(f, i, k, cols, code_col, date_col, mandatory, rng, delivered_on) -> str | None:
    """Put defect ``k`` into row ``i`` of ``f`` (in place); the label, or None where it does not
    apply (a simplified-procedure fine for a natural person)."""
    if k == "bad_check_digit":
        if f.at[i, "行政相对人类别"] == "自然人" if "行政相对人类别" in cols else False:
            v = str(f.at[i, "证件号码"]).strip()
            last = v[-1]
            f.at[i, "证件号码"] = v[:-1] + ("0" if last != "0" else "1")
            return "bad_check_digit"
        v = str(f.at[i, code_col]).strip().upper()
        alphabet = codes.USCC_ALPHABET
        new_last = alphabet[(alphabet.index(v[-1]) + 1 + int(rng.integers(0, 29))) % 31]
        f.at[i, code_col] = v[:-1] + new_last
    elif k == "unknown_item":
        f.at[i, "信息项编码"] = "UNLISTED_ITEM_" + str(int(rng.integers(1, 99)))
    elif k == "simplified_procedure":
        if f.at[i, "行政相对人类别"] == "自然人":
            return None
        f.at[i, "处罚类别"] = "罚款"
        f.at[i, "罚款金额（万元）"] = f"{rng.integers(1, 30) / 100:.2f}"
        dec, _ = parse_dates(pd.Series([f.at[i, "处罚决定日期"]]))
        if not pd.isna(dec.iloc[0]):
            f.at[i, "公示截止期"] = (dec.iloc[0] + pd.DateOffset(months=3)).strftime("%Y-%m-%d")
    elif k == "future_date":
        d = delivered_on + pd.Timedelta(days=int(rng.integers(30, 400)))
        f.at[i, date_col] = d.strftime("%Y-%m-%d")
        for end_col in ("公示截止期", "公示截止日期", "有效期至"):
            if end_col in cols and f.at[i, end_col]:
                f.at[i, end_col] = (d + pd.DateOffset(months=12)).strftime("%Y-%m-%d")
    elif k == "missing_field":
        f.at[i, mandatory] = ""
    return k


def _with_duplicates(f: pd.DataFrame, lab: pd.DataFrame, n: int):
    """Duplicates are extra copies appended right after their original."""
    dup_src = lab.loc[lab["defect"] == "duplicate", "row_index"].to_numpy()
    lab = lab[lab["defect"] != "duplicate"]
    if len(dup_src):
        order = np.concatenate([np.arange(n), dup_src + 0.5])
        pos = np.argsort(order, kind="stable")
        f = pd.concat([f, f.iloc[dup_src]], ignore_index=True).iloc[pos].reset_index(drop=True)
        new_index = np.empty(len(pos), dtype=int)
        new_index[pos] = np.arange(len(pos))
        lab = pd.DataFrame(
            {
                "row_index": new_index[lab["row_index"].to_numpy()],
                "defect": lab["defect"].to_numpy(),
            }
        )
        lab = pd.concat(
            [lab, pd.DataFrame({"row_index": new_index[n:], "defect": "duplicate"})],
            ignore_index=True,
        )
    return f, lab.sort_values("row_index", ignore_index=True)
