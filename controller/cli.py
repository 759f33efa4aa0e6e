"""The `evfuse` command. Each subcommand lives beside the code it drives and registers itself
here through a `register(subparsers)` function; this file only dispatches."""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules providing register(subparsers). Each adds one or more subcommands whose handler
# (set with set_defaults(func=...)) takes the parsed args and returns an exit code.
COMMAND_MODULES = (
    "controller.config_cli",
    "controller.sim.simulate_cli",
    "controller.meter.cli",
    "controller.run_cli",
    "controller.sim.demo",
    "controller.status",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evfuse",
        description="Load management for EV chargers behind one main fuse.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
