"""What the sampling DAG runs: the draws a new publication makes possible, and a plan (or the
ratio advisor) from its trigger form."""

from __future__ import annotations

from pathlib import Path

from scoring.history.store import Store
from scoring.sampling import plans
from scoring.sampling.rules import SamplingRefused


def draw_and_verify(store: Store) -> list[str]:
    """Draw every committed plan whose seed publication now exists; each draw must verify."""
    drawn = [r["plan_id"] for r in plans.draw_ready(store)]
    bad = [p for p in drawn if not plans.verify_plan(store, p)["verified"]]
    if bad:
        raise SamplingRefused(f"draws do not verify: {bad}")
    return drawn


def _ratios(form: dict) -> dict:
    return {t: form[f"ratio_{t}"] for t in "ABCD"}


def commit_from_form(store: Store, form: dict) -> str | None:
    """Commit the form's plan when asked to (``commit``); its plan id."""
    if not form.get("commit"):
        return None
    rec = plans.commit_plan(
        store,
        form["agency"],
        _ratios(form),
        period=form.get("period"),
        task=form["task"],
        approver=form.get("approver"),
        reason=form.get("reason"),
    )
    return rec["plan_id"]


def advice_path(store: Store, agency: str, period: str | None) -> Path:
    return store.home / "outbox" / agency / "sampling" / f"advice-{period or 'next'}.png"


def advise_from_form(store: Store, form: dict) -> dict | None:
    """The ratio advisor for the form's department, when committing or given a capacity; its
    chart goes beside the department's plans."""
    if not form.get("commit") and not form.get("capacity"):
        return None
    path = advice_path(store, form["agency"], form.get("period"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return plans.advise(
        store,
        form["agency"],
        form.get("capacity"),
        _ratios(form),
        period=form.get("period"),
        plot_path=path,
    )
