"""``compactvideo data ...``: YouTube-8M records and video clips (inspect, synthesise, download).

Each sub-command is one ``_add_<name>`` function below, registered in :func:`register`.
"""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "data", help="YouTube-8M records and video clips: inspect, synthesise, download"
    )
    parser.set_defaults(run=lambda args: parser.print_help() or 2)
    data_commands = parser.add_subparsers(title="data commands", metavar="COMMAND")
    del data_commands  # the sub-commands register here
