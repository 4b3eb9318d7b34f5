"""The package's internal import graph has no cycle (issue 21: data flows one way, data -> models -> defence
-> ART estimator -> evaluation -> report -> cli/demo/reproduce).

Every module of ``art_manifold_defenses`` is parsed with :mod:`ast`; every ``import``/``from ... import``
statement counts, at module level and inside functions, classes or ``if TYPE_CHECKING:`` blocks alike (a
function-level import only postpones a cycle to the call). Relative imports are resolved against the importing
module.

* ``import pkg.mod`` depends on ``pkg.mod``; ``from pkg import name`` depends on the submodule ``pkg.name``
  when there is one, otherwise on the module ``pkg`` itself -- for a package, its ``__init__``:
  ``from . import __version__`` or ``from ..evaluation import get_suite`` depend on the ``__init__`` that
  defines or re-exports the name;
* Python runs the ``__init__`` of every package above an imported module first, so importing
  ``art_manifold_defenses.evaluation.suites`` from ``art_manifold_defenses.cli`` also depends on
  ``art_manifold_defenses.evaluation``; the packages that contain the importing module itself are left out
  (they are already being imported when it runs; an explicit ``from .. import name`` still counts).

Third-party imports do not count, nor do modules imported by a name in a string (``importlib.import_module``,
the plug-in tables such as ``PAPER_SUITES``): those resolve at call time, after every module involved has
loaded.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "art_manifold_defenses"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

#: Internal edges allowed despite closing a cycle, each with the reason. Empty: every cycle is broken.
ALLOWED_EDGES: frozenset[tuple[str, str]] = frozenset()


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute name of ``from <level dots><target> import ...`` written in ``module``."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    if not base:
        raise ValueError(f"{module}: relative import beyond the top-level package")
    return ".".join(base + ([target] if target else []))


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package-internal modules that ``module`` imports anywhere in its source (see the module
    docstring)."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    explicit_packages: set[str] = set()  # ``from <package> import <a name its __init__ defines>``
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                target = _resolve_relative(module, is_package, node.level, node.module)
            else:
                target = node.module or ""
            for alias in node.names:
                submodule = f"{target}.{alias.name}"
                if submodule in modules:
                    found.add(submodule)
                else:
                    found.add(target)
                    explicit_packages.add(target)
    containing = {module.rsplit(".", i)[0] for i in range(module.count(".") + 1)}  # module and its packages
    for name in list(found):
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))  # the packages Python runs first ...
    found -= (
        containing - explicit_packages
    )  # ... except those already being imported (unless named explicitly)
    found.discard(module)
    return {name for name in found if name in modules}


def import_graph() -> dict[str, set[str]]:
    """module -> the package-internal modules it imports (module and function level)."""
    modules = _modules()
    return {
        name: {dep for dep in _imports(name, path, modules) if (name, dep) not in ALLOWED_EDGES}
        for name, path in modules.items()
    }


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: the modules on a
    cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:  # recursion depth is bounded by the package's module count
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in sorted(graph.get(node, ())):
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def shortest_cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component: ``[a, b, ..., a]``."""
    start, members = component[0], set(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for dep in sorted(graph.get(node, set()) & members):
                if dep == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if dep not in parents:
                    parents[dep] = node
                    following.append(dep)
        frontier = following
    raise AssertionError(f"not a cycle: {component}")


def describe_cycles(graph: dict[str, set[str]]) -> str:
    """One line per strongly connected component: a shortest cycle, and the component's other modules if
    any."""
    lines = []
    for component in strongly_connected(graph):
        cycle = shortest_cycle(graph, component)
        rest = sorted(set(component) - set(cycle))
        lines.append(" -> ".join(cycle) + (f"  (and, on other cycles with them: {rest})" if rest else ""))
    return "import cycles inside the package:\n  " + "\n  ".join(lines) if lines else ""


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert not strongly_connected(graph), describe_cycles(graph)


def test_the_graph_sees_module_level_function_level_and_relative_imports(tmp_path: Path) -> None:
    """The parser itself: relative, absolute, submodule, package-``__init__`` and function-level imports
    count."""
    modules = _modules()
    assert {PACKAGE, f"{PACKAGE}.cli", f"{PACKAGE}.fpd.cli", f"{PACKAGE}.evaluation.runner"} <= set(modules)
    source = tmp_path / "probe.py"
    source.write_text(
        "from . import cli\n"
        "from .. import __version__\n"
        "import art_manifold_defenses.data.loaders\n"
        "def late():\n"
        "    from ..evaluation import get_suite, runner\n"
        "    import numpy\n",
        encoding="utf-8",
    )
    expected = {
        f"{PACKAGE}.fpd.cli",  # a submodule (fpd/__init__ is already running: probe is inside fpd)
        PACKAGE,  # __version__ is defined by the package __init__: an explicit dependency on it
        f"{PACKAGE}.data",  # the package Python runs before data.loaders
        f"{PACKAGE}.data.loaders",
        # get_suite is re-exported by evaluation/__init__; a function-level import counts
        f"{PACKAGE}.evaluation",
        f"{PACKAGE}.evaluation.runner",
    }
    assert _imports(f"{PACKAGE}.fpd.probe", source, modules) == expected
    init = ROOT / "evaluation" / "__init__.py"
    assert {f"{PACKAGE}.evaluation.suites", f"{PACKAGE}.evaluation.runner"} <= _imports(
        f"{PACKAGE}.evaluation", init, modules
    )


def test_the_cycle_finder_reports_the_modules_of_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c", "e"}, "c": {"a", "d"}, "d": {"b"}, "e": set(), "f": {"f", "a"}}
    assert strongly_connected(graph) == [["a", "b", "c", "d"]]  # f's self-loop is no cycle between modules
    assert (
        describe_cycles(graph)
        == "import cycles inside the package:\n  a -> b -> c -> a  (and, on other cycles with them: ['d'])"
    )
    assert strongly_connected({"a": {"b"}, "b": set()}) == [] and describe_cycles({"a": set()}) == ""
