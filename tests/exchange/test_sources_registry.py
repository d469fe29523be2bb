"""Sources as data in the provider registry (config/providers.yaml), each pulled within its
schedule window; and a night that failed after its pull, whose file the next night reads beside
its own overlapping one: every overlapping row is counted once."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pandas as pd
import pytest
import sqlalchemy as sa
from exchange_servers import (
    NIGHTS,
    TABLE,
    read_text_csv,
    servers,  # noqa: F401  (the fixture: real servers of this module)
)

from scoring import pipeline
from scoring.common.config import ConfigError
from scoring.exchange.night import pull_all
from scoring.exchange.secrets import conn_from_env
from scoring.exchange.sources import load_exchange
from scoring.history.inputs import load_inputs
from scoring.history.store import Store, landed_files, runs
from scoring.intake.providers import Registry

SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def test_the_sources_are_the_registry_version_in_force():
    ex = load_exchange(dt.date(2026, 3, 6))
    assert ex.registry_sha256 == Registry.in_force("2026-03-06").sha256
    assert [(s.provider, s.kind) for s in ex.sources] == [
        ("eco", "sql"),
        ("ema", "sftp"),
        ("hf", "http"),
    ]
    # Before the version that brought them, providers only dropped files.
    assert load_exchange(dt.date(2026, 2, 1)).sources == ()


def _registry(tmp_path, source: dict) -> str:
    import yaml

    doc = {
        "versions": [
            {
                "effective_from": "2016-01-01",
                "providers": [
                    {
                        "id": "eco",
                        "name": "生态环境厅",
                        "folder": "eco",
                        "feeds": ["penalty"],
                        "sources": [source],
                    }
                ],
            }
        ]
    }
    p = tmp_path / "providers.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return str(p)


GOOD = {
    "id": "s1",
    "kind": "sql",
    "conn_id": "eco_qzj",
    "table": "T_X",
    "feed": "penalty",
    "layout": "sgs_penalty_2016",
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"conn_id": "postgresql://u:secret@h/db"}, "conn_id must be an Airflow Connection id"),
        ({"kind": "ftp"}, "kind must be one of landing, sql, sftp, http"),
        ({"window": {"from": "25:00", "to": "02:00"}}, "window from '25:00' is not HH:MM"),
        ({"table": "x; drop table y"}, "is not a plain name"),
        ({"password": "p"}, "unknown key 'password'"),
        ({"delete_table": "T_DEL"}, "a delete_table needs delete_key and status_column"),
        ({"table": None}, "a sql source needs table"),
        ({"ready": {"kind": "marker", "path": "x.ok"}}, "a sql source's ready kind is table"),
        (
            {"ready": {"kind": "table", "table": "T_PC"}},
            "a table readiness signal needs date_column",
        ),
        (
            {"ready": {"kind": "table", "table": "T", "date_column": "D", "pw": 1}},
            "unknown key 'pw'",
        ),
        (
            {"ready": {"kind": "table", "table": "T", "date_column": "D", "timeout_s": 86400}},
            "ready timeout_s is over 10800s",
        ),
    ],
)
def test_a_bad_source_is_one_line_naming_its_place(tmp_path, change, message):
    path = _registry(tmp_path, {k: v for k, v in {**GOOD, **change}.items() if v is not None})
    with pytest.raises(ConfigError) as err:
        load_exchange(None, path)
    line = str(err.value)
    assert "\n" not in line and message in line and line.startswith(f"{path}:")
    assert "secret" not in line


def test_a_source_for_a_feed_its_provider_does_not_deliver_is_refused(tmp_path):
    path = _registry(tmp_path, {**GOOD, "feed": "dishonest_debtor"})
    with pytest.raises(ValueError, match="provider eco does not deliver 'dishonest_debtor'"):
        load_exchange(None, path)


def _pull(state, as_of: str, now=None, exchange=None):
    at = dt.datetime.fromisoformat(as_of).replace(hour=15, tzinfo=dt.UTC)  # 23:00 Shanghai
    rows = pull_all(
        state["store"],
        state["landing"],
        exchange or load_exchange(dt.date.fromisoformat(as_of)),
        lambda cid: conn_from_env(cid, state["env"]),
        dt.date.fromisoformat(as_of),
        at,
        providers=["eco"],
        say=state["log"].append,
        now=now,
    )
    return rows[0]


@pytest.fixture(scope="module")
def overlap(servers):  # noqa: F811
    state = dict(servers, log=[])
    state["store"] = Store.open(None, state["home"])
    n1, n2 = NIGHTS[0], NIGHTS[1]
    # Outside its window (20:00-06:00 Asia/Shanghai) the source is not touched: one line.
    noon = dt.datetime(2026, 3, 6, 12, 0, tzinfo=SHANGHAI)
    state["noon"] = _pull(state, n1, now=noon)
    # Night one pulls, then fails (hf's API refuses its credentials: a hard gate, no waiver).
    state["p1"] = _pull(state, n1, now=dt.datetime(2026, 3, 6, 23, 0, tzinfo=SHANGHAI))
    ctx = dict(landing=state["landing"], home=state["home"], db_url="")
    state["s1"] = pipeline.run_night(
        pipeline.RunContext(as_of=n1, progress=state["log"].append, **ctx)
    )
    # One new row at the source; night two pulls from the same (unmoved) watermark, so its file
    # holds night one's rows again, and night two reads both files.
    eng = sa.create_engine(state["qzj_url"])
    new = {**state["rows"].iloc[0].to_dict(), "CF_WSH": "黑eco罚字〔2026〕9号"}
    new["SJC"] = dt.datetime(2026, 3, 7, 16, 0)
    pd.DataFrame([new]).to_sql(TABLE, eng, if_exists="append", index=False)
    eng.dispose()
    state["p2"] = _pull(state, n2)
    waivers = (
        {"gate": "feed_present", "scope": "hf", "approver": "王科长", "reason": "API down"},
        {"gate": "feed_present", "scope": "ema", "approver": "王科长", "reason": "not pulled here"},
        {
            "gate": "quarantine_share",
            "scope": "ndrc/20260306_credit_change.csv",
            "approver": "王科长",
            "reason": "changes of hf records wait for the hf feed",
        },
    )
    state["s2"] = pipeline.run_night(
        pipeline.RunContext(as_of=n2, progress=state["log"].append, waivers=waivers, **ctx)
    )
    # Night three: the provider deletes a row outright and names it in its delete table.
    state["gone"] = state["rows"].iloc[3]
    with sa.create_engine(state["qzj_url"]).begin() as c:
        c.execute(sa.text('CREATE TABLE "T_SGS_XZCF_DEL" ("CF_WSH" text, "SJC" timestamp)'))
        c.execute(sa.text('GRANT SELECT ON "T_SGS_XZCF_DEL" TO qzj_reader'))
        c.execute(
            sa.text(f'DELETE FROM "{TABLE}" WHERE "CF_WSH" = :d'), {"d": state["gone"]["CF_WSH"]}
        )
        c.execute(
            sa.text("INSERT INTO \"T_SGS_XZCF_DEL\" VALUES (:d, :t), ('黑eco罚字〔1999〕0号', :t)"),
            {"d": state["gone"]["CF_WSH"], "t": dt.datetime(2026, 3, 8, 16, 0)},
        )
    ex = load_exchange(dt.date.fromisoformat(NIGHTS[2]))
    src = replace(ex.sources[0], delete_table="T_SGS_XZCF_DEL", delete_key="CF_WSH")
    state["p3"] = _pull(state, NIGHTS[2], exchange=replace(ex, sources=(src,)))
    state["s3"] = pipeline.run_night(
        pipeline.RunContext(
            as_of=NIGHTS[2], progress=state["log"].append, waivers=waivers[:2], **ctx
        )
    )
    return state


def test_a_pull_outside_the_window_is_skipped_with_a_line(overlap):
    p = overlap["noon"]
    assert p["status"] == "skipped" and p["paths_json"] == "[]"
    assert p["message"] == (
        "source eco-qzj-penalty: not pulled at 2026-03-06 12:00, before its window 20:00–06:00 "
        "(Asia/Shanghai) for the night of 2026-03-06: a missing delivery"
    )


def test_overlapping_pulls_are_counted_once(overlap):
    assert overlap["s1"]["status"] != "published"
    assert overlap["s2"]["status"] == "published", "\n".join(overlap["log"][-3:])
    n_rows = len(overlap["rows"])
    assert (overlap["p1"]["rows"], overlap["p2"]["rows"]) == (n_rows, n_rows + 1)
    run2 = overlap["s2"]["run_id"]
    with overlap["store"].engine.connect() as c:
        files = pd.read_sql(
            sa.select(landed_files).where(landed_files.c.run_id == run2), c
        ).set_index("path")
        _, rec, _, _ = load_inputs(overlap["store"], c, NIGHTS[1])
    both = files.loc[["eco/20260306_penalty_sql.csv", "eco/20260307_penalty_sql.csv"]]
    assert (both["received"] == both["accepted"] + both["quarantined"] + both["excluded"]).all()
    eco = rec[rec["provider"] == "eco"] if "provider" in rec else rec
    docs = read_text_csv(overlap["landing"] / "eco" / "20260307_penalty_sql.csv")
    keys = set(docs["行政处罚决定书文号"])
    mine = eco[eco["record_key"].str.split("|").str[0].isin(keys)]
    # Each record once, however many files carried it.
    assert mine["record_key"].is_unique
    assert len(mine) == len(keys) == n_rows + 1


def test_the_manifest_names_the_registry_version_pulled_with(overlap):
    import json

    run2 = overlap["s2"]["run_id"]
    with overlap["store"].engine.connect() as c:
        (manifest,) = c.execute(
            sa.select(runs.c.manifest_json).where(runs.c.run_id == run2)
        ).first()
    m = json.loads(manifest)
    sha = Registry.in_force(NIGHTS[1]).sha256
    assert m["providers_sha256"] == sha
    assert {(p["source_id"], p["providers_sha256"]) for p in m["pulled_with"]} == {
        ("eco-qzj-penalty", sha)
    }


def test_a_delete_table_revokes_the_records_it_names(overlap):
    p3 = overlap["p3"]
    assert (p3["rows"], p3["revoked"]) == (1, 1)
    assert p3["message"].endswith(
        "; 1 deleted id(s) this source never delivered: nothing to revoke"
    )
    assert overlap["s3"]["status"] == "published", "\n".join(overlap["log"][-3:])
    gone = overlap["gone"]
    subject = gone["CF_XDR_SHXYM"] or gone["CF_XDR_SFZ"] or gone["CF_XDR_MC"]
    with overlap["store"].engine.connect() as c:
        _, rec, _, _ = load_inputs(overlap["store"], c, NIGHTS[2])
    row = rec.set_index("record_key").loc[f"{gone['CF_WSH']}|{subject}"]
    assert row["removal_reason"] == "当前状态：删除"
