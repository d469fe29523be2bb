"""Bad input at the exchange: wrong credentials, a missing table, a renamed column, a server that
hangs, a page of HTML instead of JSON, an SFTP path with '..', a push target that refuses the
write. Each is one clear line for its source or agency, nothing half-written, and the other
sources of the night are still pulled."""

from __future__ import annotations

import datetime as dt
import time

import pytest
import sqlalchemy as sa
from exchange_servers import (
    AGENCY_SECRET,
    API_SECRET,
    QZJ_SECRET,
    SFTP_SECRET,
    TABLE,
    Hang,
    JsonApi,
    SftpServer,
    fresh_database,
    provider_table,
    uri,
)

from scoring.exchange.night import pull_all, push_all
from scoring.exchange.pull import TRANSIENT
from scoring.exchange.secrets import conn_from_env, redact
from scoring.exchange.sources import Exchange, Source
from scoring.history import exchange as hx
from scoring.history.store import Store, entity_results, runs

AS_OF = dt.date(2026, 3, 6)
AT = dt.datetime(2026, 3, 6, 15, 0, tzinfo=dt.UTC)


def _penalties(n: int = 3):
    import pandas as pd

    return pd.DataFrame(
        {
            "行政相对人名称": [f"某公司{i}" for i in range(n)],
            "行政相对人代码_1(统一社会信用代码)": ["91230100MA1AAAAA0X"] * n,
            "行政处罚决定书文号": [f"黑罚〔2026〕{i}号" for i in range(n)],
            "处罚类别": ["罚款"] * n,
            "处罚决定日期": ["2026-03-01"] * n,
        }
    )


def _source(id_, kind, **kw) -> Source:
    base = dict(
        provider="eco", feed="penalty", layout="sgs_penalty_2016", conn_id=id_, timeout_s=1.5
    )
    return Source(id=id_, kind=kind, **{**base, **kw})


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_server_url):
    root = tmp_path_factory.mktemp("bad")
    sftp_root = root / "sftp"
    (sftp_root / "drop").mkdir(parents=True)
    (sftp_root / "drop" / "20260306_penalty.csv").write_bytes(
        _penalties().to_csv(index=False).encode("utf-8-sig")
    )
    sftp = SftpServer(sftp_root, "ema", SFTP_SECRET)
    api = JsonApi("hf", API_SECRET)
    api.items = [
        {
            "信息项编码": "HOUSING_FUND_ARREARS",
            "主体名称": f"某公司{i}",
            "文书编号": f"HF-{i}",
            "认定日期": "2026-03-01",
            "updated_at": f"2026-03-06T10:00:{i:02d}",
        }
        for i in range(5)
    ]
    api.mode = "html"
    hang = Hang()
    with fresh_database(pg_server_url) as qzj, fresh_database(pg_server_url) as agency:
        provider_table(
            qzj.render_as_string(hide_password=False),
            _penalties(),
            dt.datetime(2026, 3, 6, 9),
        )
        eng = sa.create_engine(qzj.render_as_string(hide_password=False))
        with eng.begin() as c:  # the same table, with the document number column renamed
            c.execute(sa.text(f'CREATE TABLE "T_RENAMED" AS SELECT * FROM "{TABLE}"'))
            c.execute(sa.text('ALTER TABLE "T_RENAMED" RENAME COLUMN "CF_WSH" TO "CF_WSH_NEW"'))
            c.execute(sa.text('GRANT SELECT ON "T_RENAMED" TO qzj_reader'))
        eng.dispose()
        db = f"/{qzj.database}"
        env = {
            "CREDIT_CONN_GOOD": uri("postgresql", "qzj_reader", QZJ_SECRET, 5432, db),
            "CREDIT_CONN_WRONG_LOGIN": uri("postgresql", "no_such_reader", QZJ_SECRET, 5432, db),
            "CREDIT_CONN_SQL_HANG": uri("postgresql", "qzj_reader", QZJ_SECRET, hang.port, db),
            "CREDIT_CONN_HTTP_HANG": uri("http", "hf", API_SECRET, hang.port),
            "CREDIT_CONN_SFTP_HANG": uri("sftp", "ema", SFTP_SECRET, hang.port),
            "CREDIT_CONN_HTML": uri("http", "hf", API_SECRET, api.port),
            "CREDIT_CONN_SFTP": uri(
                "sftp", "ema", SFTP_SECRET, sftp.port, host_key=" ".join(sftp.host_key)
            ),
            "CREDIT_CONN_SFTP_WRONG": uri(
                "sftp", "ema", "not-" + SFTP_SECRET, sftp.port, host_key=" ".join(sftp.host_key)
            ),
            "CREDIT_CONN_AGENCY": uri(
                "postgresql", "postgres", AGENCY_SECRET, 5432, f"/{agency.database}"
            ),
        }
        yield {
            "root": root,
            "env": env,
            "agency_url": agency.render_as_string(hide_password=False),
        }
    sftp.close()
    api.close()
    hang.close()


