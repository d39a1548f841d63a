"""The README's lists and install lines match the code: connection types, sandbox connections, example
DAGs (generated regions, see tests/readme.py), the extras it names, and the runnable blocks exist."""

from __future__ import annotations

import re
import tomllib

import pytest

from tests.readme import KINDS, README, ROOT, blocks, expected_regions, regions


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
