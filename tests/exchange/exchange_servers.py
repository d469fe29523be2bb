"""Real servers the exchange tests start on this machine: a provider's exchange database (a
fresh PostgreSQL database with a table in the exchange field codes), an SFTP server (asyncssh,
on a free port, with a host key made for the test), an HTTP server of paged JSON, and a TCP
listener that accepts and never answers (a server that hangs)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import shutil
import socket
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
import sqlalchemy as sa


@contextmanager
def fresh_database(server_url: str):
    """A new empty database on the real server (as the pg_url fixture makes), dropped after."""
    name = f"credit_x_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.engine.make_url(server_url).set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def create_role(server_url: str, role: str, password: str) -> None:
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        conn.execute(sa.text(f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'"))
    admin.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------ SFTP


class SftpServer:
    """asyncssh's SSH server with its SFTP subsystem chrooted to ``root``, password login."""

    def __init__(self, root, user: str, password: str):
        import asyncssh

        self.root, self.user, self.password = str(root), user, password
        self.key = asyncssh.generate_private_key("ssh-ed25519")
        self.host_key = self.key.export_public_key().decode().split()[:2]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(20)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _start(self):
        import asyncssh

        outer = self

        class Auth(asyncssh.SSHServer):
            def begin_auth(self, username):
                return True

            def password_auth_supported(self):
                return True

            def validate_password(self, username, password):
                return username == outer.user and password == outer.password

        return await asyncssh.create_server(
            Auth,
            "127.0.0.1",
            0,
            server_host_keys=[self.key],
            sftp_factory=lambda chan: asyncssh.SFTPServer(chan, chroot=self.root.encode()),
            process_factory=None,
        )

    def close(self):
        self.server.close()
        asyncio.run_coroutine_threadsafe(self.server.wait_closed(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


# ------------------------------------------------------------------------------------ HTTP


class JsonApi:
    """Paged JSON of credit records (``updated_at`` their update time), Basic auth; ``mode``
    'html' answers every page after the first with an HTML error page instead."""

    def __init__(self, user: str, password: str):
        self.items: list[dict] = []
        self.mode = "json"
        self.requests = 0
        self.received: list[dict] = []  # POSTed pushes
        self.ready_dates: set[str] = set()  # GET .../ready?date=YYYY-MM-DD answers ready for these
        api = self
        token = base64.b64encode(f"{user}:{password}".encode()).decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, ctype, body: bytes):
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                api.requests += 1
                if self.headers.get("Authorization") != f"Basic {token}":
                    return self._send(401, "application/json", b'{"error":"unauthorized"}')
                u = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(u.query, keep_blank_values=True).items()}
                if u.path.endswith("/ready"):  # the provider's status URL for a night
                    doc = {"date": q.get("date"), "ready": q.get("date") in api.ready_dates}
                    return self._send(200, "application/json", json.dumps(doc).encode())
                page, size = int(q.get("page", 1)), int(q.get("page_size", 100))
                if api.mode == "html" and page > 1:
                    body = b"<html><body>502 Bad Gateway</body></html>"
                    return self._send(200, "text/html; charset=utf-8", body)
                since = q.get("since") or ""
                rows = sorted(
                    (i for i in api.items if i["updated_at"] > since),
                    key=lambda i: (i["updated_at"], i["文书编号"]),
                )
                pages = max(1, -(-len(rows) // size))
                doc = {"data": rows[(page - 1) * size : page * size], "page": page, "pages": pages}
                self._send(200, "application/json", json.dumps(doc, ensure_ascii=False).encode())

            def do_POST(self):
                if self.headers.get("Authorization") != f"Basic {token}":
                    return self._send(401, "application/json", b"{}")
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                api.received.append(doc)
                body = json.dumps({"receipt": doc["publication_sha256"]}).encode()
                self._send(200, "application/json", body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Hang:
    """Accepts connections and never says a word: a server that hangs."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()


# ------------------------------------------------------------------------- the scenario

ENTITIES = 300
NIGHTS = ["2026-03-06", "2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
# Secrets the servers accept: none of them may appear in any log, manifest, report or table.
SFTP_SECRET = "sftp-Pw-7f3a9c1e"
API_SECRET = "api-Pw-b2d4e6f8"
QZJ_SECRET = "qzj-Pw-0c9e8d7b"
AGENCY_SECRET = "agency-Pw-5a4b3c2d"
SECRETS = (SFTP_SECRET, API_SECRET, QZJ_SECRET, AGENCY_SECRET)
TABLE = "T_SGS_XZCF"
# The world's 双公示 penalty headers -> the field codes of a 2016 exchange table (layout
# sgs_penalty_2016 in config/layouts/), as a provider's 前置机 names them.
WORLD_TO_2016 = {
    "行政相对人名称": "CF_XDR_MC",
    "行政相对人代码_1(统一社会信用代码)": "CF_XDR_SHXYM",
    "证件号码": "CF_XDR_SFZ",
    "法定代表人": "CF_FR",
    "行政处罚决定书文号": "CF_WSH",
    "处罚类别": "CF_CFLB1",
    "违法事实": "CF_SY",
    "处罚依据": "CF_YJ",
    "处罚内容": "CF_JG",
    "处罚决定日期": "CF_JDRQ",
    "处罚机关": "CF_XZJG",
}


def provider_table(url, frame: pd.DataFrame, stamp: dt.datetime) -> pd.DataFrame:
    """The provider's 前置机 table in exchange field codes, filled with its penalties, each row
    stamped with its 数据更新时间戳 (SJC) and 当前状态 (CF_ZT, 0: 正常)."""
    rows = frame[[h for h in frame.columns if h in WORLD_TO_2016]].rename(columns=WORLD_TO_2016)
    rows = rows.assign(SJC=[stamp + dt.timedelta(seconds=i) for i in range(len(rows))], CF_ZT="0")
    eng = sa.create_engine(url)
    cols = ", ".join(f'"{c}" text' for c in rows.columns if c != "SJC")
    with eng.begin() as c:
        c.execute(sa.text(f'CREATE TABLE "{TABLE}" ({cols}, "SJC" timestamp NOT NULL)'))
        c.execute(
            sa.text(f"CREATE ROLE qzj_reader LOGIN PASSWORD '{QZJ_SECRET}'")
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
