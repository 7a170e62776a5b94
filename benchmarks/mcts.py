"""Cost and yield of MCTS tree building with the in-process transformers backend.

    python -m benchmarks.mcts               # ~15-25 minutes on an idle 2-core box; writes results/mcts.json
    python -m benchmarks.mcts --no-yield    # phase 1 only (prefill and throughput), ~2 minutes
    python -m benchmarks.mcts --problems 2 --yield-rollouts 4 --no-write   # smoke run, ~1.5 minutes

(The full-run time is extrapolated from the smoke run, which took 93 s idle and 16 minutes while other
jobs loaded the machine: the figures and the time move with the load.)

SmolLM2-135M-Instruct (bfloat16) throughout, one `TransformersGenerator` whose prefix cache is cleared
between phases.

**Phase 1: prefill and throughput.** The model searches `--problems` (8) GSM8K test problems at once
with `run_search` (one `generate()` call per step serves the expansions of every problem in flight).
The patterns are the math patterns with `thinking` tried first, so the first rollout of every problem
runs a chain sub_task → thinking × 6 → answer (depth 8 ≥ 6): the prompt grows at every expansion,
which is where re-encoding the path hurts. Nodes are capped at `--node-tokens` (32) tokens; as the 135M
model rarely writes closing tags, the search runs with `MCTSConfig(expand_truncated=True)` (a node cut
at the cap expands like a closed one; otherwise the engine sends a truncated node straight to an answer
and the trees stay shallow).

- `prefill_reduction`: prompt tokens a naive backend would process — every request's whole prompt
  re-encoded at every expansion, once per request (not per sample) — ÷ prompt tokens the transformers
  backend actually ran through the model. Goal ≥ 5.
- `throughput_ratio`: MCTS generated tokens per second of the whole `run_search` wall time (prefill,
  decode, verification, tree bookkeeping) ÷ tokens per second of plain batched `model.generate` on the
  same model at the same batch size (16 rows of the same problems' chat prompts, sampling at the same
  temperature/top-p, `min_new_tokens = max_new_tokens` so no row stops early: generate's best case).
  Goal ≥ 0.7.
- `mcts_tokens_per_s`, `generate_tokens_per_s`, `prefill_tokens`, `naive_prefill_tokens`,
  `cached_tokens`, `generated_tokens`, `llm_calls`, `requests`, `max_depth_reached`, `mcts_seconds`,
  `prefill_seconds`, `decode_seconds`, `cache_tokens_end`, `cache_mib_end`: this phase's raw figures.

**Phase 2: tokens per correct path** (skip with `--no-yield`). For each task of `--yield-tasks`
(`gsm8k`, the issue's setting, and `arithmetic`), on its first `--problems` test problems:

1. MCTS with the math patterns as shipped (`recipes/patterns/math.yaml`), `expand_truncated=True`,
   nodes of at most 64 tokens, depth 8, `--yield-rollouts` (16) rollouts per problem, stopping a
   problem early at 4 correct paths. It counts the tokens generated (every node of every expansion,
   visited or not) and the correct paths (distinct answer nodes the verifier accepts: every answer node
   is verified when it is created).
2. Plain chain-of-thought sampling with the same generator: rounds of 4 samples per problem of the
   task's chat prompt (same temperature / top-p, at most 256 tokens, stopped by EOS), each judged by
   `task.verify`, until the correct answers reach the MCTS count or the tokens generated reach
   `--cot-budget` (4) × the MCTS tokens. At least one round always runs, so the CoT side is measured
   even when MCTS found nothing; rounds are whole, so the last one may overshoot either limit.

- `tokens_per_correct_mcts`, `tokens_per_correct_cot`: GSM8K; generated tokens ÷ correct answers
  (null when that side found no correct answer: read the counts below).
- `tokens_per_correct_mcts_arithmetic`, `tokens_per_correct_cot_arithmetic`: the same on `arithmetic`.
- Counts, with the same `_arithmetic` suffix for that task: `mcts_correct`, `mcts_generated_tokens`,
  `mcts_rollouts`, `mcts_problems_solved` (problems with ≥ 1 correct path), `cot_correct`,
  `cot_generated_tokens`, `cot_samples`, `cot_rounds`, `cot_problems_solved`, `mcts_yield_seconds`,
  `cot_seconds` (wall time of each side, verification included), `verify_seconds` (`task.verify`
  time of both sides); and the settings `yield_rollouts`, `yield_node_tokens`, `yield_max_depth`,
  `yield_stop_at_correct`, `cot_samples_per_round`, `cot_max_tokens`, `cot_budget_factor`.

Honest note: the 135M model is far too weak for GSM8K (0 correct in 128 sampled CoT attempts on the 16
easiest GSM8K train problems, and no correct path in 16 rollouts on any of them), so the GSM8K figures
are usually null and the arithmetic variant (one- and two-step word problems: ~6-11% of sampled
attempts solved, correct MCTS paths for ~2 of 16 problems in 16 rollouts) is where the comparison means
something; with 8 problems its counts are small, so read the ratio as an order of magnitude. The two sides are not the same prompt either: MCTS
answers through a forced `The answer is: \\boxed{` prefill, CoT must write the format itself.
"""

