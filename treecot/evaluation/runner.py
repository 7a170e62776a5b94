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
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from treecot.evaluation.decode import MCTSDecodeConfig

logger = logging.getLogger(__name__)

__all__ = [
    "EvalRun",
    "OutputDirNotWritable",
    "PromptChoice",
    "ResultsRescued",
    "add_eval_arguments",
    "check_output_dir",
    "eval_from_args",
    "eval_main",
    "format_markdown",
    "model_revision",
    "rescue_root",
    "resolve_prompts",
    "run_eval",
]

SUMMARY_SCHEMA_VERSION = 1
PROVENANCE_FILE = "treecot_provenance.json"
#: Sampling defaults for Test@N (METHOD §1: temperature 0.7, top-p 0.9).
SAMPLING_TEMPERATURE = 0.7
SAMPLING_TOP_P = 0.9
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
    """What `run_eval` wrote: the output directory, lighteval's results JSON, summary JSON and table."""

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
    ``run.output_dir`` (under `rescue_root`) instead. ``error`` is the failed write's exception."""

    def __init__(self, run: EvalRun, output_dir: Path, error: BaseException):
        self.run = run
        self.output_dir = output_dir
        self.error = error
        super().__init__(
            f"could not write the results to {output_dir} ({type(error).__name__}: {error}); nothing is lost: "
            f"the summary and lighteval's results and details were written to {run.output_dir} instead"
        )


# ----------------------------------------------------------------------------------------- lighteval seams


@contextlib.contextmanager
def _keep_grad_mode() -> Iterator[None]:
    """lighteval disables autograd globally (at import and when wrapping a model): restore it afterwards."""
    import torch

    enabled = torch.is_grad_enabled()
    try:
        yield
    finally:
        torch.set_grad_enabled(enabled)


class _KnownNoise(logging.Filter):
    """Drops one library warning a treecot user cannot act on, matched by its logger and full message."""

    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno != logging.WARNING or not self.pattern.fullmatch(record.getMessage())


#: (logger, message) of the warnings an evaluation leaves out: lighteval's few-shot warning about treecot's
#: own tasks (always run with 0 shots, so no few-shot example is ever built), and transformers' note that
#: `temperature` is ignored under greedy decoding (lighteval always sets a temperature; 0 means greedy).
_NOISE = (
    (
        "lighteval.tasks.lighteval_task",
        r"Careful, the task treecot_\w+ is using evaluation data to build the few shot examples\.",
    ),
    (
        "transformers.generation.configuration_utils",
        r"The following generation flags are not valid and may be ignored: \['temperature'\]\.( Set "
        r"`TRANSFORMERS_VERBOSITY=info` for more details\.)?",
    ),
)


@contextlib.contextmanager
def _quiet_known_noise() -> Iterator[None]:
    """Leave out `_NOISE` while an evaluation runs; every other record of those loggers is kept."""
    installed = [(logging.getLogger(name), _KnownNoise(pattern)) for name, pattern in _NOISE]
    for log, noise in installed:
        log.addFilter(noise)
    try:
        yield
    finally:
        for log, noise in installed:
            log.removeFilter(noise)


# ----------------------------------------------------------------------------------------- model identity


def model_slug(model: str) -> str:
    """A file-name-safe name for `model` (a name, a directory or a Hub id)."""
    path = Path(str(model).rstrip("/"))
    base = path.name if (str(model).startswith((".", "/", "~")) or path.exists()) else str(model)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", base).strip("-.")
    return slug or "model"


def _local_weights(model: str) -> bool:
    """Whether `model_revision` can name `model`'s weights without loading them (embedded, tiny, a folder)."""
    from treecot.models import EMBEDDED, TINY

    return model in EMBEDDED or model == TINY or Path(str(model)).expanduser().is_dir()


