"""The Space's Leaderboard tab: the leaderboard dataset's rows, the wide table and bar charts of a metric,
two runs side by side, and the handlers of the tab (`LeaderboardHandlers`)."""

from __future__ import annotations

import html
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from treecot.evaluation import leaderboard as lb
from treecot.hub import is_repo_id
from treecot.space.errors import SpaceError, call_with_deadline, request_deadline, user_message
from treecot.space.render import vega_plot
from treecot.space.sources import (
    HubLayout,
    check_local_path,
    hub_cache_roots,
    hub_layout_dir,
    input_text,
    refuse_hub,
)

if TYPE_CHECKING:
    import pandas as pd

    from treecot.space.config import SpaceConfig

#: Bar colours (gradio's theme may swap in its own palette).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)


def _leaderboard_layout(path: Path, roots: Sequence[Path], name: str) -> pd.DataFrame:
    """The leaderboard table of a local Hub layout (its ``main``), read through `open_checked` and typed
    like `treecot.evaluation.leaderboard.load`."""
    import pyarrow as pa

    layout = HubLayout(path, roots, name)
    folder, declared = layout.revision("main", layout.refs())
    table = layout.table(folder, declared, lb.CONFIG, "main")
    if table is None:
        raise SpaceError(f"{name} is not a treecot leaderboard: its card declares no {lb.CONFIG!r} config")
    missing = sorted(set(lb.COLUMNS) - set(table.column_names))
    if missing:
        raise SpaceError(f"{name} is not a treecot leaderboard: config {lb.CONFIG!r} lacks columns {missing}")
    schema = pa.schema([(column, pa.type_for_alias(kind)) for column, kind in lb.COLUMNS.items()])
    return table.select(list(lb.COLUMNS)).cast(schema).to_pandas()


def leaderboard_rows(
    source: str | None, roots: Sequence[Path], include_reference: bool = False, *, allow_hub: bool = False
) -> pd.DataFrame:
    """The leaderboard's long-format rows (one per run × task × metric, `treecot.evaluation.leaderboard`)
    of `source`, plus the paper's reference rows when asked, with a ``label`` column naming each run.

    Args:
        source (`str`, *optional*):
            A folder under `roots`, read through `open_checked`, or with `allow_hub` a Hub id.
        roots (`Sequence[Path]`):
            The data roots a local `source` must be under.
        include_reference (`bool`, *optional*, defaults to `False`):
            Add the paper's reference rows.
        allow_hub (`bool`, *optional*, defaults to `False`):
            Accept a Hub id as `source`.

    Returns:
        `pd.DataFrame`: the rows, with a ``label`` column.

    Raises:
        SpaceError: there is nothing to show.
    """
    import pandas as pd

    from treecot.hub import LOCAL_REFS_FILE

    frames = []
    source = input_text(source, "leaderboard")
    if source and is_repo_id(source):
        if not allow_hub:
            raise refuse_hub("leaderboard", source)
        local = hub_layout_dir(source)
        try:
            if local is None:
                frames.append(lb.load(source).to_pandas())
            elif os.path.lexists(local / LOCAL_REFS_FILE):
                frames.append(_leaderboard_layout(local, hub_cache_roots(), source))
            # else: offline and not in the local Hub layout, like a missing repository: no runs yet
        except SpaceError:
            raise
        except Exception as e:  # noqa: BLE001 - any loading failure becomes one message
            raise SpaceError(f"cannot load the leaderboard {source!r}: {user_message(e)}") from None
    elif source:
        path = check_local_path(source, roots, what="leaderboard")
        if not os.path.lexists(path / LOCAL_REFS_FILE):
            raise SpaceError(
                f"cannot load the leaderboard {source!r}: no treecot dataset there (no {LOCAL_REFS_FILE}; "
                "write one with `treecot leaderboard push --local-dir`)"
            )
        frames.append(_leaderboard_layout(path, roots, str(path)))
    if include_reference:
        frames.append(lb.reference())
    if not frames:
        raise SpaceError(
            "no leaderboard dataset configured: enter a Hub id or a folder under the data roots, "
            "or show the paper's reference rows"
        )
    df = pd.concat(frames, ignore_index=True, sort=False)
    if df.empty:
        raise SpaceError(
            f"the leaderboard {source!r} has no runs yet (push one with `treecot leaderboard push`)"
        )
    labels = {}
    for row in df.drop_duplicates("run_id").to_dict("records"):
        label = (
            lb.run_label(row)
            if row.get("source") != lb.PAPER_SOURCE
            else f"{row['model']} (paper, {row.get('table', '')})"
        )
        labels[row["run_id"]] = label
    df["label"] = df["run_id"].map(labels)
    return df


