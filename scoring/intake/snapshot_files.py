"""A night's full-snapshot files: which files are snapshots, each diffed as its staged chunks pass
(scoring.intake.snapshots), the rows it withdrew, and what the night records of it for the gate
(the guard, the counts) and for the commit (the next index).

A snapshot file is one of a provider whose registry entry declares the file's feed
``delivery: snapshot``. When one night receives several snapshots of the same series (the same
provider folder and file name but for its date: a catch-up after days without a night, or a held
snapshot followed by the provider's next one), only the latest-dated is diffed: a snapshot is the
provider's whole list as of its date, so the earlier ones are superseded (their rows excluded as
``snapshot_superseded``, counted, and neither applied nor guarded).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pyarrow as pa

from scoring.history.snapshot_index import write_candidate
from scoring.intake import snapshots as snap
from scoring.intake.ingest import DELIVERY_NAME
from scoring.intake.providers import SNAPSHOT, Registry

SNAPSHOT_KINDS = ("entities", "records")  # staged kinds a snapshot can be (changes are events)


def series(rel: str) -> tuple[str, str | None]:
    """(series, date) of a landing path: its folder and name without the leading date."""
    folder, _, name = rel.rpartition("/")
    m = DELIVERY_NAME.match(name)
    return (f"{folder}/{name[9:]}", m.group("date")) if m else (rel, None)


def superseded(rels: list[str]) -> dict[str, str]:
    """Each path a later-dated path of its series in the same night supersedes: path -> that one."""
    latest: dict[str, tuple[str, str]] = {}
    for rel in rels:
        key, day = series(rel)
        if day is not None and (key not in latest or day > latest[key][0]):
            latest[key] = (day, rel)
    out = {}
    for rel in rels:
        key, day = series(rel)
        if day is not None and latest[key][1] != rel:
            out[rel] = latest[key][1]
    return out


class SnapshotNight:
    """The snapshot files of one night. ``previous(provider, feed)``: the accepted index (an Arrow
    table) or None; ``stored(kind, keys)``: the latest stored rows of those keys (staged column
    names); ``out``: the run folder's place for the next indexes."""

    def __init__(
        self,
        registry: Registry,
        previous: Callable[[str, str], pa.Table | None],
        stored: Callable[[str, list[str]], pd.DataFrame],
        out: Path,
        landing_rels: list[str] | None = None,
    ):
        self.registry, self.previous, self.stored, self.out = registry, previous, stored, out
        # A backfill reads one file per run: the later snapshots it will load are in the landing.
        self.landing_rels = landing_rels
        self.superseded: dict[str, str] = {}
        self.entries: list[dict] = []
        self._open: dict[str, tuple[dict, snap.FileDiff | None]] = {}

    def begin(self, rels: list[str]) -> None:
        """The night's files, in reading order: which snapshots a later one supersedes."""
        self.superseded = superseded(self.landing_rels if self.landing_rels is not None else rels)

    def is_snapshot(self, provider: str, feed: str) -> bool:
        p = self.registry.by_id(provider)
        return p is not None and p.delivery(feed) == SNAPSHOT

    def start(self, rel: str, head, kind: str) -> None:
        """A file begins (``head``: its layout, provider; ``kind``: what its rows stage into)."""
        if kind not in SNAPSHOT_KINDS or not self.is_snapshot(head.provider, head.layout.feed):
            return
        entry = {
            "path": rel,
            "provider": head.provider,
            "feed": head.layout.feed,
            "kind": kind,
            "unchanged": 0,
            "rows": 0,
            "truncated": False,
            "superseded_by": self.superseded.get(rel),
        }
        if entry["superseded_by"]:
            self._open[rel] = (entry, None)
            return
        prev = self.previous(head.provider, head.layout.feed)
        index = snap.SnapshotIndex(prev) if prev is not None else snap.SnapshotIndex.empty()
        entry["previous_rows"] = index.n if prev is not None else None
        self._open[rel] = (entry, snap.FileDiff(kind, index))

    def on_chunk(self, rel: str, kind: str, frame: pd.DataFrame) -> pd.DataFrame:
        """A staged chunk of ``rel`` on its way to its table: only the rows to write come out."""
        if rel not in self._open:
            return frame
        entry, diff = self._open[rel]
        if kind == "held":  # the reader's verdicts on rows it could not parse
            entry["truncated"] |= snap.truncated(frame)
            return frame
        entry["rows"] += len(frame)
        if diff is None:  # superseded: nothing of it is applied
            return frame.iloc[0:0]
        return diff.chunk(frame)

    def finish(self, rel: str, received: int, delivered: pd.Timestamp) -> pd.DataFrame:
        """The file is read: its withdrawals (rows to write after its own), its entry recorded."""
        if rel not in self._open:
            return pd.DataFrame()
        entry, diff = self._open.pop(rel)
        entry["received"] = int(received)
        if diff is None:  # superseded: every row it staged is excluded
            entry.update(excluded=entry["rows"], staged=0, vanished=0, withdrawn=0, index=None)
            entry["hold"] = None
            self.entries.append(entry)
            return pd.DataFrame()
        keys = diff.vanished().to_pylist()
        stored = self.stored(entry["kind"], keys) if keys else pd.DataFrame()
        gone = snap.withdrawal_rows(entry["kind"], stored, rel, entry["provider"], delivered)
        nxt = diff.next_index()
        name = f"snapshots/{len(self.entries):05d}.parquet"
        write_candidate(self.out / name, nxt.table)
        prev = entry["previous_rows"]
        max_drop = self.registry.by_id(entry["provider"]).snapshot_max_drop()
        entry.update(
            max_drop=max_drop,
            unchanged=diff.unchanged,
            excluded=diff.unchanged,
            staged=entry["rows"] - diff.unchanged,
            vanished=len(keys),
            withdrawn=len(gone),
            index=name,
            index_rows=nxt.n,
            hold=snap.guard(prev or 0, int(received), len(keys), entry["truncated"], max_drop),
        )
        self.entries.append(entry)
        return gone

    def file_row(self, rel: str) -> dict:
        """What the file's landed_files row says of the snapshot (nothing: not a snapshot)."""
        e = next((e for e in self.entries if e["path"] == rel), None)
        if e is None:
            return {}
        if e["superseded_by"]:
            msg = f"snapshot superseded by {e['superseded_by']}: not applied (rows excluded)"
        else:
            msg = (
                f"snapshot: {e['unchanged']:,} unchanged (excluded, {snap.UNCHANGED_REASON}), "
                f"{e['staged']:,} new or changed, {e['withdrawn']:,} withdrawn"
                + ("" if e["previous_rows"] is not None else " (first snapshot: loaded whole)")
            )
        return {"excluded": e["excluded"], "withdrawn": e["withdrawn"], "message": msg}
