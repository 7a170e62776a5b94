"""Fixtures data for the Space tests: a small treecot dataset, its tree shards and a local leaderboard.

Built with the scripted generator of `tests.test_runner` (no model) and the tiny model's tokenizer as the
student, exactly like `tests/test_build.py`.
"""

from __future__ import annotations

from pathlib import Path

RUNS = (
    # model, date, gsm8k accuracy, blocksworld accuracy, gsm8k no-answer
    ("smollm2-135m-instruct", "2025-01-01", 0.02, 0.01, 0.50),
    ("my-sft", "2025-01-02", 0.05, 0.025, 0.20),
)


def build_space_data(root: Path, problems: int = 3) -> dict[str, Path]:
    """Write `root/trees` (shards), `root/dataset` (Hub layout, tag v1) and `root/leaderboard`."""
    from tests.test_runner import fake_generators, recipe_dict
    from treecot.data.build import run_build
    from treecot.evaluation import leaderboard
    from treecot.recipe import load_recipe
    from treecot.search.runner import run_generate

    spec = recipe_dict(root / "trees", limit=problems)
    spec["build"] = {"student": "tiny", "output_dir": str(root / "dataset"), "tag": "v1"}
    recipe = load_recipe(spec)
    run_generate(recipe, generators=fake_generators(), progress=False)
    run_build(recipe)
    for model, date, gsm8k, blocks, missing in RUNS:
        summary = {
            "model": model,
            "date": date,
            "tasks": {
                "gsm8k": {"accuracy": gsm8k, "no_answer_rate": missing, "n": 20, "mean_tokens": 120.0},
                "blocksworld": {"accuracy": blocks, "no_answer_rate": 0.7, "n": 20},
            },
        }
        leaderboard.push(summary, "local/leaderboard", local_dir=root / "leaderboard")
    return {
        "root": root,
        "trees": root / "trees",
        "dataset": root / "dataset",
        "leaderboard": root / "leaderboard",
    }
