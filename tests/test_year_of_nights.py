"""Night after night: consecutive scheduled nights of a small province through
the real pipeline (`pipeline.run_night`, what `credit run` and every DAG task call; the waiver and
the catch-up through the `credit` command itself), with the 2026 working-day calendar (New Year,
the adjusted Sunday 4 January, the Spring Festival 15-23 February and the adjusted Saturdays 14 and
28 February): providers deliver on working days only, at 18:00 Asia/Shanghai.

In the span: the court goes silent for six working days (the freshness gate stops the nights it
must, an operator's waiver lets each through, the next night without one fails again), a file for
3 February lands on 6 February, a provider re-sends a file's bytes under a new name, another
corrects a file under its name, and the scheduler is down for five nights and then catches up.

Every night: received = accepted + quarantined + excluded (+ simplified procedure) per file, and
the accepted rows are the rows stored; what agencies see agrees with the run's state; a quiet night
publishes; every tier change since the last published night is explained (a record event, or the
date moving over the same records: decay, a period ending; or a new policy). The audit rerun of
every 30th night is byte-identical. At the end every file that landed is accounted for.

CI runs six weeks (2 February - 15 March, 42 nights); CREDIT_NIGHTS=year runs all 365 nights of 2026.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import os
import shutil
import time
from pathlib import Path

import chinese_calendar
import pandas as pd
import pytest
import sqlalchemy as sa
from conftest import run_cli

from scoring import pipeline
from scoring.intake.arrivals import SHANGHAI, nightly_arrival_cut, set_arrival

ENTITIES, SEED = 400, 11
# CI: six weeks around the Spring Festival (42 nights); CREDIT_NIGHTS=year: every night of 2026.
SPANS = {"ci": ("2026-02-02", "2026-03-15"), "year": ("2026-01-01", "2026-12-31")}
SPAN = os.environ.get("CREDIT_NIGHTS", "ci")
D = dt.date.fromisoformat

SILENT = (
    "court",
    D("2026-02-04"),
    D("2026-02-11"),
)  # the court delivers nothing these working days...
RESUMES = D("2026-02-12")  # ...and sends the backlog with this day's files
# Last court delivery 3 February; allowed 1 + 3 working days: the 5th and 6th working days fail.
GATE_FAILS = [D("2026-02-10"), D("2026-02-11")]
LATE_FROM = D(
    "2026-03-02"
)  # the first file with rows named from this day lands three days after its date
MISSED = [
    D("2026-02-24") + dt.timedelta(days=i) for i in range(5)
]  # scheduler down; back on 1 March
CATCH_UP = D("2026-03-01")
RESEND = D("2026-03-10")  # a recent file's bytes under today's name
CORRECTION = D("2026-03-12")  # an earlier file corrected under its own name
WAIVER = {
    "gate": "feed_present",
    "scope": "court",
    "approver": "王敏 (duty officer)",
    "reason": "court IT outage, ticket 4711: nothing to deliver",
}


def _at(day: dt.date, hour: int = 18) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=SHANGHAI)


def _days(first: dt.date, last: dt.date):
    while first <= last:
        yield first
        first += dt.timedelta(days=1)


class Province:
    """The providers' side: every file they will send, and when it lands in the landing folder."""

    def __init__(self, root: Path, first: dt.date, last: dt.date):
        from scoring.world.province import build_world, write_deliveries

        self.gen, self.landing = root / "generated", root / "landing"
        self.landing.mkdir(parents=True)
        world = build_world(ENTITIES, SEED)
        self.arrivals: dict[str, dt.datetime] = {}  # relative path -> when it lands
        self.extra: list[
            tuple[dt.datetime, str, bytes]
        ] = []  # (when, path, bytes): re-sends, corrections
        self.landed: dict[str, dt.datetime] = {}
        days = [first] + [
            d for d in _days(first + dt.timedelta(days=1), last) if chinese_calendar.is_workday(d)
        ]
        for day in days:  # the first night brings the history up to go-live
            write_deliveries(self.gen, day, n_entities=ENTITIES, seed=SEED, prebuilt=world)
        for p in sorted((self.gen / "landing").glob("*/*")):
            rel = p.relative_to(self.gen / "landing").as_posix()
            named = D(f"{p.name[:4]}-{p.name[4:6]}-{p.name[6:8]}")
            prov = rel.split("/")[0]
            if prov == SILENT[0] and SILENT[1] <= named <= SILENT[2]:
                self.arrivals[rel] = _at(RESUMES)
            else:
                self.arrivals[rel] = _at(named)
        # Not a court file: its civil judgments count only with a department's finding (Art. 27),
        # so it may change no score, and the as-known-now rerun must name the late file.
        self.late = self._busiest(
            LATE_FROM, LATE_FROM + dt.timedelta(days=10), first=True, skip="court/"
        )
        named = self.named(self.late)
        self.late_days = (named, named + dt.timedelta(days=3))
        self.arrivals[self.late] = _at(self.late_days[1])

    @staticmethod
    def named(rel: str) -> dt.date:
        name = rel.split("/")[1]
        return D(f"{name[:4]}-{name[4:6]}-{name[6:8]}")

    def _busiest(self, lo: dt.date, hi: dt.date, column=None, first=False, skip=None) -> str:
        """The provider CSV file named in [lo, hi] with most rows (never the register or change
        feed); ``first``: on the earliest day that has one."""
        best = None
        for rel in sorted(self.arrivals, key=lambda r: (self.named(r), r)):
            named = self.named(rel)
            if best is not None and first and named > self.named(best[1]):
                break
            if not lo <= named <= hi or "register" in rel or "credit_change" in rel:
                continue
            if skip and rel.startswith(skip):
                continue
            if not rel.endswith(".csv"):
                continue
            frame = self.read(rel)
            if column and not any(column in c for c in frame.columns):
                continue
            if len(frame) and (best is None or len(frame) > best[0]):
                best = (len(frame), rel)
        assert best, f"no file with rows named {lo}..{hi}"
        return best[1]

    def read(self, rel: str) -> pd.DataFrame:
        path = self.gen / "landing" / rel
        if not path.stat().st_size:
            return pd.DataFrame()
        return pd.read_csv(
            path, encoding=_encoding(path.read_bytes()), dtype=str, keep_default_na=False
        )

    def resend(self, day: dt.date) -> tuple[str, str]:
        """A provider sends a file of the past week again under today's name (its system re-exported it)."""
        orig = self._busiest(day - dt.timedelta(days=7), day - dt.timedelta(days=1))
        name = orig.split("/")[1]
        rel = f"{orig.split('/')[0]}/{day:%Y%m%d}_{name[9:].rsplit('.', 1)[0]}_resent.{name.rsplit('.', 1)[1]}"
        self.extra.append((_at(day, 19), rel, (self.gen / "landing" / orig).read_bytes()))
        return rel, orig

    def correct(self, day: dt.date) -> tuple[str, str, str]:
        """A provider corrects an amount in an earlier file and sends it again under its name."""
        rel = self._busiest(D(SPANS[SPAN][0]), day - dt.timedelta(days=1), column="金额")
        enc = _encoding((self.gen / "landing" / rel).read_bytes())
        frame = self.read(rel)
        col = next(c for c in frame.columns if "金额" in c)
        i = int((frame[col].str.strip() != "").to_numpy().argmax())
        new_value = "98765.43"
        frame.loc[i, col] = new_value
        doc = frame.loc[
            i, next(c for c in frame.columns if "文号" in c or "文书" in c or "案号" in c)
        ]
        self.extra.append((_at(day, 19), rel, frame.to_csv(index=False).encode(enc)))
        return rel, doc, new_value

    def deliver_until(self, moment: dt.datetime) -> None:
        """Everything the providers sent up to this moment is in the landing folder, with its arrival time."""
        for rel, when in sorted(self.arrivals.items()):
            if when <= moment and rel not in self.landed:
                dest = self.landing / rel
                dest.parent.mkdir(exist_ok=True)
                shutil.copyfile(self.gen / "landing" / rel, dest)
                set_arrival(dest, when)
                self.landed[rel] = when
        for when, rel, data in self.extra:
            if when <= moment and self.landed.get(rel) != when:
                (self.landing / rel).write_bytes(data)
                set_arrival(self.landing / rel, when)
                self.landed[rel] = when


