"""The package layout is the architecture: imports point one way and never in a circle.

Stages (see each package's docstring): the shared vocabulary at the bottom; intake,
publishing and processing above it; ops and bench above those, evaluation above publishing; the composition root
(``service``, ``lifecycle``, ``cli``) on top. Every import is counted, including the ones
inside functions, because a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "daemon"
SHARED = {"errors", "config", "log", "records", "paths", "clock", "__init__"}
ROOT = {"service", "lifecycle", "cli", "__main__"}
MAY_IMPORT = {
    "shared": {"shared"},
    "publishing": {"shared", "publishing"},
    "intake": {"shared", "intake", "publishing"},
    "processing": {"shared", "processing", "publishing"},
    "ops": {"shared", "ops", "processing", "publishing", "intake"},
    "bench": {"shared", "bench", "processing", "publishing"},
    # posed eval reads published results as any consumer does: never the pipeline that made them.
    "evaluation": {"shared", "evaluation", "publishing"},
}
MAX_TOP_LEVEL_MODULES = 11  # __init__ and __main__ included
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(("daemon",) + parts).removesuffix(".__init__") if parts[-1] == "__init__" else ".".join(("daemon",) + parts)] = path
    return found


def _stage(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "shared"  # the package itself: its __init__ holds only the version
    name = parts[1]
    if name in SHARED:
        return "shared"
    if name in ROOT:
        return "root"
    return name


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("daemon"):
                while name not in known and "." in name:
                    name = name.rsplit(".", 1)[0]  # "daemon.x.y.SomeClass" -> the module daemon.x.y
                if name in known and name != module:
                    targets.add(name)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {module: _imports(module, path, known) for module, path in modules.items()}


def test_every_import_points_down_the_stages(graph):
    wrong = []
    for module, targets in graph.items():
        stage = _stage(module)
        if stage == "root":
            continue
        allowed = MAY_IMPORT[stage]
        wrong += [f"{module} -> {target}" for target in targets if _stage(target) not in allowed and target != "daemon"]
    assert not wrong, "imports against the stated direction:\n" + "\n".join(sorted(wrong))


def test_the_two_intakes_never_import_each_other(graph):
    # Each intake sees the pieces they share (daemon.intake.*), never the other's subpackage.
    sides = ("daemon.intake.folder", "daemon.intake.queue")
    crossing = [
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        for mine, other in (sides, sides[::-1])
        if module.startswith(mine) and target.startswith(other)
    ]
    shared = [f"{module} -> {target}" for module, targets in graph.items() for target in targets
              if module.count(".") == 2 and module.startswith("daemon.intake.") and target.startswith(sides)]
    assert not crossing, "one intake imports the other:\n" + "\n".join(sorted(crossing))
    assert not shared, "a shared intake piece imports one intake:\n" + "\n".join(sorted(shared))


def test_no_import_cycles(graph):
    # Package __init__ modules import nothing, so edges through them are not real cycles.
    cycles, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_the_top_level_holds_only_the_shared_vocabulary_and_the_composition_root():
    top = sorted(path.stem for path in PACKAGE.glob("*.py"))
    assert set(top) <= SHARED | ROOT, f"modules outside a stage package: {sorted(set(top) - SHARED - ROOT)}"
    assert len(top) <= MAX_TOP_LEVEL_MODULES


def test_no_module_or_class_is_too_big_to_read():
    too_big = []
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        if source.count("\n") > MAX_MODULE_LINES:
            too_big.append(f"{path.relative_to(PACKAGE)}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_big.append(f"{path.relative_to(PACKAGE)}:{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not too_big, "\n".join(too_big)
