"""Failure alerts reach the operator's hook (a real HTTP server on loopback) and never raise."""

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

from scoring.common.alerts import event_from_context, notify


def _hook():
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.handle_request, daemon=True).start()
    return server, got


class _TI:
    dag_id, task_id, run_id, try_number = "public_credit_nightly", "gate", "night-20260701", 1


def test_a_failure_reaches_the_hook_with_what_the_operator_needs():
    server, got = _hook()
    event = event_from_context(
        {"ti": _TI(), "exception": RuntimeError("run nightly-20260701 stopped by hard gates")}
    )
    assert notify(event, webhook=f"http://127.0.0.1:{server.server_port}/alert") is True
    server.server_close()
    assert got == [
        {
            "event": "failure",
            "dag_id": "public_credit_nightly",
            "task_id": "gate",
            "run_id": "night-20260701",
            "try_number": 1,
            "logical_date": None,
            "reason": "run nightly-20260701 stopped by hard gates",
        }
    ]


def test_a_dead_hook_is_logged_not_raised(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    assert (
        notify({"event": "failure", "dag_id": "x"}, webhook=f"http://127.0.0.1:{port}/", timeout=2)
        is False
    )
    assert "CREDIT ALERT" in caplog.text and "did not take the alert" in caplog.text


def test_without_a_hook_the_alert_is_one_log_line(caplog, monkeypatch):
    monkeypatch.delenv("CREDIT_ALERT_WEBHOOK", raising=False)
    assert notify({"event": "failure", "dag_id": "public_credit_sampling"}) is False
    assert [r.message for r in caplog.records if "CREDIT ALERT" in r.message] == [
        'CREDIT ALERT {"dag_id": "public_credit_sampling", "event": "failure"}'
    ]
