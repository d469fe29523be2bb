"""The auditor's rerun as a run of the audit DAG: the console asks Airflow itself (the plugin runs
inside the api-server) to create a DAG run with the trigger form's params, and reads that run's
state back from Airflow's metadata database. The rerun then happens on Airflow's workers, with
their retries, logs and timeouts, never inside the api-server."""

from __future__ import annotations

import uuid

AUDIT_DAG = "public_credit_audit_rerun"
# Airflow's DAG-run states as the console shows them; "done" once the DAG wrote its verdict.
STATES = {"queued": "queued", "running": "running", "success": "done", "failed": "failed"}


def trigger_audit(run_id: str, mode: str, user: str) -> str:
    """A queued run of the audit DAG for (run_id, mode); its Airflow run id. A DAG that is not
    deployed or is paused is a one-line ValueError (a paused DAG's run would wait forever)."""
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.exceptions import DagNotFound
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from airflow.utils.types import DagRunTriggeredByType

    with create_session() as session:
        model = DagModel.get_current(AUDIT_DAG, session=session)
        if model is None:
            raise ValueError(f"审计DAG未部署 / the audit DAG {AUDIT_DAG} is not deployed")
        if model.is_paused:
            raise ValueError(f"审计DAG已暂停 / the audit DAG {AUDIT_DAG} is paused in Airflow")
    dag_run_id = f"console__{run_id}__{mode}__{uuid.uuid4().hex[:8]}"
    try:
        trigger_dag(
            AUDIT_DAG,
            triggered_by=DagRunTriggeredByType.UI,
            triggering_user_name=user,
            run_id=dag_run_id,
            conf={"run_id": run_id, "mode": mode},
            note=f"信用控制台 credit console: {user}",
        )
    except DagNotFound:
        raise ValueError(f"审计DAG未部署 / the audit DAG {AUDIT_DAG} is not deployed") from None
    return dag_run_id


def audit_run_state(dag_run_id: str) -> str:
    """The console's word for the audit DAG run's state (queued, running, done, failed)."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        state = session.scalar(
            sa.select(DagRun.state).where(DagRun.dag_id == AUDIT_DAG, DagRun.run_id == dag_run_id)
        )
    if state is None:
        return "failed"  # the run was deleted in Airflow
    return STATES.get(str(state.value if hasattr(state, "value") else state), "running")


def rerun_status(home, run_id: str, mode: str) -> dict:
    """The console's record of the rerun, brought up to date from the audit DAG run's state."""
    from scoring.console import audit

    state = audit.rerun_state(home, run_id, mode)
    if state.get("state") not in ("queued", "running") or not state.get("dag_run_id"):
        return state
    now = audit_run_state(state["dag_run_id"])
    if now == state["state"]:
        return state
    if now == "done" and audit.rerun_result(home, run_id, mode) is None:
        now = "failed"
    if now == "failed":
        state["error"] = (
            f"审计DAG运行失败 / audit DAG run {state['dag_run_id']} failed: "
            "its task log in Airflow says why"
        )
    state["state"] = now
    audit.set_rerun_state(home, run_id, mode, **state)
    return state
