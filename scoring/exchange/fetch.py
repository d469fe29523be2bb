"""Fetching from the three kinds of source: a table or view of an exchange database (前置机),
incremental by its update timestamp; an SFTP folder of files; an HTTP interface of paged JSON.
Every failure is an ExchangeError with a stable code (auth, timeout, unreachable, missing_table,
schema, not_json, unsafe_path, ...) and one line that names no secret."""

from __future__ import annotations

import datetime as dt
import json
import re
import socket
import urllib.error
import urllib.request
from urllib.parse import urlencode

from scoring.exchange.rows import Fetched, delivery_files, watermark_text, with_deletions
from scoring.exchange.secrets import Conn, ExchangeError, redact
from scoring.exchange.sources import Source, safe_remote_path
from scoring.intake.ingest import DELIVERY_NAME
from scoring.intake.layouts import LayoutSet

REMOTE_NAME = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]*\.(csv|xlsx)$")
MAX_PAGES = 10_000
MAX_REMOTE_BYTES = 4_000_000_000


def fetch(source: Source, conn: Conn, since: str | None, day: dt.date, earlier=None) -> Fetched:
    """What the source holds after the watermark ``since``, as landing files named for ``day``
    (rows in the layout in force that day). ``earlier()``: the rows this source delivered
    before (a delete table's ids are revoked from them)."""
    fn = {"sql": fetch_sql, "sftp": fetch_sftp, "http": fetch_http}.get(source.kind)
    if fn is None:
        raise ExchangeError("kind", f"source {source.id}: a {source.kind} source is not pulled")
    if source.kind == "sql":
        return fetch_sql(source, conn, since, day, earlier or (lambda: []))
    return fn(source, conn, since, day)


def layout_of(source: Source, day):
    try:
        return LayoutSet.in_force(day).by_id(source.layout)
    except StopIteration:
        raise ExchangeError(
            "unknown_layout", f"source {source.id}: no layout {source.layout}"
        ) from None


# ------------------------------------------------------------------------------------------ SQL


