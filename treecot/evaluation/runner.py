"""`treecot eval`: run treecot's lighteval tasks on CPU, offline, and write results, summary and table.

    >>> from treecot.evaluation.runner import run_eval
    >>> run = run_eval("smollm2-135m-instruct", ["gsm8k", "blocksworld"], limit=20)
    >>> run.summary["tasks"]["gsm8k"]["accuracy"], run.summary_path

Why a wrapper and not lighteval's own CLI. lighteval 0.13's `Registry` imports every built-in task module
before it reads ``--custom-tasks``; here one of them downloads a file at import (``tiny_benchmarks``:
fails offline) and two call ``HfApi.list_models(model_name=…)``, removed in huggingface-hub 2.x
(``mix_eval``, ``mt_bench``); huggingface-hub 2.4 is pinned, so pinning our way out (hub < 2) is not an
option. Its details logger also hashes ``str`` with ``xxhash.xxh64``, which xxhash 4 rejects. The wrapper
changes only these seams, all in `treecot.evaluation.lighteval_compat` (imported only when an evaluation
runs; it refuses a lighteval other than the 0.13 release its workarounds were written for):

- `TreecotRegistry`: a lighteval `Registry` holding only treecot's task configs (no built-in import);
  `TreecotPipeline` swaps it in while lighteval's own `Pipeline` loads tasks and requests.
- `shim_xxhash`: lighteval's details logger gets an ``xxh64`` that encodes ``str`` first (only when the
  installed xxhash rejects ``str``).
- `TreecotTransformersModel` (lighteval's `TransformersModel` built from an already loaded model):
  renders each task's own chat messages (system + user from ``Task.prompt``) with the model's chat
  template; does not request the per-step scores lighteval never reads (a vocabulary-sized tensor per
  generated token); sets ``do_sample`` when the temperature is positive (lighteval 0.13 leaves it to the
  model's generation config, which makes N > 1 samples fail and one sample greedy); trims the EOS padding
  off the returned token ids (exact token counts) and the left padding off the recorded prompt ids;
  bypasses lighteval's on-disk response cache (keyed by model path and settings, not weights, so a
  retrained model at the same path would be served stale answers).
- `MCTSDecodeModel`: a lighteval model whose "generation" is treecot's tree search with the
  token-confidence value (`treecot.evaluation.decode.mcts_decode`), served by treecot's
  `TransformersGenerator` (prefix KV reuse) over the same loaded model.

Weights default to float32: bfloat16 measured only ~1.1× faster for plain `generate` here
(``benchmarks/results/eval.json``) and changes greedy outputs; ``dtype="bfloat16"`` is available.

Everything else (task loading, batching, metrics, aggregation, stderr, results JSON and details) is
lighteval's. Outputs in ``output_dir`` (default ``outputs/eval/<model-slug>/``): lighteval's
``results/results_<date>.json`` and ``details/…`` parquet, ``summary.json`` (per task: accuracy,
no_answer_rate, repetition_rate, over_reflection_rate, instruction_failure_rate, mean_tokens, n, pass@k
for Test@N; model id and revision, seed, settings, treecot version) and ``summary.md`` (a table).

Nothing computed is lost: ``output_dir`` is checked for writing before the model loads
(`OutputDirNotWritable`), and if the final writes fail anyway, the outputs go to a new folder under
`rescue_root` (``$TREECOT_CACHE/rescued/``) and `ResultsRescued` says where.

More on `run_eval`'s arguments. Every task's problems are read before the model loads: PlanBench without a
checkout (``$TREECOT_PLANBENCH``) and without the Hub raises `EvalDataNotAvailable` (a `ValueError`).
``samples`` N > 1 is Test@N: pass@k for k = 1, 2, 4, …, N, accuracy being pass@1 (the mean share of correct
samples); the N samples are drawn at ``temperature`` (default 0.7). ``split`` / ``offset``: a slice of
``train`` that the search did not use is a validation set for choosing hyperparameters; the summary records
split and offset. A `treecot.prompts.BudgetWarning` is issued when ``max_new_tokens`` is below the 95th
percentile of the training responses' lengths of a task (from the prompt contract); the summary records it.
``provenance`` is carried to the leaderboard; its default is read from
``<model dir>/treecot_provenance.json`` when present. ``system_prompt`` defaults to the prompt the model was
trained with (its ``treecot_provenance.json``), else each task's own answer-format prompt; "contract" is the
default prompt of a treecot dataset.

Backends. ``backend="transformers"`` (default) decodes with the model in this process, through lighteval's
own transformers model. "openai" decodes on an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server;
``backend_settings`` needs its ``base_url``), "vllm" with vLLM's offline engine (GPU). Both go through
treecot's `Generator` behind lighteval's model interface, so tasks, metrics and outputs are lighteval's as
with the default; ``model`` then names the weights (for the tokenizer, the chat template and the summary)
and need not fit in this process. ``backend_settings`` are the model settings of a generation recipe
(`treecot.recipe.ModelSpec` fields): ``base_url``, ``served_model`` (default ``model``), ``api_key_env``,
``concurrency``, ``timeout``, ``tokenizer``; for vllm ``tensor_parallel_size``, ``gpu_memory_utilization``,
``max_model_len``, ``enable_prefix_caching``, ``quantization``, ``engine_kwargs``.

This module runs an evaluation step by step; each step lives in its own module:

- `treecot.evaluation.eval_model`: the model (slug, weights revision, provenance, tokenizer, the
  generation backend's spec) and loading it;
- `treecot.evaluation.eval_prompts`: the system prompt of each task (`resolve_prompts`);
- `treecot.evaluation.eval_pipeline`: the lighteval call (model config, lighteval model, pipeline);
- `treecot.evaluation.eval_outputs`: the output directory check, ``summary.json`` and ``summary.md``;
- `treecot.evaluation.eval_arguments`: the command-line arguments of `treecot eval`.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from treecot import models
from treecot.configs import merge
from treecot.evaluation.config import EvalConfig, EvalConfigError, load_eval_config
from treecot.evaluation.decode import MCTSDecodeConfig
from treecot.evaluation.eval_arguments import add_eval_arguments, eval_settings
from treecot.evaluation.eval_model import PROVENANCE_FILE as PROVENANCE_FILE
from treecot.evaluation.eval_model import (
    EvalModel,
    backend_spec,
    load_eval_model,
    model_revision,
    model_slug,
    read_provenance,
)
from treecot.evaluation.eval_outputs import SUMMARY_SCHEMA_VERSION as SUMMARY_SCHEMA_VERSION
from treecot.evaluation.eval_outputs import (
    EvalRun,
    OutputDirNotWritable,
    ResultsRescued,
    check_output_dir,
    format_markdown,
    write_outputs,
)
from treecot.evaluation.eval_outputs import build_summary as build_summary
from treecot.evaluation.eval_pipeline import (
    LightevalRun,
    build_lighteval_run,
    keep_grad_mode,
    quiet_known_noise,
)
from treecot.evaluation.eval_prompts import CONTRACT_PROMPT as CONTRACT_PROMPT
from treecot.evaluation.eval_prompts import TASK_PROMPT as TASK_PROMPT
from treecot.evaluation.eval_prompts import PromptChoice, resolve_prompts
from treecot.evaluation.lighteval_version import UnsupportedLightevalVersion, check_lighteval_version
from treecot.evaluation.registry import EVAL_TASKS, eval_task

logger = logging.getLogger(__name__)

__all__ = [
    "EvalConfig",
    "EvalRun",
    "OutputDirNotWritable",
    "PromptChoice",
    "ResultsRescued",
    "add_eval_arguments",
    "check_output_dir",
    "eval_from_args",
    "evaluate",
    "eval_main",
    "format_markdown",
    "load_eval_config",
    "model_revision",
    "rescue_root",
    "resolve_prompts",
    "run_eval",
]

#: Sampling defaults for Test@N (METHOD §1: temperature 0.7, top-p 0.9).
SAMPLING_TEMPERATURE = 0.7
SAMPLING_TOP_P = 0.9


# ----------------------------------------------------------------------------------------- argument checks


def _parse_tasks(tasks: str | Sequence[str]) -> list[str]:
    names = [t.strip() for t in (tasks.split(",") if isinstance(tasks, str) else tasks) if t and t.strip()]
    if not names:
        raise ValueError(f"no task given; choose from {', '.join(EVAL_TASKS)}")
    out = []
    for name in names:
        name = name.removeprefix("treecot_")
        if name not in EVAL_TASKS:
            raise ValueError(f"unknown evaluation task {name!r}; choose from {', '.join(EVAL_TASKS)}")
        if name not in out:
            out.append(name)
    return out


def _check_positive(name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer{' or None' if allow_none else ''}, got {value!r}"
        )


def _check_non_negative(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_counts(
    task_names: list[str],
    limit: Any,
    offset: Any,
    split: str | None,
    samples: Any,
    max_new_tokens: Any,
    batch_size: Any,
    seed: Any,
) -> None:
    """`run_eval`'s counts are integers in range and `split` is a split of every task, checked in order."""
    _check_positive("limit", limit, allow_none=True)
    _check_non_negative("offset", offset)
    if split is not None:
        for name in task_names:
            eval_task(name).check_split(split)
    _check_positive("samples", samples)
    _check_positive("max_new_tokens", max_new_tokens)
    _check_positive("batch_size", batch_size)
    _check_non_negative("seed", seed)


