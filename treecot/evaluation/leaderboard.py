"""A leaderboard of `treecot eval` runs, kept as a versioned dataset (Hub repo or local folder).

    treecot leaderboard push outputs/eval/smollm2-135m-instruct/summary.json
    treecot leaderboard compare smollm2-135m-instruct outputs/eval/my-sft/ "paper:Llama-3.2-1B-Instruct + Our Data"
    treecot leaderboard reference --table table5

Rows (one per run × task × metric; `COLUMNS`): ``model``, ``model_revision``, ``dataset_repo``,
``dataset_revision``, ``recipe_hash`` (what the model was trained on, from the run's summary), ``task``,
``metric`` (accuracy, pass@k, the diagnostics rates, mean_tokens, …), ``value``, ``no_answer_rate`` (of
that task in that run: the paper's parenthesised figure), ``n`` (problems), ``date``,
``treecot_version``, ``mode`` (greedy / sampling / mcts), ``samples``, ``seed``, ``source`` and
``run_id`` (a hash of the run's identity: pushing the same summary twice does not duplicate it).
Rates are fractions in [0, 1]; tables print percentages.

Storage: config ``results`` of the dataset repository ``repo_id`` (default `DEFAULT_REPO`) through
`treecot.hub`: each push writes the whole table to a new branch ``run-<hash>`` and updates ``main``
(so ``main`` always holds every row and each branch is a snapshot); without a Hub token or endpoint it is
the local Hub layout under ``$TREECOT_CACHE/hub/datasets/<repo_id>``. A push is a read-modify-write held
under the local folder's lock (`treecot.hub.write_lock`), so concurrent pushes to one folder all land
and a killed push is repaired by the next one. A Hub repository has no lock: two concurrent pushes there
can still lose one of them.

`reference()` returns the paper's Table 4, 5 and 7 figures (METHOD §4, shipped in
``treecot/resources/paper_reference.json``) as rows with ``source = "reported in the paper (arXiv
2503.01461)"``, so runs can be put next to them. The paper's Multi-IF columns have no treecot
counterpart (Multi-IF is not available offline) and its AIME column pools two years ("aime").
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import sys
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from treecot.evaluation.stats import format_rate, rate_interval

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "DEFAULT_REPO",
    "PAPER_SOURCE",
    "compare",
    "comparison_table",
    "format_comparison",
    "leaderboard_main",
    "load",
    "plot_comparison",
    "push",
    "reference",
    "rows_from_summary",
    "run_label",
    "wide_table",
]

DEFAULT_REPO = "treecot/leaderboard"
CONFIG = "results"
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


def _features():
    from datasets import Features, Value

    return Features({name: Value(kind) for name, kind in COLUMNS.items()})


# ------------------------------------------------------------------------------------------- rows


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


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def rows_from_summary(summary: Mapping[str, Any] | str | os.PathLike) -> list[dict[str, Any]]:
    """Leaderboard rows (`COLUMNS`) of one run: a summary dict or a path accepted by `push`."""
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
            value = _float(metrics.get(metric))
            if value is None:
                continue
            name = f"test@{base['samples']}" if metric == "test_at_n" else metric
            rows.append(
                {
                    **base,
                    "task": task,
                    "metric": name,
                    "value": value,
                    "no_answer_rate": _float(metrics.get("no_answer_rate")),
                    "n": int(metrics.get("n", -1)),
                }
            )
    if not rows:
        raise ValueError(f"the summary of {summary['model']!r} has no metric to push")
    return rows


# ------------------------------------------------------------------------------------------- storage


def _is_missing(err: BaseException) -> bool:
    if isinstance(err, FileNotFoundError):
        return True
    try:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        return isinstance(err, (RepositoryNotFoundError, RevisionNotFoundError))
    except ImportError:  # pragma: no cover
        return False


def load(
    repo_id: str | None = None,
    *,
    revision: str | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """The leaderboard table (a `datasets.Dataset` with `COLUMNS`); empty when the repository does not exist."""
    from datasets import Dataset

    from treecot.hub import list_versions, load_versioned

    repo_id = repo_id or DEFAULT_REPO
    empty = Dataset.from_dict({name: [] for name in COLUMNS}, features=_features())
    try:
        versions = list_versions(repo_id, local_dir=local_dir, token=token, endpoint=endpoint)
    except Exception as err:  # noqa: BLE001 - only "does not exist" is swallowed
        if _is_missing(err):
            return empty
        raise
    if revision is None and not versions.branches.get("main"):
        return empty  # a local folder whose first push never completed: no row was published
    ds = load_versioned(
        repo_id, CONFIG, revision, split="train", local_dir=local_dir, token=token, endpoint=endpoint
    )
    missing = sorted(set(COLUMNS) - set(ds.column_names))
    if missing:
        raise ValueError(f"{repo_id} is not a treecot leaderboard: config {CONFIG!r} lacks columns {missing}")
    return ds.select_columns(list(COLUMNS)).cast(_features())


def push(
    results_or_summary_path: str | os.PathLike | Mapping[str, Any],
    repo_id: str | None = None,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """Append a run's rows to the leaderboard `repo_id` (default `DEFAULT_REPO`; see the module docstring).

    `results_or_summary_path`: a run's ``summary.json``, its output directory, lighteval's results JSON
    of a treecot run, or a summary dict. Re-pushing a run replaces its rows. Returns
    `treecot.hub.PushResult`.
    """
    from datasets import Dataset

    from treecot.hub import push_dataset, write_lock

    repo_id = repo_id or DEFAULT_REPO
    new = rows_from_summary(results_or_summary_path)
    run_id = new[0]["run_id"]
    target = {"local_dir": local_dir, "token": token, "endpoint": endpoint}
    with write_lock(repo_id, **target):  # the table read here is still main's when the push below lands
        current = load(repo_id, **target)
        kept = [row for row in current.to_list() if row["run_id"] != run_id]
        rows = kept + new
        table = Dataset.from_list(rows, features=_features())
        runs = sorted({row["run_id"] for row in rows})
        config_hash = hashlib.sha256(json.dumps(runs).encode()).hexdigest()[:16]
        card = {
            "pretty_name": "treecot leaderboard",
            "description": (
                "Evaluation runs of `treecot eval` (lighteval with treecot's verifiers): one row per run, task "
                "and metric, with the task's no-answer rate. Rates are fractions in [0, 1]. Compare with the "
                f"paper's figures via `treecot leaderboard reference` ({PAPER_SOURCE})."
            ),
            "built_with": (
                "Written by `treecot leaderboard push`: every push rewrites the whole table on `main` (load that) "
                "and keeps a snapshot of it on its own `run-*` branch."
            ),
            "load_revision": "main",
            **({"local_dir": str(local_dir)} if local_dir is not None else {}),
            "tags": ["leaderboard", "evaluation"],
            "models": {f"run {i + 1}": m for i, m in enumerate(sorted({row["model"] for row in rows}))},
            "yield": {"runs": len(runs), "rows": len(rows)},
        }
        result = push_dataset(
            repo_id, {CONFIG: table}, card=card, config_hash=config_hash, update_main=True, **target
        )
    logger.info("leaderboard %s: %d rows (%d runs) -> %s", repo_id, len(rows), len(runs), result.url_or_path)
    return result


# ------------------------------------------------------------------------------------------- reference


def _reference_data() -> dict[str, Any]:
    text = resources.files("treecot").joinpath("resources/paper_reference.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference(table: str | None = None):
    """The paper's Table 4, 5 and 7 figures as a `pandas.DataFrame` (fractions; see the module docstring).

    Columns: `COLUMNS` plus ``table`` and ``method``; ``model`` is "<paper model> <method>", ``source`` is
    `PAPER_SOURCE`, ``no_answer_rate`` is known for Table 5 only and ``n`` is -1 (not reported).
    `table` selects "table4", "table5" or "table7".
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


