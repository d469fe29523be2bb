# Airflow 3 image with the scoring library installed from the committed lock.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:root constraints.txt pyproject.toml README.md /opt/credit/app/
COPY --chown=airflow:root scoring /opt/credit/app/scoring
COPY --chown=airflow:root expectations /opt/credit/app/expectations
COPY --chown=airflow:root config /opt/credit/app/config
RUN pip install --no-cache-dir -c /opt/credit/app/constraints.txt /opt/credit/app
