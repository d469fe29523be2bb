"""
### 双随机抽查 Double-random inspection plan by tier

Monthly for standing plans, or triggered with the form below. Draws the inspection targets of one
agency from its scope in the latest published evaluation, stratified by tier with the given
ratios, assigns at least two inspectors per inspection from the agency's register (respecting
recusals), records seed, population hash and algorithm so anyone can redo the draw, verifies it,
and delivers the plan to the agency's outbox. With a capacity it also asks the ratio advisor.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Param, task

with DAG(
    dag_id="public_credit_sampling",
    description="Double-random inspection plans by credit tier (ratios, reproducible draw, inspectors)",
    schedule="0 3 1 * *",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=8))),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "public-credit-agency", "retries": 2, "retry_delay": dt.timedelta(minutes=5)},
    tags=["public-credit", "sampling", "double-random"],
    doc_md=__doc__,
    params={
        "agency": Param("hlj-samr", type="string", title="Agency id", description="see `credit agencies`"),
        "task": Param("routine", type="string", title="Inspection task"),
        "ratios": Param("A=0.03,B=0.1,C=0.4,D=0.8", type="string", title="Ratios by tier",
                        pattern=r"^[ABCD]=[0-9.]+(,[ABCD]=[0-9.]+)*$"),
        "seed": Param(None, type=["null", "integer"], title="Seed",
                      description="Empty: derived from the run's published output hash and the plan id"),
        "capacity": Param(None, type=["null", "integer"], title="Inspection capacity (for the advisor)"),
    },
) as dag:

    @task(task_id="draw")
    def draw_plan(params=None) -> str:
        # Imported in the task, not at parse time: the library pulls in pandas and SQLAlchemy.
        from scoring.history.store import Store
        from scoring.sampling.plans import make_plan, parse_ratios

        out = make_plan(Store.open(), params["agency"], parse_ratios(params["ratios"]), seed=params.get("seed"),
                        task=params["task"])
        return out["plan_id"]

    @task(task_id="verify")
    def verify(plan_id: str) -> dict:
        from airflow.sdk.exceptions import AirflowFailException

        from scoring.history.store import Store
        from scoring.sampling.plans import verify_plan

        out = verify_plan(Store.open(), plan_id)
        if not out["verified"]:
            raise AirflowFailException(f"draw {plan_id} does not verify: {out['checks']}")
        return out

    @task(task_id="advise")
    def advise_task(params=None) -> dict | None:
        if not params.get("capacity"):
            return None
        from scoring.history.store import Store
        from scoring.sampling.plans import advise, parse_ratios

        store = Store.open()
        path = store.home / "outbox" / params["agency"] / "sampling" / f"advice-{params['capacity']}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return advise(store, params["agency"], int(params["capacity"]), parse_ratios(params["ratios"]), plot_path=path)

    verify(draw_plan())
    advise_task()
