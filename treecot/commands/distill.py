"""`treecot distill`: SkyThought-style teacher sampling and rejection sampling → an `sft` dataset."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, override_limit, overrides, push_args


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot distill` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "distill", help="SkyThought-style teacher sampling + rejection sampling → sft dataset"
    )
    s.add_argument("recipe", help="recipe YAML with a 'distill' section")
    s.add_argument("--limit", type=int, help="override problems.limit")
    push_args(s)
    s.set_defaults(func=main)
    accept_overrides(s, "--distill.samples 8 --problems.limit 16")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot distill` with its parsed `args`; returns the exit status."""
    from treecot.pipeline.build import run_distill
    from treecot.recipe import RecipeError, load_recipe

    try:
        recipe = override_limit(load_recipe(args.recipe, overrides(args, RecipeError)), args.limit)
        run_distill(recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return 0
