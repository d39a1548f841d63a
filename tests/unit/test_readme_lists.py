"""The README's lists and install lines match the code: connection types, sandbox connections, example
DAGs (generated regions, see tests/readme.py), the extras it names, and the runnable blocks exist; every
python, bash and JSON block is marked runnable or fragment, and each fragment is valid where it stands."""

from __future__ import annotations

import re
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI (the unit group installs it)
    import tomli as tomllib

from tests.readme import (
    KINDS,
    README,
    ROOT,
    Block,
    blocks,
    expected_regions,
    fragment_problems,
    python_problems,
    regions,
    unmarked,
)


@pytest.mark.parametrize("name", sorted(expected_regions()))
def test_generated_region_matches_the_code(name: str) -> None:
    found = regions()
    assert name in found, f"README.md lost its <!-- generated: {name} --> region"
    expected = expected_regions()[name]
    assert found[name] == expected, (
        f"README.md's {name} list has drifted from the code; run `python -m tests.readme --write`, or paste:\n{expected}"
    )


def test_every_kind_of_runnable_block_is_marked() -> None:
    assert {b.kind for b in blocks()} == set(KINDS)


def test_every_python_bash_and_json_block_is_marked_runnable_or_fragment() -> None:
    assert unmarked() == [], (
        "each block a user would copy is run (<!-- readme-test: dag -->...) or checked (<!-- readme-test: "
        "fragment -->): mark these"
    )


def test_an_unmarked_python_block_is_found_and_a_marked_one_or_plain_text_is_not() -> None:
    text = (
        "<!-- readme-test: fragment -->\n```python\nx = 1\n```\n\n"
        "```\na tree, no language\n```\n\n"
        "Some prose.\n\n```python\nimport os\n```\n"
    )
    assert unmarked(text) == ["README.md:12 (python)"]


@pytest.mark.parametrize("block", blocks(kind="fragment"), ids=lambda b: b.name)
def test_each_fragment_is_valid_where_it_stands(block: Block) -> None:
    assert fragment_problems(block) == []


@pytest.mark.parametrize("block", [b for b in blocks() if b.lang == "python"], ids=lambda b: b.name)
def test_every_python_block_names_only_what_exists(block: Block) -> None:
    assert python_problems(block.body) == []


@pytest.mark.parametrize(
    ("lang", "body", "said"),
    [
        ("python", "from airflow_vendorauth.operators.api import VendorApiOperatr\n", "has no VendorApiOperatr"),
        ("python", "from airflow_vendorauth.nowhere import X\n", "from airflow_vendorauth.nowhere"),
        ("python", "import airflow_vendorauth.pagination as p\np.PageNumberPaging()\n", "has no PageNumberPaging"),
        ("python", "VendorApiOperator(task_id='x')\n", "'VendorApiOperator' is used but never defined"),
        ("python", "def f():\n    return [y for x in range(3)]\n", "'y' is used but never defined"),
        ("python", "VendorApiOperator(task_id='x'\n", "syntax error"),
        ("bash", "export A='unclosed\n", "unexpected EOF"),
        ("json", '{"eventType": "COMPLETE",}', "not JSON"),
    ],
)
def test_the_fragment_check_catches_what_a_copy_would_trip_on(lang: str, body: str, said: str) -> None:
    problems = fragment_problems(Block("fragment", lang, body, 1))
    assert any(said in problem for problem in problems), problems


def test_a_marker_not_followed_by_a_fence_is_an_error_not_a_skip() -> None:
    text = "<!-- readme-test: dag -->\n\n```python\nx = 1\n```\n"
    with pytest.raises(ValueError, match="1 readme-test markers but 0"):
        blocks(text)


def test_the_extras_the_readme_installs_exist() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = set(re.findall(r"airflow-vendorauth\[(\w+)\]|'\.\[(\w+)\]'", README.read_text()))
    extras = {a or b for a, b in named}
    assert extras and extras <= declared, extras - declared
    assert "testing" in extras


def test_the_readme_offers_no_install_that_cannot_work() -> None:
    text = README.read_text()
    assert not re.search(r"pip install '?airflow-vendorauth(\[|'|\s)", text), "not on PyPI: install from a clone"
    assert "--port 8080" not in text, "8080 is Airflow's api-server port"


def test_every_connection_the_example_dags_use_is_named_where_the_readme_says_to_create_them() -> None:
    used = set()
    for path in (ROOT / "dags_examples").glob("*.py"):
        used |= set(re.findall(r"\"([a-z0-9]+_(?:default|user))\"", path.read_text()))
    text = README.read_text()
    section = text[text.index("### Pointing the DAGs at the real vendors") :]
    section = section[: section.index("\n## ")]
    assert used and used <= set(re.findall(r"`(\w+)`", section)), used - set(re.findall(r"`(\w+)`", section))
