"""SkyThought perturbations (arXiv 2502.07374, METHOD §5): does a student learn from the *structure* or
the *content* of reasoning demonstrations?

Content perturbations: `wrong_answer` (the trace is swapped for one of the same problem that failed
verification), `digits` (each number corrupted with probability p), `keywords` (each reflection keyword
removed with probability p). Structure perturbations: `shuffle`, `delete`, `insert` (a fraction f of the
steps; inserted steps come from other problems' correct samples).

Steps are the tagged nodes of a treecot path (`<thinking>…</thinking>`), or blank-line paragraphs for
untagged (distilled) traces. The final answer is never touched: the `<answer>` node, or for untagged traces
everything from the solution marker on (else the last paragraph).

Every function is seeded and every output row records what changed in its `perturbation` field:
`{"kind", "rate", "seed", "n_steps", "n_changed", "log"}` where `log` is a JSON list of the edits.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

KINDS = ("wrong_answer", "digits", "keywords", "shuffle", "delete", "insert")

# Reflection keywords SkyThought removes (case-insensitive, whole words/phrases).
REFLECTION_KEYWORDS = (
    "wait",
    "alternatively",
    "let me check again",
    "let me double-check",
    "let me verify",
    "hmm",
    "but wait",
    "on second thought",
    "let me reconsider",
    "actually",
)

_TAGGED_STEP = re.compile(r"<([a-z][a-z_-]*)>.*?</\1>", re.S)
_NUMBER = re.compile(r"(?<![A-Za-z_\\])\d+(?:\.\d+)?")
_SOLUTION_MARKERS = ("<|begin_of_solution|>", "**Final Answer**", "Final Answer:", "Solution:")


@dataclass
class Trace:
    """A trace split into steps, separators and the untouchable final answer."""

    head: str  # text before the first step (kept)
    steps: list[str]
    seps: list[str]  # separator after each step
    tail: str  # the final answer part (never changed)
    tagged: bool

    def join(self) -> str:
        body = "".join(s + sep for s, sep in zip(self.steps, self.seps))
        return self.head + body + self.tail


def split_trace(text: str) -> Trace:
    """Split a trace into steps (tagged nodes or paragraphs) and its final answer."""
    matches = list(_TAGGED_STEP.finditer(text))
    if matches and any(m.group(1) == "answer" for m in matches):
        answer = [m for m in matches if m.group(1) == "answer"][-1]
        steps_m = [m for m in matches if m.start() < answer.start()]
        head = text[: steps_m[0].start()] if steps_m else text[: answer.start()]
        steps, seps = [], []
        for i, m in enumerate(steps_m):
            steps.append(m.group(0))
            end = steps_m[i + 1].start() if i + 1 < len(steps_m) else answer.start()
            seps.append(text[m.end() : end])
        return Trace(head, steps, seps, text[answer.start() :], tagged=True)
    # Untagged: paragraphs; the answer is the solution section or the last paragraph.
    cut = -1
    for marker in _SOLUTION_MARKERS:
        pos = text.find(marker)
        if pos >= 0 and (cut < 0 or pos < cut):
            cut = pos
    body, tail = (text[:cut], text[cut:]) if cut >= 0 else (text, "")
    chunks = re.split(r"(\n\s*\n)", body)
    parts, seps = chunks[0::2], [*chunks[1::2], ""]
    if cut < 0 and parts:  # no solution marker: the last paragraph is the answer
        tail = parts.pop()
        seps.pop()
    head, steps, step_seps = "", [], []
    for part, sep in zip(parts, seps):
        if part.strip():
            steps.append(part)
            step_seps.append(sep)
        elif steps:  # blank chunk: its text joins the previous separator
            step_seps[-1] += part + sep
        else:
            head += part + sep
    return Trace(head, steps, step_seps, tail, tagged=False)


def _pick(rng: random.Random, n: int, rate: float) -> list[int]:
    """round(rate * n) distinct indices in [0, n) (at least one when rate > 0 and n > 0)."""
    if n == 0 or rate <= 0:
        return []
    k = min(n, max(1, round(rate * n)))
    return sorted(rng.sample(range(n), k))


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be between 0 and 1, got {rate}")


def corrupt_digits(text: str, rate: float, rng: random.Random) -> tuple[str, list]:
    """Corrupt each number outside the final answer with probability `rate` (every digit redrawn, the
    number changed for sure)."""
    _check_rate(rate)
    trace = split_trace(text)
    log = []

    def corrupt(m: re.Match) -> str:
        if rng.random() >= rate:
            return m.group(0)
        old = m.group(0)
        while True:
            new = "".join(rng.choice("0123456789") if c.isdigit() else c for c in old)
            if new != old:
                break
        log.append({"from": old, "to": new})
        return new

    trace.head = _NUMBER.sub(corrupt, trace.head)
    trace.steps = [_NUMBER.sub(corrupt, s) for s in trace.steps]
    return trace.join(), log


def remove_keywords(
    text: str, rate: float, rng: random.Random, keywords=REFLECTION_KEYWORDS
) -> tuple[str, list]:
    """Remove each occurrence of a reflection keyword (outside the final answer) with probability `rate`."""
    _check_rate(rate)
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(k) for k in sorted(keywords, key=len, reverse=True)) + r")\b[,!.]?\s*",
        re.I,
    )
    trace = split_trace(text)
    log = []

    def drop(m: re.Match) -> str:
        if rng.random() >= rate:
            return m.group(0)
        log.append({"removed": m.group(1)})
        return ""

    trace.head = pattern.sub(drop, trace.head)
    trace.steps = [pattern.sub(drop, s) for s in trace.steps]
    return trace.join(), log


def shuffle_steps(text: str, rate: float, rng: random.Random) -> tuple[str, list]:
    """Permute a fraction `rate` of the steps among their own positions (a derangement when possible)."""
    _check_rate(rate)
    trace = split_trace(text)
    idx = _pick(rng, len(trace.steps), rate)
    if len(idx) < 2:
        return text, []
    perm = idx[:]
    for _ in range(100):
        rng.shuffle(perm)
        if all(a != b for a, b in zip(idx, perm)):
            break
    moved = [trace.steps[j] for j in perm]
    for i, s in zip(idx, moved):
        trace.steps[i] = s
    return trace.join(), [{"position": i, "now_holds_step": j} for i, j in zip(idx, perm) if i != j]


def delete_steps(text: str, rate: float, rng: random.Random) -> tuple[str, list]:
    """Delete a fraction `rate` of the steps."""
    _check_rate(rate)
    trace = split_trace(text)
    idx = set(_pick(rng, len(trace.steps), rate))
    log = [{"deleted_step": i, "text": trace.steps[i][:80]} for i in sorted(idx)]
    trace.steps = [s for i, s in enumerate(trace.steps) if i not in idx]
    trace.seps = [s for i, s in enumerate(trace.seps) if i not in idx]
    return trace.join(), log


def insert_steps(text: str, rate: float, rng: random.Random, donors: list[str]) -> tuple[str, list]:
    """Insert round(rate × n_steps) steps taken from `donors` at random positions before the final answer.

    Args:
        text (`str`):
            The trace.
        rate (`float`):
            The fraction of the trace's step count to insert, between 0 and 1.
        rng (`random.Random`):
            The random source.
        donors (`list[str]`):
            Other problems' correct traces.

    Returns:
        `tuple[str, list]`: the new text and the log of the edits.
    """
    _check_rate(rate)
    trace = split_trace(text)
    pool = [s for d in donors for s in split_trace(d).steps if s.strip()]
    n = len(trace.steps)
    k = min(len(pool), max(1, round(rate * n))) if (rate > 0 and n) else 0
    if k == 0:
        return text, []
    sep = "\n" if trace.tagged else "\n\n"
    log = []
    for step in rng.sample(pool, k):
        pos = rng.randint(0, len(trace.steps))
        trace.steps.insert(pos, step)
        trace.seps.insert(pos, sep)
        log.append({"inserted_at": pos, "text": step[:80]})
    if trace.seps and not trace.tail:
        trace.seps[-1] = ""
    return trace.join(), log


def perturb_rows(
    rows: list[dict],
    kind: str,
    rate: float = 1.0,
    seed: int = 0,
    *,
    wrong_traces: dict[str, list[str]] | None = None,
) -> list[dict]:
    """Apply one perturbation to SFT rows (the last message is the trace).

    Args:
        rows (`list[dict]`):
            The SFT rows.
        kind (`str`):
            The perturbation, one of `KINDS`.
        rate (`float`, *optional*, defaults to `1.0`):
            Its rate, between 0 and 1.
        seed (`int`, *optional*, defaults to `0`):
            The random seed.
        wrong_traces (`dict[str, list[str]]`, *optional*):
            Maps problem_id → failed traces (needed for `wrong_answer`; a row whose problem has none is kept
            unchanged and says so).

    Returns:
        `list[dict]`: new rows, each with a `perturbation` record; rows are never dropped.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown perturbation {kind!r}; choose one of {KINDS}")
    _check_rate(rate)
    if kind == "wrong_answer" and wrong_traces is None:
        raise ValueError("the wrong_answer perturbation needs wrong_traces (problem_id → failed traces)")
    out = []
    for i, row in enumerate(rows):
        rng = random.Random(f"{seed}:{kind}:{rate}:{row.get('problem_id', '')}:{i}")
        text = row["messages"][-1]["content"]
        n_steps = len(split_trace(text).steps)
        if kind == "wrong_answer":
            pool = (wrong_traces or {}).get(row.get("problem_id", ""), [])
            if pool and rng.random() < rate:
                new = rng.choice(pool)
                log = [{"replaced_with_wrong_trace": True}]
            else:
                new, log = text, [{"unchanged": "no failed trace for this problem" if not pool else "rate"}]
        elif kind == "digits":
            new, log = corrupt_digits(text, rate, rng)
        elif kind == "keywords":
            new, log = remove_keywords(text, rate, rng)
        elif kind == "shuffle":
            new, log = shuffle_steps(text, rate, rng)
        elif kind == "delete":
            new, log = delete_steps(text, rate, rng)
        else:
            donors = [
                r["messages"][-1]["content"] for r in rows if r.get("problem_id") != row.get("problem_id")
            ]
            new, log = insert_steps(text, rate, rng, donors)
        changed = sum(1 for e in log if "unchanged" not in e)
        if not log:  # kept as it was: say why, as wrong_answer does
            what = "steps" if kind in ("shuffle", "delete", "insert") else "edits"
            log = [{"unchanged": f"no {what} drawn at rate {rate:g} in {n_steps} steps"}]
        new_row = dict(row)
        new_row["messages"] = [*row["messages"][:-1], {**row["messages"][-1], "content": new}]
        new_row["perturbation"] = {
            "kind": kind,
            "rate": float(rate),
            "seed": int(seed),
            "n_steps": n_steps,
            "n_changed": changed,
            "log": json.dumps(log, ensure_ascii=False),
        }
        out.append(new_row)
    return out
