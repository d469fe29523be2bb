"""The ``sources`` key of a provider in the registry: where the nightly pull fetches the
provider's deliveries besides files it drops into its landing folder. Checked here at load, with
the rest of the registry; ``scoring.exchange.sources`` turns them into ``Source`` objects.

Only an Airflow Connection id is named (credentials live in Airflow Connections or the
environment, never in the registry): a key that looks like a credential is refused.
"""

from __future__ import annotations

import re

KINDS = ("landing", "sql", "sftp", "http")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?$")
HHMM = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
SOURCE_KEYS = (
    "id",
    "kind",
    "conn_id",
    "table",
    "path",
    "endpoint",
    "feed",
    "layout",
    "watermark",
    "status_column",
    "deleted_values",
    "delete_table",
    "delete_key",
    "order_by",
    "page_size",
    "items_key",
    "timeout_s",
    "window",
    "ready",
)
# Where each kind reads from (the one key it must have).
WHERE = {"sql": "table", "sftp": "path", "http": "endpoint"}
# The readiness signal each kind of source may give (through its own connection), and its keys.
READY_KINDS = {"sql": "table", "sftp": "marker", "http": "endpoint"}
READY_NEEDS = {"table": ("table", "date_column"), "marker": ("path",), "endpoint": ("endpoint",)}
MAX_READY_WAIT_S = 3 * 3600
READY_KEYS = (
    "kind",
    "table",
    "date_column",
    "flag_column",
    "path",
    "endpoint",
    "timeout_s",
    "poll_s",
)


def check_sources(v, layouts) -> tuple[str, tuple] | None:
    """A provider's ``sources``: a list of mappings, each with a unique id, a kind, a feed, and
    for a pulled kind its conn id, where it reads and the layout its rows are in."""
    if not isinstance(v, list):
        return ("must be a list of sources", ())
    seen: set[str] = set()
    for i, item in enumerate(v):
        err = _check_one(item, layouts)
        if err:
            return (f"source {i + 1}: {err[0]}", (i, *err[1]))
        if item["id"] in seen:
            return (f"source id {item['id']!r} appears twice", (i, "id"))
        seen.add(item["id"])
    return None


def _check_one(item, layouts) -> tuple[str, tuple] | None:
    if not isinstance(item, dict):
        return ("must be a mapping", ())
    unknown = sorted(set(item) - set(SOURCE_KEYS))
    if unknown:
        return (f"unknown key {unknown[0]!r} (known: {', '.join(SOURCE_KEYS)})", (unknown[0],))
    for key in ("id", "kind", "feed"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            return (f"needs {key}", ())
    kind = item["kind"]
    if kind not in KINDS:
        return (f"kind must be one of {', '.join(KINDS)}", ("kind",))
    if kind != "landing":
        for key in ("conn_id", WHERE[kind], "layout"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                return (f"a {kind} source needs {key}", ())
        if not re.fullmatch(r"[A-Za-z0-9_\-]{1,80}", item["conn_id"]):
            return (
                "conn_id must be an Airflow Connection id (no URI, no credentials)",
                ("conn_id",),
            )
    if item.get("layout") and item["layout"] not in layouts.ids():
        return (f"unknown layout {item['layout']!r}", ("layout",))
    for key in ("table", "delete_table"):
        if item.get(key) and not IDENT.match(str(item[key])):
            return (f"{key} {item[key]!r} is not a plain name", (key,))
    if item.get("delete_table") and not (item.get("delete_key") and item.get("status_column")):
        return ("a delete_table needs delete_key and status_column (to carry the deletion)", ())
    for key in ("timeout_s", "page_size"):
        if key in item and (not isinstance(item[key], int | float) or item[key] <= 0):
            return (f"{key} must be a positive number", (key,))
    if "ready" in item:
        err = _check_ready(item["ready"], kind)
        if err:
            return err
    return _check_window(item.get("window")) if "window" in item else None


def _check_ready(r, kind: str) -> tuple[str, tuple] | None:
    """``ready: {kind: table|marker|endpoint, ..., timeout_s, poll_s}``: the signal a provider
    gives when a night is complete, of the one kind its source's connection can read."""
    if kind not in READY_KINDS:
        return ("only a sql, sftp or http source waits for a readiness signal", ("ready",))
    if not isinstance(r, dict):
        return ("ready must be a mapping", ("ready",))
    unknown = sorted(set(r) - set(READY_KEYS))
    if unknown:
        return (f"ready: unknown key {unknown[0]!r} (known: {', '.join(READY_KEYS)})", ("ready",))
    if r.get("kind") != READY_KINDS[kind]:
        return (f"a {kind} source's ready kind is {READY_KINDS[kind]}", ("ready", "kind"))
    for key in READY_NEEDS[r["kind"]]:
        if not isinstance(r.get(key), str) or not r[key].strip():
            return (f"a {r['kind']} readiness signal needs {key}", ("ready",))
    for key in ("table", "date_column", "flag_column"):
        if r.get(key) and not IDENT.match(str(r[key])):
            return (f"ready {key} {r[key]!r} is not a plain name", ("ready", key))
    if r.get("path") and (".." in str(r["path"]).split("/") or "\x00" in str(r["path"])):
        return (f"ready path {r['path']!r} climbs with '..'", ("ready", "path"))
    if r.get("endpoint") and not str(r["endpoint"]).startswith("/"):
        return ("ready endpoint must be a path on the source's connection (/...)", ("ready",))
    for key in ("timeout_s", "poll_s"):
        v = r.get(key, 1)
        if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
            return (f"ready {key} must be a positive number", ("ready", key))
    if r.get("timeout_s", 3600) > MAX_READY_WAIT_S:  # the night itself must end in time
        return (f"ready timeout_s is over {MAX_READY_WAIT_S}s (3 h)", ("ready", "timeout_s"))
    if r.get("poll_s", 60) > r.get("timeout_s", 3600):
        return ("ready poll_s is longer than its timeout_s", ("ready", "poll_s"))
    return None


def _check_window(w) -> tuple[str, tuple] | None:
    """``{from: "HH:MM", to: "HH:MM"}`` (Asia/Shanghai); ``to`` before ``from`` crosses midnight."""
    if not isinstance(w, dict) or set(w) != {"from", "to"}:
        return ("window must be {from: HH:MM, to: HH:MM}", ("window",))
    for key in ("from", "to"):
        if not isinstance(w[key], str) or not HHMM.match(w[key]):
            return (f"window {key} {w[key]!r} is not HH:MM", ("window", key))
    if w["from"] == w["to"]:
        return ("window from and to are the same time", ("window",))
    return None
