"""`treecot ablate RECIPE.yaml`: the paper's Table 5 (Marco-o1 v2) on one dataset, as one resumable command.

    treecot ablate recipes/smollm2-135m-instruct/ablate/config_arithmetic.yaml      # CPU, about 4 h on 2 cores
    treecot ablate recipes/llama-3.1-8b-instruct/ablate/config_gsm8k.yaml           # the paper's setup (GPUs)

Stages: ``generate`` (MCTS trees) → ``build`` (configs ``sft``, ``dpo`` = shortest correct path per problem,
``dpo_all`` = every correct path) → evaluation of the base model under each task's own prompt and under the
data's prompt → ``sft`` (longest correct path) → the cumulative preference rows, each trained from the SFT
model (which is also the reference) and evaluated on the same held-out problems under the prompt contract:

| row       | data                      | loss                                       |
|-----------|---------------------------|--------------------------------------------|
| `dpo`     | `dpo_all` (every correct) | plain sigmoid DPO (ε = 0, α = 0, no mask)  |
| `balance` | `dpo` (shortest correct)  | plain sigmoid DPO                          |
| `cdpo`    | `dpo`                     | conservative DPO (ε)                       |
| `joint`   | `dpo`                     | cDPO + α·SFT                               |
| `masking` | `dpo`                     | cDPO + α·SFT, shared prefix masked         |

Outputs under ``<output_dir>/ablation/``: ``table.md`` (Table-5-shaped: accuracy and no-answer rate per task
with 95% Wilson intervals, then the paper's own Table 5 rows), ``ablation.png`` (bars with error bars),
``ablation.json`` (one entry per row and task: accuracy, no-answer rate, interval bounds, n; data counts,
wall times, the commit); every run is pushed to the local leaderboard ``<output_dir>/leaderboard``.

Resuming is the demo's (`treecot.demo`): each stage is skipped when its settings and those of the stages it
reads from are unchanged; a stage that fails can be rerun alone by running the command again.

Hyperparameters are the recipe's, fixed before any run (see the shipped recipes for how they were chosen),
except the SFT learning rate when the recipe lists candidates under ``ablation.select``: each candidate
trains an SFT model that is scored on a *validation* slice of the training split the search did not use
(``select-sft-<i>`` and ``eval-select-sft-<i>`` stages; ``eval-select-base`` scores the base model on the same
problems, for reading the candidates against, not for choosing); the best validation accuracy wins (ties:
the lower no-answer rate, then the smaller rate) and becomes the ``sft`` model. Nothing here looks at test results.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.configs import read_config
from treecot.demo import (
    Demo,
    DemoConfig,
    DemoError,
    check_eval_stage,
    fresh_start,
    jsonable,
    resolve_file,
    validate_slices,
)
from treecot.evaluation import EVAL_TASKS, eval_task, leaderboard
from treecot.evaluation.leaderboard import reference
from treecot.evaluation.stats import format_rate, noise_verdicts, plot_rates, rate_interval
from treecot.recipe import RecipeError

__all__ = [
    "BASE_ROWS",
    "ROWS",
    "AblationConfig",
    "AblationRun",
    "label_of",
    "load_ablation_config",
    "run_ablation",
    "write_ablation",
]

#: The cumulative rows of Table 5, in order: name -> (label, dataset config, loss settings). ε and α come
#: from the recipe's `ablation` section.
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "dpo": ("+ DPO", "dpo_all", {"cdpo_epsilon": 0.0, "sft_alpha": 0.0, "mask_shared_prefix": False}),
    "balance": ("+ Data Balance", "dpo", {"cdpo_epsilon": 0.0, "sft_alpha": 0.0, "mask_shared_prefix": False}),
    "cdpo": ("+ cDPO", "dpo", {"cdpo_epsilon": "epsilon", "sft_alpha": 0.0, "mask_shared_prefix": False}),
    "joint": ("+ Joint Loss", "dpo", {"cdpo_epsilon": "epsilon", "sft_alpha": "alpha", "mask_shared_prefix": False}),
    "masking": ("+ Masking", "dpo", {"cdpo_epsilon": "epsilon", "sft_alpha": "alpha", "mask_shared_prefix": True}),
}  # fmt: skip
BASE_ROWS = {"base": "base (task prompt)", "base-data-prompt": "base (data prompt)"}
STATE_NAME = "ablation"


@dataclass
class SelectSpec:
    """Choose the SFT learning rate on validation problems: each trained SFT model is scored on `limit`
    problems of `split` from `offset` on, a slice that no search slice of the same task may overlap.

    Args:
        learning_rates (`list[float]`, *optional*, defaults to `[]`):
            The candidates (decided before any run).
        split (`str`, *optional*, defaults to `"train"`):
            The split of the validation problems.
        offset (`int`, *optional*, defaults to `0`):
            The first validation problem.
        limit (`int`, *optional*, defaults to `100`):
            How many validation problems.
    """

    learning_rates: list[float] = field(default_factory=list)
    split: str = "train"
    offset: int = 0
    limit: int = 100


@dataclass
class AblationSpec:
    """The `ablation` section of an ablation recipe.

    Args:
        epsilon (`float`, *optional*, defaults to `0.1`):
            ε of the cDPO rows.
        alpha (`float`, *optional*, defaults to `1.0`):
            α of the joint-loss rows.
        rows (`list[str]`, *optional*, defaults to `list(ROWS)`):
            Which preference rows to run (default all, in Table 5's order).
        select (`SelectSpec`, *optional*):
            Choose the SFT learning rate on a validation slice.
    """

    epsilon: float = 0.1
    alpha: float = 1.0
    rows: list[str] = field(default_factory=lambda: list(ROWS))
    select: SelectSpec | None = None


@dataclass
class AblationConfig(DemoConfig):
    """A demo config (slices, build, train: `sft` and `dpo`, eval) plus the `ablation` section.

    Args:
        name (`str`, *optional*, defaults to `"ablation"`):
            The ablation's name.
        output_dir (`str`, *optional*, defaults to `"outputs/ablation"`):
            Where the stages write.
        ablation (`AblationSpec`, *optional*, defaults to `AblationSpec()`):
            The `ablation` section.

    The other fields are `DemoConfig`'s.
    """

    name: str = "ablation"
    output_dir: str = "outputs/ablation"
    ablation: AblationSpec = field(default_factory=AblationSpec)


def load_ablation_config(source: str | os.PathLike | Mapping[str, Any], **overrides: Any) -> AblationConfig:
    """Read and validate an ablation recipe.

    Args:
        source (`str`, `os.PathLike` or `Mapping[str, Any]`):
            A YAML path or a mapping.
        **overrides (`Any`):
            Nested fields laid over it (`output_dir=…`, `ablation={"rows": ["dpo"]}`).
    """

    cfg, where = read_config(source, AblationConfig, "ablation recipe", overrides, error=DemoError)
    path, spec, ev = cfg.path, cfg.ablation, cfg.eval
    validate_slices(cfg, where)
    for stage in ("sft", "dpo"):
        if stage not in cfg.train:
            raise DemoError(f"{where}: train.{stage} is missing (a TRL recipe path and overrides)")
        cfg.train[stage].config = resolve_file(
            cfg.train[stage].config, path, f"{where}: train.{stage}.config"
        )
    unknown_rows = [r for r in spec.rows if r not in ROWS]
    if unknown_rows:
        raise DemoError(
            f"{where}: ablation.rows: unknown row {unknown_rows[0]!r}; choose from {', '.join(ROWS)}"
        )
    if not 0.0 <= spec.epsilon < 0.5:
        raise DemoError(f"{where}: ablation.epsilon must lie in [0, 0.5), got {spec.epsilon!r}")
    if spec.alpha < 0:
        raise DemoError(f"{where}: ablation.alpha must be >= 0, got {spec.alpha!r}")

    for t in ev.tasks:
        if t not in EVAL_TASKS:
            raise DemoError(f"{where}: eval.tasks: unknown task {t!r}; choose from {', '.join(EVAL_TASKS)}")
    check_eval_stage(ev, where)
    if spec.select is not None:
        _check_select(cfg, where)
    if cfg.build.get("dpo_all") is False:
        raise DemoError(
            f"{where}: build.dpo_all must stay true: the '+ DPO' row trains on every correct path"
        )
    return cfg


def _check_select(cfg: AblationConfig, where: str) -> None:
    """The `ablation.select` section is usable and its validation slice is disjoint from every search slice."""
    sel = cfg.ablation.select
    lrs = sel.learning_rates
    if not lrs or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in lrs):
        raise DemoError(f"{where}: ablation.select.learning_rates: give positive numbers, got {lrs!r}")
    if len(set(lrs)) != len(lrs):
        raise DemoError(f"{where}: ablation.select.learning_rates: {lrs!r} repeats a candidate")
    if isinstance(sel.limit, bool) or not isinstance(sel.limit, int) or sel.limit < 1:
        raise DemoError(f"{where}: ablation.select.limit must be a positive integer, got {sel.limit!r}")
    if isinstance(sel.offset, bool) or not isinstance(sel.offset, int) or sel.offset < 0:
        raise DemoError(f"{where}: ablation.select.offset must be a non-negative integer, got {sel.offset!r}")

    for task in cfg.eval.tasks:
        source = eval_task(task)
        if sel.split not in source.splits:
            raise DemoError(f"{where}: ablation.select.split: task {task!r} has no split {sel.split!r}; "
                            f"choose from {', '.join(source.splits)}")  # fmt: skip
        if sel.split == "test":
            raise DemoError(f"{where}: ablation.select.split must not be the test split: the rows are "
                            "evaluated there, and choosing on it is choosing by the test results")  # fmt: skip
    for i in range(len(cfg.generate)):
        problems = cfg.recipe(i).get("problems") or {}
        if problems.get("task") not in cfg.eval.tasks or problems.get("split", "test") != sel.split:
            continue
        start, limit = int(problems.get("offset") or 0), problems.get("limit")
        end = None if limit is None else start + int(limit)
        if (end is None or sel.offset < end) and start < sel.offset + sel.limit:
            raise DemoError(
                f"{where}: ablation.select: validation problems {sel.offset}–{sel.offset + sel.limit - 1} of "
                f"{problems['task']}/{sel.split} overlap the search slice {start}–"
                f"{'end' if end is None else end - 1}; give ablation.select.offset >= "
                f"{'the end of the split' if end is None else end}"
            )


def select_learning_rate(candidates: Mapping[float, Mapping[str, Any]], tasks: list[str]) -> float:
    """The candidate with the best mean validation accuracy over `tasks`; ties: the lower mean no-answer
    rate, then the smaller learning rate.

    Args:
        candidates (`Mapping[float, Mapping[str, Any]]`):
            Maps a learning rate to its `tasks` scores.
        tasks (`list[str]`):
            The tasks the mean is taken over.
    """

    def key(lr: float) -> tuple[float, float, float]:
        scores = candidates[lr]
        acc = sum(float((scores.get(t) or {}).get("accuracy") or 0.0) for t in tasks) / len(tasks)
        na = sum(float((scores.get(t) or {}).get("no_answer_rate") or 0.0) for t in tasks) / len(tasks)
        return (-round(acc, 9), round(na, 9), lr)

    return min(candidates, key=key)


def _commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
        )
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


class AblationRun(Demo):
    """Runs the stages of an `AblationConfig` (see the module docstring)."""

    command = "ablate"

    def __init__(self, cfg: AblationConfig, **kwargs: Any):
        rows = list(cfg.ablation.rows)
        candidates = cfg.ablation.select.learning_rates if cfg.ablation.select else []
        self.stages = (
            "generate",
            "build",
            "eval-base",
            "eval-base-data-prompt",
            *(["eval-select-base"] if candidates else []),
            *[s for i in range(len(candidates)) for s in (f"select-sft-{i}", f"eval-select-sft-{i}")],
            "sft",
            "eval-sft",
            *[s for r in rows for s in (r, f"eval-{r}")],
            "leaderboard",
            "table",
        )
        super().__init__(cfg, **kwargs)

    def build_recipe_check(self) -> None:
        self.cfg.build.setdefault("dpo_all", True)

    def enough_data(self, report: Mapping[str, Any]) -> bool:
        return bool(report.get("dpo_all_rows", report.get("dpo_rows")))

    def row_args(self, name: str) -> dict[str, Any]:
        spec = self.cfg.ablation
        _, _, loss = ROWS[name]
        values = {"epsilon": spec.epsilon, "alpha": spec.alpha}
        return {k: values[v] if isinstance(v, str) else v for k, v in loss.items()}

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        cfg = self.cfg
        self.build_recipe_check()
        results: dict[str, Any] = {"generate": self.generate()}
        build = results["build"] = self.build()
        evals: dict[str, Any] = {
            "base": self.evaluate("base"),
            "base-data-prompt": self.evaluate("base-data-prompt"),
        }
        sft_dir = str(self.out / "models" / "sft")
        if cfg.ablation.select is not None:
            results["select"] = self.select_sft(build)
            results["sft"] = self.selected_sft(results["select"])
        else:
            results["sft"] = self.train_model("sft", cfg.train["sft"], cfg.model, build, {}, ("build",))
        evals["sft"] = self.evaluate("sft")
        for name in cfg.ablation.rows:
            _, dataset_config, _ = ROWS[name]
            extra = {**self.row_args(name), "dataset_config": dataset_config}
            results[name] = self.train_model(name, cfg.train["dpo"], sft_dir, build, extra, ("build", "sft"))
            evals[name] = self.evaluate(name)
        results["eval"] = evals
        results["leaderboard"] = self.push_leaderboard(evals)
        results["table"] = self.table(results)
        total = time.perf_counter() - t0
        print(f"\n[treecot ablate] done in {total:.0f}s; table: {results['table']['table']}", flush=True)
        return results

    def select_sft(self, build: Mapping[str, Any]) -> dict[str, Any]:
        """Train an SFT model per candidate learning rate and score each on the validation slice."""
        sel = self.cfg.ablation.select
        # The base model on the same problems (under the data's prompt): what a candidate's validation
        # score is to be read against. It takes no part in the choice.
        base = self.evaluate_model(
            "eval-select-base",
            self.cfg.model,
            self.out / "eval" / "select-base",
            ("build",),
            prompt_from=build["dataset"],
            split=sel.split,
            offset=sel.offset,
            limit=sel.limit,
        )
        scores: dict[float, dict[str, Any]] = {}
        for i, lr in enumerate(sel.learning_rates):
            stage = f"select-sft-{i}"
            self.train_model(stage, self.cfg.train["sft"], self.cfg.model, build, {"learning_rate": lr},
                             ("build",), module="sft")  # fmt: skip
            rec = self.evaluate_model(
                f"eval-{stage}",
                str(self.out / "models" / stage),
                self.out / "eval" / stage,
                ("build", stage),
                split=sel.split,
                offset=sel.offset,
                limit=sel.limit,
            )
            scores[lr] = rec["tasks"]
        chosen = select_learning_rate(scores, list(self.cfg.eval.tasks))
        index = sel.learning_rates.index(chosen)
        print(f"[treecot {self.command}] SFT learning rate {chosen:g} chosen on {sel.limit} validation problems "
              f"({sel.split} {sel.offset}…): " + ", ".join(
                  f"{lr:g}: " + ", ".join(f"{t} {100 * float(s.get('accuracy') or 0):.1f}%" for t, s in v.items())
                  for lr, v in scores.items()), flush=True)  # fmt: skip
        return {
            "split": sel.split,
            "offset": sel.offset,
            "limit": sel.limit,
            "base": base["tasks"],
            "candidates": [{"learning_rate": lr, "tasks": scores[lr]} for lr in sel.learning_rates],
            "learning_rate": chosen,
            "stage": f"select-sft-{index}",
        }

    def selected_sft(self, select: Mapping[str, Any]) -> dict[str, Any]:
        """The `sft` stage: the chosen candidate's model, copied to `models/sft`."""
        stage = select["stage"]
        source, target = self.out / "models" / stage, self.out / "models" / "sft"

        def run() -> dict[str, Any]:
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("checkpoint-*"))
            record = dict(self.state.data["stages"][stage])
            return {"model": str(target), "log_history": record.get("log_history", []),
                    "command": record.get("command"), "learning_rate": select["learning_rate"],
                    "selected_from": stage}  # fmt: skip

        settings = {"learning_rate": select["learning_rate"], "stage": stage}
        upstream = tuple(s for s in self.stages if s.startswith(("select-sft-", "eval-select-sft-")))
        return self._stage("sft", settings, upstream, run)

    def push_leaderboard(self, evals: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:

        local = self.out / "leaderboard"

        def run() -> dict[str, Any]:
            for name, rec in evals.items():
                summary = json.loads(Path(rec["summary"]).read_text())
                summary["model"] = f"{self.cfg.name}: {label_of(name)}"  # one name per row of the table
                leaderboard.push(summary, f"treecot/{self.cfg.name}-leaderboard", local_dir=local)
            return {"leaderboard": str(local)}

        return self._stage("leaderboard", sorted(evals), tuple(f"eval-{w}" for w in evals), run)

    def table(self, results: Mapping[str, Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            return write_ablation(self.cfg, results, self.timings, self.out / "ablation")

        # Always rewritten (it records this run's wall times and commit).
        return self._stage("table", {"written_at": time.time()}, (), run)


def label_of(name: str) -> str:
    if name in BASE_ROWS:
        return BASE_ROWS[name]
    if name == "sft":
        return "SFT (longest path)"
    return ROWS[name][0]


def _paper_rows() -> tuple[list[str], dict[str, dict[str, dict[str, float]]]]:
    """The paper's Table 5 (Llama-3.1-8B): columns and method -> task -> {accuracy, no_answer_rate}."""

    frame = reference("table5")
    out: dict[str, dict[str, dict[str, float]]] = {}
    for row in frame.to_dict("records"):
        if row.get("metric") != "accuracy":
            continue
        entry = out.setdefault(str(row["method"]), {})
        entry[str(row["task"])] = {"accuracy": row["value"], "no_answer_rate": row.get("no_answer_rate")}
    columns = list(dict.fromkeys(str(r["task"]) for r in frame.to_dict("records")))
    return columns, out


def write_ablation(
    cfg: AblationConfig, results: Mapping[str, Any], timings: Mapping[str, tuple[float, bool]], out_dir: Path
) -> dict[str, Any]:
    """Write ``table.md``, ``ablation.png`` and ``ablation.json`` to `out_dir`; returns their paths.

    Args:
        cfg (`AblationConfig`):
            The ablation's config.
        results (`Mapping[str, Any]`):
            Each stage's recorded outputs.
        timings (`Mapping[str, tuple[float, bool]]`):
            Per stage, its wall seconds and whether it was reused.
        out_dir (`Path`):
            Where the files are written.
    """

    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = list(cfg.eval.tasks)
    runs = {label_of(name): rec["tasks"] for name, rec in results["eval"].items()}
    record = _ablation_record(cfg, results, timings, tasks)
    (out_dir / "ablation.json").write_text(json.dumps(jsonable(record), indent=2) + "\n", encoding="utf-8")
    png = plot_rates(runs, tasks, out_dir / "ablation.png", title=f"Table 5 ablation: {cfg.name}")
    lines = [
        *_table_rows(cfg, record, runs, tasks),
        *_selection_lines(record["selection"], tasks),
        *_noise_lines(cfg, runs, tasks),
        *_paper_lines(),
        "",
        f"![ablation]({png.name})",
        *_wall_lines(cfg, record),
    ]
    table = out_dir / "table.md"
    table.write_text("\n".join(lines), encoding="utf-8")
    return {"table": str(table), "plot": str(png), "json": str(out_dir / "ablation.json")}


def _ablation_record(
    cfg: AblationConfig,
    results: Mapping[str, Any],
    timings: Mapping[str, tuple[float, bool]],
    tasks: list[str],
) -> dict[str, Any]:
    """The run as ``ablation.json`` records it: one entry per row and task (rates, Wilson bounds, n), the data
    counts, the wall times, the learning-rate selection and the commit."""

    evals = results["eval"]
    build = results["build"]
    report = build["report"]
    entries = []
    for name, rec in evals.items():
        for task in tasks:
            row = rec["tasks"].get(task) or {}
            n = row.get("n")
            acc_ci = rate_interval(row.get("accuracy"), n) or (None, None)
            na_ci = rate_interval(row.get("no_answer_rate"), n) or (None, None)
            entries.append(
                {
                    "row": name,
                    "label": label_of(name),
                    "task": task,
                    "n": n,
                    "accuracy": row.get("accuracy"),
                    "accuracy_low": acc_ci[0],
                    "accuracy_high": acc_ci[1],
                    "no_answer_rate": row.get("no_answer_rate"),
                    "no_answer_low": na_ci[0],
                    "no_answer_high": na_ci[1],
                    "mean_tokens": row.get("mean_tokens"),
                    "system_prompt_source": (rec.get("prompt") or {}).get("sources", {}).get(task),
                }
            )
    data = {
        "trees": report.get("trees"),
        "sft_rows": report.get("sft_rows"),
        "dpo_rows": report.get("dpo_rows"),
        "dpo_all_rows": report.get("dpo_all_rows"),
        **{k: v for k, v in report.items() if k.startswith(("dropped", "shared_prefix"))},
    }
    wall = {stage: round(seconds, 1) for stage, (seconds, _) in timings.items()}
    return {
        "name": cfg.name,
        "model": cfg.model,
        "config": cfg.path,
        "commit": _commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "epsilon": cfg.ablation.epsilon,
        "alpha": cfg.ablation.alpha,
        "max_new_tokens": next(iter(evals.values())).get("max_new_tokens"),
        "eval_limit": cfg.eval.limit,
        "dataset": build["dataset"],
        "dataset_revision": build["revision"],
        "data": data,
        "wall_seconds": wall,
        "wall_seconds_total": round(sum(wall.values()), 1),
        "selection": _selection(results.get("select"), tasks),
        "rows": entries,
    }


def _table_rows(
    cfg: AblationConfig, record: Mapping[str, Any], runs: Mapping[str, Any], tasks: list[str]
) -> list[str]:
    """``table.md``'s title, what was run, and the table: accuracy and no-answer rate per row and task."""

    data = record["data"]
    head = ["method", *[f"{t} acc. [95% CI]" for t in tasks], *[f"{t} no answer [95% CI]" for t in tasks]]
    lines = [
        f"# Table 5 ablation: {cfg.name}",
        "",
        f"Model `{cfg.model}`; data `{record['dataset']}` @ `{record['dataset_revision']}`: {data.get('sft_rows')} "
        f"SFT rows (longest clean correct path per problem), {data.get('dpo_rows')} preference pairs (shortest) "
        f"and {data.get('dpo_all_rows')} for `+ DPO` (every correct path). Held-out: the first {cfg.eval.limit} "
        f"test problems per task, greedy, {record['max_new_tokens']} new tokens at most (from the data). Every "
        f"preference row starts from the SFT model (also its reference); ε = {cfg.ablation.epsilon}, "
        f"α = {cfg.ablation.alpha}. Percent, with 95% Wilson intervals.",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for label, rows in runs.items():
        cells = [
            format_rate((rows.get(t) or {}).get("accuracy"), (rows.get(t) or {}).get("n")) for t in tasks
        ]
        cells += [
            format_rate((rows.get(t) or {}).get("no_answer_rate"), (rows.get(t) or {}).get("n"))
            for t in tasks
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def _selection_lines(selection: Mapping[str, Any] | None, tasks: list[str]) -> list[str]:
    """The learning-rate selection on the validation problems, as ``table.md`` shows it (none without one)."""

    if not selection:
        return []
    return [
        "",
        f"SFT learning rate **{selection['learning_rate']:g}**, chosen before any test evaluation by accuracy "
        f"on {selection['limit']} validation problems ({selection['split']} split, problems "
        f"{selection['offset']}–{selection['offset'] + selection['limit'] - 1}, which the search did not use):",
        "",
        "| SFT learning rate | " + " | ".join(f"{t} validation acc. (no answer)" for t in tasks) + " |",
        "|---|" + "---:|" * len(tasks),
        "| base (data prompt) | " + " | ".join(
            f"{format_rate(selection['base'].get(f'{t}_accuracy'), selection['base'].get(f'{t}_n'))} "
            f"({format_rate(selection['base'].get(f'{t}_no_answer_rate'), selection['base'].get(f'{t}_n'))})"
            for t in tasks) + " |",
        *[f"| {c['learning_rate']:g} | " + " | ".join(
            f"{format_rate(c.get(f'{t}_accuracy'), c.get(f'{t}_n'))} "
            f"({format_rate(c.get(f'{t}_no_answer_rate'), c.get(f'{t}_n'))})" for t in tasks) + " |"
          for c in selection["candidates"]],
    ]  # fmt: skip


def _noise_lines(cfg: AblationConfig, runs: Mapping[str, Any], tasks: list[str]) -> list[str]:
    """Which differences exceed noise: each row against the base model under the data's prompt, and each
    cumulative step against the row before it."""

    verdicts = noise_verdicts(runs, label_of("base-data-prompt"), tasks)
    step = []
    names = ["sft", *cfg.ablation.rows]
    for prev, cur in zip(names, names[1:]):
        pair = {label_of(prev): runs[label_of(prev)], label_of(cur): runs[label_of(cur)]}
        step += noise_verdicts(pair, label_of(prev), tasks)
    return [
        "",
        "## Which differences exceed noise",
        "",
        "Against the base model under the data's prompt (Newcombe 95% interval of the difference; "
        "conservative for runs on the same problems):",
        "",
        *[f"- {v}" for v in verdicts],
        "",
        "Each row against the row before it (the cumulative step of Table 5):",
        "",
        *[f"- {v}" for v in step],
    ]


def _paper_lines() -> list[str]:
    """The paper's own Table 5, beside ours."""
    columns, paper = _paper_rows()
    lines = [
        "",
        "## The paper's Table 5 (Llama-3.1-8B-Instruct, reported in arXiv 2503.01461)",
        "",
        "Accuracy (no-answer %), as transcribed in `treecot leaderboard reference --table table5`.",
        "",
        "| method | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for method, rows in paper.items():
        cells = []
        for c in columns:
            r = rows.get(c) or {}
            acc, na = r.get("accuracy"), r.get("no_answer_rate")
            cells.append(
                "–" if acc is None else f"{100 * acc:.1f}" + ("" if na is None else f" ({100 * na:.2f})")
            )
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def _wall_lines(cfg: AblationConfig, record: Mapping[str, Any]) -> list[str]:
    """The wall time of every stage, and what the rows were trained with."""
    wall = record["wall_seconds"]
    return [
        "",
        "## Wall time",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *[f"| {stage} | {seconds:.0f} |" for stage, seconds in wall.items()],
        f"| **total** | **{sum(wall.values()):.0f}** |",
        "",
        f"Commit `{record['commit']}`; `{label_of('sft')}` and every later row trained with "
        f"`{cfg.train['sft'].config}` and `{cfg.train['dpo'].config}`.",
        "",
    ]


def _selection(select: Mapping[str, Any] | None, tasks: list[str]) -> dict[str, Any] | None:
    """The flat record of the learning-rate selection (None without one)."""
    if not select:
        return None

    def flat(scores: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for t in tasks:
            row = scores.get(t) or {}
            out.update({f"{t}_n": row.get("n"), f"{t}_accuracy": row.get("accuracy"),
                        f"{t}_no_answer_rate": row.get("no_answer_rate")})  # fmt: skip
        return out

    candidates = [{"learning_rate": c["learning_rate"], **flat(c["tasks"])} for c in select["candidates"]]
    base = flat(select.get("base") or {})
    keys = ("split", "offset", "limit", "learning_rate")
    return {**{k: select[k] for k in keys}, "base": base, "candidates": candidates}


def run_ablation(
    config: str | os.PathLike | Mapping[str, Any],
    *,
    output_dir: str | None = None,
    fresh: bool = False,
    generators: Mapping[str, Any] | None = None,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the ablation of `config`; returns each stage's recorded outputs.

    Args:
        config (`str`, `os.PathLike` or `Mapping[str, Any]`):
            The ablation recipe.
        output_dir (`str`, *optional*):
            Replaces the recipe's `output_dir`.
        fresh (`bool`, *optional*, defaults to `False`):
            Delete a previous run's output directory first (`fresh_start`).
        generators (`Mapping[str, Any]`, *optional*):
            Prebuilt generators for the generate stage (see `Demo`).
        progress (`bool`, *optional*, defaults to `True`):
            Show progress.
        overrides (`Mapping[str, Any]`, *optional*):
            Nested fields laid over the recipe (`treecot ablate R --ablation.rows '[dpo]'`:
            `{"ablation": {"rows": ["dpo"]}}`).
    """
    given = {**(overrides or {}), **({"output_dir": output_dir} if output_dir is not None else {})}
    cfg = load_ablation_config(config, **given)
    if fresh:
        fresh_start(cfg.out)
    print(f"[treecot ablate] {cfg.path or 'inline config'} → {cfg.out}/ (rerun to resume, --fresh to start over)",
          flush=True)  # fmt: skip
    try:
        return AblationRun(cfg, generators=generators, progress=progress).run()
    except RecipeError as err:
        raise DemoError(str(err)) from None
