"""Normalisation of math answers: LaTeX clean-up and plain numbers, read without ever evaluating them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from treecot.tasks.math.guards import MAX_NUMBER_DIGITS

#: Numeric tolerance for non-integers.
REL_TOL = 1e-6
ABS_TOL = 1e-9

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_THOUSANDS = re.compile(r"(?<=\d)(?:(?:\{,\}|,\\!|,\\,)\s*|\\,(?=\d{3}\b))(?=\d)")  # 32,\! 349
_MATH_DELIMS = re.compile(r"(\\\\)|\\\$|\$|\\\(|\\\)|\\\[|\\\]")  # group 1: a LaTeX line break, kept
_SIZING = re.compile(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|displaystyle|textstyle)(?![a-zA-Z])")
_SPACING = re.compile(r"(\\\\)|\\[,;:! ]|\\q?quad(?![a-zA-Z])|~")  # group 1: a LaTeX line break, kept
_TEXT_WRAP = re.compile(
    r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|hbox)\s*\{([^{}]*)\}"
)
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree")
_WS = re.compile(r"\s+")


def _keep_line_breaks(match: re.Match) -> str:
    return match.group(1) or " "


def clean_answer(s: str) -> str:
    """LaTeX clean-up shared by the exact and numeric comparisons (spaces kept, single).

    Args:
        s (`str`):
            An answer or a gold answer.

    Returns:
        `str`: `s` without control characters, math delimiters, sizing and spacing commands, ``\\text{}``
        wrappers and degrees, with ``\\dfrac`` / ``\\tfrac`` as ``\\frac`` (and so for ``\\binom``) and
        without a trailing full stop.
    """
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


def shorten(s: str, limit: int = 60) -> str:
    """`s` on one line, cut to `limit` characters (with an ellipsis), for verdict reasons and logs.

    Args:
        s (`str`):
            The text to show.
        limit (`int`, *optional*, defaults to `60`):
            The most characters of the result.

    Returns:
        `str`: `s` with its whitespace runs made single spaces, at most `limit` characters long.
    """
    s = _WS.sub(" ", s).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


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
class ParsedNumber:
    """A plain number read by `parse_number`: its exact value, whether it was written as an integer (no
    decimal point, no fraction) and whether it was a percentage."""

    value: Fraction
    integer: bool  # written as an integer (no decimal point, no fraction)
    percent: bool


def parse_number(cleaned: str) -> ParsedNumber | None:
    """A plain number (with thousands separators, currency, units, %), never via eval.

    Args:
        cleaned (`str`):
            An answer after `clean_answer`.

    Returns:
        `ParsedNumber` or `None`: the number, or None if `cleaned` is not one plain number.
    """
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
            return ParsedNumber(Fraction(s.replace(",", "")), "." not in s, percent)
        m = _LATEX_FRAC.fullmatch(s)
        if m:
            sign = -1 if m.group(1) == "-" else 1
            num = Fraction((m.group(2) or m.group(3)).replace(",", ""))
            den = Fraction((m.group(4) or m.group(5)).replace(",", ""))
            return ParsedNumber(sign * num / den, False, percent) if den else None
        m = _SLASH_FRAC.fullmatch(s)
        if m:
            den = Fraction(m.group(2).replace(",", ""))
            return ParsedNumber(Fraction(m.group(1).replace(",", "")) / den, False, percent) if den else None
    except (ValueError, ZeroDivisionError):  # e.g. more digits than int() accepts
        return None
    return None


def decimal_comma(cleaned: str) -> ParsedNumber | None:
    """``1000,99`` or ``2,74`` read with a decimal comma, where the comma cannot be a thousands separator.

    Only an answer compared with a reference written with a decimal point is read this way: a reference
    such as ``4,6`` is a list.

    Args:
        cleaned (`str`):
            An answer after `clean_answer`.

    Returns:
        `ParsedNumber` or `None`: the number, or None when `cleaned` is not ``<digits>,<digits>`` or
        `parse_number` reads it (the comma is then a thousands separator).
    """
    m = _DECIMAL_COMMA.fullmatch(cleaned.strip())
    if m is None or parse_number(cleaned) is not None:
        return None
    return ParsedNumber(Fraction(f"{m.group(1)}.{m.group(2)}"), False, False)


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
    number = parse_number(clean_answer(s))
    return None if number is None else _format_number(number.value)


def _close(a: Fraction, b: Fraction, integers: bool) -> bool:
    if a == b:
        return True
    if integers:
        return False
    diff = abs(a - b)
    return diff <= ABS_TOL or diff <= REL_TOL * max(abs(a), abs(b))


def numbers_equal(a: ParsedNumber, b: ParsedNumber) -> bool:
    """Whether two numbers are equal (integers exactly, others within `REL_TOL` / `ABS_TOL`).

    Args:
        a (`ParsedNumber`):
            One number.
        b (`ParsedNumber`):
            The other; when exactly one side is a percentage, its value or value/100 may match.

    Returns:
        `bool`: the values are equal.
    """
    a_values = [a.value] + ([a.value / 100] if a.percent and not b.percent else [])
    b_values = [b.value] + ([b.value / 100] if b.percent and not a.percent else [])
    integers = a.integer and b.integer and len(a_values) == len(b_values) == 1
    return any(_close(x, y, integers) for x in a_values for y in b_values)
