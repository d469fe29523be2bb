"""The rights of the evaluated applied to the records known at a cutoff: corrections and
revocations (Art. 38), objections (Arts. 35, 39) and repairs (Art. 40)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionDtype, take

from scoring.common.law import (
    COURT_LISTING_ITEMS,
    PENALTY_GRADE_BY_ITEM,
    PENALTY_ITEM_BY_GRADE,
    SEVERE_LIST_ITEMS,
)
from scoring.evaluation.objections import objection_calendar

CORRECTABLE = {
    "new_decision_date": "decision_date",
    "new_publicity_end_date": "publicity_end_date",
    "new_item_code": "item_code",
    "new_grade": "grade",
    "new_amount_yuan": "amount_yuan",
    "new_removal_date": "removal_date",
}


class KeyLookup:
    """Each record's place among the keys its changes name, found once: every later lookup by
    key (a dozen per partition) costs the size of the changes, not of the records (a partition
    holds about a million records and a few tens of thousands of changed ones)."""

    def __init__(self, keys: pd.Series, among: pd.Series):
        # Arrow's hash lookups on the text itself: no Python string made per record.
        unique = pd.unique(among.to_numpy(dtype=object))
        self._among = _arrow_text(unique)
        self._place = self._index_in(
            pc.cast(pa.array(keys.astype("string[pyarrow]").array), pa.large_string())
        )
        self._keys = keys

    def _index_in(self, text) -> np.ndarray:
        found = pc.index_in(text, value_set=self._among)
        return pc.fill_null(found, -1).to_numpy().astype(np.intp)

    def _places(self, index) -> np.ndarray | None:
        """Places of ``index``'s keys among the changes' keys; None when one is not among them."""
        pos = self._index_in(_arrow_text(index))
        return None if (pos < 0).any() else pos

    def __call__(self, values: pd.Series) -> np.ndarray:
        """``values`` (indexed by record key) for each record, as ``values.reindex(keys)`` gives
        them: a key not among them gives the dtype's NA (bool and int promoted as reindex does)."""
        pos = self._places(values.index) if values.index.is_unique else None
        if pos is None:
            return values.reindex(self._keys.to_numpy()).to_numpy()
        where = np.full(len(self._among) + 1, -1, dtype=np.intp)  # the last: a record unnamed
        where[pos] = np.arange(len(pos))
        idx = where[self._place]
        if isinstance(values.dtype, ExtensionDtype):
            return values.array.take(idx, allow_fill=True).to_numpy()
        return take(values.to_numpy(), idx, allow_fill=True)

    def isin(self, keys) -> np.ndarray:
        """Per record whether its key is among ``keys``, as ``Series.isin`` says."""
        pos = self._places(pd.unique(np.asarray(keys, dtype=object)))
        if pos is None:
            return self._keys.isin(set(keys)).to_numpy()
        mark = np.zeros(len(self._among) + 1, dtype=bool)
        mark[pos] = True
        return mark[self._place]

    def named(self) -> np.ndarray:
        """Per record whether any change names its key."""
        return self._place >= 0


def _arrow_text(values) -> pa.Array:
    return pa.array(np.asarray(values, dtype=object), type=pa.large_string(), from_pandas=True)


OBJECTION_COLUMNS = {
    "objection_state": "string",
    "objection_received": "datetime64[s]",
    "objection_due": "datetime64[s]",
    "objection_decided": "datetime64[s]",
    "objection_calendar_unknown": "bool",
}


def apply_changes(records: pd.DataFrame, changes: pd.DataFrame, as_of) -> pd.DataFrame:
    """Apply the corrections, revocations, objections and repairs known at the cutoff.

    ``changes`` holds only what was known by the cutoff, so the as-known-then view is the old one.
    A correction (Art. 38) replaces any field it carries -- item, grade, amount, dates, subject --
    and a revocation withdraws the record, both from when they were learned, whatever the as-of
    date; a repair applies from its date. An objection (Arts. 35, 39) only MARKS the record: it
    keeps counting while pending (objection_pending, with its state, receipt and due date); an
    upheld decision without a correction withdraws it from the decision's effective date; a
    rejected one changes nothing; an objection to a court listing is referred to the court and
    never withdraws it. Adds: status, corrected, repaired_date, objection_pending and
    OBJECTION_COLUMNS.
    """
    r = records.copy(deep=False)  # copy-on-write: the caller's frame is never modified
    r["status"] = "active"
    r["corrected"] = False
    r["repaired_date"] = pd.Series(pd.NaT, index=r.index, dtype="datetime64[s]")
    r["objection_pending"] = False
    for col, dtype in OBJECTION_COLUMNS.items():
        r[col] = pd.Series(False if dtype == "bool" else None, index=r.index, dtype=dtype)
    if changes is None or changes.empty or r.empty:
        return r
    order = [
        c for c in ("known_from", "batch_id", "source_file", "line_no") if c in changes.columns
    ]
    ch = changes.sort_values(order, kind="stable")
    key = r["record_key"]
    by_key = KeyLookup(key, ch["record_key"])
    r.loc[by_key.isin(ch.loc[ch["op"] == "revoke", "record_key"]), "status"] = "revoked"
    cor = ch[ch["op"] == "correct"]
    if len(cor):
        _apply_corrections(r, cor, by_key)
    rep = ch[ch["op"] == "repair"].groupby("record_key")["effective_date"].min()
    r["repaired_date"] = pd.to_datetime(
        pd.Series(by_key(pd.to_datetime(rep)), index=r.index)
    ).astype("datetime64[s]")
    _apply_objections(r, ch, as_of, by_key)
    return r


