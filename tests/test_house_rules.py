"""The house rules, read from the source's imports so they stay true:

- no import cycle between modules of relayd/ (module-level imports; a
  function-level import is how a rare late binding is written, and is allowed),
- no cycle between relayd's top-level packages,
- no module over 600 lines, except one that is pure literal data,
- the protocol core relayd/smtp/ imports no socket, ssl, gevent, time,
  threading or os (it is sans-I/O) and nothing of relayd outside itself.
"""
from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "relayd"
MAX_LINES = 600
CORE = "relayd.smtp"
CORE_FORBIDDEN = {"socket", "ssl", "gevent", "time", "threading", "os", "selectors", "asyncio"}


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {name: ast.parse(path.read_text(), str(path)) for name, path in MODULES.items()}


def _is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def _absolute(module: str, node: ast.ImportFrom) -> str:
    """The absolute name a (possibly relative) ``from ... import`` names."""
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if _is_package(module) else base[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imported(module: str, node: ast.stmt) -> list[str]:
    """Every module an import statement loads: the named module, its parent
    packages (their __init__ runs first) and, for ``from P import m``, P.m
    when that is a module (callers keep the names that are relayd modules)."""
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        target = _absolute(module, node)
        names = [f"{target}.{alias.name}" for alias in node.names]
        # "from P import m" of a submodule m needs P.m; of a name, P itself.
        if any(name not in MODULES for name in names):
            names.append(target)
    # The importing module's own packages are already initialised (or being
    # initialised): importing a sibling does not run their __init__ again.
    own = module.split(".")
    own = {".".join(own[:i]) for i in range(1, len(own) + 1)}
    loaded = set()
    for name in names:
        parts = name.split(".")
        loaded.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted((loaded - own) | ({n for n in names if n != module} & own))


def _module_level_imports(tree: ast.Module):
    """Import statements run when the module is imported: the top level and
    its if/try blocks, but not ``if TYPE_CHECKING:`` blocks."""
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody
                         + [n for h in node.handlers for n in h.body])


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for name, tree in TREES.items():
        for node in _module_level_imports(tree):
            graph[name].update(m for m in _imported(name, node) if m in MODULES and m != name)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _top_package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2])


def _explain(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    return [f"{a} -> {b}" for a in members for b in sorted(graph[a]) if b in members]


def test_no_import_cycle_between_modules():
    graph = _graph()
    assert [_explain(graph, c) for c in _cycles(graph)] == []


def test_no_import_cycle_between_top_level_packages():
    graph = _graph()
    packages: dict[str, set[str]] = {}
    why: dict[tuple[str, str], str] = {}
    for module, imported in graph.items():
        for other in imported:
            a, b = _top_package(module), _top_package(other)
            if a != b and "relayd" not in (a, b):
                packages.setdefault(a, set()).add(b)
                packages.setdefault(b, set())
                why.setdefault((a, b), f"{module} -> {other}")
    assert [[why[(a, b)] for a in c for b in c if (a, b) in why]
            for c in _cycles(packages)] == []


def _pure_data(tree: ast.Module) -> bool:
    """Only a docstring, imports and assignments of literal values."""
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            try:
                ast.literal_eval(node.value)
                continue
            except ValueError:
                return False
        return False
    return True


def test_no_module_over_600_lines_except_pure_data():
    long = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert {name: n for name, n in long.items()
            if n > MAX_LINES and not _pure_data(TREES[name])} == {}


@pytest.mark.parametrize("module", [m for m in MODULES if m == CORE or m.startswith(CORE + ".")])
def test_protocol_core_is_sans_io(module):
    """Every import, also inside functions: the core never does I/O itself."""
    bad = []
    for node in ast.walk(TREES[module]):
        for name in _imported(module, node) if isinstance(node, (ast.Import, ast.ImportFrom)) else ():
            top = name.split(".")[0]
            if top in CORE_FORBIDDEN:
                bad.append(name)
            elif top == "relayd" and name not in ("relayd", CORE) and not name.startswith(CORE + "."):
                bad.append(name)
    assert bad == []


def test_the_rules_see_a_cycle():
    """The cycle finder is not vacuous: a two-module loop is found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
