"""Reading answers out of completions and solutions: boxed answers, answer sections, final answers.

    >>> from treecot.tasks.answers import extract_response, last_boxed, split_sections
    >>> last_boxed("so $x = \\\\boxed{\\\\frac{1}{2}}$")
    '\\\\frac{1}{2}'
    >>> split_sections("<think>2 + 2</think>\\n<answer>4</answer>")
    ('<think>2 + 2</think>\\n', '4')
    >>> extract_response("<think>draft</think> The response. ")
    'The response.'

Every task reads completions through this module; each reading is implemented once:

- **Boxes.** `boxes` finds every brace-balanced ``\\boxed{…}`` / ``\\fbox{…}`` (and ``\\boxed 5``) in one
  linear pass. Its `dialect` keeps apart three readings that differ on rare inputs (see `boxes`): the
  math verifier's (``"latex"``), MATH gold solutions' (``"loose"``, `last_boxed`) and the diagnostics'
  (``"braced"``, `extract_answer`). `final_boxes` is the answer a math completion gives in boxes: the
  last box with the boxes right before it (``\\boxed{1}, \\boxed{2}`` is one answer).
- **Sections.** `split_sections` splits a completion into thinking and answer section (the diagnostics'
  definition); `extract_response` is the answer section the instruction checkers read. Two tasks read the
  answer section their own way, kept as they were: the math verifier reads only closed, non-empty
  ``<answer>`` tags (`answer_tag`); Blocksworld reads the last ``<answer>`` tag of what follows the
  thinking (`after_thinking`, then ``answer_tag(…, unclosed=True)``).
- **Final answers.** `extract_answer` is the task-agnostic final answer (the diagnostics' "no answer"
  when no task is at hand). The math tasks' own reading, which also judges whether a stated answer is
  written as math, is `treecot.tasks.math.extract_answer` (built on `final_boxes` and `answer_tag`).

Everything here runs in linear time (up to sorting the boxes) on any text.
"""

from __future__ import annotations

import re
from typing import Literal, NamedTuple

__all__ = [
    "MAX_BOXES_PER_ANSWER",
    "Box",
    "after_thinking",
    "answer_tag",
    "boxes",
    "extract_answer",
    "extract_response",
    "final_boxes",
    "last_boxed",
    "split_sections",
]

# ---------------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------------

#: At most this many boxes of a final run (``\boxed{1}, \boxed{2}, …``) are read as one answer.
MAX_BOXES_PER_ANSWER = 64

# One pass over the text: escapes, `\boxed{`, `\boxed 5` (group 1), plain braces. The dialects differ only in
# what a backslash escapes and in how `\boxed 5` is written (see `boxes`).
_BOX_TOKENS = {
    "latex": re.compile(r"\\\\|\\[{}]|\\(?:boxed|fbox)\s*\{|\\(?:boxed|fbox)[ \t]+([^\s{}$\\]+)|[{}]"),
    "loose": re.compile(
        r"\\\\(?!boxed|fbox)|\\[{}]|\\(?:boxed|fbox)\s*\{|\\(?:boxed|fbox)\s+([^\s${}]+)|[{}]"
    ),
    "braced": re.compile(r"\\[{}]|\\(?:boxed|fbox)\s*\{|[{}]"),
}
# What may stand between the boxes of one answer: spaces, punctuation, math delimiters, LaTeX spacing,
# "and" / "or" (also inside \text{}), and the left-hand side of an assignment (`y_2 =`, `\alpha =`).
_BOX_GAP = re.compile(
    r"(?:\s|[,;.&~]|\$|\\[()\[\],;:! ]|\\\\|\\q?quad(?![A-Za-z])"
    r"|(?<![A-Za-z])(?:and|or)(?![A-Za-z])"
    r"|\\(?:text|textbf|textit|textrm|textnormal|mathrm|mbox)\s*\{\s*(?:and|or|,|;)?\s*\}"
    r"|(?:(?<![A-Za-z\\])[A-Za-z]|\\[A-Za-z]+)(?:_\{?\w+\}?)?\s*=(?!=))*",
    re.IGNORECASE,
)
_MAX_GAP_CHARS = 200
_BOX_OPEN_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")


