"""``compactvideo models``: the named presets with their size and cost."""

from __future__ import annotations

import argparse
import json


def _run_models(args: argparse.Namespace) -> int:
    from compactvideo.models.catalogue import describe_presets, format_table

    rows = describe_presets(args.frames, names=args.names or None)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="list the model presets: parameters (ours and the paper's), MB, FLOPs per video"
    )
    parser.add_argument("names", nargs="*", help="only these presets (default: all)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--frames", type=int, default=300, help="frames per video for the FLOP count")
    parser.set_defaults(run=_run_models)
