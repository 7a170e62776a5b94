"""Monte Carlo tree search over reasoning steps (Marco-o1 v2, METHOD §1): the public entry point.

Everything a caller needs is importable from here::

    from treecot.search.mcts import MCTSConfig, run_search
    trees = run_search(problems, task, "math", {"A": gen_a, "B": gen_b}, MCTSConfig(seed=0))

The search is split by concern:

- `treecot.search.config`: `MCTSConfig` (the search settings), the bounds of its counts (`MAX_ROLLOUTS`,
  `MAX_DEPTH`, …) and `config_hash`.
- `treecot.search.engine`: `MCTS`, the search of one problem as a resumable state machine (selection,
  expansion, evaluation, backpropagation, backtracking, stop rules; its docstring describes the algorithm
  and our caps), `ExpansionRequest` and `token_confidences`.
- `treecot.search.driver`: `run_search`, which advances many searches in lock-step with one backend call
  per model and step, and its helpers `render_chat_prompts` and `generator_info`.
- `treecot.search.reflection`: `reflection_stats`, `reflection_summary` and `share`, which measure
  backtracking on any tree.
"""

from __future__ import annotations

from treecot.search.config import (
    MAX_DEPTH,
    MAX_REFLECTIONS_PER_NODE,
    MAX_ROLLOUTS,
    MAX_SEED,
    MAX_TOP_LOGPROBS,
    VALUE_MODES,
    MCTSConfig,
    config_hash,
)
from treecot.search.driver import generator_info, render_chat_prompts, run_search
from treecot.search.engine import MCTS, ExpansionRequest, token_confidences
from treecot.search.patterns import MAX_NODE_TOKENS
from treecot.search.reflection import reflection_stats, reflection_summary, share

__all__ = [
    "MAX_DEPTH",
    "MAX_NODE_TOKENS",
    "MAX_REFLECTIONS_PER_NODE",
    "MAX_ROLLOUTS",
    "MAX_SEED",
    "MAX_TOP_LOGPROBS",
    "MCTS",
    "VALUE_MODES",
    "ExpansionRequest",
    "MCTSConfig",
    "config_hash",
    "generator_info",
    "reflection_stats",
    "reflection_summary",
    "render_chat_prompts",
    "run_search",
    "share",
    "token_confidences",
]