from __future__ import annotations

import argparse
import time

from benchmarks._common import TimedTask, write_results

COMMAND = "python -m benchmarks.mcts"
MODEL = "smollm2-135m-instruct"

#: The math patterns with `thinking` first among a thinking node's children: deep first rollouts.
DEEP_MATH_PATTERNS = {
    "name": "bench-deep-math",
    "description": "math patterns, thinking tried first (deep chains) for the MCTS benchmark",
    "types": {"answer": {"prefills": ["The answer is: \\boxed{"], "max_tokens": 16}},
    "root": {"sub_task": 2},
    "transfer": {
        "sub_task": {"thinking": 2},
        "thinking": {"thinking": 2, "double_check": 1, "answer": 1},
        "double_check": {"answer": 1, "thinking": 1},
        "reflection": {"thinking_from_scratch": 2},
        "thinking_from_scratch": {"thinking": 2},
    },
    "backtrack_to": "double_check",
    "reflection_text": "Wait! Something is wrong, let's think again.",
}

#: Phase 2 settings (the issue's "tokens per correct path vs plain CoT sampling").
YIELD_TASKS = ("gsm8k", "arithmetic")
YIELD_NODE_TOKENS = 64
YIELD_MAX_DEPTH = 8
YIELD_STOP_AT_CORRECT = 4
COT_SAMPLES = 4
COT_MAX_TOKENS = 256


class _Counting:
    """Wraps a generator to count requests, generated tokens and the naive prefill (every prompt
    re-encoded once per request)."""

    def __init__(self, gen) -> None:
        self.gen = gen
        self.model_id = gen.model_id
        self.requests = 0
        self.naive_prefill = 0
        self.generated = 0

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return self.gen.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def generate(self, requests):
        results = self.gen.generate(requests)
        self.requests += len(requests)
        self.naive_prefill += sum(r.prompt_tokens + r.cached_tokens for r in results)
        self.generated += sum(c.n_tokens for r in results for c in r.completions)
        return results

    def release(self, prefix):
        return self.gen.release(prefix)


def _depth(tree) -> int:
    best = 0
    for node in tree.nodes:
        d, cur = 0, node
        while cur.parent is not None:
            d, cur = d + 1, tree.nodes[cur.parent]
        best = max(best, d)
    return best


def plain_generate_tokens_per_s(model, tokenizer, prompts, new_tokens, temperature, top_p, reps=2) -> float:
    import torch

    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", add_special_tokens=False, padding=True)
    best = 0.0
    with torch.inference_mode():
        for _ in range(reps):
            t = time.perf_counter()
            model.generate(
                **enc,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=True,
                temperature=temperature,
                top_p=top_p,
                pad_token_id=tokenizer.pad_token_id,
            )
            best = max(best, len(prompts) * new_tokens / (time.perf_counter() - t))
    return best


# -- phase 2: tokens per correct path ------------------------------------------------------------------


def tokens_per_correct(tokens: int, correct: int) -> float | None:
    """Generated tokens per correct answer, rounded to 0.1; None when nothing was correct."""
    if tokens < 0 or correct < 0:
        raise ValueError(f"tokens and correct must be >= 0, got tokens={tokens}, correct={correct}")
    return round(tokens / correct, 1) if correct else None


def figure_suffix(task_name: str) -> str:
    """Key suffix of a task's phase-2 figures: none for GSM8K (the issue's setting), else `_<task>`."""
    return "" if task_name == "gsm8k" else f"_{task_name}"


def mcts_yield(gen, task, problems, config, patterns="math") -> dict:
    """Search `problems` with `run_search` and count what it cost and found.

    Returns `generated_tokens` (every completion the generator returned, counted by a wrapper),
    `correct` (distinct correct answer nodes over all trees), `rollouts`, `problems_solved` (trees with
    at least one correct path) and `seconds`.
    """
    from treecot.search.mcts import run_search

    counting = _Counting(gen)
    t0 = time.perf_counter()
    trees = run_search(problems, task, patterns, counting, config)
    return {
        "generated_tokens": counting.generated,
        "correct": sum(int(t.stats["correct_paths"]) for t in trees),
        "rollouts": sum(int(t.stats["rollouts"]) for t in trees),
        "problems_solved": sum(1 for t in trees if t.stats["correct_paths"] > 0),
        "seconds": time.perf_counter() - t0,
    }


