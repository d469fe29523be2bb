"""The run context: what a run is (night, attempt, folders, versions, waivers), the only thing the
steps pass each other, and its JSON (what an orchestrator passes between tasks).

A context is made from the environment (``context_from_env``) and, for a scheduled night, cut at
its own arrival time (``scheduled``): ``run_nights`` and the nightly DAG's trigger
(``context_for_trigger``) both go through ``scheduled``, so a night is the same night either way.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from scoring.history.store import default_home
from scoring.intake.arrivals import SHANGHAI, nightly_arrival_cut
from scoring.publication import nights
from scoring.quality.waivers import parse_waiver

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    as_of: dt.date
    landing: Path
    home: Path
    db_url: str | None = None
    knowledge_cutoff: dt.date | None = None
    catalogue_path: Path | None = None  # None: the catalogue in force on the as-of date
    policy_path: Path | None = None  # None: the policy in force on the as-of date
    kind: str = "nightly"
    # Catch-up and scheduled runs read only files that had landed when the night's run was due
    # (scoring.intake.arrivals.nightly_arrival_cut); None: whatever is in the landing folder now.
    arrival_cut: dt.datetime | None = None
    # Operator waivers for this run only: dicts with gate, scope, approver, reason (quality.waivers).
    waivers: tuple = ()
    attempt: int = 1  # >1: a re-run of a published night, built beside it
    # Entity-hash partitions the evaluation is cut into (None: CREDIT_PARTITIONS, else by size).
    # Any count gives the same results; it only bounds the memory of each piece.
    partitions: int | None = None
    progress: Callable[[str], None] | None = field(default=None, repr=False)

    def __post_init__(self):
        self.as_of = as_date(self.as_of)
        if isinstance(self.arrival_cut, str):
            self.arrival_cut = dt.datetime.fromisoformat(self.arrival_cut)
        self.waivers = tuple(
            w.as_dict() if hasattr(w, "as_dict") else dict(w) for w in (self.waivers or ())
        )
        self.knowledge_cutoff = as_date(self.knowledge_cutoff or self.as_of)
        self.landing = Path(self.landing).resolve()
        self.home = Path(self.home).resolve()
        self.attempt = int(self.attempt or 1)
        self.partitions = int(self.partitions or os.environ.get("CREDIT_PARTITIONS") or 0) or None

    @property
    def night_id(self) -> str:
        """The night this run evaluates (as-of date, knowledge cutoff), whatever the attempt."""
        rid = f"{self.kind}-{self.as_of:%Y%m%d}"
        if self.knowledge_cutoff != self.as_of:
            rid += f"-k{self.knowledge_cutoff:%Y%m%d}"
        return rid

    @property
    def run_id(self) -> str:
        return nights.run_id_for(self.night_id, self.attempt)

    def say(self, msg: str) -> None:
        log.info(msg)
        if self.progress:
            self.progress(msg)

    def to_json(self) -> str:
        """The context as a small JSON document (what an orchestrator passes between tasks)."""
        d = {
            k: (str(v) if v is not None else None)
            for k, v in asdict(self).items()
            if k not in ("progress", "waivers", "arrival_cut")
        }
        d["arrival_cut"] = self.arrival_cut.isoformat() if self.arrival_cut else None
        d["waivers"] = list(self.waivers)
        return json.dumps(d, sort_keys=True, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> RunContext:
        d = json.loads(text)
        return cls(
            as_of=d["as_of"],
            landing=Path(d["landing"]),
            home=Path(d["home"]),
            db_url=d.get("db_url"),
            knowledge_cutoff=d.get("knowledge_cutoff"),
            catalogue_path=Path(d["catalogue_path"]) if d.get("catalogue_path") else None,
            policy_path=Path(d["policy_path"]) if d.get("policy_path") else None,
            kind=d.get("kind", "nightly"),
            arrival_cut=d.get("arrival_cut"),
            waivers=tuple(d.get("waivers") or ()),
            attempt=int(d.get("attempt") or 1),
            partitions=d.get("partitions"),
        )


def as_date(v) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v))


def context_from_env(as_of, **overrides) -> RunContext:
    """Defaults for orchestrators: CREDIT_HOME, CREDIT_LANDING, CREDIT_DB_URL."""
    home = Path(overrides.pop("home", None) or default_home())
    landing = overrides.pop("landing", None) or os.environ.get("CREDIT_LANDING") or home / "landing"
    db_url = overrides.pop("db_url", None) or os.environ.get("CREDIT_DB_URL")
    return RunContext(as_of=as_of, landing=Path(landing), home=home, db_url=db_url, **overrides)


def scheduled(ctx: RunContext) -> RunContext:
    """A night run on its schedule (or catching up on it) reads only the files that had landed
    when its run was due, so a late file is known from the night it arrived."""
    ctx.arrival_cut = nightly_arrival_cut(ctx.as_of)
    return ctx


def night_before(moment: dt.datetime) -> dt.date:
    """The night a run at ``moment`` evaluates: the day before, Asia/Shanghai."""
    return moment.astimezone(SHANGHAI).date() - dt.timedelta(days=1)


def context_for_trigger(
    params: dict, logical_date: dt.datetime | None, run_after: dt.datetime | None
) -> RunContext:
    """The context of a DAG run from its trigger form: an as-of date given, or the night before
    its logical date (a scheduled night, cut at its arrival time), or, triggered without one, the
    night before its trigger time. Empty fields fall back to the environment."""
    overrides = {k: params[k] for k in ("landing", "db_url", "home") if params.get(k)}
    if params.get("partitions"):
        overrides["partitions"] = int(params["partitions"])
    if params.get("waive"):
        waiver = parse_waiver(params["waive"], params.get("approver"), params.get("reason"))
        overrides["waivers"] = (waiver.as_dict(),)
    if params.get("as_of"):
        return context_from_env(params["as_of"], **overrides)
    if logical_date is not None:
        return scheduled(context_from_env(night_before(logical_date).isoformat(), **overrides))
    return context_from_env(night_before(run_after).isoformat(), **overrides)
