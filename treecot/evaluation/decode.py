"""Scoring of sampled completions (accuracy, no-answer rate, diagnostics, Test@N / pass@k) and MCTS decoding.

Nothing here imports lighteval: the lighteval metric (`treecot.evaluation.lighteval_tasks`) and the runner
call these functions, and they are tested directly on scripted responses.

**Test@N** (Marco-o1 v2, Table 7) is the share of problems solved at least once in N samples. With n
samples per problem of which c are correct, `pass_at_k(n, c, k)` is the unbiased estimator of Chen et al.
(2021), 1 − C(n−c, k) / C(n, k); pass@N with n = N is exactly "solved at least once", and pass@1 is the
mean share of correct samples.

**MCTS decode** runs treecot's tree search at inference time without ground truth: `MCTSConfig(
value_mode="confidence")` scores every answer node with the Marco-o1 v1 token confidence of its path
(mean over the path's generated tokens of the token's probability renormalised over its top-5
alternatives). The final answer is the answer node with the **highest value** (ties: more visits, then
the earlier node). We pick the highest-valued answer rather than the most-visited one because, with the
small rollout budgets usable at test time, most answers are visited once and visits carry no signal,
while the value is defined for every answer. The search's verifier still runs "for the record" inside the
tree but never influences the choice. With `n_answers = N`, the N best-valued distinct answers are the N
"samples" of Test@N under MCTS decode.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from treecot.backends.base import Completion

if TYPE_CHECKING:
    from treecot.search.tree import Node, Tree
    from treecot.tasks.base import Task

__all__ = [
    "MCTSDecodeConfig",
    "MCTSDecodeResult",
    "best_answers",
    "default_ks",
    "mcts_decode",
    "pass_at_k",
    "sample_metric_names",
    "score_completions",
    "test_at_n",
]


# --------------------------------------------------------------------------------------------- pass@k


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples of which `c` are correct: 1 − C(n−c, k)/C(n, k).

    Args:
        n (`int`):
            The samples (at least 1).
        c (`int`):
            The correct samples (0 <= c <= n).
        k (`int`):
            The k of pass@k (1 <= k <= n).
    """
    for name, value in (("n", n), ("c", c), ("k", k)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"pass_at_k: {name} must be an int, got {value!r}")
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs n >= 1, 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))


def default_ks(n: int) -> list[int]:
    """The k reported for n samples: 1, 2, 4, … below n, and n itself (e.g. n=8 → [1, 2, 4, 8])."""
    if n < 1:
        raise ValueError(f"the number of samples must be >= 1, got {n}")
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) < n]
    return [*ks, n]


def test_at_n(correct: Sequence[Sequence[bool]]) -> float:
    """Test@N: share of problems with at least one correct sample (`correct[i]` = problem i's samples)."""
    if not correct:
        raise ValueError("test_at_n: no problems")
    return sum(1.0 for samples in correct if any(samples)) / len(correct)


test_at_n.__test__ = False  # not a pytest test, despite its name


# --------------------------------------------------------------------------------------------- scoring


def sample_metric_names(task: Task, n_samples: int = 1) -> list[str]:
    """Names of the per-problem values `score_completions` returns for `task` with `n_samples` samples."""
    names = [
        "accuracy",
        "no_answer_rate",
        "repetition_rate",
        "over_reflection_rate",
        "hit_limit_rate",
        "mean_tokens",
    ]
    if task.domain == "instructions":
        names += ["instruction_failure_rate", "prompt_loose", "inst_strict", "inst_loose"]
    if n_samples > 1:
        names += [f"pass@{k}" for k in default_ks(n_samples)]
    return names


