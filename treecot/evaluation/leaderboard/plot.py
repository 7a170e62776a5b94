"""The comparison figure of `treecot leaderboard compare`: grouped bars per task and run (the metric above,
the no-answer rate below), with 95% Wilson error bars, zeros drawn and missing values marked.

matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

from treecot.evaluation.leaderboard.rows import PAPER_SOURCE
from treecot.evaluation.leaderboard.table import cell_value, interval_or_none, is_rate_column, problem_counts

__all__ = ["comparison_figure", "plot_comparison"]


#: One bar of a panel: (run index, x position, value, 95% interval, "<run>:<task>").
_Cell = tuple[int, float, float | None, tuple[float, float] | None, str]


def _panel_cells(table, tasks: list[str], columns: list[str], is_rate: bool, x, width: float) -> list[_Cell]:
    """The bars of one panel, run by run and task by task: `columns` (one per task) of `table`'s runs."""
    runs = list(table.index)
    cells = []
    for i, run in enumerate(runs):
        for j, (task, column) in enumerate(zip(tasks, columns)):
            value = cell_value(table.iloc[i][column]) if column in table.columns else None
            ci = interval_or_none(value, problem_counts(table, task)[i]) if is_rate else None
            cells.append((i, x[j] + (i - (len(runs) - 1) / 2) * width, value, ci, f"{run}:{task}"))
    return cells


def _panel_top(cells: list[_Cell], scale: float, is_rate: bool) -> float:
    """The top of a panel's y axis: above every bar and interval (rates: at most 110% unless one is higher)."""
    highest = max(
        [scale * v for _, _, v, _, _ in cells if v is not None]
        + [scale * ci[1] for *_, ci, _ in cells if ci is not None]
        + [0.0]
    )
    top = max(10.0 if is_rate else 1.0, 1.15 * highest + (3.0 if is_rate else 0.0))
    if is_rate:
        top = min(top, max(110.0, 1.02 * highest))
    return top


def _draw_cell(ax, cell: _Cell, run, *, scale: float, width: float, pad: float) -> None:
    """One bar: a grey "n/a" where the value is missing, a line at 0 for a zero, else a bar (hatched for the
    paper's runs), then its error bar and its value label."""
    i, pos, value, ci, name = cell
    color, hatch = f"C{i % 10}", "//" if "(paper)" in str(run) else None
    if value is None:
        ax.text(
            pos,
            pad,
            "n/a",
            ha="center",
            va="bottom",
            fontsize=7,
            color="0.45",
            style="italic",
            rotation=90,
            gid=f"missing:{name}",
        )
        return
    height = scale * value
    if height == 0:
        ax.hlines(
            0,
            pos - width / 2,
            pos + width / 2,
            colors=color,
            linewidth=3,
            zorder=3,
            gid=f"zero:{name}",
        )
    else:
        (bar,) = ax.bar(
            pos, height, width, color=color, hatch=hatch, edgecolor="white" if not hatch else "0.2"
        )
        bar.set_gid(f"bar:{name}")
    if ci is not None:
        low, high = scale * ci[0], scale * ci[1]
        ax.errorbar(
            pos,
            height,
            yerr=[[height - low], [high - height]],
            fmt="none",
            ecolor="0.15",
            elinewidth=0.8,
            capsize=2,
            zorder=4,
        )
    label = "0" if height == 0 else (f"{height:.1f}" if abs(height) < 10 else f"{height:.0f}")
    ax.text(
        pos,
        max(height, 0.0) + pad,
        label,
        ha="center",
        va="bottom",
        fontsize=7,
        zorder=5,
        bbox={"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        gid=f"label:{name}",
    )


def _draw_panel(ax, table, tasks: list[str], columns: list[str], is_rate: bool, ylabel: str, x, width: float):
    """One panel of the figure: the bars of `columns`, labelled, on a y axis that reaches above them all."""
    scale = 100.0 if is_rate else 1.0
    cells = _panel_cells(table, tasks, columns, is_rate, x, width)
    top = _panel_top(cells, scale, is_rate)
    pad = 0.015 * top
    runs = list(table.index)
    for cell in cells:
        _draw_cell(ax, cell, runs[cell[0]], scale=scale, width=width, pad=pad)
    ax.set_ylabel(ylabel)
    ax.set_ylim(-0.03 * top, top)
    limit = 100.0 if is_rate else top
    ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= limit + 1e-9])
    ax.set_ylim(-0.03 * top, top)
    ax.axhline(0, color="0.3", linewidth=0.6, zorder=2)