def fetch_sql(source: Source, conn: Conn, since: str | None, day, earlier=lambda: []) -> Fetched:
    layout = layout_of(source, day)
    import sqlalchemy as sa

    timeout = max(1, int(source.timeout_s))
    eng = sa.create_engine(
        conn.sqlalchemy_url(),
        poolclass=sa.pool.NullPool,
        connect_args={
            "connect_timeout": timeout,
            "options": f"-c statement_timeout={timeout * 1000}",
        },
    )
    schema, _, name = source.table.rpartition(".")
    try:
        with eng.connect() as c:
            table = sa.Table(name, sa.MetaData(), autoload_with=c, schema=schema or None)
            columns = [col.name for col in table.columns]
            if source.watermark and source.watermark not in columns:
                raise ExchangeError(
                    "schema", f"source {source.id}: watermark column {source.watermark} missing"
                )
            q = sa.select(table)
            if source.watermark:
                wm = table.c[source.watermark]
                if since is not None:
                    bound = since
                    if isinstance(wm.type, sa.DateTime | sa.Date):
                        bound = dt.datetime.fromisoformat(since)
                    q = q.where(wm > bound)
                q = q.order_by(wm)
            q = q.order_by(*[table.c[k] for k in source.order_by if k in columns])
            q = q.order_by(*[table.c[k] for k in columns])  # a total order: the same bytes
            records = [dict(r._mapping) for r in c.execute(q)]
            gone = _deleted(c, source, since) if source.delete_table else []
    except ExchangeError:
        raise
    except sa.exc.NoSuchTableError:
        raise ExchangeError(
            "missing_table", f"source {source.id}: table {source.table} not found"
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise sql_error(f"source {source.id}", source.table, source.timeout_s, conn, exc) from None
    finally:
        eng.dispose()
    records, unknown = with_deletions(source, layout, records, columns, gone, earlier)
    return delivery_files(source, layout, records, columns, day, unknown)


def _deleted(c, source: Source, since: str | None) -> list[dict]:
    """The delete table's rows after the watermark (its key and update-time columns)."""
    import sqlalchemy as sa

    schema, _, name = source.delete_table.rpartition(".")
    try:
        table = sa.Table(name, sa.MetaData(), autoload_with=c, schema=schema or None)
    except sa.exc.NoSuchTableError:
        raise ExchangeError(
            "missing_table", f"source {source.id}: delete table {source.delete_table} not found"
        ) from None
    for col in (source.delete_key, source.watermark):
        if col and col not in table.c:
            raise ExchangeError("schema", f"source {source.id}: delete table has no column {col}")
    q = sa.select(
        table.c[source.delete_key], *([table.c[source.watermark]] if source.watermark else [])
    )
    if source.watermark:
        wm = table.c[source.watermark]
        if since is not None:
            bound = (
                dt.datetime.fromisoformat(since)
                if isinstance(wm.type, sa.DateTime | sa.Date)
                else since
            )
            q = q.where(wm > bound)
        q = q.order_by(wm)
    q = q.order_by(table.c[source.delete_key])
    return [dict(r._mapping) for r in c.execute(q)]


def sql_error(what: str, table: str, timeout: float, conn: Conn, exc) -> ExchangeError:
    """A database error as one line with its code (``what`` names the source)."""
    msg = redact(str(getattr(exc, "orig", None) or exc), conn).split(" [SQL:")[0]
    low = msg.lower()
    if "password authentication" in low or "authentication failed" in low or "role" in low:
        return ExchangeError("auth", f"{what}: the exchange database refused the login")
    if "permission denied" in low:
        return ExchangeError("auth", f"{what}: no permission to read {table}")
    if "timeout" in low or "timed out" in low or "canceling statement" in low:
        return ExchangeError("timeout", f"{what}: no answer in {timeout:g}s")
    if "does not exist" in low and "column" in low:
        return ExchangeError("schema", f"{what}: {msg[:200]}")
    return ExchangeError("unreachable", f"{what}: database error: {msg[:200]}")


# ----------------------------------------------------------------------------------------- SFTP


def open_sftp(conn: Conn, timeout: float):
    """An SFTP session over SSH, the server's host key checked against the connection's
    ``host_key`` (an OpenSSH public key line) unless ``no_host_key_check`` is set."""
    import logging

    import paramiko

    # paramiko logs each failed handshake with its traceback; the caller reports it in one line.
    logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)
    client = paramiko.SSHClient()
    key = conn.extra.get("host_key")
    if key:
        ktype, kdata = key.split()[:2]
        name = conn.host if not conn.port or conn.port == 22 else f"[{conn.host}]:{conn.port}"
        client.get_host_keys().add(name, ktype, paramiko.PKey.from_type_string(ktype, _b64(kdata)))
    if str(conn.extra.get("no_host_key_check", "")).lower() in ("1", "true", "yes"):
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(
        conn.host,
        port=conn.port or 22,
        username=conn.login,
        password=conn.secret or None,
        timeout=timeout,
        banner_timeout=timeout,
        auth_timeout=timeout,
        channel_timeout=timeout,
        allow_agent=False,
        look_for_keys=False,
    )
    sftp = client.open_sftp()
    sftp.get_channel().settimeout(timeout)
    return client, sftp


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def _named(what: str, exc: ExchangeError) -> ExchangeError:
    return exc if str(exc).startswith(what) else ExchangeError(exc.code, f"{what}: {exc}")


def sftp_error(what: str, conn: Conn, exc: BaseException, timeout: float) -> ExchangeError:
    import paramiko

    if isinstance(exc, ExchangeError):
        return _named(what, exc)
    if isinstance(exc, paramiko.AuthenticationException):
        return ExchangeError("auth", f"{what}: the SFTP server refused the login")
    if (
        isinstance(exc, paramiko.BadHostKeyException | paramiko.SSHException)
        and "key" in str(exc).lower()
    ):
        return ExchangeError("host_key", f"{what}: the SFTP server's host key is not the known one")
    # A server that never says its SSH banner ends the session before any login is tried.
    silent = any(t in str(exc).lower() for t in ("timeout", "banner", "no existing session"))
    if isinstance(exc, TimeoutError | socket.timeout) or silent:
        return ExchangeError("timeout", f"{what}: no answer in {timeout:g}s")
    if isinstance(exc, FileNotFoundError):
        return ExchangeError("missing_path", f"{what}: remote path not found")
    if isinstance(exc, PermissionError):
        return ExchangeError("refused", f"{what}: the SFTP server refused the write")
    return ExchangeError(
        "unreachable", f"{what}: {type(exc).__name__}: {redact(str(exc), conn)[:200]}"
    )