def cot_until(
    gen,
    task,
    problems,
    target_correct: int,
    token_budget: int,
    *,
    n: int = COT_SAMPLES,
    max_tokens: int = COT_MAX_TOKENS,
    temperature: float = 0.7,
    top_p: float = 0.9,
    seed: int = 0,
    max_rounds: int = 1000,
) -> dict:
    """Plain CoT sampling in rounds until `target_correct` correct answers or `token_budget` tokens.

    A round is one `generate()` call with one request of `n` samples per problem (the task's chat
    prompt, no stop string: EOS or `max_tokens` ends a sample); every sample is judged by `task.verify`.
    The first round always runs; another runs while the correct answers are below `target_correct`, the
    generated tokens below `token_budget` and the rounds below `max_rounds`. Request seeds differ per
    round and problem, so rounds draw new samples.

    Returns `generated_tokens`, `correct`, `samples`, `rounds`, `problems_solved` and `seconds`.
    """
    from treecot.backends.base import GenerationRequest

    if not problems:
        raise ValueError("cot_until needs at least one problem")
    if n < 1 or max_tokens < 1 or max_rounds < 1:
        raise ValueError(f"n, max_tokens and max_rounds must be >= 1, got {n}, {max_tokens}, {max_rounds}")
    prompts = [gen.apply_chat_template(task.prompt(dict(p)), add_generation_prompt=True) for p in problems]
    tokens = correct = samples = rounds = 0
    solved: set[int] = set()
    t0 = time.perf_counter()
    while True:
        requests = [
            GenerationRequest(
                prompt=prompt,
                n=n,
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed + rounds * len(problems) + i,
            )
            for i, prompt in enumerate(prompts)
        ]
        results = gen.generate(requests)
        rounds += 1
        for i, (problem, res) in enumerate(zip(problems, results)):
            for comp in res.completions:
                tokens += int(comp.n_tokens)
                samples += 1
                if task.verify(comp.text, dict(problem)).correct:
                    correct += 1
                    solved.add(i)
        if correct >= target_correct or tokens >= token_budget or rounds >= max_rounds:
            break
    return {
        "generated_tokens": tokens,
        "correct": correct,
        "samples": samples,
        "rounds": rounds,
        "problems_solved": len(solved),
        "seconds": time.perf_counter() - t0,
    }


