"""Run the production topology from the project's venv: api-server, scheduler, dag-processor,
triggerer, Celery workers and a watchdog, on a given PostgreSQL (Airflow metadata + credit store)
and Redis.

    python deploy/local.py start    # what `make deploy-local` runs (DAGs start unpaused)
    python deploy/local.py stop     # what `make deploy-stop` runs: stops the recorded process ids
    python deploy/local.py status   # each component's own health; exit 1 naming what is down
    python deploy/local.py restart NAME   # one component (worker: celery-worker, celery-worker-2)
    python deploy/local.py env      # the environment of the deployment, for `airflow ...` by hand

Settings come from the environment (defaults in brackets; all in docs/operations.md):
  CREDIT_DATA_DIR      [$XDG_DATA_HOME/public-credit, else ~/.local/share/public-credit]: the data
                       that outlives a checkout (CREDIT_HOME, secrets.json), never in the repository
  DEPLOY_HOME          [./var/deploy]  pids/, logs/, airflow/ (AIRFLOW_HOME), env: replaceable
  AIRFLOW_DB_URL, CREDIT_DB_URL [postgresql+psycopg://postgres@127.0.0.1:5432/airflow_credit,
                       .../credit]
  REDIS_URL [redis://127.0.0.1:6379/0], CELERY_QUEUE [public-credit] (tasks go to this queue only)
  CELERY_WORKERS       [1]  workers here (celery-worker, celery-worker-2, ...), each its own Celery
                       name (<queue>-w<i>) and, when several, Airflow hostname (<fqdn>-w<i>)
  AIRFLOW_API_PORT     [8080] on 127.0.0.1 only; no log server listens (logs: the shared folder)
  CREDIT_HOME          [$CREDIT_DATA_DIR/credit], CREDIT_LANDING [$CREDIT_HOME/landing]
  AIRFLOW_ADMIN_USER   [admin], AIRFLOW_ADMIN_PASSWORD [generated once into secrets.json]
  CREDIT_NIGHTLY_SCHEDULE [0 1 * * *; manual], CREDIT_GO_LIVE [unset: no catch-up] (YYYY-MM-DD)
  CREDIT_TASK_HEARTBEAT_TIMEOUT [60] s without a heartbeat before a dead worker's task is retried
  CREDIT_WATCHDOG_INTERVAL [15] s between checks; down at two in a row alerts once per outage
  CREDIT_* (any other: CREDIT_ALERT_WEBHOOK, CREDIT_PARTITIONS, ...) passed to every component

Every setting is written to DEPLOY_HOME/env (0600); `restart` starts a component from it, whatever
the calling shell has. Missing databases are created (the URL's user needs CREATEDB). Secrets are
generated once into secrets.json (0600). Only the process ids recorded in pids/ are signalled.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import health  # noqa: E402  (deploy/ is this script's folder)

COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer", "celery-worker", "watchdog")
SERVICES = COMPONENTS[:4]  # started before the workers; the watchdog starts last


def worker_names(n: int) -> list[str]:
    return ["celery-worker"] + [f"celery-worker-{i}" for i in range(2, n + 1)]


def data_dir() -> Path:
    e = os.environ
    base = e.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(e.get("CREDIT_DATA_DIR") or Path(base) / "public-credit").resolve()


def settings() -> dict:
    e = os.environ
    home = Path(e.get("DEPLOY_HOME") or ROOT / "var" / "deploy").resolve()
    data = data_dir()
    credit_home = Path(e.get("CREDIT_HOME") or data / "credit").resolve()
    return {
        "home": home,
        "data_dir": data,
        "secrets": data / "secrets.json",
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
        "heartbeat_timeout": int(e.get("CREDIT_TASK_HEARTBEAT_TIMEOUT") or 60),
    }


def _secrets(s: dict) -> dict:
    path = s["secrets"]
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
        path.parent.mkdir(parents=True, exist_ok=True)
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
        # Deployed to run: `airflow dags pause public_credit_nightly` stops the nights.
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__DEFAULT_TIMEZONE": "Asia/Shanghai",
        "AIRFLOW__CORE__FERNET_KEY": sec["fernet_key"],
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db,
        "AIRFLOW__CELERY__BROKER_URL": s["redis_url"],
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + db,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "2",
        # A task is acknowledged when it ends, and given back to the broker if its worker process
        # dies; a dead worker's task is failed after the heartbeat timeout and retried elsewhere.
        "AIRFLOW__CELERY__TASK_ACKS_LATE": "True",
        "AIRFLOW__CELERY__EXTRA_CELERY_CONFIG": json.dumps({"task_reject_on_worker_lost": True}),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(s["heartbeat_timeout"]),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
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
    # Every other CREDIT_* setting (the alert webhook, partitions, ...) reaches every component.
    env.update({k: v for k, v in os.environ.items() if k.startswith("CREDIT_") and k not in env})
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


def _prepare_databases(s: dict, env: dict) -> None:
    """Missing databases created, both schemas migrated, the admin login made once."""
    logs = s["home"] / "logs"
    airflow = str(VENV_BIN / "airflow")
    ensure_database(s["airflow_db_url"])
    ensure_database(s["credit_db_url"])
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


def _commands(s: dict, names: list[str]) -> dict[str, tuple[list[str], dict[str, str]]]:
    """{component: (command, its own environment on top of the deployment's)}."""
    airflow = str(VENV_BIN / "airflow")
    fixed = {
        "api-server": [airflow, "api-server", "--port", str(s["api_port"])]
        + ["--host", "127.0.0.1", "--workers", "1"],
        "scheduler": [airflow, "scheduler"],
        "dag-processor": [airflow, "dag-processor"],
        # Logs are read from the shared log folder: no log server listening on every interface.
        "triggerer": [airflow, "triggerer", "--skip-serve-logs"],
        "watchdog": [sys.executable, str(Path(__file__).resolve()), "watchdog"],
    }
    several = len([n for n in names if n.startswith("celery-worker")]) > 1
    fqdn = socket.getfqdn()
    out = {}
    for name in names:
        if name in fixed:
            out[name] = (fixed[name], {})
            continue
        i = health.worker_index(name)
        cmd = [airflow, "celery", "worker", "--queues", s["queue"], "--concurrency", "2"]
        cmd += ["--celery-hostname", f"{health.celery_hostname(s['queue'], i)}@%h"]
        own = {}
        if several:  # several workers on one machine: tell them apart in task instances
            own = {
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "credit_worker_host.hostname",
                "CREDIT_WORKER_HOSTNAME": f"{fqdn}-w{i}",
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT / "deploy"), os.environ.get("PYTHONPATH")])
                ),
            }
        out[name] = ([*cmd, "--skip-serve-logs"], own)
    return out


