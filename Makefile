# Everything runs from a local virtualenv at .venv/, built from the committed lock (constraints.txt).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The demo's data (throw-away, in the checkout: `make clean` removes it). A deployment keeps its
# data outside the repository (CREDIT_DATA_DIR, see deploy/local.py), which `make clean` never touches.
DEMO_HOME ?= $(CURDIR)/var
export AIRFLOW_HOME ?= $(CURDIR)/var/airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__PLUGINS_FOLDER := $(CURDIR)/plugins
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW__LOGGING__BASE_LOG_FOLDER := $(AIRFLOW_HOME)/logs
export PYTHONHASHSEED := 0

DEMO_AS_OF ?= 2026-06-30
# The demo's second night is quiet (nothing new arrives); the third brings the 1-2 July deliveries.
DEMO_QUIET ?= 2026-07-01
DEMO_NEXT ?= 2026-07-02
DEMO_ENTITIES ?= 20000

.PHONY: lint install demo demo-night test bench bench-quick bench-10m bench-intake lock clean deploy-local deploy-stop deploy-status deploy-restart compose-env

install: $(VENV)/.installed

# Bytecode compiled at install (as pip and the Docker image do): where PYTHONDONTWRITEBYTECODE is
# set, as on CI machines here, every process would otherwise compile what it imports (Great
# Expectations, pandas, Airflow) again (importing GX, pandas, pyarrow, SQLAlchemy: 9.2 s -> 3.9 s).
$(VENV)/.installed: constraints.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==0.13.9"
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r constraints.txt
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --no-deps -e .
	touch $@

lock:
	$(BIN)/uv pip compile --python-version 3.11 --no-header --annotation-style line requirements.in -o constraints.txt

# The main job on a fresh machine: a demo province and three consecutive nights through Airflow
# (dags test on SQLite): a night with deliveries, a quiet night (nothing new arrived: evaluated
# from the stored history as of its own date), and a night with the next deliveries; then where
# each night's results and report are.
demo demo-night: export CREDIT_HOME := $(DEMO_HOME)
demo: install
	$(BIN)/credit demo-data --out "$(DEMO_HOME)/demo" --entities $(DEMO_ENTITIES) --as-of $(DEMO_AS_OF)
	$(BIN)/airflow db migrate > "$(DEMO_HOME)/airflow-migrate.log" 2>&1 || (tail -20 "$(DEMO_HOME)/airflow-migrate.log"; exit 1)
	@$(MAKE) --no-print-directory demo-night NIGHT=$(DEMO_AS_OF)
	@$(MAKE) --no-print-directory demo-night NIGHT=$(DEMO_QUIET)
	$(BIN)/credit demo-data --out "$(DEMO_HOME)/demo" --entities $(DEMO_ENTITIES) --as-of $(DEMO_NEXT)
	@$(MAKE) --no-print-directory demo-night NIGHT=$(DEMO_NEXT)
	$(BIN)/credit status

demo-night:
	@echo "night $(NIGHT): DAG public_credit_nightly (airflow dags test; log: $(DEMO_HOME)/airflow-dags-test-$(NIGHT).log)"
	@CREDIT_LANDING="$(DEMO_HOME)/demo/landing" $(BIN)/airflow dags test public_credit_nightly \
		-c '{"as_of": "$(NIGHT)"}' > "$(DEMO_HOME)/airflow-dags-test-$(NIGHT).log" 2>&1 \
		|| (grep -E "ERROR|Error|failed" "$(DEMO_HOME)/airflow-dags-test-$(NIGHT).log" | tail -20; exit 1)
	@grep -E "DagRun Finished" "$(DEMO_HOME)/airflow-dags-test-$(NIGHT).log" | sed 's/.*\(state=[a-z]*\).*/DAG run finished: \1/'
	@$(BIN)/credit status --as-of $(NIGHT)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install lint
	$(BIN)/python -m pytest -q

# The province-scale figures (3M entities / 30M records on PostgreSQL; about 25 minutes, 20+ GB
# free for the in-memory scoring-core figure) and a laptop-sized run of the same table.
bench: install
	CREDIT_BENCH_PG_URL=$${CREDIT_BENCH_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: install
	CREDIT_BENCH_PG_URL=$${CREDIT_BENCH_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m bench --only night,score --entities 200000 --records 2000000 \
		--night-rows 2000 --rows 100000 --inspections 20000 $(BENCH_ARGS)

# One night by partitions at 10M entities / 100M records (a nation-sized night), and nothing else: the store
# seeded a history batch at a time, then `credit run` in 64 partitions; needs both cores, most of the
# memory and tens of GB of disk under CREDIT_BENCH_TMP (default the system's temporary folder).
bench-10m: install
	CREDIT_BENCH_PG_URL=$${CREDIT_BENCH_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m bench --only night-10m --entities 10000000 --records 100000000 $(BENCH_ARGS)

# Intake through the landing, not a seeded store: the first night of a province from the files
# `credit demo-data` writes, at each of INTAKE_SIZES (entities), step by step (time, rows/s, tree
# PSS; the peaks compared between sizes), then the night after it with the register a full
# snapshot. INTAKE_MADE keeps the generated provinces (DIR/p<N>) for the next run; generating
# 3M entities takes tens of minutes. INTAKE_TIMEOUT (seconds) stops a first night that runs over.
INTAKE_SIZES ?= 100000,300000
bench-intake: install
	CREDIT_BENCH_PG_URL=$${CREDIT_BENCH_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test} \
		$(BIN)/python -m bench --only snapshot-night --intake-sizes $(INTAKE_SIZES) \
		$(if $(INTAKE_MADE),--intake-made $(INTAKE_MADE)) \
		$(if $(INTAKE_TIMEOUT),--intake-timeout $(INTAKE_TIMEOUT)) $(BENCH_ARGS)

# The production topology from the venv (api-server, scheduler, dag-processor, triggerer, Celery
# workers, watchdog) against a PostgreSQL and a Redis, DAGs unpaused; settings from the
# environment, see deploy/local.py. deploy-status exits 1 naming any component that is down;
# deploy-restart restarts one (COMPONENT=celery-worker|scheduler|...) by its recorded pid.
deploy-local: install
	$(BIN)/python deploy/local.py start

deploy-stop:
	$(BIN)/python deploy/local.py stop

deploy-status:
	$(BIN)/python deploy/local.py status

deploy-restart:
	@test -n "$(COMPONENT)" || (echo "usage: make deploy-restart COMPONENT=celery-worker|scheduler|dag-processor|triggerer|api-server|watchdog"; exit 2)
	$(BIN)/python deploy/local.py restart $(COMPONENT)

# .env for docker compose with fresh random secrets (never overwrites an existing .env).
compose-env: install
	$(BIN)/python deploy/local.py compose-env

clean:
	rm -rf var
