"""The servers of the exchange tests, started once per module (see exchange_servers)."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest
from exchange_servers import (
    AGENCY_SECRET,
    API_SECRET,
    ENTITIES,
    NIGHTS,
    QZJ_SECRET,
    SFTP_SECRET,
    JsonApi,
    SftpServer,
    agency_tables,
    fresh_database,
    provider_table,
    read_text_csv,
    uri,
)


@pytest.fixture(scope="module")
def servers(tmp_path_factory, pg_server_url):
    """The world of night one, with three providers' deliveries moved behind real servers."""
    from scoring.world.province import write_deliveries

    root = tmp_path_factory.mktemp("exchange")
    write_deliveries(root, NIGHTS[0], n_entities=ENTITIES, seed=5)
    landing = root / "landing"
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
        rows = provider_table(qzj_url, penalties, dt.datetime(2026, 3, 6, 17, 0))
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
            "sftp": sftp,
            "sftp_root": sftp_root,
            "api": api,
            "env": env,
            "penalties": penalties,
        }
        sftp.close()
        api.close()