def _encoding(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    try:
        raw.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


class Agency:
    """What the store and the outboxes say after a night (the agencies' side and the ledger)."""

    def __init__(self, home: Path):
        from scoring.history.store import Store

        self.home = home
        self.store = Store.open(None, home)

    def files(self, run_id: str) -> pd.DataFrame:
        from scoring.history.store import landed_files

        with self.store.engine.connect() as conn:
            return pd.read_sql(
                sa.select(landed_files)
                .where(landed_files.c.run_id == run_id)
                .order_by(landed_files.c.path),
                conn,
            )

    def current(self) -> set[str]:
        return {p.read_text().split()[0] for p in (self.home / "outbox").glob("*/CURRENT")}

    def publication_rows(self, run_id: str) -> int:
        from scoring.history.store import publications

        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count())
                .select_from(publications)
                .where(publications.c.run_id == run_id)
            ).scalar()

    def reconciliation(self, run_id: str) -> dict[str, tuple[int, ...]]:
        from scoring.history.store import gate_results

        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    gate_results.c.scope, gate_results.c.observed, gate_results.c.passed
                ).where(
                    (gate_results.c.run_id == run_id) & (gate_results.c.gate == "reconciliation")
                )
            ).all()
        out = {}
        for scope, observed, passed in rows:
            assert passed, f"{run_id} {scope}: rows unaccounted for ({observed})"
            # received + withdrawn (a snapshot's) = accepted + quarantined + excluded + simplified
            left, right = observed.split("=")
            out[scope] = (*map(int, left.split("+")), *map(int, right.split("+")))
        return out

    def stored_rows(self, run_id: str) -> collections.Counter:
        """Rows the night stored, per table (records, entities, changes; exclusions: simplified procedure)."""
        from scoring.history.store import record_batches

        with self.store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(record_batches.c.table_name, sa.func.sum(record_batches.c.rows))
                .where(record_batches.c.run_id == run_id)
                .group_by(record_batches.c.table_name)
            ).all()
        return collections.Counter({t: int(n) for t, n in rows})

    def manifest(self, run_id: str) -> dict:
        from scoring.history.store import runs

        with self.store.engine.connect() as conn:
            return json.loads(
                conn.execute(
                    sa.select(runs.c.manifest_json).where(runs.c.run_id == run_id)
                ).scalar()
            )

    def results(self, run_id: str) -> pd.DataFrame:
        with self.store.engine.connect() as conn:
            return self.store.read_run_results(conn, run_id, self.manifest(run_id))

    def explain_tier_changes(self, before: str, after: str) -> collections.Counter:
        """Why each entity's tier differs between two published nights: the new night's records
        (new, corrected, removed from a list) touch it, or the earlier night's very inputs,
        evaluated on the later date (and policy), give the later tier: time (decay, a period
        ending, an objection deadline) or the policy in force. Anything else fails."""
        from scoring.audit.rerun import _artifact
        from scoring.common.catalogue import Catalogue
        from scoring.evaluation.evaluate import Policy, evaluate_inputs
        from scoring.history.inputs import load_inputs
        from scoring.history.store import record_batches

        a, b = self.results(before), self.results(after)
        m = a[["uscc", "tier"]].merge(
            b[["uscc", "tier"]], on="uscc", how="outer", suffixes=("_a", "_b")
        )
        changed = m[m["tier_a"].astype(str) != m["tier_b"].astype(str)]
        why = collections.Counter()
        if not len(changed):
            return why
        ma, mb = self.manifest(before), self.manifest(after)
        old_ids = [x["batch_id"] for x in ma["input_batches"]]
        new_ids = sorted({x["batch_id"] for x in mb["input_batches"]} - set(old_ids))
        with self.store.engine.connect() as conn:
            ent, rec, chg, _ = load_inputs(
                self.store, conn, ma["knowledge_cutoff"], batch_ids=old_ids
            )
            cat = Catalogue.from_doc(_artifact(conn, mb["catalogue_sha256"]))
            pol = Policy.from_doc(_artifact(conn, mb["policy_sha256"]))
            new = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(record_batches).where(record_batches.c.batch_id.in_(new_ids))
                )
            ]
        touched = set()
        for batch in new:
            frame = self.store.read_batches([batch])
            for col in ("uscc", "subject_code"):
                if col in frame:
                    touched |= set(frame[col].dropna().astype(str))
        time_only = (
            evaluate_inputs(ent, rec, chg, cat, pol, mb["as_of"])
            .set_index("uscc")["tier"]
            .astype(str)
        )
        policy = (
            "policy in force changed"
            if ma["policy_sha256"] != mb["policy_sha256"]
            else "time (same records)"
        )
        for r in changed.itertuples(index=False):
            if r.uscc in touched:
                why["record event (new, corrected or removed record)"] += 1
            elif time_only.get(r.uscc) == str(r.tier_b):
                why[policy] += 1
            else:
                raise AssertionError(
                    f"{after}: {r.uscc} moved {r.tier_a} -> {r.tier_b} with no record event, "
                    f"and its earlier records on {mb['as_of']} give {time_only.get(r.uscc)}"
                )
        return why