BAD = {
    "wrong-login": ("wrong_login", "sql", dict(table=TABLE, watermark="SJC"), "auth"),
    "missing-table": ("good", "sql", dict(table="T_NO_SUCH", watermark="SJC"), "missing_table"),
    "renamed-column": ("good", "sql", dict(table="T_RENAMED", watermark="SJC"), "schema"),
    "sql-hangs": ("sql_hang", "sql", dict(table=TABLE, watermark="SJC"), "timeout"),
    "http-hangs": ("http_hang", "http", dict(endpoint="/api", layout="credit_record"), "timeout"),
    "sftp-hangs": ("sftp_hang", "sftp", dict(path="drop"), "timeout"),
    "html-page": (
        "html",
        "http",
        dict(endpoint="/api", layout="credit_record", watermark="updated_at", page_size=2),
        "not_json",
    ),
    "sftp-climbs": ("sftp", "sftp", dict(path="drop/../../etc"), "unsafe_path"),
    "sftp-wrong-login": ("sftp_wrong", "sftp", dict(path="drop"), "auth"),
}
EXPECTED = {
    "wrong-login": "source wrong-login: the exchange database refused the login",
    "missing-table": "source missing-table: table T_NO_SUCH not found",
    "renamed-column": "source renamed-column: required column(s) missing: CF_WSH (renamed?)",
    "sql-hangs": "source sql-hangs: no answer in 1.5s",
    "http-hangs": "source http-hangs: no answer in 1.5s",
    "sftp-hangs": "source sftp-hangs: no answer in 1.5s",
    "html-page": "source html-page: page 2 is not JSON (text/html)",
    "sftp-climbs": "source sftp-climbs: SFTP path 'drop/../../etc' is refused (it climbs with '..')",
    "sftp-wrong-login": "source sftp-wrong-login: the SFTP server refused the login",
}


def test_each_bad_source_is_one_line_and_the_night_goes_on(world, tmp_path):
    sources = [_source(k, kind, conn_id=conn, **kw) for k, (conn, kind, kw, _) in BAD.items()]
    good = _source("good-one", "sql", conn_id="good", table=TABLE, watermark="SJC")
    unset = _source("no-conn", "sql", conn_id="never_set", table=TABLE)
    exchange = Exchange(sources=(*sources, good, unset))
    store = Store.open(None, tmp_path / "home")
    landing = tmp_path / "landing"
    log: list[str] = []
    t = time.perf_counter()
    got = {
        p["source_id"]: p
        for p in pull_all(
            store,
            landing,
            exchange,
            lambda c: conn_from_env(c, world["env"]),
            AS_OF,
            AT,
            say=log.append,
        )
    }
    took = time.perf_counter() - t
    assert took < 30, took  # every hang bounded by its timeout
    # The nightly DAG retries only what the network may fix.
    assert {k for k, p in got.items() if p["code"] in TRANSIENT} == {
        "sql-hangs",
        "http-hangs",
        "sftp-hangs",
    }
    for key, (_, _, _, code) in BAD.items():
        p = got[key]
        assert (p["status"], p["message"], p["code"]) == ("failed", EXPECTED[key], code), key
        assert p["paths_json"] == "[]" and p["watermark_after"] is None
    assert got["no-conn"]["message"] == (
        "source no-conn: connection never_set is not configured (set CREDIT_CONN_NEVER_SET)"
    )
    assert got["good-one"]["status"] == "ok" and got["good-one"]["rows"] == 3
    # Only the good source's delivery is in the landing folder, and nothing half-written.
    assert sorted(p.name for p in landing.rglob("*") if p.is_file()) == ["20260306_penalty_sql.csv"]
    text = "\n".join(log + [p["message"] for p in got.values()])
    assert all("\n" not in p["message"] for p in got.values())
    for s in (QZJ_SECRET, API_SECRET, SFTP_SECRET, "not-" + SFTP_SECRET):
        assert s not in text
    with store.engine.connect() as c:
        assert hx.watermarks(c) == {}  # no night has read anything yet


