"""The gates of a night's full-snapshot files (scoring.intake.snapshot_files): the guard that holds
a snapshot for a person instead of applying it as mass withdrawals, and the counts a snapshot's
report line shows (rows unchanged since the previous snapshot, a snapshot superseded by a later
one of the same night).

The guard is a hard gate per file: a snapshot that is empty, truncated, or drops more than its
provider's ``snapshot_max_drop`` of the previous snapshot's rows stops the night like any hard gate
(its files held, nothing appended, the previous snapshot's index left in force; the held file is
read again by the next night). An operator who has checked it with the provider applies it with a
waiver: ``--waive snapshot_guard:<its path> --approver NAME --reason TEXT``.
"""

from __future__ import annotations

from scoring.intake.snapshots import SUPERSEDED_REASON, UNCHANGED_REASON
from scoring.quality.validate import GateResult

GUARD = "snapshot_guard"


def snapshot_gates(entries: list[dict]) -> list[GateResult]:
    """The gates of each snapshot file the night's ingest recorded."""
    gates = []
    for e in entries:
        if e.get("superseded_by"):
            gates.append(
                GateResult(
                    "snapshot_superseded",
                    e["path"],
                    False,
                    True,
                    observed=str(e["excluded"]),
                    threshold=f"a later snapshot of the night: {e['superseded_by']}",
                    message=SUPERSEDED_REASON,
                )
            )
            continue
        hold = e.get("hold")
        prev = e.get("previous_rows")
        gates.append(
            GateResult(
                GUARD,
                e["path"],
                True,
                not hold,
                observed=(
                    f"{e['received']:,} rows, {e['vanished']:,} of the previous {prev:,} vanished"
                    if prev is not None
                    else f"{e['received']:,} rows, first snapshot"
                ),
                threshold=f"not empty, not truncated, <= {e['max_drop']:.1%} withdrawn",
                message=(
                    f"held for a person: {hold}; the previous snapshot stays in force (apply it "
                    f"with --waive {GUARD}:{e['path']})"
                    if hold
                    else ""
                ),
            )
        )
        if e["unchanged"]:
            gates.append(
                GateResult(
                    UNCHANGED_REASON,
                    e["path"],
                    False,
                    True,
                    observed=str(e["unchanged"]),
                    threshold="rows as in the previous accepted snapshot",
                    message=f"{UNCHANGED_REASON}: excluded, not staged again",
                )
            )
    return gates
