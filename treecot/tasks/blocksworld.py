"""Blocksworld planning task: instance generator, plan parser, STRIPS simulator, optimal planner.

The domain is the standard 4-operator Blocksworld of IPC 2000 and PlanBench (arXiv 2206.10498):
actions ``pick-up``, ``put-down``, ``stack`` and ``unstack``; predicates ``on``, ``ontable``,
``clear``, ``holding`` and ``handempty``. Blocks are named by colour ("red", "blue", …) both in the
natural-language description and in the PDDL objects.

Facts and actions are written in PDDL syntax throughout (``"(on red blue)"``, ``"(unstack red blue)"``)
so that they can be stored as plain strings in a `datasets.Dataset`.

Public helpers reused elsewhere in treecot:

- `generate_instance(n_blocks, rng)`: a random initial state and goal (uniform random towers).
- `parse_plan(text)`: a tolerant reader of the *final* plan of an answer, written in English or PDDL
  (after ``</think>``; the last ``<answer>``, ``[PLAN]`` block or list under a plan heading; see its doc;
  the thinking and the answer tag are read by `treecot.tasks.answers`: `after_thinking`, `answer_tag`).
- `focus_on_problem(completion, question)`: the part of a PlanBench-style one-shot continuation that
  answers the question's own problem; `resolve_initials(actions, blocks)`: "Stack R on B" → colours.
- `simulate(init, plan, goal)`: executes a plan and names the first failing step and why.
- `optimal_plan(init, goal)`: an optimal plan (A* in the space of block moves).
- `to_pddl_domain()`, `to_pddl_problem(init, goal)`, `describe(init, goal)`: renderings.
- `BlocksworldTask`: the `Task` registered as ``"blocksworld"``; its generator makes training and test
  problems, and ``load(source="planbench")`` reads PlanBench's 500 evaluation problems
  (`treecot.tasks.planbench`, also registered as the task ``"planbench"``).
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import math
import operator
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

from treecot.tasks.answers import after_thinking, answer_tag
from treecot.tasks.base import MalformedProblemError, Task, Verdict, make_problem, problem_meta

if TYPE_CHECKING:
    from datasets import Dataset

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

SYSTEM_PROMPT = (
    "You are a careful planner solving Blocksworld problems. Think step by step about which blocks must "
    "move, checking every action against the rules. Then give the final plan inside <answer> and "
    '</answer>, one action per line, each phrased as one of: "pick up the X block", "put down the X '
    'block", "unstack the X block from on top of the Y block", "stack the X block on top of the Y '
    "block\" (X and Y are the colours of the problem's blocks)."
)

Fact = tuple[str, ...]


# --------------------------------------------------------------------------------------------------
# Facts and actions
# --------------------------------------------------------------------------------------------------

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
        match = _PDDL_ACTION_RE.fullmatch(text.strip().lower())
        if match is None:
            raise ValueError(f"not a PDDL Blocksworld action: {text!r} (expected e.g. '(stack red blue)')")
        return _pddl_match_to_action(match)

    def __str__(self) -> str:
        return self.pddl


def _as_action(step: Action | str) -> Action:
    if isinstance(step, Action):
        return step
    action = parse_action(step)
    if action is None:
        raise ValueError(f"cannot read {step!r} as a Blocksworld action")
    return action


# --------------------------------------------------------------------------------------------------
# STRIPS simulator
# --------------------------------------------------------------------------------------------------


def _objects_of(facts: Iterable[Fact]) -> list[str]:
    seen: dict[str, None] = {}
    for fact in facts:
        for arg in fact[1:]:
            seen.setdefault(arg, None)
    return list(seen)


def _describe_missing(fact: Fact, state: frozenset[Fact]) -> str:
    """Why `fact` (a precondition) does not hold in `state`, in a few words."""
    pred, *args = fact
    if pred == "handempty":
        held = sorted(f[1] for f in state if f[0] == "holding")
        return f"the hand is not empty (holding {held[0]})" if held else "the hand is not empty"
    if pred == "clear":
        (x,) = args
        if ("holding", x) in state:
            return f"{x} is not clear (it is being held)"
        above = sorted(f[1] for f in state if f[0] == "on" and f[2] == x)
        return f"{x} is not clear ({above[0]} is on it)" if above else f"{x} is not clear"
    if pred == "ontable":
        return f"{args[0]} is not on the table"
    if pred == "on":
        return f"{args[0]} is not on {args[1]}"
    if pred == "holding":
        held = sorted(f[1] for f in state if f[0] == "holding")
        return f"not holding {args[0]}" + (f" (holding {held[0]})" if held else " (the hand is empty)")
    return f"{format_fact(fact)} is false"


def _preconditions(action: Action) -> list[Fact]:
    a = action.args
    if action.name == "pick-up":
        return [("clear", a[0]), ("ontable", a[0]), ("handempty",)]
    if action.name == "put-down":
        return [("holding", a[0])]
    if action.name == "stack":
        return [("holding", a[0]), ("clear", a[1])]
    return [("on", a[0], a[1]), ("clear", a[0]), ("handempty",)]


def _effects(action: Action) -> tuple[list[Fact], list[Fact]]:
    """(add list, delete list) of `action`."""
    a = action.args
    if action.name == "pick-up":
        return [("holding", a[0])], [("clear", a[0]), ("ontable", a[0]), ("handempty",)]
    if action.name == "put-down":
        return [("clear", a[0]), ("handempty",), ("ontable", a[0])], [("holding", a[0])]
    if action.name == "stack":
        return [("handempty",), ("clear", a[0]), ("on", a[0], a[1])], [("clear", a[1]), ("holding", a[0])]
    return [("holding", a[0]), ("clear", a[1])], [("on", a[0], a[1]), ("clear", a[0]), ("handempty",)]


@dataclass
class SimulationResult:
    """Outcome of executing a plan with `simulate`.

    valid:        every step was applicable (the first failing step stops execution).
    failed_step:  1-based index of the first inapplicable step, or None.
    reason:       why the plan failed (step + unmet precondition, or unmet goal facts); "" on success.
    goal_reached: the goal holds in the final state (None when no goal was given; False if not `valid`).
    unmet_goal:   goal facts false in the final state (PDDL strings).
    final_state:  facts true after the last executed step (PDDL strings, sorted).
    n_executed:   how many steps were applied.
    """

    valid: bool
    failed_step: int | None = None
    reason: str = ""
    goal_reached: bool | None = None
    unmet_goal: list[str] = field(default_factory=list)
    final_state: list[str] = field(default_factory=list)
    n_executed: int = 0

    @property
    def solved(self) -> bool:
        """The plan executes and reaches the goal."""
        return bool(self.valid and self.goal_reached)


def simulate(
    init: Iterable[str | Fact], plan: Sequence[Action | str], goal: Iterable[str | Fact] | None = None
) -> SimulationResult:
    """Execute `plan` from `init` with STRIPS semantics and report the first failing step.

    Args:
        init: the initial facts (closed world: anything not listed is false).
        plan: actions (`Action` objects or strings that `parse_action` understands).
        goal: optional goal facts; when given, `goal_reached` and `unmet_goal` are filled in.

    Raises:
        ValueError: if a string step is not a Blocksworld action.

    Returns:
        A `SimulationResult`. A step fails when it names a block that does not exist or when one of its
        preconditions is false; `reason` then reads e.g. ``"step 3 (stack red blue): blue is not clear
        (green is on it)"``. A plan that executes but misses the goal has ``valid=True`` and a reason like
        ``"plan valid but goal not reached: (on red green) false"``.
    """
    state = frozenset(parse_fact(f) for f in init)
    goal_facts = [parse_fact(f) for f in goal] if goal is not None else None
    objects = set(_objects_of(state))
    result = SimulationResult(valid=True)
    for index, step in enumerate(plan, start=1):
        action = _as_action(step)
        unknown = [a for a in action.args if a not in objects]
        if unknown:
            result.valid = False
            result.failed_step = index
            result.reason = f"step {index} {action.pddl}: unknown block {unknown[0]!r}"
            break
        missing = [p for p in _preconditions(action) if p not in state]
        if missing:
            result.valid = False
            result.failed_step = index
            why = "; ".join(_describe_missing(p, state) for p in missing)
            result.reason = f"step {index} {action.pddl}: {why}"
            break
        add, delete = _effects(action)
        state = (state - frozenset(delete)) | frozenset(add)
        result.n_executed = index
    result.final_state = sorted(format_fact(f) for f in state)
    if goal_facts is not None:
        result.unmet_goal = [format_fact(f) for f in goal_facts if f not in state]
        result.goal_reached = result.valid and not result.unmet_goal
        if result.valid and result.unmet_goal:
            result.reason = "plan valid but goal not reached: " + ", ".join(result.unmet_goal) + " false"
    return result


# --------------------------------------------------------------------------------------------------
# States as towers (used by the generator and the planner)
# --------------------------------------------------------------------------------------------------

_TABLE = -1
_HELD = -2


def _check_state(facts: Iterable[Fact]) -> tuple[list[str], dict[str, str | None]]:
    """Check that `facts` describe one physically possible state; return (blocks, support).

    support[x] is the block under x, "table", or None when x is held.
    """
    facts = set(facts)
    blocks = _objects_of(sorted(facts))
    support: dict[str, str | None] = {}
    held = sorted(f[1] for f in facts if f[0] == "holding")
    placements: dict[str, list[str]] = {}
    for fact in sorted(facts):
        if fact[0] == "on":
            if fact[1] == fact[2]:
                raise ValueError(f"inconsistent state: {fact[1]} is on itself")
            placements.setdefault(fact[1], []).append(fact[2])
        elif fact[0] == "ontable":
            placements.setdefault(fact[1], []).append("table")
    for x, places in placements.items():
        if len(places) > 1:
            where = "both on the table and on a block" if "table" in places else "on several blocks"
            raise ValueError(f"inconsistent state: {x} is {where} ({', '.join(places)})")
        support[x] = places[0]
    if len(held) > 1:
        raise ValueError(f"inconsistent state: holding several blocks {sorted(held)}")
    for x in held:
        if x in support:
            raise ValueError(f"inconsistent state: {x} is held and also placed")
        support[x] = None
    if held and ("handempty",) in facts:
        raise ValueError("inconsistent state: holding a block with an empty hand")
    if not held and ("handempty",) not in facts:
        raise ValueError("inconsistent state: the hand is neither empty nor holding a block")
    for x in blocks:
        if x not in support:
            raise ValueError(f"inconsistent state: block {x} is neither on the table, on a block, nor held")
    below_count: dict[str, int] = {}
    for s in support.values():
        if s not in (None, "table"):
            below_count[s] = below_count.get(s, 0) + 1
    for y, count in below_count.items():
        if count > 1:
            raise ValueError(f"inconsistent state: several blocks are on {y}")
        if support[y] is None:
            raise ValueError(f"inconsistent state: a block is on {y}, which is held")
    for x in blocks:  # cycles
        seen, cur = set(), x
        while support[cur] not in (None, "table"):
            if cur in seen:
                raise ValueError(f"inconsistent state: blocks form a cycle through {cur}")
            seen.add(cur)
            cur = support[cur]  # type: ignore[assignment]
    for x in blocks:
        is_clear = support[x] is not None and x not in below_count
        if (("clear", x) in facts) != is_clear:
            raise ValueError(f"inconsistent state: (clear {x}) does not match the towers")
    return blocks, support


def towers_to_facts(towers: Sequence[Sequence[str]], holding: str | None = None) -> list[str]:
    """Facts of a state given as towers (each listed bottom to top) and an optional held block.

    >>> towers_to_facts([["red", "blue"], ["green"]])
    ['(clear blue)', '(clear green)', '(handempty)', '(on blue red)', '(ontable green)', '(ontable red)']
    """
    facts: list[Fact] = []
    for tower in towers:
        if not tower:
            raise ValueError("towers must be non-empty")
        facts.append(("ontable", tower[0]))
        facts.extend(("on", top, bottom) for bottom, top in zip(tower, tower[1:]))
        facts.append(("clear", tower[-1]))
    facts.append(("holding", holding) if holding else ("handempty",))
    return sorted(format_fact(f) for f in facts)


def facts_to_towers(facts: Iterable[str | Fact]) -> tuple[list[list[str]], str | None]:
    """Inverse of `towers_to_facts`: (towers bottom to top, sorted by bottom block; held block or None)."""
    _, support = _check_state(parse_fact(f) for f in facts)
    above = {s: x for x, s in support.items() if s not in (None, "table")}
    towers = []
    for x in sorted(x for x, s in support.items() if s == "table"):
        tower = [x]
        while tower[-1] in above:
            tower.append(above[tower[-1]])
        towers.append(tower)
    held = next((x for x, s in support.items() if s is None), None)
    return towers, held


# --------------------------------------------------------------------------------------------------
# Instance generation
# --------------------------------------------------------------------------------------------------


@cache
def _lah(n: int, k: int) -> int:
    """Unsigned Lah number: ways to split n labelled blocks into k unordered non-empty towers."""
    return math.comb(n - 1, k - 1) * math.factorial(n) // math.factorial(k)


def random_towers(blocks: Sequence[str], rng: random.Random) -> list[list[str]]:
    """A uniformly random arrangement of `blocks` into towers (every state equally likely).

    Chooses the number of towers k with probability L(n, k) / sum_j L(n, j) (Lah numbers), then a random
    order of the blocks cut at k - 1 random places: each state with k towers arises from exactly k!
    (order, cuts) pairs, so all states are equally likely.
    """
    n = len(blocks)
    if n == 0:
        return []
    weights = [_lah(n, k) for k in range(1, n + 1)]
    k = rng.choices(range(1, n + 1), weights=weights)[0]
    order = list(blocks)
    rng.shuffle(order)
    cuts = sorted(rng.sample(range(1, n), k - 1))
    bounds = [0, *cuts, n]
    return [order[a:b] for a, b in zip(bounds, bounds[1:])]


@dataclass
class Instance:
    """A Blocksworld problem: blocks, initial facts and goal facts (PDDL strings)."""

    blocks: list[str]
    init: list[str]
    goal: list[str]

    @property
    def n_blocks(self) -> int:
        return len(self.blocks)


def _goal_of(towers: Sequence[Sequence[str]]) -> list[str]:
    return sorted(format_fact(("on", top, bottom)) for t in towers for bottom, top in zip(t, t[1:]))


def generate_instance(n_blocks: int, rng: random.Random, colours: Sequence[str] = COLOURS) -> Instance:
    """A random Blocksworld instance in the style of PlanBench.

    `n_blocks` distinct colours are drawn from `colours`; the initial state and a goal configuration are
    independent uniformly random sets of towers (hand empty). As in IPC and PlanBench, the goal lists only
    the ``on`` facts of the goal towers. Draws are repeated until the goal has at least one fact and does
    not already hold initially, so every instance needs at least one action.
    """
    if not 2 <= n_blocks <= len(colours):
        raise ValueError(
            f"n_blocks must be between 2 and {len(colours)} (the number of colours), got {n_blocks}"
        )
    blocks = sorted(rng.sample(list(colours), n_blocks), key=list(colours).index)
    while True:
        init = towers_to_facts(random_towers(blocks, rng))
        goal = _goal_of(random_towers(blocks, rng))
        if goal and not set(goal) <= set(init):
            return Instance(blocks=blocks, init=init, goal=goal)


# --------------------------------------------------------------------------------------------------
# Optimal planning
# --------------------------------------------------------------------------------------------------


class SearchBudgetExceeded(RuntimeError):
    """`optimal_plan` expanded more states than its `max_expansions` budget allowed."""


def _goal_structure(goal: Iterable[Fact], index: dict[str, int]) -> tuple[list[int | None], list[int | None]]:
    """goal_below[x] (block index, _TABLE, or None) and goal_above[y] (block index or None)."""
    n = len(index)
    goal_below: list[int | None] = [None] * n
    goal_above: list[int | None] = [None] * n
    for fact in goal:
        pred = fact[0]
        if pred == "handempty":
            continue
        if pred not in ("on", "ontable"):
            raise ValueError(
                f"optimal_plan supports goals made of on/ontable/handempty facts, got {format_fact(fact)}"
            )
        for arg in fact[1:]:
            if arg not in index:
                raise ValueError(f"goal fact {format_fact(fact)} names unknown block {arg!r}")
        x = index[fact[1]]
        target = _TABLE if pred == "ontable" else index[fact[2]]
        if target == x:
            raise ValueError(f"unreachable goal: {format_fact(fact)} puts a block on itself")
        if goal_below[x] is not None and goal_below[x] != target:
            raise ValueError(f"unreachable goal: block {fact[1]} must be in two places")
        goal_below[x] = target
        if target != _TABLE:
            if goal_above[target] is not None and goal_above[target] != x:
                raise ValueError(f"unreachable goal: two blocks must be on {fact[2]}")
            goal_above[target] = x
    for start in range(n):  # cycles such as (on a b) (on b a)
        seen, cur = set(), start
        while goal_below[cur] not in (None, _TABLE):
            if cur in seen:
                raise ValueError("unreachable goal: the goal's on facts form a cycle")
            seen.add(cur)
            cur = goal_below[cur]  # type: ignore[assignment]
    return goal_below, goal_above


def _must_move_count(
    below: tuple[int, ...], goal_below: list[int | None], goal_above: list[int | None]
) -> int:
    """Admissible lower bound on the number of moves: blocks that must move at least once.

    A block must move if the goal puts it somewhere else, if it sits on a block whose goal has another
    block on top, or if a block under it must move.
    """
    n = len(below)
    memo: list[int] = [-1] * n  # -1 unknown, 0 stays, 1 moves

    def moves(x: int) -> int:
        if memo[x] >= 0:
            return memo[x]
        b = below[x]
        gb = goal_below[x]
        m = 0
        if gb is not None and gb != b:
            m = 1
        elif b != _TABLE:
            ga = goal_above[b]
            if (ga is not None and ga != x) or moves(b):
                m = 1
        memo[x] = m
        return m

    return sum(moves(x) for x in range(n))


def _astar_moves(
    below: tuple[int, ...],
    goal_below: list[int | None],
    goal_above: list[int | None],
    max_expansions: int | None,
) -> list[tuple[int, int]]:
    """Optimal sequence of moves (block, destination) from `below` to the goal, by A*."""
    n = len(below)
    goal_items = [(x, g) for x, g in enumerate(goal_below) if g is not None]

    def is_goal(state: tuple[int, ...]) -> bool:
        return all(state[x] == g for x, g in goal_items)

    h0 = _must_move_count(below, goal_below, goal_above)
    counter = itertools.count()
    frontier: list[tuple[int, int, int, tuple[int, ...]]] = [(h0, 0, next(counter), below)]
    parent: dict[tuple[int, ...], tuple[tuple[int, ...], tuple[int, int]] | None] = {below: None}
    best_g: dict[tuple[int, ...], int] = {below: 0}
    expansions = 0
    while frontier:
        _, neg_g, _, state = heapq.heappop(frontier)
        g = -neg_g
        if g > best_g[state]:
            continue
        if is_goal(state):
            moves: list[tuple[int, int]] = []
            cur = state
            while parent[cur] is not None:
                prev, move = parent[cur]  # type: ignore[misc]
                moves.append(move)
                cur = prev
            return moves[::-1]
        expansions += 1
        if max_expansions is not None and expansions > max_expansions:
            raise SearchBudgetExceeded(f"no optimal plan found within {max_expansions} expansions")
        occupied = set(state)
        clear = [x for x in range(n) if x not in occupied]
        for x in clear:
            targets = [y for y in clear if y != x]
            if state[x] != _TABLE:
                targets.append(_TABLE)
            for y in targets:
                child = state[:x] + (y,) + state[x + 1 :]
                cg = g + 1
                if cg < best_g.get(child, cg + 1):
                    best_g[child] = cg
                    parent[child] = (state, (x, y))
                    h = _must_move_count(child, goal_below, goal_above)
                    heapq.heappush(frontier, (cg + h, -cg, next(counter), child))
    raise ValueError("unreachable goal")  # pragma: no cover - consistent goals are always reachable


def optimal_plan(
    init: Iterable[str | Fact], goal: Iterable[str | Fact], max_expansions: int | None = None
) -> list[Action]:
    """A shortest plan (fewest actions) from `init` to `goal`.

    The 4-operator plans that start with an empty hand alternate pick-up/unstack and put-down/stack, so
    a shortest plan is twice a shortest sequence of block *moves* (an optimal plan never ends with a
    pick-up when the goal only asks for on/ontable/handempty facts). A* searches the move space with the
    admissible "blocks that must move" heuristic, so the result is optimal. If a block is held initially,
    every way of setting it down is tried first.

    Args:
        init: a complete, consistent state (closed world).
        goal: facts to reach: ``on``, ``ontable`` and ``handempty`` facts.
        max_expansions: optional cap on expanded states; `SearchBudgetExceeded` is raised beyond it.

    Raises:
        ValueError: inconsistent `init`, a goal with other predicates, unknown blocks, or a goal that no
            state can satisfy (a block in two places, a cycle, two blocks on one).
    """
    init_facts = [parse_fact(f) for f in init]
    blocks, support = _check_state(init_facts)
    blocks = sorted(blocks)
    index = {b: i for i, b in enumerate(blocks)}
    goal_below, goal_above = _goal_structure([parse_fact(f) for f in goal], index)

    def to_below(sup: dict[str, str | None]) -> tuple[int, ...]:
        return tuple(_TABLE if sup[b] == "table" else index[sup[b]] for b in blocks)  # type: ignore[index]

    def expand(start: dict[str, str | None], moves: list[tuple[int, int]]) -> list[Action]:
        cur = dict(start)
        actions: list[Action] = []
        for x, y in moves:
            bx, src = blocks[x], cur[blocks[x]]
            actions.append(Action("pick-up", (bx,)) if src == "table" else Action("unstack", (bx, src)))  # type: ignore[arg-type]
            dest = "table" if y == _TABLE else blocks[y]
            actions.append(Action("put-down", (bx,)) if dest == "table" else Action("stack", (bx, dest)))
            cur[bx] = dest
        return actions

    held = next((b for b, s in support.items() if s is None), None)
    if held is None:
        return expand(support, _astar_moves(to_below(support), goal_below, goal_above, max_expansions))
    # Holding a block: the first action is forced to set it down somewhere clear.
    best: list[Action] | None = None
    clear = [b for b in blocks if ("clear", b) in set(init_facts)]
    for dest in ["table", *clear]:
        sup = dict(support)
        sup[held] = dest
        first = Action("put-down", (held,)) if dest == "table" else Action("stack", (held, dest))
        plan = [first, *expand(sup, _astar_moves(to_below(sup), goal_below, goal_above, max_expansions))]
        if best is None or len(plan) < len(best):
            best = plan
    return best  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------------
# Renderings: PDDL and natural language
# --------------------------------------------------------------------------------------------------


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
    objs = list(objects) if objects is not None else _objects_of(init_facts)
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


# --------------------------------------------------------------------------------------------------
# Plan parsing
# --------------------------------------------------------------------------------------------------

_NAME = r"[a-z][a-z0-9_-]*"
_PDDL_ACTION_RE = re.compile(
    rf"\(\s*(pick-up|pickup|pick_up|put-down|putdown|put_down|stack|unstack)\s+({_NAME})(?:\s+({_NAME}))?\s*\)"
)
_PDDL_NAMES = {
    "pick-up": "pick-up",
    "pickup": "pick-up",
    "pick_up": "pick-up",
    "put-down": "put-down",
    "putdown": "put-down",
    "put_down": "put-down",
    "stack": "stack",
    "unstack": "unstack",
}

_B = r"(?:the\s+)?(?:block\s+)?(?P<{g}>{n})(?:\s+block)?"
_B1 = _B.format(g="x", n=_NAME)
_B2 = _B.format(g="y", n=_NAME)
_TABLE_RE = r"(?:the\s+)?table"
_ON = r"(?:on\s*to|onto|on|upon|atop)\s+(?:(?:the\s+)?top\s+of\s+)?"
_NL_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("unstack", re.compile(rf"unstack\s+{_B1}\s+(?:(?:from|off)\s+(?:of\s+)?)?(?:{_ON})?{_B2}")),
    ("put-down", re.compile(rf"(?:put|set|place)[\s-]*down\s+{_B1}(?:\s+{_ON}{_TABLE_RE})?")),
    (
        "put-down",
        re.compile(rf"(?:put|set|place)\s+{_B1}\s+(?:down(?:\s+{_ON}{_TABLE_RE})?|{_ON}{_TABLE_RE})"),
    ),
    ("put-down", re.compile(rf"putdown\s+{_B1}")),
    # "put down the red block in an empty space": a place that is no block
    (
        "put-down",
        re.compile(
            rf"(?:put|set|place)[\s-]*down\s+{_B1}\s+(?:(?:in|at|into)\s+(?!.*\b(?:block|top)\b)[a-z ]+|somewhere|anywhere|aside)"
        ),
    ),
    ("pick-up", re.compile(rf"(?:pick[\s-]*up|pickup)\s+{_B1}(?:\s+(?:from|off)\s+{_TABLE_RE})?")),
    ("pick-up", re.compile(rf"pick\s+{_B1}\s+up(?:\s+(?:from|off)\s+{_TABLE_RE})?")),
    ("stack", re.compile(rf"stack\s+{_B1}\s+(?:{_ON})?{_B2}")),
    ("stack", re.compile(rf"(?:put|place|set)\s+{_B1}\s+{_ON}{_B2}")),
]
#: Function-call notation: "Unstack(red, yellow)", "PutDown(red)", "Pick up(yellow)".
_CALL_RE = re.compile(rf"(pick[\s_-]?up|put[\s_-]?down|unstack|stack)\s*\(\s*{_B1}\s*(?:,\s*{_B2}\s*)?\)")
_STOP_NAMES = {"the", "block", "a", "an", "table", "top", "of", "on", "from", "off", "onto", "down", "up"}
#: Pronoun resolved to the block of the previous action ("pick up the red block, then stack it on …").
_PRONOUN = "it"

_PREFIX_RE = re.compile(
    r"^(?:(?:step|action|move)\s*\d+\s*[:.)-]?\s*|(?:next\s+)?action\s*:\s*|\d+\s*[.):-]\s*|\(\d+\)\s*|[-*•>+]+\s*)+"
)
_LEAD_WORDS_RE = re.compile(
    r"^(?:(?:first|firstly|then|next|finally|lastly|and|now|after that|afterwards)\s*,?\s+)+"
)
_SPLIT_RE = re.compile(r"\s*(?:;|,\s*(?:and\s+)?(?:then\s+)?|\s+and\s+(?:then\s+)?|\s+then\s+|\.\s+)\s*")
_ACTION_WORD_RE = re.compile(r"^(?:\(|(?:pick|put|unstack|stack|place|lift|move|grab|drop|take|set)\w*\b)")
_CORE_VERB_RE = re.compile(r"(?:\(|pick\b|pick-?up|put\b|put-?down|unstack\b|stack\b)")
_IGNORED_LINE_RE = re.compile(r"^(?:```\w*|\[/?plan(?: end)?\]|<\/?answer>|[-=*_#]+)$")


def _pddl_match_to_action(match: re.Match[str]) -> Action:
    name = _PDDL_NAMES[match.group(1)]
    args = tuple(a for a in (match.group(2), match.group(3)) if a)
    return Action(name, args)


def _clean_line(line: str) -> str:
    text = line.strip().lower()
    text = re.sub(r"[`*_]{1,3}(?=\S)|(?<=\S)[`*_]{1,3}", "", text) if "`" in text or "*" in text else text
    text = _PREFIX_RE.sub("", text).strip()
    text = _LEAD_WORDS_RE.sub("", text).strip()
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"(?<=[a-z]) \([a-z]{1,2}\)(?=\W|$)", "", text)  # a block's initial: "the yellow block (Y)"
    return text.rstrip(" .,;:!\\")


def _parse_segment(text: str) -> list[Action] | None:
    """Actions in one cleaned segment, or None if it is not entirely made of actions."""
    if not text:
        return None
    if text.startswith("("):
        pos, actions = 0, []
        while pos < len(text):
            match = _PDDL_ACTION_RE.match(text, pos)
            if match is None:
                return None
            try:
                actions.append(_pddl_match_to_action(match))
            except ValueError:
                return None
            pos = match.end()
            while pos < len(text) and text[pos] in " ,;":
                pos += 1
        return actions
    call = _CALL_RE.fullmatch(text)
    if call is not None:
        name = _PDDL_NAMES.get(re.sub(r"[\s_-]", "", call.group(1)), call.group(1))
        args = tuple(g for g in (call.group("x"), call.group("y")) if g)
        if len(args) == ACTION_ARITY[name] and not any(a in _STOP_NAMES for a in args):
            return [Action(name, args)]
        return None
    text = re.sub(r"\s*\((?!\s*(?:pick|put|stack|unstack))[^()]*\)$", "", text).rstrip(" .,;:!")  # "(remark)"
    for name, pattern in _NL_PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        args = tuple(g for g in (match.groupdict().get("x"), match.groupdict().get("y")) if g)
        if any(a in _STOP_NAMES for a in args):
            continue
        return [Action(name, args)]
    # PDDL-like without parentheses: "unstack red blue", "pick-up red"
    tokens = text.split()
    if tokens and tokens[0] in _PDDL_NAMES and len(tokens) - 1 == ACTION_ARITY[_PDDL_NAMES[tokens[0]]]:
        if all(re.fullmatch(_NAME, t) and t not in _STOP_NAMES for t in tokens[1:]):
            return [Action(_PDDL_NAMES[tokens[0]], tuple(tokens[1:]))]
    return None


def parse_action(line: str) -> Action | None:
    """One action from one line ("1. unstack the red block from on top of the blue block", "(pick-up red)").

    Returns None if the line is not exactly one action.
    """
    actions = _parse_line(line)
    return actions[0] if actions is not None and len(actions) == 1 else None


def _resolve_pronouns(actions: list[Action], previous: Action | None) -> list[Action] | None:
    """Replace "it" by the block of the action before; None if there is no such action."""
    resolved: list[Action] = []
    for action in actions:
        if _PRONOUN in action.args:
            if previous is None:
                return None
            action = Action(action.name, tuple(previous.args[0] if a == _PRONOUN else a for a in action.args))
        resolved.append(action)
        previous = action
    return resolved


def _plain_names(actions: list[Action] | None) -> list[Action] | None:
    """Block names written as identifiers, "yellow_block", read as "yellow"."""
    if not actions or not any(a.endswith("block") for action in actions for a in action.args):
        return actions
    return [Action(x.name, tuple(_BLOCK_SUFFIX_RE.sub("", a) or a for a in x.args)) for x in actions]


_BLOCK_SUFFIX_RE = re.compile(r"[_-]block$")


def _parse_line(line: str, previous: Action | None = None) -> list[Action] | None:
    text = _clean_line(line)
    actions = _parse_segment(text)
    if actions is None:
        pieces = [p for p in _SPLIT_RE.split(text) if p]
        if len(pieces) < 2:
            return None
        actions = []
        for piece in pieces:
            sub = _parse_segment(_LEAD_WORDS_RE.sub("", piece).strip(" .,;"))
            if sub is None:
                return None
            actions.extend(sub)
    return _resolve_pronouns(_plain_names(actions) or [], previous)


@dataclass
class ParsedPlan:
    """What `parse_plan` read.

    actions:  the parsed actions, in order.
    unparsed: lines of the plan that look like actions but could not be read, as (step position, line)
              where the position is the 1-based index the line would have had in the plan. Filled for
              plans read from an explicit section (an answer, a ``[PLAN]`` block, a plan heading, "the
              plan is"); always empty for the last-resort reading of free text.
    section:  where the plan was taken from: "answer_tag", "plan_tag", "plan_block", "answer_is" or
              "text"; "thinking" when the output stops inside an unclosed ``<think>`` block.
    """

    actions: list[Action]
    unparsed: list[tuple[int, str]] = field(default_factory=list)
    section: str = "text"

    @property
    def pddl(self) -> list[str]:
        return [a.pddl for a in self.actions]


_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?(?:answer|plan)\s+is\s*:?", re.IGNORECASE)
_MAX_ANSWER_IS_TRIES = 4
_PLAN_OPEN_RE = re.compile(r"\[plan\]", re.IGNORECASE)
_PLAN_CLOSE_RE = re.compile(r"\[plan[ _-]?end\]", re.IGNORECASE)
#: List markers: "1.", "1)", "(1)", "Step 1:", "Action 2 -", bullets. Matched after emphasis is removed.
_MARKER_RE = re.compile(
    r"^(?:(?:step|action|move)\s*(?P<n1>\d+)\s*[:.)-]?\s*|(?P<n2>\d+)\s*[.):-]\s*|\((?P<n3>\d+)\)\s*|(?P<bullet>[-*•>+]+)\s+)"
)
#: A heading that announces the plan: "**Actions in the plan:**", "### Plan", "Here is the plan:", …
_PLAN_HEADING_RE = re.compile(
    r"\b(?:plans?|actions?|steps?|sequence|solution|answer|summary|moves?|follow(?:ing)?)\b", re.IGNORECASE
)
#: Headings of narration about a plan, never the plan itself: "Verification:", "Checking each step:", …
_NARRATION_HEADING_RE = re.compile(
    r"\b(?:verif\w*|check\w*|validat\w*|explanation|explain\w*|reasoning|analy\w+|simulat\w*|trac(?:e|es|ing)|"
    r"why|wait|mistake|error|incorrect|wrong)\b",
    re.IGNORECASE,
)
#: Headings of state descriptions: narration unless they also name the plan ("plan to reach the goal").
_STATE_HEADING_RE = re.compile(
    r"\b(?:state|states|initial|goal|conditions?|precondition\w*|effects?|results?|configuration)\b",
    re.IGNORECASE,
)


@dataclass
class _Line:
    indent: int
    kind: str  # "number", "bullet" or "" (no list marker)
    number: int | None
    text: str  # the raw line, stripped
    verb: bool  # starts like an action: an unreadable action if it does not parse (see `_line_info`)


@dataclass
class _Block:
    """A run of plan items: consecutive action lines, each possibly followed by its own narration."""

    heading: str
    items: list[tuple[_Line, list[Action] | None]] = field(default_factory=list)
    #: the text ends inside this block (an output cut off while it wrote the list, or a list at the very end)
    ends_text: bool = False
    #: the number of its last numbered item
    last_number: int | None = None

    @property
    def has_actions(self) -> bool:
        return any(actions for _, actions in self.items)

    @property
    def actions(self) -> list[Action]:
        return [a for _, found in self.items for a in (found or [])]


def _demarkdown(line: str) -> str:
    text = line.strip()
    if "`" in text or "*" in text:
        text = re.sub(r"[`*_]{1,3}(?=\S)|(?<=\S)[`*_]{1,3}", "", text)
    return text.strip()


def _line_info(raw: str, explicit: bool) -> _Line:
    expanded = raw.expandtabs(4)
    indent = len(expanded) - len(expanded.lstrip(" "))
    text = _demarkdown(raw)
    match = _MARKER_RE.match(text.lower())
    kind, number = "", None
    if match is not None:
        digits = match.group("n1") or match.group("n2") or match.group("n3")
        kind, number = ("number", int(digits[:9])) if digits else ("bullet", None)
    cleaned = _clean_line(text)
    verb = bool(_ACTION_WORD_RE.search(cleaned)) and len(cleaned) <= 200
    # In free text a line of prose may start with "Take" or "Place": only short lines that start like an
    # action count there when they carry no list marker.
    core = verb and bool(_CORE_VERB_RE.match(cleaned)) and len(cleaned.split()) <= 15
    return _Line(
        indent=indent, kind=kind, number=number, text=raw.strip(), verb=verb if explicit or kind else core
    )


_ITEM_REMARK_RE = re.compile(r":|\s[-–—]\s")


#: A step that takes itself back: "6. Stack yellow on blue is not correct, so put down the blue block."
_RETRACTED_RE = re.compile(
    r"\b(?:is|are|was|would\s+be)\s+(?:not|n't)\b|\bisn't\b|\bnot\s+(?:needed|necessary|possible|required|correct)\b"
)
_CORRECTION_RE = re.compile(r"(?:,|\s)\s*(?:so|instead|therefore)\b\s*,?\s*")
_TRAILING_JOIN_RE = re.compile(r"\s*(?:,|\band\b|\bthen\b|:|\s)+$")


def _parse_item(raw: str, info: _Line, previous: Action | None) -> list[Action] | None:
    """The actions of a plan line. A list item may follow its action with a remark, as in
    "1. **Unstack red from orange**: since red is clear, ..." or "2. Put down red - the hand is empty", and
    may take itself back and say what to do instead ("6. Stack red on blue is not possible, so put down
    the blue block"): the action after "so" / "instead" is read. A step that only takes itself back
    ("10. Pick up red is not needed") marks the line as a remark (`info.verb` is cleared), not as an
    unreadable action."""
    found = _parse_line(raw, previous)
    if found or not info.kind:
        return found
    text = _demarkdown(raw)
    marker = _MARKER_RE.match(text.lower())
    body = text[marker.end() :] if marker else text
    if _RETRACTED_RE.search(body.lower()):
        info.verb = False
        corrections = list(_CORRECTION_RE.finditer(body.lower()))
        if corrections:
            tail = _TRAILING_JOIN_RE.sub("", body[corrections[-1].end() :])
            return _parse_line(tail, previous) if tail else None
        return None
    split = _ITEM_REMARK_RE.search(body)
    if split is None or split.start() == 0:
        return None
    return _parse_line(body[: split.start()], previous)


def _is_heading(line: _Line) -> bool:
    text = _demarkdown(line.text)
    return (
        text.endswith(":")
        or text.startswith("#")
        or (line.text.startswith("**") and line.text.endswith("**"))
    )


def _blocks(text: str, explicit: bool = False) -> list[_Block]:
    """The plan blocks of `text` that hold at least one action, in order, each with its heading.

    An item is a line that reads as actions (list marker or not). Lines after an item that are indented
    two or more spaces deeper, or bullets under a numbered item, are its narration: their actions count only when the item's
    own line holds none ("1. Clear the red block:" followed by "- unstack ..."). A block ends at a line of
    prose or a heading, at a numbered list that restarts at 1, and where numbered items turn into bullets;
    a numbered list whose numbers go on (2, 3, …) after a remark stays one block.
    """
    blocks: list[_Block] = []
    current: _Block | None = None
    head: _Line | None = None  # the current item's line
    head_actions: list[Action] | None = None
    broken = True  # a line of prose or a heading since the last item
    gap_heading = gap_last = ""  # the last heading-like line and the last line since the last item
    previous: Action | None = None

    in_block = False  # the last line read belongs to the current block
    for raw in text.splitlines():
        if not raw.strip() or _IGNORED_LINE_RE.match(_demarkdown(raw).lower()):
            continue
        info = _line_info(raw, explicit)
        in_block = True
        if (
            current is not None
            and head is not None
            and (info.indent >= head.indent + 2 or (head.kind == "number" and info.kind == "bullet"))
        ):
            if head_actions:
                continue  # narration about an action already read
            found = _parse_item(raw, info, previous)
            if found:
                current.items[-1] = (head, (current.items[-1][1] or []) + found)
                previous = found[-1]
            elif info.verb and info.kind:
                current.items.append((info, None))
            continue
        found = _parse_item(raw, info, previous)
        if not found:  # "The plan is: pick up red, stack it on blue", "**Plan:** unstack red from blue"
            said = _ANSWER_IS_RE.search(raw)
            if said is None and not info.kind and ":" in raw and _is_plan_heading(raw.split(":", 1)[0]):
                said = re.search(":", raw)
            if said is not None and raw[said.end() :].strip():
                found = _parse_line(raw[said.end() :], previous)
                if found:
                    broken, gap_heading = True, raw[: said.end()].strip()
        number_before = current.last_number if current is not None else None
        numbered_on = (
            info.number is not None and number_before is not None and info.number == number_before + 1
        )
        is_item = bool(found) or (info.verb and (info.kind != "" or not broken)) or numbered_on
        if not is_item:
            broken, head, in_block = True, None, False
            gap_last = info.text
            if _is_heading(info):
                gap_heading = info.text
            continue
        continues = (
            current is not None
            and (not broken or numbered_on)
            and not (info.number == 1 and number_before is not None)
            and not (info.kind == "bullet" and current.items[-1][0].kind == "number")
        )
        if not continues:
            current = _Block(heading=(gap_heading or gap_last) if broken else "")
            blocks.append(current)
        current.items.append((info, found))  # type: ignore[union-attr]
        if info.number is not None:
            current.last_number = info.number  # type: ignore[union-attr]
        head, head_actions = info, found
        if found:
            previous = found[-1]
        broken = False
        gap_heading = gap_last = ""
    if current is not None and in_block:
        current.ends_text = True
    return [b for b in blocks if b.has_actions]


def _block_plan(blocks: Sequence[_Block], kind: str) -> ParsedPlan:
    actions: list[Action] = []
    unparsed: list[tuple[int, str]] = []
    for block in blocks:
        for line, found in block.items:
            if found:
                actions.extend(found)
            elif line.verb and kind != "text":
                unparsed.append((len(actions) + len(unparsed) + 1, line.text))
    return ParsedPlan(actions=actions, unparsed=unparsed, section=kind)


def _last_sentence(heading: str) -> str:
    """What a heading announces is in its last sentence: "Wait, step 3 is wrong. Final plan:"."""
    return re.split(r"[.!?]\s+", heading.strip())[-1]


def _is_plan_heading(heading: str) -> bool:
    heading = _last_sentence(heading)
    return bool(_PLAN_HEADING_RE.search(heading)) and not _NARRATION_HEADING_RE.search(heading)


def _is_narration_heading(heading: str) -> bool:
    heading = _last_sentence(heading)
    if _NARRATION_HEADING_RE.search(heading):
        return True
    return bool(_STATE_HEADING_RE.search(heading)) and not _PLAN_HEADING_RE.search(heading)


def _read_section(section: str, kind: str) -> ParsedPlan:
    """Every plan item of an explicit answer section, in order."""
    blocks = _blocks(section, explicit=True)
    return _block_plan(blocks, kind)


def _read_after_answer_is(text: str, kind: str) -> ParsedPlan | None:
    """The plan after the last "The answer/plan is" that is followed by at least one action.

    Only the last few occurrences are tried, so that hostile text cannot make parsing quadratic. What
    follows the phrase is read up to the end of the first block of actions after it.
    """
    for match in list(_ANSWER_IS_RE.finditer(text))[-_MAX_ANSWER_IS_TRIES:][::-1]:
        blocks = _blocks(text[match.end() :], explicit=kind != "answer_is")
        if blocks:
            return _block_plan(blocks[:1], kind)
    return None


def _completed(blocks: Sequence[_Block], chosen: _Block) -> _Block:
    """`chosen`, or, when the text ends inside it and its actions only repeat the start of an earlier
    list, that earlier (latest such) list: an output cut off while restating its plan, or a step-by-step
    walk through the plan ("Step 1: Unstack blue from yellow. - Condition: ..."), is not a new plan."""
    if not chosen.ends_text:
        return chosen
    mine = chosen.actions
    for block in reversed(blocks[: blocks.index(chosen)]):
        theirs = block.actions
        if len(theirs) > len(mine) and theirs[: len(mine)] == mine:
            return block
    return chosen


def _read_free_text(text: str) -> ParsedPlan:
    """The final plan of untagged text: the last block under a plan heading, else what follows the last
    "the plan is", else the last block that is not under a heading of narration (verification, state
    tracking, …). A last block that the text ends in and that only repeats the start of an earlier block
    gives way to that block (`_completed`)."""
    blocks = _blocks(text)
    planned = [b for b in blocks if _is_plan_heading(b.heading)]
    if planned:
        chosen = _completed(blocks, planned[-1])
        kind = "answer_is" if _ANSWER_IS_RE.search(chosen.heading) else "plan_block"
        return _block_plan([chosen], kind)
    after = _read_after_answer_is(text, "answer_is")
    if after is not None:
        return after
    plain = [b for b in blocks if not _is_narration_heading(b.heading)]
    return _block_plan([_completed(blocks, plain[-1])] if plain else [], "text")


def parse_plan(text: str) -> ParsedPlan:
    """Read the final plan from model output, tolerantly.

    Reasoning models mention many actions before they give their plan, so only one place is read:

    1. Outputs with ``<think>…</think>`` (R1 / QwQ style) are judged on what follows the last
       ``</think>``; an output still inside an unclosed ``<think>`` has no plan.
    2. The last ``<answer>…</answer>`` section (an unclosed tag runs to the end), whole.
    3. PlanBench's ``[PLAN]…[PLAN END]``: the last such block, or, when ``[PLAN END]`` comes before any
       ``[PLAN]`` (a one-shot prompt ends with ``[PLAN]``), what precedes it.
    4. Otherwise the last *plan block*: a heading that names the plan ("**Actions in the plan:**",
       "### Plan", "Here is the plan:", "follow these steps:") followed by a numbered, bulleted or plain
       list of actions. Headings of narration ("Verification:", "State after each step:") do not count.
    5. Otherwise what follows the last "The answer is" / "The plan is" that is followed by an action.
    6. Otherwise, as a last resort, the last list of actions that is not under a heading of narration.

    A list item's own line is the action; the lines indented under it (or bullets under a numbered item)
    are its narration and are read only when the item's line holds no action ("1. Clear red:" followed by
    "- unstack the blue block from the red block"). A list ends at prose or a heading, when its numbering
    restarts at 1 (a restated plan) or turns into bullets; numbering that goes on (2, 3, …) after a remark
    keeps it one list.

    Each action line may be English in the PlanBench phrasing or close to it ("unstack the red block
    from on top of the blue block", "pick up the orange block", "put red on the table") or PDDL
    (``(unstack red blue)``, several per line allowed); case, articles, "block", numbering ("1.",
    "Step 2:", "Action:"), bullets, markdown emphasis, a trailing "(remark)" or ":" and leading
    "then"/"next" are ignored, "it" stands for the block of the previous action, and a line such as
    "pick up red, then stack it on blue" is split on commas, semicolons and "then" when every piece is an
    action. Lines of the chosen plan that start with an action verb but cannot be read are reported in
    `unparsed` (not for the last-resort reading of free text).
    """
    body = after_thinking(text)
    if body is None:
        return ParsedPlan(actions=[], section="thinking")
    section = answer_tag(body, unclosed=True)
    if section is not None:
        return _read_after_answer_is(section, "answer_tag") or _read_section(section, "answer_tag")
    first_close = _PLAN_CLOSE_RE.search(body)
    first_open = _PLAN_OPEN_RE.search(body)
    if first_close is not None and (first_open is None or first_close.start() < first_open.start()):
        return _read_section(body[: first_close.start()], "plan_tag")
    opens = list(_PLAN_OPEN_RE.finditer(body))
    if opens:
        rest = body[opens[-1].end() :]
        close = _PLAN_CLOSE_RE.search(rest)
        return _read_section(rest[: close.start()] if close else rest, "plan_tag")
    return _read_free_text(body)


_INIT_LINE_RE = re.compile(r"As initial conditions I have that,[^\n]+")
_MAX_RESTATEMENTS = 8
_PLAN_BLOCK_RE = re.compile(r"\[plan\](.*?)\[plan[ _-]?end\]", re.IGNORECASE | re.DOTALL)


def focus_on_problem(completion: str, question: str) -> str:
    """The part of `completion` that answers `question`'s own problem, for PlanBench-style prompts.

    Some models continue a one-shot prompt instead of answering it: they repeat the example's plan up to
    its ``[PLAN END]``, restate the example and the problem (``[STATEMENT] As initial conditions I have
    that, …``) and sometimes go on to invent further problems. When the completion restates the
    question's last statement word for word, what follows its last restatement (up to the next
    ``[STATEMENT]``) is the answer; otherwise, when the completion opens with a copy of one of the
    question's example plans, what follows that copy is. Either is used only if it holds a plan; any other
    completion is returned unchanged.
    """
    if not isinstance(question, str) or "[STATEMENT]" not in question:
        return completion
    own = _INIT_LINE_RE.search(question.rsplit("[STATEMENT]", 1)[-1])
    if own is not None:
        line = own.group(0).strip()
        starts: list[int] = []
        start = completion.find(line)
        while start >= 0:
            starts.append(start)
            start = completion.find(line, start + len(line))
        regions: list[tuple[str, list[str], bool]] = []
        last = starts[-_MAX_RESTATEMENTS:]  # the last few, each up to the next: parsing stays linear
        for start, following in zip(last, [*last[1:], len(completion)]):
            rest = completion[start + len(line) : following]
            nxt = rest.find("[STATEMENT]")
            region = rest if nxt < 0 else rest[:nxt]
            at_end = nxt < 0 and following == len(completion)
            regions.append((region, parse_plan(region).pddl, at_end))
        answered = [r for r in regions if r[1]]
        if answered:
            region, plan, at_end = answered[-1]
            if at_end:  # cut off while restating a plan given in full before: that plan
                for earlier, theirs, _ in reversed(answered[:-1]):
                    if len(theirs) > len(plan) and theirs[: len(plan)] == plan:
                        return earlier
            return region
    close, opening = _PLAN_CLOSE_RE.search(completion), _PLAN_OPEN_RE.search(completion)
    if close is not None and (opening is None or close.start() < opening.start()):
        head = parse_plan(completion[: close.start()]).pddl
        examples = [parse_plan(block).pddl for block in _PLAN_BLOCK_RE.findall(question)[:8]]
        rest = completion[close.end() :]
        if head and head in examples and parse_plan(rest).actions:
            return rest
    return completion


def resolve_initials(actions: Sequence[Action], blocks: Iterable[str]) -> list[Action]:
    """`actions` with one-letter block names ("Unstack Y from O") replaced by the one block of `blocks`
    whose name starts with that letter; a letter that fits no block or several stays as it is."""
    blocks = list(blocks)
    known = set(blocks)
    by_initial: dict[str, list[str]] = {}
    for block in blocks:
        by_initial.setdefault(block[:1], []).append(block)

    def name(arg: str) -> str:
        if arg in known or len(arg) != 1:
            return arg
        found = by_initial.get(arg, [])
        return found[0] if len(found) == 1 else arg

    return [Action(a.name, tuple(name(x) for x in a.args)) for a in actions]


# --------------------------------------------------------------------------------------------------
# The Task
# --------------------------------------------------------------------------------------------------


def _split_seed(split: str, seed: int) -> int:
    return int(hashlib.sha256(f"treecot/blocksworld/{split}/{seed}".encode()).hexdigest()[:8], 16)


def _instance_key(init: Sequence[str], goal: Sequence[str]) -> str:
    return "|".join(sorted(init)) + "=>" + "|".join(sorted(goal))


def split_of_instance(init: Sequence[str], goal: Sequence[str]) -> str:
    """The split ("train" or "test") a state pair belongs to: a hash of the (init, goal) facts.

    Partitioning by a hash of the state makes train and test disjoint by construction.
    """
    digest = hashlib.sha256(_instance_key(init, goal).encode()).digest()
    return "test" if digest[0] % 2 == 0 else "train"


class BlocksworldTask(Task):
    """Blocksworld planning (PlanBench style), generated offline with optimal reference plans.

    Args:
        min_blocks, max_blocks: range of block counts (3–8 by default, spread uniformly).
        seed: base seed; each split derives its own stream from it.
        max_expansions: optional A* budget per instance (None = unlimited, plans are always optimal).
    """

    name = "blocksworld"
    domain = "planning"
    system_prompt = SYSTEM_PROMPT
    splits = ("train", "test")
    #: Default number of instances per split (PlanBench has ~500 test instances).
    default_sizes: dict[str, int] = {"train": 2000, "test": 500}

    def __init__(
        self, min_blocks: int = 3, max_blocks: int = 8, seed: int = 0, max_expansions: int | None = None
    ):
        if not 3 <= min_blocks <= max_blocks <= len(COLOURS):
            raise ValueError(
                f"need 3 <= min_blocks <= max_blocks <= {len(COLOURS)}, got min_blocks={min_blocks}, "
                f"max_blocks={max_blocks}"
            )
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.seed = seed
        self.max_expansions = max_expansions

    def problem_from_instance(self, instance: Instance, split: str, seed: int) -> dict:
        """A Problem record for `instance`, with its optimal plan as `reference`."""
        plan = optimal_plan(instance.init, instance.goal, max_expansions=self.max_expansions)
        meta = {
            "n_blocks": instance.n_blocks,
            "init": list(instance.init),
            "goal": list(instance.goal),
            "optimal_length": len(plan),
            "pddl_domain": to_pddl_domain(),
            "pddl_problem": to_pddl_problem(
                instance.init, instance.goal, name=f"bw-{split}-{seed}", objects=instance.blocks
            ),
            "seed": seed,
            "split": split,
        }
        question = describe(instance.init, instance.goal, instance.blocks)
        return make_problem(self.name, question, "\n".join(a.pddl for a in plan), meta)

    def iter_problems(self, split: str = "test"):
        """Endless deterministic stream of distinct Problem records of `split`."""
        self.check_split(split)
        base = _split_seed(split, self.seed)
        span = self.max_blocks - self.min_blocks + 1
        seen: set[str] = set()
        for attempt in itertools.count():
            seed = int(hashlib.sha256(f"{base}/{attempt}".encode()).hexdigest()[:8], 16)
            n_blocks = self.min_blocks + seed % span
            instance = generate_instance(n_blocks, random.Random(seed))
            key = _instance_key(instance.init, instance.goal)
            if key in seen or split_of_instance(instance.init, instance.goal) != split:
                continue
            seen.add(key)
            yield self.problem_from_instance(instance, split, seed)

    def load(
        self,
        split: str = "test",
        limit: int | None = None,
        n: int | None = None,
        *,
        source: str = "generated",
        path: str | None = None,
        hub_id: str | None = None,
        prompt_type: str = "oneshot",
    ) -> Dataset:
        """Problems of `split`: generated ones (`source="generated"`, the default) or PlanBench's.

        Generated: `n` problems (default 500 test / 2,000 train), the first `limit` of them. Deterministic:
        the same arguments give the same rows, and a smaller `n` or `limit` gives a prefix. Each row's
        instance is reproduced by ``generate_instance(meta["n_blocks"], random.Random(meta["seed"]))``.

        ``source="planbench"``: PlanBench's 500 plan-generation problems (test split only) with their exact
        one-shot or zero-shot prompt (`prompt_type`), from the checkout `path` (default
        ``$TREECOT_PLANBENCH``) or the Hub dataset `hub_id`; see `treecot.tasks.planbench`. `n` and `limit`
        both cap the count.
        """
        from datasets import Dataset

        self.check_split(split)
        if source == "planbench":
            from treecot.tasks.planbench import load_planbench

            if split != "test":
                raise ValueError("PlanBench has only a test set; use split='test' with source='planbench'")
            caps = [c for c in (limit, n) if c is not None]
            return load_planbench(
                path, prompt_type, min(caps) if caps else None, hub_id=hub_id, task=self.name
            )
        if source != "generated":
            raise ValueError(
                f"unknown source {source!r} for task {self.name!r}; choose 'generated' or 'planbench'"
            )
        count = self.default_sizes[split] if n is None else n
        if limit is not None:
            count = min(count, limit)
        if count < 0:
            raise ValueError(f"the number of problems must be >= 0, got {count}")
        rows = list(itertools.islice(self.iter_problems(split), count))
        return Dataset.from_list(rows)

    @staticmethod
    def _instance_of(problem: dict) -> tuple[list[Fact], list[Fact], int]:
        """``(init, goal, optimal_length)`` read from the problem's ``meta``; `MalformedProblemError` naming
        the field when one is missing or unreadable."""
        if not isinstance(problem, Mapping):
            raise TypeError(f"problem must be a Problem dict, got {type(problem).__name__}")
        meta = problem_meta(problem)
        facts = {}
        for key in ("init", "goal"):
            if key not in meta:
                raise MalformedProblemError(
                    problem,
                    f"meta.{key}",
                    "missing (a blocksworld problem's meta holds init, goal and optimal_length)",
                )
            value = meta[key]
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise MalformedProblemError(
                    problem,
                    f"meta.{key}",
                    f"must be a list of facts such as '(on red blue)', got {type(value).__name__}",
                )
            try:
                facts[key] = [parse_fact(f) for f in value]
            except (ValueError, TypeError, RecursionError) as err:
                raise MalformedProblemError(problem, f"meta.{key}", str(err)[:200]) from None
        if "optimal_length" not in meta:
            raise MalformedProblemError(
                problem, "meta.optimal_length", "missing (the length of an optimal plan, from the generator)"
            )
        value = meta["optimal_length"]
        try:
            length = -1 if isinstance(value, bool) else operator.index(value)  # ints, numpy ints
        except TypeError:
            length = -1
        if length < 0:
            raise MalformedProblemError(
                problem, "meta.optimal_length", f"must be an integer >= 0, got {value!r:.80}"
            )
        return facts["init"], facts["goal"], length

    def verify(self, completion: str, problem: dict) -> Verdict:
        """Parse a plan from `completion` and execute it on the problem's initial state.

        `correct` means every step applies and the goal holds at the end; optimality is reported in
        ``details["optimal"]``. Unreadable action lines in the answer count as a failing step. A problem whose
        ``meta`` lacks ``init``, ``goal`` or ``optimal_length`` (or holds unreadable facts) raises
        `MalformedProblemError` naming the field.
        """
        init, goal, optimal_length = self._instance_of(problem)
        try:
            text = completion if isinstance(completion, str) else str(completion)
            parsed = parse_plan(focus_on_problem(text, problem.get("question")))
        except Exception as err:  # hostile input must never crash a search
            parsed = ParsedPlan(actions=[])
            parse_error = f"could not parse the completion: {err}"
        else:
            parse_error = ""
        parsed.actions = resolve_initials(parsed.actions, _objects_of(init))
        details = {
            "valid": False,
            "goal_reached": False,
            "failed_step": None,
            "plan_length": len(parsed.actions),
            "optimal_length": optimal_length,
            "optimal": False,
        }
        extracted = parsed.pddl
        if not parsed.actions:
            reason = parse_error or "no action found in the answer"
            return Verdict(correct=False, answered=False, extracted=extracted, reason=reason, details=details)
        actions = parsed.actions
        stop_at = parsed.unparsed[0][0] if parsed.unparsed else None
        if stop_at is not None:
            actions = actions[: stop_at - 1]
        result = simulate(init, actions, goal)
        if result.valid and stop_at is not None:
            details["failed_step"] = stop_at
            reason = f"step {stop_at}: cannot read {parsed.unparsed[0][1]!r} as an action"
            return Verdict(correct=False, answered=True, extracted=extracted, reason=reason, details=details)
        details["valid"] = result.valid
        details["goal_reached"] = bool(result.goal_reached)
        details["failed_step"] = result.failed_step
        details["optimal"] = bool(result.solved and len(actions) == optimal_length)
        if result.reason:
            reason = result.reason
        elif details["optimal"]:
            reason = f"optimal plan ({len(actions)} steps)"
        else:
            reason = f"plan reaches the goal in {len(actions)} steps (optimal: {optimal_length})"
        return Verdict(
            correct=result.solved, answered=True, extracted=extracted, reason=reason, details=details
        )


__all__ = [
    "COLOURS",
    "Action",
    "BlocksworldTask",
    "Instance",
    "ParsedPlan",
    "SearchBudgetExceeded",
    "SimulationResult",
    "describe",
    "describe_facts",
    "facts_to_towers",
    "focus_on_problem",
    "generate_instance",
    "optimal_plan",
    "parse_action",
    "parse_fact",
    "parse_plan",
    "random_towers",
    "resolve_initials",
    "simulate",
    "split_of_instance",
    "to_pddl_domain",
    "to_pddl_problem",
    "towers_to_facts",
]
