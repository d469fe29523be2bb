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


def test_one_alert_per_failed_night_names_the_night_step_kind_and_report(tmp_path):
    from scoring.common.alerts import is_consequence, night_event
    from scoring.common.errors import GateFailed, NotPublished
    from scoring.pipeline import RunContext, night_facts

    ctx = RunContext(as_of="2026-07-01", landing=tmp_path, home=tmp_path / "home")
    wrapped = RuntimeError("task failed")  # how an orchestrator wraps the library's error
    wrapped.__cause__ = GateFailed("run nightly-20260701 stopped by hard gates: schema")
    event = night_event({"ti": _TI(), "exception": wrapped}, night_facts(ctx))
    assert event["night"] == "2026-07-01" and event["run_id"] == "nightly-20260701"
    assert event["step"] == "gate" and event["reason_code"] == "data"
    assert event["message"] == "data: run nightly-20260701 stopped by hard gates: schema"
    assert event["report_url"].startswith("file://" + str(tmp_path / "home" / "runs"))
    assert event["report_url"].endswith("/nightly-20260701/report.html")
    # The last task failing because the night did not publish is a consequence, not a new alert.
    assert is_consequence(NotPublished("night nightly-20260701 was not published"))
    assert not is_consequence(wrapped)
    # A night never begun (prepare failed on a wrong database user) still names its step.
    bare = night_event({"ti": _TI(), "exception": TypeError("x"), "params": {"as_of": None}}, None)
    assert bare["reason_code"] == "code" and bare["run_id"] is None