class Box(NamedTuple):
    """One box found by `boxes`.

    Args:
        start (`int`):
            Where ``\\boxed`` starts.
        end (`int`):
            Where the box ends (after its closing brace, or after the token of ``\\boxed 5``).
        content (`str`):
            What the box holds, stripped of surrounding whitespace (``""`` for ``\\boxed{}``).
        nested (`bool`):
            Whether the box closes inside another box.
    """

    start: int
    end: int
    content: str
    nested: bool


def boxes(text: str, dialect: Literal["latex", "loose", "braced"] = "latex") -> list[Box]:
    """Every brace-balanced ``\\boxed{…}`` / ``\\fbox{…}`` of `text` (empty ones too), in the order they close.

    One linear pass; an unclosed box is no box. The dialects agree on ordinary LaTeX and differ only in
    corner cases, each the reading one caller has always had:

    - ``"latex"`` (the math verifier): ``\\\\`` is an escaped backslash, so a later ``\\\\boxed{x}`` is a line
      break and text, no box; ``\\boxed 5`` is spaces or tabs, then a token without braces, ``$`` or backslashes.
    - ``"loose"`` (MATH gold solutions, `last_boxed`): ``\\boxed`` right after another backslash is still a
      box; ``\\boxed 5`` is any whitespace (newlines too), then a token without braces or ``$`` (it may hold
      backslashes: ``\\boxed \\pi`` holds ``\\pi``).
    - ``"braced"`` (the diagnostics, `extract_answer`): only ``\\boxed{…}``, never ``\\boxed 5``; a brace right
      after any backslash is literal (``\\\\{`` too), and ``\\boxed`` right after another backslash is a box.

    Args:
        text (`str`):
            The text to read.
        dialect (`Literal['latex', 'loose', 'braced']`, *optional*, defaults to `"latex"`):
            ``"latex"``, ``"loose"`` or ``"braced"``, as above.

    Returns:
        `list[Box]`: The boxes as `Box` tuples ``(start, end, content, nested)``.
    """
    tokens = _BOX_TOKENS[dialect]
    starts = [i for i in (text.find("\\boxed"), text.find("\\fbox")) if i != -1]
    if not starts:
        return []
    # Braces before the first box cannot change which boxes balance: a box closes when the depth comes
    # back to its own outer depth, which only depends on what follows it.
    depth = 0
    open_boxes: list[tuple[int, int, int]] = []  # (depth outside the box, content start, box start)
    found: list[Box] = []
    for match in tokens.finditer(text, min(starts)):
        token = match.group(0)
        if match.lastindex:  # `\boxed 5`: the next token, without braces
            found.append(Box(match.start(), match.end(), match.group(1), bool(open_boxes)))
        elif token[0] == "\\" and len(token) == 2:  # an escape (\\, \{ or \}): not a grouping brace
            continue
        elif token == "{":
            depth += 1
        elif token == "}":
            if depth == 0:
                continue  # a stray closing brace
            depth -= 1
            if open_boxes and open_boxes[-1][0] == depth:
                _, content_start, box_start = open_boxes.pop()
                content = text[content_start : match.start()].strip()
                found.append(Box(box_start, match.end(), content, bool(open_boxes)))
        else:  # `\boxed{`
            open_boxes.append((depth, match.end(), match.start()))
            depth += 1
    return found


def last_boxed(text: str) -> str | None:
    """Content of the last brace-balanced ``\\boxed{…}`` (or ``\\fbox{…}``) in `text`, else None.

    The reading of MATH gold solutions: `boxes` in its ``"loose"`` dialect; the last box counts even when
    it is empty (``""``).

    Args:
        text (`str`):
            A worked solution.

    Returns:
        `str | None`: The stripped content of the box that starts last, or None without a box.
    """
    if not text:
        return None
    found = boxes(text, dialect="loose")
    return max(found, key=lambda b: b.start).content if found else None


