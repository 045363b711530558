"""The layers of b3_dagster, read from the source with ``ast`` (no import): Dagster only at the edge, every import
from a higher layer to a lower one (or within a layer), and no import cycle, lazy imports included, neither between
modules nor between folders. No module has an exception: a folder's layer is every module's layer in it.
README "Architecture" draws the same picture."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "b3_dagster"
README = PACKAGE.parent / "README.md"

# Lowest first, by the first name under b3_dagster (a folder or a top-level module). A module may import its own
# layer or a lower one.
LAYERS = {
    # the vocabulary every layer speaks; `settings` imports nothing from the package but `errors`, and `glue_jobs`
    # (the script AWS Glue runs on its own) imports nothing from it at all
    "model": 0, "calendar": 0, "errors": 0, "library_warnings": 0, "settings": 0, "glue_jobs": 0,
    "sources": 1,     # HTTP clients and parsers
    "transforms": 2,  # pure computations
    "storage": 3,     # persistence: reads its objects back with a source's parser, rebuilds with transforms
    "rules": 4,       # pure judgements, over storage's keys and transforms' results
    "replay": 5,      # local servers replaying recorded answers, for the demo and the tests
    "defs": 6,        # Dagster
    "definitions": 7, "cli": 7, "": 7,  # "": the package itself (connect())
}
DAGSTER_ALLOWED = ("b3_dagster.defs", "b3_dagster.definitions", "b3_dagster.cli")
# The Glue script speaks the Pipes protocol back to the run that launched it: dagster_pipes is that protocol's small,
# dependency-free package (installed on Glue), not Dagster.
PIPES_ALLOWED = ("b3_dagster.glue_jobs",)
# settings is read by every layer, so it may import only errors from the package
SETTINGS_MAY_IMPORT = {"b3_dagster.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "recordings" not in p.parts}


def top(module: str) -> str:
    """The folder or top-level module under b3_dagster that holds ``module`` ("" for the package itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def layer(module: str) -> int:
    assert top(module) in LAYERS, f"{module} is in no layer: add it to LAYERS (and to the README's architecture)"
    return LAYERS[top(module)]


def is_package(module: str, known: set[str]) -> bool:
    return any(k.startswith(module + ".") for k in known)


def folder(module: str, known: set[str]) -> str:
    """The unit of the folder-level graph: the package (folder) that holds ``module``; a top-level module is its own
    unit, and a package's ``__init__`` belongs to that package."""
    if module == "b3_dagster" or is_package(module, known):
        return module
    parent = module.rsplit(".", 1)[0]
    return module if parent == "b3_dagster" else parent


def imports_in(source: str, known: set[str]) -> set[str]:
    """Every module imported anywhere in ``source`` (function-level imports too), as full names."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from b3_dagster.storage import tables`: the submodule is what is imported
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in known)
    return found


def internal_in(module: str, source: str, known: set[str]) -> set[str]:
    """The package's modules ``module`` imports, without itself, its own parent packages, and a package whose
    submodule is what the import names (``from pkg import sub``)."""
    found = imports_in(source, known)
    return {m for m in found if m in known and m != module and not module.startswith(m + ".")
            and not (is_package(m, known) and any(i.startswith(m + ".") for i in found))}


def imports(module: str) -> set[str]:
    return imports_in(MODULES[module].read_text(encoding="utf-8"), set(MODULES))


def module_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    known = set(sources)
    return {m: internal_in(m, text, known) for m, text in sources.items()}


def upward(graph: dict[str, set[str]], module: str) -> list[str]:
    return sorted(m for m in graph[module] if layer(m) > layer(module))


def folder_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    known = set(graph)
    folders: dict[str, set[str]] = {}
    for m, targets in graph.items():
        unit = folder(m, known)
        folders.setdefault(unit, set()).update(folder(t, known) for t in targets if folder(t, known) != unit)
    return folders


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    state: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                found.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    return found


GRAPH = module_graph({m: p.read_text(encoding="utf-8") for m, p in MODULES.items()})


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dagster_is_imported_only_at_the_edge(module):
    if module.startswith(DAGSTER_ALLOWED):
        return
    dagster = sorted(m for m in imports(module) if m.split(".")[0].startswith("dagster")
                     and not (m.split(".")[0] == "dagster_pipes" and module.startswith(PIPES_ALLOWED)))
    assert not dagster, f"{module} imports {dagster}: Dagster belongs in defs/, definitions.py or cli.py"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_lower_layer_to_a_higher_one(module):
    found = upward(GRAPH, module)
    assert not found, f"{module} (layer {layer(module)}) imports higher layers: " + ", ".join(
        f"{m} (layer {layer(m)})" for m in found)


def test_settings_imports_only_errors():
    assert GRAPH["b3_dagster.settings"] <= SETTINGS_MAY_IMPORT, GRAPH["b3_dagster.settings"]


def test_no_import_cycle_between_modules():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_no_import_cycle_between_folders():
    found = cycles(folder_graph(GRAPH))
    assert not found, "folder import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_readme_draws_the_same_layers():
    """README "Architecture": one row per folder, ``| `sources/` (1) | ...``; ``__init__.py`` is the package."""
    drawn = {}
    for names, level in re.findall(r"^\| (.+?) \((\d)\) \|", README.read_text(encoding="utf-8"), re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", names):
            drawn["" if name == "__init__.py" else name.removesuffix(".py").removesuffix("/")] = int(level)
    assert drawn == LAYERS


def test_the_checks_report_a_planted_violation():
    # Guard against checks that pass on nothing: synthetic modules, parsed by the same functions, with an upward
    # import (a source importing storage, lazily), a module cycle and a folder cycle that is no module cycle.
    planted = {
        "b3_dagster.storage": "",
        "b3_dagster.storage.lake": "",
        "b3_dagster.sources": "",
        "b3_dagster.sources.up": "def f():\n    from b3_dagster.storage import lake\n",
        "b3_dagster.transforms": "",
        "b3_dagster.transforms.a": "import b3_dagster.transforms.b\n",
        "b3_dagster.transforms.b": "from b3_dagster.transforms.a import x\n",
        "b3_dagster.rules": "",
        "b3_dagster.rules.r1": "from b3_dagster.replay.p2 import y\n",
        "b3_dagster.replay": "",
        "b3_dagster.replay.p1": "from b3_dagster.rules.r2 import z\n",
        "b3_dagster.replay.p2": "",
        "b3_dagster.rules.r2": "",
    }
    graph = module_graph(planted)
    assert upward(graph, "b3_dagster.sources.up") == ["b3_dagster.storage.lake"]
    assert upward(graph, "b3_dagster.rules.r1") == ["b3_dagster.replay.p2"]
    assert upward(graph, "b3_dagster.replay.p1") == []  # downward: allowed
    assert cycles(graph) == [["b3_dagster.transforms.a", "b3_dagster.transforms.b", "b3_dagster.transforms.a"]]
    # rules.r1 -> replay.p2 and replay.p1 -> rules.r2: no module cycle, but the folders rules and replay form one
    assert ["b3_dagster.replay", "b3_dagster.rules", "b3_dagster.replay"] in cycles(folder_graph(graph))
    # and the real tree is read: the defs really import dagster, and defs import storage (downward)
    assert any(m.split(".")[0] == "dagster" for m in imports("b3_dagster.definitions"))
    assert "b3_dagster.storage.lakes" in GRAPH["b3_dagster.defs.resources"]