def _published_run(store, tiers: dict[str, str]) -> str:
    run_id = "nightly-20260306"
    with store.engine.begin() as c:
        c.execute(
            runs.insert().values(
                run_id=run_id,
                kind="nightly",
                as_of=AS_OF,
                knowledge_cutoff=AS_OF,
                status="published",
            )
        )
        for i, (uscc, tier) in enumerate(sorted(tiers.items())):
            c.execute(
                entity_results.insert().values(
                    run_id=run_id,
                    uscc=uscc,
                    name=f"某公司{i}",
                    division_code="230102",
                    industry="C",
                    score=800 - 100 * i,
                    tier=tier,
                )
            )
    return run_id


def test_a_push_the_target_refuses_leaves_nothing_and_is_sent_again(world, tmp_path):
    eng = sa.create_engine(world["agency_url"])
    with eng.begin() as c:  # the agency's table refuses tier D rows (say, a stricter schema)
        c.execute(
            sa.text(
                "CREATE TABLE strict_push (publication_sha256 char(64), run_id text, uscc text,"
                " name text, tier char(1) CHECK (tier <> 'D'), previous_tier text, score int,"
                " cause text, pushed_at timestamp)"
            )
        )
        c.execute(
            sa.text(
                "CREATE TABLE strict_receipt (publication_sha256 char(64), acknowledged_at timestamp)"
            )
        )
    store = Store.open(None, tmp_path / "home")
    _published_run(store, {"91230100MA1AAAAA0X": "A", "91230100MA1BBBBB0X": "D"})
    agency = {
        "id": "hlj-samr",
        "divisions": ["23"],
        "industries": [],
        "push": {
            "kind": "sql",
            "conn_id": "agency",
            "table": "strict_push",
            "receipt_table": "strict_receipt",
        },
    }
    connect = lambda c: conn_from_env(c, world["env"])  # noqa: E731
    (first,) = push_all(store, [agency], connect, AT)
    assert first["status"] == "failed" and "\n" not in first["message"]
    assert first["code"] == "refused"  # it answered and refused: a retry would be refused again
    assert first["message"].startswith("push hlj-samr: the target refused the write:")
    assert AGENCY_SECRET not in first["message"]
    with eng.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM strict_push")).scalar() == 0
    with store.engine.connect() as c:
        assert hx.pushed_tiers(c, "hlj-samr") == {}  # it still holds nothing
    with eng.begin() as c:  # the agency fixes its table; the next push sends everything
        c.execute(sa.text("ALTER TABLE strict_push DROP CONSTRAINT strict_push_tier_check"))
    (second,) = push_all(store, [agency], connect, AT)
    assert (second["status"], second["rows"]) == ("pushed", 2)
    with eng.begin() as c:
        assert c.execute(sa.text("SELECT count(*) FROM strict_push")).scalar() == 2
        c.execute(sa.text("INSERT INTO strict_receipt VALUES (:s, now())"), {"s": second["sha256"]})
    (third,) = push_all(store, [agency], connect, AT)
    assert third["status"] == "unchanged"
    with store.engine.connect() as c:
        (row,) = hx.agency_exchange(c)
    assert (row["last_acknowledged"], row["outstanding"], row["failed"]) == (
        "nightly-20260306",
        [],
        1,
    )
    eng.dispose()


