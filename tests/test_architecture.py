"""The package's shape: dependencies point one way, and the CPU speed code stays in its room.

Imports are read from the source (module level and inside functions alike), so a cycle hidden in a
function-level import counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import r1zero
import r1zero.cpu

ROOT = Path(r1zero.__file__).parent
#: what ``r1zero/`` itself holds besides packages: the entry points and the typing marker
ROOT_FILES = {"__init__.py", "__main__.py", "cli.py", "py.typed"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str) -> set[str]:
    """The r1zero modules ``name`` imports (``from pkg import submodule`` counts as the submodule)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: _imports(name) for name in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_package_root_holds_only_entry_points():
    assert {p.name for p in ROOT.iterdir() if p.is_file()} <= ROOT_FILES


def test_the_cpu_speed_code_is_used_through_its_public_names_only():
    public = {f"r1zero.cpu.{name}" for name in r1zero.cpu.__all__}
    reach_in = {
        (m, d)
        for m, deps in GRAPH.items()
        if not m.startswith("r1zero.cpu")
        for d in deps
        if d.startswith("r1zero.cpu.") and d not in public
    }
    assert reach_in == set()


def test_the_cpu_code_imports_nothing_from_training():
    upward = {
        (m, d)
        for m, deps in GRAPH.items()
        if m.startswith("r1zero.cpu")
        for d in deps
        if d.startswith(("r1zero.train", "r1zero.rollout", "r1zero.eval"))
    }
    assert upward == set()


def test_the_learner_asks_the_cpu_package_for_one_thing():
    cpu_imports = {d for d in GRAPH["r1zero.train.learner"] | GRAPH["r1zero.train.forward"] if "cpu" in d}
    assert cpu_imports == {"r1zero.cpu"}
