# latticedb-deploy: one command for a whole local deployment (make demo), one for the tests (make test).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ENVSH := source scripts/airflow-env.sh
IMAGE ?= 123456789012.dkr.ecr.us-east-1.amazonaws.com/latticedb:v2.0.0
ENVIRONMENT ?= local
# Parallel test workers (pytest-xdist), each in its own environment (local-2 ... local-9) of one local stack.
TEST_WORKERS ?= 8
# Environments `make local-up` starts (local plus any of its copies in include/config/latticedb.yaml local_copies).
LOCAL_ENVIRONMENTS ?= local

.PHONY: help install demo test lint local-up local-down up down bench e2e stack-deps clean iam-policy

help: ## list the commands
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-11s %s\n", $$1, $$2}'

$(PY):
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (or run: make PYTHON=python3 ...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP): $(PY) requirements.txt requirements-dev.txt
	$(PY) -m pip install -q -r requirements-dev.txt
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install everything (idempotent)

local-up: install ## start the local environment (moto server, stand-in service, simulator, Slack sink); LOCAL_ENVIRONMENTS="local local-staging local-prod" for more
	@$(ENVSH); LATTICEDB_LOCAL_ENVIRONMENTS="$(LOCAL_ENVIRONMENTS)" $(PY) include/local/ctl.py up

local-down: ## stop the local environment
	@$(ENVSH); if [ -x $(PY) ]; then LATTICEDB_LOCAL_ENVIRONMENTS="$(LOCAL_ENVIRONMENTS)" $(PY) include/local/ctl.py down; fi

demo: install ## run one rolling deployment of latticedb:v2.0.0 to `local` through Airflow, then stop
	@$(ENVSH); $(PY) include/local/ctl.py up; $(PY) include/local/ctl.py reset; \
	  rc=0; $(PY) scripts/demo.py --image "$(IMAGE)" --environment "$(ENVIRONMENT)" || rc=$$?; \
	  $(PY) include/local/ctl.py down; exit $$rc

iam-policy: install ## print the deployer's IAM policy for ENVIRONMENT (committed as include/iam/<env>.json)
	@$(ENVSH); $(PY) -m latticedb_deploy.iam_policy "$(ENVIRONMENT)"

lint: install ## ruff with Airflow's AIR rules
	$(VENV)/bin/ruff check dags plugins include tests scripts benchmarks harness

test: install lint ## install and run the whole test suite
	@command -v redis-server >/dev/null || scripts/apt-install-missing.sh test redis-server || \
	  echo "the tests that need redis-server will be skipped"
	@$(ENVSH); $(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=25 --timeout=1200

stack-deps: install ## what a running Airflow needs (make e2e, make bench): Celery and PostgreSQL drivers in .venv, redis-server, PostgreSQL
	@[ $(VENV)/.e2e-installed -nt scripts/e2e/requirements.txt ] || { $(PY) -m pip install -q -r scripts/e2e/requirements.txt && touch $(VENV)/.e2e-installed; }
	@missing=""; command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	  { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; } || missing="$$missing postgresql"; \
	  scripts/apt-install-missing.sh stack-deps $$missing || true

e2e: stack-deps ## end-to-end: Postgres + Redis + Airflow (api-server, scheduler, dag-processor, triggerer, Celery worker) + local env + headless Chromium; artifacts in artifacts/e2e/
	@missing=""; { command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; } || missing="$$missing chromium"; \
	  { command -v chromedriver >/dev/null || [ -x /usr/lib/chromium/chromedriver ]; } || missing="$$missing chromium-driver"; \
	  scripts/apt-install-missing.sh e2e $$missing || true
	@$(ENVSH); LATTICEDB_E2E=1 LATTICEDB_TEST_ENVIRONMENT=local $(PY) -m pytest -q -p no:cacheprovider --durations=0 --timeout=900 tests/e2e

bench: stack-deps ## benchmarks (measured, never asserted): parse time, CPU per AWS client, control-plane overhead, rollback latency, worker slots (and their no-op twins' floor), judge, control actions, a canary in a running Airflow
	@$(ENVSH); rc=0; for b in parse_time aws_clients overhead rollback_latency worker_slots judge control canary_wall; do \
	  echo; echo "== benchmarks/$$b.py"; $(PY) -m benchmarks.$$b || { rc=1; echo "benchmarks/$$b.py failed"; }; \
	done; \
	echo; echo "== benchmarks/worker_slots.py, the twins (BENCH_SLOTS_TWIN=1)"; \
	BENCH_SLOTS_TWIN=1 $(PY) -m benchmarks.worker_slots || { rc=1; echo "benchmarks/worker_slots.py (twins) failed"; }; \
	exit $$rc

up: install ## local environment + `airflow standalone` on http://localhost:8080 (see README for the password)
	@$(ENVSH); $(PY) include/local/ctl.py up; scripts/standalone.sh start

down: ## stop `make up`
	@$(ENVSH); scripts/standalone.sh stop; if [ -x $(PY) ]; then $(PY) include/local/ctl.py down; fi

clean: down ## remove the venv, Airflow home and local state
	rm -rf $(VENV) .airflow .local
