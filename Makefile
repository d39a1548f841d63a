# The interface: `make demo` (the main job), `make test`, `make lint`, `make bench`, `make airflow`.
# Every target sets up .venv itself when it is missing, so each works on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test test-pythons test-lowest lint package demo airflow bench cluster-demo clean

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
	$(PY) -m pytest -q -rs -p no:cacheprovider --durations=15 tests

# The unit tests on the other Pythons the package supports (the classifiers in pyproject.toml list exactly
# these and .venv's), each in .venv-py<version> with the same Airflow as .venv: scripts/test_pythons.sh.
EXTRA_PYTHONS ?= 3.10 3.12 3.13

test-pythons: $(STAMP)
	scripts/test_pythons.sh $(VENV)/bin/uv "$$($(PY) -c 'import importlib.metadata as m; print(m.version("apache-airflow"))')" $(EXTRA_PYTHONS)

# The lowest Airflow this provider supports, resolved as of its release day (uv --exclude-newer): an old
# Airflow resolved against today's libraries can break inside Airflow itself. Unit tests and the
# example DAGs through dag.test() run there too.
AIRFLOW_LOWEST      ?= 3.1.0
AIRFLOW_LOWEST_DATE ?= 2025-09-26T00:00:00Z
VENV_LOWEST         ?= .venv-airflow-$(AIRFLOW_LOWEST)

test-lowest: $(STAMP)
	$(VENV)/bin/uv venv -q --allow-existing -p $(PYTHON) $(VENV_LOWEST)
	$(VENV)/bin/uv pip install -q --python $(VENV_LOWEST)/bin/python --exclude-newer $(AIRFLOW_LOWEST_DATE) \
		"apache-airflow==$(AIRFLOW_LOWEST)" -e ".[sandbox,redis,openlineage]" pytest pytest-asyncio pytest-timeout respx time-machine hypothesis \
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
	rm -rf .demo .airflow_home build dist *.egg-info .venv-airflow-* .venv-py*

# CLUSTER_DEMO_ARGS=--sentinel: the token cache on a Sentinel group of its own, its primary killed mid-run.
CLUSTER_DEMO_ARGS ?=
cluster-demo: $(STAMP)
	$(PY) -m tests.harness.cluster --kill-worker $(CLUSTER_DEMO_ARGS)

# The fault explorer (tests/explorer) for a while: CHAOS_SECONDS (default 600) of seeded schedules of
# compound faults, each failure printed with its seed; CHAOS_SEED=<n> replays one schedule.
CHAOS_SECONDS ?= 600
chaos: $(STAMP)
	CHAOS_SECONDS=$(CHAOS_SECONDS) CHAOS_SEED=$(CHAOS_SEED) $(PY) -m pytest -q -s -p no:cacheprovider tests/explorer/chaos.py
