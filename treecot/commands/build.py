"""`treecot build`: trees → the `trees` / `sft` / `dpo` dataset configs, with card and versions (`treecot.pipeline.build`)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, overrides, push_args


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot build` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "build", help="trees → trees/sft/dpo datasets with length balance, card and versions"
    )
    s.add_argument("recipe", help="recipe YAML with a 'build' section")
    push_args(s)
    s.set_defaults(func=main)
    accept_overrides(s, "--build.sft_length all --build.pair_rule latest_branch")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot build` with its parsed `args`; returns the exit status."""
    from treecot.pipeline.build import run_build
    from treecot.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe, overrides(args, RecipeError))
        run_build(recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return 0
