"""Records a night receives twice: a row repeating, unchanged, a record that an earlier file of
the same night carries (a pull made again from an unmoved watermark after a failed night; a file
sent twice under two names). The record is counted once; the repeat is excluded with its reason,
not quarantined as a duplicate. A repeat inside one file is still a duplicate (the provider's own
error), and a record sent again with other content is judged as a new version, as before."""

from __future__ import annotations

import pandas as pd

RESEND_REASON = "resend: the same record, unchanged, is in an earlier file of this night"


def split_resends(stg_rec: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows kept, repeats excluded with their reason) of staged records that already carry
    ``record_key`` and ``content_sha``; the first occurrence, in file order, is the one kept."""
    ident = ["record_key", "content_sha"]
    first = stg_rec.drop_duplicates(ident, keep="first").set_index(ident)["source_file"]
    origin = first.reindex(pd.MultiIndex.from_frame(stg_rec[ident])).to_numpy()
    resend = (
        stg_rec.duplicated(ident, keep="first")
        & stg_rec["record_key"].notna()
        & (pd.Series(origin, index=stg_rec.index) != stg_rec["source_file"])
    )
    work = [c for c in (*ident, "seen_before") if c in stg_rec]
    gone = stg_rec[resend].drop(columns=work).assign(reason=RESEND_REASON)
    return stg_rec[~resend].reset_index(drop=True), gone.reset_index(drop=True)


def split_earlier_resends(
    stg_rec: pd.DataFrame, earlier: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``split_resends`` against the records (``record_key``, ``content_sha``) of the night's
    earlier files that their own runs committed (a backfill loads a night file by file): the same
    record unchanged is excluded as a resend, and another version of it is marked seen, a
    duplicate, as it would be in one pass over the night."""
    if not len(stg_rec) or earlier is None or not len(earlier):
        return stg_rec, stg_rec.iloc[0:0].assign(reason=RESEND_REASON)
    pairs = pd.MultiIndex.from_frame(earlier[["record_key", "content_sha"]])
    again = pd.MultiIndex.from_frame(stg_rec[["record_key", "content_sha"]]).isin(pairs)
    again &= stg_rec["record_key"].notna().to_numpy()
    work = [c for c in ("record_key", "content_sha", "seen_before") if c in stg_rec]
    gone = stg_rec[again].drop(columns=work).assign(reason=RESEND_REASON)
    kept = stg_rec[~again].reset_index(drop=True)
    kept["seen_before"] = kept["seen_before"] | kept["record_key"].isin(earlier["record_key"])
    return kept, gone.reset_index(drop=True)


def count_excluded(files: pd.DataFrame, exc: pd.DataFrame) -> pd.DataFrame:
    """A copy of the night's files with ``simplified`` (excluded by Art. 18) per file, and the
    resends added to ``excluded`` (the file's repeats of an earlier delivery)."""
    resent = exc["reason"] == RESEND_REASON if len(exc) else pd.Series(dtype=bool)
    simple = exc.loc[~resent, "source_file"].value_counts() if len(exc) else pd.Series(dtype=int)
    again = exc.loc[resent, "source_file"].value_counts() if len(exc) else pd.Series(dtype=int)
    files = files.copy()
    files["simplified"] = files["path"].map(simple).fillna(0).astype(int)
    resends = files["path"].map(again).fillna(0).astype(int)
    base = files["excluded"] if "excluded" in files else 0
    files["excluded"] = (pd.Series(base, index=files.index).fillna(0) + resends).astype(int)
    return files
