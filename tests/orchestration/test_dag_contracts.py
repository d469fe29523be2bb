"""What operators, regulators and auditors meet in the UI and the API: forms that submit with
their defaults, honest run states (the night's state is decided by one final task, which the
report can't mask), fail-fast for deterministic errors, timeouts and alert hooks everywhere, and
monthly work scheduled on the publication asset instead of a blind cron."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def dags(tmp_path_factory):
    import os
    import sys

    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.models.dagbag import DagBag

    # Airflow puts its DAG folder on the path (the DAG files import dags/_shared.py from it).
    sys.path.insert(0, str(REPO / "dags"))
    try:
        bag = DagBag(dag_folder=str(REPO / "dags"))
    finally:
        sys.path.remove(str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags


def test_every_form_submits_with_its_defaults(dags):
    # The UI's Trigger button is enabled when the params validate without user input.
    for dag_id in ("public_credit_nightly", "public_credit_sampling", "public_credit_calibration"):
        dags[dag_id].params.validate()
    nightly = dags["public_credit_nightly"].params
    assert {k: nightly[k] for k in ("as_of", "landing", "db_url", "home")} == dict.fromkeys(
        ("as_of", "landing", "db_url", "home")
    )


def test_required_fields_are_validated_and_labelled_in_chinese_with_english_descriptions(dags):

    audit = dags["public_credit_audit_rerun"].params
    with pytest.raises(Exception, match="run_id"):
        audit.validate()  # the one thing an auditor must say: which run
    for bad in ("20260630", "nightly-2026-06-30", "nightly-20260630; drop table runs"):
        with pytest.raises(Exception):
            _with(audit, run_id=bad).validate()
    assert _with(audit, run_id="nightly-20260630-r2").validate()["mode"] == "as-known-then"
    with pytest.raises(Exception):
        _with(dags["public_credit_nightly"].params, as_of="30/06/2026").validate()
    assert (
        _with(dags["public_credit_nightly"].params, as_of="2026-06-30").validate()["as_of"]
        == "2026-06-30"
    )
    nightly = dags["public_credit_nightly"].params
    assert nightly["partitions"] is None  # empty: CREDIT_PARTITIONS, else by size
    assert _with(nightly, partitions=4).validate()["partitions"] == 4
    for bad in (0, 1025, "four", 2.5):
        with pytest.raises(Exception):
            _with(nightly, partitions=bad).validate()
    for dag_id in ("public_credit_nightly", "public_credit_audit_rerun", "public_credit_sampling"):
        for name in dags[dag_id].params.keys():  # Chinese label, English description
            p = dags[dag_id].params.get_param(name)
            title, desc = p.schema.get("title", ""), p.description or ""
            assert any("\u4e00" <= c <= "\u9fff" for c in title), (dag_id, name, title)
            assert desc and sum(c.isascii() and c.isalpha() for c in desc) > 10, (
                dag_id,
                name,
                desc,
            )


def _with(params, **values):
    """The form's params with these values typed in (as the UI or a trigger's conf does)."""
    import copy

    p = copy.deepcopy(params)
    for k, v in values.items():
        p[k] = v
    return p


def test_the_night_state_is_decided_by_one_final_task(dags):
    from scoring.steps import ALWAYS_RUN, STEP_NAMES

    nightly = dags["public_credit_nightly"]
    leaves = [t.task_id for t in nightly.tasks if not t.downstream_task_ids]
    assert leaves == ["published"]  # a successful report can't make an unpublished night green
    final = nightly.get_task("published")
    assert final.trigger_rule == "all_done" and set(STEP_NAMES) <= final.upstream_task_ids
    assert [a.name for a in final.outlets] == ["public_credit_published"]
    for name in ALWAYS_RUN:
        assert nightly.get_task(name).trigger_rule == "all_done"


def test_timeouts_and_failure_hooks_on_every_dag_and_task(dags):
    # One configured notifier per level: a task's final failure alerts once with the night's
    # facts; a run alerts only when it failed with no task failing (a run timeout).
    for dag in dags.values():
        assert dag.dagrun_timeout and dag.dagrun_timeout <= dt.timedelta(hours=6), dag.dag_id
        assert [type(c).__name__ for c in dag.on_failure_callback] == ["RunAlert"], dag.dag_id
        for t in dag.tasks:
            assert t.execution_timeout and t.execution_timeout <= dag.dagrun_timeout, (
                dag.dag_id,
                t.task_id,
            )
            assert [type(c).__name__ for c in t.on_failure_callback] == ["NightAlert"], (
                dag.dag_id,
                t.task_id,
            )


def test_sampling_and_calibration_wait_for_a_publication(dags):
    for dag_id in ("public_credit_sampling", "public_credit_calibration"):
        timetable = dags[dag_id].timetable
        assert type(timetable).__name__ == "AssetTriggeredTimetable", dag_id
        assert "public_credit_published" in repr(timetable)
    # Calibration is monthly: a short-circuit lets only the first published night of a month through.
    assert "ShortCircuit" in type(dags["public_credit_calibration"].get_task("due")).__name__


def test_deterministic_errors_fail_without_retry(tmp_path):
    import importlib.util
    import sys

    from airflow.sdk.exceptions import AirflowFailException

    from scoring.pipeline import RunContext

    spec = importlib.util.spec_from_file_location(
        "nightly_dag", REPO / "dags" / "public_credit_nightly.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "dags"))  # as Airflow puts its DAG folder on the path
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(REPO / "dags"))
    ctx = RunContext(
        as_of="2026-06-30",
        landing=tmp_path,
        home=tmp_path / "home",
        db_url=f"sqlite:///{tmp_path / 'credit.db'}",
    )
    with pytest.raises(AirflowFailException, match="^data: .*not scored"):
        mod._run("publish", ctx.to_json())  # nothing scored: no retry can change that


def test_pull_and_push_follow_the_exchange_rule(dags):
    """The pull (mapped per source) and the push run under the one exchange rule (exchange_task):
    network errors retried with backoff, the rest recorded at once; the night goes on. The pull
    is an operator, so that a source with a readiness signal waits for it deferred."""
    import sys

    sys.path.insert(0, str(REPO / "dags"))
    try:
        import _exchange
    finally:
        sys.path.remove(str(REPO / "dags"))
    nightly = dags["public_credit_nightly"]
    pull, push = nightly.get_task("pull"), nightly.get_task("push")
    assert pull.operator_name == "PullSource" and pull.is_mapped
    for fn in (_exchange.pull_now, _exchange.never_ready, push.python_callable):
        assert getattr(fn, "exchange_rule", None) is not None, fn
    for t in (pull, push):
        assert t.retries >= 3 and t.retry_exponential_backoff >= 2, t.task_id
    assert nightly.get_task("ingest").trigger_rule == "none_failed"  # after pulls, even none
