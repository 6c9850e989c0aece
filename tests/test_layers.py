"""The package's floors (the house rule in the README's "Layout"): a module imports only from floors below
its own or from its own part, and no modules import each other, directly or round a longer cycle.

Read statically from the source, every import counted (those inside functions too), except those under
``if TYPE_CHECKING:``, which never run.
"""
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "embedkit"

# Lowest first. A part (a subpackage, or a top-level module) may import parts on lower floors only.
FLOORS = [
    {"errors"},
    {"atomic", "paths", "heap", "machine", "version"},
    {"modules", "records"},
    {"data"},
    {"models"},
    {"encoding", "losses"},
    {"distributed"},
    {"index"},
    {"evaluation"},
    {"training"},
    {"generative", "serve", "distill"},
    {"demo", "embedkit"},  # "embedkit": the package's own __init__, the library's front door
    {"cli"},
]
FLOOR = {part: level for level, parts in enumerate(FLOORS) for part in parts}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _part(module: str) -> str:
    names = module.split(".")
    return names[1] if len(names) > 1 else names[0]


def _runtime_nodes(tree: ast.AST):
    """Every node, less the bodies of ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                stack.extend(child.orelse)
            else:
                stack.append(child)


def _imports(module: str) -> set[str]:
    """The embedkit modules ``module`` imports (a name imported from a package counts as its submodule)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def test_every_part_has_a_floor():
    assert {_part(m) for m in MODULES} - set(FLOOR) == set()


def test_no_module_imports_from_a_floor_above_or_beside_it():
    wrong = [f"{m} imports {t}" for m, targets in GRAPH.items() for t in targets
             if _part(t) != _part(m) and FLOOR[_part(t)] >= FLOOR[_part(m)]]
    assert wrong == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    assert _cycles(GRAPH) == []


@pytest.mark.parametrize("graph, cycles", [
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_a_long_cycle(graph, cycles):
    assert _cycles(graph) == cycles
