"""Helpers of benchmarks/reflection.py (reflections placed vs expanded), driven by the scripted fake generator."""

from __future__ import annotations

import itertools
import json

from benchmarks import reflection as bench
from tests.fixtures.fake_generator import FakeGenerator, ToyMathTask, toy_problem
from treecot.search.mcts import reflection_stats, run_search

PROBLEMS = [toy_problem("What is 2 + 2?", "4"), toy_problem("What is 3 + 3?", "6")]
FIGURES = (
    "reflections_placed",
    "reflections_expanded",
    "reflections_expanded_share",
    "correct_paths",
    "correct_via_reflection",
    "correct_via_reflection_share",
    "rollouts",
    "problems_solved",
    "generated_tokens",
    "seconds",
)


class CachingFake(FakeGenerator):
    """Also has `clear_cache` and `release` (counted), like the transformers backend."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.clears = 0
        self.released: list[str] = []

    def clear_cache(self) -> int:
        self.clears += 1
        return 0

    def release(self, prefix: str) -> int:
        self.released.append(prefix)
        return 0


def wrong_then_right():
    """Answers in generation order: three wrong ones, then right ones (4 for every problem: wrong on 3 + 3)."""
    counter = itertools.count()
    return lambda request, i: "5}" if next(counter) < 3 else "4}"


def test_search_config_is_the_demos():
    cfg = bench.search_config(True)
    assert (cfg.max_rollouts, cfg.early_stop_rollouts, cfg.early_stop_correct, cfg.stop_at_correct) == (
        16,
        8,
        1,
        2,
    )
    assert (cfg.max_depth, cfg.max_node_tokens, cfg.expand_truncated) == (6, 40, True)
    assert cfg.reflection_first and cfg.stop_at_any_tag and cfg.seed == 0
    off = bench.search_config(False, stop_at_any_tag=False, seed=3)
    assert not off.reflection_first and not off.stop_at_any_tag and off.seed == 3


def test_setting_figures_from_trees_and_dicts():
    gen = FakeGenerator({"answer": wrong_then_right()}, default="step")
    trees = run_search(PROBLEMS, ToyMathTask(), bench.PATTERNS, gen, bench.search_config(True))
    figs = bench.setting_figures(trees, "toy_after", seconds=1.234)
    assert set(figs) == {f"toy_after_{k}" for k in FIGURES}
    assert figs["toy_after_seconds"] == 1.2
    total = {k: sum(reflection_stats(t)[k] for t in trees) for k in ("reflections", "reflections_expanded")}
    assert figs["toy_after_reflections_placed"] == total["reflections"] > 0
    assert figs["toy_after_reflections_expanded"] == total["reflections_expanded"]
    assert figs["toy_after_rollouts"] == sum(t.stats["rollouts"] for t in trees)
    assert figs["toy_after_generated_tokens"] == sum(t.stats["generated_tokens"] for t in trees) > 0
    assert figs["toy_after_problems_solved"] == 1  # 4 is right for 2 + 2 only
    # The same figures from the trees' JSON (as read back from shards), without seconds.
    again = bench.setting_figures([t.to_dict() for t in trees], "toy_after")
    assert again == {k: v for k, v in figs.items() if k != "toy_after_seconds"}
    empty = bench.setting_figures([], "x")
    assert empty["x_reflections_expanded_share"] is None and empty["x_correct_via_reflection_share"] is None


def test_compare_runs_both_settings_and_reflection_first_expands_more(tmp_path):
    gen = CachingFake({"answer": "5}"}, default="step")  # never right: every rollout may backtrack
    lines: list[str] = []
    figs = bench.compare(gen, ToyMathTask(), PROBLEMS, max_in_flight=1, log=lines.append, save_trees=tmp_path)
    assert set(figs) == {f"toy_{s}_{k}" for s, _ in bench.SETTINGS for k in (*FIGURES, "verify_seconds")}
    assert len(lines) == len(figs)
    before, after = (
        figs["toy_before_reflections_expanded_share"],
        figs["toy_after_reflections_expanded_share"],
    )
    assert figs["toy_before_reflections_placed"] > 0 and figs["toy_after_reflections_placed"] > 0
    assert after > before
    # Only a reflection placed by a problem's last rollout can stay unexpanded.
    assert figs["toy_after_reflections_expanded"] >= figs["toy_after_reflections_placed"] - len(PROBLEMS)
    assert figs["toy_after_correct_paths"] == 0 and figs["toy_after_correct_via_reflection_share"] is None
    assert figs["toy_before_rollouts"] == figs["toy_after_rollouts"] == 16 * len(PROBLEMS)
    # One cache clear per setting; every finished problem's prompt released.
    assert gen.clears == 2 and len(gen.released) == 2 * len(PROBLEMS)
    assert all(p.endswith("<|assistant|>\n") for p in gen.released)
    # The trees of each setting, as written with --save-trees, give the same figures.
    for setting, _ in bench.SETTINGS:
        lines_ = (tmp_path / f"toy_{setting}.jsonl").read_text().splitlines()
        trees = [json.loads(line) for line in lines_]
        assert len(trees) == len(PROBLEMS)
        again = bench.setting_figures(trees, f"toy_{setting}")
        assert again.items() <= figs.items()
    assert 0 <= figs["toy_after_verify_seconds"] <= figs["toy_after_seconds"] + 0.1
