"""The ``fleetgauge`` command: one module per command, each with its flags and its ``run``.

A command module has ``NAME``, ``EXTRAS`` (the install extras it needs),
``add_parser(sub)`` and ``run(args) -> exit status``. Parsing never needs an
extra, so ``--help`` always works; running a command whose extra is missing
prints one line naming it and exits 2.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from fleetgauge import __version__, extras
from fleetgauge.cli import agent, common, dashboard, demo, export
from fleetgauge.stores import StoreError

__all__ = ["main", "build_parser"]

COMMANDS = (agent, dashboard, demo, export)
"""Every command, in the order ``fleetgauge --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The full command-line interface, every flag with its help."""
    parser = argparse.ArgumentParser(
        prog="fleetgauge",
        description="Self-hosted monitoring for the machines that train and serve ML models.",
        epilog="Run 'fleetgauge COMMAND --help' for the flags of a command.",
    )
    parser.add_argument("--version", action="version", version=f"fleetgauge {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def _needed_extras(command: object, args: argparse.Namespace) -> tuple[str, ...]:
    if command is demo and args.seed_only:
        return ()
    return command.EXTRAS  # type: ignore[attr-defined]


def _command_parser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of command ``name`` (its flags, its usage line)."""
    for action in parser._actions:  # argparse keeps its subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    return parser


def _unknown(parser: argparse.ArgumentParser, unknown: Sequence[str]) -> str:
    """The error for options a command does not have, with the closest it has."""
    known = [o[2:] for a in parser._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for arg in unknown:
        if arg.startswith("-"):
            flag = arg.split("=", 1)[0]
            close = difflib.get_close_matches(flag.lstrip("-"), known, n=1, cutoff=0.7)
            if close:
                hints.append(f"{flag}: did you mean --{close[0]}?")
    message = "unrecognized arguments: " + " ".join(unknown)
    return message + ("; " + "; ".join(hints) if hints else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fleetgauge`` console script."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's usage and the closest flag, not the top-level usage
        command_parser = _command_parser(parser, args.command)
        command_parser.error(_unknown(command_parser, unknown))
    command = next(c for c in COMMANDS if c.NAME == args.command)
    try:
        extras.require(f"fleetgauge {args.command}", *_needed_extras(command, args))
        return command.run(args)
    except extras.MissingExtra as e:
        print(e, file=sys.stderr)
        return 2
    except ValueError as e:
        return common.fail(str(e), 2)
    except StoreError as e:
        return common.fail(str(e))
    except KeyboardInterrupt:
        return common.fail("interrupted", 130)
    except BrokenPipeError:  # the reader went away (| head): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
