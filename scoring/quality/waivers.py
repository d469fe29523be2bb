"""Operator waivers: one named hard gate, for one run, by a named approver, for a stated reason.

A failed hard gate stops the run before publication. An operator who knows why (a provider
announced an outage; the court's feed is down for maintenance) can waive that one gate for that
one run: ``--waive feed_present:court --approver NAME --reason TEXT``. A waiver is never implicit
(it names the gate and its scope, and needs an approver and a reason) and never permanent (it
lives in the run's context and manifest only; the next run has none unless given again). The gate
result stays "failed" with the waiver noted, and the report shows it on its first screen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

# Gates an operator may waive; the others protect the data itself (rows unaccounted for, a
# broken score contract) and no approval makes them safe.
WAIVABLE = ("feed_present", "row_count", "quarantine_share", "schema", "snapshot_guard")


class WaiverError(ValueError):
    """A waiver that cannot be accepted; the message is one line for the operator."""


@dataclass(frozen=True)
class Waiver:
    gate: str
    scope: str  # a gate scope ("court/dishonest_debtor") or its first part ("court")
    approver: str
    reason: str

    def covers(self, gate: str, scope: str) -> bool:
        return gate == self.gate and (scope == self.scope or scope.startswith(self.scope + "/"))

    def label(self) -> str:
        return f"{self.gate}:{self.scope}"

    def as_dict(self) -> dict:
        return asdict(self)


def parse_waiver(spec: str, approver: str | None, reason: str | None) -> Waiver:
    gate, sep, scope = (spec or "").partition(":")
    gate, scope = gate.strip(), scope.strip()
    if not sep or not gate or not scope:
        raise WaiverError(f"waiver {spec!r}: name one gate and its scope, e.g. feed_present:court")
    if gate not in WAIVABLE:
        raise WaiverError(
            f"waiver {spec!r}: gate {gate!r} cannot be waived (waivable: {', '.join(WAIVABLE)})"
        )
    if not (approver or "").strip():
        raise WaiverError(f"waiver {spec!r} needs --approver NAME (who approved it)")
    if not (reason or "").strip():
        raise WaiverError(
            f"waiver {spec!r} needs --reason TEXT (why the gate may be waived for this run)"
        )
    return Waiver(gate=gate, scope=scope, approver=approver.strip(), reason=reason.strip())


def from_dicts(items) -> tuple[Waiver, ...]:
    return tuple(
        Waiver(**{k: d[k] for k in ("gate", "scope", "approver", "reason")}) for d in (items or ())
    )


def apply_waivers(gates: list, waivers: tuple[Waiver, ...]) -> tuple[list, list[dict]]:
    """Split failed hard gates into (still failing, waived). Returns the failing gates and, per
    waiver, what it covered this run. A waiver is for a gate that failed: one that covers no
    failed gate is recorded as covering nothing and stops the run like a failed gate of its own
    (an approval of nothing is a mistake to correct, not a permission to keep)."""
    failing, used = [], {w: [] for w in waivers}
    for g in gates:
        if not (g.hard and not g.passed):
            continue
        w = next((w for w in waivers if w.covers(g.gate, g.scope)), None)
        if w is None:
            failing.append(g)
        else:
            used[w].append(g.scope)
            g.waiver = f"WAIVED by {w.approver}: {w.reason}"
    record = [{**w.as_dict(), "covered": sorted(scopes)} for w, scopes in used.items()]
    for w, scopes in used.items():
        if not scopes:
            failing.append(_unused(w))
    return failing, record


def _unused(w: Waiver):
    from scoring.quality.validate import GateResult

    return GateResult(
        "waiver",
        w.label(),
        True,
        False,
        observed="covers no failed gate",
        threshold="a waiver is for a gate that failed",
        message=f"waiver {w.label()} covers no failed gate: run again without it",
    )
