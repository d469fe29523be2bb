"""``credit``: the command line for operators, regulators and auditors.

Every command that touches the store takes ``--db URL`` (default CREDIT_DB_URL, else the embedded
SQLite under CREDIT_HOME) and ``--json``. Errors are one line on stderr with a non-zero exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from scoring.audit.rerun import rerun
from scoring.calibration.policy_change import diff_text, policy_diff, promote_file, write_diff
from scoring.common.catalogue import Catalogue
from scoring.common.errors import PipelineError
from scoring.evaluation.explain import explain_entity
from scoring.history.runlock import EXIT_LOCKED, RunLocked, run_lock
from scoring.history.store import Store, default_home, publications, read_log, runs
from scoring.intake import ingest as ing
from scoring.intake.ingest import UnusableFile
from scoring.pipeline import STEP_NAMES, RunContext, run_summary, shown
from scoring.publication.publish import load_agencies
from scoring.quality import gates as qg
from scoring.quality import validate as quality
from scoring.quality.changes import annotate_changes
from scoring.sampling import plans

EXIT_OK, EXIT_GATE, EXIT_UNUSABLE = 0, 1, 2


class CliError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, sort_keys=True, default=str) + "\n")


def _progress(args):
    if getattr(args, "json", False) or getattr(args, "quiet", False):
        return lambda msg: (
            print(msg, file=sys.stderr, flush=True) if os.environ.get("CREDIT_VERBOSE") else None
        )
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def _home(args) -> Path:
    return Path(args.home).resolve() if getattr(args, "home", None) else default_home()


# --------------------------------------------------------------------------- commands


def cmd_demo_data(args) -> int:
    from scoring.world.params import world_path
    from scoring.world.province import write_deliveries

    res = write_deliveries(
        args.out,
        args.as_of,
        n_entities=args.entities,
        seed=args.seed,
        defect_rate=args.defect_rate,
        progress=_progress(args),
        world=world_path(args.world),
    )
    if args.json:
        _print_json(res)
    else:
        print(f"landing folder: {res.get('landing', Path(args.out) / 'landing')}")
        print(
            f"delivered until {res['delivered_until']}: {len(res['files'])} new files; "
            f"injected defects {res.get('defects', {})}"
        )
    return EXIT_OK


def _context(args, as_of=None):
    home = _home(args)
    landing = (
        Path(args.landing)
        if args.landing
        else Path(os.environ.get("CREDIT_LANDING") or home / "landing")
    )
    extra = {}
    if getattr(args, "catalogue", None):
        extra["catalogue_path"] = Path(args.catalogue).resolve()
    if getattr(args, "policy", None):
        extra["policy_path"] = Path(args.policy).resolve()
    if getattr(args, "partitions", None):
        extra["partitions"] = args.partitions
    return RunContext(
        as_of=as_of or args.as_of,
        landing=landing,
        home=home,
        db_url=args.db,
        knowledge_cutoff=getattr(args, "knowledge_cutoff", None),
        progress=_progress(args),
        waivers=_waivers(args),
        **extra,
    )


def _waivers(args) -> tuple:
    from scoring.quality.waivers import WaiverError, parse_waiver

    specs = getattr(args, "waive", None) or []
    if not specs and (getattr(args, "approver", None) or getattr(args, "reason", None)):
        raise CliError("--approver/--reason given without --waive GATE:SCOPE")
    try:
        return tuple(parse_waiver(s, args.approver, args.reason).as_dict() for s in specs)
    except WaiverError as exc:
        raise CliError(str(exc)) from None


def cmd_run(args) -> int:
    from scoring.pipeline import run_night, run_nights

    if bool(args.date_from) != bool(args.date_to) or bool(args.as_of) == bool(args.date_from):
        raise CliError("give either --as-of DATE or both --from DATE --to DATE")
    if args.date_from and args.knowledge_cutoff:
        raise CliError("--knowledge-cutoff applies to one night (--as-of), not to --from/--to")
    steps = STEP_NAMES if not args.step else tuple(args.step)
    probe = _context(args, as_of=args.as_of or args.date_from)
    if not probe.landing.is_dir():
        raise CliError(
            f"landing folder {probe.landing} does not exist (generate one with `credit demo-data`)"
        )
    store = Store.open(probe.db_url, probe.home)
    holder = probe.run_id if args.as_of else f"nights {args.date_from}..{args.date_to}"
    try:
        with run_lock(store, holder, wait_seconds=args.wait):  # one run at a time per store
            if args.as_of:
                summaries = [run_night(probe, steps)]
            else:
                summaries = run_nights(
                    args.date_from, args.date_to, lambda d: _context(args, as_of=d), steps
                )
    except RunLocked as exc:
        print(f"credit run: {exc}", file=sys.stderr)
        if args.json:
            _print_json(
                {
                    "run_id": probe.run_id,
                    "status": "locked",
                    "message": str(exc),
                    "holder": exc.holder,
                }
            )
        return EXIT_LOCKED
    finally:
        store.engine.dispose()
    for s in summaries:
        if s.get("error"):
            print(f"credit run: {s['error']}", file=sys.stderr)
    code = (
        EXIT_OK
        if all(
            s["status"] == "published" or "publish" not in steps and not s.get("error")
            for s in summaries
        )
        else EXIT_GATE
    )
    if args.json:
        _print_json(summaries[0] if args.as_of else {"nights": summaries})
    else:
        for s in summaries:
            print(
                f"run {s['run_id']}: {s['status']}; {s['entities_scored']:,} entities; tiers {s['tiers']}"
                + (
                    "; no new deliveries"
                    if s["no_new_deliveries"]
                    else f"; {s['deliveries']['files']} new files"
                )
                + "".join(
                    f"; WAIVED {w['gate']}:{w['scope']} by {w['approver']}" for w in s["waivers"]
                )
            )
            for p in s["landing_problems"]:
                print(f"  landing: {p['kind']}: {p['path']}: {p['message']}")
            print(f"  output_sha256 {s['output_sha256']}")
            print(f"  report: {s['report']}")
        if args.date_from and summaries and summaries[-1]["status"] != "published":
            print(
                f"stopped at {summaries[-1]['as_of']}; later nights were not run", file=sys.stderr
            )
    return code


def cmd_check(args) -> int:
    """Validate one provider file without loading it into the store."""
    cat = Catalogue.latest()
    path = Path(args.file)
    if not path.exists():
        raise CliError(f"{path}: no such file")
    raw = ing.read_file(
        path, max_cells=int(cat.gates["max_xlsx_cells"]), max_bytes=int(cat.gates["max_file_bytes"])
    )
    as_of = (
        pd.Timestamp(args.as_of)
        if args.as_of
        else (ing.delivery_date(path.name) or pd.Timestamp("2262-01-01"))
    )
    if pd.isna(as_of):
        as_of = pd.Timestamp("2262-01-01")
    cat = Catalogue.in_force(
        min(as_of, pd.Timestamp("2262-01-01"))
    )  # the catalogue of the file's date
    reasons: dict[str, int] = {}
    for r in raw.bad_rows["reason"]:
        reasons[r] = reasons.get(r, 0) + 1
    quarantined = len(raw.bad_rows)
    gates = [qg.gate_schema(path.name, raw.missing_required)]
    if not raw.missing_required and len(raw.rows):
        table = {"register": "stg_entity", "credit_change": "stg_change"}.get(
            raw.layout.feed, "stg_record"
        )
        if table == "stg_change":
            # Without the store the records changed cannot be looked up: that check waits for the run.
            stg = ing.stage_changes(raw, as_of)
            known = pd.DataFrame(
                {
                    "record_key": stg["record_key"],
                    "item_code": stg["item_code"],
                    "decision_date": pd.Series(pd.NaT, index=stg.index, dtype="datetime64[s]"),
                }
            )
            stg = annotate_changes(stg, known.drop_duplicates("record_key"), cat, set())
            stg["record_known"] = True
        elif table == "stg_entity":
            stg = ing.stage_entities(raw, as_of)
        else:
            stg = ing.stage_records(raw, cat, as_of)
        stg["seen_before"] = False
        if table == "stg_record":
            stg["record_key"] = ing.record_key(stg)
            stg["registered_date"] = pd.Series(pd.NaT, index=stg.index, dtype="datetime64[s]")
        v = quality.validate_table(
            quality.gx_context(None),
            table,
            stg,
            cat,
            as_of.date().isoformat(),
            "check",
            with_docs=False,
        )
        bad = v.reasons[v.reasons != ""]
        quarantined += len(bad)
        for codes in bad:
            for c in codes.split(","):
                reasons[c] = reasons.get(c, 0) + 1
    elif raw.missing_required:
        quarantined = raw.received
        reasons["schema_mismatch"] = raw.received
    gates.append(
        qg.gate_quarantine_share(
            path.name,
            raw.received,
            quarantined,
            float(cat.gates["max_quarantine_share"]),
            int(cat.gates.get("min_rows_for_share_gate", 0)),
        )
    )
    failed = [g for g in gates if not g.passed]
    out = {
        "file": str(path),
        "layout": raw.layout.id,
        "feed": raw.layout.feed,
        "encoding": raw.encoding,
        "format": raw.file_format,
        "received": raw.received,
        "accepted": raw.received - quarantined,
        "quarantined": quarantined,
        "reasons": dict(sorted(reasons.items())),
        "hard_gates_failed": [f"{g.gate}: {g.message}" for g in failed],
        "sha256": raw.sha256,
    }
    if args.json:
        _print_json(out)
    else:
        print(
            f"{path.name}: {raw.layout.title} ({raw.encoding}); received {out['received']}, "
            f"accepted {out['accepted']}, quarantined {out['quarantined']} {out['reasons']}"
        )
        for g in failed:
            print(f"hard gate failed: {g.gate}: {g.message}")
    return EXIT_GATE if failed else EXIT_OK


def cmd_agencies(args) -> int:
    ag = load_agencies()
    rows = [
        {
            "id": a["id"],
            "name": a["name"],
            "level": a["level"],
            "domain": a["domain"],
            "scope": {"divisions": a.get("divisions", []), "industries": a.get("industries", [])},
            "channel": a.get("channel"),
            "encoding": a.get("encoding"),
        }
        for a in ag
    ]
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['id']:<14} {r['name']}  divisions={','.join(r['scope']['divisions'])} "
                f"industries={','.join(r['scope']['industries']) or 'all'}"
            )
    return EXIT_OK


def cmd_explain(args) -> int:
    out = explain_entity(args.uscc, args.run, db_url=args.db, home=_home(args))
    if args.json:
        _print_json(out)
    else:
        print(out["text"])
    return EXIT_OK


def cmd_rerun(args) -> int:
    out = rerun(args.run_id, args.mode, db_url=args.db, home=_home(args), progress=_progress(args))
    if args.json:
        _print_json(out)
    else:
        print(
            f"rerun {out['run_id']} ({out['mode']}): {'identical' if out['identical'] else 'DIFFERENT'}; "
            f"output_sha256 {out['output_sha256']}; {len(out['changed_entities'])} entities changed"
        )
        print(f"auditor report: {out['report']}")
    return EXIT_OK


def cmd_sample(args) -> int:
    """双随机、一公开: commit a plan, draw it once the next publication exists, verify, enter results."""
    if getattr(args, "agency", None) and args.agency not in {a["id"] for a in load_agencies()}:
        # Checked against the registry before the id goes anywhere near a path.
        raise CliError(f"unknown agency {args.agency!r}; `credit agencies` lists them")
    store = Store.open(args.db, _home(args))
    action = args.action or "commit"
    if action in ("verify", "results", "show") and not args.plan_id:
        raise CliError(f"usage: credit sample {action} PLAN_ID")
    if action == "commit":
        if not args.agency or not args.ratios:
            raise CliError(
                "usage: credit sample commit --agency ID --ratios A=0.03,B=0.1,C=0.4,D=0.8 "
                "[--period YYYY-MM] [--task T] [--approver NAME --reason TEXT]"
            )
        rec = plans.commit_plan(
            store,
            args.agency,
            args.ratios,
            period=args.period,
            task=args.task,
            approver=args.approver,
            reason=args.reason,
        )
        out = {
            k: rec[k]
            for k in (
                "plan_id",
                "status",
                "period",
                "task",
                "commitment_sha256",
                "capacity",
                "exclusions_by_reason",
                "redraw",
            )
        } | {
            "base_run": rec["base"]["run_id"],
            "planned": plans.planned_count(rec["ingredients"]),
            "frame": rec["ingredients"]["frame"],
            "seed_source": rec["seed_source_rule"],
        }
        text = (
            f"plan {rec['plan_id']} committed ({out['planned']} inspections planned on {out['frame']}); "
            f"commitment {rec['commitment_sha256']}; drawn once the publication after {rec['base']['as_of']} exists"
        )
    elif action == "draw":
        recs = (
            [plans.draw_committed(store, args.plan_id)] if args.plan_id else plans.draw_ready(store)
        )
        out = {
            "drawn": [
                {
                    "plan_id": r["plan_id"],
                    "seed": r["draw"]["seed"],
                    "seed_source": r["seed_source"],
                    "by_tier": {t: sum(d["tier"] == t for d in r["draw"]["drawn"]) for t in "ABCD"},
                    "skipped": len(r["draw"]["skipped"]),
                }
                for r in recs
            ]
        }
        text = (
            "\n".join(
                f"plan {d['plan_id']} drawn: {d['by_tier']} (seed from {d['seed_source']['run_id']}); "
                f"{d['skipped']} excluded entities replaced"
                for d in out["drawn"]
            )
            or "nothing to draw"
        )
    elif action == "verify":
        out = plans.verify_plan(store, args.plan_id)
        text = f"plan {out['plan_id']}: {'identical' if out['verified'] else 'DIFFERENT'} {out['checks']}"
        if args.json:
            _print_json(out)
        else:
            print(text)
        return EXIT_OK if out["verified"] else EXIT_GATE
    elif action == "show":
        rec = plans.load_plan(store, args.plan_id)
        t = plans.targets(store, rec)
        load = {
            k: int(v)
            for k, v in sorted(
                pd.Series([i for team in t["inspectors"] for i in team], dtype=object)
                .value_counts()
                .items()
            )
        }
        out = {
            k: rec[k]
            for k in (
                "plan_id",
                "status",
                "period",
                "task",
                "commitment_sha256",
                "seed_source",
                "exclusions_by_reason",
                "redraw",
                "abandoned",
                "capacity",
                "joint_with",
            )
        } | {
            "targets": len(t),
            "recusals_applied": int(sum(len(r) for r in t["recused"])),
            "workload": load,
            "skipped": (rec.get("draw") or {}).get("skipped", []),
        }
        text = json.dumps(out, ensure_ascii=False, indent=1)
    elif action == "results":
        if not args.file:
            raise CliError(
                "usage: credit sample results PLAN_ID --file RESULTS.csv [--landing DIR]"
            )
        frame = pd.read_csv(args.file, dtype=str, encoding="utf-8-sig")
        out = plans.enter_results(store, args.plan_id, frame, landing=args.landing)
        text = (
            f"plan {out['plan_id']}: {out['entered']} results entered ({out['results']} in all)"
            + (f"; delivery {out['delivery']}" if "delivery" in out else "")
        )
    else:  # advise
        if not args.agency:
            raise CliError(
                "usage: credit sample advise --agency ID [--capacity N] [--ratios ...] [--period YYYY-MM]"
            )
        plot = (
            _home(args)
            / "outbox"
            / args.agency
            / "sampling"
            / f"advice-{args.period or 'next'}.png"
        )
        plot.parent.mkdir(parents=True, exist_ok=True)
        out = plans.advise(
            store, args.agency, args.capacity, args.ratios, period=args.period, plot_path=plot
        )
        text = (
            f"hit rate by tier (random draws only) {out['hit_rate_by_tier']}; population {out['population']}\n"
            f"bounds {out['bounds']['tiers']} ({out['bounds']['source']})\n"
            f"capacity left {out['capacity_left']} of {out['capacity']}; advisor {out['proposal']}: "
            f"{out['proposal_expected']}; uniform {out['uniform_expected']}"
            + (f"\n{out['statement']}" if "statement" in out else "")
            + f"\nplot {out['plot']}"
        )
    if args.json:
        _print_json(out)
    else:
        print(text)
    return EXIT_OK


def cmd_world_experiment(args) -> int:
    from scoring.world.experiment import run_world_experiments
    from scoring.world.params import world_path

    out = run_world_experiments(
        world_path(args.world),
        [int(s) for s in args.seeds.split(",")],
        args.entities,
        args.resamples,
        Path(args.out) if args.out else _home(args) / "world_experiments",
        progress=_progress(args),
    )
    if args.json:
        _print_json(out)
    else:
        for line in out["summary"]:
            print(line)
        print(f"reports and model cards under {out['folder']}")
    return EXIT_OK


# The learner (scikit-learn, SciPy) and the synthetic world are imported by the commands that use
# them: seconds of every `credit` start, a nightly run's included, that nothing else needs.


def cmd_calibrate(args) -> int:
    from scoring.calibration.calibrate import calibrate

    out = calibrate(Store.open(args.db, _home(args)), until=args.until)
    if args.json:
        _print_json(out)
    else:
        c, t = out["comparison"], out["training_set"]
        print(
            f"training set: {t['random_from_stored_plans'] + t['random_reconstructed_draw']} randomly drawn inspections "
            f"weighted by 1 / inclusion probability ({t['random_from_stored_plans']} from stored plans, "
            f"{t['random_reconstructed_draw']} with the draw's tier reconstructed); {t['left_out_not_random']} "
            f"complaint-driven or otherwise not random left out; signals offered: {', '.join(t['signals_offered'])}"
        )
        print(
            f"candidate {out['candidate_id']}: AUC {out['auc']:.4f} (current {out['baseline']['auc']:.4f}), "
            f"KS {out['ks']:.4f}; hit rate by tier {out['hit_rate_by_tier']}"
        )
        print(
            f"AUC difference {c['auc_difference']:+.4f}, 95% interval {c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f} "
            f"(paired bootstrap of entities); hit rates rise A to D: {'yes' if c['hit_rates_rise_a_to_d'] else 'no'}"
        )
        print(f"model card: {out['model_card']}")
    return EXIT_OK


def cmd_policy(args) -> int:
    store = Store.open(args.db, _home(args))
    if args.action == "diff":
        return _policy_diff(args, store)
    if args.effective_from is None:
        raise CliError("promote needs --effective-from DATE")
    if Path(args.policy).suffix.lower() in (".yaml", ".yml", ".json") or Path(args.policy).exists():
        entry = promote_file(
            store,
            args.policy,
            args.approved_by,
            args.reason,
            args.effective_from,
            args.diff,
            **({"history": Path(args.history)} if args.history else {}),
        )
    else:  # a calibration candidate by id (the deployment's own history)
        from scoring.calibration.promote import promote

        entry = promote(store, args.policy, args.approved_by, args.reason, args.effective_from)
    if args.json:
        _print_json(entry)
    else:
        print(
            f"{args.policy} is the policy for evaluations from {entry['effective_from']} "
            f"(approved by {entry['approved_by']})"
        )
    return EXIT_OK


def _policy_diff(args, store) -> int:
    if not args.new or not args.as_of:
        raise CliError("usage: credit policy diff OLD NEW --as-of DATE")
    diff = policy_diff(store, args.policy, args.new, args.as_of)
    files = write_diff(diff, Path(args.out) if args.out else store.home / "policy" / "diffs")
    if args.json:
        _print_json({**diff, "files": {k: str(v) for k, v in files.items()}})
    else:
        print(diff_text(diff))
        print(
            f"\nHTML page (migration matrix as a picture): {files['html']}\nJSON (name it when promoting): {files['json']}"
        )
    return EXIT_OK


def cmd_status(args) -> int:
    if args.as_of:
        home = _home(args)
        s = run_summary(
            shown(RunContext(as_of=args.as_of, landing=home / "landing", home=home, db_url=args.db))
        )
        if args.json:
            _print_json(s)
            return EXIT_OK
        print(f"run {s['run_id']} (as of {s['as_of']}): {s['status']}")
        print(f"entities scored: {s['entities_scored']:,}")
        print("tiers: " + "  ".join(f"{t}={s['tiers'].get(t, 0):,}" for t in "ABCD"))
        print(f"output_sha256: {s['output_sha256']}")
        d = s["deliveries"]
        print(
            "deliveries:    "
            + (
                "no new deliveries (evaluated from the stored history)"
                if s["no_new_deliveries"]
                else f"{d['files']} new files ({d['same_content']} same content as earlier files, "
                f"{d['corrections']} corrections, {d['rejected']} rejected)"
            )
        )
        for w in s["waivers"]:
            print(
                f"WAIVER:        {w['gate']}:{w['scope']} approved by {w['approver']} ({w['reason']}); "
                f"covered {', '.join(w['covered']) or 'nothing'}"
            )
        for p in s["landing_problems"]:
            print(f"landing:       {p['kind']}: {p['path']}: {p['message']}")
        print(f"run report:    {s['report']}")
        rdir = Path(s["report"]).parent
        for label, name in (
            ("provider report", "provider_report.csv"),
            ("results", "entity_score.csv"),
            ("manifest", "manifest.json"),
        ):
            if (rdir / name).exists():
                print(f"{label + ':':<15}{rdir / name}")
        docs = rdir / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        if docs.exists():
            print(f"GX Data Docs:  {docs}")
        print(
            f"outboxes:      {home / 'outbox'} ({len({Path(p).parent for p in s['published']})} agency deliveries)"
        )
        return EXIT_OK if s["status"] in ("published", "scored") else EXIT_GATE
    store = Store.open(args.db, _home(args))
    with store.engine.connect() as conn:
        rows = [
            dict(r._mapping)
            for r in conn.execute(
                sa.select(
                    runs.c.run_id,
                    runs.c.as_of,
                    runs.c.status,
                    runs.c.entities_scored,
                    runs.c.tiers_json,
                    runs.c.output_sha256,
                ).order_by(runs.c.run_id)
            )
        ]
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(
                f"{r['run_id']:<24} {r['status']:<12} {r['entities_scored'] or 0:>9,} {r['tiers_json'] or ''}"
            )
    return EXIT_OK


def cmd_reads(args) -> int:
    """Review of the agencies' registered reads (the query registration and review the plan
    requires, 信息查询使用登记和审查制度) and of what was delivered."""
    store = Store.open(args.db, _home(args))
    with store.engine.connect() as conn:
        q = sa.select(
            read_log.c.read_id,
            read_log.c.agency_id,
            read_log.c.db_role,
            read_log.c.channel,
            read_log.c.read_at,
            read_log.c.query,
        ).order_by(read_log.c.read_id)
        d = sa.select(
            publications.c.run_id,
            publications.c.agency_id,
            publications.c.path,
            publications.c.rows,
            publications.c.sha256,
            publications.c.delivered_at,
        ).order_by(publications.c.run_id, publications.c.agency_id, publications.c.path)
        if args.agency:
            q = q.where(read_log.c.agency_id == args.agency)
            d = d.where(publications.c.agency_id == args.agency)
        reads = [dict(r._mapping) for r in conn.execute(q)]
        deliveries = [dict(r._mapping) for r in conn.execute(d)]
    if args.json:
        _print_json({"reads": reads, "deliveries": deliveries})
        return EXIT_OK
    print(
        f"{len(deliveries)} delivered files, {len(reads)} registered reads"
        + (f" for {args.agency}" if args.agency else "")
    )
    for r in reads:
        print(
            f"{r['read_id']:>6} {str(r['read_at'])[:19]} {r['agency_id']:<14} {' '.join(str(r['query']).split())[:100]}"
        )
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="credit", description="Public credit composite evaluation pipeline (公共信用综合评价)"
    )
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, db=True):
        if db:
            sp.add_argument(
                "--db", default=None, help="database URL (default CREDIT_DB_URL or embedded SQLite)"
            )
            sp.add_argument(
                "--home", default=None, help="data folder (default CREDIT_HOME or ./var)"
            )
        sp.add_argument("--json", action="store_true", help="one JSON object on stdout")

    sp = sub.add_parser("demo-data", help="write the synthetic province's deliveries up to a date")
    sp.add_argument("--out", required=True)
    sp.add_argument("--entities", type=int, default=20_000)
    sp.add_argument("--seed", type=int, default=42)
    sp.add_argument("--defect-rate", type=float, default=0.02)
    sp.add_argument("--as-of", default="2026-06-30")
    sp.add_argument(
        "--world", default="default", help="world-parameter file: default, mirror or a path"
    )
    common(sp, db=False)
    sp.set_defaults(func=cmd_demo_data)

    sp = sub.add_parser(
        "world-experiment",
        help="hand policy vs learned candidate in a synthetic world, with the oracle (model cards)",
    )
    sp.add_argument(
        "--world", default="default", help="world-parameter file: default, mirror or a path"
    )
    sp.add_argument("--seeds", default="42,43,44")
    sp.add_argument("--entities", type=int, default=20_000)
    sp.add_argument("--resamples", type=int, default=2000)
    sp.add_argument(
        "--out", default=None, help="folder for reports (default CREDIT_HOME/world_experiments)"
    )
    common(sp, db=False)
    sp.set_defaults(func=cmd_world_experiment)

    sp = sub.add_parser("run", help="run the nightly pipeline for an as-of date")
    sp.add_argument(
        "--as-of", default=None, help="the night to run (or --from/--to for several, in order)"
    )
    sp.add_argument(
        "--from",
        dest="date_from",
        default=None,
        help="catch up nights from this date, each cut at the files landed by 01:00 the next day",
    )
    sp.add_argument("--to", dest="date_to", default=None, help="last night of --from (inclusive)")
    sp.add_argument(
        "--waive",
        action="append",
        default=[],
        metavar="GATE:SCOPE",
        help="waive one failed hard gate for this run, e.g. feed_present:court (needs --approver, --reason)",
    )
    sp.add_argument("--approver", default=None, help="who approved the waiver")
    sp.add_argument("--reason", default=None, help="why the gate may be waived for this run")
    sp.add_argument("--knowledge-cutoff", default=None)
    sp.add_argument("--landing", default=None)
    sp.add_argument(
        "--catalogue", default=None, help="catalogue file (default config/catalogue/v1.yaml)"
    )
    sp.add_argument(
        "--policy", default=None, help="policy file (default: the one in force on the as-of date)"
    )
    sp.add_argument(
        "--step",
        action="append",
        choices=list(STEP_NAMES),
        help="run only these steps (repeatable)",
    )
    sp.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="entity-hash partitions of the evaluation (default CREDIT_PARTITIONS, else by size); "
        "any count gives the same results",
    )
    sp.add_argument(
        "--wait",
        type=float,
        default=0.0,
        help="seconds to wait for another run on the same store to finish (default: refuse at once)",
    )
    common(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("check", help="validate one provider file without loading it")
    sp.add_argument("file")
    sp.add_argument("--as-of", default=None)
    common(sp, db=False)
    sp.set_defaults(func=cmd_check)

    sp = sub.add_parser("agencies", help="list the registered supervisory agencies")
    common(sp, db=False)
    sp.set_defaults(func=cmd_agencies)

    sp = sub.add_parser("explain", help="every record behind one entity's evaluation in a run")
    sp.add_argument("uscc")
    sp.add_argument("--run", required=True)
    common(sp)
    sp.set_defaults(func=cmd_explain)

    sp = sub.add_parser("rerun", help="recompute a past evaluation (auditors); never publishes")
    sp.add_argument("run_id")
    sp.add_argument("--mode", choices=["as-known-then", "as-known-now"], default="as-known-then")
    common(sp)
    sp.set_defaults(func=cmd_rerun)

    sp = sub.add_parser(
        "sample", help="double-random plans: commit, draw, verify, results, show, advise"
    )
    sp.add_argument(
        "action",
        nargs="?",
        choices=["commit", "draw", "verify", "results", "show", "advise"],
        help="commit a plan (default); draw once the next publication exists; verify; enter results",
    )
    sp.add_argument("plan_id", nargs="?")
    sp.add_argument("--agency")
    sp.add_argument(
        "--ratios", help="all four tiers inside the bounds, e.g. A=0.03,B=0.1,C=0.4,D=0.8"
    )
    sp.add_argument(
        "--period", default=None, help="YYYY-MM (default: the month after the latest publication)"
    )
    sp.add_argument("--task", default="routine")
    sp.add_argument("--approver", default=None, help="re-draw only: who approved it")
    sp.add_argument("--reason", default=None, help="re-draw only: why")
    sp.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="advise: inspections available (default: what's left)",
    )
    sp.add_argument(
        "--file", default=None, help="results: CSV with uscc, inspection_date, problem_found (0/1)"
    )
    sp.add_argument(
        "--landing", default=None, help="results: also deliver them to this landing folder (samr)"
    )
    common(sp)
    sp.set_defaults(func=cmd_sample)

    sp = sub.add_parser(
        "calibrate", help="learn a candidate policy from inspection outcomes (model card)"
    )
    sp.add_argument("--until", default=None, help="use inspections up to this date")
    common(sp)
    sp.set_defaults(func=cmd_calibrate)

    sp = sub.add_parser(
        "policy",
        help="policy changes: diff two policies on a date; promote an approved one",
        description="credit policy diff OLD NEW --as-of DATE [--json] [--out DIR]\n"
        "credit policy promote FILE|CANDIDATE_ID --effective-from DATE --approved-by NAME "
        "--reason TEXT [--diff DIFF_JSON] [--history FILE]",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sp.add_argument("action", choices=["promote", "diff"])
    sp.add_argument(
        "policy",
        help="promote: a policy file or a calibration candidate id; diff: the old policy file",
    )
    sp.add_argument("new", nargs="?", default=None, help="diff: the new policy file")
    sp.add_argument(
        "--as-of", default=None, help="diff: evaluate both policies on what was known by this date"
    )
    sp.add_argument(
        "--out",
        default=None,
        help="diff: folder for diff.json, the matrix picture and the HTML page",
    )
    sp.add_argument("--approved-by", default="", help="who approved (required)")
    sp.add_argument("--reason", default="", help="why (required)")
    sp.add_argument("--effective-from", default=None, help="first as-of date the policy applies to")
    sp.add_argument(
        "--diff", default=None, help="promote a file: the diff.json it was approved on (required)"
    )
    sp.add_argument(
        "--history",
        default=None,
        help="promote a file: the policy history (default config/policy/history.yaml)",
    )
    common(sp)
    sp.set_defaults(func=cmd_policy)

    sp = sub.add_parser(
        "reads", help="review agencies' registered reads and deliveries (query registration)"
    )
    sp.add_argument("--agency", default=None, help="only this agency id")
    common(sp)
    sp.set_defaults(func=cmd_reads)

    sp = sub.add_parser("status", help="list stored runs, or show one night's run")
    sp.add_argument("--as-of", default=None, help="show the nightly run for this date")
    common(sp)
    sp.set_defaults(func=cmd_status)
    return p


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CliError as exc:
        print(f"credit {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # the contract: one clear line, never a traceback
        if isinstance(exc, UnusableFile):
            print(f"credit {args.command}: {getattr(args, 'file', '')}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        if isinstance(exc, PipelineError):
            print(f"credit {args.command}: {exc}", file=sys.stderr)
            return EXIT_GATE
        world = sys.modules.get(
            "scoring.world.params"
        )  # only a command that imported it can raise it
        if world is not None and isinstance(exc, world.WorldParamsError):
            print(f"credit {args.command}: {exc}", file=sys.stderr)
            return EXIT_UNUSABLE
        if os.environ.get("CREDIT_DEBUG"):
            raise
        print(
            f"credit {args.command}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr
        )
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