def _apply_corrections(r: pd.DataFrame, cor: pd.DataFrame, by_key: KeyLookup) -> None:
    """Each field a correction carries replaces the record's (the latest correction wins)."""
    for new, col in CORRECTABLE.items():
        if new not in cor:
            continue
        latest = (
            cor[cor[new].notna()].drop_duplicates("record_key", keep="last").set_index("record_key")
        )[new]
        if latest.empty:
            continue
        v = pd.Series(by_key(latest), index=r.index)
        if col.endswith("_date"):
            old = pd.to_datetime(r[col]) if col in r else pd.Series(pd.NaT, index=r.index)
            r[col] = old.where(v.isna(), pd.to_datetime(v)).astype("datetime64[s]")
        else:
            old = r[col] if col in r else pd.Series(pd.NA, index=r.index, dtype=v.dtype)
            r[col] = old.where(v.isna(), v)
    _align_penalty_grade(r, cor, by_key)
    if "new_subject_code" in cor:
        latest = cor[cor["new_subject_code"].notna()].drop_duplicates("record_key", keep="last")
        v = pd.Series(
            by_key(latest.set_index("record_key")["new_subject_code"]),
            index=r.index,
            dtype="string",
        )
        person = v.str.fullmatch(r"\d{17}[\dX]").fillna(False) & (
            r["subject_type"] == "natural"
        ).fillna(False)
        r["uscc"] = r["uscc"].astype("string").where(v.isna() | person, v)
        if "id_number" in r:
            r["id_number"] = r["id_number"].astype("string").where(~person, v)
    r["corrected"] = by_key.isin(cor["record_key"])


def _align_penalty_grade(r: pd.DataFrame, cor: pd.DataFrame, by_key: KeyLookup) -> None:
    """One fact, one answer: a correction of the grade moves a penalty to the item of that grade,
    and a correction of the item (without a grade) gives it the item's grade, so a record
    corrected to severe either way is scored, capped and published as severe."""
    item = r["item_code"].astype("string")
    penalty = item.isin(list(PENALTY_GRADE_BY_ITEM)).fillna(False).to_numpy()
    said = lambda c: (  # noqa: E731
        by_key.isin(cor.loc[cor[c].notna(), "record_key"]) if c in cor else by_key.isin([])
    )
    by_grade = penalty & said("new_grade")
    if by_grade.any():
        g = r["grade"].astype("string")
        r.loc[by_grade, "item_code"] = g[by_grade].map(PENALTY_ITEM_BY_GRADE).fillna(item[by_grade])
    by_item = penalty & said("new_item_code") & ~by_grade
    if by_item.any():
        r["grade"] = r["grade"].astype("string") if "grade" in r else pd.NA
        r.loc[by_item, "grade"] = item[by_item].map(PENALTY_GRADE_BY_ITEM)


def _apply_objections(r: pd.DataFrame, ch: pd.DataFrame, as_of, by_key: KeyLookup) -> None:
    key = r["record_key"]
    items = r["item_code"].astype("string")
    # The calendar asks only about keys with changes: the severe and court sets need no others.
    changed = by_key.named()
    cal = objection_calendar(
        ch,
        as_of,
        severe_keys=set(
            key[changed & items.isin(SEVERE_LIST_ITEMS).fillna(False).to_numpy(dtype=bool)]
        ),
        court_keys=set(
            key[changed & items.isin(COURT_LISTING_ITEMS).fillna(False).to_numpy(dtype=bool)]
        ),
    ).set_index("record_key")
    if not len(cal):
        return
    state = pd.Series(by_key(cal["state"]), index=r.index, dtype="string")
    r["objection_state"] = state
    r["objection_pending"] = state.isin(["pending", "overdue", "referred"]).to_numpy()
    r["objection_received"] = pd.Series(by_key(cal["received"]), index=r.index).astype(
        "datetime64[s]"
    )
    r["objection_due"] = pd.Series(by_key(cal["decision_due"]), index=r.index).astype(
        "datetime64[s]"
    )
    r["objection_decided"] = pd.Series(by_key(cal["decided"]), index=r.index).astype(
        "datetime64[s]"
    )
    unknown = pd.Series(by_key(cal["calendar_unknown"]), index=r.index)
    r["objection_calendar_unknown"] = unknown.fillna(False).astype(bool)
    withdrawn = (state == "upheld").fillna(False).to_numpy() & ~r["corrected"].to_numpy(dtype=bool)
    r.loc[withdrawn & (r["status"] == "active").to_numpy(), "status"] = "objection_upheld"
