"""Random Blocksworld instances: uniformly random towers, PlanBench-style initial states and goals."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from treecot.tasks.blocksworld.domain import COLOURS, format_fact
from treecot.tasks.blocksworld.states import towers_to_facts


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
