"""Leaderboard rows: the table's columns (`COLUMNS`), the rows of one `treecot eval` run
(`rows_from_summary`), and the paper's reported figures as rows (`reference`).

See `treecot.evaluation.leaderboard` for what a row holds.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "COLUMNS",
    "PAPER_SOURCE",
    "PUSHED_METRICS",
    "RAW_METRICS",
    "RUN_SOURCE",
    "float_or_none",
    "reference",
    "rows_from_summary",
]

RUN_SOURCE = "treecot eval"
PAPER_SOURCE = "reported in the paper (arXiv 2503.01461)"
#: Metrics that are raw numbers; every other metric is a rate (a fraction in [0, 1]).
RAW_METRICS = ("mean_tokens",)
#: column -> arrow type ("string", "float64", "int64")
COLUMNS: dict[str, str] = {
    "model": "string",
    "model_revision": "string",
    "dataset_repo": "string",
    "dataset_revision": "string",
    "recipe_hash": "string",
    "task": "string",
    "metric": "string",
    "value": "float64",
    "no_answer_rate": "float64",
    "n": "int64",
    "date": "string",
    "treecot_version": "string",
    "mode": "string",
    "samples": "int64",
    "seed": "int64",
    "source": "string",
    "run_id": "string",
}
#: summary metrics pushed as rows (no_answer_rate travels in its own column on every row).
PUSHED_METRICS = (
    "accuracy",
    "test_at_n",
    "repetition_rate",
    "over_reflection_rate",
    "instruction_failure_rate",
    "hit_limit_rate",
    "mean_tokens",
    "prompt_loose",
    "inst_strict",
    "inst_loose",
)


def _read_summary(path: str | os.PathLike) -> dict[str, Any]:
    """A run summary from a summary.json, an eval output directory, or a lighteval results JSON."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "summary.json"
    if not p.is_file():
        raise FileNotFoundError(
            f"no evaluation summary at {path} (expected summary.json or an eval output dir)"
        )
    try:
        data = json.loads(p.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{p} is not valid JSON: {err}") from None
    if "tasks" in data and "model" in data:
        return data
    if "results" in data and "config_general" in data:  # lighteval's results JSON
        sibling = p.parent.parent / "summary.json"
        if sibling.is_file():
            return json.loads(sibling.read_text())
        return _summary_from_lighteval(data)
    raise ValueError(f"{p} is neither a treecot eval summary nor a lighteval results JSON")


def _summary_from_lighteval(data: Mapping[str, Any]) -> dict[str, Any]:
    """A minimal summary from a lighteval results JSON alone (``n`` is unknown there: -1)."""
    prefix = "treecot_"  # treecot.evaluation.lighteval_tasks.PREFIX (not imported: it loads lighteval)
    general = data.get("config_general") or {}
    model_config = general.get("model_config") or {}
    tasks = {}
    for key, metrics in (data.get("results") or {}).items():
        name = key.replace(":", "|").split("|")[0]
        if not name.startswith(prefix):
            continue
        tasks[name.removeprefix(prefix)] = {**metrics, "n": -1}
    if not tasks:
        raise ValueError("the lighteval results JSON holds no treecot task (names starting with 'treecot_')")
    gen = model_config.get("generation_parameters") or {}
    return {
        "model": general.get("model_name") or model_config.get("model_name") or "unknown",
        "model_revision": model_config.get("model_revision") or "",
        "mode": "sampling" if (gen.get("temperature") or 0) > 0 else "greedy",
        "samples": 1,
        "seed": gen.get("seed") or 0,
        "date": "",
        "treecot_version": "",
        "tasks": tasks,
    }


def _run_id(summary: Mapping[str, Any]) -> str:
    keys = (
        "model",
        "model_revision",
        "mode",
        "samples",
        "seed",
        "temperature",
        "top_p",
        "max_new_tokens",
        "limit",
        "date",
    )
    blob = json.dumps({k: summary.get(k) for k in keys}, sort_keys=True, default=str)
    blob += json.dumps(summary.get("tasks"), sort_keys=True, default=str)
    prompts = (summary.get("prompt") or {}).get("system_prompts")
    if prompts:  # one model under two prompts is two runs (summaries before the prompt contract: unchanged)
        blob += json.dumps(prompts, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def float_or_none(value: Any) -> float | None:
    """`value` as a float, None where it is None, a bool or not a number.

    Args:
        value (`Any`):
            A metric value from a summary or a table.

    Returns:
        `float` or `None`: the number (NaN stays NaN).
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def rows_from_summary(summary: Mapping[str, Any] | str | os.PathLike) -> list[dict[str, Any]]:
    """Leaderboard rows (`COLUMNS`) of one run.

    Args:
        summary (`Mapping[str, Any]`, `str` or `os.PathLike`):
            A run's summary dict, or a path accepted by `push` (``summary.json``, an eval output directory,
            or lighteval's results JSON of a treecot run).

    Returns:
        `list[dict[str, Any]]`: one row per task and metric (a ``test@N`` row for Test@N).

    Raises:
        ValueError: the run scored another split or offset than the test problems, or has no metric.
    """
    if not isinstance(summary, Mapping):
        summary = _read_summary(summary)
    if summary.get("split") or summary.get("offset"):
        raise ValueError(
            f"the run of {summary.get('model')!r} scored problems {summary.get('offset', 0)}… of the "
            f"{summary.get('split') or 'test'} split, not the test problems: a leaderboard compares runs on "
            "the same test problems (validation runs choose hyperparameters; keep them off the board)"
        )
    run_id = _run_id(summary)
    base = {
        "model": str(summary["model"]),
        "model_revision": str(summary.get("model_revision") or ""),
        "dataset_repo": str(summary.get("dataset_repo") or ""),
        "dataset_revision": str(summary.get("dataset_revision") or ""),
        "recipe_hash": str(summary.get("recipe_hash") or ""),
        "date": str(summary.get("date") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")),
        "treecot_version": str(summary.get("treecot_version") or ""),
        "mode": str(summary.get("mode") or "greedy"),
        "samples": int(summary.get("samples") or 1),
        "seed": int(summary.get("seed") or 0),
        "source": RUN_SOURCE,
        "run_id": run_id,
    }
    rows = []
    for task, metrics in summary["tasks"].items():
        extra = sorted(m for m in metrics if m.startswith("pass@") and not m.endswith("_stderr"))
        for metric in (*PUSHED_METRICS, *extra):
            value = float_or_none(metrics.get(metric))
            if value is None:
                continue
            name = f"test@{base['samples']}" if metric == "test_at_n" else metric
            rows.append(
                {
                    **base,
                    "task": task,
                    "metric": name,
                    "value": value,
                    "no_answer_rate": float_or_none(metrics.get("no_answer_rate")),
                    "n": int(metrics.get("n", -1)),
                }
            )
    if not rows:
        raise ValueError(f"the summary of {summary['model']!r} has no metric to push")
    return rows


# ------------------------------------------------------------------------------------------- reference


def _reference_data() -> dict[str, Any]:
    text = resources.files("treecot").joinpath("resources/paper_reference.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference(table: str | None = None):
    """The paper's Table 4, 5 and 7 figures (fractions; see `treecot.evaluation.leaderboard`).

    Args:
        table (`str`, *optional*):
            "table4", "table5" or "table7" (default: all three).

    Returns:
        `pandas.DataFrame`: columns `COLUMNS` plus ``table`` and ``method``; ``model`` is "<paper model>
        <method>", ``source`` is `PAPER_SOURCE`, ``no_answer_rate`` is known for Table 5 only and ``n`` is
        -1 (not reported).
    """
    import pandas as pd

    data = _reference_data()
    tables = data["tables"]
    if table is not None and table not in tables:
        raise ValueError(f"unknown table {table!r}; choose from {', '.join(tables)}")
    rows = []
    for name, spec in tables.items():
        if table is not None and name != table:
            continue
        for entry in spec["rows"]:
            label = entry["model"] if entry["method"] == "base" else f"{entry['model']} {entry['method']}"
            no_answer = entry.get("no_answer") or [None] * len(spec["columns"])
            for i, column in enumerate(spec["columns"]):
                task, metric = (spec["task"], column) if column.startswith("test@") else (column, "accuracy")
                rows.append(
                    {
                        "model": label,
                        "model_revision": "",
                        "dataset_repo": "",
                        "dataset_revision": "",
                        "recipe_hash": "",
                        "task": task,
                        "metric": metric,
                        "value": entry["accuracy"][i] / 100.0,
                        "no_answer_rate": None if no_answer[i] is None else no_answer[i] / 100.0,
                        "n": -1,
                        "date": "",
                        "treecot_version": "",
                        "mode": "mcts"
                        if "MCTS" in entry["method"]
                        else ("sampling" if metric != "accuracy" else "greedy"),
                        "samples": int(metric.split("@")[1]) if metric.startswith("test@") else 1,
                        "seed": 0,
                        "source": data["source"],
                        "run_id": f"paper-{name}-{label}",
                        "table": name,
                        "method": entry["method"],
                    }
                )
    return pd.DataFrame(rows)
