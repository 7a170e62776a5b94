"""Comparing runs: resolve each entry (an eval summary, a model in the leaderboard, a row of the paper's
tables) to its rows and name (`run_label`), pivot them (`wide_table`) and plot them (`compare`).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from treecot.evaluation.leaderboard.plot import plot_comparison
from treecot.evaluation.leaderboard.rows import reference, rows_from_summary
from treecot.evaluation.leaderboard.store import load
from treecot.evaluation.leaderboard.table import wide_table

__all__ = ["compare", "run_label"]


def _is_summary_path(entry: str) -> bool:
    return os.path.isfile(entry) or os.path.isfile(os.path.join(entry, "summary.json"))


def _slug(name: str) -> str:
    """`name` made file-name safe the way `treecot eval` names its default output folder (``model_slug``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name).strip("-.")


def _is_suffix(model: str, query: str) -> bool:
    """Whether `query` is `model` or its trailing path components (``cdpo-demo`` of ``outputs/x/cdpo-demo``)."""
    return model == query or model.endswith("/" + query)


def _match_model(entry: str, models: Sequence[str]) -> str:
    """The stored model name that `entry` names (see `compare`), or a one-line `ValueError`.

    Tried in order, each first with `entry` and then with its last path component (the eval folder that
    was pushed, wherever it lies): the exact name; a trailing part of the name on ``/`` boundaries
    (``cdpo-demo`` for ``outputs/smollm2-135m-instruct/cdpo-demo``); the same ignoring case, or the
    folder name `treecot eval` gives the model by default (``HuggingFaceTB--SmolLM2-135M-Instruct``). The
    first step that matches decides: one name is the answer, several are an error listing them.
    """
    if entry in models:
        return entry
    query = entry.strip().replace("\\", "/").rstrip("/")
    queries = [q for q in dict.fromkeys([query, query.rsplit("/", 1)[-1]]) if q]
    stored = {m: m.replace("\\", "/").rstrip("/") for m in models}

    def loose(m: str, q: str) -> bool:
        last = m.rsplit("/", 1)[-1]
        return _is_suffix(m.casefold(), q.casefold()) or _slug(q).casefold() in {
            _slug(m).casefold(),
            _slug(last).casefold(),
        }

    for test in (_is_suffix, loose):
        for q in queries:
            hits = sorted(name for name, m in stored.items() if test(m, q))
            if len(hits) == 1:
                if hits[0] != entry:  # say which stored run a partial name stood for
                    print(f"[treecot leaderboard] {entry!r} → {hits[0]!r}", file=sys.stderr)
                return hits[0]
            if hits:
                raise ValueError(
                    f"{entry!r} is ambiguous: it matches {len(hits)} models in the leaderboard "
                    f"({'; '.join(hits)}); give one of these names"
                )
    where = " (no summary.json there)" if "/" in query or os.path.exists(entry) else ""
    raise ValueError(
        f"{entry!r} is neither an eval summary or folder{where}, a 'paper:…' entry nor a model in the "
        "leaderboard; known models: " + (", ".join(sorted(models)) or "(none: push a run first)")
    )


def _resolve(entry: str, board, paper) -> tuple[str, list[dict[str, Any]]]:
    """(label, rows) of one compare entry: a summary path, "paper:<model text>", or a model in the board."""
    if _is_summary_path(entry):
        rows = rows_from_summary(entry)
        return run_label(rows[0]), rows
    if entry.startswith("paper:"):
        text = entry[len("paper:") :].strip().lower()
        hits = paper[paper["model"].str.lower() == text]
        if hits.empty:
            hits = paper[paper["model"].str.lower().str.contains(text, regex=False)]
        labels = sorted(set(hits["model"]))
        if len(labels) != 1:
            raise ValueError(
                f"{entry!r} matches {len(labels)} rows of the paper's tables; name one of: "
                + "; ".join(sorted(set(paper["model"])))
            )
        return f"{labels[0]} (paper)", hits[hits["model"] == labels[0]].to_dict("records")
    model, _, revision = entry.partition("@")
    model = _match_model(model, sorted({r["model"] for r in board}))
    rows = [
        r for r in board if r["model"] == model and (not revision or r["model_revision"].startswith(revision))
    ]
    if not rows:
        revisions = sorted({r["model_revision"] for r in board if r["model"] == model})
        raise ValueError(
            f"{entry!r}: no run of {model!r} in the leaderboard has a revision starting with {revision!r}; "
            "its revisions: " + ", ".join(revisions)
        )
    latest = max(rows, key=lambda r: (r["date"], r["run_id"]))["run_id"]
    rows = [r for r in rows if r["run_id"] == latest]
    return run_label(rows[0]), rows


