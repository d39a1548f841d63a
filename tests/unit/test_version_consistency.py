"""One version everywhere it is written, and the Pythons the package claims are the Pythons CI tests.

The version lives in ``airflow_vendorauth.__version__`` (the wheel reads it there: pyproject's ``dynamic``);
the CHANGELOG's top section, the README's lineage sample and ``get_provider_info()`` must say the same.
The classifiers, ``requires-python``, the README's Compatibility table and the Makefile's
``EXTRA_PYTHONS`` must name the same Pythons.
"""

from __future__ import annotations

import re
import sys

from airflow_vendorauth import __version__
from airflow_vendorauth.get_provider_info import get_provider_info
from tests.readme import README, ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the unit group installs it)
    import tomli as tomllib

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_wheel_takes_its_version_from_the_package() -> None:
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"], "one source: airflow_vendorauth.__version__"
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "airflow_vendorauth.__version__"}


def test_the_changelog_top_section_is_this_version() -> None:
    top = re.search(r"^## (\S+)", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert top and top[1] == __version__, f"CHANGELOG.md's top section is {top and top[1]}, the package {__version__}"


def test_the_readme_samples_and_the_provider_info_name_this_version() -> None:
    named = set(re.findall(r"airflow-vendorauth/tree/([\w.]+)", README.read_text()))
    assert named == {__version__}, f"README.md names {named}, the package is {__version__}"
    assert get_provider_info()["versions"] == [__version__]


def _compatibility_pythons() -> dict[str, set[str]]:
    """The README's Python table: status -> the versions of its row."""
    text = README.read_text()
    table = text[text.index("| Python | status |") :].split("\n\n", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    return {status.strip(): set(re.findall(r"3\.\d+", versions)) for versions, status in rows}


def test_the_classifiers_list_exactly_the_pythons_ci_tests() -> None:
    classified = {
        c.rsplit(" :: ", 1)[1] for c in PYPROJECT["project"]["classifiers"] if re.fullmatch(r".*Python :: 3\.\d+", c)
    }
    documented = set().union(*_compatibility_pythons().values())
    extra = re.search(r"^EXTRA_PYTHONS \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert extra, "the Makefile lost EXTRA_PYTHONS"
    unit_only = {status: v for status, v in _compatibility_pythons().items() if "make test-pythons" in status}
    assert list(unit_only.values()) == [set(extra[1].split())], (unit_only, extra[1])
    assert classified == documented, f"classifiers {sorted(classified)}, README's Compatibility {sorted(documented)}"
    lowest = min(classified, key=lambda v: tuple(map(int, v.split("."))))
    assert PYPROJECT["project"]["requires-python"] == f">={lowest}"
