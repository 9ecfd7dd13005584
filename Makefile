# Gridline: `make demo` runs the whole thing on a demo city; `make test` runs every test tier.
SHELL := /bin/bash
PY := .venv/bin/python
DEVSTACK := python3 tools/devstack.py
# Reuse a broker/database given in the environment; otherwise devstack starts its own.
WITH_STACK = set -a; source .devstack/env; set +a;

.PHONY: setup up down status migrate topics demo test test-unit test-integration test-e2e lint typecheck catalogue bench clean

setup:
	bash scripts/bootstrap.sh

up:
	$(DEVSTACK) up

down:
	$(DEVSTACK) down

status:
	$(DEVSTACK) status

topics: setup up
	$(WITH_STACK) $(PY) -m gridline_messaging.topics create

migrate: setup up
	$(WITH_STACK) for s in intake routing escalation notify; do PII_KEY=x PII_TRANSIT_KEY=x $(PY) -m $$s migrate || exit 1; done

demo: setup up
	$(WITH_STACK) $(PY) demo/run_demo.py $(DEMO_ARGS)

lint:
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck:
	.venv/bin/mypy libs services tools/fakes/src

catalogue: setup
	$(PY) -m gridline_contracts.catalogue > docs/events.md

test: setup up lint typecheck
	$(WITH_STACK) .venv/bin/pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

# The whole stack under open-loop load beside a bare FastAPI endpoint and raw aiokafka, on its own
# broker and database; JSON in bench/results/. E.g. BENCH_ARGS="--rates 100,300 --profile intake".
bench: setup
	$(PY) bench/stack/run.py $(BENCH_ARGS)

test-unit: setup
	.venv/bin/pytest -q tests/unit

test-integration: setup up
	$(WITH_STACK) .venv/bin/pytest -q tests/integration

test-e2e: setup up
	$(WITH_STACK) .venv/bin/pytest -q tests/e2e

clean: down
	rm -rf .venv .devstack
