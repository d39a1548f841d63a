# The interface: `make demo` (the main job), `make test`, `make lint`, `make bench`, `make airflow`.
# Every target sets up .venv itself when it is missing, so each works on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint demo airflow bench cluster-demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[test,redis]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -rs -p no:cacheprovider tests

lint: $(STAMP)
	$(VENV)/bin/ruff check airflow_vendorauth tests dags_examples scripts $(wildcard benchmarks)
	$(VENV)/bin/mypy airflow_vendorauth

demo: $(STAMP)
	$(PY) scripts/demo.py

airflow: $(STAMP)
	$(PY) scripts/demo.py --standalone

bench: $(STAMP)
	cd benchmarks && ../$(PY) run_all.py

clean:
	rm -rf .demo .airflow_home build *.egg-info

cluster-demo: $(STAMP)
	$(PY) -m tests.harness.cluster --kill-worker
