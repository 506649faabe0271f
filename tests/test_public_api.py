"""Every name the README shows is importable where it says, and each package exports its public API."""

import ast
import importlib
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"
PUBLIC = {
    "compactvideo.data": ["read_records", "write_records", "CorruptRecordError", "RecordDataset"],
    "compactvideo.models": ["build_model", "PRESETS", "count_parameters", "example_inputs", "load_model"],
    "compactvideo.compress": ["vbmf_rank", "tucker_ranks", "tucker_decompose", "compress_model"],
    "compactvideo.nn": ["CirculantLinear", "BlockCirculantLinear", "make_linear", "Projection", "TuckerConv"],
    "compactvideo.metrics": ["gap", "hit_at_one", "perr", "mean_average_precision", "MetricAccumulator"],
}


def readme_names() -> list[str]:
    """Dotted names from the README's Python imports and from every ``compactvideo.x.y`` it mentions."""
    text = README.read_text()
    names = set(re.findall(r"\bcompactvideo(?:\.\w+)+", text))
    for block in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("compactvideo"):
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names if alias.name.startswith("compactvideo"))
    return sorted(names)


def resolve(dotted: str) -> object:
    """Import the longest module prefix of ``dotted`` and look the rest up as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            value = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            value = getattr(value, attribute)
        return value
    raise ModuleNotFoundError(dotted)


def test_the_readme_shows_names():
    names = readme_names()
    assert "compactvideo.data.read_records" in names and "compactvideo.nn.make_linear" in names


@pytest.mark.parametrize("dotted", readme_names())
def test_every_name_the_readme_shows_can_be_imported(dotted):
    resolve(dotted)


@pytest.mark.parametrize("package", PUBLIC)
def test_packages_export_their_public_names(package):
    module = importlib.import_module(package)
    assert set(PUBLIC[package]) <= set(module.__all__)
    assert all(hasattr(module, name) for name in module.__all__)
