"""In-process generation with `transformers`: batched tree expansion with prefix KV reuse.

    >>> from treecot.backends.base import GenerationRequest
    >>> from treecot.backends.transformers_backend import TransformersGenerator
    >>> gen = TransformersGenerator.from_pretrained("smollm2-135m-instruct")       # bf16 on CPU
    >>> prompt = gen.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    >>> [res] = gen.generate([GenerationRequest(prompt + "<thinking>", n=4, stop=["</thinking>"], seed=1)])
    >>> res.completions[0].text, res.prompt_tokens, res.cached_tokens, gen.stats["generated_tokens"]

How one :meth:`TransformersGenerator.generate` call is served:

1. **Prefill with prefix reuse.** Every prompt is tokenized (``add_special_tokens=False``: prompts already
   carry the chat template) and looked up in a :class:`~treecot.backends.prefix_cache.PrefixCache`, a radix
   tree of KV caches keyed by token ids. Only the part of a prompt after its longest cached prefix is run
   through the model. Prompts of the same call that share an uncached part of at least
   ``share_min_tokens`` tokens (the samples of one child type, the child types of one node) compute it
   once: the call proceeds in levels, each a batched forward over the distinct segments whose past is
   ready (past KV left-padded, new tokens right-padded, explicit position ids). Long segments are
   chunked to ``max_prefill_tokens``. The last prompt token is always recomputed (its logits start
   decoding), so a fully cached prompt costs one token.
2. **One decode loop for every sample of every request.** Each request contributes ``n`` rows that start
   from its prompt's KV; all rows are decoded together, ``max_batch_size`` at a time, in a left-padded
   batch (attention mask and per-row position ids). A queued row takes a finished row's slot in place
   (continuous batching): only its own prompt KV is copied in, right-aligned to the batch's current
   column, so ragged finishes (stop strings) cost no batch-wide copy. The batch is rebuilt only to widen
   it for a longer prompt, or to drop idle slots and dead columns. ``n`` and the number of requests are
   not limited by the batch.
3. **Completions are cached too** (``cache_completions=True``): the KV of a prompt plus its generated
   tokens is stored, so expanding a child node — whose prompt is the parent's prompt plus the parent's
   text — usually costs only the few tokens the search appends (closing tag, next tag, prefill).
4. **Memory.** Between calls the cache holds at most ``cache_budget_tokens`` tokens (least recently used
   leaves are evicted at the end of each call; within a call it may hold the call's own prompts and
   completions on top). :meth:`TransformersGenerator.release` drops a finished subtree or problem,
   :meth:`TransformersGenerator.clear_cache` everything. ``stats["cache_bytes"]`` is the memory held
   (per token: ``2 x layers x kv_heads x head_dim x bytes``; SmolLM2-135M: 23 KB in bf16).

Guarantees:

* **Greedy** (``temperature=0``) output equals ``model.generate(do_sample=False)`` on the full prompt up
  to floating-point reassociation (batched and split prefill compute the same values in a different
  order; in float32 the tests find the tokens identical, in bf16 rare near-ties can differ).
* **Seeds.** Sample ``j`` of a request with ``seed=s`` draws its randomness from its own
  ``torch.Generator`` seeded from ``(s, j)``, one uniform number per token (inverse-CDF sampling), so it
  does not depend on the other requests of the call, on the batch it lands in, or on ``n`` (sample 0 of
  ``n=2`` is sample 0 of ``n=8``) — up to float differences of the logits between batch shapes, which
  change a token only when the uniform falls on a CDF boundary. Without a seed, a request seed is drawn
  from the generator's own stream (``seed`` argument), so a fresh generator replays the same calls.
* **Stop strings** are searched in the decoded text incrementally, on the tail that the new token can
  complete, so a stop string split over several tokens is found; the text is cut before the earliest
  stop string and ``finish_reason`` is ``"stop"``. EOS (the tokenizer's, ``<|im_end|>`` and the
  generation config's) stops with ``"stop"`` and is not part of the text; ``max_tokens`` gives
  ``"length"``. ``n_tokens`` counts every generated token including the EOS or the token that completed
  the stop string (as vLLM does), and ``token_logprobs`` has one entry per counted token.
* **Log-probs** are under the unmodified model distribution (temperature 1, no top-p), as in vLLM:
  ``token_logprobs[i]`` is ``log_softmax(logits)[token]``; with ``logprobs=k > 0``, ``top_logprobs[i]``
  holds the ``k`` largest log-probs at that position, best first.

``result.extra["token_ids"]`` holds each completion's generated token ids (EOS and stop tokens included).

Speed on the 2-core CPU of DESIGN §6 (SmolLM2-135M, 16 rows, 32 new tokens, sampling): bf16 weights
~190-210 generated tokens/s, float32 ~120-140, float32 under bf16 autocast ~80-95, plain
``model.generate`` in bf16 ~130 (the decode loop writes the KV cache into preallocated buffers instead
of concatenating at every step). A generator is not thread-safe: serve it from one thread.

Where the steps live: :mod:`~treecot.backends.transformers_prefill` (1),
:mod:`~treecot.backends.transformers_decode` (2 and 3: the continuous-batching decode loop),
:mod:`~treecot.backends.transformers_sampling` (seeds, top-p sampling, detokenization, stop strings),
:mod:`~treecot.backends.transformers_kv` (the preallocated cache layer, the full-attention check); this
module holds the generator, its validation and its results.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

from treecot.backends.base import Completion, GenerationRequest, GenerationResult
from treecot.backends.prefix_cache import PrefixCache
from treecot.backends.transformers_decode import DecodeMixin, DecodeRow
from treecot.backends.transformers_kv import check_full_attention
from treecot.backends.transformers_prefill import CallPrompt, PrefillMixin
from treecot.backends.transformers_sampling import find_stop

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}


class TransformersGenerator(PrefillMixin, DecodeMixin):
    """In-process, batched generation with prefix KV reuse; implements :class:`~treecot.backends.base.Generator`.

    The prefill steps come from :class:`~treecot.backends.transformers_prefill.PrefillMixin`, the decode
    loop from :class:`~treecot.backends.transformers_decode.DecodeMixin`.

    Args:
        model (`PreTrainedModel`):
            A causal LM (full attention; sliding-window and recurrent layers are not supported). It is put
            in eval mode and, with ``dtype`` set, cast in place.
        tokenizer (`PreTrainedTokenizerBase`):
            Its tokenizer (the chat template is used by :meth:`apply_chat_template`).
        dtype (`str`, `torch.dtype` or `None`, *optional*, defaults to `"bfloat16"`):
            "bfloat16" (weights and KV cache in bf16, the fastest on CPU here), "float32", "float16", or
            None to keep the model's dtype.
        autocast (`bool`, *optional*, defaults to `False`):
            Run the forward under ``torch.autocast(device, dtype=torch.bfloat16)`` instead (keep
            ``dtype="float32"`` weights; slower on CPU in our measurements, kept for GPUs without bf16
            weights).
        max_batch_size (`int`, *optional*, defaults to `16`):
            Rows decoded together (and prefill segments run together).
        cache_budget_tokens (`int`, *optional*, defaults to `32768`):
            Prefix-cache capacity in tokens, enforced at the end of every call.
        cache_completions (`bool`, *optional*, defaults to `True`):
            Also cache the KV of generated tokens (children reuse their parent's text).
        max_prefill_tokens (`int`, *optional*, defaults to `2048`):
            Cap on new tokens x rows in one prefill forward (long prompts are chunked).
        share_min_tokens (`int`, *optional*, defaults to `16`):
            Prompts of one call sharing at least this many uncached tokens compute them once.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the stream that seeds requests without their own seed.
        num_threads (`int` or `None`, *optional*, defaults to `None`):
            If set, ``torch.set_num_threads(num_threads)`` (process-wide).
        model_id (`str` or `None`, *optional*, defaults to `None`):
            Recorded in trees; default the model's ``name_or_path``.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        dtype: str | torch.dtype | None = "bfloat16",
        autocast: bool = False,
        max_batch_size: int = 16,
        cache_budget_tokens: int = 32768,
        cache_completions: bool = True,
        max_prefill_tokens: int = 2048,
        share_min_tokens: int = 16,
        seed: int = 0,
        num_threads: int | None = None,
        model_id: str | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_prefill_tokens < 1:
            raise ValueError(f"max_prefill_tokens must be >= 1, got {max_prefill_tokens}")
        if share_min_tokens < 1:
            raise ValueError(f"share_min_tokens must be >= 1, got {share_min_tokens}")
        if getattr(model.config, "is_encoder_decoder", False):
            raise ValueError(f"{type(model).__name__} is an encoder-decoder model; a causal LM is needed")
        check_full_attention(model)
        if dtype is not None:
            if isinstance(dtype, str):
                if dtype not in _DTYPES:
                    raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)} or None")
                dtype = _DTYPES[dtype]
            if model.dtype != dtype:
                model = model.to(dtype)
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.autocast = bool(autocast)
        self.max_batch_size = int(max_batch_size)
        self.cache_completions = bool(cache_completions)
        self.max_prefill_tokens = int(max_prefill_tokens)
        self.share_min_tokens = int(share_min_tokens)
        self.model_id = model_id or getattr(model.config, "name_or_path", None) or type(model).__name__
        self.cache = PrefixCache(cache_budget_tokens)
        self.device = next(model.parameters()).device
        self._rng = random.Random(seed)
        self.eos_token_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.pad_token_id = int(pad if pad is not None else 0)
        self.vocab_size = int(model.get_output_embeddings().weight.shape[0])
        self.max_positions = getattr(model.config, "max_position_embeddings", None)
        self.stats: dict[str, Any] = {
            "calls": 0,
            "requests": 0,
            "samples": 0,
            "prompt_tokens": 0,
            "cached_tokens": 0,
            "generated_tokens": 0,
            "prefill_forwards": 0,
            "decode_forwards": 0,
            "slot_refills": 0,
            "batch_rebuilds": 0,
            "prefill_seconds": 0.0,
            "decode_seconds": 0.0,
            "seconds": 0.0,
            "cache_tokens": 0,
            "cache_bytes": 0,
            "evicted_tokens": 0,
        }

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        dtype: str | None = "bfloat16",
        autocast: bool = False,
        device: str | None = "auto",
        **kwargs,
    ) -> TransformersGenerator:
        """Load a model with :func:`treecot.models.load_model` ("smollm2-135m-instruct", "tiny", a local
        directory or a Hub id) on `device` ("auto": a CUDA GPU when one is visible, else the CPU) and wrap
        it; keyword arguments go to the constructor."""
        from treecot.models import load_model

        load_dtype = "float32" if autocast else dtype
        model, tokenizer = load_model(name_or_path, dtype=load_dtype, device=device)
        kwargs.setdefault("model_id", name_or_path)
        return cls(model, tokenizer, dtype=load_dtype, autocast=autocast, **kwargs)

    # ------------------------------------------------------------------ protocol
    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render chat messages with the tokenizer's chat template."""
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, prompt: str | Sequence[int]) -> list[int]:
        """Token ids of a prompt (text is tokenized without special tokens; ids are checked)."""
        if isinstance(prompt, str):
            return list(self.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        ids = [int(t) for t in prompt]
        bad = [t for t in ids if not 0 <= t < self.vocab_size]
        if bad:
            raise ValueError(f"token ids out of range [0, {self.vocab_size}): {bad[:5]}")
        return ids

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Serve all requests together; results in request order (see the module docstring)."""
        t0 = time.perf_counter()
        prompts: dict[tuple[int, ...], CallPrompt] = {}
        per_request: list[CallPrompt] = []
        for i, req in enumerate(requests):
            ids = tuple(self._validate(i, req))
            p = prompts.get(ids)
            if p is None:
                p = prompts[ids] = CallPrompt(ids=ids, owner=i)
            per_request.append(p)
        ctx = torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast else nullcontext()
        with torch.inference_mode(), ctx:
            self._prefill(list(prompts.values()))
            t1 = time.perf_counter()
            rows = self._decode(requests, per_request)
        t2 = time.perf_counter()
        results = self._results(requests, per_request, rows)
        self.cache.evict()
        st = self.stats
        st["calls"] += 1
        st["requests"] += len(requests)
        st["samples"] += sum(len(r.completions) for r in results)
        st["prompt_tokens"] += sum(r.prompt_tokens for r in results)
        st["cached_tokens"] += sum(r.cached_tokens for r in results)
        st["generated_tokens"] += sum(c.n_tokens for r in results for c in r.completions)
        st["prefill_seconds"] += t1 - t0
        st["decode_seconds"] += t2 - t1
        st["seconds"] += time.perf_counter() - t0
        self._cache_stats()
        return results

    def release(self, prefix: str | Sequence[int]) -> int:
        """Drop the cached KV of everything that starts with `prefix` (text or ids); returns tokens freed.

        Pass ids when you have them: a text prefix is tokenized on its own, and if its last token
        merges differently with what follows it in longer prompts, nothing matches exactly.
        """
        freed = self.cache.release(self.encode(prefix))
        self._cache_stats()
        return freed

    def clear_cache(self) -> int:
        """Drop every cached prefix; returns tokens freed."""
        freed = self.cache.clear()
        self._cache_stats()
        return freed

    def _cache_stats(self) -> None:
        self.stats["cache_tokens"] = self.cache.n_tokens
        self.stats["cache_bytes"] = self.cache.n_bytes
        self.stats["evicted_tokens"] = self.cache.evicted_tokens

    # ------------------------------------------------------------------ validation
    def _validate(self, i: int, req: GenerationRequest) -> list[int]:
        if not isinstance(req, GenerationRequest):
            raise TypeError(f"request {i}: expected a GenerationRequest, got {type(req).__name__}")
        if req.n < 1:
            raise ValueError(f"request {i}: n must be >= 1, got {req.n}")
        if req.max_tokens < 0:
            raise ValueError(f"request {i}: max_tokens must be >= 0, got {req.max_tokens}")
        if req.temperature < 0 or not math.isfinite(req.temperature):
            raise ValueError(f"request {i}: temperature must be a finite number >= 0, got {req.temperature}")
        if not 0 < req.top_p <= 1:
            raise ValueError(f"request {i}: top_p must be in (0, 1], got {req.top_p}")
        if req.logprobs is not None and req.logprobs < 0:
            raise ValueError(f"request {i}: logprobs must be None, 0 or a positive k, got {req.logprobs}")
        if req.logprobs and req.logprobs > self.vocab_size:
            raise ValueError(
                f"request {i}: logprobs={req.logprobs} exceeds the vocabulary ({self.vocab_size})"
            )
        if isinstance(req.stop, str) or any(not isinstance(s, str) or not s for s in req.stop):
            raise ValueError(f"request {i}: stop must be a list of non-empty strings, got {req.stop!r}")
        try:
            ids = self.encode(req.prompt)
        except ValueError as e:
            raise ValueError(f"request {i}: {e}") from None
        if not ids:
            raise ValueError(f"request {i}: the prompt is empty (it must have at least one token)")
        if self.max_positions and len(ids) + req.max_tokens > self.max_positions:
            raise ValueError(
                f"request {i}: prompt ({len(ids)} tokens) + max_tokens ({req.max_tokens}) exceeds the "
                f"model's {self.max_positions} positions"
            )
        return ids

    # ------------------------------------------------------------------ results
    def _results(
        self, requests: list[GenerationRequest], per_request: list[CallPrompt], rows: list[list[DecodeRow]]
    ) -> list[GenerationResult]:
        results = []
        for i, (req, p) in enumerate(zip(requests, per_request)):
            computed = p.computed if p.owner == i else 0
            comps, token_ids = [], []
            for r in rows[i]:
                ids = list(r.ids)
                text_ids = ids[:-1] if ids and ids[-1] in self.eos_token_ids else ids
                text = r.detok.decode(text_ids)
                if r.stop_at >= 0:
                    at = find_stop(text, req.stop)
                    text = text[:at] if at >= 0 else r.detok.text[: r.stop_at]
                comps.append(
                    Completion(
                        text=text,
                        n_tokens=len(ids),
                        finish_reason=r.finish or "length",
                        token_logprobs=r.logprobs,
                        top_logprobs=r.top_logprobs,
                    )
                )
                token_ids.append(ids)
            results.append(
                GenerationResult(
                    completions=comps,
                    prompt_tokens=computed,
                    cached_tokens=len(p.ids) - computed,
                    extra={"token_ids": token_ids, "prompt_length": len(p.ids)},
                )
            )
        return results

    def __repr__(self) -> str:
        return (
            f"TransformersGenerator(model_id={self.model_id!r}, dtype={self.model.dtype}, "
            f"max_batch_size={self.max_batch_size}, cache={self.cache!r})"
        )


def _eos_ids(model, tokenizer) -> frozenset[int]:
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>") if "<|im_end|>" in tokenizer.get_vocab() else None
    if im_end is not None:
        ids.add(int(im_end))
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(gen_eos, int):
        ids.add(gen_eos)
    elif isinstance(gen_eos, (list, tuple)):
        ids.update(int(t) for t in gen_eos)
    return frozenset(ids)
