"""Does backtracking happen? Reflections placed and expanded, without and with `reflection_first`.

    python -m benchmarks.reflection              # 24 arithmetic + 6 GSM8K train problems, twice each
    python -m benchmarks.reflection --arithmetic 4 --gsm8k 1 --no-write   # smoke run

After a wrong answer the search places a `reflection` under the nearest double check (METHOD §1). In the
reference engine's order the reflection joins its parent's other children and waits for "first unvisited
child, else UCT" to reach it: in the demo's trees 90 reflections were placed and none was expanded.
`MCTSConfig.reflection_first` (METHOD §6) sends the rollout after a wrong answer straight to the
reflection it placed. This benchmark runs the demo's search (`recipes/demo.yaml`: patterns `math-small`,
16 rollouts, early stop after 8 with 1 correct, stop at 2 correct, depth 6, 40 tokens per node,
`expand_truncated`) with the embedded SmolLM2-135M-Instruct (models A and B, bfloat16, transformers
backend, as the demo builds it) on the first `--arithmetic` (24) `arithmetic` and `--gsm8k` (6) `gsm8k`
train problems, once per setting:

- `before`: `reflection_first=False` (the reference engine's order, treecot's behaviour until now);
- `after`: `reflection_first=True` (the default).

Everything else is the same (seed 0, `stop_at_any_tag` as `--no-stop-at-any-tag` says, default on), so
the first wrong answer of every problem happens in both runs; after it the trees differ.

Figures, per task (`arithmetic`, `gsm8k`) and setting (`before`, `after`), named `<task>_<setting>_<x>`:

- `reflections_expanded_share`: placed reflections that were expanded (their continuation was
  generated) ÷ reflections placed; null when none was placed. With `after`, only a reflection placed by
  a problem's last rollout (the search stops before it can be explored) stays unexpanded.
- `correct_via_reflection_share`: correct answer nodes with a reflection among their ancestors ÷ correct
  answer nodes; null when nothing was correct.
- counts: `reflections_placed`, `reflections_expanded`, `correct_paths`, `correct_via_reflection`,
  `rollouts`, `problems_solved` (trees with ≥ 1 correct path), `generated_tokens`, `seconds` (wall
  time of the search, verification included) and `verify_seconds` (the part spent in `task.verify`:
  an odd answer can make the math verifier run into its 5 s timeout). Times move with the machine's
  load; the settings are not a speed comparison.
- settings: `arithmetic_problems`, `gsm8k_problems`, `patterns`, `stop_at_any_tag`, `seed`, and the
  search settings `max_rollouts`, `early_stop_rollouts`, `early_stop_correct`, `stop_at_correct`,
  `max_depth`, `max_node_tokens`, `expand_truncated`.

The counts are small (the 135M model rarely answers GSM8K correctly): read the shares with their counts.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from benchmarks._common import TimedTask, write_results

COMMAND = "python -m benchmarks.reflection"
MODEL = "smollm2-135m-instruct"
PATTERNS = "math-small"
TASKS = ("arithmetic", "gsm8k")
#: The demo's search settings (`recipes/demo.yaml`, the arithmetic and GSM8K slices).
DEMO_SEARCH: dict[str, Any] = {
    "max_rollouts": 16,
    "early_stop_rollouts": 8,
    "early_stop_correct": 1,
    "stop_at_correct": 2,
    "max_depth": 6,
    "max_node_tokens": 40,
    "expand_truncated": True,
}
#: The demo's problems in flight per slice.
IN_FLIGHT = {"arithmetic": 12, "gsm8k": 3}
#: Setting name → `reflection_first`.
SETTINGS = (("before", False), ("after", True))


def search_config(reflection_first: bool, stop_at_any_tag: bool = True, seed: int = 0):
    """The demo's search settings with the given `reflection_first` / `stop_at_any_tag`."""
    from treecot.search.mcts import MCTSConfig

    return MCTSConfig(
        **DEMO_SEARCH, seed=seed, reflection_first=reflection_first, stop_at_any_tag=stop_at_any_tag
    )


def setting_figures(trees, prefix: str, seconds: float | None = None) -> dict[str, Any]:
    """The figures of one task and setting, from its trees (`Tree` objects or their JSON dicts).

    Keys are `<prefix>_<figure>`: the backtracking figures of `reflection_summary` (reflections placed
    and expanded, correct paths and those through a reflection, and the two shares), plus `rollouts`,
    `problems_solved`, `generated_tokens` and, when given, `seconds` (rounded to 0.1).
    """
    from treecot.search.mcts import reflection_summary

    trees = list(trees)

    def stats(t) -> dict:
        return t.stats if hasattr(t, "stats") else t.get("stats", {})

    summary = reflection_summary(trees)
    figures = {
        "reflections_placed": summary["reflections_placed"],
        "reflections_expanded": summary["reflections_expanded"],
        "reflections_expanded_share": summary["reflections_expanded_share"],
        "correct_paths": summary["correct_paths"],
        "correct_via_reflection": summary["correct_via_reflection"],
        "correct_via_reflection_share": summary["correct_via_reflection_share"],
        "rollouts": sum(int(stats(t).get("rollouts", 0)) for t in trees),
        "problems_solved": sum(1 for t in trees if int(stats(t).get("correct_paths", 0)) > 0),
        "generated_tokens": sum(int(stats(t).get("generated_tokens", 0)) for t in trees),
    }
    if seconds is not None:
        figures["seconds"] = round(seconds, 1)
    return {f"{prefix}_{k}": v for k, v in figures.items()}


