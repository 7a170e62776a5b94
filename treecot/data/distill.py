"""SkyThought-style long-CoT distillation (arXiv 2502.07374, METHOD §5).

Sample k responses per problem from a teacher (any `treecot.backends` Generator) with a system prompt that
asks for a long thought section then a concise solution; keep the ones the task's verifier accepts
(rejection sampling); optionally filter problems by difficulty (a difficulty field, or the pass rate of a
reference model); deduplicate. Rows use the SFT schema with `source: "distill"`, so distilled data and
MCTS data go through the same trainers and evaluation.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from treecot.backends.base import GenerationRequest, Generator
from treecot.data.balance import rank_labels
from treecot.data.extract import DATA_SCHEMA_VERSION

#: SkyThought's system prompt, lightly shortened: long thought section, then a concise solution.
DISTILL_SYSTEM_PROMPT = (
    "Your role as an assistant involves thoroughly exploring questions through a systematic long thinking "
    "process before providing the final precise and accurate solution. Structure your response in two "
    "sections: Thought and Solution. In the Thought section, reason step by step: analyse the question, "
    "summarise relevant findings, brainstorm new ideas, verify the accuracy of the current steps, refine "
    "any errors, and revisit previous steps; separate steps with a blank line. In the Solution section, "
    "based on the Thought section, present the final solution concisely, ending with the final answer in "
    "\\boxed{}. Use the format: Thought: <thought steps> Solution: <final solution>"
)


@dataclass
class DistillSampling:
    """How a distillation samples its teacher and which problems and samples it keeps.

    The one declaration of these settings: `DistillConfig` (the `distill` function's) and the recipe's
    `distill` section (`treecot.recipe.DistillSpec`) both extend it.

    Args:
        samples (`int`, *optional*, defaults to `4`):
            Teacher samples per problem.
        max_tokens (`int`, *optional*, defaults to `1024`):
            The teacher's token budget per sample.
        temperature (`float`, *optional*, defaults to `0.7`):
            The teacher's sampling temperature.
        top_p (`float`, *optional*, defaults to `0.95`):
            The teacher's nucleus sampling.
        keep (`str`, *optional*, defaults to `"all"`):
            `"all"` correct samples, or `"first"` (one per problem).
        min_difficulty (`float`, *optional*):
            Keep problems whose numeric difficulty (`meta.difficulty`, or the number in `meta.level`, e.g.
            "Level 4") is at least this.
        max_difficulty (`float`, *optional*):
            Keep problems whose numeric difficulty is at most this.
        pass_rate_range (`list[float]`, *optional*):
            `[lo, hi]`: keep problems whose reference-model pass rate lies within it (needs a reference
            generator).
        reference_samples (`int`, *optional*, defaults to `4`):
            Samples per problem for that pass rate.
    """

    samples: int = 4
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    keep: str = "all"
    min_difficulty: float | None = None
    max_difficulty: float | None = None
    pass_rate_range: list[float] | None = None
    reference_samples: int = 4

    def __post_init__(self):
        if self.samples < 1:
            raise ValueError(f"samples must be >= 1, got {self.samples}")
        if self.keep not in ("all", "first"):
            raise ValueError(f"keep must be 'all' or 'first', got {self.keep!r}")
        if self.pass_rate_range is not None:
            lo, hi = self.pass_rate_range
            if not 0 <= lo <= hi <= 1:
                raise ValueError(
                    f"pass_rate_range must satisfy 0 <= lo <= hi <= 1, got {self.pass_rate_range}"
                )


@dataclass
class DistillConfig(DistillSampling):
    """The settings of `distill`: the sampling (`DistillSampling`) plus the teacher's system prompt, the seed
    and how many problems are sampled together.

    Args:
        system_prompt (`str`, *optional*, defaults to `DISTILL_SYSTEM_PROMPT`):
            The teacher's system prompt (SkyThought's, `DISTILL_SYSTEM_PROMPT`).
        seed (`int`, *optional*, defaults to `0`):
            Seeds the teacher's sampling.
        batch_problems (`int`, *optional*, defaults to `8`):
            Problems whose samples are requested together.
    """

    system_prompt: str = DISTILL_SYSTEM_PROMPT
    seed: int = 0
    batch_problems: int = 8


@dataclass
class DistillReport:
    problems: int = 0
    filtered_by_difficulty: int = 0
    filtered_by_pass_rate: int = 0
    samples: int = 0
    accepted: int = 0
    rejected: int = 0
    no_answer: int = 0
    duplicates_dropped: int = 0
    problems_without_accepted: list[str] = field(default_factory=list)
    generated_tokens: int = 0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def difficulty_of(problem: dict) -> float | None:
    meta = problem.get("meta") or {}
    if isinstance(meta.get("difficulty"), (int, float)):
        return float(meta["difficulty"])
    m = re.search(r"\d+(\.\d+)?", str(meta.get("level", "")))
    return float(m.group(0)) if m else None


def _sample(generator: Generator, prompts: list[str], n: int, cfg: DistillConfig, salt: int) -> list[list]:
    requests = [
        GenerationRequest(
            prompt=p,
            n=n,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            seed=cfg.seed * 1_000_003 + salt + i,
        )
        for i, p in enumerate(prompts)
    ]
    return [r.completions for r in generator.generate(requests)]


def distill(
    problems: Sequence[dict],
    task,
    teacher: Generator,
    tokenizer,
    config: DistillConfig | None = None,
    reference: Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], dict[str, list[str]], DistillReport]:
    """Distil `problems` from `teacher`.

    Returns (rows, wrong_traces, report): SFT rows of accepted traces; the failed traces per problem id
    (for the `wrong_answer` perturbation); counts.
    tokenizer: the STUDENT's tokenizer (n_tokens, length ranks).
    """
    cfg = config or DistillConfig()
    if cfg.pass_rate_range is not None and reference is None:
        raise ValueError(
            "pass_rate_range needs a reference generator (the model whose pass rate is measured)"
        )
    report = DistillReport(problems=len(problems))
    kept = []
    for p in problems:
        d = difficulty_of(p)
        lo_ok = cfg.min_difficulty is None or (d is not None and d >= cfg.min_difficulty)
        hi_ok = cfg.max_difficulty is None or (d is not None and d <= cfg.max_difficulty)
        if lo_ok and hi_ok:
            kept.append(p)
        else:
            report.filtered_by_difficulty += 1

    def prompt_of(p):
        messages = [
            {"role": "system", "content": cfg.system_prompt},
            {"role": "user", "content": p["question"]},
        ]
        return messages, teacher.apply_chat_template(messages)

    rows: list[dict] = []
    wrong: dict[str, list[str]] = {}
    seen: set[str] = set()
    for start in range(0, len(kept), cfg.batch_problems):
        batch = kept[start : start + cfg.batch_problems]
        if cfg.pass_rate_range is not None:
            assert reference is not None
            ref_prompts = [reference.apply_chat_template(task.prompt(p)) for p in batch]
            ref_out = _sample(reference, ref_prompts, cfg.reference_samples, cfg, salt=start + 500_000)
            lo, hi = cfg.pass_rate_range
            keep_batch = []
            for p, comps in zip(batch, ref_out):
                rate = sum(task.verify(c.text, p).correct for c in comps) / max(1, len(comps))
                if lo <= rate <= hi:
                    keep_batch.append(p)
                else:
                    report.filtered_by_pass_rate += 1
            batch = keep_batch
        if not batch:
            continue
        prompts = [prompt_of(p) for p in batch]
        outs = _sample(teacher, [pt for _, pt in prompts], cfg.samples, cfg, salt=start)
        for p, (messages, _), comps in zip(batch, prompts, outs):
            pid = str(p.get("id", ""))
            accepted = []
            for c in comps:
                report.samples += 1
                report.generated_tokens += c.n_tokens
                v = task.verify(c.text, p)
                if v.correct:
                    accepted.append(c.text)
                else:
                    report.rejected += 1
                    report.no_answer += not v.answered
                    wrong.setdefault(pid, []).append(c.text)
            if not accepted:
                report.problems_without_accepted.append(pid)
            if cfg.keep == "first":
                accepted = accepted[:1]
            lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in accepted]
            for text, n_tok, label in zip(accepted, lengths, rank_labels(lengths)):
                key = hashlib.sha256(json.dumps([messages, text]).encode()).hexdigest()
                if key in seen:
                    report.duplicates_dropped += 1
                    continue
                seen.add(key)
                report.accepted += 1
                rows.append(
                    {
                        "schema_version": DATA_SCHEMA_VERSION,
                        "messages": [*messages, {"role": "assistant", "content": text}],
                        "problem_id": pid,
                        "task": p.get("task", ""),
                        "node_ids": [],
                        "n_tokens": n_tok,
                        "length_rank": label,
                        "source": "distill",
                    }
                )
        if progress is not None:
            progress(len(batch))
    return rows, wrong, report
