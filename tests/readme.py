"""The README's runnable blocks and generated lists, found by explicit markers so that blocks others add
never break the tests that run these.

- ``<!-- readme-test: KIND -->`` on the line right before a code fence marks that block as runnable
  (kinds: ``conftest``, ``dag``, ``test``, ``connections``, ``cli``, ``sandbox``); unmarked blocks are
  documentation only.
- ``<!-- generated: NAME -->...<!-- /generated -->`` holds text made from the code (connection types,
  sandbox connections, example DAGs). ``python -m tests.readme --write`` rewrites them;
  ``tests/unit/test_readme_lists.py`` fails, printing the expected text, when one has drifted.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KINDS = ("conftest", "dag", "test", "connections", "cli", "sandbox")

_BLOCK = re.compile(r"^<!-- readme-test: (?P<kind>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)
_REGION = re.compile(r"<!-- generated: (?P<name>[\w-]+) -->(?P<body>.*?)<!-- /generated -->", re.S)


@dataclass(frozen=True)
class Block:
    kind: str
    lang: str
    body: str
    line: int

    @property
    def name(self) -> str:
        return f"README.md:{self.line} ({self.kind})"


def blocks(text: str | None = None, kind: str | None = None) -> list[Block]:
    """The marked blocks, in README order; a marker not right before a fence is an error, not a skip."""
    text = README.read_text() if text is None else text
    found = [
        Block(m["kind"], m["lang"], m["body"], text.count("\n", 0, m.start()) + 2)
        for m in _BLOCK.finditer(text)
    ]
    markers = len(re.findall(r"^<!-- readme-test: ", text, re.M))
    if markers != len(found):
        raise ValueError(f"README.md has {markers} readme-test markers but {len(found)} are right before a fence")
    unknown = {b.kind for b in found} - set(KINDS)
    if unknown:
        raise ValueError(f"unknown readme-test kinds {sorted(unknown)}; known: {', '.join(KINDS)}")
    return [b for b in found if kind is None or b.kind == kind]


def _and_list(names: list[str]) -> str:
    quoted = [f"`{n}`" for n in names]
    return ", ".join(quoted[:-1]) + f" and {quoted[-1]}" if len(quoted) > 1 else "".join(quoted)


def example_dags() -> dict[str, tuple[str, str]]:
    """dag_id -> (file name, the file's docstring as one line) for every DAG in dags_examples/."""
    found = {}
    for path in sorted((ROOT / "dags_examples").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and any(
                (d.func.id if isinstance(d, ast.Call) and isinstance(d.func, ast.Name) else getattr(d, "id", None)) == "dag"
                for d in node.decorator_list
            ):
                doc = (ast.get_docstring(tree) or "").split("\n\n")[0]
                found[node.name] = (path.name, " ".join(doc.split()))
    return found


def demo_dags() -> list[str]:
    """The DAGs `make demo` runs (scripts/demo.py's DAGS)."""
    tree = ast.parse((ROOT / "scripts" / "demo.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "DAGS" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise LookupError("scripts/demo.py has no DAGS list")


def expected_regions() -> dict[str, str]:
    """What each generated region of the README must say, made from the code."""
    from airflow_vendorauth.sandbox.connections import sandbox_connections
    from airflow_vendorauth.vendors import VENDORS

    demo = set(demo_dags())
    lines = [
        f"- `{dag_id}` (`{file}`{', *demo*' if dag_id in demo else ''}): {doc}"
        for dag_id, (file, doc) in example_dags().items()
    ]
    return {
        "connection-types": _and_list(list(VENDORS)),
        "sandbox-connections": _and_list(list(sandbox_connections("http://127.0.0.1:1"))),
        "example-dags": "\n" + "\n".join(lines) + "\n",
    }


def regions(text: str | None = None) -> dict[str, str]:
    text = README.read_text() if text is None else text
    return {m["name"]: m["body"] for m in _REGION.finditer(text)}


def rewrite(text: str) -> str:
    expected = expected_regions()
    return _REGION.sub(
        lambda m: f"<!-- generated: {m['name']} -->{expected.get(m['name'], m['body'])}<!-- /generated -->", text
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        README.write_text(rewrite(README.read_text()))
    else:
        for name, body in expected_regions().items():
            print(f"<!-- generated: {name} -->{body}<!-- /generated -->")
