import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_file_is_valid_against_the_compose_spec():
    exe = Path(sys.executable).with_name("check-jsonschema")
    p = subprocess.run(
        [str(exe), "--builtin-schema", "vendor.compose-spec", str(REPO / "docker-compose.yml")],
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stdout + p.stderr


def test_compose_runs_airflow_3_with_celery_postgres_and_redis():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = doc["services"]
    for name in (
        "postgres",
        "redis",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-worker",
        "airflow-dag-processor",
        "airflow-triggerer",
        "airflow-init",
    ):
        assert name in services
    env = doc["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["CREDIT_DB_URL"].startswith("postgresql+psycopg://")
    assert "apache/airflow:3." in (REPO / "Dockerfile").read_text()


def test_compose_workers_scale_out_on_one_shared_data_folder():
    # `docker compose up --scale airflow-worker=N`: nothing fixed that N copies would fight over,
    # and every worker sees the same CREDIT_HOME (partition pieces written by one, read by another).
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    worker = doc["services"]["airflow-worker"]
    assert not {"container_name", "hostname", "ports"} & set(worker)
    home = worker["environment"]["CREDIT_HOME"]
    for name in ("airflow-worker", "airflow-scheduler", "airflow-apiserver"):
        mounts = [v.split(":") for v in doc["services"][name]["volumes"]]
        assert [src for src, dst, *_ in mounts if dst == home] == ["credit-data"], (name, mounts)
    assert "credit-data" in doc["volumes"]
