"""The outputs of `treecot eval`: checking the output directory before a run, then writing lighteval's
results and details, ``summary.json`` (`build_summary`) and ``summary.md`` (`format_markdown`) after it.

`EvalRun` is what a run wrote; `OutputDirNotWritable` and `ResultsRescued` are the two ways writing fails.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import treecot
from treecot.evaluation.decode import MCTSDecodeConfig
from treecot.evaluation.eval_model import model_slug
from treecot.evaluation.eval_prompts import PromptChoice

__all__ = [
    "SUMMARY_SCHEMA_VERSION",
    "EvalRun",
    "OutputDirNotWritable",
    "ResultsRescued",
    "build_summary",
    "check_output_dir",
    "format_markdown",
    "write_outputs",
]

SUMMARY_SCHEMA_VERSION = 1
_SUMMARY_METRICS = (
    "accuracy",
    "no_answer_rate",
    "repetition_rate",
    "over_reflection_rate",
    "instruction_failure_rate",
    "hit_limit_rate",
    "mean_tokens",
    "prompt_loose",
    "inst_strict",
    "inst_loose",
)


@dataclass
class EvalRun:
    """What `run_eval` wrote: the output directory, lighteval's results JSON, summary JSON and table.

    Args:
        output_dir (`Path`):
            The output directory (a folder under `rescue_root` when the outputs were rescued).
        results_path (`Path`):
            lighteval's ``results/results_<date>.json``.
        summary_path (`Path`):
            ``summary.json``.
        markdown_path (`Path`):
            ``summary.md`` (`format_markdown`).
        summary (`dict[str, Any]`):
            The summary written (`build_summary`, plus the prompts and warnings).
        lighteval_results (`dict[str, Any]`, *optional*):
            lighteval's results of the run.
    """

    output_dir: Path
    results_path: Path
    summary_path: Path
    markdown_path: Path
    summary: dict[str, Any]
    lighteval_results: dict[str, Any] = field(repr=False, default_factory=dict)


class OutputDirNotWritable(ValueError):
    """The output directory of an evaluation cannot be written: found before anything is evaluated."""


class ResultsRescued(RuntimeError):
    """The evaluation finished but its outputs could not be written to ``output_dir``; they were written to
    ``run.output_dir`` (under `rescue_root`) instead. ``error`` is the failed write's exception.

    Args:
        run (`EvalRun`):
            What was written, to the rescue folder.
        output_dir (`Path`):
            The output directory that could not be written.
        error (`BaseException`):
            The failed write's exception.
    """

    def __init__(self, run: EvalRun, output_dir: Path, error: BaseException):
        self.run = run
        self.output_dir = output_dir
        self.error = error
        super().__init__(
            f"could not write the results to {output_dir} ({type(error).__name__}: {error}); nothing is lost: "
            f"the summary and lighteval's results and details were written to {run.output_dir} instead"
        )


def check_output_dir(out: Path, model: str, *, mcts: bool = False) -> None:
    """Make sure an evaluation can write its outputs to `out` before it starts.

    Creates `out`, writes (and removes) a probe file in it and in the folders lighteval writes to, and opens
    the files a run rewrites.

    Args:
        out (`Path`):
            The output directory.
        model (`str`):
            The evaluated model (lighteval's details folder is named after `model_slug`).
        mcts (`bool`, *optional*, defaults to `False`):
            Whether the run writes ``mcts_trees.jsonl`` too.

    Raises:
        OutputDirNotWritable: naming the path that cannot be written and why.
    """
    details = out / "details" / model_slug(model)
    rewritten = ["summary.json", "summary.md"] + (["mcts_trees.jsonl"] if mcts else [])
    where = out
    try:
        out.mkdir(parents=True, exist_ok=True)
        for where in (out, out / "results", out / "details", details):
            if where.is_dir():
                fd, probe = tempfile.mkstemp(prefix=".treecot-write-check-", dir=where)
                os.close(fd)
                os.unlink(probe)
        for name in rewritten:
            where = out / name
            if where.exists():
                with open(where, "ab"):
                    pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        what = f"the output directory {out}" if where == out else f"{where} in the output directory {out}"
        raise OutputDirNotWritable(
            f"cannot write {what} ({reason}); nothing was evaluated: choose a writable --output-dir"
        ) from None


def write_outputs(
    out: Path,
    pipeline: Any,
    tracker: Any,
    lm: Any,
    *,
    model: str,
    revision: str,
    provenance: Mapping[str, Any],
    prompts: PromptChoice,
    budget_warnings: list[str],
    lighteval_version: str,
    settings: Mapping[str, Any],
) -> EvalRun:
    """Write lighteval's results and details, then ``summary.json`` and ``summary.md``, to `out`.

    Args:
        out (`Path`):
            The output directory (lighteval's tracker must have it as its ``output_dir``).
        pipeline (`Any`):
            The evaluated lighteval pipeline.
        tracker (`Any`):
            Its `EvaluationTracker` (aggregated metrics and per-problem values).
        lm (`Any`):
            The lighteval model that decoded (its ``stats`` under MCTS decoding).
        model (`str`):
            The evaluated model.
        revision (`str`):
            What identifies its weights (`treecot.evaluation.eval_model.model_revision`).
        provenance (`Mapping[str, Any]`):
            ``dataset_repo``, ``dataset_revision``, ``recipe_hash``.
        prompts (`PromptChoice`):
            The system prompt of each task and where it came from.
        budget_warnings (`list[str]`):
            The `treecot.prompts.BudgetWarning` texts of the run.
        lighteval_version (`str`):
            The installed lighteval's version.
        settings (`Mapping[str, Any]`):
            The run's settings (see `build_summary`).

    Returns:
        `EvalRun`: the paths written, the summary and lighteval's results.
    """
    from treecot.evaluation.lighteval_tasks import PREFIX

    s = settings
    before = set((out / "results").glob("results_*.json"))
    pipeline.save_and_push_results()
    results = pipeline.get_results()
    written = sorted(set((out / "results").glob("results_*.json")) - before, key=lambda p: p.stat().st_mtime)
    if not written:
        raise RuntimeError(f"lighteval wrote no results JSON under {out / 'results'}")
    results_path = written[-1]

    counts = {
        name.split("|")[0].removeprefix(PREFIX): len(values.get("accuracy", []))
        for name, values in tracker.metrics_logger.metrics_values.items()
    }
    summary = build_summary(
        tracker.metrics_logger.metric_aggregated,
        counts,
        model=model,
        revision=revision,
        provenance=provenance,
        settings={k: v for k, v in s.items() if k not in ("mcts_config",)},
        mcts_config=s["mcts_config"] if s["mcts"] else None,
        mcts_stats=getattr(lm, "stats", None) if s["mcts"] else None,
        lighteval_version=lighteval_version,
        results_path=results_path.relative_to(out).as_posix(),
    )
    summary["prompt"] = {
        "origin": prompts.origin,
        "sources": dict(prompts.sources),
        "system_prompts": dict(prompts.system_prompts),
        "response_tokens": dict(prompts.contract.response_tokens) if prompts.contract is not None else {},
    }
    summary["warnings"] = list(budget_warnings)
    summary_path = out / "summary.json"
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")
    markdown_path = out / "summary.md"
    markdown_path.write_text(format_markdown(summary))
    return EvalRun(out, results_path, summary_path, markdown_path, summary, results)


def build_summary(
    aggregated: Mapping[str, Mapping[str, float]],
    counts: Mapping[str, int],
    *,
    model: str,
    revision: str,
    provenance: Mapping[str, Any],
    settings: Mapping[str, Any],
    mcts_config: MCTSDecodeConfig | None,
    mcts_stats: Mapping[str, float] | None,
    lighteval_version: str,
    results_path: str,
) -> dict[str, Any]:
    """treecot's summary of a run from lighteval's aggregated results (``{"treecot_gsm8k|0": {...}}``).

    Args:
        aggregated (`Mapping[str, Mapping[str, float]]`):
            lighteval's aggregated metrics by task key (lighteval's "all" average is left out).
        counts (`Mapping[str, int]`):
            Task -> the number of problems scored.
        model (`str`):
            The evaluated model.
        revision (`str`):
            What identifies its weights.
        provenance (`Mapping[str, Any]`):
            ``dataset_repo``, ``dataset_revision``, ``recipe_hash``.
        settings (`Mapping[str, Any]`):
            The run's settings: ``samples``, ``seed``, ``temperature``, ``top_p``, ``max_new_tokens``,
            ``batch_size``, ``limit``, ``dtype``, and ``split``, ``offset``, ``backend``,
            ``backend_settings`` where set.
        mcts_config (`MCTSDecodeConfig` or `None`):
            The tree search's config under MCTS decoding, else None.
        mcts_stats (`Mapping[str, float]` or `None`):
            The tree search's statistics under MCTS decoding.
        lighteval_version (`str`):
            The installed lighteval's version.
        results_path (`str`):
            lighteval's results JSON, relative to the output directory.

    Returns:
        `dict[str, Any]`: the summary (``schema_version`` `SUMMARY_SCHEMA_VERSION`; per task: accuracy,
        the diagnostics rates, mean_tokens, n, pass@k).
    """
    from treecot.evaluation.lighteval_tasks import PREFIX

    samples = int(settings["samples"])
    tasks: dict[str, dict[str, Any]] = {}
    for key, metrics in aggregated.items():
        if not key.startswith(PREFIX):
            continue  # lighteval's "all" average
        name = key.split("|")[0].removeprefix(PREFIX)
        row: dict[str, Any] = {m: metrics.get(m) for m in _SUMMARY_METRICS}
        row["n"] = int(counts.get(name, 0))
        for metric, value in metrics.items():
            if metric.startswith("pass@") and not metric.endswith("_stderr"):
                row[metric] = value
        if samples > 1:
            row["test_at_n"] = metrics.get(f"pass@{samples}")
        row["accuracy_stderr"] = metrics.get("accuracy_stderr")
        tasks[name] = {
            k: (float(v) if isinstance(v, (int, float)) and k != "n" else v) for k, v in row.items()
        }
    mode = "mcts" if mcts_config is not None else ("sampling" if samples > 1 else "greedy")
    summary: dict[str, Any] = {
        "schema_version": SUMMARY_SCHEMA_VERSION,
        "model": model,
        "model_revision": revision,
        **dict(provenance),
        "mode": mode,
        "samples": samples,
        "seed": settings["seed"],
        "temperature": settings["temperature"],
        "top_p": settings["top_p"],
        "max_new_tokens": settings["max_new_tokens"],
        "batch_size": settings["batch_size"],
        "limit": settings["limit"],
        "split": settings.get("split"),  # None: each task's evaluation split (`EVAL_TASKS`)
        "offset": int(settings.get("offset") or 0),
        "dtype": settings["dtype"],
        "backend": settings.get("backend", "transformers"),
        "backend_settings": settings.get("backend_settings"),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "treecot_version": treecot.__version__,
        "lighteval_version": lighteval_version,
        "lighteval_results": results_path,
        "mcts": None,
        "tasks": dict(sorted(tasks.items())),
    }
    if mcts_config is not None:
        summary["mcts"] = {"config": asdict(mcts_config), "stats": dict(mcts_stats or {})}
    return summary


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.1f}"


def format_markdown(summary: Mapping[str, Any]) -> str:
    """A markdown table of a summary: accuracy (no-answer %) as in the paper, Test@N and diagnostics.

    Args:
        summary (`Mapping[str, Any]`):
            A run's summary (`build_summary`).

    Returns:
        `str`: a line naming the run, then the table (one row per task).
    """
    samples = int(summary.get("samples", 1))
    head = ["task", "n", "accuracy (no answer) %"]
    if samples > 1:
        head.append(f"Test@{samples} %")
    head += ["repetition %", "over-reflection %", "instruction failure %", "mean tokens"]
    lines = [
        f"**{summary['model']}** (revision `{summary['model_revision']}`), mode {summary['mode']}, "
        f"samples {samples}, seed {summary['seed']}, treecot {summary['treecot_version']}"
        + (
            f", problems {summary.get('offset', 0)}… of the {summary['split']} split"
            if summary.get("split")
            else ""
        ),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" for _ in head) + "|",
    ]
    for name, row in summary["tasks"].items():
        cells = [name, str(row["n"]), f"{_pct(row['accuracy'])} ({_pct(row['no_answer_rate'])})"]
        if samples > 1:
            cells.append(_pct(row.get("test_at_n")))
        tokens = row.get("mean_tokens")
        cells += [
            _pct(row.get("repetition_rate")),
            _pct(row.get("over_reflection_rate")),
            _pct(row.get("instruction_failure_rate")),
            "–" if tokens is None else f"{tokens:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
