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
`treecot.data.hub`: each push writes the whole table to a new branch ``run-<hash>`` and updates ``main``
(so ``main`` always holds every row and each branch is a snapshot); without a Hub token or endpoint it is
the local Hub layout under ``$TREECOT_CACHE/hub/datasets/<repo_id>``. A push is a read-modify-write held
under the local folder's lock (`treecot.data.hub.write_lock`), so concurrent pushes to one folder all land
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
import sys
import textwrap
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

__all__ = [
    "COLUMNS",
    "DEFAULT_REPO",
    "PAPER_SOURCE",
    "compare",
    "leaderboard_main",
    "load",
    "plot_comparison",
    "push",
    "reference",
    "rows_from_summary",
]

DEFAULT_REPO = "treecot/leaderboard"
CONFIG = "results"
RUN_SOURCE = "treecot eval"
PAPER_SOURCE = "reported in the paper (arXiv 2503.01461)"
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

    from treecot.data.hub import list_versions, load_versioned

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
    `treecot.data.hub.PushResult`.
    """
    from datasets import Dataset

    from treecot.data.hub import push_dataset, write_lock

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


def _resolve(entry: str, board, paper) -> tuple[str, list[dict[str, Any]]]:
    """(label, rows) of one compare entry: a summary path, "paper:<model text>", or a model in the board."""
    if _is_summary_path(entry):
        rows = rows_from_summary(entry)
        return _label(rows[0]), rows
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
    rows = [
        r for r in board if r["model"] == model and (not revision or r["model_revision"].startswith(revision))
    ]
    if not rows:
        known = sorted({r["model"] for r in board})
        raise ValueError(
            f"{entry!r} is neither a file, a 'paper:…' entry nor a model in the leaderboard; known models: "
            + (", ".join(known) or "(none: push a run first)")
        )
    latest = max(rows, key=lambda r: (r["date"], r["run_id"]))["run_id"]
    rows = [r for r in rows if r["run_id"] == latest]
    return _label(rows[0]), rows


def _label(row: Mapping[str, Any]) -> str:
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
    """Put runs side by side: returns ``(table, png_path)``.

    `entries`: eval summaries / output dirs, model names in the leaderboard (``name`` or
    ``name@revision-prefix``: its latest run), or ``paper:<model and method>`` rows of `reference()`.
    `table` is a `pandas.DataFrame` indexed by run label with one column per task holding `metric`
    and one ``<task> no-answer`` column per task; the grouped bar plot (tasks on the x axis, one bar per
    run; no-answer rates in a second panel) is written to `output` (default ``leaderboard_compare.png``).
    """
    import pandas as pd

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
    values: dict[str, dict[str, float | None]] = {}
    no_answer: dict[str, dict[str, float | None]] = {}
    task_order: list[str] = []
    for label, rows in runs.items():
        values[label], no_answer[label] = {}, {}
        for row in rows:
            if tasks and row["task"] not in tasks:
                continue
            if row["task"] not in task_order:
                task_order.append(row["task"])
            if row["metric"] == metric:
                values[label][row["task"]] = row["value"]
                no_answer[label][row["task"]] = row["no_answer_rate"]
    if not any(values.values()):
        raise ValueError(f"no run has metric {metric!r}" + (f" for tasks {list(tasks)}" if tasks else ""))
    task_order = [t for t in task_order if any(t in v for v in values.values())]
    table = pd.DataFrame(
        {
            **{t: [values[r].get(t) for r in runs] for t in task_order},
            **{f"{t} no-answer": [no_answer[r].get(t) for r in runs] for t in task_order},
        },
        index=list(runs),
    )
    table.index.name = "run"
    png = plot_comparison(table, task_order, metric, output or "leaderboard_compare.png")
    return table, png


def plot_comparison(table, tasks: Sequence[str], metric: str, output: str | os.PathLike) -> Path:
    """Grouped bars of `table` (from `compare`): `metric` per task above, no-answer rate below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    runs = list(table.index)
    x = np.arange(len(tasks))
    width = 0.8 / max(1, len(runs))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(6, 1.6 * len(tasks) + 2), 7), sharex=True)
    for i, run in enumerate(runs):
        offset = (i - (len(runs) - 1) / 2) * width
        acc = [100 * v if v is not None and v == v else 0.0 for v in table.loc[run, list(tasks)]]
        miss = [
            100 * v if v is not None and v == v else 0.0
            for v in table.loc[run, [f"{t} no-answer" for t in tasks]]
        ]
        hatch = "//" if "(paper)" in run else None
        top.bar(x + offset, acc, width, label=run, hatch=hatch)
        bottom.bar(x + offset, miss, width, label=run, hatch=hatch)
    top.set_ylabel(f"{metric} (%)")
    bottom.set_ylabel("no answer (%)")
    top.set_ylim(0, 100)
    bottom.set_ylim(0, 100)
    bottom.set_xticks(x, list(tasks))
    top.legend(fontsize=8, loc="upper right")
    title = f"treecot leaderboard: {metric} and no-answer rate (hatched: {PAPER_SOURCE})"
    top.set_title("\n".join(textwrap.wrap(title, 80)), fontsize=9)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
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
        print(f"pushed to {result.repo_id} ({result.revision}): {result.url_or_path}")
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
        print(_markdown(table))
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
