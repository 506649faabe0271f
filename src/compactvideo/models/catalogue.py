"""The preset catalogue: each preset's parameters (the paper's way), float32 size and FLOPs per video.

Models are built on PyTorch's ``meta`` device: shapes without storage, so the 122M-parameter NetFV
preset costs no memory and its FLOPs are counted without computing anything.
"""

from __future__ import annotations

from typing import Any

import torch
from tqdm.auto import tqdm

from compactvideo.errors import ConfigError
from compactvideo.models.build import build_model
from compactvideo.models.family import example_inputs
from compactvideo.models.presets import PAPER_PARAMETERS, PRESETS
from compactvideo.profiling import count_flops, count_parameters, megabytes


def describe_preset(name: str, frames: int = 300) -> dict[str, Any]:
    """{"name", "parameters", "paper_parameters", "megabytes", "flops"} of one preset, one video."""
    config = PRESETS[name]
    with torch.device("meta"):
        model = build_model(config).eval()
        parameters = count_parameters(model, convention="paper")
        flops = count_flops(model, *example_inputs(config, batch_size=1, frames=frames))
    return {
        "name": name,
        "parameters": parameters,
        "paper_parameters": PAPER_PARAMETERS.get(name),
        "megabytes": round(megabytes(parameters), 3),
        "flops": flops,
    }


def describe_presets(frames: int = 300, names: list[str] | None = None) -> list[dict[str, Any]]:
    """:func:`describe_preset` of every preset (or of ``names``), in the registry's order."""
    unknown = sorted(set(names or ()) - set(PRESETS))
    if unknown:
        raise ConfigError(f"unknown presets {unknown}; known: {', '.join(PRESETS)}")
    chosen = names or list(PRESETS)
    return [describe_preset(name, frames) for name in tqdm(chosen, desc="presets", leave=False)]


def format_table(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table of :func:`describe_presets` rows."""
    lines = [f"{'preset':<28} {'parameters':>13} {'paper':>13} {'MB (fp32)':>10} {'GFLOPs/video':>13}"]
    for row in rows:
        paper = f"{row['paper_parameters']:,}" if row["paper_parameters"] else "-"
        lines.append(
            f"{row['name']:<28} {row['parameters']:>13,} {paper:>13} {row['megabytes']:>10.1f} "
            f"{row['flops'] / 1e9:>13.3f}"
        )
    return "\n".join(lines)
