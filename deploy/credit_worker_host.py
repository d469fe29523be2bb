"""Airflow's ``[core] hostname_callable`` for several Celery workers on one machine
(deploy/local.py with CELERY_WORKERS > 1): each worker's task instances record the worker's own
name, CREDIT_WORKER_HOSTNAME, instead of the machine's. Elsewhere (one worker per host, as in
docker compose) Airflow's default, the host's FQDN, already tells workers apart.
"""

from __future__ import annotations

import os
import socket


def hostname() -> str:
    return os.environ.get("CREDIT_WORKER_HOSTNAME") or socket.getfqdn()
