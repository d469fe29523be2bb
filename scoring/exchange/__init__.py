"""Exchange with the systems around the pipeline: pull deliveries from providers' exchange
databases (前置机), SFTP folders and HTTP interfaces into the landing area, and push published
tiers to agencies' own systems, recording their receipts. No Airflow here: every function takes
connection parameters already resolved (by the CLI from the environment, by the DAG from Airflow
Connections)."""