@pytest.fixture(scope="module")
def year(tmp_path_factory):
    first, last = map(D, SPANS[SPAN])
    root = tmp_path_factory.mktemp("nights")
    t0 = time.perf_counter()
    prov = Province(root, first, last)
    resent, resent_of = prov.resend(RESEND)
    corrected, corrected_doc, corrected_amount = prov.correct(CORRECTION)
    home = root / "home"
    agency = Agency(home)
    log = {
        "generate_seconds": round(time.perf_counter() - t0, 1),
        "nights": [],
        "why": collections.Counter(),
        "audits": [],
        "seconds": [],
        "late": prov.late,
        "late_days": prov.late_days,
        "resent": (resent, resent_of),
        "corrected": (corrected, corrected_doc, corrected_amount),
    }
    last_published = None
    t0 = time.perf_counter()
    for n, day in enumerate(_days(first, last)):
        prov.deliver_until(nightly_arrival_cut(day))
        if day in MISSED:
            continue  # the scheduler is down; the providers are not
        if day == CATCH_UP:
            p = run_cli(
                "run",
                "--from",
                f"{MISSED[0]}",
                "--to",
                f"{day}",
                "--landing",
                str(prov.landing),
                "--home",
                str(home),
                "--json",
                env={"CREDIT_DB_URL": ""},
            )
            assert p.returncode == 0, p.stderr[-3000:]
            summaries = json.loads(p.stdout)["nights"]
            assert [s["as_of"] for s in summaries] == [f"{d}" for d in MISSED + [day]], (
                "night by night, in order"
            )
            assert [s["arrival_cut"] for s in summaries] == [
                nightly_arrival_cut(d).isoformat() for d in MISSED + [day]
            ]
        else:
            ctx = pipeline.RunContext(
                as_of=day, landing=prov.landing, home=home, arrival_cut=nightly_arrival_cut(day)
            )
            t_night = time.perf_counter()
            s = pipeline.run_night(ctx)
            log["seconds"].append((s["no_new_deliveries"], time.perf_counter() - t_night))
            if day in GATE_FAILS:
                assert (
                    s["status"] == "gate_failed"
                    and "feed_present court/dishonest_debtor" in s["message"]
                ), s
                _check_night(agency, s, last_published, log)
                if day == GATE_FAILS[0]:  # the operator, through the command line
                    p = run_cli(
                        "run",
                        "--as-of",
                        f"{day}",
                        "--landing",
                        str(prov.landing),
                        "--home",
                        str(home),
                        "--waive",
                        "feed_present:court",
                        "--approver",
                        WAIVER["approver"],
                        "--reason",
                        WAIVER["reason"],
                        "--json",
                        env={"CREDIT_DB_URL": ""},
                    )
                    assert p.returncode == 0, p.stderr[-3000:]
                    s = json.loads(p.stdout)
                else:  # the same decision as a trigger-form waiver (one run only)
                    ctx.waivers = (WAIVER,)
                    s = pipeline.run_night(ctx)
                assert [w["covered"] for w in s["waivers"]] == [["court/dishonest_debtor"]], s[
                    "waivers"
                ]
            summaries = [s]
        for i, s in enumerate(summaries, start=1):
            assert s["status"] == "published", (
                f"unintended failure on {s['as_of']}: {s.get('message')}"
            )
            _check_night(agency, s, last_published, log, latest=i == len(summaries))
            last_published = s["run_id"]
        if n % 30 == 0:
            from scoring.audit.rerun import rerun

            audit = rerun(summaries[-1]["run_id"], "as-known-then", home=home)
            assert audit["identical"], f"audit rerun of {summaries[-1]['run_id']} differs"
            log["audits"].append(summaries[-1]["run_id"])
        if day == prov.late_days[1]:
            log["late_rerun"] = {
                m: _rerun_summary(home, f"nightly-{prov.late_days[0]:%Y%m%d}", m)
                for m in ("as-known-then", "as-known-now")
            }
    log["nights_seconds"] = round(time.perf_counter() - t0, 1)
    log["landed"] = dict(prov.landed)
    log["landing"] = prov.landing
    log["agency"] = agency
    return log


