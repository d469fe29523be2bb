# Airflow 3 image (the official one) extended with the scoring library, its DAGs and its config,
# installed under the project's own lock (constraints.txt): Celery provider + a Celery it supports,
# FAB auth manager, psycopg 3 + asyncpg, GX, scikit-learn ...
FROM apache/airflow:3.3.2-python3.11
USER airflow
COPY --chown=airflow:root constraints.txt pyproject.toml README.md /opt/credit/app/
COPY --chown=airflow:root scoring /opt/credit/app/scoring
COPY --chown=airflow:root expectations /opt/credit/app/expectations
RUN pip install --no-cache-dir -c /opt/credit/app/constraints.txt "/opt/credit/app[airflow]"
COPY --chown=airflow:root config /opt/credit/app/config
COPY --chown=airflow:root dags /opt/airflow/dags
COPY --chown=airflow:root plugins /opt/airflow/plugins
ENV CREDIT_CONFIG_DIR=/opt/credit/app/config \
    CREDIT_HOME=/opt/credit/data \
    CREDIT_LANDING=/opt/credit/landing \
    PYTHONHASHSEED=0