def _sampling(
    samples: int, temperature: float | None, top_p: float | None, mcts: bool
) -> tuple[float, float]:
    """The temperature and top-p of a run: greedy for one sample, 0.7 / 0.9 for several (unless given)."""
    if temperature is None:
        temperature = SAMPLING_TEMPERATURE if samples > 1 else 0.0
    if top_p is None:
        top_p = SAMPLING_TOP_P if samples > 1 else 1.0
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature} and {top_p}")
    if samples > 1 and temperature == 0 and not mcts:
        raise ValueError("Test@N with samples > 1 needs temperature > 0 (identical greedy samples otherwise)")
    return temperature, top_p


def _backend(
    model: str,
    backend: str,
    settings: Mapping[str, Any] | None,
    dtype: str | None,
    batch_size: int,
    generator: Any,
):
    """The backend's spec (`backend_spec`), refusing a prebuilt `generator` for the in-process default."""
    spec = backend_spec(model, backend, settings, dtype, batch_size)
    if generator is not None and spec is None:
        raise ValueError(
            "a prebuilt generator needs backend 'openai' or 'vllm' (the default decodes in-process)"
        )
    return spec


def _output_dir(output_dir: str | os.PathLike | None, model: str, mcts: bool) -> Path:
    """The output directory (default ``outputs/eval/<model-slug>/``), checked for writing (`check_output_dir`)."""
    out = Path(output_dir) if output_dir is not None else Path("outputs") / "eval" / model_slug(model)
    check_output_dir(out, model, mcts=mcts)
    return out


