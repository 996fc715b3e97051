"""No import cycles: the modules of heed's packages import each other as a directed acyclic graph.

The graph is read from the source with `ast`, every import counted: at the top of a module, inside
a function (where a cycle hides until the function runs) and under `if TYPE_CHECKING`."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("runtime", "asr", "iqd", "tagging", "corpus")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = f.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def import_graph() -> dict[str, set[str]]:
    """module -> the package modules it imports (absolute imports; heed uses no relative ones)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}:{node.lineno}: a relative import"
                targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                # `from pkg.mod import name` imports pkg.mod (and pkg); `from pkg import mod` imports pkg.mod
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    graph[name].add(t)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of the graph as [a, b, ..., a], or None when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        path.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        path.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_module_import_graph_is_acyclic() -> None:
    graph = import_graph()
    assert len(graph) > 60 and graph["runtime.pipeline"] >= {"runtime.asr", "runtime.bundle"}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_package_import_graph_is_acyclic_with_the_runtime_at_the_bottom() -> None:
    """runtime/ runs on the device with onnxruntime and numpy: it imports no other heed package,
    and the packages above it import each other without a cycle."""
    packages: dict[str, set[str]] = {}
    for mod, targets in import_graph().items():
        packages.setdefault(mod.split(".")[0], set()).update(t.split(".")[0] for t in targets)
    packages = {p: ts - {p} for p, ts in packages.items()}
    assert packages["runtime"] == set(), f"runtime imports {sorted(packages['runtime'])}"
    cycle = find_cycle(packages)
    assert cycle is None, "package import cycle: " + " -> ".join(cycle)


def test_the_check_finds_a_cycle_hidden_in_a_function() -> None:
    graph = import_graph()
    assert "runtime.lm" in graph["runtime.pipeline"]  # imported inside Pipeline.__init__
    assert find_cycle({**graph, "runtime.features": graph["runtime.features"] | {"runtime.pipeline"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", ["asr", "tagging", "iqd"])
def test_no_package_registers_another_packages_commands(package: str) -> None:
    """runtime/cli.py assembles `heed train` and `heed export` from each package's own parsers."""
    graph = import_graph()
    others = {f"{p}.cli" for p in ("tagging", "iqd")} | {"asr.train_cli", "asr.export_cli"}
    for mod, targets in graph.items():
        if mod.split(".")[0] == package:
            assert not {t for t in targets if t in others and t.split(".")[0] != package}, mod