def _scale(metric: str) -> float:
    return 1.0 if metric in lb.RAW_METRICS else 100.0


def leaderboard_views(
    df: pd.DataFrame,
    metric: str | None = None,
    task: str | None = "all",
    query: str | None = "",
    sort_by: str | None = "mean",
    descending: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str], list[str]]:
    """The wide table (one row per run: the metric per task, their mean, the no-answer rate per task) and
    the long rows of the chart, after filtering by task and text and sorting.

    Args:
        df (`pd.DataFrame`):
            The leaderboard's rows (`leaderboard_rows`).
        metric (`str`, *optional*):
            The metric shown (default "accuracy").
        task (`str`, *optional*, defaults to `"all"`):
            The task shown, or "all".
        query (`str`, *optional*, defaults to `""`):
            Keep the rows whose label, model, source, mode, dataset repo or run id contains this text.
        sort_by (`str`, *optional*, defaults to `"mean"`):
            The table's column to sort by.
        descending (`bool`, *optional*, defaults to `True`):
            Sort in descending order.

    Returns:
        `tuple[pd.DataFrame, pd.DataFrame, str, list[str], list[str]]`: (table, chart rows, metric, metrics,
        tasks). Rates are in percent.
    """
    import pandas as pd

    metrics = sorted(df["metric"].dropna().unique().tolist(), key=lambda m: (m != "accuracy", m))
    metric = input_text(metric, "metric") or "accuracy"
    if metric not in metrics:
        raise SpaceError(f"metric {metric!r} is not on the leaderboard; metrics: {', '.join(metrics)}")
    rows = df[df["metric"] == metric]
    tasks = sorted(rows["task"].dropna().unique().tolist())
    task = input_text(task, "task") or "all"
    if task != "all":
        if task not in tasks:
            raise SpaceError(f"task {task!r} has no {metric} rows; tasks: {', '.join(tasks)}")
        rows = rows[rows["task"] == task]
    query = input_text(query, "filter").lower()
    if query:
        text = (
            rows[["label", "model", "source", "mode", "dataset_repo", "run_id"]]
            .astype(str)
            .agg(" ".join, axis=1)
        )
        rows = rows[text.str.lower().str.contains(query, regex=False)]
    scale = _scale(metric)
    shown = sorted(rows["task"].unique().tolist())
    info = rows.drop_duplicates("run_id").set_index("run_id")
    table = pd.DataFrame(
        {"run": info["label"], "source": info["source"], "mode": info["mode"], "samples": info["samples"]}
    )
    runs = {run: group.to_dict("records") for run, group in rows.groupby("run_id", sort=False)}
    wide = lb.wide_table(runs, metric, shown)
    for t in shown:
        table[t] = (wide[t] * scale).round(2) if t in wide else math.nan
    table["mean"] = table[shown].mean(axis=1, skipna=True).round(2) if shown else math.nan
    for t in shown:
        if f"{t} no-answer" in wide:
            table[f"{t} no-answer"] = (wide[f"{t} no-answer"] * 100.0).round(2)
    table = table.reset_index(drop=True)
    sort_by = input_text(sort_by, "sort column")
    if sort_by:
        if sort_by not in table.columns:
            raise SpaceError(f"cannot sort by {sort_by!r}: columns are {', '.join(map(str, table.columns))}")
        table = table.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
        table = table.reset_index(drop=True)
    chart = pd.DataFrame(
        {
            "run": rows["label"],
            "task": rows["task"],
            "value": rows["value"] * scale,
            "no_answer": rows["no_answer_rate"] * 100.0,
        }
    ).dropna(subset=["value"])
    return table, chart, metric, metrics, tasks


