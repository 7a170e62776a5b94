"""Diagnostics of "formalistic long-time thinking" (Marco-o1 v2, arXiv 2503.01461).

The paper reports, next to accuracy, how often a model gives *no valid answer*, and attributes the
failures of long-CoT training to outputs that run into the token limit, loop on the same content,
reflect for the sake of reflecting, or think at length before a short instruction's answer.
`diagnose` measures each of these on one completion; `summarize` turns a list of diagnoses into the
rates that evaluation and leaderboards report.

    >>> from treecot.tasks.diagnostics import diagnose, summarize
    >>> d = diagnose("<thinking>3 + 4 = 7</thinking>\\n<answer>The answer is: \\\\boxed{7}</answer>")
    >>> d["no_answer"], d["repetition"], d["over_reflection"]
    (False, False, False)

Definitions (every threshold lives in `DiagnosticsConfig`):

- **Sections** (`treecot.tasks.answers.split_sections`). The *answer section* is the content of the
  last `<answer>` tag (treecot's tagged paths; an unclosed tag runs to the end of the text), else the
  text after the last `</think>` or `<|end_of_thought|>` (R1 / Sky-T1 style; a `<|begin_of_solution|>`
  wrapper is removed). An opened but never closed `<think>` means there is no answer section. Untagged
  plain text is all answer for instruction tasks (the response itself is what the checkers read); for
  other tasks the answer section starts at the line holding the last final-answer statement
  (`\\boxed{…}`, "the answer is", "final answer") and the whole text is the answer section if there is
  none. The *thinking section* is everything before the answer section.
- **No answer.** With a task and a problem, `not task.verify(completion, problem).answered`. Otherwise
  `treecot.tasks.answers.extract_answer` finds nothing in the answer section (instruction tasks: the
  answer section is empty).
- **Token limit.** `finish_reason == "length"`, or `n_tokens >= max_tokens`.
- **Tokens.** `n_tokens`, `thinking_tokens` and `answer_tokens` are counted with `tokenizer.encode`
  when a tokenizer is given. Without one they use `approx_token_count`: one token per run of word
  characters and one per run of other non-space characters, which tracks BPE counts of English
  prose within roughly ±20%. For a `Completion`, `n_tokens` is its own exact `n_tokens`.
- **Repetition.** The text is split into approximate tokens (lowercased). A *loop* is either (a) a
  unit of at most `loop_max_period` tokens repeated at least `loop_min_repeats` times back to back
  over at least `loop_min_tokens` tokens, or (b) a span of `ngram_size` tokens that occurs at least
  `ngram_min_count` times anywhere. `repetition_score` is the fraction of tokens that are redundant
  copies (everything of a loop but its first occurrence); `repetition` is true when any loop exists.
  Numbers are compared literally, so a numbered list or a step-by-step computation whose lines share
  a template is not a loop.
- **Over-reflection.** Reflection markers ("wait", "alternatively", "hmm", "let me check again",
  "let's think again", "on second thought", …) are counted without overlap; `reflections_per_1k` =
  markers per 1,000 tokens. `over_reflection` needs both at least `min_reflection_markers` markers
  and a rate of at least `reflection_threshold` per 1,000 tokens.
- **Instruction failure** (instruction tasks only, else `None`): the answer section is empty, or the
  thinking section has at least `instruction_min_thinking_tokens` tokens and at least
  `instruction_ratio` times as many tokens as the answer section.

All algorithms are linear in the text length (numpy over token ids), so a 1 MB completion takes well
under a second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from treecot.tasks import get_task
from treecot.tasks.answers import extract_answer, split_sections
from treecot.tasks.base import Task

if TYPE_CHECKING:
    from treecot.backends.base import Completion

__all__ = [
    "DEFAULT_REFLECTION_MARKERS",
    "DiagnosticsConfig",
    "approx_token_count",
    "approx_tokens",
    "diagnose",
    "find_loops",
    "summarize",
]

DEFAULT_REFLECTION_MARKERS: tuple[str, ...] = (
    r"\bwait\b",
    r"\balternatively\b",
    r"\bhmm+\b",
    r"\bon second thought\b",
    r"\bi made a mistake\b",
    r"\b(?:let me|let's|let us|i should|i need to|i'll|i will)\s+"
    r"(?:double[- ]?check|re-?check|check (?:(?:this|that|it|the \w+)\s+)?again|"
    r"verify (?:(?:this|that|it)\s+)?again|re-?verify|reconsider|re-?examine|re-?evaluate|"
    r"think (?:about (?:this|it) )?again|re-?think|go back|look (?:at (?:this|it) )?again|"
    r"re-?compute|re-?calculate)\b",
)

_TOKEN_RE = re.compile(r"\w{1,16}|[^\w\s]{1,4}")

# Odd multiplier: invertible modulo 2**64, so window hashes come from one cumulative sum.
_HASH_BASE = np.uint64(0x9E3779B97F4A7C15)
_HASH_BASE_INV = np.uint64(pow(0x9E3779B97F4A7C15, -1, 1 << 64))


@dataclass
class DiagnosticsConfig:
    """Thresholds of `diagnose`; the defaults are treecot's (the paper publishes none).

    loop_max_period:   longest unit (approximate tokens) looked for as a back-to-back repeat.
    loop_min_repeats:  a unit must occur this many times in a row to be a loop.
    loop_min_tokens:   ... and the repeated stretch must cover at least this many tokens, so that
                       "1 + 1 + 1 = 3" or a short table row is not a loop.
    ngram_size:        length of the long n-grams whose repetition anywhere in the text is a loop
                       (catches loops longer than `loop_max_period` and non-adjacent copies).
    ngram_min_count:   occurrences of one long n-gram that make a loop.
    reflection_markers: regular expressions (matched case-insensitively, without overlap).
    reflection_threshold: markers per 1,000 tokens at or above which a text over-reflects.
    min_reflection_markers: fewest markers for over-reflection (one "wait" in 50 tokens is not).
    instruction_ratio: thinking/answer token ratio at or above which an instruction's answer counts
                       as buried under thinking.
    instruction_min_thinking_tokens: shorter thinking is never an instruction failure.
    """

    loop_max_period: int = 64
    loop_min_repeats: int = 3
    loop_min_tokens: int = 32
    ngram_size: int = 50
    ngram_min_count: int = 3
    reflection_markers: Sequence[str] = field(default_factory=lambda: DEFAULT_REFLECTION_MARKERS)
    reflection_threshold: float = 15.0
    min_reflection_markers: int = 5
    instruction_ratio: float = 4.0
    instruction_min_thinking_tokens: int = 128

    def __post_init__(self) -> None:
        for name in (
            "loop_max_period",
            "loop_min_repeats",
            "loop_min_tokens",
            "ngram_size",
            "ngram_min_count",
            "min_reflection_markers",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DiagnosticsConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.loop_min_repeats < 2 or self.ngram_min_count < 2:
            raise ValueError(
                "DiagnosticsConfig.loop_min_repeats and ngram_min_count must be >= 2 "
                f"(got {self.loop_min_repeats} and {self.ngram_min_count}): one occurrence is no repeat"
            )
        if self.reflection_threshold < 0 or self.instruction_ratio < 0:
            raise ValueError("DiagnosticsConfig.reflection_threshold and instruction_ratio must be >= 0")
        if not self.reflection_markers:
            raise ValueError("DiagnosticsConfig.reflection_markers must not be empty")
        self._marker_re = re.compile("|".join(f"(?:{m})" for m in self.reflection_markers), re.IGNORECASE)


# --------------------------------------------------------------------------------------------------
# tokens


def approx_tokens(text: str) -> list[str]:
    """Split `text` into approximate tokens: runs of word characters and runs of other non-space
    characters (so "----------" is one token and "\\boxed{42}" is four)."""
    return _TOKEN_RE.findall(text)


def approx_token_count(text: str) -> int:
    """Number of `approx_tokens` in `text`, without building the list."""
    return len(_TOKEN_RE.findall(text))


def _counter(tokenizer: Any):
    if tokenizer is None:
        return approx_token_count
    if not hasattr(tokenizer, "encode"):
        raise TypeError(
            f"tokenizer must have an `encode` method (a transformers tokenizer), got {tokenizer!r}"
        )

    def count(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=False)) if text else 0

    return count


# --------------------------------------------------------------------------------------------------
# repetition


def _token_ids(tokens: list[str]) -> np.ndarray:
    vocab: dict[str, int] = {}
    return np.array([vocab.setdefault(t, len(vocab)) for t in tokens], dtype=np.int64)


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start indices and lengths of the runs of True in a boolean array."""
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2] - edges[0::2]


