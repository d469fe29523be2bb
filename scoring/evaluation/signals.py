"""Policy signals: points for facts about an entity that are not one catalogue record each.

A policy may carry, beside its items, a ``signals`` section: each signal is a readable rule with
points in a dimension, like an item, but its value is computed from the register and the records
in force on the as-of date instead of counted:

- registration_age: 1 when the entity was registered at least ``from_months`` and less than
  ``under_months`` months before the as-of date (a registration-age band);
- legal_rep_changes: the number of changes of legal representative in the ``within_months``
  months before the as-of date (from the register's change history, 变更记录);
- arrears_cluster: 1 when records of at least ``min_kinds`` different ``items`` (arrears kinds)
  were decided in the ``within_months`` months before the as-of date and still count.

The hand-written policies (v1, v2) have no signals; learned candidates may (scoring/calibration).
One arithmetic here, used by the calibration and by the engine.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAYS_PER_MONTH = 30.4375
SIGNAL_KINDS = {
    "registration_age": {"from_months", "under_months"},
    "legal_rep_changes": {"within_months"},
    "arrears_cluster": {"within_months", "min_kinds", "items"},
}
RULE_KEYS = {"kind", "dimension", "points", "reason", "zh", "en"}


def policy_signals(policy_doc: dict) -> dict:
    """The policy's signals by id (empty for a policy without them), in id order."""
    return {k: policy_doc["signals"][k] for k in sorted(policy_doc.get("signals") or {})}


def check_signals(policy_doc: dict) -> None:
    """ValueError naming the first signal that cannot be computed or scored."""
    dims = {d["id"] for d in policy_doc["dimensions"]}
    for sid, spec in policy_signals(policy_doc).items():
        kind = spec.get("kind")
        if kind not in SIGNAL_KINDS:
            raise ValueError(
                f"policy signal {sid}: unknown kind {kind!r} (known: {', '.join(sorted(SIGNAL_KINDS))})"
            )
        missing = (SIGNAL_KINDS[kind] | {"dimension", "points"}) - set(spec)
        if missing:
            raise ValueError(f"policy signal {sid}: missing {sorted(missing)[0]!r}")
        extra = set(spec) - SIGNAL_KINDS[kind] - RULE_KEYS
        if extra:
            raise ValueError(f"policy signal {sid}: unknown key {sorted(extra)[0]!r}")
        if spec["dimension"] not in dims:
            raise ValueError(f"policy signal {sid}: unknown dimension {spec['dimension']}")
        if sid in policy_doc["items"]:
            raise ValueError(f"policy signal {sid}: the id is also an item")


def signal_values(
    signals: dict,
    as_day: np.ndarray,
    registered_day: np.ndarray,
    pairs: pd.DataFrame | None,
    rep_changes: pd.DataFrame | None,
) -> np.ndarray:
    """Values (rows x signals, in ``signals`` order) for rows evaluated on ``as_day`` (int days).

    registered_day: each row's registration day (int days). pairs: the records that count on the
    row's as-of day (row, item_code, age_days = as_day - decision day). rep_changes: (row, age_days)
    of the register's legal-representative changes dated on or before the row's as-of day; None
    when no register change history is delivered (a legal_rep_changes signal then cannot be
    computed: ValueError, never a silent zero)."""
    as_day = np.asarray(as_day, dtype=np.int64)
    n = len(as_day)
    out = np.zeros((n, len(signals)))
    for j, (sid, s) in enumerate(signals.items()):
        kind = s["kind"]
        if kind == "registration_age":
            age = (as_day - np.asarray(registered_day, dtype=np.int64)) / DAYS_PER_MONTH
            out[:, j] = (
                (age >= float(s["from_months"])) & (age < float(s["under_months"]))
            ).astype(float)
        elif kind == "legal_rep_changes":
            if rep_changes is None:
                raise ValueError(
                    f"policy signal {sid} needs the register's change history of legal "
                    "representatives (变更记录), which no feed delivers"
                )
            r = rep_changes[
                rep_changes["age_days"].to_numpy() < float(s["within_months"]) * DAYS_PER_MONTH
            ]
            out[:, j] = np.bincount(r["row"].to_numpy(np.int64), minlength=n)[:n]
        else:  # arrears_cluster
            if pairs is None or not len(pairs):
                continue
            p = pairs[
                pairs["item_code"].isin(list(s["items"])).to_numpy()
                & (pairs["age_days"].to_numpy() < float(s["within_months"]) * DAYS_PER_MONTH)
            ]
            kinds = p.drop_duplicates(["row", "item_code"])["row"].to_numpy(np.int64)
            out[:, j] = (np.bincount(kinds, minlength=n)[:n] >= int(s["min_kinds"])).astype(float)
    return out
