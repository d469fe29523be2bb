"""The policy registry: the one record of which policy is in force from when, by whose approval.

Each entry is a policy document (kept whole, so a rerun a year later can load it), its hash, where
it came from (a file, a calibration candidate, the shipped seed), the date it applies from, the
approver, the reason, the diff it was approved on and when it was recorded. Entries are appended,
never edited; ``entry_id`` is the order of recording, so "the registry as a run knew it" is every
entry up to the highest id that run saw.

The shipped ``config/policy/history.yaml`` seeds a new store and is never written at run time.
A store promoted under the earlier two-file scheme (approved files appended to that yaml,
promoted candidates in ``$CREDIT_HOME/policy/history.json``) has both carried over when it is
migrated.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import sqlalchemy as sa

from scoring.common.config import CONFIG_DIR, canonical_json, content_hash, load_document
from scoring.history.store import policy_registry

POLICY_SEED = CONFIG_DIR / "policy" / "history.yaml"
SEED_ORIGIN = "shipped seed"
FIELDS = ("entry_id", "sha256", "origin", "policy", "effective_from", "approved_by", "reason")


class RegistryError(ValueError):
    """An old history entry that cannot be carried over; the message is one line naming why."""


# --------------------------------------------------------------------------- reading


def entries(conn, known_to: int | None = None) -> list[dict]:
    """Every entry in the order recorded (up to ``known_to``: the registry as a run knew it)."""
    q = sa.select(policy_registry).order_by(policy_registry.c.entry_id)
    if known_to is not None:
        q = q.where(policy_registry.c.entry_id <= int(known_to))
    return [_entry(r._mapping) for r in conn.execute(q)]


def _entry(row) -> dict:
    at = row["recorded_at"]
    if at is not None and at.tzinfo is None:  # SQLite hands back naive UTC
        at = at.replace(tzinfo=dt.UTC)
    return {
        "entry_id": int(row["entry_id"]),
        "sha256": row["sha256"],
        "origin": row["origin"],
        "policy": row["source"],
        "document": json.loads(row["document_json"]),
        "effective_from": row["effective_from"],
        "approved_by": row["approved_by"],
        "reason": row["reason"],
        "diff": json.loads(row["diff_json"]) if row["diff_json"] else None,
        "recorded_at": at.isoformat() if at is not None else None,
    }


def in_force_entry(registry: list[dict], as_of) -> dict:
    """The entry in force on a date: the latest effective_from on or before it (a later record
    wins a tie); before the first entry's date, the first entry (nothing older exists)."""
    if not registry:
        raise LookupError("the policy registry is empty")
    day = str(as_of)[:10]
    ordered = sorted(registry, key=lambda e: (e["effective_from"], e["entry_id"]))
    chosen = [e for e in ordered if e["effective_from"] <= day]
    return chosen[-1] if chosen else ordered[0]


def approval(entry: dict, registry: list[dict]) -> dict:
    """What a run manifest keeps of the entry it scored under (without the document itself), and
    how far it knew the registry, so a rerun as known then sees the same approvals."""
    out = {k: entry[k] for k in FIELDS}
    out["diff_id"] = (entry.get("diff") or {}).get("id")
    out["recorded_at"] = entry.get("recorded_at")
    out["registry_known_to"] = max(e["entry_id"] for e in registry)
    return out


# --------------------------------------------------------------------------- writing


def record(conn, entry: dict, recorded_at: dt.datetime | None) -> dict:
    """Append one approval; returns it as ``entries`` would."""
    doc = entry["document"]
    values = {
        "sha256": content_hash(doc),
        "origin": entry["origin"],
        "source": str(entry["policy"]),
        "document_json": canonical_json(doc),
        "effective_from": str(entry["effective_from"])[:10],
        "approved_by": str(entry["approved_by"]).strip(),
        "reason": str(entry["reason"]).strip(),
        "diff_json": canonical_json(entry["diff"]) if entry.get("diff") else None,
        "recorded_at": recorded_at,
    }
    new_id = conn.execute(policy_registry.insert().values(**values)).inserted_primary_key[0]
    row = conn.execute(sa.select(policy_registry).where(policy_registry.c.entry_id == new_id)).one()
    return _entry(row._mapping)


# --------------------------------------------------------------------------- the shipped seed


def seed_entries(path: Path | str = POLICY_SEED) -> list[dict]:
    """The shipped history as registry entries (numbered in file order, not recorded in any
    store): for callers with no store, such as the synthetic world's simulation."""
    out = []
    for i, e in enumerate(_yaml_history(Path(path)), start=1):
        out.append(_from_old(e, Path(path).parent, SEED_ORIGIN, i))
    return out


def _yaml_history(path: Path) -> list[dict]:
    return list(load_document(path)["history"])


def _from_old(e: dict, folder: Path, origin: str, entry_id: int | None = None) -> dict:
    """An entry of the earlier yaml/json histories, with its document loaded and hash checked."""
    name = str(e.get("policy", ""))
    try:
        doc = load_document(folder / name)
    except (OSError, ValueError) as exc:
        raise RegistryError(
            f"policy history: cannot read {folder / name}: {str(exc).splitlines()[0]}"
        ) from exc
    sha = content_hash(doc)
    if e.get("sha256") and e["sha256"] != sha:
        raise RegistryError(
            f"policy history: {name} does not match its approved hash {e['sha256'][:12]}"
        )
    diff = dict(e["diff"]) if e.get("diff") else None
    if diff and diff.get("file") and (folder / diff["file"]).exists():
        diff["body"] = json.loads((folder / diff["file"]).read_text(encoding="utf-8"))
    return {
        "entry_id": entry_id,
        "sha256": sha,
        "origin": origin,
        "policy": name,
        "document": doc,
        "effective_from": str(e["effective_from"])[:10],
        "approved_by": str(e.get("approved_by") or ""),
        "reason": str(e.get("reason") or ""),
        "diff": diff,
        "recorded_at": None,
    }


def seed_and_carry_over(conn, seed: Path | None, home: Path | None) -> int:
    """Fill a store's empty registry: the shipped seed's entries, then any entries an older
    store's yaml holds beyond them, then its promoted candidates ($CREDIT_HOME/policy/
    history.json), each in its own recorded order. Returns the number of entries written."""
    if conn.execute(sa.select(sa.func.count()).select_from(policy_registry)).scalar():
        return 0
    seed = Path(seed) if seed else POLICY_SEED
    shipped = {(e["sha256"], e["effective_from"]) for e in seed_entries(POLICY_SEED)}
    rows = []
    for e in _yaml_history(seed):
        r = _from_old(e, seed.parent, SEED_ORIGIN)
        if (r["sha256"], r["effective_from"]) not in shipped:
            r["origin"] = "file, carried over"
        rows.append(r)
    promoted = Path(home) / "policy" / "history.json" if home else None
    if promoted is not None and promoted.exists():
        for e in json.loads(promoted.read_text(encoding="utf-8")):
            rows.append(_from_old(e, promoted.parent, "candidate, carried over"))
    seen = set()
    for r in rows:
        key = (r["sha256"], r["effective_from"])
        if key not in seen:  # the same approval listed twice is one entry
            seen.add(key)
            record(conn, r, None)
    return len(seen)
