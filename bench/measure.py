"""Measuring: peak memory of this process, a child process's tree and a folder or database on
disk, and the table of figures every bench adds its rows to."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa


def self_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def print_line(name: str, value: str, target: str = "", ok: bool | None = None) -> None:
    mark = "" if ok is None else ("  OK" if ok else "  MISSED")
    print(f"  {name:<44} {value:>16}   {target}{mark}", flush=True)


@contextlib.contextmanager
def scratch_database(server_url: str | None):
    """A throw-away database on the given PostgreSQL server (None: nothing)."""
    if not server_url:
        yield None
        return

    name = f"credit_bench_{os.getpid()}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        print(
            f"  (no PostgreSQL at {server_url}: {type(exc).__name__}; publishing to SQLite instead)"
        )
        yield None
        return
    try:
        yield (
            sa.engine.make_url(server_url).set(database=name).render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def run_child(args: list[str], env: dict, label: str, timeout: float | None = None) -> dict:
    """Run ``credit`` in its own process (as an operator or the DAG would) and measure that process
    alone: wall time and its peak RSS (os.wait4 on it), with its JSON answer. ``timeout``: seconds
    after which the process and its workers are killed (the run then says ``timed_out``)."""
    import subprocess
    import threading

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "scoring.cli", *args, "--json"],
            # BENCH_CHILD_LOGS: the child says its progress, kept by _keep_log
            env={**os.environ, **env, **_verbose()},
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,  # its own process group: a timeout ends its workers too
        )
        tree_peak, done, timed_out = [0.0], threading.Event(), [False]

        def sample():  # the whole process tree's resident memory, summed, five times a second
            while not done.wait(0.2):
                tree_peak[0] = max(tree_peak[0], _tree_rss_gb(proc.pid))
                if timeout is not None and time.perf_counter() - t > timeout and not timed_out[0]:
                    timed_out[0] = True
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, 9)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, errors = out.read(), err.read()
    try:
        answer = json.loads(text[text.index("{") :]) if "{" in text else {}
    except ValueError:
        answer = {}
    _keep_log(label, errors)
    if timed_out[0]:
        print(f"  {label}: stopped after {timeout:.0f} s (timeout); last lines: {_tail(errors)}")
    elif proc.returncode != 0:
        print(f"  {label}: credit exited {proc.returncode}: {_tail(errors)}")
    return {
        "timed_out": timed_out[0],
        "wall": wall,
        "rss_gb": usage.ru_maxrss / 1024 / 1024,
        "answer": answer,
        "code": proc.returncode,
        "tree_gb": tree_peak[0],
    }


def _verbose() -> dict:
    return {"CREDIT_VERBOSE": "1"} if os.environ.get("BENCH_CHILD_LOGS") else {}


def _keep_log(label: str, text: str) -> None:
    """The child's progress lines kept under BENCH_CHILD_LOGS (where a step's time went)."""
    folder = os.environ.get("BENCH_CHILD_LOGS")
    if folder:
        name = "".join(c if c.isalnum() else "_" for c in label).strip("_") + ".log"
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_text(text, encoding="utf-8")


def _tail(text: str) -> list[str]:
    return text.strip().splitlines()[-3:]


def _tree_rss_gb(root: int) -> float:
    """Memory of a process and all its descendants now (Linux /proc), in GB: the sum of their
    proportional set sizes (PSS), so pages a forked worker shares with its parent count once."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += parents.get(pid, [])
        total += _pss_kb(pid)
    return total / 1024 / 1024


def _pss_kb(pid: int) -> int:
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            with open(f"/proc/{pid}/{name}", encoding="ascii", errors="replace") as fh:
                for line in fh:
                    if line.startswith(field):
                        return int(line.split()[1])
        except OSError:
            continue
    return 0


def _rss_of(run: dict) -> tuple[float, float]:
    """(the night's process, its largest worker) peak RSS in GB, as the run measured them."""
    peak = run["answer"].get("peak_rss_gb") or {}
    if not peak:  # a command that does not report its workers: the largest process of its tree
        return run["rss_gb"], 0.0
    return float(peak["process"]), float(peak.get("largest_worker") or 0)


def memory_figure(run: dict, workers: int) -> tuple[str, float]:
    """Peaks of the night's process and its largest worker (each its own high-water mark), and the
    peak of the whole process tree sampled five times a second (what the machine held at once)."""
    proc, worker = _rss_of(run)
    return f"tree {run['tree_gb']:.2f} GB (process {proc:.2f}, a worker {worker:.2f})", run[
        "tree_gb"
    ]


TABLE: list[tuple[str, str, str, str]] = []


def table_row(what: str, value: str, target: str = "", verdict: bool | None = None) -> None:
    TABLE.append((what, value, target, "" if verdict is None else ("met" if verdict else "MISSED")))
    print_line(what, value, target, verdict)


def print_table() -> None:
    if not TABLE:
        return
    w = max(len(r[0]) for r in TABLE)
    print("\n| figure | measured | target | |\n|---|---|---|---|")
    for what, value, target, verdict in TABLE:
        print(f"| {what:<{w}} | {value} | {target} | {verdict} |")


def disk_gb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1024**3


def database_gb(url: str) -> float | None:
    """The size of a PostgreSQL database (None for SQLite: its file is in the folder measured)."""
    if not url.startswith("postgresql"):
        return None
    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            return (
                c.execute(sa.text("SELECT pg_database_size(current_database())")).scalar_one()
                / 1024**3
            )
    finally:
        engine.dispose()