# ------------------------------------------------------------------------------------------- compare


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
    """The name a run goes by in tables: its model, with ``[MCTS]`` or ``[N=<samples>]`` when not greedy."""
    label = str(row["model"])
    if row.get("mode") == "mcts":
        label += " [MCTS]"
    elif int(row.get("samples") or 1) > 1:
        label += f" [N={row['samples']}]"
    return label


def wide_table(
    runs: Mapping[str, Iterable[Mapping[str, Any]]], metric: str, tasks: Sequence[str] | None = None
):
    """Leaderboard rows pivoted to one row per run: a metric per task, then the no-answer rate per task.

    The one pivot of leaderboard rows, shared by `compare` and the Space's Leaderboard tab.

    Args:
        runs: run label -> the run's rows (`COLUMNS`). A row of another metric, of a task not in `tasks` or
            without a value is left out; a later row of the same task replaces an earlier one.
        metric: the metric shown ("accuracy", "test@8", …).
        tasks: the tasks shown, in this order (default: every task a run has a value for, in the order
            first seen); a task no run has a value for gets no column.

    Returns:
        A `pandas.DataFrame` indexed by run label (``run``, in the order of `runs`): one column per task
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
            value = _cell(row["value"])
            if (tasks and task not in tasks) or row["metric"] != metric or value is None:
                continue
            if task not in seen:
                seen.append(task)
            values[label][task] = value
            no_answer[label][task] = _cell(row.get("no_answer_rate"))  # None, not NaN, where unreported
            n = _cell(row.get("n"))
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
    """Put runs side by side: returns ``(table, png_path)``.

    `entries`: eval summaries / output dirs, models in the leaderboard (``name`` or
    ``name@revision-prefix``: its latest run), or ``paper:<model and method>`` rows of `reference()`. A
    model may be named by its stored name, by the eval folder (name or path) that was pushed, or by an
    unambiguous trailing part of its name (``cdpo-demo`` for ``outputs/smollm2-135m-instruct/cdpo-demo``);
    an ambiguous or unknown name is a `ValueError` listing the candidates.

    `table` is a `pandas.DataFrame` indexed by run label with one column per task holding `metric`, the
    tasks every run has first, and one ``<task> no-answer`` column per task where some run reports it.
    ``table.attrs["n"]`` maps each task to the runs' problem counts (None where unknown, e.g. the paper's),
    in the order of the index; `comparison_table` / `format_comparison` turn the table into one row per
    task and run with ``n`` and 95% Wilson intervals. The grouped bar plot (tasks on the x axis, one bar
    per run, error bars; no-answer rates in a second panel) is written to `output` (default
    ``leaderboard_compare.png``).
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


