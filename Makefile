# The interface: `make demo` (the main job), `make test`, `make lint`, `make bench`, `make airflow`.
# Every target sets up .venv itself when it is missing, so each works on a fresh clone.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test lint package demo airflow bench cluster-demo clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[redis,sandbox]" --group dev
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q -rs -p no:cacheprovider tests

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
	rm -rf .demo .airflow_home build dist *.egg-info

cluster-demo: $(STAMP)
	$(PY) -m tests.harness.cluster --kill-worker
