"""`credit check`: validate one provider file without loading it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from scoring.cli.common import EXIT_GATE, EXIT_OK, EXIT_UNUSABLE, CliError, add_common, print_json
from scoring.common.catalogue import Catalogue
from scoring.intake import ingest as ing
from scoring.intake.providers import Registry
from scoring.intake.readers import UnusableFile
from scoring.quality import gates as qg
from scoring.quality import validate as quality
from scoring.quality.changes import annotate_changes


def register(sub) -> None:
    sp = sub.add_parser("check", help="validate one provider file without loading it")
    sp.add_argument("file")
    sp.add_argument("--as-of", default=None)
    sp.add_argument(
        "--provider", default=None, help="read as this registered provider (its overrides, feeds)"
    )
    add_common(sp, db=False)
    sp.set_defaults(func=cmd_check)


def cmd_check(args) -> int:
    """Validate one provider file without loading it into the store."""
    cat = Catalogue.latest()
    path = Path(args.file)
    if not path.exists():
        raise CliError(f"{path}: no such file")
    raw = _read(path, cat, provider(args.provider))
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
        bad = _row_reasons(raw, cat, as_of)
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
        "header_line": raw.header_line,
        "header_rows": raw.header_rows,
        "sheet": raw.sheet,
        "received": raw.received,
        "accepted": raw.received - quarantined,
        "quarantined": quarantined,
        "reasons": dict(sorted(reasons.items())),
        "hard_gates_failed": [f"{g.gate}: {g.message}" for g in failed],
        "sha256": raw.sha256,
    }
    if args.json:
        print_json(out)
    else:
        print(
            f"{path.name}: {raw.layout.title} ({raw.encoding}, {raw.where}); "
            f"received {out['received']}, "
            f"accepted {out['accepted']}, quarantined {out['quarantined']} {out['reasons']}"
        )
        for g in failed:
            print(f"hard gate failed: {g.gate}: {g.message}")
    return EXIT_GATE if failed else EXIT_OK


def provider(pid: str | None):
    """The registered provider ``pid`` (None when not given)."""
    if not pid:
        return None
    reg = Registry.latest()
    prov = reg.by_id(pid)
    if prov is None:
        known = ", ".join(p.id for p in reg.providers)
        raise CliError(f"unknown provider {pid!r} (registered: {known})")
    return prov


def _read(path: Path, cat: Catalogue, prov):
    """The file read as the night would (with the provider's overrides, for its feeds only); an
    unknown layout points to `credit layout suggest`."""
    try:
        raw = ing.read_file(
            path,
            provider=prov.id if prov else None,
            max_cells=int(cat.gates["max_xlsx_cells"]),
            max_bytes=int(cat.gates["max_file_bytes"]),
            overrides=prov.overrides if prov else None,
        )
    except UnusableFile as exc:
        if exc.code == "unknown_layout":
            exc.args = (f"{exc}; 最接近的格式见 / nearest layout: credit layout suggest {path}",)
        raise
    if prov is not None and raw.layout.feed not in prov.feeds:
        raise CliError(
            f"{path}: a {raw.layout.feed} file, which provider {prov.id} may not deliver "
            f"(registered: {', '.join(prov.feeds)})",
            EXIT_UNUSABLE,
        )
    return raw


def _row_reasons(raw, cat: Catalogue, as_of: pd.Timestamp) -> pd.Series:
    """Stage the file's rows as a run would and validate them: the reason codes of the bad rows."""
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
    return v.reasons[v.reasons != ""]
