"""Math tasks (GSM8K, MATH, MATH-500, AIME 2024/2025): answer extraction and equivalence checking.

    >>> from treecot.tasks import get_task
    >>> task = get_task("gsm8k")
    >>> task.verify("<thinking>6 * 3 = 18</thinking>\\n<answer>The answer is: \\boxed{18}</answer>",
    ...             {"task": "gsm8k", "question": "…", "reference": "18", "meta": {}})
    Verdict(correct=True, answered=True, extracted='18', reason='equivalent (exact match)', ...)

Answers are read from the last brace-balanced ``\\boxed{}`` (or ``\\fbox{}``) together with the boxes
right before it that only separators divide from it (``\\boxed{1}, \\boxed{2}`` is the one answer
``1, 2``), unless a "The answer is …" written as math follows them; else the last
``<answer>…</answer>``; else the last "The answer is …" / "Final answer: …" (`extract_answer`). Boxes and
``<answer>`` tags are read by `treecot.tasks.answers` (`final_boxes`, `answer_tag`).

Equivalence (`check_equivalence`, `is_equivalent`) is decided in order of cost:

1. *exact*: the two strings agree after LaTeX clean-up (``\\dfrac``→``\\frac``, ``\\left``, spacing,
   ``$``, ``\\text{}``, degrees, a leading ``x =``, …);
2. *numeric*: both are plain numbers (``1,000``, ``$18``, ``18 dollars``, ``50%``, ``-\\frac{3}{4}``,
   ``0.75``; ``1000,99`` with a decimal comma against a reference ``1000.99``, while ``32, 349`` is a
   list): compared exactly for integers, else with a tolerance of rel 1e-6 / abs 1e-9; the decision is
   final, no sympy;
3. *guards*: answers longer than `MAX_ANSWER_CHARS`, nested deeper than `MAX_NESTING_DEPTH`, with an
   exponent tower higher than `MAX_EXPONENT_TOWER`, a factorial above `MAX_FACTORIAL` or a literal of
   more than `MAX_NUMBER_DIGITS` digits are "not equivalent" without being parsed;
4. *math-verify*: ``math_verify.parse``/``verify`` (LaTeX → sympy) in a persistent worker process
   under a hard wall-clock timeout (default 5 s): a check that takes longer is "not equivalent", the
   worker is killed and replaced. Verdicts (timeouts too) are cached per (answer, gold) pair. The
   worker imports math-verify ≥ `MIN_MATH_VERIFY` from its own directory (`math_verify_dir`), because
   lighteval, in the same environment, pins an older latex2sympy2_extended; `math_verify_versions`
   says what it runs.

Nothing read from a completion is ever evaluated or executed: numbers are parsed with regular
expressions and `fractions.Fraction`, and math-verify is used with its LaTeX parser only (its
``ExprExtractionConfig`` goes through ``sympy.parse_expr``, i.e. ``eval``, and is never enabled).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from treecot.tasks._timeout import CheckTimeout, TimeoutWorker, WorkerError
from treecot.tasks.answers import answer_tag, boxes, final_boxes
from treecot.tasks.base import MalformedProblemError, Task, Verdict

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

__all__ = [
    "AIME24Task",
    "AIME25Task",
    "DEFAULT_TIMEOUT",
    "EquivalenceResult",
    "GSM8KTask",
    "MATH500Task",
    "MATHTask",
    "MIN_MATH_VERIFY",
    "MathTask",
    "check_equivalence",
    "clear_cache",
    "extract_answer",
    "is_equivalent",
    "math_verify_dir",
    "math_verify_versions",
    "normalize_number",
    "shutdown",
]

#: Hard wall-clock limit of one symbolic check, in seconds.
DEFAULT_TIMEOUT = 5.0
#: Longer answers (or gold answers) are "not equivalent" without being parsed.
MAX_ANSWER_CHARS = 10_000
#: Deepest allowed nesting of (), [] and {} before parsing.
MAX_NESTING_DEPTH = 64
#: Highest allowed exponent tower: ``2^{2^{2}}`` has height 2, ``10^{10^{10^{10}}}`` height 3.
MAX_EXPONENT_TOWER = 2
#: Largest allowed ``n!``.
MAX_FACTORIAL = 10_000
#: Longest allowed integer literal.
MAX_NUMBER_DIGITS = 1_000
#: Numeric tolerance for non-integers.
REL_TOL = 1e-6
ABS_TOL = 1e-9

#: Oldest math-verify (and latex2sympy2_extended) the worker is meant to run: 0.5.2 accepts
#: ``n=1, 2, 3`` for ``n=2, 3, 4``, ``D = (0, 1.5)`` for ``D = (0, 1)`` and ``1:00`` for ``12:00``. An
#: older one is still used (with a warning), so that an environment not yet upgraded keeps working.
MIN_MATH_VERIFY = "0.9.0"
MIN_LATEX2SYMPY2_EXTENDED = "1.11.0"
#: Names the directory the worker imports math-verify from (default: `math_verify_dir`).
MATH_VERIFY_DIR_ENV = "TREECOT_MATH_VERIFY_DIR"

NO_ANSWER_REASON = "no answer found: no \\boxed{}, <answer> tag or 'The answer is …' in the completion"

# ---------------------------------------------------------------------------------------------------
# Answer extraction
# ---------------------------------------------------------------------------------------------------

#: Longer final-answer sentences are kept whole (the sentence rules stay linear-time on hostile input).
_MAX_SENTENCE_CHARS = 500
_ANSWER_PHRASE = re.compile(
    r"\b(?:final\s+answer|the\s+answer|answer)\**\s*(?:is\b\s*[:：]?|[:：])\**[ \t]*", re.IGNORECASE
)
_SENTENCE_END = re.compile(r"\.(?:\s|$)")
_MATH_OPENERS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# Inside a final-answer sentence ("Final Answer: The largest $n$ is 34."):
_MATH_SPAN = re.compile(r"(?<!\\)\$\$?(?:[^$\\]|\\.)+?\$\$?|\\\((?:[^\\]|\\[^)])+?\\\)")
_LATEX_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"(?<![A-Za-z])[A-Za-z]{2,}(?![A-Za-z])")
_COPULA = re.compile(r"(?<![A-Za-z])(?:is|are|was|were|equals)(?![A-Za-z])|(?<![<>!=])=(?!=)", re.IGNORECASE)
_NEGATION = re.compile(
    r"(?<![A-Za-z])(?:not|no|never|none|neither|nor|cannot)(?![A-Za-z])|n't\b", re.IGNORECASE
)
_SENTENCE_NUMBER = re.compile(r"(?<![\w.,])[+-]?\d+(?:[.,]\d+)*(?![\w])")


#: A plain number as the GSM8K-style prompts ask for it inside the box (no units, no separators).
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
#: An AIME answer: an integer from 0 to 999.
AIME_INTEGER = re.compile(r"[0-9]{1,3}")
#: Math-mode delimiters that may wrap the box: opener → closer (`$\boxed{x}$`, `\[\boxed{x}\]`).
_MATH_WRAPPERS = {"$$": "$$", "$": "$", "\\[": "\\]", "\\(": "\\)"}
#: What may not follow the box in an answer section: LaTeX commands, braces, brackets of math mode, tags.
_FORMAT_TAIL_BAD = re.compile(r"[\\{}<>$]")


def _answer_phrase(text: str, start: int = 0) -> tuple[str, bool] | None:
    """What follows the last "The answer is" / "Final answer:" at or after `start` that is followed by
    something on its line (up to the next such phrase), without trailing prose; and whether it is
    written as math (see `_phrase_value`)."""
    matches = list(_ANSWER_PHRASE.finditer(text, start))
    for k in range(len(matches) - 1, -1, -1):
        value_start = matches[k].end()
        end = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        newline = text.find("\n", value_start, end)
        found = _phrase_value(text[value_start : newline if newline != -1 else end])
        if found:
            return found
    return None


def _masked(value: str) -> str:
    """`value` with its math spans blanked out (same length), so that prose rules never look inside them."""
    return _MATH_SPAN.sub(lambda m: "\0" * len(m.group(0)), value)


def _words(value: str) -> int:
    """How many words (two letters or more) `value` has outside math spans and LaTeX commands."""
    return len(_WORD.findall(_LATEX_COMMAND.sub(" ", _masked(value))))


def _unwrap_span(value: str) -> str:
    """``$x$`` → ``x`` when one math span is the whole of `value`."""
    m = _MATH_SPAN.fullmatch(value)
    if m:
        inner = value.strip("$") if value.startswith("$") else value[2:-2]
        return inner.strip()
    return value


def _answer_like(value: str) -> bool:
    """One math span, a number (with units), or an expression without words."""
    if not value or len(value) > 200:
        return False
    return bool(_MATH_SPAN.fullmatch(value)) or _parse_number(_clean(value)) is not None or _words(value) == 0


def _answer_in_sentence(value: str) -> str:
    """The answer stated by a final-answer sentence ("The largest $n$ is 34" → ``34``; "Jane started
    growing Sphere 3 hours ago" → ``3``): what follows its last "is" / "=" when that is a math span or a
    number, else its only math span or number. Sentences with a negation, or with several candidates,
    are kept whole."""
    masked = _masked(value)
    if _NEGATION.search(masked):
        return value
    copulas = list(_COPULA.finditer(masked))
    if copulas:
        tail = value[copulas[-1].end() :].strip()
        if _answer_like(tail):
            return _unwrap_span(tail)
    candidates = list(_MATH_SPAN.finditer(value)) + list(_SENTENCE_NUMBER.finditer(masked))
    if len(candidates) == 1:
        return _unwrap_span(candidates[0].group(0))
    return value


def _phrase_value(value: str) -> tuple[str, bool] | None:
    """The answer in what follows "The answer is": a leading math span, else the first sentence (reduced
    to its answer if it is prose); and whether it is written as math (a math span, a number or an
    expression without words). None if nothing is left."""
    value = value.strip().strip("*").strip()
    math = False
    for opener, closer in _MATH_OPENERS:  # "$\frac{1}{2}$ cups." -> "\frac{1}{2}"
        if value.startswith(opener):
            close = value.find(closer, len(opener))
            if close != -1:
                value, math = value[len(opener) : close], True
                break
    else:
        sentence_end = _SENTENCE_END.search(value)
        if sentence_end:
            value = value[: sentence_end.start()]
    value = value.strip().rstrip(".,;").strip()
    if not math and len(value) <= _MAX_SENTENCE_CHARS and _words(value) >= 3:
        value = _answer_in_sentence(value)
    if not value:
        return None
    return value, math or _answer_like(value)


def extract_answer(text: str) -> str | None:
    """The final answer written in `text`, or None if there is none.

    Priority: the last brace-balanced ``\\boxed{…}`` or ``\\fbox{…}`` (also ``\\boxed 5``), together
    with the boxes right before it that only separators divide from it (``\\boxed{1}, \\boxed{2}`` →
    ``"1, 2"``: one answer given in several boxes) — unless a "The answer is …" / "Final answer: …"
    written as math comes after them (a final statement overrides an intermediate box); else the
    content of the last ``<answer>…</answer>`` (reduced to what follows "The answer is" inside it, if
    that phrase is there); else what follows the last "The answer is" / "Final answer:" on its line
    (reduced to the answer it states, if it is a sentence). Runs in linear time (up to sorting the
    boxes) and never raises, whatever the text.
    """
    if not isinstance(text, str) or not text:
        return None
    boxed = final_boxes(text)
    if boxed is not None:
        end, parts = boxed
        later = _answer_phrase(text, end)
        if later is not None and later[1]:
            return later[0]
        return ", ".join(parts)
    tagged = answer_tag(text)
    if tagged is not None:
        found = _answer_phrase(tagged)
        return found[0] if found else tagged
    found = _answer_phrase(text)
    return found[0] if found else None


# ---------------------------------------------------------------------------------------------------
# Normalisation
# ---------------------------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_THOUSANDS = re.compile(r"(?<=\d)(?:(?:\{,\}|,\\!|,\\,)\s*|\\,(?=\d{3}\b))(?=\d)")  # 32,\! 349
_MATH_DELIMS = re.compile(r"(\\\\)|\\\$|\$|\\\(|\\\)|\\\[|\\\]")  # group 1: a LaTeX line break, kept
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|textstyle)(?![a-zA-Z])")
_SPACING = re.compile(r"(\\\\)|\\[,;:! ]|\\q?quad(?![a-zA-Z])|~")  # group 1: a LaTeX line break, kept
_TEXT_WRAP = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|hbox)\s*\{([^{}]*)\}"
)
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree")
_ASSIGNMENT = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[\w\\]+\}?)?\s*=\s*(.+)", re.DOTALL)
_WS = re.compile(r"\s+")


def _keep_line_breaks(match: re.Match) -> str:
    return match.group(1) or " "


def _clean(s: str) -> str:
    """LaTeX clean-up shared by the exact and numeric comparisons (spaces kept, single)."""
    s = _CONTROL.sub("", s).replace("\u2212", "-").replace("\u2009", " ").replace("\u00a0", " ")
    s = _THOUSANDS.sub(",", s)
    s = _MATH_DELIMS.sub(_keep_line_breaks, s)
    s = _SIZING.sub("", s)
    s = _SPACING.sub(_keep_line_breaks, s)
    s = _DEGREES.sub("", s)
    for _ in range(2):  # \text{\textbf{x}}
        s = _TEXT_WRAP.sub(r" \1 ", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\dbinom", "\\binom").replace("\\tbinom", "\\binom")
    s = s.replace("\\%", "%")
    s = _WS.sub(" ", s).strip()
    return s.rstrip(".").strip()


def _key(s: str) -> str:
    """Exact-comparison key of a cleaned string: no spaces; words compared case-insensitively."""
    key = s.replace(" ", "")
    return key.lower() if key.isalpha() else key


def _drop_assignments(pred: str, gold: str) -> tuple[str, str]:
    """``x = 3`` vs ``3`` → compare ``3`` with ``3`` (only when the other side has no ``=``)."""
    if "=" in pred and "=" not in gold:
        m = _ASSIGNMENT.fullmatch(pred)
        if m:
            pred = m.group(1).strip()
    elif "=" in gold and "=" not in pred:
        m = _ASSIGNMENT.fullmatch(gold)
        if m:
            gold = m.group(1).strip()
    return pred, gold


_NUM = r"[+-]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d+)?|[+-]?\.\d+"  # no "0,111": not thousands
_NUMBER = re.compile(_NUM)
_FRAC_ARG = r"\{\s*(" + _NUM + r")\s*\}|(\d)"
_LATEX_FRAC = re.compile(r"([+-]?)\\frac\s*(?:" + _FRAC_ARG + r")\s*(?:" + _FRAC_ARG + r")")
_SLASH_FRAC = re.compile(r"(" + _NUM + r")\s*/\s*(" + _NUM + r")")
_PERCENT = re.compile(r"\s*(?:%|percent|per\s+cent)$", re.IGNORECASE)
_UNIT_TAIL = re.compile(r"(.*?\S)\s+([A-Za-z]{2,}(?:\s+[A-Za-z]+){0,2})(?:\s*\^\s*\{?[23]\}?)?")
_LIST_COMMA = re.compile(r",\s")  # "32, 349" is a list, not 32349
_DECIMAL_COMMA = re.compile(r"([+-]?\d+),(\d+)")
_NOT_UNITS = frozenset({"pi", "sqrt", "frac", "cdot", "times", "and", "or", "to", "i", "e"})


@dataclass(frozen=True)
class _Number:
    value: Fraction
    integer: bool  # written as an integer (no decimal point, no fraction)
    percent: bool


def _parse_number(cleaned: str) -> _Number | None:
    """A plain number (with thousands separators, currency, units, %), never via eval."""
    s = cleaned.strip()
    if not s or len(s) > MAX_NUMBER_DIGITS:
        return None
    s = s.replace("%", " %") if s.endswith("%") else s
    percent = bool(_PERCENT.search(s))
    if percent:
        s = _PERCENT.sub("", s).strip()
    m = _UNIT_TAIL.fullmatch(s)
    if m and m.group(2).split()[0].lower() not in _NOT_UNITS:
        s = m.group(1)
    if _LIST_COMMA.search(s):
        return None
    s = s.replace(" ", "").replace("\\$", "").lstrip("$")
    if s.startswith("+"):
        s = s[1:]
    try:
        if _NUMBER.fullmatch(s):
            return _Number(Fraction(s.replace(",", "")), "." not in s, percent)
        m = _LATEX_FRAC.fullmatch(s)
        if m:
            sign = -1 if m.group(1) == "-" else 1
            num = Fraction((m.group(2) or m.group(3)).replace(",", ""))
            den = Fraction((m.group(4) or m.group(5)).replace(",", ""))
            return _Number(sign * num / den, False, percent) if den else None
        m = _SLASH_FRAC.fullmatch(s)
        if m:
            den = Fraction(m.group(2).replace(",", ""))
            return _Number(Fraction(m.group(1).replace(",", "")) / den, False, percent) if den else None
    except (ValueError, ZeroDivisionError):  # e.g. more digits than int() accepts
        return None
    return None


def _decimal_comma(cleaned: str) -> _Number | None:
    """``1000,99`` or ``2,74`` read with a decimal comma, where the comma cannot be a thousands separator
    (`_parse_number` refuses it). Only an answer compared with a reference written with a decimal point
    is read this way: a reference such as ``4,6`` is a list."""
    m = _DECIMAL_COMMA.fullmatch(cleaned.strip())
    if m is None or _parse_number(cleaned) is not None:
        return None
    return _Number(Fraction(f"{m.group(1)}.{m.group(2)}"), False, False)


def _format_number(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den == 1:  # a terminating decimal
        return format(Decimal(value.numerator) / Decimal(value.denominator), "f")
    return f"{value.numerator}/{value.denominator}"


def normalize_number(s: str) -> str | None:
    """Canonical form of a plain number, or None if `s` is not one.

    Accepts thousands separators (``1,000``, ``10,\\!000``, ``1{,}000``), currency (``$18``, ``\\$18``),
    trailing unit words (``18 dollars``, ``5 \\text{cm}^2``), percentages (the ``%`` is dropped:
    ``50%`` → ``"50"``), degrees, a leading ``+`` and simple fractions (``\\frac{3}{4}``, ``-3/4``).
    Integers come out as ``"1000"``, terminating decimals as ``"0.75"``, others as ``"1/3"``.
    Nothing is evaluated.
    """
    if not isinstance(s, str):
        s = str(s)
    number = _parse_number(_clean(s))
    return None if number is None else _format_number(number.value)


def _close(a: Fraction, b: Fraction, integers: bool) -> bool:
    if a == b:
        return True
    if integers:
        return False
    diff = abs(a - b)
    return diff <= ABS_TOL or diff <= REL_TOL * max(abs(a), abs(b))


def _numbers_equal(a: _Number, b: _Number) -> bool:
    """Equal values; when exactly one side is a percentage, its value or value/100 may match."""
    a_values = [a.value] + ([a.value / 100] if a.percent and not b.percent else [])
    b_values = [b.value] + ([b.value / 100] if b.percent and not a.percent else [])
    integers = a.integer and b.integer and len(a_values) == len(b_values) == 1
    return any(_close(x, y, integers) for x in a_values for y in b_values)


# ---------------------------------------------------------------------------------------------------
# Guards against inputs that would make sympy hang or explode
# ---------------------------------------------------------------------------------------------------

_OPENERS, _CLOSERS = "({[", ")}]"
_FACTORIAL = re.compile(r"(\d+)\s*(?:\)\s*)?!")  # 1000000! and (1000000)!
_LONG_NUMBER = re.compile(r"\d{" + str(MAX_NUMBER_DIGITS + 1) + ",}")
_HUGE_E_NOTATION = re.compile(r"(?<=\d)[eE][+-]?\d{4,}")  # 1e999999999
_EXPONENT_TOKEN = re.compile(r"\s*(?:\d+(?:\.\d+)?|\\[A-Za-z]+|.)", re.DOTALL)


def _nesting_depth(s: str) -> int:
    depth = best = 0
    for c in s:
        if c in _OPENERS:
            depth += 1
            if depth > best:
                best = depth
        elif c in _CLOSERS and depth:
            depth -= 1
    return best


def _tower_height(s: str) -> int:
    """Height of the highest exponent tower: ``a^{b}`` is 1, ``a^{b^{c}}`` and ``a^b^c`` are 2."""
    level = best = 0
    groups: list[tuple[int, bool]] = []  # (level outside the group, group is an exponent)
    last_exponent_end, last_exponent_level = -1, 0
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "^":
            base_level = last_exponent_level if last_exponent_end == i else level
            height = base_level + 1
            best = max(best, height)
            j = i + 1
            while j < n and s[j].isspace():
                j += 1
            if j < n and s[j] == "{":
                groups.append((level, True))
                level = height
                i = j + 1
                continue
            token = _EXPONENT_TOKEN.match(s, i + 1)
            i = token.end() if token else j
            last_exponent_end, last_exponent_level = i, height
            continue
        if c == "{":
            groups.append((level, False))
        elif c == "}" and groups:
            outer, is_exponent = groups.pop()
            if is_exponent:
                last_exponent_end, last_exponent_level = i + 1, level
            level = outer
        i += 1
    return best


def _guard(s: str) -> str | None:
    """Why `s` must not be handed to sympy, or None if it is safe to try."""
    depth = _nesting_depth(s)
    if depth > MAX_NESTING_DEPTH:
        return f"is nested {depth} levels deep (limit {MAX_NESTING_DEPTH})"
    if _LONG_NUMBER.search(s):
        return f"has a number of more than {MAX_NUMBER_DIGITS} digits"
    if _HUGE_E_NOTATION.search(s):
        return "has a number with an exponent of more than 3 digits"
    height = _tower_height(s)
    if height > MAX_EXPONENT_TOWER:
        return f"has an exponent tower of height {height} (limit {MAX_EXPONENT_TOWER})"
    for m in _FACTORIAL.finditer(s):
        if int(m.group(1)) > MAX_FACTORIAL:
            return f"has a factorial of {m.group(1)} (limit {MAX_FACTORIAL})"
    return None


# ---------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EquivalenceResult:
    """Outcome of one equivalence check.

    equivalent: the answer matches the gold answer.
    method:     what decided: ``exact``, ``numeric``, ``sympy`` (math-verify), ``guard`` (rejected
                before parsing), ``timeout`` or ``error`` (the worker failed).
    reason:     human-readable, e.g. ``"equivalent (numeric)"``, ``"not equivalent: 41 vs 42"``.
    """

    equivalent: bool
    method: str
    reason: str

    def __bool__(self) -> bool:
        return self.equivalent


def _short(s: str, limit: int = 60) -> str:
    s = _WS.sub(" ", s).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


_worker: TimeoutWorker | None = None
_worker_lock = threading.Lock()
_CACHE_SIZE = 50_000
_cache: OrderedDict[tuple[str, str], EquivalenceResult] = OrderedDict()
_cache_lock = threading.Lock()


def _get_worker() -> TimeoutWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = TimeoutWorker(
                "treecot.tasks.math:_sympy_equivalent", warmup="treecot.tasks.math:_warm_up"
            )
        return _worker


def shutdown() -> None:
    """Stop the math-verify worker process (it restarts on the next symbolic check). Also runs at exit."""
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.shutdown()


atexit.register(shutdown)


def clear_cache() -> None:
    """Forget cached symbolic verdicts (e.g. before measuring throughput) and the check of the worker's
    math-verify install."""
    with _cache_lock:
        _cache.clear()
    _math_verify_missing.cache_clear()


def _symbolic(pred: str, gold: str, timeout: float) -> EquivalenceResult:
    key = (pred, gold)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    missing = _math_verify_missing(str(math_verify_dir()))
    if missing:  # not cached: installing math-verify fixes it (after `clear_cache()`)
        return EquivalenceResult(False, "error", f"verifier error: {missing}")
    try:
        answer = _get_worker().call(pred, gold, max(1, int(timeout)), timeout=timeout)
    except CheckTimeout:
        # Cached like any verdict: the same hostile answer, sampled again, must not cost another timeout.
        result = EquivalenceResult(False, "timeout", f"timed out after {float(timeout)}s")
    except WorkerError as err:  # not cached: a crashed worker says nothing about the answer
        logger.warning("math-verify worker failed on %r vs %r: %s", _short(pred), _short(gold), err)
        return EquivalenceResult(False, "error", f"verifier error: {err}")
    else:
        if answer["equivalent"]:
            result = EquivalenceResult(True, "sympy", "equivalent (math-verify)")
        else:
            note = f" ({answer['note']})" if answer.get("note") else ""
            result = EquivalenceResult(
                False, "sympy", f"not equivalent: {_short(pred)} vs {_short(gold)}{note}"
            )
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def check_equivalence(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> EquivalenceResult:
    """Decide whether answer `pred` is mathematically equivalent to `gold` (see the module docstring).

    Never raises on any `pred`; symbolic checks run in a worker process under a hard `timeout` (in
    seconds), and fast paths (exact, numeric, guards) never start it.
    """
    if timeout is None or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    pred = "" if pred is None else str(pred)
    gold = "" if gold is None else str(gold)
    for name, s in (("answer", pred), ("gold answer", gold)):
        if len(s) > MAX_ANSWER_CHARS:
            return EquivalenceResult(
                False, "guard", f"{name} too long ({len(s)} chars > {MAX_ANSWER_CHARS}): not checked"
            )
    p, g = _clean(pred), _clean(gold)
    if not p:
        return EquivalenceResult(False, "exact", "not equivalent: the answer is empty")
    if not g:
        return EquivalenceResult(False, "exact", "not equivalent: the gold answer is empty")
    p, g = _drop_assignments(p, g)
    if _key(p) == _key(g):
        return EquivalenceResult(True, "exact", "equivalent (exact match)")
    p_num, g_num = _parse_number(p), _parse_number(g)
    if p_num is None and g_num is not None and "." in g:
        p_num = _decimal_comma(p)  # "1000,99" for 1000.99
    if p_num is not None and g_num is not None:
        if _numbers_equal(p_num, g_num):
            return EquivalenceResult(True, "numeric", "equivalent (numeric)")
        return EquivalenceResult(False, "numeric", f"not equivalent: {_short(pred)} vs {_short(gold)}")
    for name, s in (("answer", p), ("gold answer", g)):
        why = _guard(s)
        if why:
            return EquivalenceResult(False, "guard", f"not checked: the {name} {why}")
    return _symbolic(p, g, timeout)


def is_equivalent(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True if answer `pred` is mathematically equivalent to `gold` (`check_equivalence` as a bool)."""
    return check_equivalence(pred, gold, timeout).equivalent


# ---------------------------------------------------------------------------------------------------
# Worker side: runs inside the TimeoutWorker process only
# ---------------------------------------------------------------------------------------------------


def math_verify_dir() -> Path:
    """The directory the worker imports math-verify from, ahead of the environment's own packages:
    ``$TREECOT_MATH_VERIFY_DIR``, else ``<sys.prefix>/treecot-math-verify`` (`make install` fills it from
    ``requirements/math-verify.txt`` with ``pip install --no-deps --target``).

    Why a directory of its own: lighteval 0.13, installed in the same environment, pins
    latex2sympy2_extended 1.0.6 and checks that version when its metrics module is imported, while
    math-verify 0.9 needs latex2sympy2_extended 1.11. The directory is put on the worker process's
    path only, never the caller's, so lighteval keeps its version and the verifier gets the newer one.
    """
    configured = os.environ.get(MATH_VERIFY_DIR_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "treecot-math-verify"


_MATH_VERIFY_DISTS = (
    ("math-verify", "math_verify", MIN_MATH_VERIFY),
    ("latex2sympy2_extended", "latex2sympy2_extended", MIN_LATEX2SYMPY2_EXTENDED),
)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def _math_verify_status(directory: Path) -> dict:
    """Which math-verify and latex2sympy2_extended an import finds with `directory` first on the path
    (read from their metadata: nothing is imported), where their packages lie, and what is wrong with
    them: ``missing`` (math-verify cannot be imported) and ``problem`` (missing or older than
    `MIN_MATH_VERIFY` / `MIN_LATEX2SYMPY2_EXTENDED`), both None when all is well."""
    import importlib.metadata

    path = ([str(directory)] if directory.is_dir() else []) + sys.path
    status: dict = {"dir": str(directory), "missing": None, "problem": None, "packages": {}}
    problems = []
    for dist_name, module, minimum in _MATH_VERIFY_DISTS:
        dist = next(iter(importlib.metadata.distributions(name=dist_name, path=path)), None)
        version = dist.version if dist is not None else None
        status[dist_name] = version
        if dist is not None:
            status["packages"][module] = str(Path(str(dist.locate_file(module))).resolve())
        if version is None:
            problems.append(f"{dist_name} is not installed")
        elif _version_tuple(version) < _version_tuple(minimum):
            problems.append(f"{dist_name} {version} is older than {minimum}")
    if problems:
        status["problem"] = (
            f"the math verifier wants math-verify>={MIN_MATH_VERIFY} and latex2sympy2_extended>="
            f"{MIN_LATEX2SYMPY2_EXTENDED} in {directory} ({'; '.join(problems)}): run `make install`, or "
            f"`{sys.executable} -m pip install --no-deps --target {directory} -r requirements/math-verify.txt`"
        )
        if not status["packages"]:
            status["missing"] = status["problem"]
    return status


@lru_cache(maxsize=8)
def _math_verify_missing(directory: str) -> str | None:
    """Checked once per directory in the calling process. math-verify missing: why (symbolic checks
    then answer "verifier error" without starting a worker each time). Older than the minimum: logged
    once, and used (math-verify 0.5.2 has known false positives: see `MIN_MATH_VERIFY`)."""
    status = _math_verify_status(Path(directory))
    if status["missing"]:
        logger.error("symbolic math checks are disabled: %s", status["missing"])
    elif status["problem"]:
        logger.warning("symbolic math checks use an old math-verify: %s", status["problem"])
    return status["missing"]


_math_verify_module = None


def _load_math_verify():
    """math-verify, imported from `math_verify_dir` first. Worker process only: it changes ``sys.path``."""
    global _math_verify_module
    if _math_verify_module is not None:
        return _math_verify_module
    if "lighteval" in sys.modules:
        raise ImportError(
            "math-verify is imported in the verifier's worker process only: this process runs lighteval, "
            "which needs its own latex2sympy2_extended"
        )
    directory = math_verify_dir()
    status = _math_verify_status(directory)
    if status["missing"]:
        raise ImportError(status["missing"])

    def check(name: str) -> None:  # before the import (a copy already loaded) and after it
        module = sys.modules.get(name)
        where = str(Path(module.__file__).resolve().parent) if module is not None else None
        if module is not None and where != status["packages"].get(name):
            raise ImportError(
                f"{name} was imported from {where}, not from {status['packages'].get(name)} "
                f"(it was imported before the worker put {directory} on its path)"
            )

    for name in ("latex2sympy2_extended", "math_verify"):
        check(name)
    if directory.is_dir() and str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    import math_verify

    for name in ("latex2sympy2_extended", "math_verify"):
        check(name)
    _math_verify_module = math_verify
    return math_verify


def _worker_versions() -> dict:
    """Worker side of `math_verify_versions`."""
    _load_math_verify()
    status = _math_verify_status(math_verify_dir())
    return {
        key: status[key] for key in ("math-verify", "latex2sympy2_extended", "dir", "packages", "problem")
    }


def math_verify_versions(timeout: float = 60.0) -> dict:
    """The math-verify and latex2sympy2_extended versions the verifier's worker runs, where their
    packages lie, and ``problem`` (None, or why they are older than wanted). Asked of a fresh worker
    process (this process may hold other versions, e.g. lighteval's latex2sympy2_extended); raises
    `WorkerError` with the reason when the worker cannot load math-verify at all."""
    with TimeoutWorker("treecot.tasks.math:_worker_versions") as worker:
        return worker.call(timeout=timeout)


def _warm_up() -> None:
    """Import math-verify and build its parsers before the worker reports ready (not on the clock)."""
    _load_math_verify()
    _sympy_equivalent("\\frac{1}{2}", "0.5", 5)
    _sympy_equivalent("(1, 2]", "\\{x\\}", 5)
    _mv_parse.cache_clear()


@lru_cache(maxsize=4096)
def _mv_parse(latex: str, seconds: int) -> tuple:
    mv = _load_math_verify()
    # LaTeX only: ExprExtractionConfig would run sympy.parse_expr, which evals its input.
    config = [mv.LatexExtractionConfig(boxed_match_priority=0)]
    return tuple(mv.parse(f"${latex}$", extraction_config=config, parsing_timeout=seconds))


def _sympy_equivalent(pred: str, gold: str, seconds: int) -> dict:
    """math-verify's verdict on `pred` vs `gold`. Runs in the worker's main thread, where math-verify's
    own ``signal.alarm`` timeouts (`seconds`) work; the caller's hard timeout backs them up."""
    mv = _load_math_verify()
    gold_parsed = _mv_parse(gold, seconds)
    if not gold_parsed:
        return {"equivalent": False, "note": "the gold answer could not be parsed"}
    pred_parsed = _mv_parse(pred, seconds)
    if not pred_parsed:
        return {"equivalent": False, "note": "the answer could not be parsed"}
    return {"equivalent": bool(mv.verify(list(gold_parsed), list(pred_parsed), timeout_seconds=seconds))}


# ---------------------------------------------------------------------------------------------------
# Tasks
# ---------------------------------------------------------------------------------------------------

MATH_SYSTEM_PROMPT = (
    "You are a careful mathematician. Solve the problem step by step, showing your reasoning. "
    'Then state the final answer once, at the end: write "The answer is:" and put the answer inside '
    "\\boxed{}. "
    "Inside \\boxed{} put only the final answer in simplest form, written in LaTeX "
    "(a number, expression, interval, set or tuple), without units."
)
GSM8K_SYSTEM_PROMPT = (
    "You are a careful mathematician. Solve the problem step by step, showing your reasoning. "
    'Then state the final answer once, at the end: write "The answer is:" and put the answer inside '
    "\\boxed{}. "
    "The answer is a single number: write only the number inside \\boxed{}, without units, "
    "currency signs or thousands separators."
)
AIME_SYSTEM_PROMPT = (
    "You are a careful mathematician. Solve the problem step by step, showing your reasoning. "
    'Then state the final answer once, at the end: write "The answer is:" and put the answer inside '
    "\\boxed{}. "
    "The answer is an integer from 0 to 999: write only that integer inside \\boxed{}."
)


class MathTask(Task):
    """A math problem set whose answers are checked by `extract_answer` + `check_equivalence`.

    Args:
        timeout: hard wall-clock limit, in seconds, of each symbolic (math-verify) check.
    """

    domain = "math"
    system_prompt = MATH_SYSTEM_PROMPT
    splits: tuple[str, ...] = ("test",)
    #: What the system prompt allows inside the box, when it asks for a number (GSM8K and arithmetic: a
    #: plain number; AIME: an integer from 0 to 999); None: any expression (MATH).
    answer_number: re.Pattern | None = None

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)

    def load(self, split: str = "test", limit: int | None = None) -> Dataset:
        """Problems of `split` (offline wheel, else the Hub) as a `datasets.Dataset`."""
        self.check_split(split)
        from treecot.tasks.sources import load_source

        return load_source(self.name, split, limit=limit)

    def gold_answer(self, problem: Mapping) -> str:
        """The gold answer of `problem`: its ``reference``, or the answer `extract_answer` reads in it."""
        if not isinstance(problem, Mapping):
            raise TypeError(f"problem must be a Problem dict, got {type(problem).__name__}")
        reference = problem.get("reference")
        if reference is None:
            raise MalformedProblemError(problem, "reference", "missing: no 'reference' (gold answer)")
        gold = str(reference).strip()
        # A reference that is a worked solution: its boxed answer (several boxes in a row: one list), else
        # the answer it states ("The final answer is $28\\%$").
        gold = extract_answer(gold) or gold
        if not gold:
            raise MalformedProblemError(problem, "reference", "empty 'reference' (gold answer)")
        return gold

    def answer_format_problems(self, answer: str) -> list[str]:
        """How an answer section breaks the prompt's format: it must hold exactly one brace-balanced
        ``\\boxed{…}`` (``"boxes: 2"``, ``"no box"``), with a plain number inside when the task asks for one
        (``"not a number: 9+7"``), and nothing after the box but prose and punctuation: no LaTeX, braces or
        tags (``"after the box: \\rightarrow 22}"``). The verifier may still accept such an answer
        (``\\boxed{9+7}`` equals 16); as training text it teaches the student to break the format."""
        text = answer if isinstance(answer, str) else ""
        found = [b for b in boxes(text) if b.content and not b.nested]
        if not found:
            return ["no box"]
        out = [] if len(found) == 1 else [f"boxes: {len(found)}"]
        start, end, content, _ = found[-1]
        if self.answer_number is not None and not self.answer_number.fullmatch(content):
            out.append(f"not {'an integer from 0 to 999' if self.answer_number is AIME_INTEGER else 'a number'}: "
                       f"{_short(content)}")  # fmt: skip
        tail = text[end:]
        head = text[:start].rstrip()
        for opener, closer in _MATH_WRAPPERS.items():  # the box in math mode: its closing delimiter is fine
            if head.endswith(opener) and tail.lstrip().startswith(closer):
                tail = tail.lstrip()[len(closer) :]
                break
        if _FORMAT_TAIL_BAD.search(tail):
            out.append(f"after the box: {_short(tail.strip())}")
        return out

    def verify(self, completion: str, problem: Mapping) -> Verdict:
        """Extract the final answer of `completion` and compare it with the gold answer of `problem`.

        `problem` is a Problem record (a Dataset row) or any dict with a ``reference``. Never raises on
        any `completion`; a missing or empty ``reference`` raises `MalformedProblemError` (a `ValueError`).
        """
        gold = self.gold_answer(problem)
        if not isinstance(completion, str):
            completion = "" if completion is None else str(completion)
        try:
            extracted = extract_answer(completion)
            if extracted is None:
                return Verdict(False, False, None, NO_ANSWER_REASON, {"method": "extract", "gold": gold})
            result = check_equivalence(extracted, gold, timeout=self.timeout)
        except Exception as err:  # a bug, not the completion's fault: record it, never crash a run
            logger.exception("math verifier failed on a completion of %d chars", len(completion))
            return Verdict(False, False, None, f"verifier error: {type(err).__name__}: {err}", {"gold": gold})
        shown = extracted if len(extracted) <= MAX_ANSWER_CHARS else extracted[:MAX_ANSWER_CHARS] + "…"
        details = {"method": result.method, "gold": gold}
        if shown is not extracted:
            details["extracted_chars"] = len(extracted)
        return Verdict(result.equivalent, True, shown, result.reason, details)


class GSM8KTask(MathTask):
    """GSM8K grade-school word problems (train 7,473 / test 1,319); gold answers are plain numbers."""

    name = "gsm8k"
    system_prompt = GSM8K_SYSTEM_PROMPT
    answer_number = PLAIN_NUMBER
    splits = ("train", "test")


class MATHTask(MathTask):
    """MATH competition problems (train 7,500 / test 5,000); gold = the solution's last ``\\boxed{}``."""

    name = "math"
    splits = ("train", "test")


class MATH500Task(MathTask):
    """MATH-500, OpenAI's 500-problem subset of the MATH test set."""

    name = "math500"


class AIME24Task(MathTask):
    """AIME 2024 (30 problems); answers are integers 0–999."""

    name = "aime24"
    system_prompt = AIME_SYSTEM_PROMPT
    answer_number = AIME_INTEGER


class AIME25Task(MathTask):
    """AIME 2025 (15 problems in the offline set); answers are integers 0–999."""

    name = "aime25"
    system_prompt = AIME_SYSTEM_PROMPT
    answer_number = AIME_INTEGER
