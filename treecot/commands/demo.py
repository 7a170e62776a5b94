"""`treecot demo`: the end-to-end demo on the embedded default model, offline (`treecot.demo`)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, overrides


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot demo` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser("demo", help="run the end-to-end demo on the embedded default model (offline)")
    s.add_argument("--config", default=None, help="demo config (default: recipes/demo.yaml)")
    s.add_argument("--output-dir", default=None, help="where to write (default: the config's output_dir)")
    s.add_argument("--fresh", action="store_true", help="delete the previous demo output and start over")
    s.set_defaults(func=main)
    accept_overrides(s, "--eval.limit 4 --generate.0.problems.limit 8")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot demo` with its parsed `args`; returns the exit status."""
    from treecot.demo import DemoError, run_demo
    from treecot.recipe import RecipeError

    try:
        run_demo(
            args.config, output_dir=args.output_dir, fresh=args.fresh, overrides=overrides(args, DemoError)
        )
    except (DemoError, RecipeError) as e:
        raise CLIError(str(e)) from None
    return 0
