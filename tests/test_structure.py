"""The package's shape: module names that shadow nothing, layers that only import downwards, no cycles."""

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
