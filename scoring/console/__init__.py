"""The console's logic: what the regulators', auditors' and operators' pages show, as plain data.

Pure functions over the store (no Airflow, no HTML): the Airflow plugin in plugins/ checks the
caller's token and role, calls these, and renders what they return.
"""
