"""Each component's own health, as an operator (and the watchdog) asks it: the api-server answers
/api/v2/monitor/health; the scheduler, dag-processor and triggerer heartbeat into the metadata
database (that endpoint reports their latest heartbeats); a Celery worker answers a Celery
`inspect ping` on the broker. A process that is alive but not answering counts as down."""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request

HEARTBEAT_COMPONENTS = {
    "scheduler": "scheduler",
    "dag-processor": "dag_processor",
    "triggerer": "triggerer",
}


def api_health(api_port: int) -> dict | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=5
        ) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def healthy(h: dict | None) -> bool:
    return bool(h) and all(
        (h.get(k) or {}).get("status") == "healthy"
        for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


def worker_index(name: str) -> int:
    return 1 if name == "celery-worker" else int(name.rsplit("-", 1)[1])


def celery_hostname(queue: str, index: int) -> str:
    """A worker's Celery node name prefix (Celery appends @<host>): fixed per worker, so a
    restarted worker answers to the same name."""
    return f"{queue}-w{index}"


def ping_workers(redis_url: str, timeout: float = 3.0) -> set[str]:
    """The node names of the Celery workers on this broker that answer a ping."""
    from celery import Celery

    app = Celery(broker=redis_url)
    try:
        replies = app.control.ping(timeout=timeout) or []
    except Exception:  # the broker itself is down: no worker can be reached
        return set()
    finally:
        app.close()
    return {name for reply in replies for name in reply}


def component_health(s: dict, pids: dict[str, int], workers: list[str]) -> dict[str, str]:
    """{component: 'ok' or why it is down} for every component of the deployment."""
    out: dict[str, str] = {}
    h = api_health(s["api_port"])
    out["api-server"] = (
        "ok" if h else ("not running" if "api-server" not in pids else "not answering /health")
    )
    for name, key in HEARTBEAT_COMPONENTS.items():
        if name not in pids:
            out[name] = "not running"
        elif h is None:
            out[name] = "unknown (the api-server does not answer)"
        else:
            part = h.get(key) or {}
            status = part.get("status")
            beat = part.get(f"latest_{key}_heartbeat") or part.get("latest_heartbeat")
            out[name] = "ok" if status == "healthy" else f"{status or 'no'} heartbeat (last {beat})"
    answering = ping_workers(s["redis_url"]) if workers else set()
    for name in workers:
        prefix = celery_hostname(s["queue"], worker_index(name)) + "@"
        if name not in pids:
            out[name] = "not running"
        elif not any(n.startswith(prefix) for n in answering):
            out[name] = "running but not answering a Celery ping"
        else:
            out[name] = "ok"
    out["watchdog"] = "ok" if "watchdog" in pids else "not running"
    return out


def status(s: dict, pids: dict[str, int], workers: list[str]) -> int:
    """Each component's own health; 1 (naming what is down) when any is not ok."""
    out = component_health(s, pids, workers)
    for name, state in out.items():
        pid = f"pid {pids[name]}" if name in pids else "-"
        print(f"{name:16s} {pid:11s} {state}")
    down = [n for n, state in out.items() if state != "ok"]
    if down:
        print(f"DOWN: {', '.join(down)} (make deploy-restart COMPONENT=<name>)", flush=True)
        return 1
    print("all components healthy", flush=True)
    return 0


def watchdog(s: dict, components) -> None:
    """Check every component each CREDIT_WATCHDOG_INTERVAL seconds; one alert (log line and
    CREDIT_ALERT_WEBHOOK) for a component down at two checks in a row, one when it is back."""
    from scoring.common.alerts import notify

    interval = float(os.environ.get("CREDIT_WATCHDOG_INTERVAL") or 15)
    misses: dict[str, int] = {}
    while True:
        for name, state in component_health(s, *components()).items():
            if name == "watchdog":
                continue
            if state == "ok":
                if misses.pop(name, 0) >= 2:
                    notify({"event": "component_up", "component": name, "host": socket.getfqdn()})
                continue
            misses[name] = misses.get(name, 0) + 1
            if misses[name] == 2:
                notify(
                    {
                        "event": "component_down",
                        "component": name,
                        "state": state,
                        "host": socket.getfqdn(),
                        "runbook": "docs/operations.md#operator-runbook",
                    }
                )
        time.sleep(interval)
