"""A .env for docker compose with fresh secrets (`make compose-env`)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_compose_env(path: Path) -> None:
    """A .env for docker compose from .env.example, every secret freshly generated."""
    from cryptography.fernet import Fernet

    if path.exists():
        print(f"{path} exists; left as it is")
        return
    fresh = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        "CREDIT_DB_PASSWORD": secrets.token_urlsafe(18),
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(48),
        "_AIRFLOW_WWW_USER_PASSWORD": secrets.token_urlsafe(12),
        "AIRFLOW_UID": str(os.getuid() or 50000),
    }
    lines = []
    for line in (ROOT / ".env.example").read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={fresh[key]}" if key in fresh and not line.startswith("#") else line)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(
        f"wrote {path} (0600) with fresh secrets; the admin password is _AIRFLOW_WWW_USER_PASSWORD there"
    )
