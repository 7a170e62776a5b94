"""`treecot show-tree`: a search tree as an indented view, optionally plotted."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot show-tree` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "show-tree", help="print a search tree as an indented view and optionally plot it"
    )
    s.add_argument("file", help="a trees-*.jsonl shard")
    s.add_argument(
        "--problem", help="problem id or a unique prefix (needed when the file holds several trees)"
    )
    s.add_argument("--png", help="also write a plot of the tree to this PNG file")
    s.add_argument("--words", type=int, default=12, help="words of node text to show")
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot show-tree` with its parsed `args`; returns the exit status."""
    from treecot.search.show import show_tree_main

    try:
        show_tree_main(args.file, args.problem, png=args.png, words=args.words)
    except (KeyError, FileNotFoundError, ValueError) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
    return 0
