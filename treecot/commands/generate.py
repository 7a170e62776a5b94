"""`treecot generate`: MCTS reasoning trees for a recipe's problems (resumable; `treecot.pipeline.generate`)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, override_limit, overrides


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot generate` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "generate", help="build MCTS reasoning trees for a recipe's problems (resumable)"
    )
    s.add_argument("recipe", help="recipe YAML with 'problems' and 'generate' sections")
    s.add_argument(
        "--shard", help="run shard i of n, as i/n (default: from accelerate's environment, else 0/1)"
    )
    s.add_argument("--limit", type=int, help="override problems.limit")
    s.add_argument("--output-dir", help="override generate.output_dir")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: search in this process; ray: on a pool of Ray actors, each with its own models (the "
        "`ray` extra; connects to $RAY_ADDRESS, else starts a local cluster)",
    )
    s.add_argument(
        "--actors", type=int, default=2, help="--engine ray: number of actors (default 2; one per GPU group)"
    )
    s.set_defaults(func=main)
    accept_overrides(s, "--generate.search.max_rollouts 8 --problems.limit 16")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot generate` with its parsed `args`; returns the exit status."""
    from treecot.pipeline.generate import Shard, run_generate
    from treecot.recipe import RecipeError, load_recipe

    try:
        shard = Shard.parse(args.shard) if args.shard else None
        recipe = override_limit(load_recipe(args.recipe, overrides(args, RecipeError)), args.limit)
        if args.output_dir:
            recipe.generate.output_dir = args.output_dir
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    except AttributeError:
        raise CLIError(f"{args.recipe}: the recipe has no 'generate' section") from None
    if args.actors < 1:
        raise CLIError(f"--actors {args.actors}: need at least one actor")
    try:
        run_generate(recipe, shard, progress=not args.no_progress, engine=args.engine, ray_actors=args.actors)
    except RecipeError as e:
        raise CLIError(str(e)) from None
    return 0