def fetch_sftp(source: Source, conn: Conn, since: str | None, day) -> Fetched:
    try:
        folder = safe_remote_path(source.path)
    except ExchangeError as exc:
        raise _named(f"source {source.id}", exc) from None
    out = Fetched()
    client = None
    try:
        client, sftp = open_sftp(conn, source.timeout_s)
        entries = sorted(
            (int(a.st_mtime or 0), a.filename, int(a.st_size or 0))
            for a in sftp.listdir_attr(folder)
            if REMOTE_NAME.match(a.filename) and ".." not in a.filename
        )
        floor = dt.datetime.fromisoformat(since) if since else None
        for mtime, name, size in entries:
            when = dt.datetime.fromtimestamp(mtime, dt.UTC).replace(tzinfo=None)
            if floor is not None and when <= floor:
                continue
            if size > MAX_REMOTE_BYTES:
                raise ExchangeError("too_large", f"source {source.id}: {name} is {size:,} bytes")
            with sftp.open(f"{folder.rstrip('/')}/{name}", "rb") as fh:
                data = fh.read()
            ext = name.rsplit(".", 1)[1].lower()
            local = name if DELIVERY_NAME.match(name) else f"{day:%Y%m%d}_{source.feed}_sftp.{ext}"
            out.files[local] = data
            out.rows += 1
            out.watermark_after = watermark_text(when)
    except Exception as exc:  # a source is the unit of failure: one line, the night goes on
        raise sftp_error(f"source {source.id}", conn, exc, source.timeout_s) from None
    finally:
        if client is not None:
            client.close()
    return out


# ----------------------------------------------------------------------------------------- HTTP


def http_request(conn: Conn, url: str, timeout: float, data: bytes | None = None):
    """(status, content type, body) of one request with the connection's credentials."""
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json; charset=utf-8"
    if conn.extra.get("auth") == "bearer" and conn.secret:
        headers["Authorization"] = f"Bearer {conn.secret}"
    elif conn.login:
        import base64

        pair = f"{conn.login}:{conn.secret}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - configured URL
        return resp.status, resp.headers.get("Content-Type", ""), resp.read()


def http_error(what: str, conn: Conn, exc: BaseException, timeout: float) -> ExchangeError:
    if isinstance(exc, ExchangeError):
        return _named(what, exc)
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code in (401, 403):
            return ExchangeError("auth", f"{what}: HTTP {exc.code} (credentials refused)")
        if exc.code == 404:
            return ExchangeError("missing_endpoint", f"{what}: HTTP 404 (no such endpoint)")
        return ExchangeError("refused", f"{what}: HTTP {exc.code}")
    reason = getattr(exc, "reason", exc)
    if isinstance(reason, TimeoutError | socket.timeout) or "timed out" in str(reason):
        return ExchangeError("timeout", f"{what}: no answer in {timeout:g}s")
    return ExchangeError(
        "unreachable", f"{what}: {type(exc).__name__}: {redact(str(reason), conn)[:200]}"
    )


def fetch_http(source: Source, conn: Conn, since: str | None, day) -> Fetched:
    layout = layout_of(source, day)
    items: list[dict] = []
    what = f"source {source.id}"
    try:
        for page in range(1, MAX_PAGES + 1):
            query = urlencode({"since": since or "", "page": page, "page_size": source.page_size})
            url = f"{conn.base_url()}{source.endpoint}?{query}"
            _, ctype, body = http_request(conn, url, source.timeout_s)
            doc = _json_page(what, page, ctype, body)
            batch = doc.get(source.items_key) if isinstance(doc, dict) else None
            if not isinstance(batch, list) or not all(isinstance(i, dict) for i in batch):
                raise ExchangeError(
                    "not_json", f"{what}: page {page} has no list {source.items_key}"
                )
            items += batch
            pages = doc.get("pages")
            if not batch or (isinstance(pages, int) and page >= pages):
                break
    except Exception as exc:  # a source is the unit of failure: one line, the night goes on
        raise http_error(what, conn, exc, source.timeout_s) from None
    if not items:  # nothing after the watermark (and no columns to check)
        return Fetched()
    columns = sorted({k for i in items for k in i}, key=_column_order(items))
    key = source.watermark
    items.sort(key=lambda i: (str(i.get(key) or "") if key else "", json.dumps(i, sort_keys=True)))
    return delivery_files(source, layout, items, columns, day)


def _json_page(what: str, page: int, ctype: str, body: bytes):
    if "json" not in ctype.lower():
        kind = ctype.split(";")[0].strip() or "no content type"
        raise ExchangeError("not_json", f"{what}: page {page} is not JSON ({kind})")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ExchangeError("not_json", f"{what}: page {page} is not valid JSON") from None


def _column_order(items: list[dict]):
    """Columns in the order the first item that has them lists them (a stable header)."""
    first: dict[str, int] = {}
    for i in items:
        for k in i:
            first.setdefault(k, len(first))
    return lambda k: first[k]
