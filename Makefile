# The interface: `make demo` (the main job), `make test`, `make lint`, `make bench`, `make airflow`.
# Every target sets up .venv itself when it is missing, so each works on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-lowest lint package demo airflow bench cluster-demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[redis,sandbox]" --group dev
	touch $(STAMP)

install: $(STAMP)

# The independent authorization server the peer tests run (tests/peers: oidc-provider, pinned by its lock file).
PEERS := tests/peers/node_modules/.package-lock.json
$(PEERS): tests/peers/package-lock.json
	cd tests/peers && npm ci --no-audit --no-fund

test: $(STAMP) $(PEERS)
	$(PY) -m pytest -q -rs -p no:cacheprovider tests

# The lowest Airflow this provider supports, resolved as of its release day (uv --exclude-newer): an old
# Airflow resolved against today's libraries can break inside Airflow itself. Unit tests and the
# example DAGs through dag.test() run there too.
AIRFLOW_LOWEST      ?= 3.1.0
AIRFLOW_LOWEST_DATE ?= 2025-09-26T00:00:00Z
VENV_LOWEST         ?= .venv-airflow-$(AIRFLOW_LOWEST)

test-lowest: $(STAMP)
	$(VENV)/bin/uv venv -q --allow-existing -p $(PYTHON) $(VENV_LOWEST)
	$(VENV)/bin/uv pip install -q --python $(VENV_LOWEST)/bin/python --exclude-newer $(AIRFLOW_LOWEST_DATE) \
		"apache-airflow==$(AIRFLOW_LOWEST)" -e ".[sandbox,redis,openlineage]" pytest pytest-asyncio respx time-machine hypothesis \
		apache-airflow-providers-http
	$(VENV_LOWEST)/bin/python -c "import airflow; print('Airflow', airflow.__version__)"
	$(VENV_LOWEST)/bin/python -m pytest -q -rs -p no:cacheprovider tests/unit tests/integration/test_example_dags.py

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_vendorauth tests dags_examples scripts $(wildcard benchmarks)
	$(VENV)/bin/mypy airflow_vendorauth

# The distribution: build it, check its metadata strictly, and install the wheel alone in a fresh
# virtualenv (no sandbox extra, no dev tools) where `airflow providers list` must show it.
package: $(STAMP)
	rm -rf dist
	$(PY) -m build -q --outdir dist . >/dev/null
	$(VENV)/bin/twine check --strict dist/*
	$(PY) scripts/check_wheel.py dist

demo: $(STAMP)
	$(PY) scripts/demo.py

airflow: $(STAMP)
	$(PY) scripts/demo.py --standalone

bench: $(STAMP)
	cd benchmarks && ../$(PY) run_all.py

clean:
	rm -rf .demo .airflow_home build dist *.egg-info .venv-airflow-*

cluster-demo: $(STAMP)
	$(PY) -m tests.harness.cluster --kill-worker
