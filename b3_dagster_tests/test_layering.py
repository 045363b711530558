"""The layers of b3_dagster, read from the source with ``ast`` (no import): Dagster only at the edge, every import
from a higher layer to a lower one (or within a layer), and no import cycle between modules, lazy imports included.
README "Architecture" draws the same picture."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "b3_dagster"

# Lowest first. A module may import its own layer or a lower one; the first matching prefix decides.
LAYERS = [
    ("b3_dagster.model", 0), ("b3_dagster.calendar", 0), ("b3_dagster.errors", 0),
    ("b3_dagster.library_warnings", 0),
    # The sensor's decision reads raw keys with storage's path rules (layout, the stores' prefixes): it sits with
    # storage until those rules move below it (README, "Architecture").
    ("b3_dagster.rules.automation", 2),
    ("b3_dagster.rules", 1), ("b3_dagster.sources", 1), ("b3_dagster.transforms", 1),
    ("b3_dagster.settings", 1), ("b3_dagster.glue_jobs", 1),
    ("b3_dagster.storage", 2),
    ("b3_dagster.replay", 3),
    ("b3_dagster.defs", 4),
    ("b3_dagster.definitions", 5), ("b3_dagster.cli", 5), ("b3_dagster", 5),  # the package itself: connect()
]
DAGSTER_ALLOWED = ("b3_dagster.defs", "b3_dagster.definitions", "b3_dagster.cli")
# The Glue script speaks the Pipes protocol back to the run that launched it: dagster_pipes is that protocol's small,
# dependency-free package (installed on Glue), not Dagster.
PIPES_ALLOWED = ("b3_dagster.glue_jobs",)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "recordings" not in p.parts}


def layer(module: str) -> int:
    for prefix, level in LAYERS:
        if module == prefix or (module.startswith(prefix + ".") and prefix != "b3_dagster"):
            return level
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README's architecture)")


def imports(module: str) -> set[str]:
    """Every module imported anywhere in ``module`` (function-level imports too), as full names."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from b3_dagster.storage import tables`: the submodule is what is imported
            found.update(f"{node.module}.{alias.name}" for alias in node.names
                         if f"{node.module}.{alias.name}" in MODULES)
    return found


def internal_imports(module: str) -> set[str]:
    return {m for m in imports(module) if m in MODULES and m != module and not module.startswith(m + ".")
            and not (MODULES[m].name == "__init__.py" and any(i.startswith(m + ".") for i in imports(module)))}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_dagster_is_imported_only_at_the_edge(module):
    if module.startswith(DAGSTER_ALLOWED):
        return
    dagster = sorted(m for m in imports(module) if m.split(".")[0].startswith("dagster")
                     and not (m.split(".")[0] == "dagster_pipes" and module.startswith(PIPES_ALLOWED)))
    assert not dagster, f"{module} imports {dagster}: Dagster belongs in defs/, definitions.py or cli.py"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_import_from_a_lower_layer_to_a_higher_one(module):
    upward = sorted(m for m in internal_imports(module) if layer(m) > layer(module))
    assert not upward, f"{module} (layer {layer(module)}) imports higher layers: " + ", ".join(
        f"{m} (layer {layer(m)})" for m in upward)


def test_no_import_cycle():
    graph = {m: internal_imports(m) for m in MODULES}
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_the_layering_check_sees_a_violation():
    # Guard against a check that passes on nothing: the defs really import dagster, and a real upward edge exists
    # in the test's own view of the world (cli imports defs, a higher layer than storage).
    assert any(m.split(".")[0] == "dagster" for m in imports("b3_dagster.definitions"))
    assert layer("b3_dagster.defs.resources") > layer("b3_dagster.storage.lake")
