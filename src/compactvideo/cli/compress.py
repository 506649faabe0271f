"""``compactvideo compress``: Tucker-decompose a trained checkpoint's layers into a new checkpoint."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from compactvideo.errors import CompactVideoError


class RankOptionError(CompactVideoError, ValueError):
    """A --ranks value that is not 'vbmf', a fraction, R_OUT,R_IN or LAYER:SPEC."""


def parse_rank_spec(text: str) -> str | float | tuple[int, int]:
    """'vbmf' -> 'vbmf'; '0.25' -> 0.25; '16,8' -> (16, 8)."""
    if text == "vbmf":
        return text
    try:
        if "," in text:
            rank_out, rank_in = (int(part) for part in text.split(","))
            return rank_out, rank_in
        return float(text)
    except ValueError as error:
        raise RankOptionError(
            f"--ranks {text!r}: expected 'vbmf', a fraction such as 0.25, or R_OUT,R_IN such as 16,8"
        ) from error


def parse_ranks(
    values: list[str],
) -> str | float | tuple[int, int] | dict[str, str | float | tuple[int, int]]:
    """One global spec, or LAYER:SPEC entries (only those layers are compressed)."""
    per_layer = [value for value in values if ":" in value]
    if not per_layer:
        if len(values) != 1:
            raise RankOptionError(f"give one global --ranks or LAYER:SPEC entries, got {values}")
        return parse_rank_spec(values[0])
    if len(per_layer) != len(values):
        raise RankOptionError(f"--ranks mixes a global spec with LAYER:SPEC entries: {values}")
    ranks = {}
    for value in values:
        name, spec = value.split(":", 1)
        if name in ranks:
            raise RankOptionError(f"--ranks names layer {name!r} twice")
        ranks[name] = parse_rank_spec(spec)
    return ranks


def _run_compress(args: argparse.Namespace) -> int:
    from compactvideo.pipelines import compress_checkpoint

    skip = None if args.skip is None else tuple(name for name in args.skip.split(",") if name)
    report = compress_checkpoint(
        args.checkpoint,
        args.out,
        method=args.method,
        ranks=parse_ranks(args.ranks or ["vbmf"]),
        skip=skip,
        weaken=args.weaken,
        min_rank=args.min_rank,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report)
    print(f"wrote {args.out}")
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compress",
        help="Tucker-decompose a checkpoint's conv and linear layers (fine-tune after with train --init)",
    )
    parser.add_argument("checkpoint", type=Path, help="a trained checkpoint")
    parser.add_argument("--out", required=True, type=Path, help="the compressed checkpoint to write")
    parser.add_argument("--method", default="tucker", choices=["tucker"])
    parser.add_argument(
        "--ranks",
        action="append",
        metavar="SPEC",
        help="vbmf (EVBMF per layer, the default), a fraction of the channels (0.25), R_OUT,R_IN (16,16); "
        "or, repeated, LAYER:SPEC (c1:2,2) to compress only those layers",
    )
    parser.add_argument(
        "--skip",
        metavar="NAMES",
        help="comma-separated layers to leave alone (default: the output layer; '' compresses all)",
    )
    parser.add_argument(
        "--weaken", type=float, default=0.0, help="move EVBMF ranks this fraction back towards full (0..1)"
    )
    parser.add_argument("--min-rank", type=int, default=1, help="smallest EVBMF rank kept")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(run=_run_compress)
