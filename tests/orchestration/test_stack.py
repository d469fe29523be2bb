"""The locked stack and the packaging: what the compose file and Dockerfile name is in the lock and
imports; the compose file keeps no secret and initialises what a fresh machine lacks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from conftest import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def _compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_the_lock_has_what_the_production_topology_imports():
    pins = _lock()
    for name in (
        "apache-airflow",
        "apache-airflow-providers-celery",
        "celery",
        "redis",
        "asyncpg",
        "psycopg",
        "apache-airflow-providers-fab",
    ):
        assert name in pins, name
    # Each of these failed with the earlier lock: the Celery executor's import of
    # celery.backends.database.retry (celery 5.7 dropped it), Airflow's async engine (asyncpg),
    # the compose file's auth manager (FAB provider).
    code = (
        "import asyncpg, celery\n"
        "from airflow.providers.celery.executors import celery_executor_utils\n"
        "from airflow.settings import _get_async_conn_uri_from_sync as a\n"
        "from airflow.providers.fab.auth_manager.fab_auth_manager import FabAuthManager\n"
        "assert a('postgresql+psycopg://u@h/d').startswith('postgresql+asyncpg:')\n"
        "print(celery.__version__)\n"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1] == pins["celery"]


def test_compose_names_only_what_the_image_has():
    env = _compose()["x-airflow-common"]["environment"]
    auth = env["AIRFLOW__CORE__AUTH_MANAGER"]
    assert auth.startswith("airflow.providers.fab.") and "apache-airflow-providers-fab" in _lock()
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "CREDIT_DB_URL"):
        assert env[key].startswith("postgresql+psycopg://"), (
            key
        )  # psycopg 3: the driver in the lock
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://")
    dockerfile = (REPO / "Dockerfile").read_text()
    base = re.search(r"^FROM apache/airflow:([0-9.]+)-python3\.11", dockerfile, re.M)
    assert base and base.group(1) == _lock()["apache-airflow"]
    assert "constraints.txt" in dockerfile and "[airflow]" in dockerfile


def test_compose_keeps_no_secret_and_requires_them_from_the_environment():
    text = (REPO / "docker-compose.yml").read_text()
    doc = _compose()
    env = doc["x-airflow-common"]["environment"]
    for key in (
        "AIRFLOW__CORE__FERNET_KEY",
        "AIRFLOW__API_AUTH__JWT_SECRET",
        "AIRFLOW__API__SECRET_KEY",
    ):
        assert re.fullmatch(r"\$\{" + key + r":\?[^}]+\}", env[key]), key
    for url in (env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], env["CREDIT_DB_URL"]):
        assert re.search(r":\$\{[A-Z_]+:\?[^}]+\}@", url), url  # password only from .env
    assert doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD"].startswith(
        "${POSTGRES_PASSWORD:?"
    )
    assert "PASSWORD '" not in (REPO / "deploy" / "postgres-init.sh").read_text()
    assert "airflow:airflow@" not in text
    example = dict(
        line.split("=", 1)
        for line in (REPO / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    for var in set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", text)):
        assert var in example and example[var] == "", var  # documented, and no value shipped
    assert ".env" in (REPO / ".gitignore").read_text().split()


def test_compose_init_creates_the_login_owns_the_volumes_and_mounts_an_existing_landing_folder():
    init = _compose()["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert (
        "/entrypoint airflow version" in script
    )  # the image's entrypoint migrates and creates the user
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "chown -R" in script and "/opt/credit/data" in script and init["user"] == "0:0"
    volumes = _compose()["x-airflow-common"]["volumes"]
    landing = next(v for v in volumes if v.endswith(":/opt/credit/landing:ro"))
    default = re.search(r":-([^}]+)\}", landing).group(1)
    assert (REPO / default).is_dir()  # exists in a fresh clone


@pytest.mark.parametrize("target", ["deploy-local", "deploy-stop", "lock", "compose-env"])
def test_make_has_the_deployment_targets(target):
    assert re.search(rf"^{target}:", (REPO / "Makefile").read_text(), re.M)