def _task_ticks(table, tasks: list[str]) -> list[str]:
    """The x tick labels: each task with its problem counts (``n=10/20``) where known."""
    ticks = []
    for task in tasks:
        sizes = sorted({n for n in problem_counts(table, task) if n})
        ticks.append(task + (f"\nn={'/'.join(map(str, sizes))}" if sizes else ""))
    return ticks


def _legend(ax, runs: list, ticks: list[str]) -> None:
    """The legend of the runs, below the plot (the saved PNG is cropped to include it), where it hides no bar."""
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=f"C{i % 10}", hatch="//" if "(paper)" in str(run) else None, label=str(run))
        for i, run in enumerate(runs)
    ]
    longest = max((len(str(run)) for run in runs), default=0)
    ax.legend(
        handles=handles,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16 if any("\n" in t for t in ticks) else -0.1),
        ncol=max(1, min(len(runs), 3 if longest <= 30 else 2 if longest <= 45 else 1)),
        frameon=False,
    )


def comparison_figure(table, tasks: Sequence[str], metric: str):
    """The figure of `plot_comparison` (open: the caller saves and closes it).

    Every value is labelled; a 0 is drawn as a line at 0 labelled "0" (gid ``zero:<run>:<task>``), a
    missing value as a grey "n/a" (gid ``missing:<run>:<task>``); bars have gid ``bar:<run>:<task>``.
    Rates carry 95% Wilson error bars where ``n`` is known, and the y axis reaches above every bar and
    interval.

    Args:
        table (`pandas.DataFrame`):
            `compare`'s table: one row per run, one column per task, ``<task> no-answer`` columns and the
            problem counts in ``attrs["n"]``.
        tasks (`Sequence[str]`):
            The tasks on the x axis, in order.
        metric (`str`):
            The metric of the task columns (a rate is shown in percent, with intervals).

    Returns:
        `matplotlib.figure.Figure`: two panels, `metric` above and the no-answer rate below.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    tasks = list(tasks)
    runs = list(table.index)
    x = np.arange(len(tasks))
    width = 0.8 / max(1, len(runs))
    fig, axes = plt.subplots(
        2, 1, figsize=(max(7.0, len(tasks) * (0.6 + 0.5 * len(runs)) + 2.5), 7.5), sharex=True
    )
    rate = is_rate_column(table, metric, tasks)
    _draw_panel(axes[0], table, tasks, tasks, rate, f"{metric} (%)" if rate else metric, x, width)
    _draw_panel(axes[1], table, tasks, [f"{t} no-answer" for t in tasks], True, "no answer (%)", x, width)
    ticks = _task_ticks(table, tasks)
    axes[1].set_xticks(x, ticks)
    _legend(axes[1], runs, ticks)
    title = (
        f"treecot leaderboard: {metric} and no-answer rate; error bars: 95% Wilson intervals; n/a: not "
        f"reported; hatched: {PAPER_SOURCE}"
    )
    axes[0].set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    fig.tight_layout()
    return fig


def plot_comparison(table, tasks: Sequence[str], metric: str, output: str | os.PathLike) -> Path:
    """Grouped bars of `table` (from `compare`), written as a PNG.

    `metric` per task above, no-answer rate below, with 95% Wilson error bars where ``table.attrs["n"]``
    knows the problem counts; zeros are drawn (a line at 0 labelled "0"), missing values marked "n/a".

    Args:
        table (`pandas.DataFrame`):
            `compare`'s table.
        tasks (`Sequence[str]`):
            The tasks on the x axis, in order.
        metric (`str`):
            The metric of the task columns.
        output (`str` or `os.PathLike`):
            The PNG to write (its folder is created).

    Returns:
        `Path`: `output`.
    """
    import matplotlib.pyplot as plt

    fig = comparison_figure(table, tasks, metric)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