def _prompts(
    model: str,
    task_names: list[str],
    system_prompt: str | None,
    prompt_from: str | None,
    prompt_revision: str | None,
    max_new_tokens: int,
) -> tuple[PromptChoice, list[str]]:
    """The system prompts (`resolve_prompts`) and the budget warnings of their contract, logged."""
    if system_prompt is not None and prompt_from is not None:
        raise ValueError("give system_prompt or prompt_from, not both")
    prompts = resolve_prompts(
        model,
        task_names,
        system_prompt=system_prompt,
        prompt_from=prompt_from,
        prompt_revision=prompt_revision,
    )
    budget_warnings = []
    if prompts.contract is not None:
        budget_warnings = prompts.contract.check_budget(max_new_tokens, task_names)
        for text in budget_warnings:
            logger.warning(text)
    return prompts, budget_warnings


# ----------------------------------------------------------------------------------------- run_eval


def evaluate(
    config: EvalConfig, *, loaded: tuple[Any, Any] | None = None, generator: Any = None, progress: bool = True
) -> EvalRun:
    """Evaluate `config.model` on treecot's tasks with lighteval (CPU, offline); returns what it wrote.

    Args:
        config (`EvalConfig`):
            The evaluation's settings (`treecot.evaluation.config.EvalConfig` documents each field).
        loaded (`tuple[Any, Any]`, *optional*):
            An already loaded ``(model, tokenizer)`` for `config.model` (benchmarks reuse one model).
        generator (`Generator`, *optional*):
            An already built `Generator` for `config.model` (with a backend other than "transformers").
        progress (`bool`, *optional*, defaults to `True`):
            Show lighteval's progress bars.

    Returns:
        `EvalRun`: the paths of the results, the summary and the table, and the summary.
    """
    c = config
    check_lighteval_version()  # before any problem is read or model loaded: the workarounds need lighteval 0.13
    task_names = _parse_tasks(c.tasks)
    _check_counts(task_names, c.limit, c.offset, c.split, c.samples, c.max_new_tokens, c.batch_size, c.seed)
    temperature, top_p = _sampling(c.samples, c.temperature, c.top_p, c.mcts)
    spec = _backend(c.model, c.backend, c.backend_settings, c.dtype, c.batch_size, generator)
    out = _output_dir(c.output_dir, c.model, c.mcts)
    device = models.resolve_device(c.device)
    mcts_config = c.mcts_config or MCTSDecodeConfig(seed=c.seed)
    provenance_info = read_provenance(c.model, c.provenance)
    prompts, budget = _prompts(c.model, task_names, c.system_prompt, c.prompt_from, c.prompt_revision,
                               c.max_new_tokens)  # fmt: skip
    with keep_grad_mode(), quiet_known_noise():
        return _run(c.model, task_names, limit=c.limit, samples=c.samples, seed=c.seed, out=out, mcts=c.mcts,
                    mcts_config=mcts_config, max_new_tokens=c.max_new_tokens, batch_size=c.batch_size,
                    temperature=float(temperature), top_p=float(top_p), dtype=c.dtype, device=device,
                    provenance=provenance_info, loaded=loaded, progress=progress, prompts=prompts,
                    budget_warnings=budget, split=c.split, offset=c.offset, backend_spec=spec,
                    generator=generator)  # fmt: skip


