"""One policy registry in the credit database: an older store's two histories carried over, a
promotion (a file or a candidate) that writes only the registry, and audit reruns that see the
approvals the night knew of; on SQLite and on the real PostgreSQL server."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from alembic import command
from alembic.config import Config
from conftest import run_cli

from scoring.common.config import CONFIG_DIR, canonical_json, content_hash
from scoring.evaluation.evaluate import Policy
from scoring.history import policy_registry
from scoring.history.store import Store

SEED = CONFIG_DIR / "policy" / "history.yaml"
V1, V2 = CONFIG_DIR / "policy" / "v1.yaml", CONFIG_DIR / "policy" / "v2.yaml"
NIGHT = "2026-06-30"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'home' / 'credit.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    from scoring.world.province import write_deliveries

    out = tmp_path_factory.mktemp("registry_province")
    write_deliveries(out, NIGHT, n_entities=1200, seed=5, defect_rate=0.02)
    return out / "landing"


def _cli(url: str, home: Path, *args: str):
    return run_cli(*args, "--db", url, "--home", str(home), env={"CREDIT_DB_URL": ""})


def _one_line_refusal(p, words: str) -> None:
    assert p.returncode != 0
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def _variant(path: Path, label: str, a_cut: int | None = None) -> dict:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["version_label"] = label
    # A new document must not ask for suspension (Art. 39); only the shipped v1/v2 may.
    doc["overrides"]["pending_objection"] = "count"
    if a_cut is not None:
        doc["tiers"][0]["min_score"] = a_cut
    return doc


def _history(url: str, home: Path) -> list[dict]:
    p = _cli(url, home, "policy", "history", "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_a_store_of_the_two_file_scheme_upgrades_with_its_history_intact(url, tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(Path(policy_registry.__file__).parents[1] / "migrations")
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "0007")  # the schema before the registry
    # As `credit policy promote FILE` wrote it: the policy copied beside the yaml, its diff under
    # diffs/, and an entry appended to the yaml.
    old_config = tmp_path / "config_policy"
    old_config.mkdir()
    for f in ("v1.yaml", "v2.yaml", "history.yaml"):
        (old_config / f).write_bytes((CONFIG_DIR / "policy" / f).read_bytes())
    (old_config / "diffs").mkdir()
    (old_config / "diffs" / "4e20fdb509c208e3.json").write_bytes(
        (CONFIG_DIR / "policy" / "diffs" / "4e20fdb509c208e3.json").read_bytes()
    )
    file_doc = _variant(V2, "v2 as the deployment approved it")
    file_sha = content_hash(file_doc)
    (old_config / f"policy-{file_sha[:12]}.json").write_text(canonical_json(file_doc))
    (old_config / "diffs" / "aaaaaaaaaaaaaaaa.json").write_text('{"diff_id": "aa"}')
    entry = {
        "effective_from": "2026-08-01",
        "policy": f"policy-{file_sha[:12]}.json",
        "sha256": file_sha,
        "approved_by": "信用评价科 李四",
        "reason": "clean entities are A",
        "diff": {
            "id": "aa",
            "as_of": "2026-07-31",
            "file": "diffs/aaaaaaaaaaaaaaaa.json",
            "old_sha256": Policy.load(V2).sha256,
        },
    }
    block = yaml.safe_dump([entry], allow_unicode=True, sort_keys=False, width=1000)
    with open(old_config / "history.yaml", "a", encoding="utf-8") as fh:
        fh.write("".join("  " + line for line in block.splitlines(keepends=True)))
    # As promoting a calibration candidate wrote it: CREDIT_HOME/policy/history.json.
    cand_doc = _variant(V2, "learned candidate", a_cut=950)
    (home / "policy").mkdir()
    (home / "policy" / "cand-0123456789abcdef.json").write_text(canonical_json(cand_doc))
    (home / "policy" / "history.json").write_text(
        json.dumps(
            [
                {
                    "effective_from": "2026-09-01",
                    "policy": "cand-0123456789abcdef.json",
                    "sha256": content_hash(cand_doc),
                    "approved_by": "李审核",
                    "reason": "月度校准通过评审",
                }
            ],
            ensure_ascii=False,
        )
    )

    Store.open(url, home, policy_seed=old_config / "history.yaml")  # the upgrade
    Store.open(url, home, policy_seed=old_config / "history.yaml")  # opened again: no duplicates
    shown = _history(url, home)
    assert [(e["entry_id"], e["origin"], e["effective_from"]) for e in shown] == [
        (1, "shipped seed", "2022-07-01"),
        (2, "shipped seed", "2026-06-01"),
        (3, "file, carried over", "2026-08-01"),
        (4, "candidate, carried over", "2026-09-01"),
    ]
    assert shown[2]["sha256"] == file_sha and shown[2]["approved_by"] == "信用评价科 李四"
    assert shown[2]["diff_id"] == "aa" and shown[3]["sha256"] == content_hash(cand_doc)
    text = _cli(url, home, "policy", "history").stdout
    assert f"policy-{file_sha[:12]}.json" in text and "cand-0123456789abcdef.json" in text
    # The documents came along: the registry alone decides, on either side of each date.
    with Store.open(url, home).engine.connect() as conn:
        registry = policy_registry.entries(conn)
    assert Policy.in_force("2026-07-31", registry).sha256 == Policy.load(V2).sha256
    assert Policy.in_force("2026-08-01", registry).sha256 == file_sha
    assert Policy.in_force("2026-09-01", registry).doc["tiers"][0]["min_score"] == 950


def test_promotions_write_only_the_registry_and_a_rerun_sees_what_the_night_knew(
    url, landing, tmp_path
):
    home = tmp_path / "home"
    seed_bytes = SEED.read_bytes()
    config_files = sorted(p.name for p in (CONFIG_DIR / "policy").rglob("*"))
    # The night scored (not yet published, so a promotion may still reach back to its date).
    night = ["run", "--as-of", NIGHT, "--landing", str(landing), "--json"]
    p = _cli(url, home, *night, "--step", "ingest", "--step", "gate", "--step", "score")
    assert p.returncode == 0, p.stderr[-2000:]
    run_id = f"nightly-{NIGHT.replace('-', '')}"
    with sa.create_engine(url).connect() as conn:
        manifest = json.loads(
            conn.execute(
                sa.text("select manifest_json from runs where run_id = :r"), {"r": run_id}
            ).scalar()
        )
    assert manifest["policy_approval"]["entry_id"] == 2
    assert manifest["policy_approval"]["registry_known_to"] == 2

    # Bad promotions: one line each, nothing recorded.
    promote = ["policy", "promote", "--approved-by", "李审核", "--reason", "评审通过"]
    _one_line_refusal(
        _cli(url, home, *promote, "cand-nope", "--effective-from", "2026-07-01"),
        "no candidate 'cand-nope'",
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    _one_line_refusal(
        _cli(url, home, *promote, str(bad), "--effective-from", "2026-07-01"),
        f"cannot read {bad}: expected a mapping at the top level",
    )
    diff_dir = tmp_path / "diff"
    p = _cli(
        url, home, "policy", "diff", str(V1), str(V2), "--as-of", NIGHT, "--out", str(diff_dir)
    )
    assert p.returncode == 0, p.stderr[-2000:]
    diff_json = str(next(diff_dir.rglob("diff.json")))
    no_approver = ["policy", "promote", str(V2), "--reason", "x", "--diff", diff_json]
    _one_line_refusal(
        _cli(url, home, *no_approver, "--effective-from", "2026-06-10"), "an approver"
    )
    # A calibration candidate, stored as `credit calibrate` stores one.
    cand = _variant(V2, "learned candidate", a_cut=950)
    store = Store.open(url, home)
    with store.engine.begin() as conn:
        store.save_artifact(
            conn, "candidate", content_hash(cand), canonical_json(cand), "cand-0123456789abcdef"
        )
    _one_line_refusal(
        _cli(url, home, *promote, "cand-0123456789abcdef", "--effective-from", "2026-05-01"),
        "is not after the latest policy in the registry (2026-06-01)",
    )
    _one_line_refusal(
        _cli(url, home, *promote, "cand-0123456789abcdef", "--effective-from", "2026-13-01"),
        "is not YYYY-MM-DD",
    )
    assert len(_history(url, home)) == 2

    # A file, then the candidate, both from dates before the night.
    p = _cli(url, home, *promote, str(V2), "--diff", diff_json, "--effective-from", "2026-06-10")
    assert p.returncode == 0, p.stderr
    p = _cli(url, home, *promote, "cand-0123456789abcdef", "--effective-from", "2026-06-20")
    assert p.returncode == 0, p.stderr
    shown = _history(url, home)
    assert [(e["entry_id"], e["origin"]) for e in shown][2:] == [(3, "file"), (4, "candidate")]
    assert all(e["recorded_at"] for e in shown[2:]) and shown[2]["diff_id"]
    assert SEED.read_bytes() == seed_bytes  # byte for byte
    assert sorted(p.name for p in (CONFIG_DIR / "policy").rglob("*")) == config_files
    assert not (home / "policy" / "history.json").exists()

    # As known then: the approval the night scored under, and the night's bytes.
    p = _cli(url, home, "rerun", run_id, "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    then = json.loads(p.stdout)
    assert then["identical"] and then["output_sha256"] == manifest["output_sha256"]
    assert then["policy_approval"]["entry_id"] == 2
    assert then["policy_approval"]["approved_by"] == "公共信用工作机构（信用评价科）"
    # As known now: the candidate approved since is in force on that date, and it tiers otherwise.
    p = _cli(url, home, "rerun", run_id, "--mode", "as-known-now", "--json")
    assert p.returncode == 0, p.stderr[-2000:]
    now = json.loads(p.stdout)
    assert now["policy_approval"]["entry_id"] == 4 and now["policy_sha256"] == content_hash(cand)
    assert not now["identical"]


def test_a_new_policy_asking_to_suspend_is_refused_while_the_shipped_ones_load():
    """《黑龙江省社会信用条例》 第三十九条第二款: "应当自收到异议申请之日起一个工作日内作出异议标注" --
    an objection is marked, never suspends the record. The shipped v1/v2 (hashes pinned) keep
    loading with their ignored key; a new document asking for it is refused in one line."""
    from scoring.evaluation.evaluate import Policy

    for path in (V1, V2):
        assert Policy.load(path).doc["overrides"]["pending_objection"] == "suspend"
    doc = yaml.safe_load(V2.read_text(encoding="utf-8"))
    doc["version_label"] = "a new one"
    with pytest.raises(ValueError, match=r"Art\. 39") as exc:
        Policy.from_doc(doc)
    assert "\n" not in str(exc.value)
    doc["overrides"]["pending_objection"] = "count"
    assert Policy.from_doc(doc).doc["version_label"] == "a new one"