def leaderboard_chart_spec(chart: pd.DataFrame, field: str, title: str) -> dict:
    """Vega-Lite grouped bars of `field` per task, one bar per run; tooltips carry both figures.

    Args:
        chart (`pd.DataFrame`):
            The chart rows of `leaderboard_views`.
        field (`str`):
            "value" or "no_answer".
        title (`str`):
            The y axis's title.
    """
    runs = list(dict.fromkeys(chart["run"]))
    values = chart.astype(object).where(chart.notna(), None).to_dict("records")
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": values},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "task", "type": "nominal", "axis": {"labelAngle": 0, "title": None}},
            "xOffset": {"field": "run", "type": "nominal", "sort": runs},
            "y": {"field": field, "type": "quantitative", "title": title},
            "color": {
                "field": "run",
                "type": "nominal",
                "sort": runs,
                "scale": {"domain": runs, "range": [PALETTE[i % len(PALETTE)] for i in range(len(runs))]},
                "legend": {"title": "run", "orient": "bottom", "columns": 2, "labelLimit": 400},
            },
            "tooltip": [
                {"field": "run"},
                {"field": "task"},
                {"field": "value", "format": ".2f"},
                {"field": "no_answer", "title": "no answer (%)", "format": ".2f"},
            ],
        },
        "height": 280,
    }


def compare_runs_frame(df: pd.DataFrame, run_a: str, run_b: str) -> pd.DataFrame:
    """Two runs (by run id) side by side: one row per (task, metric) either reports, both values and B − A.
    Rates in percent.

    Args:
        df (`pd.DataFrame`):
            The leaderboard's rows (`leaderboard_rows`).
        run_a (`str`):
            The first run's id (A).
        run_b (`str`):
            The second run's id (B).
    """
    import pandas as pd

    runs = dict(zip(df["run_id"], df["label"]))
    for name, run in (("first", run_a), ("second", run_b)):
        if not run:
            raise SpaceError(f"choose the {name} run to compare")
        if run not in runs:
            raise SpaceError(f"run {run!r} is not on the leaderboard (choose one from the menu)")
    a = df[df["run_id"] == run_a].set_index(["task", "metric"])
    b = df[df["run_id"] == run_b].set_index(["task", "metric"])
    keys = list(dict.fromkeys([*a.index, *b.index]))
    rows = []
    for task, metric in keys:
        scale = _scale(metric)
        va = float(a.loc[(task, metric), "value"]) * scale if (task, metric) in a.index else math.nan
        vb = float(b.loc[(task, metric), "value"]) * scale if (task, metric) in b.index else math.nan
        rows.append(
            {"task": task, "metric": metric, "A": round(va, 2), "B": round(vb, 2), "B − A": round(vb - va, 2)}
        )
    out = pd.DataFrame(rows).sort_values(["metric", "task"], kind="stable").reset_index(drop=True)
    return out.rename(columns={"A": f"A: {runs[run_a]}", "B": f"B: {runs[run_b]}"})