def score_completions(
    task: Task,
    problem: Mapping[str, Any],
    texts: Sequence[str],
    *,
    n_tokens: Sequence[int | None] | None = None,
    max_new_tokens: int | None = None,
    diagnostics_config: Any = None,
) -> dict[str, Any]:
    """Score the `texts` sampled for one `problem` (one text for greedy decoding, N for Test@N).

    Every value is a mean over the samples (so with one sample a 0/1 value): ``accuracy`` (the task's
    verifier: math equivalence, plan reaches the goal, every instruction followed strictly),
    ``no_answer_rate`` (the verifier could not read an answer: the paper's parenthesised figure),
    ``repetition_rate``, ``over_reflection_rate``, ``hit_limit_rate`` (`treecot.tasks.diagnostics`) and
    ``mean_tokens`` (generated tokens; `n_tokens[i]` when given, else the approximate count).
    Instruction tasks add ``instruction_failure_rate``, ``prompt_loose`` and the instruction-level
    ``inst_strict`` / ``inst_loose`` as ``[followed, total]`` pairs (summed over the corpus, as IFEval
    does). With N > 1 samples: ``pass@k`` for `default_ks(N)` (``pass@N`` is Test@N).

    Args:
        task (`Task`):
            The task whose verifier scores the texts.
        problem (`Mapping[str, Any]`):
            The problem record.
        texts (`Sequence[str]`):
            The sampled completions.
        n_tokens (`Sequence[int | None]`, *optional*):
            The generated tokens of each text (else the approximate count).
        max_new_tokens (`int`, *optional*):
            The generation budget (``hit_limit_rate``).
        diagnostics_config (`Any`, *optional*):
            The thresholds of `treecot.tasks.diagnostics.diagnose`.
    """
    from treecot.tasks.diagnostics import diagnose

    if not texts:
        raise ValueError(f"score_completions: no completion to score for problem {problem.get('id')!r}")
    if n_tokens is not None and len(n_tokens) != len(texts):
        raise ValueError(f"score_completions: {len(texts)} texts but {len(n_tokens)} token counts")
    instructions = task.domain == "instructions"
    rows = []
    for i, text in enumerate(texts):
        text = text if isinstance(text, str) else ("" if text is None else str(text))
        verdict = task.verify(text, dict(problem))
        given = n_tokens[i] if n_tokens is not None else None
        diag = diagnose(
            Completion(text=text, n_tokens=given) if given is not None else text,
            task,
            max_tokens=max_new_tokens,
            config=diagnostics_config,
        )
        row = {
            "correct": bool(verdict.correct),
            "answered": bool(verdict.answered),
            "repetition": bool(diag["repetition"]),
            "over_reflection": bool(diag["over_reflection"]),
            "hit_limit": bool(diag["hit_token_limit"]),
            "tokens": int(diag["n_tokens"]),
        }
        if instructions:
            details = verdict.details or {}
            row["instruction_failure"] = bool(diag["instruction_failure"])
            row["prompt_loose"] = bool(details.get("prompt_loose", False))
            row["strict"] = [bool(x) for x in details.get("strict", [])]
            row["loose"] = [bool(x) for x in details.get("loose", [])]
        rows.append(row)

    def mean(key: str) -> float:
        return sum(float(r[key]) for r in rows) / len(rows)

    out: dict[str, Any] = {
        "accuracy": mean("correct"),
        "no_answer_rate": 1.0 - mean("answered"),
        "repetition_rate": mean("repetition"),
        "over_reflection_rate": mean("over_reflection"),
        "hit_limit_rate": mean("hit_limit"),
        "mean_tokens": mean("tokens"),
    }
    if instructions:
        out["instruction_failure_rate"] = mean("instruction_failure")
        out["prompt_loose"] = mean("prompt_loose")
        out["inst_strict"] = [sum(sum(r["strict"]) for r in rows), sum(len(r["strict"]) for r in rows)]
        out["inst_loose"] = [sum(sum(r["loose"]) for r in rows), sum(len(r["loose"]) for r in rows)]
    n = len(rows)
    if n > 1:
        c = sum(r["correct"] for r in rows)
        for k in default_ks(n):
            out[f"pass@{k}"] = pass_at_k(n, c, k)
    return out


# --------------------------------------------------------------------------------------------- MCTS decode


@dataclass
class MCTSDecodeConfig:
    """Budget of tree search at test time (value = token confidence, no ground truth).

    Args:
        max_rollouts (`int`, *optional*, defaults to `8`):
            Rollouts per problem (the only stop rule in confidence mode).
        max_depth (`int`, *optional*, defaults to `6`):
            Most nodes on a root-to-answer path.
        max_node_tokens (`int`, *optional*, defaults to `128`):
            Generation cap per node.
        temperature (`float`, *optional*, defaults to `0.7`):
            Sampling of every expansion.
        top_p (`float`, *optional*, defaults to `0.9`):
            Sampling of every expansion.
        top_logprobs (`int`, *optional*, defaults to `5`):
            Alternatives per token for the confidence (Marco-o1 v1: 5).
        patterns (`str`, *optional*):
            Node patterns (name or YAML path); default: the task domain's.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the search (prefills, tie-breaks, request seeds).
    """

    max_rollouts: int = 8
    max_depth: int = 6
    max_node_tokens: int = 128
    temperature: float = 0.7
    top_p: float = 0.9
    top_logprobs: int = 5
    patterns: str | None = None
    seed: int = 0

    def to_mcts_config(self):
        from treecot.search.mcts import MCTSConfig

        return MCTSConfig(
            value_mode="confidence",
            max_rollouts=self.max_rollouts,
            max_depth=self.max_depth,
            max_node_tokens=self.max_node_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            top_logprobs=self.top_logprobs,
            seed=self.seed,
        )


