"""Throughput of `treecot eval` against plain batched `generate` on the same model and prompts.

    python -m benchmarks.eval             # ~3-4 minutes on 2 cores; writes benchmarks/results/eval.json

Both sides decode the same 16 GSM8K test prompts (each task's own system + user messages through the
model's chat template) greedily with SmolLM2-135M-Instruct (float32, loaded once), up to 128 new tokens,
16 prompts per `generate` call, on CPU.

Figures:

- `throughput_ratio`: samples/s of `run_eval` (everything it does once the model is loaded and lighteval
  imported: materializing the problems, lighteval's task loading, generation, treecot's verifier and
  diagnostics on every response, aggregation with bootstrap stderr, writing results JSON, details
  parquet, summary and table) ÷ samples/s of plain `model.generate` (tokenize, generate, decode). Goal
  ≥ 0.8. The two sides run in `--rounds` interleaved rounds and the best wall time of each counts, so
  that other processes on a shared machine do not bias one side.
- `cpu_throughput_ratio`: the same ratio from this process's CPU time (less sensitive to other load).
- `eval_samples_per_s`, `generate_samples_per_s`, and `eval_seconds`, `generate_seconds`.
- `generate_tokens_per_s`: generated tokens (up to EOS) per second of the plain side.
- `lighteval_import_seconds`: one-time cost of importing lighteval (paid once per `treecot eval`).
- `bf16_speedup`: plain `generate` time in float32 ÷ in bfloat16 on the same prompts with 32 new tokens
  (> 1: bfloat16 is faster). treecot eval defaults to float32; `--dtype bfloat16` switches.
- `same_outputs`: whether `treecot eval` produced exactly the texts plain greedy `generate` did (both
  sides did the same work).
- `load_average_before` / `_after`: the machine's 1-minute load average (2 cores: above 2 means the
  figures were measured on a busy machine).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_results

COMMAND = "python -m benchmarks.eval"
MODEL = "smollm2-135m-instruct"
N_PROMPTS = 16
MAX_NEW_TOKENS = 128
BF16_TOKENS = 32


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plain_generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[float, list[str], int]:
    """Left-padded batched greedy `generate` of all prompts: (seconds, texts, generated tokens)."""
    import torch

    start = time.perf_counter()
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    generated = out[:, batch["input_ids"].shape[1] :]
    texts = tokenizer.batch_decode(generated, skip_special_tokens=True)
    seconds = time.perf_counter() - start
    eos = tokenizer.eos_token_id
    tokens = sum(int((row == eos).nonzero()[0]) if (row == eos).any() else len(row) for row in generated)
    return seconds, texts, tokens


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=N_PROMPTS, help="GSM8K prompts (default 16)")
    parser.add_argument("--max-new-tokens", type=int, default=MAX_NEW_TOKENS)
    parser.add_argument(
        "--rounds", type=int, default=2, help="interleaved rounds; the best of each side counts"
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures without writing results")
    args = parser.parse_args(argv)
    given = sys.argv[1:] if argv is None else argv
    command = " ".join([COMMAND, *[a for a in given if a != "--no-write"]])

    import torch

    from treecot.models import load_model
    from treecot.tasks import get_task

    model, tokenizer = load_model(MODEL, dtype="float32")
    task = get_task("gsm8k")
    problems = list(task.load("test", limit=args.n))
    prompts = [
        tokenizer.apply_chat_template(task.prompt(p), tokenize=False, add_generation_prompt=True)
        for p in problems
    ]

    load_before = os.getloadavg()[0]
    plain_generate(model, tokenizer, prompts[:2], 4)  # warm-up (allocations, kernels)
    start = time.perf_counter()
    import lighteval.pipeline  # noqa: F401  (one-time import, timed separately)

    import_seconds = time.perf_counter() - start
    from treecot.evaluation.runner import run_eval

    # Interleaved rounds, best of each side: other processes on a shared machine slow both sides alike.
    gen_walls, gen_cpus, eval_walls, eval_cpus = [], [], [], []
    for round_ in range(args.rounds):
        cpu = time.process_time()
        gen_seconds, gen_texts, gen_tokens = plain_generate(model, tokenizer, prompts, args.max_new_tokens)
        gen_walls.append(gen_seconds)
        gen_cpus.append(time.process_time() - cpu)
        log(f"round {round_}: plain generate {gen_seconds:.1f} s ({gen_tokens} tokens)")
        with tempfile.TemporaryDirectory(prefix="treecot-bench-eval-") as out:
            cpu, start = time.process_time(), time.perf_counter()
            run = run_eval(
                MODEL,
                "gsm8k",
                limit=args.n,
                max_new_tokens=args.max_new_tokens,
                batch_size=args.n,
                output_dir=out,
                loaded=(model, tokenizer),
                progress=False,
            )
            eval_walls.append(time.perf_counter() - start)
            eval_cpus.append(time.process_time() - cpu)
            log(f"round {round_}: treecot eval {eval_walls[-1]:.1f} s")
            import pandas as pd

            (details,) = sorted((Path(out) / "details").rglob("*.parquet"))
            frame = pd.read_parquet(details)
            eval_texts = {
                json.loads(doc["specific"]["problem"])["id"]: response["text"][0]
                for doc, response in zip(frame["doc"], frame["model_response"])
            }
            accuracy = run.summary["tasks"]["gsm8k"]["accuracy"]
    same = all(eval_texts.get(p["id"]) == t for p, t in zip(problems, gen_texts))

    # bfloat16 vs float32 on shorter generations (bf16 can be several times slower on CPUs without AMX).
    fp32_short, _, _ = plain_generate(model, tokenizer, prompts, BF16_TOKENS)
    bf16 = model.to(torch.bfloat16)
    plain_generate(bf16, tokenizer, prompts[:2], 4)
    bf16_short, _, _ = plain_generate(bf16, tokenizer, prompts, BF16_TOKENS)
    log(f"{BF16_TOKENS} new tokens: float32 {fp32_short:.1f} s, bfloat16 {bf16_short:.1f} s")

    gen_seconds, eval_seconds = min(gen_walls), min(eval_walls)
    figures = {
        "throughput_ratio": round(gen_seconds / eval_seconds, 3),
        "cpu_throughput_ratio": round(min(gen_cpus) / min(eval_cpus), 3),
        "eval_samples_per_s": round(args.n / eval_seconds, 3),
        "generate_samples_per_s": round(args.n / gen_seconds, 3),
        "eval_seconds": round(eval_seconds, 2),
        "generate_seconds": round(gen_seconds, 2),
        "generate_tokens_per_s": round(gen_tokens / gen_seconds, 1),
        "lighteval_import_seconds": round(import_seconds, 2),
        "bf16_speedup": round(fp32_short / bf16_short, 3),
        "same_outputs": same,
        "prompts": args.n,
        "max_new_tokens": args.max_new_tokens,
        "rounds": args.rounds,
        "gsm8k_accuracy": accuracy,
        "load_average_before": round(load_before, 2),
        "load_average_after": round(os.getloadavg()[0], 2),
        "model": MODEL,
    }
    print(json.dumps(figures, indent=2))
    if not args.no_write:
        path = write_results("eval", figures, command)
        print(f"wrote {path}")
    return figures


if __name__ == "__main__":
    main()
