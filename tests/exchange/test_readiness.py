"""Readiness signals, against real servers: a row of the 前置机's batch table for the night, a
marker file on the SFTP server, a status URL; each looked at by the plain check function, and
waited for by the trigger the nightly's pull defers to (its async run awaited here directly,
as the triggerer runs it): the signal appears between looks and the wait ends; no signal by the
deadline is a missing delivery with one line; a login refused ends the wait at once."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from exchange_servers import (
    API_SECRET,
    QZJ_SECRET,
    SFTP_SECRET,
    JsonApi,
    SftpServer,
    create_role,
    fresh_database,
    uri,
)

from scoring.exchange.ready import check_ready
from scoring.exchange.secrets import ExchangeError, conn_from_uri
from scoring.exchange.sources import Ready

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
NIGHT = dt.date(2026, 6, 30)
BATCH = Ready(kind="table", table="T_PC_ZT", date_column="PCRQ", flag_column="WCBZ", poll_s=0.3)
TIMED = Ready(kind="table", table="T_PC_SJ", date_column="PCSJ", poll_s=0.3)
MARKER = Ready(kind="marker", path="outbox/penalty/{date}.ok", poll_s=0.3)
STATUS = Ready(kind="endpoint", endpoint="/api/v1/ready", poll_s=0.3)


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_server_url):
    root = tmp_path_factory.mktemp("ready")
    (root / "sftp" / "outbox" / "penalty").mkdir(parents=True)
    sftp = SftpServer(root / "sftp", "ema", SFTP_SECRET)
    api = JsonApi("hf", API_SECRET)
    create_role(pg_server_url, "qzj_ready", QZJ_SECRET)
    with fresh_database(pg_server_url) as qzj:
        url = qzj.render_as_string(hide_password=False)
        eng = sa.create_engine(url)
        with eng.begin() as c:  # the provider's batch tables: text and timestamp dates
            c.execute(sa.text('CREATE TABLE "T_PC_ZT" ("PCRQ" text, "WCBZ" text, "TS" text)'))
            c.execute(sa.text('CREATE TABLE "T_PC_SJ" ("PCSJ" timestamp NOT NULL)'))
            c.execute(sa.text('GRANT SELECT ON "T_PC_ZT", "T_PC_SJ" TO qzj_ready'))
        db = f"/{qzj.database}"
        env = {
            "qzj": uri("postgresql", "qzj_ready", QZJ_SECRET, qzj.port or 5432, db),
            "qzj_nobody": uri("postgresql", "no_such_ready_user", QZJ_SECRET, 5432, db),
            "sftp": uri("sftp", "ema", SFTP_SECRET, sftp.port, host_key=" ".join(sftp.host_key)),
            "sftp_wrong": uri(
                "sftp", "ema", "not-" + SFTP_SECRET, sftp.port, host_key=" ".join(sftp.host_key)
            ),
            "api": uri("http", "hf", API_SECRET, api.port),
            "api_wrong": uri("http", "hf", "not-" + API_SECRET, api.port),
        }
        yield {"eng": eng, "env": env, "sftp_root": root / "sftp", "api": api}
        eng.dispose()
    sftp.close()
    api.close()


def _conn(world, name):
    return conn_from_uri(name, world["env"][name])


def _later(seconds: float, fn) -> threading.Thread:
    """The provider's system doing ``fn`` a little later, while the pipeline is looking."""
    t = threading.Thread(target=lambda: (time.sleep(seconds), fn()), daemon=True)
    t.start()
    return t


