"""Renderings of a Blocksworld problem: the PDDL domain and problem, and PlanBench-style English."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from treecot.tasks.blocksworld.domain import COLOURS, DOMAIN_NAME, Fact, format_fact, objects_of, parse_fact

_PDDL_DOMAIN = """\
(define (domain blocksworld-4ops)
  (:requirements :strips)
  (:predicates (clear ?x)
               (ontable ?x)
               (handempty)
               (holding ?x)
               (on ?x ?y))

  (:action pick-up
    :parameters (?ob)
    :precondition (and (clear ?ob) (ontable ?ob) (handempty))
    :effect (and (holding ?ob) (not (clear ?ob)) (not (ontable ?ob))
                 (not (handempty))))

  (:action put-down
    :parameters (?ob)
    :precondition (holding ?ob)
    :effect (and (clear ?ob) (handempty) (ontable ?ob)
                 (not (holding ?ob))))

  (:action stack
    :parameters (?ob ?underob)
    :precondition (and (clear ?underob) (holding ?ob))
    :effect (and (handempty) (clear ?ob) (on ?ob ?underob)
                 (not (clear ?underob)) (not (holding ?ob))))

  (:action unstack
    :parameters (?ob ?underob)
    :precondition (and (on ?ob ?underob) (clear ?ob) (handempty))
    :effect (and (holding ?ob) (clear ?underob)
                 (not (on ?ob ?underob)) (not (clear ?ob)) (not (handempty)))))
"""

_RULES = """\
I am playing with a set of blocks where I need to arrange the blocks into stacks. Here are the actions I can do:

Pick up a block
Unstack a block from on top of another block
Put down a block
Stack a block on top of another block

I have the following restrictions on my actions:
I can only pick up or unstack one block at a time.
I can only pick up or unstack a block if my hand is empty.
I can only pick up a block if the block is on the table and the block is clear. A block is clear if the block has no other blocks on top of it and if the block is not picked up.
I can only unstack a block from on top of another block if the block I am unstacking was really on top of the other block.
I can only unstack a block from on top of another block if the block I am unstacking is clear.
Once I pick up or unstack a block, I am holding the block.
I can only put down a block that I am holding.
I can only stack a block on top of another block if I am holding the block being stacked.
I can only stack a block on top of another block if the block onto which I am stacking the block is clear.
Once I put down or stack a block, my hand becomes empty.
Once you stack a block on top of a second block, the second block is no longer clear."""

_QUESTION_SUFFIX = (
    "What is the plan to achieve my goal? Write the plan inside <answer> and </answer>, one action per "
    'line, phrased like the actions above (for example "unstack the red block from on top of the blue '
    'block", "put down the red block", "pick up the blue block", "stack the blue block on top of the '
    'red block").'
)


def to_pddl_domain() -> str:
    """The standard 4-operator Blocksworld domain (IPC 2000 / PlanBench) in PDDL."""
    return _PDDL_DOMAIN


def to_pddl_problem(
    init: Iterable[str | Fact],
    goal: Iterable[str | Fact],
    name: str = "blocksworld",
    objects: Sequence[str] | None = None,
) -> str:
    """A PDDL problem for the 4-operator domain; objects default to the blocks named in `init`."""
    init_facts = [parse_fact(f) for f in init]
    goal_facts = [parse_fact(f) for f in goal]
    objs = list(objects) if objects is not None else objects_of(init_facts)
    if not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9_-]*", name):
        raise ValueError(f"PDDL problem name must be an identifier, got {name!r}")
    init_text = "\n    ".join(format_fact(f) for f in init_facts)
    goal_text = "\n      ".join(format_fact(f) for f in goal_facts)
    return (
        f"(define (problem {name})\n"
        f"  (:domain {DOMAIN_NAME})\n"
        f"  (:objects {' '.join(objs)})\n"
        f"  (:init\n    {init_text})\n"
        f"  (:goal\n    (and\n      {goal_text})))\n"
    )


_FACT_ORDER = {"clear": 0, "handempty": 1, "holding": 2, "on": 3, "ontable": 4}


def _fact_text(fact: Fact) -> str:
    pred, *args = fact
    if pred == "clear":
        return f"the {args[0]} block is clear"
    if pred == "handempty":
        return "the hand is empty"
    if pred == "holding":
        return f"I am holding the {args[0]} block"
    if pred == "on":
        return f"the {args[0]} block is on top of the {args[1]} block"
    return f"the {args[0]} block is on the table"


def describe_facts(facts: Iterable[str | Fact], order: Sequence[str] | None = None) -> str:
    """PlanBench-style English list of facts: "the red block is clear, …, and the hand is empty"."""
    parsed = [parse_fact(f) for f in facts]
    rank = {b: i for i, b in enumerate(order or COLOURS)}
    parsed.sort(key=lambda f: (_FACT_ORDER[f[0]], [rank.get(a, len(rank)) for a in f[1:]], f))
    texts = [_fact_text(f) for f in parsed]
    if len(texts) <= 1:
        return "".join(texts)
    return ", ".join(texts[:-1]) + " and " + texts[-1]


def describe(
    init: Iterable[str | Fact], goal: Iterable[str | Fact], blocks: Sequence[str] | None = None
) -> str:
    """The PlanBench-style question: rules, initial conditions, goal, and how to write the answer."""
    return (
        f"{_RULES}\n\n[STATEMENT]\n"
        f"As initial conditions I have that, {describe_facts(init, blocks)}.\n"
        f"My goal is to have that {describe_facts(goal, blocks)}.\n\n"
        f"{_QUESTION_SUFFIX}"
    )
