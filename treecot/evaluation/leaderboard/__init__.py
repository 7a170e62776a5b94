"""A leaderboard of `treecot eval` runs, kept as a versioned dataset (Hub repo or local folder).

    treecot leaderboard push outputs/eval/smollm2-135m-instruct/summary.json
    treecot leaderboard compare smollm2-135m-instruct outputs/eval/my-sft/ "paper:Llama-3.2-1B-Instruct + Our Data"
    treecot leaderboard reference --table table5

Rows (one per run × task × metric; `COLUMNS`): ``model``, ``model_revision``, ``dataset_repo``,
``dataset_revision``, ``recipe_hash`` (what the model was trained on, from the run's summary), ``task``,
``metric`` (accuracy, pass@k, the diagnostics rates, mean_tokens, …), ``value``, ``no_answer_rate`` (of
that task in that run: the paper's parenthesised figure), ``n`` (problems), ``date``,
``treecot_version``, ``mode`` (greedy / sampling / mcts), ``samples``, ``seed``, ``source`` and
``run_id`` (a hash of the run's identity: pushing the same summary twice does not duplicate it).
Rates are fractions in [0, 1]; tables print percentages.

Storage: config ``results`` of the dataset repository ``repo_id`` (default `DEFAULT_REPO`) through
`treecot.hub`: each push writes the whole table to a new branch ``run-<hash>`` and updates ``main``
(so ``main`` always holds every row and each branch is a snapshot); without a Hub token or endpoint it is
the local Hub layout under ``$TREECOT_CACHE/hub/datasets/<repo_id>``. A push is a read-modify-write held
under the local folder's lock (`treecot.hub.write_lock`), so concurrent pushes to one folder all land
and a killed push is repaired by the next one. A Hub repository has no lock: two concurrent pushes there
can still lose one of them.

`reference()` returns the paper's Table 4, 5 and 7 figures (METHOD §4, shipped in
``treecot/resources/paper_reference.json``) as rows with ``source = "reported in the paper (arXiv
2503.01461)"``, so runs can be put next to them. The paper's Multi-IF columns have no treecot
counterpart (Multi-IF is not available offline) and its AIME column pools two years ("aime").

This module is the `treecot leaderboard` command; the rest lives by concern, and every name is importable
from here as well:

- `treecot.evaluation.leaderboard.rows`: the columns, a run's rows (`rows_from_summary`), the paper's rows
  (`reference`);
- `treecot.evaluation.leaderboard.store`: `load` and `push` (the versioned dataset);
- `treecot.evaluation.leaderboard.compare`: `compare` runs, summaries and paper rows (`run_label`);
- `treecot.evaluation.leaderboard.table`: `wide_table`, `comparison_table`, `format_comparison`;
- `treecot.evaluation.leaderboard.plot`: the comparison figure (`plot_comparison`).
"""

from __future__ import annotations

import argparse
import sys

from treecot.evaluation.leaderboard.compare import compare, run_label
from treecot.evaluation.leaderboard.plot import comparison_figure as comparison_figure
from treecot.evaluation.leaderboard.plot import plot_comparison
from treecot.evaluation.leaderboard.rows import (
    COLUMNS,
    PAPER_SOURCE,
    reference,
    rows_from_summary,
)
from treecot.evaluation.leaderboard.rows import PUSHED_METRICS as PUSHED_METRICS
from treecot.evaluation.leaderboard.rows import RAW_METRICS as RAW_METRICS
from treecot.evaluation.leaderboard.rows import RUN_SOURCE as RUN_SOURCE
from treecot.evaluation.leaderboard.store import CONFIG as CONFIG
from treecot.evaluation.leaderboard.store import DEFAULT_REPO, load, push
from treecot.evaluation.leaderboard.table import (
    comparison_table,
    format_comparison,
    markdown_table,
    wide_table,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_REPO",
    "PAPER_SOURCE",
    "compare",
    "comparison_table",
    "format_comparison",
    "leaderboard_main",
    "load",
    "plot_comparison",
    "push",
    "reference",
    "rows_from_summary",
    "run_label",
    "wide_table",
]


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``push`` / ``compare`` / ``reference`` subcommands to `parser` (for `treecot.cli`)."""
    sub = parser.add_subparsers(dest="leaderboard_command", required=True)

    def repo_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--repo", default=None, help=f"leaderboard dataset repo (default {DEFAULT_REPO})")
        s.add_argument("--local-dir", default=None, help="use this local folder instead of the Hub")

    s = sub.add_parser("push", help="append a run (summary.json, eval output dir or lighteval results JSON)")
    s.add_argument("results", help="summary.json, an eval output directory or lighteval's results JSON")
    repo_args(s)
    s = sub.add_parser("compare", help="table + grouped bar plot of runs, leaderboard models or paper rows")
    s.add_argument(
        "runs", nargs="+", help="summary paths, model[@revision] in the leaderboard, or 'paper:<model>'"
    )
    s.add_argument("--metric", default="accuracy")
    s.add_argument("--tasks", default=None, help="comma-separated subset of tasks")
    s.add_argument("--output", default="leaderboard_compare.png", help="PNG path of the plot")
    repo_args(s)
    s = sub.add_parser("reference", help=f"the paper's Table 4/5/7 figures ({PAPER_SOURCE})")
    s.add_argument("--table", default=None, choices=["table4", "table5", "table7"])
    s.add_argument("--format", default="md", choices=["md", "csv", "json"])
    return parser


def leaderboard_from_args(args: argparse.Namespace) -> int:
    """Run a parsed `add_leaderboard_arguments` command; prints its result.

    Args:
        args (`argparse.Namespace`):
            The parsed arguments of ``treecot leaderboard push|compare|reference``.

    Returns:
        `int`: the exit status (0).
    """
    if args.leaderboard_command == "push":
        result = push(args.results, args.repo, local_dir=args.local_dir)
        where = "wrote the local leaderboard" if result.local else f"pushed to {result.repo_id}"
        print(f"{where} ({result.revision}): {result.url_or_path}")
    elif args.leaderboard_command == "compare":
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        table, png = compare(
            args.runs,
            repo_id=args.repo,
            metric=args.metric,
            tasks=tasks,
            output=args.output,
            local_dir=args.local_dir,
        )
        print(format_comparison(table))
        print(f"\nplot: {png}")
    else:
        df = reference(args.table)
        if args.format == "csv":
            print(df.to_csv(index=False), end="")
        elif args.format == "json":
            print(df.to_json(orient="records", force_ascii=False, indent=1))
        else:
            pivot = df.pivot_table(
                index=["table", "model"], columns=["task", "metric"], values="value", sort=False
            )
            pivot.columns = [t if m == "accuracy" else f"{t} {m}" for t, m in pivot.columns]
            pivot.index = [f"{t}: {m}" for t, m in pivot.index]
            pivot.index.name = PAPER_SOURCE
            print(markdown_table(pivot))
    return 0


def leaderboard_main(argv: list[str] | None = None) -> int:
    """``treecot leaderboard push|compare|reference …``."""
    parser = add_leaderboard_arguments(
        argparse.ArgumentParser(prog="treecot leaderboard", description=__doc__.split("\n")[0])
    )
    args = parser.parse_args(argv)
    try:
        return leaderboard_from_args(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"treecot leaderboard: error: {err}", file=sys.stderr)
        return 2
