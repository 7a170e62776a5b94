"""Guards against answers that would make sympy hang or explode: limits checked before any parsing."""

from __future__ import annotations

import re

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


def unsafe_reason(s: str) -> str | None:
    """Why `s` must not be handed to sympy, or None if it is safe to try.

    Args:
        s (`str`):
            A cleaned answer or gold answer.

    Returns:
        `str` or `None`: the reason (too deeply nested, a too long number, a huge exponent, a too high
        exponent tower or a too large factorial), to follow "the answer …"; None when none applies.
    """
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
