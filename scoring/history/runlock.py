"""One run at a time per store: a PostgreSQL advisory lock (held by a dedicated session, released
by the server if the process dies), or an exclusive lock on a file next to the SQLite database
(released by the kernel if the process dies). A second run is told who holds the lock; nothing
ever waits for ever.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

import sqlalchemy as sa

from scoring.common.errors import PipelineError
from scoring.history.folders import db_slug

# A fixed key in the advisory-lock space: "credit" scoring runs (one per database).
ADVISORY_KEY = 0x63726564697472
EXIT_LOCKED = 75  # EX_TEMPFAIL: try again later


class RunLocked(PipelineError):
    """Another run holds this store's run lock; the message says which."""

    def __init__(self, message: str, holder: dict):
        super().__init__(message)
        self.holder = holder


def _lock_file(store):
    folder = store.home / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{db_slug(store.url)}.lock"


@contextlib.contextmanager
def run_lock(store, holder: str, wait_seconds: float = 0.0):
    """Hold the store's run lock for the block; raise RunLocked if another run holds it after
    ``wait_seconds``. Re-entrant within one process (a step inside ``credit run``)."""
    key = (store.url, str(store.home))
    if _HELD.get(key):
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    deadline = time.monotonic() + max(wait_seconds, 0.0)  # clock-ok: waiting, not scoring
    release = _acquire_pg if store.engine.dialect.name == "postgresql" else _acquire_file
    while True:
        got = release(store, holder)
        if got is not None:
            break
        if time.monotonic() >= deadline:  # clock-ok
            info = _holder(store)
            raise RunLocked(
                f"another run holds the lock on this store ({_describe(info)}); "
                f"try again when it has finished",
                info,
            )
        time.sleep(1.0)
    _HELD[key] = 1
    try:
        yield
    finally:
        _HELD.pop(key, None)
        got()


_HELD: dict = {}


def _acquire_pg(store, holder: str):
    conn = store.engine.connect()
    try:
        conn.execute(
            sa.text("SELECT set_config('application_name', :n, false)"),
            {"n": f"credit-run {holder} pid={os.getpid()}"[:63]},
        )
        ok = conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_KEY}).scalar()
        conn.commit()
    except BaseException:
        conn.close()
        raise
    if not ok:
        conn.close()
        return None

    def release():
        try:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_KEY})
            conn.commit()
        finally:
            conn.close()

    return release


def _acquire_file(store, holder: str):
    import fcntl

    path = _lock_file(store)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({"holder": holder, "pid": os.getpid()}).encode())

    def release():
        try:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    return release


def _holder(store) -> dict:
    if store.engine.dialect.name == "postgresql":
        with store.engine.connect() as conn:
            row = conn.execute(
                sa.text(
                    "SELECT a.pid, a.application_name, a.backend_start FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "AND ((l.classid::bigint << 32) | l.objid::bigint) = :k"
                ),
                {"k": ADVISORY_KEY},
            ).first()
        return {"backend_pid": row[0], "holder": row[1], "since": str(row[2])} if row else {}
    try:
        return json.loads(_lock_file(store).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def _describe(info: dict) -> str:
    if not info:
        return "holder unknown"
    return ", ".join(f"{k} {v}" for k, v in sorted(info.items()))
