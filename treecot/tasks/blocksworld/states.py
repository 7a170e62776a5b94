"""Blocksworld states as towers: the consistency check of a state, and towers <-> facts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from treecot.tasks.blocksworld.domain import Fact, format_fact, objects_of, parse_fact


def check_state(facts: Iterable[Fact]) -> tuple[list[str], dict[str, str | None]]:
    """Check that `facts` describe one physically possible state.

    Args:
        facts (`Iterable[Fact]`):
            Fact tuples of a complete state (closed world).

    Returns:
        `tuple[list[str], dict[str, str | None]]`: the blocks, and ``support`` where ``support[x]`` is the
        block under x, "table", or None when x is held.

    Raises:
        `ValueError`: If the state is inconsistent (a block in two places or on itself, several blocks
            held, a cycle, a ``clear`` fact that does not match the towers, …).
    """
    facts = set(facts)
    blocks = objects_of(sorted(facts))
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
    _, support = check_state(parse_fact(f) for f in facts)
    above = {s: x for x, s in support.items() if s not in (None, "table")}
    towers = []
    for x in sorted(x for x, s in support.items() if s == "table"):
        tower = [x]
        while tower[-1] in above:
            tower.append(above[tower[-1]])
        towers.append(tower)
    held = next((x for x, s in support.items() if s is None), None)
    return towers, held