def test_a_batch_row_for_the_night_is_ready_once_its_flag_says_complete(world):
    qzj, eng = _conn(world, "qzj"), world["eng"]
    assert check_ready(BATCH, qzj, NIGHT, "source s") == (False, "no row for 2026-06-30 in T_PC_ZT")
    with eng.begin() as c:  # yesterday's batch, and tonight's still being written
        c.execute(sa.text("""INSERT INTO "T_PC_ZT" VALUES ('2026-06-29', '1', 'x')"""))
        c.execute(sa.text("""INSERT INTO "T_PC_ZT" VALUES ('20260630', '0', 'x')"""))
    ok, seen = check_ready(BATCH, qzj, NIGHT, "source s")
    assert not ok and seen == "T_PC_ZT row for 2026-06-30: WCBZ=0"
    with eng.begin() as c:
        c.execute(sa.text("""UPDATE "T_PC_ZT" SET "WCBZ" = '完成' WHERE "PCRQ" = '20260630'"""))
    assert check_ready(BATCH, qzj, NIGHT, "source s") == (
        True,
        "T_PC_ZT has the row for 2026-06-30",
    )
    # A timestamp column: any moment of the night's day.
    assert not check_ready(TIMED, qzj, NIGHT, "source s")[0]
    with eng.begin() as c:
        c.execute(sa.text("""INSERT INTO "T_PC_SJ" VALUES ('2026-06-30 23:10:00')"""))
    assert check_ready(TIMED, qzj, NIGHT, "source s")[0]
    assert not check_ready(TIMED, qzj, NIGHT + dt.timedelta(days=1), "source s")[0]


@pytest.mark.parametrize(
    "ready, conn, code",
    [
        (BATCH, "qzj_nobody", "auth"),
        (Ready(kind="table", table="T_NO_SUCH", date_column="D"), "qzj", "missing_table"),
        (Ready(kind="table", table="T_PC_ZT", date_column="RQ"), "qzj", "schema"),
        (MARKER, "sftp_wrong", "auth"),
        (Ready(kind="marker", path="../etc/{date}.ok"), "sftp", "unsafe_path"),
        (STATUS, "api_wrong", "auth"),
        (Ready(kind="endpoint", endpoint="/api/v1/credit-records"), "api", "schema"),
    ],
)
def test_a_signal_that_cannot_be_read_is_one_line_with_its_code(world, ready, conn, code):
    with pytest.raises(ExchangeError) as err:
        check_ready(ready, _conn(world, conn), NIGHT, "source s", timeout=5)
    assert err.value.code == code and str(err.value).startswith("source s")
    assert "\n" not in str(err.value) and QZJ_SECRET not in str(err.value)


def test_a_marker_file_and_a_status_url(world):
    sftp, api = _conn(world, "sftp"), _conn(world, "api")
    assert check_ready(MARKER, sftp, NIGHT, "s") == (
        False,
        "no marker outbox/penalty/20260630.ok yet",
    )
    (world["sftp_root"] / "outbox" / "penalty" / "20260630.ok").write_text("")
    assert check_ready(MARKER, sftp, NIGHT, "s") == (
        True,
        "marker outbox/penalty/20260630.ok is there",
    )
    assert check_ready(STATUS, api, NIGHT, "s") == (
        False,
        "/api/v1/ready says false for 2026-06-30",
    )
    world["api"].ready_dates.add("2026-06-30")
    assert check_ready(STATUS, api, NIGHT, "s") == (True, "/api/v1/ready says ready for 2026-06-30")


# ---------------------------------------------------------------------------------- the trigger


def _trigger(monkeypatch, world, conn: str, ready: Ready, wait_s: float, day=NIGHT):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn.upper()}", world["env"][conn])
    monkeypatch.syspath_prepend(str(PLUGINS))  # as every Airflow component has it
    from exchange_ready import ReadinessTrigger

    now = dt.datetime.now(dt.UTC)
    trig = ReadinessTrigger(
        source_id="eco-qzj-penalty",
        conn_id=conn,
        ready=ready.as_dict(),
        as_of=day.isoformat(),
        started=now.isoformat(),
        deadline=(now + dt.timedelta(seconds=wait_s)).isoformat(),
        timeout_s=5,
    )
    # What the triggerer gets is what it rebuilds the trigger from: no secret in it.
    classpath, kwargs = trig.serialize()
    assert classpath == "exchange_ready.ReadinessTrigger" and QZJ_SECRET not in repr(kwargs)
    assert ReadinessTrigger(**kwargs).serialize() == (classpath, kwargs)
    return trig


async def _first_event(trigger):
    agen = trigger.run()
    try:
        return (await asyncio.wait_for(agen.__anext__(), 60)).payload
    finally:
        await agen.aclose()


