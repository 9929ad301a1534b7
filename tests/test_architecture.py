"""The layering of the design is checked, not only drawn.

* The import-linter contracts of pyproject.toml ([tool.importlinter]: the layer order, the analyses independent of
  each other and never importing report/workflows/cli, evaluate/discover never touching a live model, methods
  never importing Lightning) hold. import-linter sees function-level (lazy) imports too.
* No module imports another that imports it back, directly or through others: an AST import graph of every module
  under src/biolatent (module-level, function-level, TYPE_CHECKING and ``importlib.import_module`` imports) has no
  strongly connected component larger than one module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import biolatent

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_DIR = Path(biolatent.__file__).resolve().parent


def test_the_package_under_test_is_this_checkout():
    assert PACKAGE_DIR == ROOT / "src" / "biolatent", f"biolatent imported from {PACKAGE_DIR}, not this checkout"


def test_import_contracts_hold(capsys):
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()  # what the lint-imports command does first (readers, printer, graph builder)
    kept = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_logo=True, cache_dir=None)
    report = capsys.readouterr().out
    assert "BROKEN" not in report
    assert kept, f"import contracts broken (run `lint-imports` for the same report):\n{report}"
    assert "5 kept, 0 broken" in report  # every contract of pyproject.toml was checked


def test_every_top_level_module_has_a_layer():
    """A new module or package left out of the layers contract would go unchecked."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    layers = next(c for c in config if c["id"] == "layers")["layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    top_level = {f"biolatent.{path.stem}" for path in PACKAGE_DIR.glob("*.py") if path.stem != "__init__"}
    top_level |= {f"biolatent.{path.parent.name}" for path in PACKAGE_DIR.glob("*/__init__.py")}
    assert top_level - named == set(), "modules missing from the layers contract of pyproject.toml"


# ------------------------------------------------------------------------------------------------ import cycles


def module_names(package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[Path, bool]]:
    """``dotted name -> (file, is_package)`` for every module under the package."""
    modules = {}
    for path in package_dir.rglob("*.py"):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        modules[".".join(parts)] = (path, is_package)
    return modules


def _resolve(name: str, modules: dict) -> str | None:
    """The most specific module of ``name`` that exists (``a.b.func`` -> ``a.b``)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    root = biolatent.__name__
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = (module if is_package else module.rpartition(".")[0]).split(".")
            base = base[: len(base) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        # ``from a import b``: the submodule a.b when there is one, else a (resolved by the caller)
        return [f"{target}.{alias.name}" for alias in node.names] + [target]
    if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module":
        if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            return [node.args[0].value]
        if node.args and isinstance(node.args[0], ast.JoinedStr) and node.args[0].values:
            head = node.args[0].values[0]
            if isinstance(head, ast.Constant) and str(head.value).startswith(root):
                return [f"{head.value}*"]  # any module under that prefix
    return []


def import_graph(modules: dict[str, tuple[Path, bool]] | None = None) -> dict[str, set[str]]:
    """``module -> modules it imports`` (within the package), from every import statement anywhere in the file."""
    modules = modules or module_names()
    root = biolatent.__name__
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            names = _imported_names(node, module, is_package)
            if isinstance(node, ast.ImportFrom) and names:
                *members, parent = names
                found = [m for m in members if m in modules]
                names = found or [parent]
            for name in names:
                if not name.startswith(root):
                    continue
                if name.endswith("*"):
                    targets = {m for m in modules if m.startswith(name[:-1])}
                else:
                    target = _resolve(name, modules)
                    targets = {target} if target else set()
                graph[module] |= targets - {module}
    return graph


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit on deep graphs)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _cycle_text(component: list[str], graph: dict[str, set[str]]) -> str:
    members = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & members)]
    return "; ".join(edges)


def test_the_cycle_finder_finds_cycles_including_lazy_and_relative_imports(tmp_path):
    package = tmp_path / "biolatent"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from biolatent import b\n")
    (package / "b.py").write_text("def f():\n    from biolatent.sub import c\n")  # function-level
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "c.py").write_text("from ..a import x\n")  # relative
    (package / "d.py").write_text("import biolatent.a\n")  # imports into the cycle, not part of it
    graph = import_graph(module_names(package))
    assert graph["biolatent.sub.c"] == {"biolatent.a"}
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [["biolatent.a", "biolatent.b", "biolatent.sub.c"]]


@pytest.fixture(scope="module")
def package_graph() -> dict[str, set[str]]:
    return import_graph()


def test_no_import_cycles_among_modules(package_graph):
    graph = package_graph
    assert len(graph) > 100 and sum(map(len, graph.values())) > 500  # the graph really was read
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert not cycles, "import cycles:\n" + "\n".join(_cycle_text(c, graph) for c in cycles)


@pytest.mark.parametrize("lazy_reader", ["fasta", "tables"])
def test_lazy_reader_imports_are_in_the_graph(package_graph, lazy_reader):
    """``biolatent.io`` loads its readers through importlib (PEP 562); the graph still sees those edges."""
    assert f"biolatent.io.{lazy_reader}" in package_graph["biolatent.io"]
