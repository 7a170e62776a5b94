"""Thoughts Length Balance (Marco-o1 v2, METHOD §2).

"Long" is relative to the problem: per problem, the correct paths are ranked by their length in the
STUDENT's tokens. Only the paths that may be used are ranked: by default the clean ones
(`treecot.data.extract.path_defects`), so "longest" never means a path with a loop cut at the token cap. The paper's recipe uses the **longest** correct path for SFT and the **shortest** for DPO.

Ranking of the n correct paths of one problem, sorted by (length, order of discovery):
the first is `shortest`, the last is `longest`, the others are `medium`. A problem with a single correct
path has it labelled `longest` (it is also the shortest; every selection keeps it).
Selections: `shortest` / `longest` keep the one extreme path; `medium` keeps the median path (the lower
median for an even count); `all` keeps every path.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

#: Thoughts Length Balance: which correct paths of a problem are kept, by length (`select_by_length`).
LENGTH_CHOICES = ("shortest", "medium", "longest", "all")


def rank_labels(lengths: Sequence[int]) -> list[str]:
    """`shortest` / `medium` / `longest` label of each length, in input order (ties: earlier = shorter)."""
    n = len(lengths)
    order = sorted(range(n), key=lambda i: (lengths[i], i))
    labels = ["medium"] * n
    if n:
        labels[order[0]] = "shortest"
        labels[order[-1]] = "longest"
    return labels


def select_by_length(items: Sequence[T], which: str, key: Callable[[T], int]) -> list[T]:
    """The items of ONE problem that `which` keeps (see module doc)."""
    if which not in LENGTH_CHOICES:
        raise ValueError(f"length selection must be one of {LENGTH_CHOICES}, got {which!r}")
    if not items or which == "all":
        return list(items)
    order = sorted(range(len(items)), key=lambda i: (key(items[i]), i))
    if which == "shortest":
        return [items[order[0]]]
    if which == "longest":
        return [items[order[-1]]]
    return [items[order[(len(order) - 1) // 2]]]


def plot_length_histograms(rows_by_task: dict[str, dict[str, list[int]]], out_dir: str | Path) -> list[Path]:
    """One PNG per task: histogram of correct-path lengths, one series per group (e.g. all / sft / dpo).

    Args:
        rows_by_task (`dict[str, dict[str, list[int]]]`):
            {task: {series_name: [token lengths]}}.
        out_dir (`str | Path`):
            Where the PNGs are written.

    Returns:
        `list[Path]`: the written paths (`<out_dir>/length_hist_<task>.png`).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for task, series in sorted(rows_by_task.items()):
        values = [v for vs in series.values() for v in vs]
        if not values:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
        bins = min(30, max(5, len(set(values))))
        lo, hi = min(values), max(values)
        edges = [lo + (hi - lo + 1) * i / bins for i in range(bins + 1)]
        for name, vs in series.items():
            if vs:
                ax.hist(
                    vs, bins=edges, alpha=0.55, label=f"{name} (n={len(vs)}, mean={sum(vs) / len(vs):.0f})"
                )
        ax.set_title(f"{task}: reasoning-path length (student tokens)")
        ax.set_xlabel("tokens")
        ax.set_ylabel("paths")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out_dir / f"length_hist_{task}.png"
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
