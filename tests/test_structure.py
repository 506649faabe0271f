"""The package's shape: module names that shadow nothing, layers that only import downwards, no cycles."""

import ast
import sys
from pathlib import Path

import compactvideo

PACKAGE = Path(compactvideo.__file__).parent


def modules() -> list[str]:
    """Dotted names of every module of the package (packages as their ``__init__``)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_no_module_shadows_a_standard_library_module():
    # With a package folder first on sys.path (running a file from inside it, `python -m cProfile` there),
    # a module named like a standard one replaces it: data/inspect.py broke `import dataclasses`, and
    # profile.py broke cProfile.
    shadows = [name for name in modules() if name.rsplit(".", 1)[-1] in sys.stdlib_module_names]
    assert shadows == []


# DESIGN.md's layers, bottom up: a module may import its own layer and those below, never one above.
LAYERS = (
    ("compactvideo", "errors", "paths", "metrics", "checkpoint", "distributed", "_torch_compat", "precision"),
    ("nn", "data", "tasks", "profiling"),
    ("models",),
    ("compress",),
    ("loaders",),
    ("train", "evaluate", "export", "pipelines"),
    ("demo", "reproduce"),
    ("cli",),
)


def top(module: str) -> str:
    """``compactvideo.data.clips`` -> ``data``; ``compactvideo`` -> ``compactvideo``."""
    return module.split(".")[1] if "." in module else module


def layer(module: str) -> int:
    """The layer of a dotted module name."""
    matches = [index for index, members in enumerate(LAYERS) if top(module) in members]
    assert matches, f"{module} is in none of the layers; add it to LAYERS as DESIGN.md places it"
    return matches[0]


def imports(module: str) -> set[str]:
    """The compactvideo modules ``module`` imports, at the top or inside functions (a ``from`` import
    of a submodule counts as that submodule)."""
    path = PACKAGE.parent.joinpath(*module.split("."))
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    known, found = set(modules()), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.update(
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names
            )
    return {name for name in found if name in known and name != module}


def test_imports_only_go_down_the_layers():
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module in modules()
        for target in sorted(imports(module))
        if layer(target) > layer(module)
    ]
    assert upward == []


def test_nn_never_imports_data_and_data_never_imports_nn():
    crossing = [
        (module, target)
        for module in modules()
        for target in imports(module)
        if {top(module), top(target)} == {"nn", "data"}
    ]
    assert crossing == []


def test_there_is_no_import_cycle():
    graph = {module: imports(module) for module in modules()}
    state: dict[str, str] = {}
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                cycles.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in graph:
        if module not in state:
            visit(module, [module])
    assert cycles == []
