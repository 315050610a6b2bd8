"""The package's layering: imports among posekit's subpackages go one way (docs/architecture.md).

The import graph is read from the source (every ``import`` and ``from`` statement, relative ones
resolved), so a new module is checked without being listed anywhere.
"""
import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "lib" / "posekit"
# Subpackage -> subpackages it must never import.
FORBIDDEN = {
    "utils": "every other subpackage",
    "models": {"engine", "apis"},
}


def module_name(path: Path) -> str:
    """Dotted name of a source file, e.g. posekit.models.dekr.model."""
    parts = ("posekit",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> Iterator[str]:
    """Absolute names of the posekit modules that ``path`` imports."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield target
            # `from . import x` imports the submodule x.
            yield from (f"{target}.{alias.name}" for alias in node.names)


def subpackage(module: str) -> str:
    """The first component under posekit ('' for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "posekit" else ""


def subpackage_graph() -> Dict[str, Set[Tuple[str, str]]]:
    """Importing subpackage -> {(imported subpackage, importing file)} for imports across subpackages."""
    subpackages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    graph: Dict[str, Set[Tuple[str, str]]] = {name: set() for name in subpackages}
    for path in PACKAGE.rglob("*.py"):
        source = subpackage(module_name(path))
        if source not in subpackages:
            continue
        for target in map(subpackage, imported_modules(path)):
            if target in subpackages and target != source:
                graph[source].add((target, str(path.relative_to(PACKAGE))))
    return graph


def find_cycle(graph: Dict[str, Set[Tuple[str, str]]]) -> List[str]:
    """One cycle of subpackages (first node repeated at the end), or [] when the graph is acyclic."""
    edges = {node: sorted({target for target, _ in targets}) for node, targets in graph.items()}
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: List[str]) -> List[str]:
        state[node] = 1
        for nxt in edges[node]:
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [node])
                if cycle:
                    return cycle
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state:
            cycle = visit(start, [])
            if cycle:
                return cycle
    return []


def test_subpackages_import_each_other_without_cycles():
    graph = subpackage_graph()
    cycle = find_cycle(graph)
    witnesses = [f"{a} -> {b} ({', '.join(sorted(f for t, f in graph[a] if t == b))})"
                 for a, b in zip(cycle, cycle[1:])]
    assert not cycle, "import cycle among posekit subpackages: " + "; ".join(witnesses)


@pytest.mark.parametrize("source", sorted(FORBIDDEN))
def test_forbidden_import_directions(source):
    graph = subpackage_graph()
    forbidden = FORBIDDEN[source]
    bad = sorted((target, file) for target, file in graph[source]
                 if forbidden == "every other subpackage" or target in forbidden)
    assert not bad, f"{source} must not import " + ", ".join(f"{t} (in {f})" for t, f in bad)


def test_checker_sees_a_cycle_and_relative_imports(tmp_path):
    graph = {"a": {("b", "a/x.py")}, "b": {("c", "b/y.py")}, "c": {("a", "c/z.py")}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {("b", "f")}, "b": set()}) == []
    # The checker's own reading of a relative import in a real module.
    deploy = PACKAGE / "models" / "deploy.py"
    assert "posekit.ops" in set(imported_modules(deploy))