def run_eval(
    model: str,
    tasks: str | Sequence[str] = "gsm8k",
    *,
    limit: int | None = None,
    samples: int = 1,
    seed: int = 0,
    output_dir: str | os.PathLike | None = None,
    mcts: bool = False,
    mcts_config: MCTSDecodeConfig | None = None,
    max_new_tokens: int = 1024,
    batch_size: int = 16,
    temperature: float | None = None,
    top_p: float | None = None,
    dtype: str | None = "float32",
    device: str = "auto",
    provenance: Mapping[str, Any] | None = None,
    loaded: tuple[Any, Any] | None = None,
    progress: bool = True,
    system_prompt: str | None = None,
    prompt_from: str | None = None,
    prompt_revision: str | None = None,
    split: str | None = None,
    offset: int = 0,
    backend: str = "transformers",
    backend_settings: Mapping[str, Any] | None = None,
    generator: Any = None,
) -> EvalRun:
    """`evaluate` with the settings as keyword arguments: each is the `EvalConfig` field of the same name
    (documented there); `loaded`, `generator` and `progress` are `evaluate`'s.

    Returns:
        `EvalRun`: what the run wrote.
    """
    config = EvalConfig(
        model=model, tasks=tasks, limit=limit, samples=samples, seed=seed, output_dir=output_dir, mcts=mcts,
        mcts_config=mcts_config, max_new_tokens=max_new_tokens, batch_size=batch_size, temperature=temperature,
        top_p=top_p, dtype=dtype, device=device, provenance=provenance, system_prompt=system_prompt,
        prompt_from=prompt_from, prompt_revision=prompt_revision, split=split, offset=offset, backend=backend,
        backend_settings=backend_settings,
    )  # fmt: skip
    return evaluate(config, loaded=loaded, generator=generator, progress=progress)


def _run(
    model: str,
    task_names: list[str],
    *,
    out: Path,
    loaded,
    provenance,
    progress,
    prompts: PromptChoice,
    budget_warnings: list[str],
    **s: Any,
) -> EvalRun:
    """Read the problems, load the model, run lighteval's pipeline and write the outputs (`run_eval`)."""
    import torch
    import transformers

    from treecot.evaluation.lighteval_tasks import task_configs

    # The problems first: a task without data (PlanBench with no checkout, offline) fails before the model
    # loads, with one line saying how to provide it (`EvalDataNotAvailable`).
    configs = task_configs(
        task_names,
        system_prompts=prompts.system_prompts,
        limit=s["limit"],
        n_samples=s["samples"],
        max_new_tokens=s["max_new_tokens"],
        split=s["split"],
        offset=s["offset"],
    )
    spec, backend_gen = s.pop("backend_spec"), s.pop("generator")
    s["backend"] = "transformers" if spec is None else spec.backend
    subject = load_eval_model(
        model, spec, backend_gen, loaded, dtype=s["dtype"], device=s["device"], seed=s["seed"]
    )
    if spec is not None:
        s["backend_settings"] = {k: v for k, v in spec.to_dict().items() if k not in ("model", "backend")}
    run = build_lighteval_run(
        model,
        task_names,
        configs,
        subject,
        spec=spec,
        out=out,
        prompts=prompts,
        progress=progress,
        settings=s,
    )
    transformers.set_seed(s["seed"])
    torch.manual_seed(s["seed"])
    try:
        run.pipeline.evaluate()
    finally:
        subject.close()
    return _write_or_rescue(
        out,
        run,
        subject,
        model=model,
        provenance=provenance,
        prompts=prompts,
        budget_warnings=budget_warnings,
        settings=s,
    )


