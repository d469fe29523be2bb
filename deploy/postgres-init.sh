#!/bin/bash
# The credit results database, separate from Airflow's metadata database. Runs once, when the
# postgres container initialises an empty data volume; the password comes from the environment
# (.env), never from the repository.
set -euo pipefail
: "${CREDIT_DB_PASSWORD:?set CREDIT_DB_PASSWORD (see .env.example)}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
     -v pw="$CREDIT_DB_PASSWORD" <<'SQL'
CREATE USER credit WITH PASSWORD :'pw' CREATEROLE;
CREATE DATABASE credit OWNER credit;
SQL
