"""The command-line arguments of `treecot eval` (`add_eval_arguments`), shared by `treecot.cli` and
``python -m treecot.evaluation.runner``; `treecot.evaluation.runner.eval_from_args` runs them."""

from __future__ import annotations

import argparse

from treecot.evaluation import EVAL_TASKS
from treecot.evaluation.decode import MCTSDecodeConfig

__all__ = ["BACKEND_OPTIONS", "add_eval_arguments"]


def add_eval_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add `treecot eval`'s arguments to `parser` (for `treecot.cli`).

    Args:
        parser (`argparse.ArgumentParser`):
            The parser (or subcommand parser) to add the model, task, sampling, MCTS, provenance, prompt and
            backend arguments to.

    Returns:
        `argparse.ArgumentParser`: `parser`.
    """
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


#: The `add_eval_arguments` options that are backend settings (`run_eval`'s ``backend_settings``).
BACKEND_OPTIONS = ("base_url", "served_model", "api_key_env", "concurrency", "timeout", "tensor_parallel_size",
                   "gpu_memory_utilization", "max_model_len")  # fmt: skip
