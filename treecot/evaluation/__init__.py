"""Evaluation: treecot's benchmarks through lighteval, Test@N, MCTS decoding and a leaderboard.

- `treecot.evaluation.lighteval_tasks`: the lighteval custom-task module (gsm8k, arithmetic, math500,
  aime24, aime25, blocksworld, planbench, planbench_zeroshot, synthetic ifeval, ifbench) scored by
  treecot's verifiers and diagnostics.
- `treecot.evaluation.config`: `EvalConfig`, the settings of an evaluation (YAML, flags, overrides).
- `treecot.evaluation.runner`: `evaluate(EvalConfig)`, `run_eval` (its keyword form) / `treecot eval` — lighteval on the CPU (or a GPU), offline,
  registering only treecot's tasks; writes lighteval's results JSON, ``summary.json`` and ``summary.md``.
- `treecot.evaluation.decode`: scoring of sampled responses (pass@k, Test@N) and MCTS decoding with the
  token-confidence value.
- `treecot.evaluation.leaderboard`: push runs to a leaderboard dataset, compare runs (table + plot), and
  the paper's reported figures.

Importing this package is cheap: lighteval (slow to import) is loaded only by `lighteval_tasks` and when
an evaluation runs.
"""

from __future__ import annotations

from typing import Any

from treecot.evaluation.registry import EVAL_TASK_VARIANTS, EVAL_TASKS, eval_task

__all__ = [
    "EVAL_TASKS",
    "EVAL_TASK_VARIANTS",
    "compare",
    "eval_task",
    "evaluate",
    "push",
    "reference",
    "run_eval",
]


def run_eval(*args: Any, **kwargs: Any):
    """`treecot.evaluation.runner.run_eval` (imported on first use)."""
    from treecot.evaluation.runner import run_eval as _run_eval

    return _run_eval(*args, **kwargs)


def evaluate(*args: Any, **kwargs: Any):
    """`treecot.evaluation.runner.evaluate` (imported on first use): an evaluation from its
    `treecot.evaluation.config.EvalConfig`."""
    from treecot.evaluation.runner import evaluate as _evaluate

    return _evaluate(*args, **kwargs)


def push(*args: Any, **kwargs: Any):
    """`treecot.evaluation.leaderboard.push` (imported on first use)."""
    from treecot.evaluation.leaderboard import push as _push

    return _push(*args, **kwargs)


def compare(*args: Any, **kwargs: Any):
    """`treecot.evaluation.leaderboard.compare` (imported on first use)."""
    from treecot.evaluation.leaderboard import compare as _compare

    return _compare(*args, **kwargs)


def reference(*args: Any, **kwargs: Any):
    """`treecot.evaluation.leaderboard.reference` (imported on first use)."""
    from treecot.evaluation.leaderboard import reference as _reference

    return _reference(*args, **kwargs)