def _rerun_summary(home, run_id, mode):
    from scoring.audit.rerun import rerun

    out = rerun(run_id, mode, home=home)
    path = Path(out["report"]).parent / "causes.csv"
    causes = (
        pd.read_csv(path, dtype=str)
        if path.read_text(encoding="utf-8-sig").strip()
        else pd.DataFrame()
    )
    return {
        "identical": out["identical"],
        "changed": out["changed_entities"],
        "sources": sorted({s.rsplit(":", 1)[0] for s in causes["source"]}) if len(causes) else [],
        "causes": sorted(set(causes["cause"])) if len(causes) else [],
    }


def _check_night(
    agency: Agency, s: dict, last_published: str | None, log: dict, latest: bool = True
) -> None:
    """``latest``: no later night has run yet (a catch-up's earlier nights are checked afterwards)."""
    run_id = s["run_id"]
    files = agency.files(run_id)
    # Nothing silently lost: every file's rows are accepted, quarantined or excluded (a repeat, or
    # simplified procedure), and the accepted ones are the rows the night stored.
    rec = agency.reconciliation(run_id)
    simplified_rows = 0
    for f in files.itertuples(index=False):
        if f.status == "rejected":
            assert f.received == 0 and f.reject_code, f
            continue
        r, withdrawn, a, q, x, simplified = rec[f.path]
        assert (r, a, q, x) == (f.received, f.accepted, f.quarantined, f.excluded), (run_id, f.path)
        assert withdrawn == 0  # no provider of this province sends snapshots
        assert r + withdrawn == a + q + x + simplified
        simplified_rows += simplified
    published = s["status"] == "published"
    if published:
        stored = agency.stored_rows(run_id)
        assert stored.pop("exclusions", 0) == simplified_rows, run_id  # kept apart, never scored
        assert sum(stored.values()) == int(files["accepted"].sum()), run_id
    # What agencies see agrees with the run's state.
    rows = agency.publication_rows(run_id)
    if published:
        assert rows > 0 and (agency.current() == {run_id} or not latest), run_id
    else:
        assert rows == 0 and agency.current() == ({last_published} if last_published else set()), (
            run_id
        )
        assert all(st in ("held", "rejected", "same_content") for st in files["status"]), run_id
    why = (
        agency.explain_tier_changes(last_published, run_id) if published and last_published else {}
    )
    log["why"].update(why)
    log["nights"].append(
        {
            "run_id": run_id,
            "as_of": s["as_of"],
            "status": s["status"],
            "files": len(files),
            "received": int(files["received"].sum()),
            "accepted": int(files["accepted"].sum()),
            "quarantined": int(files["quarantined"].sum()),
            "excluded": int(files["excluded"].sum()),
            "quiet": s["no_new_deliveries"],
            "tiers": s["tiers"],
            "tier_changes": sum(why.values()),
            "waivers": len(s["waivers"]),
        }
    )


