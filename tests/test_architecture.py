"""The package layering of docs/architecture.md, enforced: imports go down the stack, never up, never in
a circle, and never from inside a function (an import hidden there is how a cycle hides)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "rgenima_app"

#: Lowest first; a module may import its own layer's modules and any lower layer's, nothing above.
LAYERS = [
    ["rgenima_app", "rgenima_app.errors", "rgenima_app.confinement", "rgenima_app.environment", "rgenima_app.data"],
    ["rgenima_app.bids"],
    ["rgenima_app.imaging", "rgenima_app.genetics"],
    ["rgenima_app.models"],
    ["rgenima_app.analysis"],
    ["rgenima_app.training", "rgenima_app.inference", "rgenima_app.progression"],
    ["rgenima_app.provenance", "rgenima_app.reports"],
    ["rgenima_app.config"],
    ["rgenima_app.workflows"],
    ["rgenima_app.pipeline"],
    ["rgenima_app.cli"],
    ["rgenima_app.boutiques", "rgenima_app.demo", "rgenima_app.__main__"],
]
#: Test-data generators beside the stack: they may use the domain packages; only the demo imports them.
SIDE = {"rgenima_app.synthetic": ["rgenima_app.demo"]}
#: The one place an import waits inside a function, and why (not to dodge a cycle): the workflows import
#: matplotlib and transformers, which fix their cache locations at import, after the run has pointed them
#: at writable places (environment.ensure_writable_caches, called by pipeline.run).
DEFERRED = {("rgenima_app.pipeline", "rgenima_app.workflows")}


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str]:
    """(layer index, the unit the module belongs to: its package, or itself for a top-level module)."""
    for side in SIDE:
        if module == side or module.startswith(side + "."):
            return (-1, side)
    best = None
    for index, units in enumerate(LAYERS):
        for unit in units:
            if (module == unit or module.startswith(unit + ".")) and (best is None or len(unit) > len(best[1])):
                best = (index, unit)
    if best is None:
        raise AssertionError(f"{module} is in no layer of tests/test_architecture.py: add it (and to "
                             "docs/architecture.md)")
    return best


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[str, int, bool]]:
    """(imported rgenima_app module, line, whether the import is inside a function or class body)."""
    module = module_name(path, package)
    tree = ast.parse(path.read_text(), filename=str(path))
    nested = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            nested |= {id(child) for child in ast.walk(node) if child is not node}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            targets = [target]
            folder = PACKAGE.joinpath(*target.split(".")[1:])
            if target.startswith("rgenima_app") and folder.is_dir():
                # "from rgenima_app.x import y": y may be a submodule
                targets = [f"{target}.{a.name}" if (folder / a.name).is_dir() or (folder / f"{a.name}.py").is_file()
                           else target for a in node.names]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            continue
        for target in targets:
            if target == "rgenima_app" or target.startswith("rgenima_app."):
                found.append((target, node.lineno, id(node) in nested))
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def upward_imports(paths: list[Path], package: Path = PACKAGE) -> list[str]:
    found = []
    for path in paths:
        source = module_name(path, package)
        level, unit = layer_of(source)
        for target, line, _ in imports(path, package):
            target_level, target_unit = layer_of(target)
            if source.startswith("rgenima_app.synthetic") or target_unit == unit:
                continue
            where = path.relative_to(package.parent)
            if target_level == -1:
                if source not in SIDE[target_unit]:
                    found.append(f"{where}:{line} imports {target} "
                                 f"(test-data generators: only {', '.join(SIDE[target_unit])} may)")
            elif target_level > level:
                found.append(f"{where}:{line} ({unit}, layer {level}) imports {target} "
                             f"({target_unit}, layer {target_level})")
    return found


def nested_imports(paths: list[Path], package: Path = PACKAGE) -> list[str]:
    found = []
    for path in paths:
        source = module_name(path, package)
        for target, line, nested in imports(path, package):
            if nested and not any(source == s and (target == t or target.startswith(t + ".")) for s, t in DEFERRED):
                found.append(f"{path.relative_to(package.parent)}:{line} imports {target}")
    return found


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


def test_no_import_goes_up_the_stack():
    upward = upward_imports(MODULES)
    assert not upward, "imports up the stack (docs/architecture.md):\n  " + "\n  ".join(upward)


def test_no_import_inside_a_function():
    hidden = nested_imports(MODULES)
    assert not hidden, "rgenima_app imports inside functions (move them to the top):\n  " + "\n  ".join(hidden)


def test_the_module_graph_has_no_cycle():
    graph = {module_name(p): {t for t, _, _ in imports(p)} for p in MODULES}
    known = set(graph)
    graph = {m: {t if t in known else t.rsplit(".", 1)[0] for t in targets} & known - {m}
             for m, targets in graph.items()}
    # a package's __init__ importing its own submodules is the one allowed back edge (re-exports)
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt):] + [nxt] if nxt in trail else [node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, trail + [nxt]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if state.get(start) is None and visit(start, [start]):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """An upward import, a hidden import and an import of the test-data generators are each reported."""
    package = tmp_path / "rgenima_app"
    (package / "bids").mkdir(parents=True)
    probes = {"up.py": "from rgenima_app.workflows import train\n",
              "hidden.py": "def f():\n    from rgenima_app.errors import UsageError\n    return UsageError\n",
              "side.py": "import rgenima_app.synthetic\n", "fine.py": "from rgenima_app.errors import UsageError\n"}
    for name, body in probes.items():
        (package / "bids" / name).write_text(body)
    paths = sorted((package / "bids").glob("*.py"))
    upward = upward_imports(paths, package)
    assert [u.split(":")[0] for u in upward] == ["rgenima_app/bids/side.py", "rgenima_app/bids/up.py"]
    assert [h.split(":")[0] for h in nested_imports(paths, package)] == ["rgenima_app/bids/hidden.py"]