def run_label(row: Mapping[str, Any]) -> str:
    """The name a run goes by in tables: its model, with ``[MCTS]`` or ``[N=<samples>]`` when not greedy.

    Args:
        row (`Mapping[str, Any]`):
            One of the run's rows (``model``, ``mode``, ``samples``).

    Returns:
        `str`: the label.
    """
    label = str(row["model"])
    if row.get("mode") == "mcts":
        label += " [MCTS]"
    elif int(row.get("samples") or 1) > 1:
        label += f" [N={row['samples']}]"
    return label


def compare(
    entries: Sequence[str],
    *,
    repo_id: str | None = None,
    metric: str = "accuracy",
    tasks: Sequence[str] | None = None,
    output: str | os.PathLike | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """Put runs side by side: a table and a grouped bar plot.

    Args:
        entries (`Sequence[str]`):
            Eval summaries / output dirs, models in the leaderboard (``name`` or ``name@revision-prefix``:
            its latest run), or ``paper:<model and method>`` rows of `reference()`. A model may be named by
            its stored name, by the eval folder (name or path) that was pushed, or by an unambiguous
            trailing part of its name (``cdpo-demo`` for ``outputs/smollm2-135m-instruct/cdpo-demo``); an
            ambiguous or unknown name is a `ValueError` listing the candidates.
        repo_id (`str`, *optional*):
            The leaderboard dataset (default `DEFAULT_REPO`), read only when an entry names a model in it.
        metric (`str`, *optional*, defaults to `"accuracy"`):
            The metric compared.
        tasks (`Sequence[str]`, *optional*):
            The tasks compared (default: every task a run has).
        output (`str` or `os.PathLike`, *optional*):
            The PNG of the grouped bar plot (tasks on the x axis, one bar per run, error bars; no-answer
            rates in a second panel); default ``leaderboard_compare.png``.
        local_dir (`str` or `os.PathLike`, *optional*):
            Read the leaderboard from this local folder instead of the Hub.
        token (`str`, *optional*):
            Hub token.
        endpoint (`str`, *optional*):
            Hub endpoint.

    Returns:
        `tuple[pandas.DataFrame, Path]`: ``(table, png_path)``. `table` is indexed by run label with one
        column per task holding `metric`, the tasks every run has first, and one ``<task> no-answer``
        column per task where some run reports it. ``table.attrs["n"]`` maps each task to the runs'
        problem counts (None where unknown, e.g. the paper's), in the order of the index;
        `comparison_table` / `format_comparison` turn the table into one row per task and run with ``n``
        and 95% Wilson intervals.
    """
    if not entries:
        raise ValueError("compare needs at least one run (a summary path, a model name or 'paper:…')")
    needs_board = any(not _is_summary_path(e) and not e.startswith("paper:") for e in entries)
    board = (
        load(repo_id, local_dir=local_dir, token=token, endpoint=endpoint).to_list() if needs_board else []
    )
    paper = reference()
    runs: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        label, rows = _resolve(entry, board, paper)
        base, i = label, 2
        while label in runs:
            label, i = f"{base} #{i}", i + 1
        runs[label] = rows
    table = wide_table(runs, metric, tasks)
    sizes = table.attrs["n"]
    if not sizes:
        raise ValueError(f"no run has metric {metric!r}" + (f" for tasks {list(tasks)}" if tasks else ""))
    common = [t for t in sizes if table[t].notna().all()]
    order = common + [t for t in sizes if t not in common]
    missing = [f"{t} no-answer" for t in order if f"{t} no-answer" in table.columns]
    table = table.reindex(columns=[*order, *missing])
    table.attrs = {"metric": metric, "n": {t: sizes[t] for t in order}}
    png = plot_comparison(table, order, metric, output or "leaderboard_compare.png")
    return table, png
