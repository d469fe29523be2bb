"""Five nights of pulls and pushes against real servers: every pulled row accounted for, a
re-pull recorded as a repeat, a row deleted at the source revoked, a failed source handled as a
missing delivery (with the waiver path unchanged), watermarks moving only on published nights,
an upheld objection reaching the agency that held the old tier, with its receipt; and no secret
in any log, manifest, report or table."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa
from exchange_servers import (
    AGENCY_SECRET,
    API_SECRET,
    NIGHTS,
    SECRETS,
    TABLE,
    acknowledge_all,
    dump,
    servers,  # noqa: F401  (the fixture: real servers of this module)
    uri,
)

from scoring import pipeline
from scoring.exchange.night import exchange_status, pull_all, push_all
from scoring.exchange.secrets import conn_from_env
from scoring.exchange.sources import load_exchange
from scoring.history import exchange as hx
from scoring.history.store import Store, landed_files, runs
from scoring.publication.publish import load_agencies

AGENCY = "hlj-samr"
# The severe penalty night two brings for one entity, and its objection upheld on night three.
SEVERE_DOC = "黑eco罚字〔2026〕1号"


def _night(state, as_of: str, waivers=()):
    ctx = pipeline.RunContext(
        as_of=as_of,
        landing=state["landing"],
        home=state["home"],
        db_url="",
        waivers=waivers,
        progress=state["log"].append,
    )
    return pipeline.run_night(ctx)


def _pull(state, as_of: str, since=None, providers=None):
    at = dt.datetime.fromisoformat(as_of).replace(hour=15, tzinfo=dt.UTC)  # 23:00 Shanghai
    return {
        p["source_id"]: p
        for p in pull_all(
            state["store"],
            state["landing"],
            load_exchange(dt.date.fromisoformat(as_of)),
            lambda cid: conn_from_env(cid, state["env"]),
            dt.date.fromisoformat(as_of),
            at,
            providers=providers,
            since=since,
            say=state["log"].append,
        )
    }


def _push(state, as_of: str):
    at = dt.datetime.fromisoformat(as_of).replace(hour=18, tzinfo=dt.UTC)
    rows = push_all(
        state["store"],
        load_agencies(),
        lambda cid: conn_from_env(cid, state["env"]),
        at,
        say=state["log"].append,
    )
    return {r["agency_id"]: r for r in rows}


def _marks(state) -> dict:
    with state["store"].engine.connect() as c:
        return {k: v["watermark"] for k, v in hx.watermarks(c).items()}


def _provider_changes(state):
    """Between nights one and two the provider's system writes into its exchange table: two new
    penalties (one severe), one corrected row and one row marked deleted (当前状态 撤销)."""
    rows = state["rows"]
    eng = sa.create_engine(state["qzj_url"])
    stamp = dt.datetime(2026, 3, 7, 16, 0)
    first, second = rows.iloc[0], rows.iloc[1]
    target = state["target"]  # an entity the agency holds with a good tier
    new = [
        {**rows.iloc[2].to_dict(), "CF_WSH": "黑eco罚字〔2026〕2号", "SJC": stamp},
        {
            **rows.iloc[2].to_dict(),
            "CF_XDR_MC": target["name"],
            "CF_XDR_SHXYM": target["uscc"],
            "CF_WSH": SEVERE_DOC,
            "CF_CFLB1": "吊销许可证件",
            "CF_JG": "吊销排污许可证，罚款500万元",
            "CF_JDRQ": "2026-03-02",
            "SJC": stamp + dt.timedelta(seconds=1),
        },
    ]
    with eng.begin() as c:
        c.execute(
            sa.text(
                f'UPDATE "{TABLE}" SET "CF_JG" = \'罚款9.99万元（更正）\', "SJC" = :t WHERE "CF_WSH" = :d'
            ),
            {"t": stamp + dt.timedelta(seconds=2), "d": first["CF_WSH"]},
        )
        c.execute(
            sa.text(f'UPDATE "{TABLE}" SET "CF_ZT" = \'撤销\', "SJC" = :t WHERE "CF_WSH" = :d'),
            {"t": stamp + dt.timedelta(seconds=3), "d": second["CF_WSH"]},
        )
    pd.DataFrame(new).to_sql(TABLE, eng, if_exists="append", index=False)
    eng.dispose()
    return second


def _objection_upheld(state, as_of: str) -> None:
    """The entity objects to the severe penalty; the provider upholds it (Art. 39)."""
    t = state["target"]
    head = "操作类型,原文书编号,统一社会信用代码/身份证号码,主体名称,生效日期,处理结果,数据来源单位"
    body = [
        f"异议申请,{SEVERE_DOC},{t['uscc']},{t['name']},2026-03-07,,黑龙江省生态环境厅",
        f"异议办结,{SEVERE_DOC},{t['uscc']},{t['name']},2026-03-08,异议成立,黑龙江省生态环境厅",
    ]
    path = state["landing"] / "ndrc" / f"{as_of.replace('-', '')}_credit_change.csv"
    path.write_text("\n".join([head, *body]) + "\n", encoding="utf-8-sig")


def _new_sftp_file(state) -> None:
    """The provider drops a new XLSX on its SFTP server (a few rows of the first, one changed)."""
    folder = state["sftp_root"] / "outbox" / "penalty"
    wb = openpyxl.load_workbook(folder / "20260306_penalty.xlsx")
    ws = wb.active
    ws.delete_rows(6, ws.max_row)
    ws.cell(row=2, column=1).value = str(ws.cell(row=2, column=1).value) + "（更名）"
    wb.save(folder / "20260309_penalty.xlsx")


@pytest.fixture(scope="module")
def nights(request):
    state = dict(request.getfixturevalue("servers"), log=[], pulls={}, pushes={}, marks={})
    state["summaries"] = {}
    state["store"] = Store.open(None, state["home"])
    log = state["log"]
    # Night one: the API refuses its (wrong) credentials, so hf's feed is missing.
    n1 = NIGHTS[0]
    state["pulls"][n1] = _pull(state, n1)
    state["summaries"]["n1_failed"] = _night(state, n1)
    state["marks"]["n1_failed"] = _marks(state)
    # The operator waives the missing feed, and the changes that name its records (held as
    # unknown until the feed arrives), exactly as for a file that was never dropped.
    waivers = (
        {"gate": "feed_present", "scope": "hf", "approver": "王科长", "reason": "API down"},
        {
            "gate": "quarantine_share",
            "scope": "ndrc/20260306_credit_change.csv",
            "approver": "王科长",
            "reason": "changes of hf records wait for the hf feed",
        },
    )
    state["summaries"][n1] = _night(state, n1, waivers=waivers)
    state["marks"][n1] = _marks(state)
    with state["store"].engine.connect() as c:
        res = pd.read_sql(
            sa.text("SELECT uscc, name, tier FROM entity_results WHERE run_id = :r ORDER BY uscc"),
            c,
            params={"r": state["summaries"][n1]["run_id"]},
        )
    state["target"] = res[res["tier"] == "A"].iloc[0].to_dict()
    state["pushes"][n1] = _push(state, n1)
    acknowledge_all(state["agency_url"])
    # Night two: the credentials are fixed; the provider's table changed.
    state["env"]["CREDIT_CONN_HF_API"] = uri("http", "hf", API_SECRET, state["api"].port)
    state["deleted"] = _provider_changes(state)
    n2 = NIGHTS[1]
    state["pulls"][n2] = _pull(state, n2)
    state["summaries"][n2] = _night(state, n2)
    state["marks"][n2] = _marks(state)
    state["pushes"][n2] = _push(state, n2)
    acknowledge_all(state["agency_url"])
    # Night three: the same window pulled again (a repeat), and the objection upheld.
    n3 = NIGHTS[2]
    before = state["pulls"][n2]["eco-qzj-penalty"]["watermark_before"]
    state["pulls"][n3] = _pull(state, n3, since=before, providers=["eco"])
    _objection_upheld(state, n3)
    state["summaries"][n3] = _night(state, n3)
    state["marks"][n3] = _marks(state)
    state["pushes"][n3] = _push(state, n3)
    # Night four: a new file on the SFTP server; the agency has not confirmed night three yet.
    n4 = NIGHTS[3]
    _new_sftp_file(state)
    state["pulls"][n4] = _pull(state, n4)
    state["summaries"][n4] = _night(state, n4)
    state["marks"][n4] = _marks(state)
    acknowledge_all(state["agency_url"])
    state["pushes"][n4] = _push(state, n4)
    # Night five: nothing new anywhere.
    n5 = NIGHTS[4]
    state["pulls"][n5] = _pull(state, n5)
    state["summaries"][n5] = _night(state, n5)
    state["marks"][n5] = _marks(state)
    state["status"] = exchange_status(state["store"], dt.date(2026, 3, 6))
    assert log
    return state


def test_a_failed_source_is_a_missing_delivery_and_the_waiver_path_is_unchanged(nights):
    p = nights["pulls"][NIGHTS[0]]
    assert [p[s]["status"] for s in sorted(p)] == ["ok", "ok", "failed"]  # eco, ema, hf
    assert p["hf-api-credit"]["message"] == "source hf-api-credit: HTTP 401 (credentials refused)"
    failed = nights["summaries"]["n1_failed"]
    assert failed["status"] == "gate_failed" and "hf" in failed["error"]
    assert nights["summaries"][NIGHTS[0]]["status"] == "published"
    report = open(nights["summaries"][NIGHTS[0]]["report"], encoding="utf-8").read()
    assert "数据交换 Exchange" in report and "HTTP 401 (credentials refused)" in report


def test_watermarks_move_only_when_a_published_night_read_the_pull(nights):
    m, p = nights["marks"], nights["pulls"]
    assert m["n1_failed"] == {}  # the night that read the pulls failed: nothing moved
    assert m[NIGHTS[0]]["eco-qzj-penalty"] == p[NIGHTS[0]]["eco-qzj-penalty"]["watermark_after"]
    assert m[NIGHTS[0]]["eco-qzj-penalty"].startswith("2026-03-06T17:")
    assert m[NIGHTS[1]]["eco-qzj-penalty"].startswith("2026-03-07T16:00:03")
    assert "hf-api-credit" in m[NIGHTS[1]] and "hf-api-credit" not in m[NIGHTS[0]]
    assert m[NIGHTS[3]]["ema-sftp-penalty"] > m[NIGHTS[2]]["ema-sftp-penalty"]
    assert m[NIGHTS[4]] == m[NIGHTS[3]]
    assert {s["status"] for s in p[NIGHTS[4]].values()} == {"empty"}, [
        s["message"] for s in p[NIGHTS[4]].values()
    ]


def test_every_pulled_row_is_accounted_for(nights):
    with nights["store"].engine.connect() as c:
        files = pd.read_sql(
            sa.select(landed_files)
            .join(runs, runs.c.run_id == landed_files.c.run_id)
            .where(runs.c.status == "published"),
            c,
        )
    pulled = files[files["path"].str.contains(r"_(?:sql|http|sftp)\.csv$|ema/2026030[69]_")]
    assert len(pulled) >= 6
    assert (
        pulled["received"] == pulled["accepted"] + pulled["quarantined"] + pulled["excluded"]
    ).all()
    n2 = nights["pulls"][NIGHTS[1]]["eco-qzj-penalty"]
    assert (n2["rows"], n2["revoked"]) == (4, 1)
    got = files.set_index("path")["received"]
    assert got["eco/20260307_penalty_sql.csv"] == 4
    assert got["eco/20260306_penalty_sql.csv"] == len(nights["rows"])
    assert got["hf/20260307_credit_record_http.csv"] == len(nights["api"].items)


def test_a_repull_of_the_same_window_is_a_repeat(nights):
    p = nights["pulls"][NIGHTS[2]]["eco-qzj-penalty"]
    assert p["status"] == "repeat" and "same bytes" in p["message"]
    with nights["store"].engine.connect() as c:
        st = c.execute(
            sa.select(landed_files.c.status).where(
                landed_files.c.path == "eco/20260308_penalty_sql.csv"
            )
        ).scalar()
    assert st == "same_content"


def test_a_row_deleted_at_the_source_is_revoked(nights):
    from scoring.history.inputs import load_inputs

    store = nights["store"]
    with store.engine.connect() as c:
        _, rec, _, _ = load_inputs(store, c, "2026-03-07")
    gone = nights["deleted"]
    subject = gone["CF_XDR_SHXYM"] or gone["CF_XDR_SFZ"] or gone["CF_XDR_MC"]
    row = rec.set_index("record_key").loc[f"{gone['CF_WSH']}|{subject}"]
    # Withdrawn from its decision date: it never counts, and says why.
    assert row["removal_reason"] == "当前状态：撤销"
    assert pd.Timestamp(row["removal_date"]) == pd.Timestamp(row["decision_date"])
    assert nights["pulls"][NIGHTS[1]]["eco-qzj-penalty"]["revoked"] == 1


def test_an_upheld_objection_reaches_the_agency_with_a_receipt(nights):
    t = nights["target"]
    eng = sa.create_engine(nights["agency_url"])
    with eng.connect() as c:
        rows = pd.read_sql(
            sa.text(
                "SELECT run_id, tier, previous_tier, cause, publication_sha256 FROM"
                " credit_tier_push WHERE uscc = :u ORDER BY run_id"
            ),
            c,
            params={"u": t["uscc"]},
        )
        receipts = {
            r[0] for r in c.execute(sa.text("SELECT publication_sha256 FROM credit_tier_receipt"))
        }
    eng.dispose()
    assert list(rows["run_id"]) == ["nightly-20260306", "nightly-20260307", "nightly-20260308"]
    first, worse, back = rows.to_dict("records")
    assert first["tier"] == "A" and worse["tier"] != "A" and worse["previous_tier"] == "A"
    assert back["tier"] == "A" and back["previous_tier"] == worse["tier"]
    assert back["cause"] == "objection_upheld"
    assert back["publication_sha256"] in receipts
    pushes = nights["pushes"]
    assert pushes[NIGHTS[2]][AGENCY]["status"] == "pushed"  # the receipt comes back later
    with nights["store"].engine.connect() as c:
        done = {p["run_id"]: p["status"] for p in hx.pushes(c, AGENCY)}
    assert done["nightly-20260308"] == "acknowledged" and done["nightly-20260306"] == "acknowledged"


def test_credit_reads_shows_pushed_acknowledged_outstanding(nights):
    env = {"PYTHONPATH": str(nights["root"].parent), "CREDIT_DB_URL": ""}
    import os

    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "scoring",
            "reads",
            "--home",
            str(nights["home"]),
            "--agency",
            AGENCY,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "CREDIT_DB_URL": ""},
        cwd=pipeline.__file__.rsplit("/scoring/", 1)[0],
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    line = next(x for x in p.stdout.splitlines() if x.startswith(f"push {AGENCY}"))
    assert "last pushed nightly-20260309" in line and "outstanding nightly-20260309" in line
    assert "last acknowledged nightly-20260308" in line
    del env


def test_no_secret_anywhere(nights):
    seen = [dump(nights["log"]), dump(nights["pulls"]), dump(nights["pushes"])]
    seen.append(dump(nights["summaries"]))
    with nights["store"].engine.connect() as c:
        for t in ("exchange_pulls", "exchange_pushes", "runs", "landed_files"):
            seen.append(dump([list(r) for r in c.execute(sa.text(f"SELECT * FROM {t}"))]))
    for folder in (nights["home"], nights["landing"]):
        for f in sorted(folder.rglob("*")):
            if f.is_file() and f.suffix in (".html", ".json", ".csv", ".txt", ".log", ".md"):
                seen.append(f.read_text(encoding="utf-8", errors="replace"))
    text = "\n".join(seen)
    assert "数据交换 Exchange" in text  # the reports were read
    for s in SECRETS + ("wrong-" + API_SECRET[::-1],):
        assert s not in text, s
    assert AGENCY_SECRET not in text
