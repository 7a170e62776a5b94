"""The lighteval call of `treecot eval`: lighteval's model config, the lighteval model that decodes
(in-process transformers, a generation backend, or MCTS decoding), its tracker and pipeline, and the
process-wide state an evaluation guards (autograd mode, known library warnings).

lighteval and `treecot.evaluation.lighteval_compat` are imported only when a pipeline is built.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treecot.evaluation.eval_model import EvalModel, model_slug, tokenizer_source
from treecot.evaluation.eval_prompts import PromptChoice

__all__ = ["LightevalRun", "build_lighteval_run", "keep_grad_mode", "quiet_known_noise"]


@contextlib.contextmanager
def keep_grad_mode() -> Iterator[None]:
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
def quiet_known_noise() -> Iterator[None]:
    """Leave out `_NOISE` while an evaluation runs; every other record of those loggers is kept."""
    installed = [(logging.getLogger(name), _KnownNoise(pattern)) for name, pattern in _NOISE]
    for log, noise in installed:
        log.addFilter(noise)
    try:
        yield
    finally:
        for log, noise in installed:
            log.removeFilter(noise)


@dataclass
class LightevalRun:
    """A lighteval evaluation, ready to run and, once run, to write.

    Args:
        pipeline (`Any`):
            The `TreecotPipeline` (``pipeline.evaluate()`` runs it).
        tracker (`Any`):
            Its `EvaluationTracker` (writes lighteval's results and details under its ``output_dir``).
        lm (`Any`):
            The lighteval model that decodes (its ``stats`` under MCTS decoding).
        lighteval_version (`str`):
            The installed lighteval's ``__version__`` ("unknown" when it has none).
    """

    pipeline: Any
    tracker: Any
    lm: Any
    lighteval_version: str


def _model_config(model: str, subject: EvalModel, spec: Any, settings: Mapping[str, Any]):
    """lighteval's config of the evaluated model: name, tokenizer, revision, batch, device, generation."""
    from lighteval.models.model_input import GenerationParameters

    from treecot.evaluation import lighteval_compat as compat

    s, hf_model = settings, subject.hf_model
    return compat.TreecotModelConfig(
        model_name=model_slug(model),
        tokenizer=tokenizer_source(model),
        model_revision=subject.revision,
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


def _lighteval_model(
    model: str,
    subject: EvalModel,
    config: Any,
    *,
    out: Path,
    prompts: PromptChoice,
    progress: bool,
    settings: Mapping[str, Any],
):
    """The lighteval model that decodes: MCTS decoding, a generation backend, or transformers in-process."""
    from treecot.evaluation import lighteval_compat as compat

    s, hf_model, tokenizer = settings, subject.hf_model, subject.tokenizer
    if s["mcts"]:
        from treecot.backends.transformers_backend import TransformersGenerator

        # dtype=None: the generator must not cast the caller's model in place.
        generator = subject.generator or TransformersGenerator(
            hf_model, tokenizer, dtype=None, max_batch_size=s["batch_size"], seed=s["seed"], model_id=model
        )
        trees_path = out / "mcts_trees.jsonl"
        trees_path.unlink(missing_ok=True)
        lm = compat.MCTSDecodeModel(
            generator, tokenizer, config, s["mcts_config"], s["samples"], trees_path, prompts.system_prompts
        )
    elif subject.generator is not None:
        lm = compat.BackendModel(
            subject.generator,
            tokenizer,
            config,
            temperature=s["temperature"],
            top_p=s["top_p"],
            seed=s["seed"],
        )
    else:
        lm = compat.TreecotTransformersModel.wrap(hf_model, config)
    lm.show_progress = progress
    return lm


def build_lighteval_run(
    model: str,
    task_names: Sequence[str],
    configs: Any,
    subject: EvalModel,
    *,
    spec: Any,
    out: Path,
    prompts: PromptChoice,
    progress: bool,
    settings: Mapping[str, Any],
) -> LightevalRun:
    """lighteval's pipeline over treecot's tasks for the loaded model, writing under `out`.

    Args:
        model (`str`):
            The evaluated model (its name in lighteval's outputs: `model_slug`).
        task_names (`Sequence[str]`):
            The evaluation tasks, in order.
        configs (`Any`):
            Their lighteval task configs (`treecot.evaluation.lighteval_tasks.task_configs`).
        subject (`EvalModel`):
            The loaded model, tokenizer and generator (`treecot.evaluation.eval_model.load_eval_model`).
        spec (`treecot.recipe.ModelSpec` or `None`):
            The generation backend's spec (its ``dtype`` when no model is loaded in-process).
        out (`Path`):
            The output directory (lighteval's results and details; ``mcts_trees.jsonl`` under MCTS).
        prompts (`PromptChoice`):
            The system prompt of each task.
        progress (`bool`):
            Whether lighteval's progress bars are shown.
        settings (`Mapping[str, Any]`):
            The run's settings (``batch_size``, ``temperature``, ``top_p``, ``seed``, ``mcts``,
            ``mcts_config``, ``samples``).

    Returns:
        `LightevalRun`: the pipeline, its tracker and model, and the lighteval version.
    """
    import lighteval
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.pipeline import ParallelismManager, PipelineParameters

    from treecot.evaluation import lighteval_compat as compat
    from treecot.evaluation.lighteval_tasks import PREFIX

    compat.shim_xxhash()
    config = _model_config(model, subject, spec, settings)
    lm = _lighteval_model(
        model, subject, config, out=out, prompts=prompts, progress=progress, settings=settings
    )
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
    return LightevalRun(pipeline, tracker, lm, getattr(lighteval, "__version__", "unknown"))
