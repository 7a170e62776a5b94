"""Cost of MCTS tree building with the in-process transformers backend (prefix KV reuse, batching).

    python -m benchmarks.mcts        # ~3-5 minutes on 2 cores; writes benchmarks/results/mcts.json

SmolLM2-135M-Instruct (bfloat16) searches 8 GSM8K test problems at once with `run_search` (one
`generate()` call per step serves the expansions of every problem in flight). The patterns are the math
patterns with `thinking` tried first, so the first rollout of every problem runs a chain
sub_task → thinking × 6 → answer (depth 8 ≥ 6): the prompt grows at every expansion, which is where
re-encoding the path hurts. Nodes are capped at `--node-tokens` (32) tokens; as the 135M model rarely
writes closing tags, nodes cut at the cap are passed to the search as closed (otherwise the engine
sends a truncated node straight to an answer and the trees stay shallow).

Figures:

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
  `prefill_seconds`, `decode_seconds`, `cache_tokens_end`, `cache_mib_end`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` and `treecot` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_results  # noqa: E402

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


class _Counting:
    """Wraps a generator to count requests and the naive prefill (every prompt re-encoded once).

    With `close_truncated`, completions that hit the token cap are reported as closed ("stop"): the
    135M model rarely writes closing tags, and the engine expands a truncated node only to an answer,
    so without this the trees would stay shallow. The benchmark measures the backend's cost on deep
    paths, not the model's writing.
    """

    def __init__(self, gen, close_truncated: bool = True) -> None:
        self.gen = gen
        self.model_id = gen.model_id
        self.requests = 0
        self.naive_prefill = 0
        self.close_truncated = close_truncated

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return self.gen.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def generate(self, requests):
        results = self.gen.generate(requests)
        self.requests += len(requests)
        self.naive_prefill += sum(r.prompt_tokens + r.cached_tokens for r in results)
        if self.close_truncated:
            for r in results:
                for c in r.completions:
                    c.finish_reason = "stop"
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


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", type=int, default=8)
    ap.add_argument("--node-tokens", type=int, default=32)
    ap.add_argument("--max-depth", type=int, default=8)
    ap.add_argument("--rollouts", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)

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
        print(f"{k:>24}: {v}")
    if not args.no_write:
        print("wrote", write_results("mcts", figures, command=COMMAND))
    return figures


if __name__ == "__main__":
    main()
