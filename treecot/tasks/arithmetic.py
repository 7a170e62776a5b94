"""Arithmetic: seeded one- and two-step word problems, GSM8K style with small numbers.

Why it exists: the embedded default model, SmolLM2-135M-Instruct, is too small for GSM8K. Sampled at
temperature 0.7 it solved 0 of 128 attempts on the 16 shortest two-step GSM8K train problems, and MCTS
found no correct path in 16 rollouts on any of them. It solves about one attempt in ten of these
problems, so a search over them finds correct and wrong paths, and the demo can train on them. The
problems are checked by the math verifier, like GSM8K.

    >>> from treecot.tasks import get_task
    >>> task = get_task("arithmetic")
    >>> p = task.load("test", limit=1)[0]
    >>> p["question"], p["reference"], p["meta"]["solution"]

Problems are generated on the fly and deterministically: the same ``seed`` and split give the same rows
in the same order. The splits are disjoint: a question's hash decides its split, so no test question
appears in train.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator

from datasets import Dataset

from treecot.tasks.base import make_problem
from treecot.tasks.math import GSM8K_SYSTEM_PROMPT, PLAIN_NUMBER, MathTask

_NAMES = ("Sam", "Mia", "Tom", "Ava", "Leo", "Zoe", "Ben", "Ivy", "Max", "Lily", "Noah", "Emma")
_ITEMS = ("apples", "pencils", "stickers", "marbles", "cookies", "books", "shells", "cards", "toy cars")
_CONTAINERS = ("bags", "boxes", "jars", "baskets")

#: Templates: (operations, text, answer). Text placeholders: n (name), it (items), c (container), a, b, d.
_TEMPLATES: tuple[tuple[str, str, str], ...] = (
    ("add", "{n} has {a} {it}. {n} gets {b} more {it}. How many {it} does {n} have now?", "a + b"),
    ("sub", "{n} has {s} {it} and gives away {b} of them. How many {it} are left?", "s - b"),
    ("mul", "{n} buys {a} {c} with {d} {it} in each. How many {it} does {n} have?", "a * d"),
    (
        "add",
        "{n} has {a} {it}. A friend has {b} more {it} than {n}. How many {it} does the friend have?",
        "a + b",
    ),
    ("div", "{n} shares {p} {it} equally among {d} friends. How many {it} does each friend get?", "p / d"),
    (
        "add,sub",
        "{n} has {a} {it}, gets {b} more, then gives away {e}. How many {it} does {n} have now?",
        "a + b - e",
    ),
    ("mul,add", "{n} buys {d} {c} with {a} {it} in each and finds {b} more. How many {it} now?", "d * a + b"),
)


def _evaluate(formula: str, values: dict[str, int]) -> int:
    """Value of a template formula ("a + b - e", "d * a + b": left to right, `*` and `/` first)."""
    tokens = formula.split()
    terms: list[tuple[str, int]] = []  # (sign, product)
    sign, acc, op = "+", values[tokens[0]], None
    for tok in tokens[1:]:
        if tok in "+-*/":
            if tok in "+-":
                terms.append((sign, acc))
                sign, op = tok, None
            else:
                op = tok
            continue
        v = values[tok]
        if op == "*":
            acc *= v
        elif op == "/":
            acc //= v
        else:
            acc = v
    terms.append((sign, acc))
    return sum(v if s == "+" else -v for s, v in terms)


def _split_of(question: str) -> str:
    """Deterministic split: about one question in five goes to test."""
    return "test" if int(hashlib.sha256(question.encode()).hexdigest()[:8], 16) % 5 == 0 else "train"


class ArithmeticTask(MathTask):
    """Synthetic one- and two-step arithmetic word problems (add, subtract, multiply, divide).

    Args:
        max_value (`int`, *optional*, defaults to `20`):
            Largest operand (operands are drawn from 2..max_value; answers are whole numbers).
        max_steps (`int`, *optional*, defaults to `2`):
            1 keeps the one-operation templates only; 2 (default) adds two-operation ones.
        seed (`int`, *optional*, defaults to `0`):
            Generator seed (a different seed gives a different problem stream).
        timeout (`float`, *optional*, defaults to `DEFAULT_TIMEOUT`):
            Hard wall-clock limit of a symbolic check (see `MathTask`).
    """

    name = "arithmetic"
    system_prompt = GSM8K_SYSTEM_PROMPT
    answer_number = PLAIN_NUMBER
    splits = ("train", "test")
    #: Default number of problems per split.
    default_sizes: dict[str, int] = {"train": 2000, "test": 500}

    def __init__(self, max_value: int = 20, max_steps: int = 2, seed: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(max_value, bool) or not isinstance(max_value, int) or max_value < 3:
            raise ValueError(f"max_value must be an integer >= 3, got {max_value!r}")
        if max_steps not in (1, 2):
            raise ValueError(f"max_steps must be 1 or 2, got {max_steps!r}")
        self.max_value = max_value
        self.max_steps = max_steps
        self.seed = seed

    def _templates(self) -> list[tuple[str, str, str]]:
        return [t for t in _TEMPLATES if t[0].count(",") + 1 <= self.max_steps]

    def iter_problems(self, split: str = "test") -> Iterator[dict]:
        """Endless deterministic stream of distinct Problem records of `split`."""
        self.check_split(split)
        templates = self._templates()
        seen: set[str] = set()
        index = 0
        for attempt in itertools.count():
            rng = random.Random(f"arithmetic/{self.seed}/{self.max_value}/{self.max_steps}/{attempt}")
            ops, text, formula = templates[attempt % len(templates)]
            a, b, d = (rng.randint(2, self.max_value) for _ in range(3))
            d = min(d, 9)
            values = {"a": a, "b": b, "d": d, "s": a + b, "p": a * d, "e": rng.randint(1, a + b - 1)}
            question = text.format(
                n=rng.choice(_NAMES), it=rng.choice(_ITEMS), c=rng.choice(_CONTAINERS), **values
            )
            if question in seen or _split_of(question) != split:
                continue
            seen.add(question)
            answer = _evaluate(formula, values)
            shown = " ".join(str(values[t]) if t in values else t for t in formula.split())
            meta = {
                "source": "treecot-arithmetic",
                "split": split,
                "index": index,
                "steps": ops.count(",") + 1,
                "operations": ops,
                "solution": f"{shown} = {answer}",
                "seed": self.seed,
            }
            index += 1
            yield make_problem(self.name, question, str(answer), meta)

    def load(self, split: str = "test", limit: int | None = None, n: int | None = None) -> Dataset:
        """`n` problems of `split` (default 2,000 train / 500 test); the first `limit` of them.

        Deterministic: the same arguments give the same rows, and a smaller `n` or `limit` a prefix.
        """
        self.check_split(split)
        count = self.default_sizes[split] if n is None else n
        if limit is not None:
            if limit < 0:
                raise ValueError(f"limit must be >= 0, got {limit}")
            count = min(count, limit)
        if count < 0:
            raise ValueError(f"the number of problems must be >= 0, got {count}")
        return Dataset.from_list(list(itertools.islice(self.iter_problems(split), count)))