def _cell(value: Any) -> float | None:
    """A table cell as a float, None where missing (None / NaN)."""
    value = _float(value)
    return None if value is None or value != value else value


def _sizes(table, task: str) -> list[int | None]:
    """The problem counts of `task` in `table`'s runs, by position (`compare`'s ``attrs["n"]``)."""
    sizes = list(((table.attrs.get("n") or {}).get(task)) or [])
    sizes += [None] * (len(table.index) - len(sizes))
    return [int(n) if n is not None and n == n and int(n) > 0 else None for n in sizes[: len(table.index)]]


def _is_rate_column(table, metric: str, tasks: Sequence[str]) -> bool:
    """Whether `metric` is a rate (shown in percent, with intervals) rather than a raw number."""
    if metric in RAW_METRICS:
        return False
    cells = [_cell(table.iloc[i][t]) for t in tasks if t in table.columns for i in range(len(table.index))]
    return all(0.0 <= v <= 1.0 for v in cells if v is not None)


def _interval(value: float | None, n: int | None) -> tuple[float, float] | None:
    """The Wilson 95% interval of a rate of `n` problems, None where either is unknown."""
    if value is None or not n or not 0.0 <= value <= 1.0:
        return None
    return rate_interval(value, n)


def comparison_table(table):
    """`compare`'s `table` as one row per task and run (tasks every run has first; a task a run lacks has
    no row for it): ``n`` and the metric and the no-answer rate in percent with their 95% Wilson intervals
    ("40.0 [16.8, 68.7]"; no interval where ``n`` is unknown, "n/a" where the value is). Columns that
    hold nothing but "n/a" are left out. Returns a `pandas.DataFrame` of strings indexed by task."""
    import pandas as pd

    metric = str(table.attrs.get("metric") or "accuracy")
    tasks = [c for c in table.columns if not str(c).endswith(" no-answer")]
    present = {t: [_cell(table.iloc[i][t]) is not None for i in range(len(table.index))] for t in tasks}
    tasks = [t for t in tasks if all(present[t])] + [t for t in tasks if not all(present[t])]
    rate = _is_rate_column(table, metric, tasks)
    head = f"{metric} % [95% CI]" if rate else metric

    def text(value: float | None, n: int | None, is_rate: bool) -> str:
        if value is None:
            return "n/a"
        if not is_rate:
            return f"{value:.1f}"
        return format_rate(value, n if _interval(value, n) else None)

    rows, index = [], []
    for task in tasks:
        sizes = _sizes(table, task)
        for i, run in enumerate(table.index):
            value = _cell(table.iloc[i][task])
            if value is None:
                continue
            column = f"{task} no-answer"
            miss = _cell(table.iloc[i][column]) if column in table.columns else None
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
    """`comparison_table` as Markdown, with a line naming the tasks that not every run has."""
    text = _markdown(comparison_table(table))
    partial = [
        str(c)
        for c in table.columns
        if not str(c).endswith(" no-answer") and any(_cell(v) is None for v in table[c])
    ]
    if partial:
        text += "\n\nnot in every run (listed after the others): " + ", ".join(partial)
    return text


