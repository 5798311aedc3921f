"""The packages depend one way: the core (``synth_assets/core``) <- the Dagster layer (assets with
their checks, resources, definitions, CLI, and ``quality_checks``' expectation suites). The core
never imports Dagster nor the Dagster layer, and inside the core each stage imports only the
stages before it, in the order the asset graph runs: base (errors, settings, markdown, warehouse,
stats) < tasks < generators < sandbox < scaling < verify < curate < synthesis < quality < training.
No module reaches itself through a cycle of imports. Imports inside functions count too: a lazy
import is still a dependency."""

import ast
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("synth_assets", "quality_checks")
STAGES = ("base", "tasks", "generators", "sandbox", "scaling", "verify", "curate", "synthesis", "quality", "training")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_names(path: Path) -> set[str]:
    """Every absolute module name ``path`` imports, ours or not (``from pkg import x`` gives both
    ``pkg`` and ``pkg.x``)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
    return out


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """Our modules that ``path`` imports (``from pkg import mod`` resolves to the module)."""
    out = set()
    for name in imported_names(path):
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and not name.endswith("__init__"):
            out.add(name)
    return out


def files() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def graph() -> dict[str, set[str]]:
    modules = {module_name(p) for p in files()}
    return {module_name(p): imports_of(p, modules) - {module_name(p)} for p in files()}


def layer(module: str) -> str:
    return "core" if module.startswith("synth_assets.core") else "dagster"


def stage(module: str) -> str:
    """The core stage a module belongs to: its folder under core/, or base for core's top level."""
    parts = module.split(".")
    return parts[2] if len(parts) > 3 else "base"


def violations(g: dict[str, set[str]]) -> list[str]:
    wrong = []
    for m, deps in g.items():
        for d in deps:
            if d in PACKAGES or d == "synth_assets.core":
                continue
            if layer(m) == "core" and layer(d) != "core":
                wrong.append(f"{m} (core) imports {d} (the Dagster layer)")
            elif layer(m) == "core" and STAGES.index(stage(d)) > STAGES.index(stage(m)):
                wrong.append(f"{m} ({stage(m)}) imports {d} ({stage(d)}, a later stage)")
    return sorted(wrong)


def test_each_layer_and_stage_imports_only_what_comes_before_it():
    wrong = violations(graph())
    assert not wrong, "\n".join(wrong)


def test_every_core_folder_is_a_known_stage():
    folders = {p.name for p in (ROOT / "synth_assets" / "core").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(STAGES) - {"base"}


def test_the_core_never_imports_dagster():
    found = sorted(
        f"{p.relative_to(ROOT)} imports {n}"
        for p in (ROOT / "synth_assets" / "core").rglob("*.py")
        for n in imported_names(p)
        if n == "dagster" or n.startswith(("dagster.", "dagster_"))
    )
    assert not found, "\n".join(found)


def test_no_module_imports_itself_through_a_cycle():
    g = {m: {d for d in deps if d not in PACKAGES} for m, deps in graph().items()}
    try:
        tuple(TopologicalSorter(g).static_order())
    except CycleError as exc:
        raise AssertionError(f"import cycle: {' -> '.join(exc.args[1])}") from None


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A tree with a cycle (a <-> b), an upward stage import (tasks -> training) and a Dagster
    import in the core, for the checks above to find."""
    core = tmp_path / "synth_assets" / "core"
    for d in ("tasks", "training"):
        (core / d).mkdir(parents=True)
        (core / d / "__init__.py").write_text("")
    (tmp_path / "synth_assets" / "__init__.py").write_text("")
    (core / "__init__.py").write_text("")
    (core / "tasks" / "a.py").write_text("from synth_assets.core.tasks import b\n")
    (core / "tasks" / "b.py").write_text(
        "def f():\n    from synth_assets.core.tasks.a import x\n"
        "    from synth_assets.core.training.loop import y\n    import dagster\n"
    )
    (core / "training" / "loop.py").write_text("")
    (tmp_path / "quality_checks").mkdir()
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    return graph()


def test_the_checker_sees_an_upward_import(planted):
    assert violations(planted) == [
        "synth_assets.core.tasks.b (tasks) imports synth_assets.core.training.loop (training, a later stage)"
    ]


def test_the_checker_sees_a_cycle(planted):
    with pytest.raises(CycleError):
        tuple(TopologicalSorter(planted).static_order())


def test_the_checker_sees_dagster_in_the_core(planted):
    with pytest.raises(AssertionError, match="imports dagster"):
        test_the_core_never_imports_dagster()