class LeaderboardHandlers:
    """The Leaderboard tab's handlers, mixed into `SpaceApp` (which sets `config`); each returns component
    values."""

    config: SpaceConfig

    def _board(self, source: str | None, include_reference: bool) -> pd.DataFrame:
        return call_with_deadline(
            lambda: leaderboard_rows(
                source,
                self.config.roots,
                bool(include_reference),
                allow_hub=self.config.hub_allowed(input_text(source, "leaderboard")),
            ),
            request_deadline(self.config.request_timeout),
            self.config.request_timeout,
            "loading the leaderboard",
        )

    def leaderboard(
        self,
        source: str | None,
        include_reference: bool = False,
        query: str | None = "",
        task: str | None = "all",
        metric: str | None = "accuracy",
        sort_by: str | None = "mean",
        descending: bool = True,
    ):
        """Show the leaderboard of `source`.

        Args:
            source (`str`, *optional*):
                The leaderboard (see `leaderboard_rows`).
            include_reference (`bool`, *optional*, defaults to `False`):
                Add the paper's reference rows.
            query (`str`, *optional*, defaults to `""`):
                The text filter (see `leaderboard_views`).
            task (`str`, *optional*, defaults to `"all"`):
                The task shown, or "all".
            metric (`str`, *optional*, defaults to `"accuracy"`):
                The metric shown.
            sort_by (`str`, *optional*, defaults to `"mean"`):
                The table's column to sort by.
            descending (`bool`, *optional*, defaults to `True`):
                Sort in descending order.

        Returns:
            `tuple`: (table, metric chart, no-answer chart, run A menu, run B menu, task menu, metric menu,
            sort menu, status).
        """
        import gradio as gr

        df = self._board(source, include_reference)
        table, chart, metric, metrics, tasks = leaderboard_views(df, metric, task, query, sort_by, descending)
        runs = list(dict.fromkeys(zip(df["label"], df["run_id"])))
        mine = [r for r in runs if not str(r[1]).startswith("paper-")] or runs
        first = mine[0][1]
        second = (mine[1] if len(mine) > 1 else next((r for r in runs if r[1] != first), mine[0]))[1]
        n_runs = df["run_id"].nunique()
        status = f"{len(table)} of {n_runs} runs · metric `{metric}`" + (
            " · with the paper's reference rows (arXiv 2503.01461)" if include_reference else ""
        )
        task = input_text(task, "task") or "all"
        return (
            table,
            vega_plot(
                leaderboard_chart_spec(chart, "value", metric + ("" if metric in lb.RAW_METRICS else " (%)")),
                "bar",
            ),
            vega_plot(leaderboard_chart_spec(chart, "no_answer", "no answer (%)"), "bar")
            if chart["no_answer"].notna().any()
            else None,
            gr.Dropdown(choices=runs, value=first),
            gr.Dropdown(choices=runs, value=second),
            gr.Dropdown(choices=["all", *tasks], value=task),
            gr.Dropdown(choices=metrics, value=metric),
            gr.Dropdown(
                choices=[str(c) for c in table.columns], value=input_text(sort_by, "sort column") or None
            ),
            status,
        )

    def compare_runs(self, source: str | None, include_reference: bool, run_a: str, run_b: str):
        """Compare two runs of the leaderboard of `source`.

        Args:
            source (`str`, *optional*):
                The leaderboard (see `leaderboard_rows`).
            include_reference (`bool`):
                Add the paper's reference rows.
            run_a (`str`):
                The first run's id (A).
            run_b (`str`):
                The second run's id (B).

        Returns:
            `tuple`: (side-by-side table, summary).
        """
        df = self._board(source, include_reference)
        run_a, run_b = input_text(run_a, "run A"), input_text(run_b, "run B")
        table = compare_runs_frame(df, run_a, run_b)
        delta = table["B − A"]
        labels = dict(zip(df["run_id"], df["label"]))
        summary = (
            f"**B** {html.escape(labels[run_b])} vs **A** {html.escape(labels[run_a])}: B is higher on "
            f"{int((delta > 0).sum())}, lower on {int((delta < 0).sum())} of {int(delta.notna().sum())} (task, metric) "
            "pairs both report (for rates such as no-answer or repetition, lower is better)"
        )
        return table, summary

    def initial_leaderboard(self):
        """Page load: the configured leaderboard (a message in the status line when it cannot be read)."""
        import gradio as gr

        if not self.config.leaderboard:
            return tuple(gr.skip() for _ in range(9))
        try:
            return self.leaderboard(self.config.leaderboard)
        except Exception as e:  # noqa: BLE001 - shown in the status line
            return (*(gr.skip() for _ in range(8)), f"⚠️ {html.escape(user_message(e))}")