def _comparison_figure(table, tasks: Sequence[str], metric: str):
    """The figure of `plot_comparison` (open: the caller saves and closes it).

    Every value is labelled; a 0 is drawn as a line at 0 labelled "0" (gid ``zero:<run>:<task>``), a
    missing value as a grey "n/a" (gid ``missing:<run>:<task>``); bars have gid ``bar:<run>:<task>``.
    Rates carry 95% Wilson error bars where ``n`` is known, and the y axis reaches above every bar and
    interval.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Patch

    tasks = list(tasks)
    runs = list(table.index)
    x = np.arange(len(tasks))
    width = 0.8 / max(1, len(runs))
    fig, axes = plt.subplots(
        2, 1, figsize=(max(7.0, len(tasks) * (0.6 + 0.5 * len(runs)) + 2.5), 7.5), sharex=True
    )
    rate = _is_rate_column(table, metric, tasks)
    panels = (
        (axes[0], tasks, rate, f"{metric} (%)" if rate else metric),
        (axes[1], [f"{t} no-answer" for t in tasks], True, "no answer (%)"),
    )
    for ax, columns, is_rate, ylabel in panels:
        scale = 100.0 if is_rate else 1.0
        cells = []  # (run index, x, value, interval, "<run>:<task>") of every bar
        for i, run in enumerate(runs):
            for j, (task, column) in enumerate(zip(tasks, columns)):
                value = _cell(table.iloc[i][column]) if column in table.columns else None
                ci = _interval(value, _sizes(table, task)[i]) if is_rate else None
                cells.append((i, x[j] + (i - (len(runs) - 1) / 2) * width, value, ci, f"{run}:{task}"))
        highest = max(
            [scale * v for _, _, v, _, _ in cells if v is not None]
            + [scale * ci[1] for *_, ci, _ in cells if ci is not None]
            + [0.0]
        )
        top = max(10.0 if is_rate else 1.0, 1.15 * highest + (3.0 if is_rate else 0.0))
        if is_rate:
            top = min(top, max(110.0, 1.02 * highest))
        pad = 0.015 * top
        for i, pos, value, ci, name in cells:
            color, hatch = f"C{i % 10}", "//" if "(paper)" in str(runs[i]) else None
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
                continue
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
        ax.set_ylabel(ylabel)
        ax.set_ylim(-0.03 * top, top)
        limit = 100.0 if is_rate else top
        ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= limit + 1e-9])
        ax.set_ylim(-0.03 * top, top)
        ax.axhline(0, color="0.3", linewidth=0.6, zorder=2)
    ticks = []
    for task in tasks:
        sizes = sorted({n for n in _sizes(table, task) if n})
        ticks.append(task + (f"\nn={'/'.join(map(str, sizes))}" if sizes else ""))
    axes[1].set_xticks(x, ticks)
    handles = [
        Patch(facecolor=f"C{i % 10}", hatch="//" if "(paper)" in str(run) else None, label=str(run))
        for i, run in enumerate(runs)
    ]
    longest = max((len(str(run)) for run in runs), default=0)
    axes[1].legend(
        handles=handles,
        fontsize=8,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16 if any("\n" in t for t in ticks) else -0.1),
        ncol=max(1, min(len(runs), 3 if longest <= 30 else 2 if longest <= 45 else 1)),
        frameon=False,
    )  # below the plot (the saved PNG is cropped to include it), where it hides no bar
    title = (
        f"treecot leaderboard: {metric} and no-answer rate; error bars: 95% Wilson intervals; n/a: not "
        f"reported; hatched: {PAPER_SOURCE}"
    )
    axes[0].set_title("\n".join(textwrap.wrap(title, 90)), fontsize=9)
    fig.tight_layout()
    return fig


def plot_comparison(table, tasks: Sequence[str], metric: str, output: str | os.PathLike) -> Path:
    """Grouped bars of `table` (from `compare`): `metric` per task above, no-answer rate below, with 95%
    Wilson error bars where ``table.attrs["n"]`` knows the problem counts; zeros are drawn (a line at 0
    labelled "0"), missing values marked "n/a". Writes the PNG `output` and returns its path."""
    import matplotlib.pyplot as plt

    fig = _comparison_figure(table, tasks, metric)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out


# ------------------------------------------------------------------------------------------- CLI


def _markdown(table, digits: int = 1) -> str:
    def cell(v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        return f"{100 * v:.{digits}f}" if isinstance(v, float) else str(v)

    head = [table.index.name or "", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for idx, row in table.iterrows():
        lines.append("| " + " | ".join([str(idx), *(cell(v) for v in row)]) + " |")
    return "\n".join(lines)


def add_leaderboard_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``push`` / ``compare`` / ``reference`` subcommands to `parser` (for `treecot.cli`)."""
    sub = parser.add_subparsers(dest="leaderboard_command", required=True)

    def repo_args(s: argparse.ArgumentParser) -> None:
        s.add_argument("--repo", default=None, help=f"leaderboard dataset repo (default {DEFAULT_REPO})")
        s.add_argument("--local-dir", default=None, help="use this local folder instead of the Hub")

    s = sub.add_parser("push", help="append a run (summary.json, eval output dir or lighteval results JSON)")
    s.add_argument("results", help="summary.json, an eval output directory or lighteval's results JSON")
    repo_args(s)
    s = sub.add_parser("compare", help="table + grouped bar plot of runs, leaderboard models or paper rows")
    s.add_argument(
        "runs", nargs="+", help="summary paths, model[@revision] in the leaderboard, or 'paper:<model>'"
    )
    s.add_argument("--metric", default="accuracy")
    s.add_argument("--tasks", default=None, help="comma-separated subset of tasks")
    s.add_argument("--output", default="leaderboard_compare.png", help="PNG path of the plot")
    repo_args(s)
    s = sub.add_parser("reference", help=f"the paper's Table 4/5/7 figures ({PAPER_SOURCE})")
    s.add_argument("--table", default=None, choices=["table4", "table5", "table7"])
    s.add_argument("--format", default="md", choices=["md", "csv", "json"])
    return parser