def test_every_night_publishes_except_where_a_gate_must_stop_it(year):
    nights = year["nights"]
    first, last = map(D, SPANS[SPAN])
    published = [n["as_of"] for n in nights if n["status"] == "published"]
    assert published == [f"{d}" for d in _days(first, last)], "every night published once, in order"
    assert [(n["as_of"], n["waivers"]) for n in nights if n["status"] != "published"] == [
        (f"{d}", 0) for d in GATE_FAILS
    ], "the silent court stops exactly these nights (before their waiver)"
    assert [n["as_of"] for n in nights if n["waivers"]] == [f"{d}" for d in GATE_FAILS], (
        "a waiver covers its own run only"
    )
    quiet = [n for n in nights if n["quiet"]]
    assert quiet and all(n["status"] == "published" for n in quiet)
    # Weekends and holidays are quiet.
    assert {n["as_of"] for n in quiet} >= {f"{d}" for d in _days(D("2026-02-15"), D("2026-02-23"))}
    assert year["audits"], "audited"


def test_the_late_file_is_known_from_the_night_it_landed(year):
    late, late_days = year["late"], year["late_days"]
    reading = [n for n in year["nights"] if n["status"] == "published"]
    agency = year["agency"]
    seen = {
        n["as_of"]: set(agency.files(n["run_id"])["path"])
        for n in reading
        if D(n["as_of"]) in set(_days(*late_days))
    }
    assert len(seen) == 4 and [d for d, paths in sorted(seen.items()) if late in paths] == [
        f"{late_days[1]}"
    ]
    then, now = year["late_rerun"]["as-known-then"], year["late_rerun"]["as-known-now"]
    assert then["identical"], "as known then: the late file is not in the night's inputs"
    assert not now["identical"] and late in now["sources"] and "late_delivery" in now["causes"]


