"""The README's runnable blocks and generated lists, found by explicit markers so that blocks others add
never break the tests that run these.

- ``<!-- readme-test: KIND -->`` on the line right before a code fence marks that block as runnable
  (kinds: ``conftest``, ``dag``, ``test``, ``connections``, ``cli``, ``sandbox``;
  tests/integration/test_readme.py runs them) or as a ``fragment``: a piece of a file or a command line
  that cannot run alone (a cloud's CLI, a call inside a DAG), checked where it stands: Python compiled,
  every name it uses defined, imported or built in, every import and module attribute existing
  (:func:`fragment_problems`); bash by ``bash -n``; JSON parsed. Every python, bash and JSON block carries
  a marker (:func:`unmarked`): a block a user would copy is either run or checked.
- ``<!-- generated: NAME -->...<!-- /generated -->`` holds text made from the code (connection types,
  sandbox connections, example DAGs). ``python -m tests.readme --write`` rewrites them;
  ``tests/unit/test_readme_lists.py`` fails, printing the expected text, when one has drifted.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import re
import subprocess
import symtable
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
KINDS = ("conftest", "dag", "test", "connections", "cli", "sandbox", "fragment")
#: The languages of blocks a user would copy: each must carry a marker.
CODE_LANGS = ("python", "bash", "sh", "json")

_BLOCK = re.compile(r"^<!-- readme-test: (?P<kind>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)
_FENCE = re.compile(r"^```(?P<lang>\w*)\n(?P<body>.*?)^```$", re.M | re.S)
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


def unmarked(text: str | None = None) -> list[str]:
    """``README.md:LINE (LANG)`` of every python, bash or JSON block without a readme-test marker."""
    text = README.read_text() if text is None else text
    found = []
    for m in _FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if m["lang"] in CODE_LANGS and not before.startswith("<!-- readme-test: "):
            found.append(f"README.md:{text.count(chr(10), 0, m.start()) + 1} ({m['lang']})")
    return found


def fragment_problems(block: Block) -> list[str]:
    """What is wrong with a block as it stands, without running it (empty: nothing)."""
    if block.lang == "python":
        return python_problems(block.body)
    if block.lang in ("bash", "sh"):
        done = subprocess.run(["bash", "-n"], input=block.body, capture_output=True, text=True, timeout=30)
        return [done.stderr.strip()] if done.returncode else []
    if block.lang == "json":
        try:
            json.loads(block.body)
        except ValueError as error:
            return [f"not JSON: {error}"]
        return []
    return [f"a fragment in {block.lang or 'no language'}: nothing can check it"]


def python_problems(source: str) -> list[str]:
    """Syntax, names used but never defined, imports that fail, attributes a module does not have."""
    try:
        tree = ast.parse(source)
    except SyntaxError as error:
        return [f"syntax error, line {error.lineno}: {error.msg}"]
    problems = [f"name {name!r} is used but never defined or imported" for name in sorted(_undefined(source))]
    bound: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                try:
                    module = importlib.import_module(alias.name)
                except ImportError as error:
                    problems.append(f"import {alias.name}: {error}")
                    continue
                bound[alias.asname or alias.name.split(".")[0]] = module if alias.asname else sys.modules[alias.name.split(".")[0]]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            try:
                module = importlib.import_module(node.module)
            except ImportError as error:
                problems.append(f"from {node.module}: {error}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:  # a submodule not imported by its package
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        problems.append(f"from {node.module} import {alias.name}: {node.module} has no {alias.name}")
                        continue
                bound[alias.asname or alias.name] = getattr(module, alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = bound.get(node.value.id)
            if isinstance(owner, ModuleType) and not hasattr(owner, node.attr):
                try:
                    importlib.import_module(f"{owner.__name__}.{node.attr}")
                except ImportError:
                    problems.append(f"{node.value.id}.{node.attr}: module {owner.__name__} has no {node.attr}")
    return problems


def _undefined(source: str) -> set[str]:
    """Names read somewhere in ``source`` that nothing in it binds and that are not built in."""
    top = symtable.symtable(source, "<README block>", "exec")
    module_names = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    known = module_names | set(dir(builtins))
    missing: set[str] = set()

    def visit(table: symtable.SymbolTable) -> None:
        for symbol in table.get_symbols():
            free_here = table.get_type() == "module" or symbol.is_global()
            if symbol.is_referenced() and free_here and symbol.get_name() not in known:
                missing.add(symbol.get_name())
        for child in table.get_children():
            visit(child)

    visit(top)
    return missing


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
