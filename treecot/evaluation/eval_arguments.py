"""The command-line arguments of `treecot eval` (`add_eval_arguments`), shared by `treecot.cli` and
``python -m treecot.evaluation.runner``; `treecot.evaluation.runner.eval_from_args` runs them."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from treecot.evaluation.config import EvalConfig
from treecot.evaluation.decode import MCTSDecodeConfig
from treecot.evaluation.registry import EVAL_TASKS

__all__ = ["BACKEND_OPTIONS", "add_eval_arguments", "eval_settings"]


def _default(name: str, config: type = EvalConfig) -> str:
    """ " (default: X)" for an option's help: the default of the config field it sets (shown, not set: an
    option left out leaves the field to the config file, else to the dataclass)."""
    for f in dataclasses.fields(config):
        if f.name == name:
            value = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            return f" (default: {value})"
    raise KeyError(name)


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `treecot eval`'s arguments to `parser` (for `treecot.cli`).

    Args:
        parser (`argparse.ArgumentParser`):
            The parser (or subcommand parser) to add the model, task, sampling, MCTS, provenance, prompt and
            backend arguments to.

    Returns:
        `argparse.ArgumentParser`: `parser`.
    """
    parser.argument_default = argparse.SUPPRESS  # unset flags leave the config's value (EvalConfig's default)
    parser.add_argument(
        "model",
        nargs="?",
        help="smollm2-135m-instruct, tiny, a model directory or a Hub id (or the config's)",
    )
    parser.add_argument(
        "--config",
        metavar="EVAL_YAML",
        help="an evaluation config (treecot.evaluation.config.EvalConfig's fields); flags override it",
    )
    parser.add_argument(
        "--tasks",
        help=f"comma-separated: {','.join(EVAL_TASKS)} (planbench: PlanBench's one-shot prompt, "
        "planbench_zeroshot: its zero-shot prompt; both read the PlanBench checkout named by "
        "$TREECOT_PLANBENCH, else the Hub)" + _default("tasks"),
    )
    parser.add_argument("--limit", type=int, help="first N test problems of each task")
    parser.add_argument(
        "--split",
        help="evaluate this split instead of the test split (e.g. a validation slice "
        "of train that the search did not use: --split train --offset N)",
    )
    parser.add_argument(
        "--offset", type=int, help="skip the first N problems of the split" + _default("offset")
    )
    parser.add_argument(
        "--samples", type=int, help="N samples per problem: Test@N / pass@k" + _default("samples")
    )
    parser.add_argument("--seed", type=int, help=_default("seed"))
    parser.add_argument("--output-dir", help="default outputs/eval/<model-slug>/")
    parser.add_argument("--max-new-tokens", type=int, help=_default("max_new_tokens"))
    parser.add_argument("--batch-size", type=int, help=_default("batch_size"))
    parser.add_argument("--temperature", type=float, help="default 0 (greedy), 0.7 with --samples > 1")
    parser.add_argument("--top-p", type=float, help="default 0.9 when sampling")
    parser.add_argument("--dtype", help="float32, bfloat16 or auto" + _default("dtype"))
    parser.add_argument("--device", help="auto (GPU if visible), cpu, cuda or cuda:N" + _default("device"))
    parser.add_argument(
        "--mcts", action="store_true", help="decode by tree search with the token-confidence value"
    )
    parser.add_argument("--max-rollouts", type=int, help=_default("max_rollouts", MCTSDecodeConfig))
    parser.add_argument("--max-depth", type=int, help=_default("max_depth", MCTSDecodeConfig))
    parser.add_argument("--max-node-tokens", type=int, help=_default("max_node_tokens", MCTSDecodeConfig))
    parser.add_argument("--dataset-repo", help="training dataset of the model (for the leaderboard)")
    parser.add_argument("--dataset-revision")
    parser.add_argument("--recipe-hash")
    prompt = parser.add_mutually_exclusive_group()
    prompt.add_argument(
        "--system-prompt",
        help="system prompt of every task: 'task' (each task's own), 'contract' (a treecot dataset's default) "
        "or the text itself; default: the prompt the model was trained with (treecot_provenance.json)",
    )
    prompt.add_argument("--prompt-from", help="read the system prompts from this treecot dataset's rows")
    parser.add_argument("--prompt-revision", help="revision of --prompt-from")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    served = parser.add_argument_group(
        "backend",
        "decode with a generation backend instead of in-process (the settings a generation recipe's "
        "model takes; MODEL then names the weights: tokenizer, chat template, summary)",
    )
    served.add_argument(
        "--backend",
        choices=("transformers", "openai", "vllm"),
        help="transformers: in-process; openai: an OpenAI-compatible server (vLLM, SGLang, llama.cpp); "
        "vllm: vLLM's offline engine (GPU)" + _default("backend"),
    )
    served.add_argument("--base-url", help="openai: the server, e.g. http://127.0.0.1:8000/v1")
    served.add_argument("--served-model", help="openai: the model name the server knows (default MODEL)")
    served.add_argument("--api-key-env", help="openai: environment variable holding the API key")
    served.add_argument("--concurrency", type=int, help="openai: requests in flight (default 8)")
    served.add_argument("--timeout", type=float, help="openai: seconds per request (default 600)")
    served.add_argument("--tensor-parallel-size", type=int, help="vllm: GPUs per engine")
    served.add_argument("--gpu-memory-utilization", type=float, help="vllm: share of GPU memory")
    served.add_argument("--max-model-len", type=int, help="vllm: context length")
    return parser


#: The `add_eval_arguments` options that set a field of a section of `EvalConfig` (section -> options).
SECTION_OPTIONS = {
    "mcts_config": ("max_rollouts", "max_depth", "max_node_tokens"),
    "provenance": ("dataset_repo", "dataset_revision", "recipe_hash"),
}


def eval_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The `EvalConfig` fields the command line sets, nested as in the config file.

    Args:
        args (`argparse.Namespace`):
            Arguments parsed by a parser of `add_eval_arguments` (unset flags are absent).

    Returns:
        `dict[str, Any]`: e.g. ``{"model": "tiny", "limit": 4, "mcts_config": {"max_rollouts": 8}}``.
    """
    sections = {**SECTION_OPTIONS, "backend_settings": BACKEND_OPTIONS}
    options = {f.name for f in dataclasses.fields(EvalConfig)} - set(sections)
    given = {k: v for k, v in vars(args).items() if k in options and v is not None}
    for section, names in sections.items():
        part = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
        if part:
            given[section] = part
    return given


#: The `add_eval_arguments` options that are backend settings (`run_eval`'s ``backend_settings``).
BACKEND_OPTIONS = ("base_url", "served_model", "api_key_env", "concurrency", "timeout", "tensor_parallel_size",
                   "gpu_memory_utilization", "max_model_len")  # fmt: skip
