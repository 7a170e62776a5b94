"""Answer extraction: the final answer written in a completion (boxes, ``<answer>`` tags, "The answer is …")."""

from __future__ import annotations

import re

from treecot.tasks.answers import answer_tag, final_boxes
from treecot.tasks.math.normalize import clean_answer, parse_number

NO_ANSWER_REASON = "no answer found: no \\boxed{}, <answer> tag or 'The answer is …' in the completion"

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
    return (
        bool(_MATH_SPAN.fullmatch(value))
        or parse_number(clean_answer(value)) is not None
        or _words(value) == 0
    )


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
