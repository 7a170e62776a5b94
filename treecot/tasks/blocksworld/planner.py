"""Optimal planning: A* in the space of block moves with the admissible "blocks that must move" bound."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable

from treecot.tasks.blocksworld.domain import Action, Fact, format_fact, parse_fact
from treecot.tasks.blocksworld.states import check_state

#: Where a block rests in the planner's states when it is on the table.
_TABLE = -1


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
        init (`Iterable[str | Fact]`):
            A complete, consistent state (closed world).
        goal (`Iterable[str | Fact]`):
            Facts to reach: ``on``, ``ontable`` and ``handempty`` facts.
        max_expansions (`int`, *optional*):
            Optional cap on expanded states; `SearchBudgetExceeded` is raised beyond it.

    Raises:
        `ValueError`: Inconsistent `init`, a goal with other predicates, unknown blocks, or a goal that no
            state can satisfy (a block in two places, a cycle, two blocks on one).
    """
    init_facts = [parse_fact(f) for f in init]
    blocks, support = check_state(init_facts)
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
