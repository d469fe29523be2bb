"""Run the production topology from the project's venv: api-server, scheduler, dag-processor,
triggerer and Celery workers, on a given PostgreSQL (Airflow metadata + credit store) and Redis.

    python deploy/local.py start    # what `make deploy-local` runs
    python deploy/local.py stop     # what `make deploy-stop` runs: stops the recorded process ids
    python deploy/local.py status
    python deploy/local.py env      # the environment of the deployment, for `airflow ...` by hand

Settings come from the environment (defaults in brackets):
  DEPLOY_HOME          [./var/deploy]  pids/, logs/, airflow/ (AIRFLOW_HOME), secrets.json, env
  AIRFLOW_DB_URL       [postgresql+psycopg://postgres@127.0.0.1:5432/airflow_credit]
  CREDIT_DB_URL        [postgresql+psycopg://postgres@127.0.0.1:5432/credit]
  REDIS_URL            [redis://127.0.0.1:6379/0]       the Celery broker
  CELERY_QUEUE         [public-credit]   tasks go to this queue only (a shared Redis stays safe)
  CELERY_WORKERS       [1]   Celery workers on this machine (celery-worker, celery-worker-2, ...): each
                       its own Celery hostname and log server port (WORKER_LOG_PORT, +1, ...) and,
                       when more than one, its own Airflow hostname (<fqdn>-w<i>, what task
                       instances record; logs are read from the shared log folder)
  AIRFLOW_API_PORT     [8080]   and WORKER_LOG_PORT [8793], TRIGGERER_LOG_PORT [8794]
  CREDIT_HOME          [$DEPLOY_HOME/credit], CREDIT_LANDING [$CREDIT_HOME/landing]
  AIRFLOW_ADMIN_USER   [admin], AIRFLOW_ADMIN_PASSWORD [generated once into secrets.json]
  CREDIT_NIGHTLY_SCHEDULE  cron of the nightly DAG ["0 1 * * *"; "manual": triggered runs only]
  CREDIT_GO_LIVE       the first night the nightly DAG evaluates, YYYY-MM-DD: missed nights are caught
                       up back to it, never further [unset: no catch-up, only the latest night runs]

Databases that do not exist yet are created (the URL's user needs CREATEDB). Secrets (Fernet key,
JWT secret, API secret key, admin password) are generated once and kept in secrets.json (0600),
never in the repository. Only the process ids recorded in pids/ are ever signalled.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker")


def worker_names(n: int) -> list[str]:
    return ["celery-worker"] + [f"celery-worker-{i}" for i in range(2, n + 1)]


def settings() -> dict:
    e = os.environ
    home = Path(e.get("DEPLOY_HOME") or ROOT / "var" / "deploy").resolve()
    credit_home = Path(e.get("CREDIT_HOME") or home / "credit").resolve()
    return {
        "home": home,
        "airflow_home": home / "airflow",
        "airflow_db_url": e.get("AIRFLOW_DB_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/airflow_credit",
        "credit_db_url": e.get("CREDIT_DB_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/credit",
        "redis_url": e.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        "queue": e.get("CELERY_QUEUE") or "public-credit",
        "workers": max(1, int(e.get("CELERY_WORKERS") or 1)),
        "api_port": int(e.get("AIRFLOW_API_PORT") or 8080),
        "worker_log_port": int(e.get("WORKER_LOG_PORT") or 8793),
        "triggerer_log_port": int(e.get("TRIGGERER_LOG_PORT") or 8794),
        "credit_home": credit_home,
        "landing": Path(e.get("CREDIT_LANDING") or credit_home / "landing").resolve(),
        "admin_user": e.get("AIRFLOW_ADMIN_USER") or "admin",
        "nightly_schedule": e.get("CREDIT_NIGHTLY_SCHEDULE") or "",
        "go_live": e.get("CREDIT_GO_LIVE") or "",
    }


def _secrets(s: dict) -> dict:
    path = s["home"] / "secrets.json"
    if path.exists():
        data = json.loads(path.read_text())
    else:
        from cryptography.fernet import Fernet

        data = {
            "fernet_key": Fernet.generate_key().decode(),
            "jwt_secret": secrets.token_urlsafe(48),
            "api_secret_key": secrets.token_urlsafe(48),
            "admin_password": secrets.token_urlsafe(12),
        }
        s["home"].mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=1)
    if os.environ.get("AIRFLOW_ADMIN_PASSWORD"):
        data["admin_password"] = os.environ["AIRFLOW_ADMIN_PASSWORD"]
    return data


def environment(s: dict) -> dict[str, str]:
    """Airflow's configuration for every component, as environment variables (as in the compose file)."""
    sec = _secrets(s)
    db = s["airflow_db_url"]
    api = f"http://127.0.0.1:{s['api_port']}"
    env = {
        "AIRFLOW_HOME": str(s["airflow_home"]),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__AUTH_MANAGER": "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": s["redis_url"],
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        "AIRFLOW__OPERATORS__DEFAULT_QUEUE": s["queue"],
        "AIRFLOW__API__PORT": str(s["api_port"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__SECRET_KEY": sec["api_secret_key"],
        "AIRFLOW__API_AUTH__JWT_SECRET": sec["jwt_secret"],
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(s["home"] / "logs" / "tasks"),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s["worker_log_port"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(s["triggerer_log_port"]),
        "CREDIT_DB_URL": s["credit_db_url"],
        "CREDIT_HOME": str(s["credit_home"]),
        "CREDIT_LANDING": str(s["landing"]),
        "PYTHONHASHSEED": "0",
    }
    if s["nightly_schedule"]:
        env["CREDIT_NIGHTLY_SCHEDULE"] = s["nightly_schedule"]
    if s["go_live"]:
        env["CREDIT_GO_LIVE"] = s["go_live"]
    return env


def _run(cmd: list[str], env: dict, log: Path, timeout: int = 600) -> None:
    with open(log, "ab") as fh:
        out = subprocess.run(
            cmd, env={**os.environ, **env}, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout
        )
    if out.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        raise SystemExit(
            f"{' '.join(cmd[:3])} failed (exit {out.returncode}); last lines of {log}:\n"
            + "\n".join(tail)
        )


def ensure_database(url: str) -> None:
    """Create the database named in a PostgreSQL URL if it does not exist yet."""
    import sqlalchemy as sa

    u = sa.engine.make_url(url)
    if not u.get_backend_name().startswith("postgresql"):
        return
    admin = sa.create_engine(
        u.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    try:
        with admin.connect() as conn:
            if (
                conn.execute(
                    sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": u.database}
                ).first()
                is None
            ):
                conn.exec_driver_sql(f'CREATE DATABASE "{u.database}"')
    finally:
        admin.dispose()


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_file(s: dict, name: str) -> Path:
    return s["home"] / "pids" / f"{name}.pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _recorded_names(s: dict) -> list[str]:
    """The components, plus any extra worker a pid file records (whatever CELERY_WORKERS is now)."""
    extra = (
        sorted(p.stem for p in (s["home"] / "pids").glob("celery-worker-*.pid"))
        if (s["home"] / "pids").exists()
        else []
    )
    return [*COMPONENTS, *(n for n in extra if n not in COMPONENTS)]


def running(s: dict) -> dict[str, int]:
    out = {}
    for name in _recorded_names(s):
        f = _pid_file(s, name)
        if f.exists():
            pid = int(f.read_text().split()[0])
            if _alive(pid):
                out[name] = pid
    return out


def api_health(s: dict) -> dict | None:
    try:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{s['api_port']}/api/v2/monitor/health", timeout=5
        ) as r:
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def healthy(h: dict | None) -> bool:
    return bool(h) and all(
        (h.get(k) or {}).get("status") == "healthy"
        for k in ("metadatabase", "scheduler", "triggerer", "dag_processor")
    )


def start(s: dict | None = None, wait: int = 240) -> dict:
    s = s or settings()
    already = running(s)
    if already:
        raise SystemExit(
            f"already running ({', '.join(f'{k} pid {v}' for k, v in already.items())}); "
            "stop it first: make deploy-stop"
        )
    for key in ("api_port", "worker_log_port", "triggerer_log_port"):
        if not port_free(s[key]):
            raise SystemExit(
                f"port {s[key]} ({key}) is taken; set {key.upper().replace('API_PORT', 'AIRFLOW_API_PORT')}"
            )
    for i in range(1, s["workers"]):
        if not port_free(s["worker_log_port"] + i):
            raise SystemExit(
                f"port {s['worker_log_port'] + i} (log server of worker {i + 1}) is taken; "
                "set WORKER_LOG_PORT"
            )
    for d in (
        s["home"] / "pids",
        s["home"] / "logs",
        s["airflow_home"],
        s["credit_home"],
        s["landing"],
    ):
        d.mkdir(parents=True, exist_ok=True)
    env = environment(s)
    env_file = s["home"] / "env"  # for `airflow ...` by hand: holds the secrets too, so 0600
    env_file.unlink(missing_ok=True)
    with os.fdopen(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write("".join(f"export {k}={json.dumps(v)}\n" for k, v in sorted(env.items())))
    logs = s["home"] / "logs"
    ensure_database(s["airflow_db_url"])
    ensure_database(s["credit_db_url"])
    airflow = str(VENV_BIN / "airflow")
    print(f"migrating the Airflow metadata database (log: {logs / 'init.log'})", flush=True)
    _run([airflow, "db", "migrate"], env, logs / "init.log")
    _run(
        [str(VENV_BIN / "credit"), "status", "--json"], env, logs / "init.log"
    )  # the credit schema
    sec = _secrets(s)
    users = subprocess.run(
        [airflow, "users", "list", "--output", "json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    if f'"{s["admin_user"]}"' not in users.stdout:
        _run(
            [
                airflow,
                "users",
                "create",
                "--role",
                "Admin",
                "--username",
                s["admin_user"],
                f"--password={sec['admin_password']}",
                "--firstname",
                "Credit",
                "--lastname",
                "Operator",
                "--email",
                f"{s['admin_user']}@localhost",
            ],
            env,
            logs / "init.log",
        )
    commands = {
        "api-server": [
            airflow,
            "api-server",
            "--port",
            str(s["api_port"]),
            "--host",
            "127.0.0.1",
            "--workers",
            "1",
        ],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        "triggerer": [airflow, "triggerer"],
    }
    own_env = {name: {} for name in commands}
    workers = worker_names(s["workers"])
    fqdn = socket.getfqdn()
    for i, name in enumerate(workers, 1):
        commands[name] = [
            airflow,
            "celery",
            "worker",
            "--queues",
            s["queue"],
            "--concurrency",
            "2",
            "--celery-hostname",
            f"{s['queue']}-{os.getpid()}-w{i}@%h",
        ]
        own_env[name] = {
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(s["worker_log_port"] + i - 1)
        }
        if len(workers) > 1:  # several workers on one machine: tell them apart in task instances
            own_env[name].update(
                {
                    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "credit_worker_host.hostname",
                    "CREDIT_WORKER_HOSTNAME": f"{fqdn}-w{i}",
                    "PYTHONPATH": os.pathsep.join(
                        filter(None, [str(ROOT / "deploy"), os.environ.get("PYTHONPATH")])
                    ),
                }
            )
    for name in [*COMPONENTS[:-1], *workers]:
        with open(logs / f"{name}.log", "ab") as fh:
            # Own session: stop() signals the process group it leads, children included.
            proc = subprocess.Popen(
                commands[name],
                env={**os.environ, **env, **own_env[name]},
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=str(s["home"]),
            )
        _pid_file(s, name).write_text(f"{proc.pid}\n")
        print(f"started {name} (pid {proc.pid}, log {logs / (name + '.log')})", flush=True)
    deadline = time.monotonic() + wait
    h = None
    while time.monotonic() < deadline:
        h = api_health(s)
        if healthy(h):
            break
        dead = [n for n in [*COMPONENTS[:-1], *workers] if n not in running(s)]
        if dead:
            stop(s)
            raise SystemExit(f"{', '.join(dead)} exited at start; see {logs}/<component>.log")
        time.sleep(2)
    else:
        stop(s)
        raise SystemExit(f"not healthy after {wait}s: {h}; see {logs}")
    print(
        f"Airflow is up: http://127.0.0.1:{s['api_port']}  user {s['admin_user']}, password in "
        f"{s['home'] / 'secrets.json'}; logs in {logs}",
        flush=True,
    )
    return h


def stop(s: dict | None = None, grace: float = 30.0) -> list[str]:
    """SIGTERM each recorded process group, SIGKILL what is left after the grace period."""
    s = s or settings()
    pids = {}
    for name in _recorded_names(s):
        f = _pid_file(s, name)
        if f.exists():
            pids[name] = int(f.read_text().split()[0])
    for _name, pid in pids.items():
        if _alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(p) for p in pids.values()):
        time.sleep(0.5)
    for _name, pid in pids.items():
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _pid_file(s, name).unlink(missing_ok=True)
    for _name, pid in pids.items():
        print(f"stopped {name} (pid {pid})", flush=True)
    return list(pids)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Members that are only zombies count as gone.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


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


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    s = settings()
    if cmd == "start":
        start(s)
    elif cmd == "stop":
        if not stop(s):
            print("nothing recorded as running")
    elif cmd == "status":
        r = running(s)
        for name in _recorded_names(s):
            print(f"{name:16s} {'pid ' + str(r[name]) if name in r else 'not running'}")
        print("health:", json.dumps(api_health(s)))
    elif cmd == "compose-env":
        write_compose_env(ROOT / ".env")
    elif cmd == "env":
        sys.stdout.write((s["home"] / "env").read_text())
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
