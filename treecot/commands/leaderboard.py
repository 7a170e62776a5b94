"""`treecot leaderboard`: push and compare runs; the paper's reference figures."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot leaderboard` to `subparsers` (`treecot.cli.build_parser`)."""
    from treecot.evaluation.leaderboard import add_leaderboard_arguments

    s = subparsers.add_parser("leaderboard", help="push / compare runs; the paper's reference figures")
    add_leaderboard_arguments(s)
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot leaderboard` with its parsed `args`; returns the exit status."""
    from treecot.evaluation.leaderboard import leaderboard_from_args

    try:
        return leaderboard_from_args(args) or 0
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