def run_setting(gen, task, problems, config, max_in_flight: int | None = None) -> tuple[list, float]:
    """Search `problems` with `run_search` (one generator for both roles); returns (trees, seconds).

    The generator's prefix cache (if it has one) is cleared before the run, and each finished problem's
    prompts are released from it, as `treecot generate` does.
    """
    from treecot.search.mcts import render_chat_prompts, run_search

    clear = getattr(gen, "clear_cache", None)
    if callable(clear):
        clear()
    release = getattr(gen, "release", None)

    def finished(n_done: int, n_total: int, tree) -> None:
        if callable(release):  # evict the finished problem's prefix caches
            release(render_chat_prompts(task, tree.problem, {"A": gen})["A"])

    t0 = time.perf_counter()
    trees = run_search(problems, task, PATTERNS, gen, config, progress=finished, max_in_flight=max_in_flight)
    return trees, time.perf_counter() - t0


def compare(
    gen,
    task,
    problems,
    *,
    stop_at_any_tag: bool = True,
    max_in_flight: int | None = None,
    seed: int = 0,
    log=None,
    save_trees: str | Path | None = None,
) -> dict[str, Any]:
    """Both settings on the same problems; the figures `<task>_<setting>_<figure>` of `setting_figures`
    plus `verify_seconds`. `save_trees`: a directory to write each setting's trees to
    (`<task>_<setting>.jsonl`, one Tree JSON a line)."""
    out: dict[str, Any] = {}
    for setting, first in SETTINGS:
        config = search_config(first, stop_at_any_tag=stop_at_any_tag, seed=seed)
        timed = TimedTask(task)
        trees, seconds = run_setting(gen, timed, problems, config, max_in_flight=max_in_flight)
        prefix = f"{task.name}_{setting}"
        part = setting_figures(trees, prefix, seconds)
        part[f"{prefix}_verify_seconds"] = round(timed.verify_seconds, 1)
        if save_trees is not None:
            path = Path(save_trees) / f"{prefix}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("".join(t.to_json() + "\n" for t in trees), encoding="utf-8")
        if log is not None:
            for k, v in part.items():
                log(f"{k:>48}: {v}")
        out.update(part)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arithmetic", type=int, default=24, help="arithmetic train problems (0: skip)")
    ap.add_argument("--gsm8k", type=int, default=6, help="GSM8K train problems (0: skip)")
    ap.add_argument(
        "--no-stop-at-any-tag",
        dest="stop_at_any_tag",
        action="store_false",
        help="stop nodes only at their own closing tag (both settings)",
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--save-trees", metavar="DIR", help="also write the trees, one JSONL per task and setting"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    sizes = {"arithmetic": args.arithmetic, "gsm8k": args.gsm8k}
    if any(n < 0 for n in sizes.values()) or not any(sizes.values()):
        ap.error("--arithmetic and --gsm8k must be >= 0, and at least one > 0")

    import torch

    from treecot.backends.transformers_backend import TransformersGenerator
    from treecot.tasks import get_task

    torch.set_num_threads(2)
    gen = TransformersGenerator.from_pretrained(MODEL, dtype="bfloat16", max_batch_size=16, seed=args.seed)
    figures: dict[str, Any] = {}
    for name in TASKS:
        if not sizes[name]:
            continue
        task = get_task(name)
        problems = list(task.load("train", limit=sizes[name]))
        figures.update(
            compare(
                gen,
                task,
                problems,
                stop_at_any_tag=args.stop_at_any_tag,
                max_in_flight=IN_FLIGHT[name],
                seed=args.seed,
                log=lambda line: print(line, flush=True),
                save_trees=args.save_trees,
            )
        )
    figures.update(
        arithmetic_problems=args.arithmetic,
        gsm8k_problems=args.gsm8k,
        patterns=PATTERNS,
        stop_at_any_tag=args.stop_at_any_tag,
        seed=args.seed,
        **DEMO_SEARCH,
    )
    if not args.no_write:
        command = COMMAND
        extra = [f"--{k} {v}" for k, v in sizes.items() if v != {"arithmetic": 24, "gsm8k": 6}[k]]
        if not args.stop_at_any_tag:
            extra.append("--no-stop-at-any-tag")
        if args.seed:
            extra.append(f"--seed {args.seed}")
        if extra:
            command += " " + " ".join(extra)
        print("wrote", write_results("reflection", figures, command=command))
    return figures


if __name__ == "__main__":
    main()
