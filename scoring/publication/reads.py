"""Reconciling the two records of agencies' reads: ``read_log`` (written by the read itself,
through a connection of its own, whatever the reader's transaction does) and the server's own
statement log (``log_statement = all`` on every agency's LOGIN role), the record of last resort.

A statement of an agency role in the server log that reads the results (through ``agency_current``,
``agency_history``, an agency's own view or the function behind them) must have its entry in
``read_log`` with the same backend and text; an entry of ``read_log`` without a logged statement
is a read through ``SET ROLE`` from an operator's session (not a LOGIN session of the agency, so
the server logs it under the operator's name). Both lists are shown by ``credit reads``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Debian's default prefix "%m [%p] %q%u@%d ": time, backend, user@database, then the message.
PREFIX = (
    r"^(?P<at>\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)? \w+) \[(?P<pid>\d+)\] "
    r"(?P<user>[^@\s]*)@(?P<db>\S*) "
)
LOG_LINE = re.compile(PREFIX + r"LOG:  (?:statement|execute [^:]*): (?P<sql>.*)$")
ERROR_LINE = re.compile(PREFIX + r"ERROR:  ")
READ_OBJECTS = ("agency_current", "agency_history", "credit_agency_rows")
CURSOR = re.compile(r"^\s*(declare|close)\b", re.I)  # a cursor is read by its FETCH, not here


def logged_statements(lines: Iterable[str], roles: set[str], database: str) -> list[dict]:
    """Statements the server logged for these roles in this database (continuation lines of a
    multi-line statement, which the server writes indented by a tab, are joined back)."""
    out: list[dict] = []
    last: dict[int, dict] = {}  # each backend's latest statement, for the error that may follow
    current = None
    for line in lines:
        line = line.rstrip("\n")
        if current is not None and line.startswith("\t"):
            current["sql"] += "\n" + line[1:]
            continue
        current = None
        m = LOG_LINE.match(line) or ERROR_LINE.match(line)
        if not m or m["user"] not in roles or m["db"] != database:
            continue
        pid = int(m["pid"])
        if "sql" not in m.groupdict():  # the statement failed: it may not have read anything
            if pid in last:
                last[pid]["error"] = True
            continue
        current = {"at": m["at"], "pid": pid, "role": m["user"], "sql": m["sql"], "error": False}
        last[pid] = current
        out.append(current)
    return out


def reconcile(registered: list[dict], logged: list[dict], views: Iterable[str] = ()) -> dict:
    """Logged reads without a registration (should never exist) and registrations without a
    logged statement (reads through SET ROLE), matched on backend and statement text. A logged
    read is a statement naming the agencies' views (``views``: their own ones too), the function
    behind them, or a FETCH from a cursor."""
    names = "|".join(re.escape(v) for v in (*READ_OBJECTS, *views))
    reading = re.compile(rf"\b({names})\b|^\s*fetch\b", re.I)
    keys = {(r.get("backend_pid"), _first_statement(r.get("query"))) for r in registered}
    reads = [s for s in logged if reading.search(s["sql"]) and not CURSOR.match(s["sql"])]
    missing = [s for s in reads if (s["pid"], s["sql"].strip()) not in keys]
    # A statement refused before it ran (a syntax error, a permission denied) read nothing; one
    # that failed after rows were streamed was registered when it started, so it is not here.
    unregistered = [s for s in missing if not s["error"]]
    logged_keys = {(s["pid"], s["sql"].strip()) for s in logged}
    not_logged = [
        r
        for r in registered
        if (r.get("backend_pid"), _first_statement(r.get("query"))) not in logged_keys
    ]
    return {
        "logged_reads": len(reads),
        "registered_reads": len(registered),
        "logged_but_not_registered": unregistered,
        "failed_before_reading": len(missing) - len(unregistered),
        "registered_but_not_logged": len(not_logged),
    }


def _first_statement(query) -> str:
    """The statement as the reader sent it (a FETCH's entry also names its cursor after it)."""
    return str(query or "").split("\n-- cursor: ", 1)[0].strip()
