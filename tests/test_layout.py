"""The architecture as the code must keep it: one import root, layers whose imports point one way, no cycles.

Layers, bottom to top: the core (``agentic`` and its own modules), the built-ins (``agentic.tools``,
``agentic.tasks``), training (``agentic.training``), the command line (``agentic.cli``). A module may import
its own layer and the ones below it. The graph is read from the source (every import statement, lazy ones
inside functions included); each layer is then imported in a fresh interpreter to check what it pulls in.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib
import tomllib

REPO = Path(__file__).resolve().parent.parent
FOLDERS = {"agentic": "agentic", "agentic.tools": "tools", "agentic.tasks": "tasks", "agentic.training": "training"}
LAYERS = ("core", "built-ins", "training", "command line")
MAX_FUNCTION_LINES = 60


def layer(module: str) -> int:
    """0 core, 1 built-ins, 2 training, 3 command line."""
    for prefix, rank in (("agentic.cli", 3), ("agentic.training", 2), ("agentic.tools", 1), ("agentic.tasks", 1)):
        if module == prefix or module.startswith(prefix + "."):
            return rank
    return 0


def source_modules() -> dict[str, Path]:
    """Every module of the distribution by import name, from the folders the package mapping names."""
    modules = {}
    for package, folder in FOLDERS.items():
        root = REPO / folder
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((package, *parts))
            modules[name.removesuffix(".__init__")] = path
    return modules


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``path`` (module ``name``) imports anywhere in its body."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {module for module in found if module in modules and module != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = source_modules()
    return {name: imports_of(path, name, modules) for name, path in modules.items()}


def test_imports_point_down_the_layers(graph):
    wrong = sorted(
        f"{a} ({LAYERS[layer(a)]}) imports {b} ({LAYERS[layer(b)]})"
        for a, targets in graph.items()
        for b in targets
        if layer(b) > layer(a)
    )
    assert not wrong, "\n".join(wrong)


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the graph's strongly connected components."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_import_cycles(graph):
    cycles = [sorted(component) for component in strongly_connected(graph) if len(component) > 1]
    assert not cycles, cycles


def test_the_cycle_check_finds_a_cycle():
    components = [sorted(c) for c in strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) if len(c) > 1]
    assert components == [["a", "b", "c"]]


@pytest.mark.parametrize("rank", range(len(LAYERS)))
def test_each_layer_imports_nothing_above_it_in_a_fresh_interpreter(tmp_path, rank):
    mine = sorted(name for name in source_modules() if layer(name) == rank and not name.endswith("__main__"))
    code = f"import importlib, sys\nfor name in {mine!r}:\n    importlib.import_module(name)\nprint('\\n'.join(sorted(m for m in sys.modules if m.startswith('agentic'))))\n"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    above = [m for m in done.stdout.split() if layer(m) > rank]
    assert not above, f"importing the {LAYERS[rank]} layer loaded {above}"


def test_agentic_is_the_only_import_name(tmp_path):
    code = "import importlib.util as u; print([n for n in ('tools', 'tasks', 'training', 'agentic') if u.find_spec(n)])"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['agentic']"


def test_the_package_list_names_every_package():
    """pyproject's explicit package list (needed by the folder mapping) holds every folder with an __init__.py."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert config["package-dir"] == FOLDERS
    packages = {name for name, path in source_modules().items() if path.name == "__init__.py"}
    assert set(config["packages"]) == packages


def test_no_function_is_longer_than_sixty_lines():
    long = []
    for name, path in source_modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
            ):
                long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long, "\n".join(long)