def test_the_trigger_waits_until_the_row_appears_between_looks(monkeypatch, world):
    day = dt.date(2026, 7, 1)
    trig = _trigger(monkeypatch, world, "qzj", BATCH, 30, day)
    eng = world["eng"]

    def provider_finishes():
        with eng.begin() as c:
            c.execute(sa.text("""INSERT INTO "T_PC_ZT" VALUES ('2026-07-01', '1', 'x')"""))

    _later(1.2, provider_finishes)
    t0 = time.monotonic()
    event = asyncio.run(_first_event(trig))
    assert event["status"] == "ready" and event["polls"] >= 3, event
    assert event["message"] == "T_PC_ZT has the row for 2026-07-01"
    assert 1.0 < time.monotonic() - t0 < 10


def test_the_trigger_sees_a_marker_and_an_endpoint_flip(monkeypatch, world):
    day = dt.date(2026, 7, 2)
    marker = world["sftp_root"] / "outbox" / "penalty" / "20260702.ok"
    _later(1.0, lambda: marker.write_text("done"))
    event = asyncio.run(_first_event(_trigger(monkeypatch, world, "sftp", MARKER, 30, day)))
    assert (event["status"], event["message"]) == (
        "ready",
        "marker outbox/penalty/20260702.ok is there",
    )
    assert event["polls"] >= 2
    _later(1.0, lambda: world["api"].ready_dates.add("2026-07-02"))
    event = asyncio.run(_first_event(_trigger(monkeypatch, world, "api", STATUS, 30, day)))
    assert event["status"] == "ready" and event["polls"] >= 2, event


def test_no_signal_by_the_deadline_is_a_missing_delivery(monkeypatch, world):
    trig = _trigger(monkeypatch, world, "qzj", BATCH, 1.0, dt.date(2026, 7, 9))
    event = asyncio.run(_first_event(trig))
    assert (event["status"], event["code"]) == ("not_ready", "not_ready")
    assert event["message"] == (
        "source eco-qzj-penalty: not ready after 0 min (waited for a row for 2026-07-09 in "
        "T_PC_ZT; last seen: no row for 2026-07-09 in T_PC_ZT): a missing delivery"
    )
    assert event["polls"] >= 2


def test_a_refused_login_ends_the_wait_at_once(monkeypatch, world):
    trig = _trigger(monkeypatch, world, "qzj_nobody", BATCH, 30)
    t0 = time.monotonic()
    event = asyncio.run(_first_event(trig))
    assert (event["status"], event["code"], event["polls"]) == ("failed", "auth", 1), event
    assert event["message"] == "source eco-qzj-penalty: the exchange database refused the login"
    assert time.monotonic() - t0 < 10
    missing = _trigger(monkeypatch, world, "qzj", BATCH, 30)
    missing.conn_id = "no_such_conn"
    event = asyncio.run(_first_event(missing))
    assert (event["status"], event["code"]) == ("failed", "no_connection"), event
    assert "no_such_conn" in event["message"]
    assert "exchange_ready" in sys.modules


def test_a_night_never_ready_is_recorded_as_the_providers_missing_delivery(tmp_path):
    """What the pull task does with the trigger's not-ready event: one failed pull with the
    trigger's line, nothing written to the landing folder, shown on the night's exchange status."""
    from scoring.exchange.night import exchange_status, record_missing
    from scoring.history.store import Store

    store = Store.open(None, tmp_path / "home")
    why = (
        "source eco-qzj-penalty: not ready after 60 min (waited for a row for 2026-06-30 in "
        "T_PC_ZT; last seen: no row for 2026-06-30 in T_PC_ZT): a missing delivery"
    )
    at = dt.datetime(2026, 6, 30, 17, 0, tzinfo=dt.UTC)
    row = record_missing(
        store, tmp_path / "landing", "eco-qzj-penalty", NIGHT, at, "not_ready", why
    )
    assert (row["status"], row["code"], row["rows"], row["message"]) == (
        "failed",
        "not_ready",
        0,
        why,
    )
    assert not (tmp_path / "landing").exists()
    (shown,) = exchange_status(store, NIGHT)["sources"]
    assert (shown["source_id"], shown["status"], shown["message"]) == (
        "eco-qzj-penalty",
        "failed",
        why,
    )