def model_revision(model: str, loaded: Any = None) -> str:
    """What identifies the evaluated weights.

    Embedded models: ``gguf-sha256:<12 hex>`` of their GGUF; ``tiny``: ``tiny-seed0``; Hub ids: the commit
    transformers resolved (``config._commit_hash``); local directories: ``sha256:<16 hex>``, a fingerprint
    of the weight, config and tokenizer files (name, size, and the first and last MiB of each file).
    """
    from treecot.models import EMBEDDED, TINY

    if model in EMBEDDED:
        return f"gguf-sha256:{EMBEDDED[model].sha256[:12]}"
    if model == TINY:
        return "tiny-seed0"
    path = Path(str(model)).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            if f.suffix not in {".safetensors", ".bin", ".json", ".model", ".txt", ".gguf", ".pt"}:
                continue
            size = f.stat().st_size
            h.update(f"{f.relative_to(path).as_posix()}\0{size}\0".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
        return f"sha256:{h.hexdigest()[:16]}"
    commit = getattr(getattr(loaded, "config", None), "_commit_hash", None)
    return str(commit) if commit else "unknown"


def _provenance(model: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """dataset_repo / dataset_revision / recipe_hash: `given`, else the model directory's provenance file."""
    out: dict[str, Any] = {"dataset_repo": None, "dataset_revision": None, "recipe_hash": None}
    path = Path(str(model)).expanduser() / PROVENANCE_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        out.update({k: data.get(k) for k in out if data.get(k) is not None})
    for key, value in (given or {}).items():
        if key not in out:
            raise ValueError(f"unknown provenance field {key!r}; known: {sorted(out)}")
        if value is not None:
            out[key] = value
    return out


def _tokenizer_source(model: str) -> str:
    from treecot.models import TINY, embedded_tokenizer_dir, resolve_model_path

    if model == TINY:
        return str(embedded_tokenizer_dir())
    path = Path(str(model)).expanduser()
    return str(path) if path.is_dir() else resolve_model_path(model)


# ----------------------------------------------------------------------------------------- prompts

#: `system_prompt` values that name a prompt instead of giving one.
TASK_PROMPT = "task"
CONTRACT_PROMPT = "contract"


@dataclass
class PromptChoice:
    """The system prompt of each evaluated task and where it came from.

    system_prompts: task -> the system prompt every Doc of that task is rendered with.
    sources:        task -> "dataset" (`prompt_from`), "model" (the model's `treecot_provenance.json`),
                    "given" (`system_prompt` text), "task" (the task's own answer-format prompt) or
                    "contract-default" (`treecot.prompts.contract_system_prompt`: the tag guide plus the
                    task's answer format, for a task the contract does not cover).
    contract:       the prompt contract read (None when the prompt came from elsewhere).
    """

    system_prompts: dict[str, str]
    sources: dict[str, str]
    contract: Any = None
    origin: str = ""


def _contract_from_dataset(source: str, revision: str | None) -> Any:
    from treecot.hub import load_versioned
    from treecot.prompts import PromptContract

    sft = dpo = ()
    errors = []
    for config in ("sft", "dpo"):
        try:
            rows = load_versioned(source, config, revision=revision, split="train")
        except Exception as err:  # noqa: BLE001 — a dataset may hold either config
            errors.append(f"{config}: {err}")
            continue
        if config == "sft":
            sft = rows
        else:
            dpo = rows
    if not sft and not dpo:
        raise ValueError(
            f"--prompt-from {source!r}: no 'sft' or 'dpo' config to read the prompt from ({'; '.join(errors)})"
        )
    return PromptContract.from_rows(sft, dpo)


def resolve_prompts(
    model: str,
    tasks: Sequence[str],
    *,
    system_prompt: str | None = None,
    prompt_from: str | None = None,
    prompt_revision: str | None = None,
) -> PromptChoice:
    """Which system prompt each task is evaluated under (the prompt contract, `treecot.prompts`).

    In order: `system_prompt` ("task": each task's own prompt; "contract": the default dataset prompt;
    any other text: that text for every task); the contract of dataset `prompt_from` (at
    `prompt_revision`); the contract in the model directory's ``treecot_provenance.json`` (what the model
    was trained with); else each task's own prompt. A task the contract does not cover gets
    `contract_system_prompt(task)`, the prompt a dataset of that task would carry.
    """
    from treecot.evaluation import eval_task
    from treecot.prompts import PromptContract, contract_system_prompt

    def own(task: str) -> str:
        return eval_task(task).system_prompt

    if system_prompt is not None:
        if system_prompt == TASK_PROMPT:
            return PromptChoice({t: own(t) for t in tasks}, dict.fromkeys(tasks, "task"), origin="task")
        if system_prompt == CONTRACT_PROMPT:
            prompts = {t: contract_system_prompt(eval_task(t)) for t in tasks}
            return PromptChoice(prompts, dict.fromkeys(tasks, "contract-default"), origin="contract-default")
        return PromptChoice(
            dict.fromkeys(tasks, system_prompt), dict.fromkeys(tasks, "given"), origin="given"
        )
    contract, origin, source = None, "", ""
    if prompt_from is not None:
        contract = _contract_from_dataset(prompt_from, prompt_revision)
        origin = f"dataset {prompt_from}" + (f"@{prompt_revision}" if prompt_revision else "")
        source = "dataset"
    else:
        path = Path(str(model)).expanduser() / PROVENANCE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text()).get("prompt_contract")
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from None
            if data:
                contract = PromptContract.from_dict(data)
                origin, source = f"model provenance {path}", "model"
    if contract is None:
        return PromptChoice({t: own(t) for t in tasks}, dict.fromkeys(tasks, "task"), origin="task")
    prompts, sources = {}, {}
    for t in tasks:
        text = contract.system_prompt(t)
        if text is None:
            prompts[t], sources[t] = contract_system_prompt(eval_task(t)), "contract-default"
        else:
            prompts[t], sources[t] = text, source
    return PromptChoice(prompts, sources, contract, origin)


# ----------------------------------------------------------------------------------------- run_eval


def _parse_tasks(tasks: str | Sequence[str]) -> list[str]:
    from treecot.evaluation import EVAL_TASKS

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


def run_eval(
    model: str,
    tasks: str | Sequence[str] = ("gsm8k",),
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
    """Evaluate `model` on treecot's `tasks` with lighteval (CPU, offline) and write the outputs.

    Args:
        model: "smollm2-135m-instruct" (embedded), "tiny", a local model directory or a Hub id.
        tasks: names or a comma-separated string from gsm8k, arithmetic, math500, aime24, aime25,
            blocksworld, planbench (PlanBench's one-shot prompt), planbench_zeroshot, ifeval, ifbench.
            Every task's problems are read before the model loads: PlanBench without a checkout
            (``$TREECOT_PLANBENCH``) and without the Hub raises `EvalDataNotAvailable` (a `ValueError`).
        limit: evaluate the first `limit` test problems of each task (None: all).
        split, offset: evaluate problems `offset`… of this split instead (default: each task's test split
            from its first problem). A slice of ``train`` that the search did not use is a validation set
            for choosing hyperparameters; the summary records split and offset.
        samples: N samples per problem (Test@N: reports pass@k for k = 1, 2, 4, …, N; accuracy is then
            pass@1, the mean share of correct samples). N > 1 samples at `temperature` (default 0.7).
        seed: seeds torch (sampling) and the MCTS search; with the same seed a run is reproducible.
        output_dir: default ``outputs/eval/<model-slug>/``; checked for writing before anything runs
            (`OutputDirNotWritable`). Should the final writes fail anyway, the outputs are written under
            `rescue_root` and `ResultsRescued` (holding the rescued `EvalRun`) is raised.
        mcts: decode by tree search with the token-confidence value (see `treecot.evaluation.decode`);
            `mcts_config` sets its budget; with `samples` N the N best-valued answers are the samples.
        max_new_tokens: generation cap per response (per node under MCTS: `mcts_config`).
        batch_size: prompts per `generate` call.
        temperature, top_p: sampling; default greedy for one sample, 0.7 / 0.9 for several.
        dtype: weights dtype ("float32", "bfloat16", "auto").
        device: "auto" (a CUDA GPU when one is visible, else the CPU), "cpu", "cuda" or "cuda:N".
        provenance: ``dataset_repo``, ``dataset_revision``, ``recipe_hash`` of a trained model (default:
            read from ``<model dir>/treecot_provenance.json`` when present), carried to the leaderboard.
        loaded: an already loaded ``(model, tokenizer)`` for `model` (benchmarks reuse one model).
        progress: show lighteval's progress bars.
        system_prompt: the system prompt of every task ("task": each task's own answer-format prompt;
            "contract": the default prompt of a treecot dataset). Default: the prompt the model was
            trained with (its ``treecot_provenance.json``), else each task's own; see `resolve_prompts`.
        prompt_from, prompt_revision: read the system prompts from this treecot dataset (its rows' prompt
            contract) at this revision instead.

        backend: who decodes. "transformers" (default): the model in this process, through lighteval's own
            transformers model. "openai": an OpenAI-compatible server (vLLM, SGLang, llama.cpp's server;
            `backend_settings` needs its ``base_url``); "vllm": vLLM's offline engine (GPU). Both go through
            treecot's `Generator` behind lighteval's model interface, so tasks, metrics and outputs are
            lighteval's as with the default; `model` then names the weights (for the tokenizer, the chat
            template and the summary) and need not fit in this process.
        backend_settings: the model settings of a generation recipe (`treecot.recipe.ModelSpec` fields):
            ``base_url``, ``served_model`` (default `model`), ``api_key_env``, ``concurrency``, ``timeout``,
            ``tokenizer``; for vllm ``tensor_parallel_size``, ``gpu_memory_utilization``,
            ``max_model_len``, ``enable_prefix_caching``, ``quantization``, ``engine_kwargs``.
        generator: an already built `Generator` for `model` (with a backend other than "transformers").

    A `treecot.prompts.BudgetWarning` is issued when `max_new_tokens` is below the 95th percentile of the
    training responses' lengths of a task (from the prompt contract); the summary records it.
    """
    from treecot.evaluation.lighteval_version import check_lighteval_version

    check_lighteval_version()  # before any problem is read or model loaded: the workarounds need lighteval 0.13
    task_names = _parse_tasks(tasks)
    _check_positive("limit", limit, allow_none=True)
    _check_non_negative("offset", offset)
    if split is not None:
        from treecot.evaluation import eval_task

        for name in task_names:
            eval_task(name).check_split(split)
    _check_positive("samples", samples)
    _check_positive("max_new_tokens", max_new_tokens)
    _check_positive("batch_size", batch_size)
    _check_non_negative("seed", seed)
    if temperature is None:
        temperature = SAMPLING_TEMPERATURE if samples > 1 else 0.0
    if top_p is None:
        top_p = SAMPLING_TOP_P if samples > 1 else 1.0
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1, got {temperature} and {top_p}")
    if samples > 1 and temperature == 0 and not mcts:
        raise ValueError("Test@N with samples > 1 needs temperature > 0 (identical greedy samples otherwise)")
    spec = _backend_spec(model, backend, backend_settings, dtype, batch_size)
    if generator is not None and spec is None:
        raise ValueError(
            "a prebuilt generator needs backend 'openai' or 'vllm' (the default decodes in-process)"
        )
    out = Path(output_dir) if output_dir is not None else Path("outputs") / "eval" / model_slug(model)
    check_output_dir(out, model, mcts=mcts)
    from treecot.models import resolve_device

    device = resolve_device(device)
    mcts_config = mcts_config or MCTSDecodeConfig(seed=seed)
    provenance_info = _provenance(model, provenance)
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

    with _keep_grad_mode(), _quiet_known_noise():
        return _run(
            model,
            task_names,
            limit=limit,
            samples=samples,
            seed=seed,
            out=out,
            mcts=mcts,
            mcts_config=mcts_config,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            temperature=float(temperature),
            top_p=float(top_p),
            dtype=dtype,
            device=device,
            provenance=provenance_info,
            loaded=loaded,
            progress=progress,
            prompts=prompts,
            budget_warnings=budget_warnings,
            split=split,
            offset=offset,
            backend_spec=spec,
            generator=generator,
        )


def _backend_spec(
    model: str, backend: str, settings: Mapping[str, Any] | None, dtype: str | None, batch_size: int
):
    """The `ModelSpec` of a generation backend (None for the default in-process lighteval model); a bad
    setting raises a ValueError naming it before anything loads."""
    from treecot.recipe import BACKENDS, ModelSpec, RecipeError

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    settings = dict(settings or {})
    if backend == "transformers":
        if settings:
            raise ValueError(
                f"backend settings ({', '.join(sorted(settings))}) need backend 'openai' or 'vllm'; the "
                "default decodes in-process"
            )
        return None
    known = {f.name for f in fields(ModelSpec)} - {"model", "backend"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown backend setting {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    settings.setdefault("dtype", dtype if dtype in ("float32", "bfloat16", "float16") else "bfloat16")
    settings.setdefault("max_batch_size", batch_size)
    spec = ModelSpec(model=model, backend=backend, **settings)
    try:
        spec.validate("eval")
    except RecipeError as err:
        raise ValueError(str(err)) from None
    return spec


def check_output_dir(out: Path, model: str, *, mcts: bool = False) -> None:
    """Make sure an evaluation can write its outputs to `out` before it starts: create it, write (and
    remove) a probe file in it and in the folders lighteval writes to, and open the files a run rewrites.

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


def rescue_root() -> Path:
    """Where the outputs of an evaluation go when its output directory fails at the end:
    ``$TREECOT_CACHE/rescued`` (see `treecot.models.cache_dir`)."""
    from treecot.models import cache_dir

    return cache_dir() / "rescued"


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
    import torch
    import transformers

    from treecot.evaluation.lighteval_tasks import PREFIX, task_configs
    from treecot.models import load_model

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
    owned = False
    s["backend"] = "transformers" if spec is None else spec.backend
    if spec is not None:  # a server or vLLM decodes: only the tokenizer is needed here
        from treecot.backends import make_generator
        from treecot.models import load_tokenizer

        hf_model = None
        tokenizer = load_tokenizer(spec.tokenizer or model)
        owned = backend_gen is None  # built here: closed here (thread pools, HTTP sessions, an engine)
        backend_gen = backend_gen or make_generator(spec, seed=s["seed"])
        revision = model_revision(model) if _local_weights(model) else f"served:{spec.served_model or model}"
        s["backend_settings"] = {k: v for k, v in spec.to_dict().items() if k not in ("model", "backend")}
    elif loaded is None:
        hf_model, tokenizer = load_model(model, dtype=s["dtype"], device=s["device"])
    else:
        hf_model, tokenizer = loaded
    if spec is None:
        revision = model_revision(model, hf_model)

    import lighteval
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.models.model_input import GenerationParameters
    from lighteval.pipeline import ParallelismManager, PipelineParameters

    from treecot.evaluation import lighteval_compat as compat

    compat.shim_xxhash()
    config = compat.TreecotModelConfig(
        model_name=model_slug(model),
        tokenizer=_tokenizer_source(model),
        model_revision=revision,
        batch_size=s["batch_size"],
        device=str(next(hf_model.parameters()).device) if hf_model is not None else "cpu",
        dtype=str(next(hf_model.parameters()).dtype).removeprefix("torch.")
        if hf_model is not None
        else spec.dtype,
        add_special_tokens=False,
        model_parallel=False,
        generation_parameters=GenerationParameters(
            temperature=s["temperature"], top_p=s["top_p"] if s["temperature"] > 0 else None, seed=s["seed"]
        ),
    )
    if s["mcts"]:
        from treecot.backends.transformers_backend import TransformersGenerator

        # dtype=None: the generator must not cast the caller's model in place.
        generator = backend_gen or TransformersGenerator(
            hf_model, tokenizer, dtype=None, max_batch_size=s["batch_size"], seed=s["seed"], model_id=model
        )
        trees_path = out / "mcts_trees.jsonl"
        trees_path.unlink(missing_ok=True)
        lm = compat.MCTSDecodeModel(
            generator, tokenizer, config, s["mcts_config"], s["samples"], trees_path, prompts.system_prompts
        )
    elif backend_gen is not None:
        lm = compat.BackendModel(
            backend_gen, tokenizer, config, temperature=s["temperature"], top_p=s["top_p"], seed=s["seed"]
        )
    else:
        lm = compat.TreecotTransformersModel.wrap(hf_model, config)
    lm.show_progress = progress

    tracker = EvaluationTracker(
        output_dir=str(out), results_path_template="{output_dir}/results", save_details=True
    )
    params = PipelineParameters(
        launcher_type=ParallelismManager.NONE,
        remove_reasoning_tags=False,
        bootstrap_iters=1000,
    )
    task_spec = ",".join(f"{PREFIX}{t}|0" for t in task_names)
    pipeline = compat.TreecotPipeline(
        task_configs=configs,
        tasks=task_spec,
        pipeline_parameters=params,
        evaluation_tracker=tracker,
        model=lm,
    )
    transformers.set_seed(s["seed"])
    torch.manual_seed(s["seed"])
    try:
        pipeline.evaluate()
    finally:
        close = getattr(backend_gen, "close", None)
        if spec is not None and owned and callable(close):
            close()

    def write(where: Path) -> EvalRun:
        return _write_outputs(
            where,
            pipeline,
            tracker,
            lm,
            model=model,
            revision=revision,
            provenance=provenance,
            prompts=prompts,
            budget_warnings=budget_warnings,
            lighteval_version=getattr(lighteval, "__version__", "unknown"),
            settings=s,
        )

    try:
        return write(out)
    except OSError as err:
        # The run is done and its results are in memory: never lose them to a failed write.
        from fsspec.core import url_to_fs

        rescue = _rescue_dir(model)
        logger.error("could not write the results to %s (%s); writing them to %s", out, err, rescue)
        tracker.fs, tracker.output_dir = url_to_fs(str(rescue))
        raise ResultsRescued(write(rescue), out, err) from err


def _write_outputs(
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
    """Write lighteval's results and details (through its tracker, whose output_dir is `out`), then
    ``summary.json`` and ``summary.md`` to `out`."""
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
    """treecot's summary of a run from lighteval's aggregated results (``{"treecot_gsm8k|0": {...}}``)."""
    from dataclasses import asdict

    import treecot
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
    """A markdown table of a summary: accuracy (no-answer %) as in the paper, Test@N and diagnostics."""
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


# ----------------------------------------------------------------------------------------- CLI


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `treecot eval`'s arguments to `parser` (for `treecot.cli`)."""
    from treecot.evaluation import EVAL_TASKS

    parser.add_argument("model", help="smollm2-135m-instruct, tiny, a model directory or a Hub id")
    parser.add_argument(
        "--tasks",
        default="gsm8k",
        help=f"comma-separated: {','.join(EVAL_TASKS)} (planbench: PlanBench's one-shot prompt, "
        "planbench_zeroshot: its zero-shot prompt; both read the PlanBench checkout named by "
        "$TREECOT_PLANBENCH, else the Hub)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N test problems of each task")
    parser.add_argument(
        "--split",
        default=None,
        help="evaluate this split instead of the test split (e.g. a validation slice "
        "of train that the search did not use: --split train --offset N)",
    )
    parser.add_argument("--offset", type=int, default=0, help="skip the first N problems of the split")
    parser.add_argument("--samples", type=int, default=1, help="N samples per problem: Test@N / pass@k")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None, help="default outputs/eval/<model-slug>/")
    parser.add_argument("--max-new-tokens", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--temperature", type=float, default=None, help="default 0 (greedy), 0.7 with --samples > 1"
    )
    parser.add_argument("--top-p", type=float, default=None, help="default 0.9 when sampling")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or auto")
    parser.add_argument("--device", default="auto", help="auto (GPU if visible), cpu, cuda or cuda:N")
    parser.add_argument(
        "--mcts", action="store_true", help="decode by tree search with the token-confidence value"
    )
    parser.add_argument("--max-rollouts", type=int, default=MCTSDecodeConfig.max_rollouts)
    parser.add_argument("--max-depth", type=int, default=MCTSDecodeConfig.max_depth)
    parser.add_argument("--max-node-tokens", type=int, default=MCTSDecodeConfig.max_node_tokens)
    parser.add_argument(
        "--dataset-repo", default=None, help="training dataset of the model (for the leaderboard)"
    )
    parser.add_argument("--dataset-revision", default=None)
    parser.add_argument("--recipe-hash", default=None)
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument(
        "--system-prompt",
        default=None,
        help="system prompt of every task: 'task' (each task's own), 'contract' (a treecot dataset's default) "
        "or the text itself; default: the prompt the model was trained with (treecot_provenance.json)",
    )
    prompt.add_argument(
        "--prompt-from", default=None, help="read the system prompts from this treecot dataset's rows"
    )
    parser.add_argument("--prompt-revision", default=None, help="revision of --prompt-from")
    parser.add_argument("--no-progress", action="store_true")
    served = parser.add_argument_group(
        "backend",
        "decode with a generation backend instead of in-process (the settings a generation recipe's "
        "model takes; MODEL then names the weights: tokenizer, chat template, summary)",
    )
    served.add_argument(
        "--backend",
        choices=("transformers", "openai", "vllm"),
        default="transformers",
        help="transformers: in-process; openai: an OpenAI-compatible server (vLLM, SGLang, llama.cpp); "
        "vllm: vLLM's offline engine (GPU)",
    )
    served.add_argument("--base-url", default=None, help="openai: the server, e.g. http://127.0.0.1:8000/v1")
    served.add_argument(
        "--served-model", default=None, help="openai: the model name the server knows (default MODEL)"
    )
    served.add_argument(
        "--api-key-env", default=None, help="openai: environment variable holding the API key"
    )
    served.add_argument(
        "--concurrency", type=int, default=None, help="openai: requests in flight (default 8)"
    )
    served.add_argument(
        "--timeout", type=float, default=None, help="openai: seconds per request (default 600)"
    )
    served.add_argument("--tensor-parallel-size", type=int, default=None, help="vllm: GPUs per engine")
    served.add_argument(
        "--gpu-memory-utilization", type=float, default=None, help="vllm: share of GPU memory"
    )
    served.add_argument("--max-model-len", type=int, default=None, help="vllm: context length")
    return parser


_BACKEND_OPTIONS = ("base_url", "served_model", "api_key_env", "concurrency", "timeout", "tensor_parallel_size",
                    "gpu_memory_utilization", "max_model_len")  # fmt: skip


def eval_from_args(args: argparse.Namespace) -> EvalRun:
    """Run `run_eval` from parsed `add_eval_arguments` arguments and print the table and paths."""
    mcts_config = MCTSDecodeConfig(
        max_rollouts=args.max_rollouts,
        max_depth=args.max_depth,
        max_node_tokens=args.max_node_tokens,
        seed=args.seed,
    )
    run = run_eval(
        args.model,
        args.tasks,
        limit=args.limit,
        split=args.split,
        offset=args.offset,
        samples=args.samples,
        seed=args.seed,
        output_dir=args.output_dir,
        mcts=args.mcts,
        mcts_config=mcts_config,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        temperature=args.temperature,
        top_p=args.top_p,
        dtype=args.dtype,
        device=args.device,
        provenance={
            "dataset_repo": args.dataset_repo,
            "dataset_revision": args.dataset_revision,
            "recipe_hash": args.recipe_hash,
        },
        progress=not args.no_progress,
        system_prompt=args.system_prompt,
        prompt_from=args.prompt_from,
        prompt_revision=args.prompt_revision,
        backend=args.backend,
        backend_settings={k: getattr(args, k) for k in _BACKEND_OPTIONS if getattr(args, k) is not None},
    )
    print(format_markdown(run.summary))
    print(f"lighteval results: {run.results_path}\nsummary: {run.summary_path}\ntable: {run.markdown_path}")
    return run


def eval_main(argv: list[str] | None = None) -> int:
    """``python -m treecot.evaluation.runner MODEL --tasks …``: the `treecot eval` command."""
    from treecot.evaluation.lighteval_version import UnsupportedLightevalVersion

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