def leaderboard_from_args(args: argparse.Namespace) -> int:
    """Run a parsed `add_leaderboard_arguments` command; prints its result."""
    if args.leaderboard_command == "push":
        result = push(args.results, args.repo, local_dir=args.local_dir)
        where = "wrote the local leaderboard" if result.local else f"pushed to {result.repo_id}"
        print(f"{where} ({result.revision}): {result.url_or_path}")
    elif args.leaderboard_command == "compare":
        tasks = [t.strip() for t in args.tasks.split(",")] if args.tasks else None
        table, png = compare(
            args.runs,
            repo_id=args.repo,
            metric=args.metric,
            tasks=tasks,
            output=args.output,
            local_dir=args.local_dir,
        )
        print(format_comparison(table))
        print(f"\nplot: {png}")
    else:
        df = reference(args.table)
        if args.format == "csv":
            print(df.to_csv(index=False), end="")
        elif args.format == "json":
            print(df.to_json(orient="records", force_ascii=False, indent=1))
        else:
            pivot = df.pivot_table(
                index=["table", "model"], columns=["task", "metric"], values="value", sort=False
            )
            pivot.columns = [t if m == "accuracy" else f"{t} {m}" for t, m in pivot.columns]
            pivot.index = [f"{t}: {m}" for t, m in pivot.index]
            pivot.index.name = PAPER_SOURCE
            print(_markdown(pivot))
    return 0


def leaderboard_main(argv: list[str] | None = None) -> int:
    """``treecot leaderboard push|compare|reference …``."""
    parser = add_leaderboard_arguments(
        argparse.ArgumentParser(prog="treecot leaderboard", description=__doc__.split("\n")[0])
    )
    args = parser.parse_args(argv)
    try:
        return leaderboard_from_args(args)
    except (ValueError, KeyError, FileNotFoundError) as err:
        print(f"treecot leaderboard: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(leaderboard_main())