def test_a_resent_file_counts_as_a_delivery_and_adds_no_rows(year):
    resent, original = year["resent"]
    night = next(
        n for n in year["nights"] if n["as_of"] == f"{RESEND}" and n["status"] == "published"
    )
    f = year["agency"].files(night["run_id"]).set_index("path").loc[resent]
    assert f["status"] == "same_content" and f["message"] == f"same content as {original}"
    assert f["received"] == f["excluded"] > 0 and f["accepted"] == 0


def test_a_correction_supersedes_by_record_key(year):
    from scoring.history.inputs import load_inputs

    path, doc, amount = year["corrected"]
    night = next(n for n in year["nights"] if n["as_of"] == f"{CORRECTION}")
    agency = year["agency"]
    f = agency.files(night["run_id"]).set_index("path").loc[path]
    assert f["status"] == "stored" and f["message"].startswith(f"correction of {path}")
    assert f["received"] > 0 and f["quarantined"] + f["accepted"] + f["excluded"] == f["received"]
    with agency.store.engine.connect() as conn:
        _, rec, _, _ = load_inputs(agency.store, conn, night["as_of"])
    mine = rec[rec["doc_number"] == doc]
    assert len(mine) == 1 and float(mine["amount_yuan"].iloc[0]) == float(amount), mine.T


def test_every_file_that_landed_is_accounted_for(year):
    from scoring.history.store import landed_files

    with year["agency"].store.engine.connect() as conn:
        rows = pd.read_sql(
            sa.select(
                landed_files.c.path,
                landed_files.c.status,
                landed_files.c.sha256,
                landed_files.c.run_id,
            ),
            conn,
        )
    latest = rows.sort_values("run_id").groupby("path").last()
    assert set(latest.index) == set(year["landed"]), "every landed file recorded"
    assert set(latest["status"]) <= {"stored", "same_content"}, latest["status"].value_counts()


def test_tier_changes_are_explained_and_reported(year):
    nights = [n for n in year["nights"] if n["status"] == "published"]
    total = sum(n["tier_changes"] for n in nights)
    assert total == sum(year["why"].values()) and total > 0, (
        "the span moves tiers, and each move is explained"
    )
    print(
        f"\nyear of nights ({SPAN}): {len(nights)} published nights, generate {year['generate_seconds']} s, "
        f"nights {year['nights_seconds']} s; received {sum(n['received'] for n in nights)}, accepted "
        f"{sum(n['accepted'] for n in nights)}, quarantined {sum(n['quarantined'] for n in nights)}, "
        f"excluded {sum(n['excluded'] for n in nights)}; quiet nights {sum(n['quiet'] for n in nights)}; "
        f"tier changes {dict(year['why'])}; audited {year['audits']}; median seconds a night: "
        f"quiet {_median([t for q, t in year['seconds'] if q])}, "
        f"with deliveries {_median([t for q, t in year['seconds'] if not q])}"
    )


def _median(xs: list[float]) -> float:
    return round(float(pd.Series(xs).median()), 2) if xs else float("nan")
