#!/usr/bin/env bash
# `make test-pythons`: the unit tests on each Python the package supports besides the one of .venv (where
# `make test` runs everything). Each gets a virtualenv of its own made by uv, .venv-py<version>, with the
# package, its redis and sandbox extras, the `unit` dependency group and the same Airflow as .venv.
#
# Usage: scripts/test_pythons.sh UV AIRFLOW_VERSION VERSION...
# An interpreter is taken from PATH (python3.12) when it runs, else from pyenv's folders: pyenv's shims
# answer only for the versions made global, so `python3.12` on PATH may exist and still fail.
set -euo pipefail
uv=$1 airflow=$2
shift 2
export UV_PYTHON_DOWNLOADS=never   # use the machine's interpreters; never fetch one

find_python() {  # version -> the path of a working interpreter, or nothing
  local version=$1 candidate
  for candidate in "$(command -v "python$version" || true)" \
                   $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -V -r); do
    if [[ -n $candidate ]] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
      echo "$candidate"; return 0
    fi
  done
}

for version in "$@"; do
  python=$(find_python "$version")
  if [[ -z $python ]]; then
    echo "test-pythons: no Python $version here (looked on PATH and in pyenv's versions; pyenv install $version)" >&2
    exit 1
  fi
  venv=.venv-py$version
  started=$SECONDS
  "$uv" venv -q --allow-existing -p "$python" "$venv"
  "$uv" pip install -q --python "$venv/bin/python" -e ".[redis,sandbox]" --group unit "apache-airflow==$airflow"
  echo "test-pythons: Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), Airflow $airflow: tests/unit"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit
  echo "test-pythons: Python $version took $((SECONDS - started)) s"
done
