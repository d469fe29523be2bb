"""Connections as resolved parameters, and keeping their secrets out of every message.

A connection is read from the environment by the CLI (``CREDIT_CONN_<ID>``, else Airflow's own
``AIRFLOW_CONN_<ID>``, both a URI such as ``postgresql://user:secret@host:5432/db``) or built by
the DAG from an Airflow Connection. The secret is never printed: ``Conn.__repr__`` hides it and
``redact`` removes it (and any URI password) from a message before it is logged or stored."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit


class ExchangeError(Exception):
    """A source or target could not be used; the message is one line, free of secrets."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


# Failures worth another try (the network, a server that did not answer in time); any other code
# (auth, a missing table or path, a renamed column, a refused write) fails the same way again.
RETRIED = ("timeout", "unreachable")


def retried(code: str | None) -> bool:
    """Whether a failure with this code may pass on another try (with backoff)."""
    return code in RETRIED


@dataclass(frozen=True)
class Conn:
    conn_id: str
    scheme: str  # postgresql | sftp | http | https ...
    host: str = ""
    port: int | None = None
    login: str = ""
    secret: str = field(default="", repr=False)
    database: str = ""  # a database name, or an HTTP path prefix
    extra: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return f"Conn({self.conn_id}: {self.scheme}://{self.login}@{self.host}:{self.port})"

    def sqlalchemy_url(self):
        import sqlalchemy as sa

        driver = {"postgres": "postgresql+psycopg", "postgresql": "postgresql+psycopg"}.get(
            self.scheme, self.scheme
        )
        return sa.engine.URL.create(
            driver,
            username=self.login or None,
            password=self.secret or None,
            host=self.host or None,
            port=self.port,
            database=self.database or None,
        )

    def base_url(self) -> str:
        scheme = "https" if self.scheme == "https" else "http"
        port = f":{self.port}" if self.port else ""
        return f"{scheme}://{self.host}{port}{self.database}"


def conn_from_airflow(conn_id: str, get) -> Conn:
    """The Airflow Connection ``get(conn_id)`` returns (Airflow's ``BaseHook.get_connection``:
    an object with conn_type, host, port, login, password, schema, extra_dejson) as the resolved
    parameters the library takes. A lookup that fails is a source that is not configured."""
    try:
        c = get(conn_id)
    except Exception:  # noqa: BLE001 - any lookup failure: the connection is not defined
        raise ExchangeError(
            "no_connection", f"Airflow Connection {conn_id} is not defined"
        ) from None
    scheme = {"postgres": "postgresql", "sftp": "sftp", "ssh": "sftp"}.get(c.conn_type, c.conn_type)
    return Conn(
        conn_id=conn_id,
        scheme=scheme or "",
        host=c.host or "",
        port=c.port,
        login=c.login or "",
        secret=c.password or "",
        database=(c.schema or "") if scheme not in ("http", "https") else "",
        extra=c.extra_dejson or {},
    )


def conn_from_uri(conn_id: str, uri: str) -> Conn:
    u = urlsplit(uri)
    extra = dict(parse_qsl(u.query))
    if "__extra__" in extra:  # Airflow's URI form of a JSON extra
        extra = json.loads(extra.pop("__extra__"))
    path = unquote(u.path or "")
    return Conn(
        conn_id=conn_id,
        scheme=(u.scheme or "").replace("-", "_"),
        host=unquote(u.hostname or ""),
        port=u.port,
        login=unquote(u.username or ""),
        secret=unquote(u.password or ""),
        database=path.lstrip("/") if u.scheme.startswith("postgres") else path.rstrip("/"),
        extra=extra,
    )


def conn_from_env(conn_id: str, environ=os.environ) -> Conn:
    """The connection named ``conn_id`` from the environment (the CLI's source of credentials)."""
    key = re.sub(r"[^A-Za-z0-9]", "_", conn_id).upper()
    for name in (f"CREDIT_CONN_{key}", f"AIRFLOW_CONN_{key}"):
        if environ.get(name):
            return conn_from_uri(conn_id, environ[name])
    raise ExchangeError(
        "no_connection", f"connection {conn_id} is not configured (set CREDIT_CONN_{key})"
    )


_URI_SECRET = re.compile(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)(?=@)", re.I)


def redact(text: str, *conns: Conn | None) -> str:
    """The message without any connection secret, and on one line."""
    out = _URI_SECRET.sub(lambda m: m.group("head") + "***", str(text))
    for c in conns:
        if c is not None and c.secret:
            out = out.replace(c.secret, "***")
            out = out.replace(unquote(c.secret), "***")
    return " ".join(out.split())
