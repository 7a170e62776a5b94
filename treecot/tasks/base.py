"""The `Task` interface shared by every domain (math, planning, instruction following).

A *Problem* is a plain dict (one row of a `datasets.Dataset`)::

    {"schema_version": 1, "id": "gsm8k-3f2a…", "task": "gsm8k", "question": "…",
     "reference": "18", "meta": {...}}

`reference` is always a string so that problem sets of different tasks share one Arrow schema:
the gold answer for math, a newline-separated PDDL plan for Blocksworld, a JSON object of
instruction ids and kwargs for instruction following. `meta` is a per-task dict (source, split,
difficulty, …) whose fields are the same for every row of one task.

Verifiers take any completion text without raising; a Problem record that lacks a field its task needs
(or holds one it cannot read) raises `MalformedProblemError`, a `ValueError` naming the problem and the
field: a broken record is a data bug to fix, not a wrong answer to count.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

PROBLEM_SCHEMA_VERSION = 1


def problem_id(task: str, question: str) -> str:
    """Stable id of a problem: the task name plus a hash of the question text.

    Identical across runs, machines and Python versions (no use of `hash()`).
    """
    digest = hashlib.sha256(f"{task}\n{question.strip()}".encode()).hexdigest()[:16]
    return f"{task}-{digest}"


def make_problem(task: str, question: str, reference: str, meta: dict | None = None) -> dict:
    """Build a Problem record (DESIGN §4) with its stable id."""
    return {
        "schema_version": PROBLEM_SCHEMA_VERSION,
        "id": problem_id(task, question),
        "task": task,
        "question": question,
        "reference": reference,
        "meta": dict(meta or {}),
    }


class MalformedProblemError(ValueError):
    """A Problem record that its task cannot verify against: names the problem's id and the field.

    ``problem_id`` is the record's ``id`` (or ``"(without id)"``), ``field`` a dotted path such as
    ``"reference"`` or ``"meta.optimal_length"``.
    """

    def __init__(self, problem: Any, field: str, why: str):
        self.problem_id = problem_name(problem)
        self.field = field
        super().__init__(f"problem {self.problem_id}: {field}: {why}")


def problem_name(problem: Any) -> str:
    """The ``id`` of a Problem record for messages, or ``"(without id)"``."""
    pid = problem.get("id") if isinstance(problem, Mapping) else None
    return str(pid) if pid else "(without id)"


def problem_meta(problem: Mapping) -> Mapping:
    """``problem["meta"]`` (an empty dict when absent); `MalformedProblemError` when it is not a mapping."""
    meta = problem.get("meta")
    if meta is None:
        return {}
    if not isinstance(meta, Mapping):
        raise MalformedProblemError(problem, "meta", f"must be an object, got {type(meta).__name__}")
    return meta


@dataclass
class Verdict:
    """What a verifier concluded about one completion.

    correct:   the completion's answer is right (math: equivalent to the gold answer; planning: the plan
               reaches the goal; instructions: every instruction is followed).
    answered:  an answer could be extracted at all (the paper's "no answer" rate is 1 - mean(answered)).
    extracted: what was read as the answer (a string, a list of actions, …), or None.
    reason:    a short human-readable explanation (why it is wrong, which step fails, …).
    details:   optional task-specific extras (e.g. per-instruction results, plan optimality).
    """

    correct: bool
    answered: bool
    extracted: Any = None
    reason: str = ""
    details: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class Task(ABC):
    """One benchmark / problem family. Subclasses set `name`, `domain` and `system_prompt`."""

    name: str = ""
    #: "math", "planning" or "instructions": selects node patterns and diagnostics.
    domain: str = ""
    #: States the expected answer format; used by `prompt()`.
    system_prompt: str = ""
    #: The splits `load()` accepts.
    splits: tuple[str, ...] = ("test",)

    @abstractmethod
    def load(self, split: str = "test", limit: int | None = None) -> Dataset:
        """Problems of `split` as a `datasets.Dataset` of Problem records (first `limit` rows)."""

    def prompt(self, problem: dict) -> list[dict]:
        """Chat messages (system + user) that ask the model to solve `problem`."""
        return [
            {"role": "system", "content": self.system_prompt},
            {"role": "user", "content": problem["question"]},
        ]

    @abstractmethod
    def verify(self, completion: str, problem: dict) -> Verdict:
        """Score `completion` against `problem` (a Problem dict). Never raises on hostile text; a problem
        record the task cannot verify against raises `MalformedProblemError` (a `ValueError`)."""

    def answer_format_problems(self, answer: str) -> list[str]:
        """How the text of an answer section breaks the format `system_prompt` asks for (empty: it keeps
        it). Only for judging training text: a verdict never depends on it. The base task asks nothing."""
        return []

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise ValueError(f"task {self.name!r} has no split {split!r}; choose one of {list(self.splits)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"
