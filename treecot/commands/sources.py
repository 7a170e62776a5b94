"""`treecot sources`: the problem sets with their row counts."""

from __future__ import annotations

import argparse

from treecot.commands.common import print_table


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot sources` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser("sources", help="list problem sets with their row counts")
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot sources` with its parsed `args`; returns the exit status."""
    from treecot.tasks.planbench import describe_planbench
    from treecot.tasks.sources import describe_sources

    rows = [
        (
            d["name"],
            d["split"],
            f"{d['rows']:,}",
            d["offline_source"]
            if d["offline"]
            else d.get("offline_missing") or "no (" + d["offline_source"] + " not installed)",
            d["hub_id"],
        )
        for d in [*describe_sources(), describe_planbench()]
    ]
    print_table(["name", "split", "rows", "offline", "online (Hub id)"], rows)
    print(
        "\nGenerated on the fly (no download): arithmetic (one- and two-step word problems), blocksworld, "
        "ifeval (synthetic IFEval-style prompts), multi_if (synthetic Multi-IF-style conversations: for search "
        "and training; Multi-IF itself is not offline and not an eval task)."
    )
    print(
        "Not shipped: PlanBench (eval tasks planbench, one-shot, and planbench_zeroshot) reads the checkout "
        "named by $TREECOT_PLANBENCH, else the Hub."
    )
    return 0
