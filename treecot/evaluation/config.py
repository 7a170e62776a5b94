"""`EvalConfig`: the settings of an evaluation, read one way from a YAML file and the command line.

    # eval.yaml                                     treecot eval --config eval.yaml --limit 8
    model: outputs/demo/models/cdpo                 treecot eval MODEL --mcts_config.max_rollouts 16
    tasks: [arithmetic, gsm8k]
    limit: 24
    max_new_tokens: 320
    mcts_config: {max_rollouts: 8}

Every key and value is checked by `treecot.configs.from_dict` (an unknown or ill-typed one is named by its
dotted path); the command line's flags and `--dotted.field value` overrides are laid over the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from treecot.configs import fields_set, read_config
from treecot.evaluation.decode import MCTSDecodeConfig

__all__ = ["EvalConfig", "EvalConfigError", "load_eval_config"]


class EvalConfigError(ValueError):
    """An evaluation config (file, flag or override) names an unknown field or holds a wrong value."""


@dataclass
class EvalConfig:
    """The settings of one evaluation (`treecot eval`, `treecot.evaluation.evaluate`).

    Args:
        model (`str`):
            "smollm2-135m-instruct" (embedded), "tiny", a local model directory or a Hub id.
        tasks (`str` or `list[str]`, *optional*, defaults to `"gsm8k"`):
            Names (or one comma-separated string) from `EVAL_TASKS`, each read before the model loads.
        limit (`int`, *optional*):
            Evaluate the first `limit` problems of each task (None: all).
        samples (`int`, *optional*, defaults to `1`):
            N samples per problem: Test@N, pass@k for k = 1, 2, 4, …, N (accuracy is then pass@1).
        seed (`int`, *optional*, defaults to `0`):
            Seeds torch (sampling) and the MCTS search; with the same seed a run is reproducible.
        output_dir (`str`, *optional*):
            Default ``outputs/eval/<model-slug>/``; checked first (`OutputDirNotWritable`), else rescued.
        mcts (`bool`, *optional*, defaults to `False`):
            Decode by tree search with the token-confidence value; the N best-valued answers are the samples.
        mcts_config (`MCTSDecodeConfig`, *optional*):
            The tree search's budget (read from a file or the command line, it is seeded with `seed` unless it
            sets its own).
        max_new_tokens (`int`, *optional*, defaults to `1024`):
            Generation cap per response (per node under MCTS: `mcts_config`).
        batch_size (`int`, *optional*, defaults to `16`):
            Prompts per `generate` call.
        temperature (`float`, *optional*):
            Sampling temperature; default 0 (greedy) for one sample, 0.7 for several.
        top_p (`float`, *optional*):
            Nucleus sampling; default 1 for one sample, 0.9 for several.
        dtype (`str`, *optional*, defaults to `"float32"`):
            Weights dtype ("float32", "bfloat16", "auto").
        device (`str`, *optional*, defaults to `"auto"`):
            "auto" (a CUDA GPU when one is visible, else the CPU), "cpu", "cuda" or "cuda:N".
        provenance (`dict[str, str]`, *optional*):
            ``dataset_repo``, ``dataset_revision``, ``recipe_hash`` (default: the model's provenance file).
        system_prompt (`str`, *optional*):
            Every task's system prompt: "task" (each task's own), "contract" or text; see `resolve_prompts`.
        prompt_from (`str`, *optional*):
            Read the system prompts from this treecot dataset (its rows' prompt contract) instead.
        prompt_revision (`str`, *optional*):
            The revision of `prompt_from`.
        split (`str`, *optional*):
            Evaluate this split instead of each task's test split (a validation slice of ``train``).
        offset (`int`, *optional*, defaults to `0`):
            Evaluate problems `offset`… of the split; the summary records split and offset.
        backend (`str`, *optional*, defaults to `"transformers"`):
            Who decodes: "transformers" (in-process), "openai" (a server) or "vllm" (vLLM's engine).
        backend_settings (`dict[str, Any]`, *optional*):
            The `treecot.recipe.ModelSpec` fields of a backend (``base_url``, ``served_model``, …).
    """

    model: str = ""
    tasks: str | list[str] = "gsm8k"
    limit: int | None = None
    samples: int = 1
    seed: int = 0
    output_dir: str | None = None
    mcts: bool = False
    mcts_config: MCTSDecodeConfig | None = None
    max_new_tokens: int = 1024
    batch_size: int = 16
    temperature: float | None = None
    top_p: float | None = None
    dtype: str | None = "float32"
    device: str = "auto"
    provenance: dict[str, str | None] | None = None
    system_prompt: str | None = None
    prompt_from: str | None = None
    prompt_revision: str | None = None
    split: str | None = None
    offset: int = 0
    backend: str = "transformers"
    backend_settings: dict[str, Any] | None = None


def load_eval_config(
    source: str | os.PathLike | Mapping[str, Any] | None = None, overrides: Mapping[str, Any] | None = None
) -> EvalConfig:
    """Read an evaluation config from a YAML file or a mapping, with `overrides` laid over it.

    Args:
        source (`str`, `os.PathLike` or `Mapping`, *optional*):
            The YAML file (bounded: `treecot.configs.load_yaml`) or the data; None starts from the defaults.
        overrides (`Mapping[str, Any]`, *optional*):
            Nested fields laid over the file (the command line's flags and `--dotted.field value` overrides).

    Returns:
        `EvalConfig`: the checked config; `model` must be set (here or in the file), and a `mcts_config`
        without its own `seed` takes the config's.

    Raises:
        EvalConfigError: the file does not exist or is not a mapping, or a field is unknown or ill-typed (the
            message names the file and the field's dotted path).
    """
    config, where = read_config({} if source is None else source, EvalConfig, "eval config", overrides,
                                error=EvalConfigError)  # fmt: skip
    if not config.model:
        raise EvalConfigError(f"{where}: model: required (a model name, directory or Hub id)")
    if config.mcts_config is not None and "seed" not in fields_set(config.mcts_config):
        config.mcts_config.seed = config.seed
    return config
