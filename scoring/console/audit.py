"""The auditor's view: pick a past night, rerun it as known then or as known now (the audit
library: reruns never publish and write under CREDIT_HOME/audits/ only), then read the verdict —
identical, or the entities that differ with the records that caused it — beside the night's
manifest in words rather than raw JSON."""

from __future__ import annotations

import json
import re

import pandas as pd
import sqlalchemy as sa

from scoring.audit.rerun import MODES
from scoring.history.store import runs
from scoring.publication.nights import RUN_ID_PATTERN

# manifest key: (中文, English); keys not listed are shown under their own name.
MANIFEST_LABELS = {
    "run_id": ("批次", "run"),
    "as_of": ("评价日期", "as of"),
    "knowledge_cutoff": ("信息截止日", "knowledge cutoff"),
    "catalogue_sha256": ("目录版本哈希", "catalogue sha256"),
    "policy_sha256": ("评价规则哈希", "policy sha256"),
    "input_sha256": ("输入哈希", "input sha256"),
    "output_sha256": ("输出哈希", "output sha256"),
    "code_commit": ("程序版本", "code commit"),
    "entities_scored": ("评价主体数", "entities scored"),
    "tiers": ("等级分布", "tiers"),
    "waivers": ("门禁豁免", "gate waivers"),
    "timings": ("耗时（秒）", "timings (s)"),
    "input_batches": ("输入批次", "input batches"),
    "result_files": ("结果文件", "result files"),
    "partitions": ("分区数", "partitions"),
    "code_version": ("程序版本号", "code version"),
    "dependencies": ("依赖版本", "dependencies"),
    "gates": ("数据门禁", "gates"),
    "kind": ("运行类型", "kind"),
    "model_sha256": ("模型哈希", "model sha256"),
    "output_schema": ("输出结构", "output schema"),
}


def check_run_id(store, run_id: str) -> dict:
    """The stored run, or a one-line refusal naming what is wrong."""
    if not re.fullmatch(RUN_ID_PATTERN, run_id or ""):
        raise ValueError(f"批次号格式不对 / bad run id {run_id!r}: e.g. nightly-20260630")
    with store.engine.connect() as conn:
        row = conn.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise ValueError(f"没有批次 {run_id} / no stored run {run_id}")
    if not row.manifest_json:
        raise ValueError(f"批次 {run_id} 未完成评价，无清单 / run {run_id} has no manifest")
    return dict(row._mapping)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"复算方式须为 {' / '.join(MODES)} / mode must be one of {', '.join(MODES)}"
        )
    return mode


def past_runs(store, limit: int = 60) -> list[dict]:
    """Runs an auditor can pick, newest night first."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs.c.run_id, runs.c.as_of, runs.c.status, runs.c.output_sha256)
            .where(runs.c.manifest_json.is_not(None))
            .order_by(runs.c.as_of.desc(), runs.c.run_id.desc())
            .limit(limit)
        ).all()
    return [
        {"run_id": r.run_id, "as_of": str(r.as_of), "status": r.status, "output": r.output_sha256}
        for r in rows
    ]


def _value(v) -> str:
    if isinstance(v, dict):
        return "；".join(f"{k}: {_value(x)}" for k, x in sorted(v.items())) or "—"
    if isinstance(v, list):
        if v and all(isinstance(x, dict) for x in v):
            return f"{len(v)} 项 items"
        return "、".join(map(str, v)) or "—"
    return "—" if v is None else str(v)


def readable_manifest(run: dict) -> list[dict]:
    """The manifest as labelled rows; input batches summarised by kind with their row counts."""
    manifest = json.loads(run["manifest_json"])
    rows = []
    for key in sorted(manifest, key=lambda k: (k not in MANIFEST_LABELS, k)):
        zh, en = MANIFEST_LABELS.get(key, (key, key))
        v = manifest[key]
        if key == "input_batches":
            kinds: dict[str, list[int]] = {}
            for b in v:
                kind = b.get("table_name") or str(b.get("batch_id", "?")).split(":", 1)[0]
                kinds.setdefault(kind, []).append(int(b.get("rows", 0)))
            text = "；".join(
                f"{k}: {len(n)} 批 batches, {sum(n):,} 行 rows" for k, n in sorted(kinds.items())
            )
        elif key == "waivers":
            text = (
                "；".join(f"{w['gate']} ({w['scope']}) — {w['approver']}: {w['reason']}" for w in v)
                or "无 none"
            )
        else:
            text = _value(v)
        rows.append({"key": key, "zh": zh, "en": en, "value": text})
    return rows


def _folder(home, run_id: str, mode: str):
    """A rerun's folder; the run id and mode are checked first (they come from a request)."""
    if not re.fullmatch(RUN_ID_PATTERN, run_id or ""):
        raise ValueError(f"批次号格式不对 / bad run id {run_id!r}: e.g. nightly-20260630")
    return home / "audits" / run_id / check_mode(mode)


def rerun_result(home, run_id: str, mode: str) -> dict | None:
    """The rerun's verdict as written by the audit library, or None while there is none."""
    folder = _folder(home, run_id, mode)
    path = folder / "rerun.json"
    if not path.exists():
        return None
    out = json.loads(path.read_text(encoding="utf-8"))

    def rows(name: str, n: int = 200) -> list[dict]:
        f = folder / name
        if not f.exists() or f.stat().st_size == 0:
            return []
        try:
            df = pd.read_csv(f, dtype=str, keep_default_na=False, encoding="utf-8-sig", nrows=n)
        except pd.errors.EmptyDataError:
            return []
        return df.to_dict("records")

    return {
        "run_id": out["run_id"],
        "mode": out["mode"],
        "identical": bool(out["identical"]),
        "verdict": "identical 一致" if out["identical"] else "different 不一致",
        "output_sha256": out["output_sha256"],
        "original_output_sha256": out["original_output_sha256"],
        "changed_entities": len(out.get("changed_entities", [])),
        "rerun_seconds": out.get("rerun_seconds"),
        "waivers": out.get("waivers", []),
        "differences": rows("diff.csv"),
        "causes": rows("causes.csv"),
    }


STATE_FILE = "console_state.json"


def rerun_state(home, run_id: str, mode: str) -> dict:
    """Where a rerun started from the console is (running, done, failed), kept beside its output
    so that every api-server worker answers the same."""
    path = _folder(home, run_id, mode) / STATE_FILE
    if not path.exists():
        return {"state": "none"}
    return json.loads(path.read_text(encoding="utf-8"))


def set_rerun_state(home, run_id: str, mode: str, **state) -> None:
    folder = _folder(home, run_id, mode)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    tmp.replace(folder / STATE_FILE)