def test_a_push_target_that_does_not_answer_is_retried_alone(world, tmp_path):
    """A target that is down fails with a code worth retrying (the DAG retries it with backoff);
    one that refuses the login does not; the retry sends only to the agencies that failed."""
    from exchange_servers import free_port

    from scoring.exchange.secrets import retried

    eng = sa.create_engine(world["agency_url"])
    with eng.begin() as c:
        c.execute(
            sa.text(
                "CREATE TABLE retry_push (publication_sha256 char(64), run_id text, uscc text,"
                " name text, tier char(1), previous_tier text, score int, cause text,"
                " pushed_at timestamp)"
            )
        )
    eng.dispose()
    db = "/" + sa.engine.make_url(world["agency_url"]).database
    env = {
        **world["env"],
        "CREDIT_CONN_DOWN": uri("postgresql", "postgres", AGENCY_SECRET, free_port(), db),
        "CREDIT_CONN_NOBODY": uri("postgresql", "no_such_agency_user", AGENCY_SECRET, 5432, db),
    }
    store = Store.open(None, tmp_path / "home")
    run_id = _published_run(store, {"91230100MA1AAAAA0X": "A"})
    agencies = [
        {
            "id": f"a-{conn}",
            "divisions": ["23"],
            "industries": [],
            "push": {"kind": "sql", "conn_id": conn, "table": "retry_push", "timeout_s": 3},
        }
        for conn in ("agency", "down", "nobody")
    ]
    connect = lambda c: conn_from_env(c, env)  # noqa: E731
    ok, down, nobody = push_all(store, agencies, connect, AT, run_id)
    assert (ok["status"], ok["code"]) == ("pushed", None)
    assert down["status"] == "failed" and down["code"] == "unreachable" and retried(down["code"])
    assert nobody["status"] == "failed" and nobody["code"] == "auth" and not retried("auth")
    assert AGENCY_SECRET not in down["message"] + nobody["message"]
    again = push_all(store, agencies, connect, AT, run_id, again=True)
    assert [r["agency_id"] for r in again] == ["a-down", "a-nobody"]  # a-agency has it


def test_redact_hides_uri_passwords_and_known_secrets():
    from scoring.exchange.secrets import conn_from_uri

    c = conn_from_uri("x", "postgresql://u:p%40ss-w0rd@h:5432/db")
    assert c.secret == "p@ss-w0rd" and "p@ss" not in repr(c)
    msg = redact("failed for postgresql://u:p%40ss-w0rd@h/db and p@ss-w0rd\nagain", c)
    assert msg == "failed for postgresql://u:***@h/db and *** again"


def _credit(*args, env: dict):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "scoring", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(repo), **env},
        cwd=repo,
        timeout=300,
    )


def test_credit_pull_reads_credentials_from_the_environment(world, tmp_path):
    args = ["pull", "--provider", "eco", "--as-of", "2026-03-06", "--home", str(tmp_path / "h")]
    args += ["--landing", str(tmp_path / "landing"), "--db", f"sqlite:///{tmp_path / 'c.db'}"]
    ok = _credit(*args, env={"CREDIT_CONN_ECO_QZJ": world["env"]["CREDIT_CONN_GOOD"]})
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout == "eco-qzj-penalty: ok — 3 rows -> eco/20260306_penalty_sql.csv\n"
    again = _credit(*args, env={"CREDIT_CONN_ECO_QZJ": world["env"]["CREDIT_CONN_GOOD"]})
    assert "(the same bytes as an earlier pull)" in again.stdout  # nothing committed it yet
    bad = _credit(*args, env={"CREDIT_CONN_ECO_QZJ": world["env"]["CREDIT_CONN_WRONG_LOGIN"]})
    assert bad.returncode == 4
    assert bad.stdout == (
        "eco-qzj-penalty: failed — source eco-qzj-penalty: the exchange database refused the login\n"
    )
    assert QZJ_SECRET not in bad.stdout + bad.stderr + ok.stderr
    unset = _credit(*args, env={"CREDIT_CONN_ECO_QZJ": ""})
    assert unset.returncode == 4 and "set CREDIT_CONN_ECO_QZJ" in unset.stdout
    nobody = _credit("pull", "--provider", "nobody", "--home", str(tmp_path / "h"), env={})
    assert nobody.returncode == 2
    assert nobody.stderr == "credit pull: provider nobody has no exchange source\n"
