"""`treecot ablate`: the paper's Table 5 ablation as one resumable command (`treecot.ablate`)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, overrides


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot ablate` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "ablate",
        help="the paper's Table 5: base, SFT, +DPO, +Data Balance, +cDPO, +Joint loss, +Masking (resumable)",
    )
    s.add_argument(
        "recipe", help="ablation recipe, e.g. recipes/smollm2-135m-instruct/ablate/config_arithmetic.yaml"
    )
    s.add_argument("--output-dir", default=None, help="where to write (default: the recipe's output_dir)")
    s.add_argument(
        "--fresh", action="store_true", help="delete the previous output of this recipe and start over"
    )
    s.set_defaults(func=main)
    accept_overrides(s, "--eval.limit 50 --ablation.rows '[dpo, cdpo]'")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot ablate` with its parsed `args`; returns the exit status."""
    from treecot.ablate import run_ablation
    from treecot.demo import DemoError
    from treecot.recipe import RecipeError

    try:
        run_ablation(
            args.recipe, output_dir=args.output_dir, fresh=args.fresh, overrides=overrides(args, DemoError)
        )
    except (DemoError, RecipeError) as e:
        raise CLIError(str(e)) from None
    return 0