def _spawn(s: dict, env: dict, name: str, cmd: list[str], own: dict) -> int:
    logs = s["home"] / "logs"
    with open(logs / f"{name}.log", "ab") as fh:
        # Own session: stop() signals the process group it leads, children included.
        proc = subprocess.Popen(
            cmd,
            env={**os.environ, **env, **own},
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=str(s["home"]),
        )
    _pid_file(s, name).write_text(f"{proc.pid}\n")
    print(f"started {name} (pid {proc.pid}, log {logs / (name + '.log')})", flush=True)
    return proc.pid


def _write_env(s: dict, env: dict) -> None:
    env_file = s["home"] / "env"  # for `airflow ...` by hand and restarts: holds secrets, so 0600
    env_file.unlink(missing_ok=True)
    with os.fdopen(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as fh:
        fh.write("".join(f"export {k}={json.dumps(v)}\n" for k, v in sorted(env.items())))


def recorded_env(s: dict) -> dict[str, str]:
    """The deployment's environment as `start` wrote it (DEPLOY_HOME/env)."""
    out = {}
    for line in (s["home"] / "env").read_text().splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = json.loads(value)
    return out


def _wait_healthy(s: dict, names: list[str], wait: int) -> dict:
    deadline = time.monotonic() + wait
    h = None
    while time.monotonic() < deadline:
        h = health.api_health(s["api_port"])
        if health.healthy(h):
            return h
        dead = [n for n in names if n not in running(s)]
        if dead:
            stop(s)
            raise SystemExit(f"{', '.join(dead)} exited at start; see {s['home'] / 'logs'}")
        time.sleep(2)
    stop(s)
    raise SystemExit(f"not healthy after {wait}s: {h}; see {s['home'] / 'logs'}")


def start(s: dict | None = None, wait: int = 240) -> dict:
    s = s or settings()
    already = running(s)
    if already:
        raise SystemExit(
            f"already running ({', '.join(f'{k} pid {v}' for k, v in already.items())}); "
            "stop it first (make deploy-stop), or restart one: make deploy-restart COMPONENT=..."
        )
    if not port_free(s["api_port"]):
        raise SystemExit(f"port {s['api_port']} is taken; set AIRFLOW_API_PORT")
    for d in (s["home"] / "pids", s["home"] / "logs", s["airflow_home"], s["landing"]):
        d.mkdir(parents=True, exist_ok=True)
    env = environment(s)
    _write_env(s, env)
    _prepare_databases(s, env)
    names = [*SERVICES, *worker_names(s["workers"])]
    for name, (cmd, own) in _commands(s, names).items():
        _spawn(s, env, name, cmd, own)
    h = _wait_healthy(s, names, wait)
    cmd, own = _commands(s, ["watchdog"])["watchdog"]
    _spawn(s, env, "watchdog", cmd, own)
    print(
        f"Airflow is up: http://127.0.0.1:{s['api_port']}  user {s['admin_user']}, password in "
        f"{s['secrets']}; DAGs unpaused; logs in {s['home'] / 'logs'}; data in {s['credit_home']}",
        flush=True,
    )
    return h


def restart(s: dict, name: str, grace: float = 30.0) -> int:
    """Stop one component (its recorded process group) and start it again with the recorded
    environment; the others keep running."""
    known = _recorded_names(s)
    if name not in known:
        raise SystemExit(f"no component {name!r}; components: {', '.join(known)}")
    if not (s["home"] / "env").exists():
        raise SystemExit(f"no deployment recorded in {s['home']}; start it: make deploy-local")
    stop(s, grace, only=[name])
    env = recorded_env(s)
    workers = [n for n in known if n.startswith("celery-worker") and _pid_file(s, n).exists()]
    names = sorted({*workers, name})
    cmd, own = _commands(s, names)[name]
    return _spawn(s, env, name, cmd, own)


def stop(s: dict | None = None, grace: float = 30.0, only: list[str] | None = None) -> list[str]:
    """SIGTERM each recorded process group (all, or ``only`` those), SIGKILL what is left after
    the grace period."""
    s = s or settings()
    pids = {}
    for name in only or _recorded_names(s):
        f = _pid_file(s, name)
        if f.exists():
            pids[name] = int(f.read_text().split()[0])
    for pid in pids.values():
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(p) for p in pids.values()):
        time.sleep(0.5)
    for name, pid in pids.items():
        if _group_alive(pid):
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        _pid_file(s, name).unlink(missing_ok=True)
        print(f"stopped {name} (pid {pid})", flush=True)
    return list(pids)


def _components(s: dict) -> tuple[dict[str, int], list[str]]:
    """(the running recorded pids, the workers the deployment has)."""
    pids = running(s)
    workers = [n for n in _recorded_names(s) if n.startswith("celery-worker")]
    recorded = [n for n in workers if _pid_file(s, n).exists()]
    return pids, recorded or worker_names(s["workers"])


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


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "status"
    s = settings()
    if cmd == "start":
        start(s)
    elif cmd == "stop":
        if not stop(s):
            print("nothing recorded as running")
    elif cmd == "status":
        return health.status(s, *_components(s))
    elif cmd == "restart" and len(argv) > 2:
        restart(s, argv[2])
    elif cmd == "watchdog":
        health.watchdog(s, lambda: _components(s))
    elif cmd == "compose-env":
        from compose_env import write_compose_env

        write_compose_env(ROOT / ".env")
    elif cmd == "env":
        sys.stdout.write((s["home"] / "env").read_text())
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
