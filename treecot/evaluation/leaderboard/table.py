"""Leaderboard tables: rows pivoted to one row per run (`wide_table`), the comparison of runs as one row
per task and run with 95% Wilson intervals (`comparison_table`, `format_comparison`), and Markdown.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from treecot.evaluation.leaderboard.rows import RAW_METRICS, float_or_none
from treecot.evaluation.stats import format_rate, rate_interval

__all__ = [
    "cell_value",
    "comparison_table",
    "format_comparison",
    "interval_or_none",
    "is_rate_column",
    "markdown_table",
    "problem_counts",
    "wide_table",
]


def cell_value(value: Any) -> float | None:
    """A table cell as a float, None where missing.

    Args:
        value (`Any`):
            A cell of a leaderboard row or table.

    Returns:
        `float` or `None`: None for None, NaN and anything that is not a number.
    """
    value = float_or_none(value)
    return None if value is None or value != value else value


def problem_counts(table, task: str) -> list[int | None]:
    """The problem counts of `task` in `table`'s runs, by position.

    Args:
        table (`pandas.DataFrame`):
            A `wide_table` / `compare` table (its ``attrs["n"]``).
        task (`str`):
            A task column.

    Returns:
        `list[int | None]`: one count per run (None where unknown or not positive).
    """
    sizes = list(((table.attrs.get("n") or {}).get(task)) or [])
    sizes += [None] * (len(table.index) - len(sizes))
    return [int(n) if n is not None and n == n and int(n) > 0 else None for n in sizes[: len(table.index)]]


def is_rate_column(table, metric: str, tasks: Sequence[str]) -> bool:
    """Whether `metric` is a rate (shown in percent, with intervals) rather than a raw number.

    Args:
        table (`pandas.DataFrame`):
            A `wide_table` / `compare` table.
        metric (`str`):
            The metric of its task columns (`RAW_METRICS` are never rates).
        tasks (`Sequence[str]`):
            The task columns to look at: a rate has every value in [0, 1].

    Returns:
        `bool`: whether the values are rates.
    """
    if metric in RAW_METRICS:
        return False
    cells = [
        cell_value(table.iloc[i][t]) for t in tasks if t in table.columns for i in range(len(table.index))
    ]
    return all(0.0 <= v <= 1.0 for v in cells if v is not None)


def interval_or_none(value: float | None, n: int | None) -> tuple[float, float] | None:
    """The Wilson 95% interval of a rate of `n` problems, None where either is unknown.

    Args:
        value (`float` or `None`):
            The rate (a fraction in [0, 1]).
        n (`int` or `None`):
            The number of problems.

    Returns:
        `tuple[float, float]` or `None`: the interval's bounds (`treecot.evaluation.stats.rate_interval`).
    """
    if value is None or not n or not 0.0 <= value <= 1.0:
        return None
    return rate_interval(value, n)


def wide_table(
    runs: Mapping[str, Iterable[Mapping[str, Any]]], metric: str, tasks: Sequence[str] | None = None
):
    """Leaderboard rows pivoted to one row per run: a metric per task, then the no-answer rate per task.

    The one pivot of leaderboard rows, shared by `compare` and the Space's Leaderboard tab.

    Args:
        runs (`Mapping[str, Iterable[Mapping[str, Any]]]`):
            Run label -> the run's rows (`COLUMNS`). A row of another metric, of a task not in `tasks` or
            without a value is left out; a later row of the same task replaces an earlier one.
        metric (`str`):
            The metric shown ("accuracy", "test@8", …).
        tasks (`Sequence[str]`, *optional*):
            The tasks shown, in this order (default: every task a run has a value for, in the order first
            seen); a task no run has a value for gets no column.

    Returns:
        `pandas.DataFrame`: indexed by run label (``run``, in the order of `runs`): one column per task
        holding `metric` as stored (rates are fractions; NaN where the run has no value), then one
        ``<task> no-answer`` column per task where some run reports that rate. ``attrs["n"]`` maps each
        task column to the runs' problem counts (None where unknown, e.g. the paper's).
    """
    import pandas as pd

    values: dict[str, dict[str, float]] = {}
    no_answer: dict[str, dict[str, float | None]] = {}
    sizes: dict[str, dict[str, int | None]] = {}
    seen: list[str] = []
    for label, rows in runs.items():
        values[label], no_answer[label], sizes[label] = {}, {}, {}
        for row in rows:
            task = row["task"]
            value = cell_value(row["value"])
            if (tasks and task not in tasks) or row["metric"] != metric or value is None:
                continue
            if task not in seen:
                seen.append(task)
            values[label][task] = value
            no_answer[label][task] = cell_value(row.get("no_answer_rate"))  # None, not NaN, where unreported
            n = cell_value(row.get("n"))
            sizes[label][task] = int(n) if n is not None and n > 0 else None
    if tasks:
        seen = [t for t in dict.fromkeys(tasks) if t in seen]
    labels = list(runs)
    table = pd.DataFrame(
        {
            **{t: [values[r].get(t) for r in labels] for t in seen},
            **{
                f"{t} no-answer": [no_answer[r].get(t) for r in labels]
                for t in seen
                if any(no_answer[r].get(t) is not None for r in labels)
            },
        },
        index=labels,
    )
    table.index.name = "run"
    table.attrs["n"] = {t: [sizes[r].get(t) for r in labels] for t in seen}
    return table


def comparison_table(table):
    """`compare`'s `table` as one row per task and run, with 95% Wilson intervals.

    Tasks every run has come first; a task a run lacks has no row for it. Each row holds ``n`` and the
    metric and the no-answer rate in percent with their 95% Wilson intervals ("40.0 [16.8, 68.7]"; no
    interval where ``n`` is unknown, "n/a" where the value is). Columns that hold nothing but "n/a" are
    left out.

    Args:
        table (`pandas.DataFrame`):
            `compare`'s table (``attrs["metric"]`` and ``attrs["n"]``).

    Returns:
        `pandas.DataFrame`: strings, indexed by task.
    """
    import pandas as pd

    metric = str(table.attrs.get("metric") or "accuracy")
    tasks = [c for c in table.columns if not str(c).endswith(" no-answer")]
    present = {t: [cell_value(table.iloc[i][t]) is not None for i in range(len(table.index))] for t in tasks}
    tasks = [t for t in tasks if all(present[t])] + [t for t in tasks if not all(present[t])]
    rate = is_rate_column(table, metric, tasks)
    head = f"{metric} % [95% CI]" if rate else metric

    def text(value: float | None, n: int | None, is_rate: bool) -> str:
        if value is None:
            return "n/a"
        if not is_rate:
            return f"{value:.1f}"
        return format_rate(value, n if interval_or_none(value, n) else None)

    rows, index = [], []
    for task in tasks:
        sizes = problem_counts(table, task)
        for i, run in enumerate(table.index):
            value = cell_value(table.iloc[i][task])
            if value is None:
                continue
            column = f"{task} no-answer"
            miss = cell_value(table.iloc[i][column]) if column in table.columns else None
            index.append(task)
            rows.append(
                {
                    "run": str(run),
                    "n": str(sizes[i]) if sizes[i] else "n/a",
                    head: text(value, sizes[i], rate),
                    "no answer % [95% CI]": text(miss, sizes[i], True),
                }
            )
    out = pd.DataFrame(
        rows, index=pd.Index(index, name="task"), columns=["run", "n", head, "no answer % [95% CI]"]
    )
    keep = [c for c in out.columns if c == "run" or (out[c] != "n/a").any()]
    return out[keep]


def format_comparison(table) -> str:
    """`comparison_table` as Markdown, with a line naming the tasks that not every run has.

    Args:
        table (`pandas.DataFrame`):
            `compare`'s table.

    Returns:
        `str`: the Markdown table.
    """
    text = markdown_table(comparison_table(table))
    partial = [
        str(c)
        for c in table.columns
        if not str(c).endswith(" no-answer") and any(cell_value(v) is None for v in table[c])
    ]
    if partial:
        text += "\n\nnot in every run (listed after the others): " + ", ".join(partial)
    return text


def markdown_table(table, digits: int = 1) -> str:
    """`table` as a Markdown table: its index first, floats as percentages, missing values as "–".

    Args:
        table (`pandas.DataFrame`):
            The table (fractions for float cells).
        digits (`int`, *optional*, defaults to `1`):
            Decimals of the percentages.

    Returns:
        `str`: the Markdown table.
    """

    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        return f"{100 * v:.{digits}f}" if isinstance(v, float) else str(v)

    head = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *(cell(v) for v in row)]) + " |")
    return "\n".join(lines)