def yield_figures(gen, task, problems, config, budget_factor: float, patterns="math") -> dict:
    """MCTS then plain CoT on the same problems; the phase-2 figures of one task (keys suffixed)."""
    sfx = figure_suffix(task.name)
    task = TimedTask(task)
    clear = getattr(gen, "clear_cache", None)
    if clear is not None:
        clear()
    mcts = mcts_yield(gen, task, problems, config, patterns)
    if clear is not None:
        clear()
    cot = cot_until(
        gen,
        task,
        problems,
        target_correct=mcts["correct"],
        token_budget=int(budget_factor * mcts["generated_tokens"]),
        temperature=config.temperature,
        top_p=config.top_p,
        seed=config.seed,
    )
    if clear is not None:
        clear()
    return {
        f"tokens_per_correct_mcts{sfx}": tokens_per_correct(mcts["generated_tokens"], mcts["correct"]),
        f"tokens_per_correct_cot{sfx}": tokens_per_correct(cot["generated_tokens"], cot["correct"]),
        f"mcts_correct{sfx}": mcts["correct"],
        f"mcts_generated_tokens{sfx}": mcts["generated_tokens"],
        f"mcts_rollouts{sfx}": mcts["rollouts"],
        f"mcts_problems_solved{sfx}": mcts["problems_solved"],
        f"cot_correct{sfx}": cot["correct"],
        f"cot_generated_tokens{sfx}": cot["generated_tokens"],
        f"cot_samples{sfx}": cot["samples"],
        f"cot_rounds{sfx}": cot["rounds"],
        f"cot_problems_solved{sfx}": cot["problems_solved"],
        f"mcts_yield_seconds{sfx}": round(mcts["seconds"], 1),
        f"cot_seconds{sfx}": round(cot["seconds"], 1),
        f"verify_seconds{sfx}": round(task.verify_seconds, 1),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=8, help="problems per task, in both phases")
    ap.add_argument("--node-tokens", type=int, default=32)
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-yield", action="store_true", help="skip phase 2 (tokens per correct path)")
    ap.add_argument("--yield-rollouts", type=int, default=16, help="phase 2: MCTS rollouts per problem")
    ap.add_argument(
        "--cot-budget", type=float, default=4.0, help="phase 2: CoT token budget, a multiple of MCTS tokens"
    )
    ap.add_argument("--yield-tasks", nargs="+", choices=YIELD_TASKS, default=list(YIELD_TASKS))
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    if args.yield_rollouts < 1 or args.cot_budget < 0:
        ap.error("--yield-rollouts must be >= 1 and --cot-budget >= 0")

    import torch

    from treecot.backends.transformers_backend import TransformersGenerator
    from treecot.search.mcts import MCTSConfig, run_search
    from treecot.tasks import get_task
    from treecot.tasks.sources import load_source

    torch.set_num_threads(2)
    gen = TransformersGenerator.from_pretrained(MODEL, dtype="bfloat16", max_batch_size=args.batch_size)
    counting = _Counting(gen)
    task = get_task("gsm8k")
    problems = list(load_source("gsm8k", "test", limit=args.problems))
    config = MCTSConfig(
        max_depth=args.max_depth,
        max_node_tokens=args.node_tokens,
        max_rollouts=args.rollouts,
        early_stop_rollouts=args.rollouts,
        seed=0,
        expand_truncated=True,
    )
    gen.generate([])  # nothing: imports and first-call costs out of the timing
    t0 = time.perf_counter()
    trees = run_search(problems, task, DEEP_MATH_PATTERNS, counting, config)
    mcts_seconds = time.perf_counter() - t0
    st = gen.stats
    mcts_tps = st["generated_tokens"] / mcts_seconds

    prompts = [gen.apply_chat_template(task.prompt(dict(p))) for p in problems]
    prompts = (prompts * (args.batch_size // len(prompts) + 1))[: args.batch_size]
    gen_tps = plain_generate_tokens_per_s(
        gen.model, gen.tokenizer, prompts, args.node_tokens, config.temperature, config.top_p
    )
    figures = {
        "prefill_reduction": round(counting.naive_prefill / max(1, st["prompt_tokens"]), 2),
        "throughput_ratio": round(mcts_tps / gen_tps, 3),
        "mcts_tokens_per_s": round(mcts_tps, 1),
        "generate_tokens_per_s": round(gen_tps, 1),
        "prefill_tokens": st["prompt_tokens"],
        "naive_prefill_tokens": counting.naive_prefill,
        "cached_tokens": st["cached_tokens"],
        "generated_tokens": st["generated_tokens"],
        "llm_calls": st["calls"],
        "requests": counting.requests,
        "max_depth_reached": max(_depth(t) for t in trees),
        "mcts_seconds": round(mcts_seconds, 1),
        "prefill_seconds": round(st["prefill_seconds"], 1),
        "decode_seconds": round(st["decode_seconds"], 1),
        "cache_tokens_end": st["cache_tokens"],
        "cache_mib_end": round(st["cache_bytes"] / 2**20, 1),
        "problems": len(problems),
        "batch_size": args.batch_size,
        "node_tokens": args.node_tokens,
    }
    for k, v in figures.items():
        print(f"{k:>36}: {v}", flush=True)

    if not args.no_yield:
        yield_config = MCTSConfig(
            max_depth=YIELD_MAX_DEPTH,
            max_node_tokens=YIELD_NODE_TOKENS,
            max_rollouts=args.yield_rollouts,
            early_stop_rollouts=args.yield_rollouts,
            stop_at_correct=YIELD_STOP_AT_CORRECT,
            seed=0,
            expand_truncated=True,
        )
        settings = {
            "yield_rollouts": args.yield_rollouts,
            "yield_node_tokens": YIELD_NODE_TOKENS,
            "yield_max_depth": YIELD_MAX_DEPTH,
            "yield_stop_at_correct": YIELD_STOP_AT_CORRECT,
            "cot_samples_per_round": COT_SAMPLES,
            "cot_max_tokens": COT_MAX_TOKENS,
            "cot_budget_factor": args.cot_budget,
        }
        for name in args.yield_tasks:
            ytask = get_task(name)
            yproblems = list(ytask.load("test", limit=args.problems))
            part = yield_figures(gen, ytask, yproblems, yield_config, args.cot_budget)
            for k, v in part.items():
                print(f"{k:>36}: {v}", flush=True)
            figures.update(part)
        figures.update(settings)
    if not args.no_write:
        print("wrote", write_results("mcts", figures, command=COMMAND))
    return figures


if __name__ == "__main__":
    main()
