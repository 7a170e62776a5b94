"""Measuring backtracking: how many reflections a search placed and expanded, and what they led to.

`reflection_stats(tree)` reads one tree (a `Tree` or its JSON dict, also trees written before the engine
kept these figures in `tree.stats`); `reflection_summary(trees)` adds them up with the two shares that say
whether backtracking works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from treecot.search.patterns import REFLECTION_TYPE
from treecot.search.tree import Node, Tree


def reflection_stats(tree: Tree | Mapping[str, Any]) -> dict[str, int]:
    """Backtracking figures of one tree, read from its nodes.

    Works on any tree, including those written before `reflections_expanded` / `correct_via_reflection`
    were kept in `tree.stats`; on a tree searched by this engine the figures equal those stats.

    Args:
        tree (`Tree` or `Mapping[str, Any]`):
            A tree or its JSON dict.

    Returns:
        `dict[str, int]`: `reflections` (reflection nodes, placed after wrong answers),
        `reflections_expanded` (those that were expanded: their continuation was generated),
        `correct_paths` (answer nodes judged correct) and `correct_via_reflection` (correct answer nodes
        with a reflection among their ancestors).
    """
    nodes = tree.nodes if isinstance(tree, Tree) else tree.get("nodes", [])
    # Per node id: the node is a reflection or has one among its ancestors (parents precede children).
    in_reflection: list[bool] = []
    out = {"reflections": 0, "reflections_expanded": 0, "correct_paths": 0, "correct_via_reflection": 0}
    for i, n in enumerate(nodes):
        if isinstance(n, Node):
            parent, ntype, expanded, terminal, correct = n.parent, n.type, n.expanded, n.terminal, n.correct
        else:
            parent, ntype = n.get("parent"), n.get("type")
            expanded, terminal, correct = n.get("expanded"), n.get("terminal"), n.get("correct")
        below = isinstance(parent, int) and 0 <= parent < i and in_reflection[parent]
        in_reflection.append(below or ntype == REFLECTION_TYPE)
        if ntype == REFLECTION_TYPE:
            out["reflections"] += 1
            out["reflections_expanded"] += int(bool(expanded))
        if terminal and correct is True:
            out["correct_paths"] += 1
            out["correct_via_reflection"] += int(below)
    return out


def share(part: int | float, whole: int | float, digits: int = 4) -> float | None:
    """`part / whole` rounded to `digits`; None when `whole` is 0 (nothing to take a share of).

    Args:
        part (`int` or `float`):
            The numerator.
        whole (`int` or `float`):
            The denominator.
        digits (`int`, *optional*, defaults to `4`):
            Decimal places kept.

    Returns:
        `float` or `None`: the rounded share, or `None` when `whole` is 0.
    """
    return round(part / whole, digits) if whole else None


def reflection_summary(trees: Iterable[Tree | Mapping[str, Any]]) -> dict[str, Any]:
    """`reflection_stats` added up over trees, with the two shares that say whether backtracking works.

    Args:
        trees (`Iterable[Tree | Mapping[str, Any]]`):
            Trees or their JSON dicts.

    Returns:
        `dict[str, Any]`: `reflections_placed`, `reflections_expanded`, `reflections_expanded_share`
        (expanded ÷ placed), `correct_paths`, `correct_via_reflection`, `correct_via_reflection_share`
        (÷ correct paths); a share is None when its denominator is 0.
    """
    total = {"reflections": 0, "reflections_expanded": 0, "correct_paths": 0, "correct_via_reflection": 0}
    for tree in trees:
        for k, v in reflection_stats(tree).items():
            total[k] += v
    return {
        "reflections_placed": total["reflections"],
        "reflections_expanded": total["reflections_expanded"],
        "reflections_expanded_share": share(total["reflections_expanded"], total["reflections"]),
        "correct_paths": total["correct_paths"],
        "correct_via_reflection": total["correct_via_reflection"],
        "correct_via_reflection_share": share(total["correct_via_reflection"], total["correct_paths"]),
    }
