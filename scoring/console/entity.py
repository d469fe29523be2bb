"""Entity lookup for staff with the role: one USCC on one night — its evaluation, dimension scores,
reasons, the records behind them (the explain library) with their objection state — with natural
persons' data masked as Art. 23 requires (shown from the night's published table, masked by the
catalogue's rules), and every lookup written to the read log."""

from __future__ import annotations

import json

import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from scoring.common.codes import valid_uscc
from scoring.common.errors import PipelineError
from scoring.console.access import Forbidden
from scoring.evaluation.explain import explain_entity
from scoring.history import reads
from scoring.history.store import artifacts, runs
from scoring.publication.labels import CODES, COLUMNS
from scoring.publication.publish import SNAPSHOT_FILE

CHANNEL = "console"


def check_uscc(uscc: str) -> str:
    code = (uscc or "").strip().upper()
    if len(code) != 18 or not bool(valid_uscc([code])[0]):
        raise ValueError(
            f"统一社会信用代码 {code or '（空）'} 无效（长度或校验位不对）/ "
            f"{code!r} is not a valid USCC (length or check character)"
        )
    return code


def _night(conn, run_id: str | None):
    q = sa.select(runs).where(runs.c.status == "published")
    if run_id:
        q = sa.select(runs).where(runs.c.run_id == run_id)
    row = conn.execute(q.order_by(runs.c.as_of.desc(), runs.c.run_id.desc()).limit(1)).first()
    if row is None or not row.manifest_json:
        raise ValueError(
            f"没有批次 {run_id} / no scored run {run_id}" if run_id else "no night yet"
        )
    return row


def _published_row(store, run_id: str, uscc: str) -> dict:
    path = store.run_dir(run_id) / SNAPSHOT_FILE
    if not path.exists():
        return {}
    t = pq.read_table(path, filters=[("uscc", "=", uscc)])
    t = t.filter(pc.equal(t["uscc"], uscc))
    return t.to_pylist()[0] if t.num_rows else {}


def _dimension_names(conn, manifest: dict) -> dict[str, str]:
    text = conn.execute(
        sa.select(artifacts.c.content_json).where(artifacts.c.sha256 == manifest["policy_sha256"])
    ).scalar()
    dims = json.loads(text).get("dimensions", []) if text else []
    return {d["id"]: f"{d.get('name_zh', d['id'])} {d.get('name_en', '')}".strip() for d in dims}


def lookup(
    store, uscc: str, run_id: str | None, reader: str, agencies: list[dict] | None = None
) -> dict:
    """The entity's evaluation on a night (the latest published one when none is named). With
    ``agencies`` (a department's staff), an entity outside all their scopes is refused."""
    code = check_uscc(uscc)
    with store.engine.connect() as conn:
        night = _night(conn, run_id)
        manifest = json.loads(night.manifest_json)
        dims = _dimension_names(conn, manifest)
    try:
        ex = explain_entity(code, night.run_id, db_url=store.url, home=store.home)
    except PipelineError as exc:
        raise ValueError(str(exc).splitlines()[0]) from None
    shown = _published_row(store, night.run_id, code)
    if agencies is not None and not any(_in(shown, a) for a in agencies):
        raise Forbidden(f"{code} 不在您部门的范围内 / outside your department's scope")
    record_read(store, night.run_id, code, reader)
    return {
        "uscc": code,
        "run_id": night.run_id,
        "as_of": str(night.as_of),
        "name": shown.get("name"),
        "eval_class": CODES["eval_class"].get(shown.get("eval_class"), shown.get("eval_class")),
        "legal_rep": {
            COLUMNS[k][0]: shown.get(k) for k in ("legal_rep_name", "legal_rep_id_number", "phone")
        },
        "score": ex["score"],
        "tier": ex["tier"],
        "tier_label": CODES["tier"].get(ex["tier"], ex["tier"]),
        "override": CODES["override"].get(ex["override"] or "", ex["override"] or ""),
        "flags": CODES["flags"].get(shown.get("flags") or "", shown.get("flags") or ""),
        "dimensions": [
            {"id": d, "name": dims.get(d, d), "score": shown.get(f"dim_{d}")} for d in dims
        ],
        "reasons": ex["reasons"],
        "records": ex["records"],
        "objections": [r for r in ex["records"] if r.get("objection")],
    }


def _in(row: dict, agency: dict) -> bool:
    div, ind = str(row.get("division_code") or ""), row.get("industry")
    ok = any(div.startswith(str(p)) for p in (agency.get("divisions") or [""]))
    return ok and (not agency.get("industries") or ind in agency["industries"])


def record_read(store, run_id: str, uscc: str, reader: str) -> None:
    """Every lookup is a read of an entity's evaluation: recorded like any other read."""
    with store.engine.begin() as conn:
        reads.record_read(conn, CHANNEL, run_id, 1, CHANNEL, reader, f"entity lookup {uscc}")


def reads_of(store, uscc: str) -> list[dict]:
    with store.engine.connect() as conn:
        return reads.reads_by_query(conn, CHANNEL, f"entity lookup {uscc}")


def entity_report_available() -> bool:
    """Whether the library can write an entity's own credit report."""
    import importlib.util

    return importlib.util.find_spec("scoring.reporting.entity_report") is not None