def final_boxes(text: str) -> tuple[int, list[str]] | None:
    """The answer a completion gives in boxes (the math verifier's reading, `boxes` in ``"latex"``).

    The last non-empty box (the innermost, if boxes nest) and the boxes right before it that only spaces,
    punctuation, "and" / "or", math delimiters or ``x_2 =`` separate from it
    (``\\boxed{-2} \\quad \\text{and} \\quad \\boxed{1}``), at most `MAX_BOXES_PER_ANSWER` of them.

    Args:
        text (`str`):
            A completion.

    Returns:
        `tuple[int, list[str]] | None`: ``(where the last box ends, contents in order)``, or None without a
        non-empty box.
    """
    found = [b for b in boxes(text) if b.content]
    if not found:
        return None
    last = max(found, key=lambda b: b.start)
    if last.nested:  # nested inside another box: that box's content, not a run
        return last.end, [last.content]
    top = sorted((b for b in found if not b.nested), key=lambda b: b.start)
    run = [top[-1]]
    for prev in reversed(top[:-1]):
        if len(run) >= MAX_BOXES_PER_ANSWER:
            break
        gap = text[prev.end : run[-1].start]
        if len(gap) > _MAX_GAP_CHARS or not _BOX_GAP.fullmatch(gap):
            break
        run.append(prev)
    return last.end, [b.content for b in reversed(run)]


# ---------------------------------------------------------------------------------------------------
# Sections
# ---------------------------------------------------------------------------------------------------

_ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.IGNORECASE)
_THINK_END_RE = re.compile(r"</think>|<\|end_of_thought\|>", re.IGNORECASE)
_THINK_OPEN_RE = re.compile(r"<think>|<\|begin_of_thought\|>", re.IGNORECASE)
_SOLUTION_WRAP_RE = re.compile(r"<\|(?:begin|end)_of_solution\|>", re.IGNORECASE)
_FINAL_STATEMENT_RE = re.compile(
    r"\\(?:boxed|fbox)\s*\{|the\s+(?:final\s+)?answer\s+is|final\s+answer", re.IGNORECASE
)
# Blocksworld's readings: R1 / QwQ thinking tags only; an unclosed answer tag runs to the end.
_R1_THINK_OPEN_RE = re.compile(r"<think>", re.IGNORECASE)
_R1_THINK_CLOSE_RE = re.compile(r"</think>", re.IGNORECASE)
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)(?:</answer>|$)", re.IGNORECASE | re.DOTALL)


def split_sections(text: str, instructions: bool = False) -> tuple[str, str | None]:
    """Split a completion into ``(thinking, answer)`` sections.

    The *answer section* is the content of the last ``<answer>`` tag (an unclosed tag runs to the end of
    the text), else the text after the last ``</think>`` or ``<|end_of_thought|>`` (R1 / Sky-T1 style; a
    ``<|begin_of_solution|>`` wrapper is removed). An opened but never closed ``<think>`` means there is no
    answer section. Untagged plain text is all answer when `instructions` is set (the response itself is
    what the checkers read); otherwise the answer section starts at the line holding the last final-answer
    statement (``\\boxed{…}``, "the answer is", "final answer"), and is the whole text if there is none.
    The *thinking section* is everything before the answer section.

    Args:
        text (`str`):
            A completion.
        instructions (`bool`, *optional*, defaults to `False`):
            Read untagged text as an instruction task's response (all of it is the answer).

    Returns:
        `tuple[str, str | None]`: ``(thinking, answer)``; `answer` is None when the text has no answer section
        (an unclosed ``<think>``, or nothing after the thinking), and ``""`` when the section exists but is
        empty.
    """
    opens = list(_ANSWER_OPEN_RE.finditer(text))
    if opens:
        last = opens[-1]
        close = _ANSWER_CLOSE_RE.search(text, last.end())
        answer = text[last.end() : close.start() if close else len(text)]
        return text[: last.start()], answer
    ends = list(_THINK_END_RE.finditer(text))
    if ends:
        last = ends[-1]
        answer = _SOLUTION_WRAP_RE.sub("", text[last.end() :])
        return text[: last.start()], answer if answer.strip() else None
    if _THINK_OPEN_RE.search(text):
        return text, None
    if instructions:
        return "", text
    finals = list(_FINAL_STATEMENT_RE.finditer(text))
    if not finals:
        return "", text
    line_start = text.rfind("\n", 0, finals[-1].start()) + 1
    return text[:line_start], text[line_start:]


