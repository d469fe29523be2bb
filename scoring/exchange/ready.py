"""Whether a provider has said that a night's data is complete, before it is pulled.

Providers that write into their exchange database over hours, or drop files one by one, signal
the end: a row in a readiness (batch) table of the 前置机 for the night, a marker file beside the
SFTP files (``20260630.ok``), or a status URL that answers ready for the date. A source declares
which under ``ready`` in the provider registry, with how long to wait for it. Pulling before the
signal would read half a night; waiting past ``timeout_s`` means the provider did not deliver:
the pull is recorded as failed (``not_ready``) and the freshness gate decides the night.

``check_ready`` is one look, a plain blocking function: the nightly DAG's trigger calls it in a
thread every ``poll_s`` seconds while the task waits deferred (holding no worker slot). Errors
are ``ExchangeError`` with the codes of ``fetch``; a ``retried`` one (timeout, unreachable) is
worth another look at the next poll, any other (auth, a missing table, a wrong path) is final."""

from __future__ import annotations

import datetime as dt
import json

from scoring.exchange.fetch import http_error, http_request, open_sftp, sftp_error, sql_error
from scoring.exchange.secrets import Conn, ExchangeError
from scoring.exchange.sources import Ready, safe_remote_path

DONE = ("1", "y", "yes", "true", "ready", "done", "完成", "已完成", "是")


def check_ready(ready: Ready, conn: Conn, day: dt.date, what: str, timeout: float = 30) -> tuple:
    """(ready?, what was seen: one line) for night ``day``; ``what`` names the source."""
    fn = {"table": _table, "marker": _marker, "endpoint": _endpoint}[ready.kind]
    return fn(ready, conn, day, what, timeout)


def marker_path(ready: Ready, day: dt.date) -> str:
    return safe_remote_path(ready.path.replace("{date}", f"{day:%Y%m%d}"))


def _table(ready: Ready, conn: Conn, day: dt.date, what: str, timeout: float) -> tuple:
    import sqlalchemy as sa

    t = max(1, int(timeout))
    eng = sa.create_engine(
        conn.sqlalchemy_url(),
        poolclass=sa.pool.NullPool,
        connect_args={"connect_timeout": t, "options": f"-c statement_timeout={t * 1000}"},
    )
    schema, _, name = ready.table.rpartition(".")
    try:
        with eng.connect() as c:
            table = sa.Table(name, sa.MetaData(), autoload_with=c, schema=schema or None)
            for col in (ready.date_column, ready.flag_column):
                if col and col not in table.c:
                    raise ExchangeError("schema", f"{what}: readiness table has no column {col}")
            rows = c.execute(_rows_of(table, ready, day)).all()
    except ExchangeError:
        raise
    except sa.exc.NoSuchTableError:
        raise ExchangeError(
            "missing_table", f"{what}: readiness table {ready.table} not found"
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise sql_error(what, ready.table, timeout, conn, exc) from None
    finally:
        eng.dispose()
    if not rows:
        return False, f"no row for {day} in {ready.table}"
    flags = [str(r[1]).strip().lower() for r in rows] if ready.flag_column else []
    if ready.flag_column and not any(f in DONE for f in flags):
        return False, f"{ready.table} row for {day}: {ready.flag_column}={rows[0][1]!s}"
    return True, f"{ready.table} has the row for {day}"


def _rows_of(table, ready: Ready, day: dt.date):
    import sqlalchemy as sa

    col = table.c[ready.date_column]
    flag = table.c[ready.flag_column] if ready.flag_column else sa.literal(None)
    q = sa.select(col, flag)
    if isinstance(col.type, sa.DateTime):
        start = dt.datetime.combine(day, dt.time(0))
        return q.where(col >= start, col < start + dt.timedelta(days=1)).limit(20)
    if isinstance(col.type, sa.Date):
        return q.where(col == day).limit(20)
    return q.where(sa.cast(col, sa.Text).in_([day.isoformat(), f"{day:%Y%m%d}"])).limit(20)


def _marker(ready: Ready, conn: Conn, day: dt.date, what: str, timeout: float) -> tuple:
    client = None
    try:
        path = marker_path(ready, day)
        client, sftp = open_sftp(conn, timeout)
        try:
            sftp.stat(path)
        except FileNotFoundError:
            return False, f"no marker {path} yet"
    except Exception as exc:  # one line, with the codes of a pull
        raise sftp_error(what, conn, exc, timeout) from None
    finally:
        if client is not None:
            client.close()
    return True, f"marker {path} is there"


def _endpoint(ready: Ready, conn: Conn, day: dt.date, what: str, timeout: float) -> tuple:
    sep = "&" if "?" in ready.endpoint else "?"
    url = f"{conn.base_url()}{ready.endpoint}{sep}date={day.isoformat()}"
    try:
        _, ctype, body = http_request(conn, url, timeout)
    except Exception as exc:  # one line, with the codes of a pull
        raise http_error(what, conn, exc, timeout) from None
    try:
        doc = json.loads(body.decode("utf-8")) if "json" in ctype.lower() else None
    except (UnicodeDecodeError, ValueError):
        doc = None
    if not isinstance(doc, dict):
        raise ExchangeError("not_json", f"{what}: the readiness endpoint did not answer JSON")
    if "ready" not in doc and "status" not in doc:
        raise ExchangeError(
            "schema", f"{what}: the readiness endpoint's answer has no ready/status"
        )
    state = doc.get("ready", doc.get("status"))
    if state is True or str(state).strip().lower() in DONE:
        return True, f"{ready.endpoint} says ready for {day}"
    return False, f"{ready.endpoint} says {json.dumps(state, ensure_ascii=False)} for {day}"


def wait_reason(source_id: str, ready: Ready, day: dt.date, waited_s: float, seen: str) -> str:
    """The line a source that never signalled readiness is recorded with."""
    signal = {
        "table": f"a row for {day} in {ready.table}",
        "marker": f"the marker {ready.path.replace('{date}', f'{day:%Y%m%d}')}",
        "endpoint": f"ready for {day} from {ready.endpoint}",
    }[ready.kind]
    return (
        f"source {source_id}: not ready after {waited_s / 60:.0f} min (waited for {signal}; "
        f"last seen: {seen}): a missing delivery"
    )