def _window_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """A 64-bit polynomial hash of every length-`n` window of `ids` (uint64 arithmetic wraps)."""
    m = len(ids)
    with np.errstate(over="ignore"):
        vals = (ids.astype(np.uint64) + np.uint64(1)) * np.uint64(0xBF58476D1CE4E5B9)
        inv_pows = np.cumprod(np.full(m, _HASH_BASE_INV, dtype=np.uint64))
        pows = np.cumprod(np.full(m - n + 1, _HASH_BASE, dtype=np.uint64))
        prefix = np.concatenate(([np.uint64(0)], np.cumsum(vals * inv_pows, dtype=np.uint64)))
        return (prefix[n:] - prefix[:-n]) * pows


def find_loops(tokens: list[str], config: DiagnosticsConfig | None = None) -> dict:
    """Find repetition loops in a token list (see the module docstring for the definition).

    Tokens are compared exactly: lowercase them first (as `diagnose` does) to ignore case.

    Returns `{"repetition": bool, "repetition_score": float, "repeated_text": str | None,
    "loop_unit_tokens": int | None, "loop_repeats": float | None}` describing the longest
    back-to-back loop (its unit, the unit's length in tokens, how many times it repeats), else the
    most frequent long n-gram (the n-gram, `ngram_size`, its number of occurrences).
    `repeated_text` is the unit's tokens joined by spaces, at most 200 characters.
    """
    config = config or DiagnosticsConfig()
    n = len(tokens)
    result = {
        "repetition": False,
        "repetition_score": 0.0,
        "repeated_text": None,
        "loop_unit_tokens": None,
        "loop_repeats": None,
    }
    if n == 0:
        return result
    ids = _token_ids(tokens)
    redundant = np.zeros(n + 1, dtype=np.int64)  # difference array of redundant-token marks
    best: tuple[int, int, int] | None = None  # back-to-back loop: (redundant length, start, period)
    ngram: tuple[int, int] | None = None  # long n-gram loop: (occurrences, first start)

    # (a) back-to-back repeats: ids[i] == ids[i + p] over a run of length k means that
    # ids[i : i + k + p] has period p, i.e. (k + p) / p copies of its first p tokens.
    for p in range(1, min(config.loop_max_period, n // config.loop_min_repeats) + 1):
        starts, lengths = _runs(ids[p:] == ids[:-p])
        need = max((config.loop_min_repeats - 1) * p, config.loop_min_tokens - p)
        keep = lengths >= need
        if not keep.any():
            continue
        starts, lengths = starts[keep], lengths[keep]
        np.add.at(redundant, starts + p, 1)
        np.add.at(redundant, starts + p + lengths, -1)
        i = int(np.argmax(lengths))
        if best is None or lengths[i] > best[0]:
            best = (int(lengths[i]), int(starts[i]), p)

    # (b) long n-grams occurring ngram_min_count times or more, anywhere (copies may overlap).
    size = config.ngram_size
    if n >= size + config.ngram_min_count - 1:
        hashes = _window_hashes(ids, size)
        _, first, inverse, counts = np.unique(
            hashes, return_index=True, return_inverse=True, return_counts=True
        )
        later = (counts[inverse] >= config.ngram_min_count) & (first[inverse] != np.arange(len(hashes)))
        if later.any():
            positions = np.flatnonzero(later)
            np.add.at(redundant, positions, 1)
            np.add.at(redundant, positions + size, -1)
            top = int(np.argmax(counts))
            ngram = (int(counts[top]), int(first[top]))

    if best is None and ngram is None:
        return result
    if best is not None:
        length, start, unit_tokens = best
        repeats = (length + unit_tokens) / unit_tokens
    else:
        repeats, start = ngram
        unit_tokens = size
    covered = int(np.count_nonzero(np.cumsum(redundant[:n]) > 0))
    result.update(
        repetition=True,
        repetition_score=covered / n,
        repeated_text=" ".join(tokens[start : start + unit_tokens])[:200],
        loop_unit_tokens=unit_tokens,
        loop_repeats=round(float(repeats), 2),
    )
    return result


# --------------------------------------------------------------------------------------------------
# diagnose / summarize


def _resolve_task(task: str | Task | None, problem: dict | None) -> Task | None:
    if task is None and problem is not None and problem.get("task"):
        task = problem["task"]
    if task is None:
        return None
    if isinstance(task, Task):
        return task
    if isinstance(task, str):
        return get_task(task)
    raise TypeError(f"task must be a task name, a Task instance or None, got {type(task).__name__}")


def _read_completion(
    completion: str | Completion, finish_reason: str | None
) -> tuple[str, int | None, str | None]:
    """``(text, n_tokens, finish_reason)`` of `completion`: a `Completion`'s own token count (None for a
    str), and its finish reason unless `finish_reason` overrides it."""
    if isinstance(completion, str):
        return completion, None, finish_reason
    if hasattr(completion, "text") and isinstance(completion.text, str):
        if finish_reason is None:
            finish_reason = getattr(completion, "finish_reason", None)
        return completion.text, getattr(completion, "n_tokens", None), finish_reason
    raise TypeError(f"completion must be a str or a Completion, got {type(completion).__name__}")


def _answer_fields(
    text: str, answer_section: str | None, task: Task | None, problem: dict | None, instructions: bool
) -> tuple[bool, str | None, bool | None]:
    """``(no_answer, answer, correct)`` of `text`: from `task.verify` when there is a task and a problem
    (a list such as a plan's actions joined by newlines), else the answer section of an instruction task,
    else the generic `extract_answer`; `correct` is None without a verifier."""
    if task is not None and problem is not None:
        verdict = task.verify(text, problem)
        extracted = verdict.extracted
        if isinstance(extracted, list | tuple):  # e.g. a plan's actions
            extracted = "\n".join(map(str, extracted)) if extracted else None
        answer = None if extracted is None else str(extracted)
        return not verdict.answered, answer, bool(verdict.correct)
    if instructions:
        answer = answer_section.strip() if answer_section else None
        answer = answer or None
    else:
        answer = extract_answer(text)
    return answer is None, answer, None


def _instruction_failure(thinking_tokens: int, answer_tokens: int, config: DiagnosticsConfig) -> bool:
    """An instruction task's answer section is empty, or its thinking is long and much longer than it."""
    return answer_tokens == 0 or (
        thinking_tokens >= config.instruction_min_thinking_tokens
        and thinking_tokens >= config.instruction_ratio * answer_tokens
    )


def diagnose(
    completion: str | Completion,
    task: str | Task | None = None,
    *,
    tokenizer: Any = None,
    max_tokens: int | None = None,
    finish_reason: str | None = None,
    problem: dict | None = None,
    config: DiagnosticsConfig | None = None,
) -> dict:
    """Diagnose one completion for the paper's "formalistic long-time thinking" errors.

    Args:
        completion (`str` or `treecot.backends.base.Completion`):
            The generated text, or a `Completion` (its `finish_reason` and `n_tokens` are used unless
            overridden).
        task (`str` or `Task`, *optional*):
            A task name (see `treecot.tasks.task_names()`) or a `Task`; defaults to `problem["task"]`.
            Selects the verifier and whether instruction failure applies (domain "instructions").
        tokenizer (`Any`, *optional*):
            Counts tokens with `tokenizer.encode`; without it counts are approximate.
        max_tokens (`int`, *optional*):
            The generation budget; reaching it counts as hitting the token limit.
        finish_reason (`str`, *optional*):
            The backend's finish reason; "length" means the token limit was hit.
        problem (`dict`, *optional*):
            A Problem record; with a task, `no_answer` and `correct` come from `task.verify`.
        config (`DiagnosticsConfig`, *optional*):
            Thresholds (`DiagnosticsConfig()` by default).

    Returns:
        `dict`: a flat dict: `no_answer`, `answer` (generic extraction, or the verifier's extraction as a
        string; a list such as a plan's actions is joined by newlines), `correct` (None without a
        problem), `hit_token_limit`, `n_tokens`, `thinking_tokens`, `answer_tokens`, `repetition`,
        `repetition_score`, `repeated_text`, `loop_unit_tokens`, `loop_repeats`, `reflection_markers`,
        `reflections_per_1k`, `over_reflection`, `instruction_failure` (None unless the task's domain is
        "instructions").
    """
    config = config or DiagnosticsConfig()
    text, given_tokens, finish_reason = _read_completion(completion, finish_reason)
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be a positive integer or None, got {max_tokens!r}")

    resolved = _resolve_task(task, problem)
    instructions = resolved is not None and resolved.domain == "instructions"
    count = _counter(tokenizer)

    if tokenizer is not None:
        n_tokens = count(text)
    elif given_tokens is not None:
        n_tokens = int(given_tokens)
    else:
        n_tokens = approx_token_count(text)

    thinking, answer_section = split_sections(text, instructions=instructions)
    thinking_tokens = count(thinking)
    answer_tokens = count(answer_section) if answer_section else 0

    no_answer, answer, correct = _answer_fields(text, answer_section, resolved, problem, instructions)

    markers = len(config._marker_re.findall(text))
    per_1k = 1000.0 * markers / n_tokens if n_tokens else 0.0
    over_reflection = markers >= config.min_reflection_markers and per_1k >= config.reflection_threshold

    instruction_failure = (
        _instruction_failure(thinking_tokens, answer_tokens, config) if instructions else None
    )

    loops = find_loops(approx_tokens(text.lower()), config)
    return {
        "no_answer": no_answer,
        "answer": answer,
        "correct": correct,
        "hit_token_limit": finish_reason == "length" or (max_tokens is not None and n_tokens >= max_tokens),
        "n_tokens": n_tokens,
        "thinking_tokens": thinking_tokens,
        "answer_tokens": answer_tokens,
        **loops,
        "reflection_markers": markers,
        "reflections_per_1k": round(per_1k, 3),
        "over_reflection": over_reflection,
        "instruction_failure": instruction_failure,
    }


def _rate(values: list) -> float | None:
    known = [bool(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _mean(values: list) -> float | None:
    known = [float(v) for v in values if v is not None]
    return sum(known) / len(known) if known else None


_SUMMARY_KEYS = (
    "no_answer",
    "repetition",
    "over_reflection",
    "instruction_failure",
    "hit_token_limit",
    "n_tokens",
    "thinking_tokens",
    "answer_tokens",
    "repetition_score",
    "reflections_per_1k",
    "correct",
)


def summarize(diagnoses: Iterable[dict]) -> dict:
    """Rates and means over `diagnose` outputs, for evaluation reports and leaderboards.

    Returns `n` and `no_answer_rate`, `repetition_rate`, `over_reflection_rate`,
    `instruction_failure_rate`, `hit_limit_rate`, `accuracy`, `mean_tokens`, `mean_thinking_tokens`,
    `mean_answer_tokens`, `mean_repetition_score`, `mean_reflections_per_1k`. Rates are fractions in
    [0, 1] over the diagnoses where the value is known (`instruction_failure` and `correct` may be
    None); a figure with no known value (e.g. no instruction task, or an empty list) is None.
    """
    rows = list(diagnoses)
    for i, row in enumerate(rows):
        missing = [k for k in _SUMMARY_KEYS if k not in row]
        if missing:
            raise KeyError(f"diagnosis #{i} lacks {missing}; pass the dicts returned by diagnose()")
    col = {k: [row[k] for row in rows] for k in _SUMMARY_KEYS}
    return {
        "n": len(rows),
        "no_answer_rate": _rate(col["no_answer"]),
        "repetition_rate": _rate(col["repetition"]),
        "over_reflection_rate": _rate(col["over_reflection"]),
        "instruction_failure_rate": _rate(col["instruction_failure"]),
        "hit_limit_rate": _rate(col["hit_token_limit"]),
        "accuracy": _rate(col["correct"]),
        "mean_tokens": _mean(col["n_tokens"]),
        "mean_thinking_tokens": _mean(col["thinking_tokens"]),
        "mean_answer_tokens": _mean(col["answer_tokens"]),
        "mean_repetition_score": _mean(col["repetition_score"]),
        "mean_reflections_per_1k": _mean(col["reflections_per_1k"]),
    }