def extract_response(completion: str) -> str:
    """The part of `completion` the instruction checkers read, stripped of surrounding whitespace.

    The answer section of `split_sections` with ``instructions=True``: the content of the last ``<answer>``
    tag (an unclosed tag runs to the end); else the text after the last ``</think>`` /
    ``<|end_of_thought|>``; an opened but never closed ``<think>`` means no response; else the whole text.

    Args:
        completion (`str`):
            A completion; anything but a string has no response.

    Returns:
        `str`: The response, ``""`` when there is none.
    """
    if not isinstance(completion, str):
        return ""
    _, answer = split_sections(completion, instructions=True)
    return (answer or "").strip()


def after_thinking(text: str) -> str | None:
    """What follows the last ``</think>`` (Blocksworld's reading; R1 / QwQ tags only, unlike `split_sections`).

    Args:
        text (`str`):
            A completion.

    Returns:
        `str | None`: The text after the last ``</think>``; the whole text without thinking tags; None when a
        ``<think>`` block is never closed (no answer yet).
    """
    closes = list(_R1_THINK_CLOSE_RE.finditer(text))
    if closes:
        return text[closes[-1].end() :]
    if _R1_THINK_OPEN_RE.search(text):
        return None
    return text


def answer_tag(text: str, *, unclosed: bool = False) -> str | None:
    """Content of the last ``<answer>`` tag of `text`, or None.

    The two readings differ on purpose and are kept as their callers have always had them:

    - ``unclosed=False`` (the math verifier): only closed ``<answer>…</answer>`` tags count, written exactly
      so (lower case); empty ones are skipped; the content is stripped.
    - ``unclosed=True`` (Blocksworld): tags match in any case; an unclosed tag runs to the end of the text
      (before a final newline), taking in any later ``<answer>``; the last tag counts even when empty; the
      content is returned as written.

    Args:
        text (`str`):
            A completion (or, for Blocksworld, what follows its thinking: `after_thinking`).
        unclosed (`bool`, *optional*, defaults to `False`):
            Read as Blocksworld does (see above).

    Returns:
        `str | None`: The content of the tag, or None when there is none.
    """
    if unclosed:
        tags = list(_ANSWER_TAG_RE.finditer(text))
        return tags[-1].group(1) if tags else None
    end = text.rfind("</answer>")
    while end != -1:
        start = text.rfind("<answer>", 0, end)
        if start == -1:
            return None
        content = text[start + len("<answer>") : end].strip()
        if content:
            return content
        end = text.rfind("</answer>", 0, start)
    return None


# ---------------------------------------------------------------------------------------------------
# Final answers
# ---------------------------------------------------------------------------------------------------

_ANSWER_IS_RE = re.compile(
    r"(?:the\s+(?:final\s+)?answer\s+is|final\s+answer)\s*(?:is)?\s*[:=]?[ \t]*([^\n]*)", re.IGNORECASE
)


def extract_answer(text: str) -> str | None:
    """Task-agnostic final answer of `text`, or None.

    Looks in the answer section (see `split_sections`) for, in order: the last non-empty balanced
    ``\\boxed{…}`` (`boxes` in its ``"braced"`` dialect); the last "the answer is: X" / "final answer: X" (to
    the end of its line); the raw content of an ``<answer>`` tag. The last two are skipped when they hold a
    ``\\boxed{`` (an empty or unclosed box, e.g. from a truncated output, is no answer). Task verifiers
    (`Task.verify`) are more precise; this is the fallback when no problem is at hand.

    Args:
        text (`str`):
            A completion.

    Returns:
        `str | None`: The answer, stripped, or None when the completion gives none.
    """
    _, section = split_sections(text)
    if section is None:
        return None
    boxed = [b for b in boxes(section, dialect="braced") if b.content]
    if boxed:
        return max(boxed, key=lambda b: b.start).content
    # A box that is empty or never closed (truncated output) is no answer, whatever surrounds it.
    for m in reversed(list(_ANSWER_IS_RE.finditer(section))):
        value = m.group(1).strip().rstrip(".").strip()
        if value and not _BOX_OPEN_RE.search(value):
            return value
    if _ANSWER_OPEN_RE.search(text):
        value = section.strip()
        if value and not _BOX_OPEN_RE.search(value):
            return value
    return None
