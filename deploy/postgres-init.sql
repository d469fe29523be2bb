-- The credit results database, separate from Airflow's metadata database.
CREATE USER credit WITH PASSWORD 'credit';
CREATE DATABASE credit OWNER credit;
