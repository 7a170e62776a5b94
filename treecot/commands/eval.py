"""`treecot eval`: evaluate a model on treecot's benchmarks with lighteval (`treecot.evaluation.runner`)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, accept_overrides, overrides


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot eval` to `subparsers` (`treecot.cli.build_parser`)."""
    from treecot.evaluation.runner import add_eval_arguments

    s = subparsers.add_parser(
        "eval", help="evaluate a model on treecot's benchmarks with lighteval (CPU, offline)"
    )
    add_eval_arguments(s)
    s.set_defaults(func=main)
    accept_overrides(s, "--mcts_config.temperature 0.5 --provenance.recipe_hash abc123")
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot eval` with its parsed `args`; returns the exit status."""
    from treecot.evaluation.config import EvalConfigError
    from treecot.evaluation.lighteval_version import UnsupportedLightevalVersion
    from treecot.evaluation.runner import ResultsRescued, eval_from_args, format_markdown

    try:
        eval_from_args(args, overrides(args, EvalConfigError))
    except ResultsRescued as e:  # the run finished: show its table, then say where its outputs are
        print(format_markdown(e.run.summary))
        raise CLIError(str(e)) from None
    except (ValueError, KeyError, FileNotFoundError, UnsupportedLightevalVersion) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
    return 0