# ----------------------------------------------------------------------------------------- outputs


def rescue_root() -> Path:
    """Where the outputs of an evaluation go when its output directory fails at the end.

    Returns:
        `Path`: ``$TREECOT_CACHE/rescued`` (see `treecot.models.cache_dir`).
    """
    return models.cache_dir() / "rescued"


def _rescue_dir(model: str) -> Path:
    """A new folder for rescued outputs: under `rescue_root`, else the system's temporary directory."""
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    prefix = f"eval-{model_slug(model)}-{stamp}-"
    try:
        root = rescue_root()
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    except OSError:
        return Path(tempfile.mkdtemp(prefix=f"treecot-rescued-{prefix}"))


def _write_or_rescue(
    out: Path,
    run: LightevalRun,
    subject: EvalModel,
    *,
    model: str,
    provenance: Mapping[str, Any],
    prompts: PromptChoice,
    budget_warnings: list[str],
    settings: Mapping[str, Any],
) -> EvalRun:
    """Write the outputs to `out`; should that fail, to `_rescue_dir` instead, then raise `ResultsRescued`."""

    def write(where: Path) -> EvalRun:
        return write_outputs(
            where,
            run.pipeline,
            run.tracker,
            run.lm,
            model=model,
            revision=subject.revision,
            provenance=provenance,
            prompts=prompts,
            budget_warnings=budget_warnings,
            lighteval_version=run.lighteval_version,
            settings=settings,
        )

    try:
        return write(out)
    except OSError as err:
        # The run is done and its results are in memory: never lose them to a failed write.
        from fsspec.core import url_to_fs

        rescue = _rescue_dir(model)
        logger.error("could not write the results to %s (%s); writing them to %s", out, err, rescue)
        run.tracker.fs, run.tracker.output_dir = url_to_fs(str(rescue))
        raise ResultsRescued(write(rescue), out, err) from err


# ----------------------------------------------------------------------------------------- CLI


def eval_from_args(args: argparse.Namespace, overrides: Mapping[str, Any] | None = None) -> EvalRun:
    """Run `evaluate` from parsed `add_eval_arguments` arguments and print the table and paths.

    Args:
        args (`argparse.Namespace`):
            The parsed arguments of `treecot eval`: an optional ``--config`` file, then the flags given.
        overrides (`Mapping[str, Any]`, *optional*):
            `--dotted.field value` overrides of the config (`treecot.configs.parse_overrides`), laid over the
            file and the flags.

    Returns:
        `EvalRun`: what the run wrote.
    """
    settings = merge(eval_settings(args), overrides or {}, error=EvalConfigError)
    config = load_eval_config(getattr(args, "config", None), settings)
    run = evaluate(config, progress=not getattr(args, "no_progress", False))
    print(format_markdown(run.summary))
    print(f"lighteval results: {run.results_path}\nsummary: {run.summary_path}\ntable: {run.markdown_path}")
    return run


def eval_main(argv: list[str] | None = None) -> int:
    """``python -m treecot.evaluation.runner MODEL --tasks …``: the `treecot eval` command.

    Args:
        argv (`list[str]`, *optional*):
            The command-line arguments (default: ``sys.argv[1:]``).

    Returns:
        `int`: the exit status (2 with a one-line error, after the table when the results were rescued).
    """
    parser = add_eval_arguments(
        argparse.ArgumentParser(prog="treecot eval", description=__doc__.split("\n")[0])
    )
    args = parser.parse_args(argv)
    try:
        eval_from_args(args)
    except ResultsRescued as err:
        print(format_markdown(err.run.summary))
        print(f"treecot eval: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, KeyError, FileNotFoundError, UnsupportedLightevalVersion) as err:
        print(f"treecot eval: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(eval_main())
