"""Phase 2 helpers of benchmarks/mcts.py (tokens per correct path), driven by the scripted fake generator."""

from __future__ import annotations

import itertools

import pytest

from benchmarks import mcts as bench
from tests.fixtures.fake_generator import FakeGenerator, ToyMathTask, toy_problem
from treecot.search.mcts import MCTSConfig

PROBLEMS = [toy_problem("What is 2 + 2?", "4"), toy_problem("What is 3 + 3?", "6")]


def cycling(*texts: str):
    """A responder returning `texts` in turn, across requests and samples."""
    it = itertools.cycle(texts)
    return lambda request, i: next(it)


class ClearableFake(FakeGenerator):
    """Also has `clear_cache` (counted) and sums the tokens of every completion it returned."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clears = 0
        self.tokens_returned = 0

    def generate(self, requests):
        results = super().generate(requests)
        self.tokens_returned += sum(c.n_tokens for r in results for c in r.completions)
        return results

    def clear_cache(self) -> int:
        self.clears += 1
        return 0


def test_tokens_per_correct_and_suffix():
    assert bench.tokens_per_correct(1000, 3) == 333.3
    assert bench.tokens_per_correct(0, 2) == 0.0
    assert bench.tokens_per_correct(500, 0) is None
    with pytest.raises(ValueError, match="must be >= 0"):
        bench.tokens_per_correct(-1, 1)
    assert bench.figure_suffix("gsm8k") == ""
    assert bench.figure_suffix("arithmetic") == "_arithmetic"


def test_cot_until_stops_at_target_and_counts():
    # Every sample is 3 words; the first two samples of each round answer problem 0 correctly.
    gen = FakeGenerator(respond=cycling("so \\boxed{4} done", "x \\boxed{9} y", "a b c", "d e f"))
    out = bench.cot_until(gen, ToyMathTask(), PROBLEMS, target_correct=3, token_budget=10**6, n=2)
    # Round 1: problem 0 gets "…{4}…" (correct) and "…{9}…"; problem 1 gets two no-answers. Round 2 the same.
    assert out["rounds"] == 3 and out["correct"] == 3
    assert out["samples"] == 12 and out["generated_tokens"] == 36
    assert out["problems_solved"] == 1
    requests = gen.requests
    assert [r.n for r in requests] == [2] * 6
    assert all(r.max_tokens == bench.COT_MAX_TOKENS and r.stop == [] for r in requests)
    assert len({r.seed for r in requests}) == 6  # new samples every round and problem
    assert requests[0].prompt.endswith("What is 2 + 2?\n<|assistant|>\n")


def test_cot_until_stops_at_token_budget_and_runs_at_least_one_round():
    gen = FakeGenerator(respond=cycling("one two three four five"))
    out = bench.cot_until(gen, ToyMathTask(), PROBLEMS, target_correct=5, token_budget=25, n=1)
    assert out == {**out, "rounds": 3, "correct": 0, "generated_tokens": 30, "samples": 6}
    # Target 0 (MCTS found nothing) or budget 0: still one round, so the CoT side is measured.
    gen = FakeGenerator(respond=cycling("\\boxed{4}"))
    out = bench.cot_until(gen, ToyMathTask(), PROBLEMS, target_correct=0, token_budget=0, n=3)
    assert out["rounds"] == 1 and out["samples"] == 6 and out["correct"] == 3
    # max_rounds bounds a generator that returns no tokens at all.
    out = bench.cot_until(FakeGenerator(default=""), ToyMathTask(), PROBLEMS, 1, 10, max_rounds=4)
    assert out["rounds"] == 4 and out["generated_tokens"] == 0
    with pytest.raises(ValueError, match="at least one problem"):
        bench.cot_until(gen, ToyMathTask(), [], 1, 10)


def test_mcts_yield_counts_generated_tokens_and_correct_paths():
    # Answers alternate right/wrong; every other node is a two-word step.
    gen = ClearableFake({"answer": cycling("4}", "5}")}, default="two words")
    config = MCTSConfig(max_depth=4, max_rollouts=3, early_stop_rollouts=3, stop_at_correct=99, seed=0)
    out = bench.mcts_yield(gen, ToyMathTask(), PROBLEMS[:1], config)
    assert out["generated_tokens"] == gen.tokens_returned > 0
    assert out["rollouts"] == 3
    assert out["correct"] >= 1 and out["problems_solved"] == 1


def test_yield_figures_keys_nulls_and_cache_clearing():
    # The model never answers: both sides find nothing, ratios are null and the counts say why.
    gen = ClearableFake(default="no answer here")
    config = MCTSConfig(max_depth=3, max_rollouts=2, early_stop_rollouts=2, seed=0, expand_truncated=True)
    figs = bench.yield_figures(gen, ToyMathTask(name="gsm8k"), PROBLEMS, config, budget_factor=1.0)
    assert figs["tokens_per_correct_mcts"] is None and figs["tokens_per_correct_cot"] is None
    assert figs["mcts_correct"] == 0 and figs["cot_correct"] == 0
    assert figs["mcts_generated_tokens"] > 0 and figs["cot_generated_tokens"] > 0
    assert figs["cot_rounds"] >= 1 and figs["mcts_rollouts"] == 4
    assert gen.clears == 3  # before MCTS, between MCTS and CoT, after CoT
    assert 0 <= figs["verify_seconds"] <= figs["mcts_yield_seconds"] + figs["cot_seconds"] + 0.1

    # A model that always answers 4 (right on problem 0 only): suffixed keys and finite ratios.
    gen = ClearableFake({"answer": "4}"}, respond=None, default="\\boxed{4}")
    figs = bench.yield_figures(gen, ToyMathTask(), PROBLEMS, config, budget_factor=4.0)
    assert set(figs) == {
        f"{k}_toy"
        for k in (
            "tokens_per_correct_mcts",
            "tokens_per_correct_cot",
            "mcts_correct",
            "mcts_generated_tokens",
            "mcts_rollouts",
            "mcts_problems_solved",
            "cot_correct",
            "cot_generated_tokens",
            "cot_samples",
            "cot_rounds",
            "cot_problems_solved",
            "mcts_yield_seconds",
            "cot_seconds",
            "verify_seconds",
        )
    }
    assert figs["mcts_problems_solved_toy"] == 1 and figs["cot_problems_solved_toy"] == 1
    assert figs["tokens_per_correct_mcts_toy"] == round(
        figs["mcts_generated_tokens_toy"] / figs["mcts_correct_toy"], 1
    )
    assert figs["tokens_per_correct_cot_toy"] == round(
        figs["cot_generated_tokens_toy"] / figs["cot_correct_toy"], 1
    )
    assert figs["cot_correct_toy"] >= figs["mcts_correct_toy"]  # CoT sampled until it matched MCTS