@dataclass
class MCTSDecodeResult:
    """The decoded answer(s) of one problem: `texts[0]` is the chosen path, best value first.

    Args:
        texts (`list[str]`):
            The answers' serialized paths, best value first.
        values (`list[float]`):
            Their values (token confidence).
        n_tokens (`list[int]`):
            Their tokens.
        tree (`Tree`):
            The search tree.
    """

    texts: list[str]
    values: list[float]
    n_tokens: list[int]
    tree: Tree = field(repr=False)


def best_answers(tree: Tree, k: int = 1) -> list[Node]:
    """The `k` answer nodes with the highest value (reward), ties broken by visits then node id.

    Answers whose path serializes to the same text count once. Never looks at `correct`.
    """
    answers = sorted(tree.answer_nodes(), key=lambda n: (-(n.reward or 0.0), -n.visits, n.id))
    chosen: list[Node] = []
    seen: set[str] = set()
    for node in answers:
        text = tree.serialize_path(node.id)
        if text in seen:
            continue
        seen.add(text)
        chosen.append(node)
        if len(chosen) == k:
            break
    return chosen


def _path_tokens(tree: Tree, node_id: int) -> int:
    return sum(n.n_tokens for n in tree.path(node_id))


def mcts_decode(
    problems: Sequence[Mapping[str, Any]],
    task: Task,
    generators: Any,
    config: MCTSDecodeConfig | None = None,
    *,
    n_answers: int = 1,
    progress: bool | Callable[[int, int, Any], None] | None = None,
    system_prompt: str | None = None,
) -> list[MCTSDecodeResult]:
    """Decode every problem by confidence-valued MCTS (see the module docstring); one result per problem.

    A problem whose search produced no answer node gets the empty text (it counts as no answer). Fewer than
    `n_answers` distinct answers are padded with the best one, so Test@N always sees N samples.

    Args:
        problems (`Sequence[Mapping[str, Any]]`):
            The problem records.
        task (`Task`):
            Their task.
        generators (`Any`):
            One `Generator` (both roles) or ``{"A": …, "B": …}``.
        config (`MCTSDecodeConfig`, *optional*):
            The search's budget (default `MCTSDecodeConfig()`).
        n_answers (`int`, *optional*, defaults to `1`):
            Answers per problem (at most `config.max_rollouts`).
        progress (`bool` or `Callable[[int, int, Any], None]`, *optional*):
            `True` for a progress bar, or a callable `(n_done, n_total, tree)` called per finished tree.
        system_prompt (`str`, *optional*):
            The prompt contract's system prompt (default `treecot.prompts.contract_system_prompt(task)`).
    """
    from treecot.search.mcts import run_search

    if n_answers < 1:
        raise ValueError(f"n_answers must be >= 1, got {n_answers}")
    config = config or MCTSDecodeConfig()
    if config.max_rollouts < n_answers:
        raise ValueError(
            f"MCTS decode with n_answers={n_answers} needs max_rollouts >= {n_answers}, got {config.max_rollouts}"
        )
    trees = run_search(
        list(problems),
        task,
        patterns=config.patterns,
        generators=generators,
        config=config.to_mcts_config(),
        progress=progress,
        system_prompt=system_prompt,
    )
    results = []
    for tree in trees:
        nodes = best_answers(tree, n_answers)
        texts = [tree.serialize_path(n.id) for n in nodes]
        values = [float(n.reward or 0.0) for n in nodes]
        tokens = [_path_tokens(tree, n.id) for n in nodes]
        if not nodes:
            texts, values, tokens = [""], [0.0], [0]
        while len(texts) < n_answers:
            texts.append(texts[0])
            values.append(values[0])
            tokens.append(tokens[0])
        results.append(MCTSDecodeResult(texts, values, tokens, tree))
    return results
