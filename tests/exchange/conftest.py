"""Five nights of exchange against real servers started here: a provider's exchange database
(前置机) with a table in the exchange field codes, an SFTP server serving XLSX files, an HTTP
server of paged JSON, and an agency's own database as a push target."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pandas as pd
import pytest
import sqlalchemy as sa
from exchange_servers import JsonApi, SftpServer, fresh_database

ENTITIES = 300
NIGHTS = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
# Secrets the servers accept: none of them may appear in any log, manifest, report or table.
SFTP_SECRET = "sftp-Pw-7f3a9c1e"
API_SECRET = "api-Pw-b2d4e6f8"
QZJ_SECRET = "qzj-Pw-0c9e8d7b"
AGENCY_SECRET = "agency-Pw-5a4b3c2d"
SECRETS = (SFTP_SECRET, API_SECRET, QZJ_SECRET, AGENCY_SECRET)
TABLE = "T_SGS_XZCF"


def provider_table(url, codes: dict, frame: pd.DataFrame, stamp: dt.datetime) -> pd.DataFrame:
    """The provider's 前置机 table in exchange field codes, filled with its penalties, each row
    stamped with its 数据更新时间戳 (SJC) and 当前状态 (CF_ZT)."""
    back = {h: c for c, h in codes.items()}
    rows = frame[[h for h in frame.columns if h in back]].rename(columns=back)
    rows = rows.assign(
        SJC=[stamp + dt.timedelta(seconds=i) for i in range(len(rows))], CF_ZT="正常"
    )
    eng = sa.create_engine(url)
    cols = ", ".join(f'"{c}" text' for c in rows.columns if c != "SJC")
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE TABLE "{TABLE}" ({cols}, "SJC" timestamp NOT NULL)'))
        c.execute(
            sa.text(f'CREATE ROLE qzj_reader LOGIN PASSWORD \'{QZJ_SECRET}\'')
            if not c.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname='qzj_reader'")).first()
            else sa.text("SELECT 1")
        )
        c.execute(sa.text(f'GRANT SELECT ON "{TABLE}" TO qzj_reader'))
    rows.to_sql(TABLE, eng, if_exists="append", index=False)
    eng.dispose()
    return rows


def agency_tables(url) -> None:
    """The agency's own system: where tiers are pushed, and where it writes its receipts."""
    eng = sa.create_engine(url)
    with eng.begin() as c:
        c.execute(
            sa.text(
                "CREATE TABLE credit_tier_push (publication_sha256 char(64) NOT NULL, run_id text"
                " NOT NULL, uscc varchar(18) NOT NULL, name text, tier char(1) NOT NULL CHECK"
                " (tier IN ('A','B','C','D')), previous_tier text, score int, cause text,"
                " pushed_at timestamp)"
            )
        )
        c.execute(
            sa.text(
                "CREATE TABLE credit_tier_receipt (publication_sha256 char(64) PRIMARY KEY,"
                " rows int, acknowledged_at timestamp DEFAULT now())"
            )
        )
    eng.dispose()


def acknowledge_all(url) -> int:
    """The agency's system confirms what it received (one receipt row per publication hash)."""
    eng = sa.create_engine(url)
    with eng.begin() as c:
        n = c.execute(
            sa.text(
                "INSERT INTO credit_tier_receipt (publication_sha256, rows) SELECT"
                " publication_sha256, count(*) FROM credit_tier_push GROUP BY 1"
                " ON CONFLICT DO NOTHING"
            )
        ).rowcount
    eng.dispose()
    return n


def uri(scheme: str, user: str, secret: str, port: int, path: str = "", **extra) -> str:
    from urllib.parse import quote, urlencode

    q = f"?{urlencode(extra)}" if extra else ""
    return f"{scheme}://{user}:{quote(secret, safe='')}@127.0.0.1:{port}{path}{q}"


@pytest.fixture(scope="module")
def servers(tmp_path_factory, pg_server_url):
    """The world of night one, with three providers' deliveries moved behind real servers."""
    from scoring.exchange.sources import load_exchange
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("exchange")
    write_deliveries(root, NIGHTS[0], n_entities=ENTITIES, seed=5)
    landing = root / "landing"
    codes = load_exchange().field_codes["sgs_penalty"]
    eco = landing / "eco" / "20260306_penalty.csv"
    penalties = read_text_csv(eco)
    eco.unlink()
    sftp_root = root / "sftp"
    (sftp_root / "outbox" / "penalty").mkdir(parents=True)
    (sftp_root / "agency").mkdir()
    shutil.move(landing / "ema" / "20260306_penalty.xlsx", sftp_root / "outbox" / "penalty")
    hf = landing / "hf" / "20260306_credit_record.csv"
    credit = read_text_csv(hf)
    hf.unlink()
    sftp = SftpServer(sftp_root, "ema", SFTP_SECRET)
    api = JsonApi("hf", API_SECRET)
    api.items = [
        {**r, "updated_at": f"2026-03-06T12:{i // 60:02d}:{i % 60:02d}"}
        for i, r in enumerate(credit.to_dict("records"))
    ]
    with fresh_database(pg_server_url) as qzj, fresh_database(pg_server_url) as agency:
        qzj_url = qzj.render_as_string(hide_password=False)
        agency_url = agency.render_as_string(hide_password=False)
        rows = provider_table(qzj_url, codes, penalties, dt.datetime(2026, 3, 6, 17, 0))
        agency_tables(agency_url)
        env = {
            "CREDIT_CONN_ECO_QZJ": uri(
                "postgresql", "qzj_reader", QZJ_SECRET, qzj.port or 5432, f"/{qzj.database}"
            ),
            "CREDIT_CONN_EMA_SFTP": uri(
                "sftp", "ema", SFTP_SECRET, sftp.port, host_key=" ".join(sftp.host_key)
            ),
            # Night one: the API's password is wrong (its source fails like a missing file).
            "CREDIT_CONN_HF_API": uri("http", "hf", "wrong-" + API_SECRET[::-1], api.port),
            "CREDIT_CONN_HLJ_SAMR_PUSH": uri(
                "postgresql", "postgres", AGENCY_SECRET, agency.port or 5432, f"/{agency.database}"
            ),
        }
        yield {
            "root": root,
            "landing": landing,
            "home": root / "home",
            "qzj_url": qzj_url,
            "agency_url": agency_url,
            "rows": rows,
            "codes": codes,
            "sftp": sftp,
            "sftp_root": sftp_root,
            "api": api,
            "env": env,
            "penalties": penalties,
        }
        sftp.close()
        api.close()


def read_text_csv(path) -> pd.DataFrame:
    """A provider's CSV as text, in whichever of the encodings they use it was written."""
    for enc in ("utf-8-sig", "gb18030"):
        try:
            return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=enc)
        except UnicodeDecodeError:
            continue
    raise AssertionError(f"{path}: neither UTF-8 nor GB18030")


def dump(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
