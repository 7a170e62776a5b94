"""The Blocksworld domain: block colours, facts and ground actions, written in PDDL syntax.

Facts are tuples (``("on", "red", "blue")``) read from and written as PDDL strings (``"(on red blue)"``)
by `parse_fact` and `format_fact`; an `Action` is one ground action (``"(unstack red blue)"``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Block names, in the order PlanBench uses them.
COLOURS: tuple[str, ...] = (
    "red",
    "blue",
    "orange",
    "yellow",
    "white",
    "magenta",
    "black",
    "cyan",
    "green",
    "violet",
    "silver",
    "gold",
)

#: Action name -> number of arguments.
ACTION_ARITY: dict[str, int] = {"pick-up": 1, "put-down": 1, "stack": 2, "unstack": 2}
#: Predicate name -> number of arguments.
PREDICATE_ARITY: dict[str, int] = {"on": 2, "ontable": 1, "clear": 1, "holding": 1, "handempty": 0}

DOMAIN_NAME = "blocksworld-4ops"

Fact = tuple[str, ...]

#: A block name as PDDL writes it (``red``, ``b1``).
BLOCK_NAME = r"[a-z][a-z0-9_-]*"
#: One action in PDDL syntax, with the spellings of the action names that `PDDL_ACTION_NAMES` knows.
PDDL_ACTION_RE = re.compile(
    rf"\(\s*(pick-up|pickup|pick_up|put-down|putdown|put_down|stack|unstack)\s+({BLOCK_NAME})(?:\s+({BLOCK_NAME}))?\s*\)"
)
#: Spellings of the action names (``pickup``, ``put_down``, …) -> the domain's names.
PDDL_ACTION_NAMES = {
    "pick-up": "pick-up",
    "pickup": "pick-up",
    "pick_up": "pick-up",
    "put-down": "put-down",
    "putdown": "put-down",
    "put_down": "put-down",
    "stack": "stack",
    "unstack": "unstack",
}


_ATOM_RE = re.compile(r"^\(\s*([a-z][a-z0-9_-]*)((?:\s+[a-z0-9_-]+)*)\s*\)$")


def parse_fact(fact: str | Sequence[str]) -> Fact:
    """Read a Blocksworld fact, ``"(on red blue)"`` or ``("on", "red", "blue")``, as a tuple.

    Raises:
        ValueError: if the predicate is unknown or has the wrong number of arguments.
    """
    if isinstance(fact, str):
        match = _ATOM_RE.match(fact.strip().lower())
        if match is None:
            raise ValueError(f"not a PDDL fact: {fact!r} (expected e.g. '(on red blue)')")
        parts: Fact = (match.group(1), *match.group(2).split())
    else:
        parts = tuple(str(p).lower() for p in fact)
    if not parts or parts[0] not in PREDICATE_ARITY:
        raise ValueError(f"unknown predicate in fact {fact!r}; expected one of {sorted(PREDICATE_ARITY)}")
    if len(parts) - 1 != PREDICATE_ARITY[parts[0]]:
        raise ValueError(
            f"predicate {parts[0]!r} takes {PREDICATE_ARITY[parts[0]]} argument(s), got {len(parts) - 1} "
            f"in {fact!r}"
        )
    return parts


def format_fact(fact: Fact) -> str:
    """Write a fact tuple in PDDL syntax: ``("on", "red", "blue")`` -> ``"(on red blue)"``."""
    return "(" + " ".join(fact) + ")"


@dataclass(frozen=True)
class Action:
    """One ground Blocksworld action, e.g. ``Action("unstack", ("red", "blue"))``."""

    name: str
    args: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.name not in ACTION_ARITY:
            raise ValueError(f"unknown action {self.name!r}; expected one of {sorted(ACTION_ARITY)}")
        if len(self.args) != ACTION_ARITY[self.name]:
            raise ValueError(
                f"action {self.name!r} takes {ACTION_ARITY[self.name]} argument(s), got {len(self.args)}"
            )

    @property
    def pddl(self) -> str:
        """PDDL form, e.g. ``"(unstack red blue)"``."""
        return "(" + " ".join((self.name, *self.args)) + ")"

    @property
    def text(self) -> str:
        """PlanBench-style English, e.g. ``"unstack the red block from on top of the blue block"``."""
        if self.name == "pick-up":
            return f"pick up the {self.args[0]} block"
        if self.name == "put-down":
            return f"put down the {self.args[0]} block"
        if self.name == "stack":
            return f"stack the {self.args[0]} block on top of the {self.args[1]} block"
        return f"unstack the {self.args[0]} block from on top of the {self.args[1]} block"

    @classmethod
    def from_pddl(cls, text: str) -> Action:
        """Parse a strict PDDL action such as ``"(stack red blue)"``."""
        match = PDDL_ACTION_RE.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError(f"not a PDDL Blocksworld action: {text!r} (expected e.g. '(stack red blue)')")
        return action_from_pddl_match(match)

    def __str__(self) -> str:
        return self.pddl


def action_from_pddl_match(match: re.Match[str]) -> Action:
    """The `Action` that a match of `PDDL_ACTION_RE` names.

    Args:
        match (`re.Match[str]`):
            A match of `PDDL_ACTION_RE`.

    Returns:
        `Action`: the action, with the domain's name for it.
    """
    name = PDDL_ACTION_NAMES[match.group(1)]
    args = tuple(a for a in (match.group(2), match.group(3)) if a)
    return Action(name, args)


def objects_of(facts: Iterable[Fact]) -> list[str]:
    """The blocks that `facts` name, in order of first mention.

    Args:
        facts (`Iterable[Fact]`):
            Fact tuples such as ``("on", "red", "blue")``.

    Returns:
        `list[str]`: each block once.
    """
    seen: dict[str, None] = {}
    for fact in facts:
        for arg in fact[1:]:
            seen.setdefault(arg, None)
    return list(seen)
