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
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import deque
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from treecot.backends.base import Completion, GenerationRequest, GenerationResult
from treecot.backends.prefix_cache import LayerKV, PrefixCache, common_prefix_length

logger = logging.getLogger(__name__)

_DTYPES = {
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
    "float32": torch.float32,
    "fp32": torch.float32,
}
_MASK64 = (1 << 63) - 1


def _sample_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample `index` of a request seeded with `seed` (splitmix64)."""
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK64


class _Detokenizer:
    """Incremental detokenization: text grows only by characters that later tokens cannot change."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix_offset = 0
        self._read_offset = 0

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        """Add a token; returns the newly completed text (may be empty while a character is partial)."""
        self.ids.append(token)
        prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
        new = self._decode(self.ids[self._prefix_offset :])
        if len(new) > len(prefix) and not new.endswith("\ufffd"):
            delta = new[len(prefix) :]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
            self.text += delta
            return delta
        return ""


def _find_stop(text: str, stops: Sequence[str], start: int = 0) -> int:
    """Index of the earliest occurrence at or after `start` of any stop string in `text`, or -1."""
    best = -1
    for s in stops:
        i = text.find(s, start)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best


@dataclass(eq=False)
class _Prompt:
    """A distinct prompt of one call."""

    ids: tuple[int, ...]
    owner: int  # index of the first request with this prompt (prefill is credited to it)
    computed: int = 0  # prompt tokens run through the model for it in this call
    last_logits: torch.Tensor | None = None


@dataclass(eq=False)
class _Row:
    """One sample being decoded."""

    request: int
    index: int
    prompt: _Prompt
    req: GenerationRequest
    generator: torch.Generator | None
    detok: _Detokenizer
    max_stop_len: int
    logprobs: list[float] | None = None
    top_logprobs: list[list[float]] | None = None
    finish: str | None = None
    stop_at: int = -1  # index of the stop string in the incremental text
    start: int = 0  # first KV column of this row in the decode batch
    retired: bool = False  # finished and its completion cached: its batch slot is free

    @property
    def ids(self) -> list[int]:
        return self.detok.ids


@dataclass
class _Segment:
    """A prefill unit: run `ids[past:]` on top of the cached KV of `ids[:past]`."""

    ids: tuple[int, ...]
    past: int
    prompts: list[_Prompt] = field(default_factory=list)  # prompts that end exactly here (need logits)
    owner: _Prompt | None = None


class TransformersGenerator:
    """In-process, batched generation with prefix KV reuse; implements :class:`~treecot.backends.base.Generator`.

    Args:
        model: a causal LM (full attention; sliding-window and recurrent layers are not supported).
            It is put in eval mode and, with ``dtype`` set, cast in place.
        tokenizer: its tokenizer (the chat template is used by :meth:`apply_chat_template`).
        dtype: "bfloat16" (default: weights and KV cache in bf16, the fastest on CPU here), "float32",
            "float16", or None to keep the model's dtype.
        autocast: run the forward under ``torch.autocast(device, dtype=torch.bfloat16)`` instead (keep
            ``dtype="float32"`` weights; slower on CPU in our measurements, kept for GPUs without bf16
            weights).
        max_batch_size: rows decoded together (and prefill segments run together).
        cache_budget_tokens: prefix-cache capacity in tokens, enforced at the end of every call.
        cache_completions: also cache the KV of generated tokens (children reuse their parent's text).
        max_prefill_tokens: cap on new tokens x rows in one prefill forward (long prompts are chunked).
        share_min_tokens: prompts of one call sharing at least this many uncached tokens compute them once.
        seed: seed of the stream that seeds requests without their own seed.
        num_threads: if set, ``torch.set_num_threads(num_threads)`` (process-wide).
        model_id: recorded in trees; default the model's ``name_or_path``.
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
        _check_full_attention(model)
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
        prompts: dict[tuple[int, ...], _Prompt] = {}
        per_request: list[_Prompt] = []
        for i, req in enumerate(requests):
            ids = tuple(self._validate(i, req))
            p = prompts.get(ids)
            if p is None:
                p = prompts[ids] = _Prompt(ids=ids, owner=i)
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

    # ------------------------------------------------------------------ prefill
    def _prefill(self, prompts: list[_Prompt]) -> None:
        """Compute every prompt's KV (stored in the prefix cache) and last-position logits."""
        pending = sorted(prompts, key=lambda p: p.owner)
        while pending:
            segments: dict[tuple[int, ...], _Segment] = {}
            for p in pending:
                n = len(p.ids)
                past = min(self.cache.match_length(p.ids), n - 1)
                target = n
                for q in pending:  # branch points shared with other prompts of this call
                    if q is not p:
                        lcp = common_prefix_length(p.ids, q.ids)
                        if lcp - past >= self.share_min_tokens and lcp < target:
                            target = lcp
                target = min(target, past + self.max_prefill_tokens)
                key = p.ids[:target]
                seg = segments.get(key)
                if seg is None:
                    seg = segments[key] = _Segment(ids=key, past=min(past, target - 1), owner=p)
                if target == n:
                    seg.prompts.append(p)
            for seg in segments.values():  # the owner is credited with the tokens computed
                assert seg.owner is not None
                seg.owner.computed += len(seg.ids) - seg.past
            self._run_segments(list(segments.values()))
            done = {id(p) for seg in segments.values() for p in seg.prompts}
            pending = [p for p in pending if id(p) not in done]

    def _run_segments(self, segments: list[_Segment]) -> None:
        """Batched forwards over prefill segments, packed by length."""
        segments = sorted(segments, key=lambda s: len(s.ids) - s.past)
        batch: list[_Segment] = []
        for seg in segments:
            new = len(seg.ids) - seg.past
            if batch and (
                len(batch) >= self.max_batch_size or (len(batch) + 1) * new > self.max_prefill_tokens
            ):
                self._forward_segments(batch)
                batch = []
            batch.append(seg)
        if batch:
            self._forward_segments(batch)

    def _forward_segments(self, segs: list[_Segment]) -> None:
        bsz = len(segs)
        past_len = max(s.past for s in segs)
        new_len = max(len(s.ids) - s.past for s in segs)
        input_ids = torch.full((bsz, new_len), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((bsz, past_len + new_len), dtype=torch.long)
        positions = torch.zeros((bsz, new_len), dtype=torch.long)
        keep = torch.zeros((bsz, 1), dtype=torch.long)
        pasts: list[list[LayerKV] | None] = []
        for b, s in enumerate(segs):
            new = s.ids[s.past :]
            input_ids[b, : len(new)] = torch.tensor(new)
            mask[b, past_len - s.past : past_len + len(new)] = 1
            positions[b] = torch.arange(s.past, s.past + new_len)
            keep[b, 0] = len(new) - 1
            pasts.append(self.cache.gather(s.ids, s.past) if s.past else None)
        cache = self._batch_cache(pasts, past_len, headroom=new_len)
        out = self.model(
            input_ids=input_ids.to(self.device),
            attention_mask=mask.to(self.device),
            position_ids=positions.to(self.device),
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=keep.to(self.device),
        )
        self.stats["prefill_forwards"] += 1
        logits = out.logits[:, -1].float().cpu()
        layers = cache.layers
        for b, s in enumerate(segs):
            n_new = len(s.ids) - s.past
            kv = [
                (lay.keys[b, :, past_len : past_len + n_new], lay.values[b, :, past_len : past_len + n_new])
                for lay in layers
            ]
            self.cache.insert(s.ids, kv, kv_start=s.past)
            for p in s.prompts:
                p.last_logits = logits[b]

    def _batch_cache(self, rows: list[list[LayerKV] | None], length: int, headroom: int) -> DynamicCache:
        """A cache holding each row's KV left-padded to `length` columns, with room for `headroom` more."""
        cache = DynamicCache()
        if length == 0:
            return cache
        ref = next(r for r in rows if r is not None)
        for layer in range(len(ref)):
            k0 = ref[layer][0]
            shape = (len(rows), k0.shape[0], length + headroom, k0.shape[2])
            keys, values = k0.new_zeros(shape), k0.new_zeros(shape)
            for b, r in enumerate(rows):
                if r is not None:
                    k, v = r[layer]
                    keys[b, :, length - k.shape[1] : length] = k
                    values[b, :, length - v.shape[1] : length] = v
            cache.layers.append(_BufferedLayer(keys, values, length))
        return cache

    # ------------------------------------------------------------------ decode
    def _decode(self, requests: list[GenerationRequest], per_request: list[_Prompt]) -> list[list[_Row]]:
        """Sample every row; returns rows per request."""
        rows: list[list[_Row]] = []
        first: list[_Row] = []
        for i, (req, p) in enumerate(zip(requests, per_request)):
            seed = req.seed if req.seed is not None else self._rng.getrandbits(63)
            mine = []
            for j in range(req.n):
                gen = None
                if req.temperature > 0:
                    gen = torch.Generator().manual_seed(_sample_seed(int(seed), j))
                row = _Row(
                    request=i,
                    index=j,
                    prompt=p,
                    req=req,
                    generator=gen,
                    detok=_Detokenizer(self.tokenizer),
                    max_stop_len=max((len(s) for s in req.stop), default=0),
                    logprobs=[] if req.logprobs is not None else None,
                    top_logprobs=[] if req.logprobs else None,
                )
                if req.max_tokens == 0:
                    row.finish = "length"
                mine.append(row)
            rows.append(mine)
            first.extend(r for r in mine if r.finish is None)
        # First tokens come from the prompts' last logits.
        for start in range(0, len(first), self.max_batch_size):
            chunk = first[start : start + self.max_batch_size]
            logits = torch.stack([r.prompt.last_logits for r in chunk])
            self._sample_step(chunk, logits)
        queue = deque(r for r in first if r.finish is None)
        batch: list[_Row] = []
        cache = None
        mask = None
        while queue or batch:
            # Rows that just finished: cache their completions' KV (before their slot is reused).
            for b, r in enumerate(batch):
                if r.finish is not None and not r.retired:
                    self._cache_completion(b, r, cache)
                    r.retired = True
            free = [b for b, r in enumerate(batch) if r.retired]
            if free and queue:  # continuous batching: new rows take the finished rows' slots in place
                free = self._refill(batch, cache, mask, queue, free)
            if batch and self._should_compact(batch, mask, free, bool(queue)):
                cache, mask, batch = self._retire(batch, cache, mask)
                self.stats["batch_rebuilds"] += 1
            if queue and len(batch) < self.max_batch_size:
                cache, mask, batch = self._admit(batch, cache, mask, queue)
            if not batch:
                continue
            active = [r.finish is None for r in batch]
            tokens = torch.tensor(
                [[r.ids[-1] if a else self.pad_token_id] for r, a in zip(batch, active)], dtype=torch.long
            )
            width = mask.shape[1]
            # the fed token's position = the number of KV entries the row already has
            positions = torch.tensor([[width - r.start] for r in batch], dtype=torch.long)
            mask = torch.cat([mask, torch.ones((len(batch), 1), dtype=mask.dtype)], dim=1)
            out = self.model(
                input_ids=tokens.to(self.device),
                attention_mask=mask.to(self.device),
                position_ids=positions.to(self.device),
                past_key_values=cache,
                use_cache=True,
            )
            self.stats["decode_forwards"] += 1
            logits = out.logits[:, -1].float().cpu()
            live = [b for b, a in enumerate(active) if a]
            self._sample_step([batch[b] for b in live], logits[live] if len(live) < len(batch) else logits)
        return rows

    def _admit(self, batch: list[_Row], cache, mask, queue: deque):
        """Add queued rows to the decode batch (their KV is their prompt's, left-padded)."""
        new_rows: list[_Row] = []
        while queue and len(batch) + len(new_rows) < self.max_batch_size:
            new_rows.append(queue.popleft())
        kv_by_prompt: dict[int, list[LayerKV]] = {}
        for r in new_rows:
            if id(r.prompt) not in kv_by_prompt:
                kv_by_prompt[id(r.prompt)] = self.cache.gather(r.prompt.ids, len(r.prompt.ids))
        old_width = mask.shape[1] if mask is not None else 0
        old_len = max((old_width - r.start for r in batch), default=0)
        width = max(old_len, max(len(r.prompt.ids) for r in new_rows))
        # Build the combined cache: old rows keep their columns (shifted right if the batch widens).
        n_old, n_all = len(batch), len(batch) + len(new_rows)
        headroom = self._headroom(batch + new_rows)
        new_cache = DynamicCache()
        ref = kv_by_prompt[id(new_rows[0].prompt)]
        for layer in range(len(ref)):
            k0 = ref[layer][0]
            shape = (n_all, k0.shape[0], width + headroom, k0.shape[2])
            keys, values = k0.new_zeros(shape), k0.new_zeros(shape)
            if n_old:
                lay = cache.layers[layer]
                keys[:n_old, :, width - old_len : width] = lay.keys[:, :, old_width - old_len :]
                values[:n_old, :, width - old_len : width] = lay.values[:, :, old_width - old_len :]
            for b, r in enumerate(new_rows, start=n_old):
                k, v = kv_by_prompt[id(r.prompt)][layer]
                keys[b, :, width - k.shape[1] : width] = k
                values[b, :, width - v.shape[1] : width] = v
            new_cache.layers.append(_BufferedLayer(keys, values, width))
        new_mask = torch.zeros((n_all, width), dtype=torch.long)
        if n_old:
            new_mask[:n_old, width - old_len :] = mask[:, old_width - old_len :]
        for r in batch:
            r.start = width - (old_width - r.start)
        for b, r in enumerate(new_rows, start=n_old):
            r.start = width - len(r.prompt.ids)
            new_mask[b, r.start :] = 1
        return new_cache, new_mask, batch + new_rows

    def _cache_completion(self, b: int, r: _Row, cache) -> None:
        """Store the KV of row `b`'s prompt + generated tokens in the prefix cache (children reuse it)."""
        if not self.cache_completions:
            return
        n_prompt, n_fed = len(r.prompt.ids), len(r.ids) - 1
        if n_fed <= 0:
            return
        lo, hi = r.start + n_prompt, r.start + n_prompt + n_fed
        kv = [(lay.keys[b, :, lo:hi], lay.values[b, :, lo:hi]) for lay in cache.layers]
        ids = r.prompt.ids + tuple(r.ids[:n_fed])
        try:
            self.cache.insert(ids, kv, kv_start=n_prompt)  # copies: the slot may be reused
        except ValueError:  # the prompt is always cached during a call; be safe anyway
            logger.debug("could not cache a completion of request %d", r.request)

    def _refill(self, batch: list[_Row], cache, mask, queue: deque, free: list[int]) -> list[int]:
        """Put queued rows into finished rows' slots without rebuilding the batch; returns the slots
        still free.

        A slot's columns all advance together, so a row whose prompt (length L) fits before the current
        width W is written right-aligned at ``[W - L, W)`` and the columns before it are masked; only its
        own prompt KV is copied. A queued row whose prompt is longer than W waits for a rebuild.
        """
        width = mask.shape[1]
        still: list[int] = []
        for b in free:
            if not queue or len(queue[0].prompt.ids) > width:
                still.append(b)
                continue
            r = queue.popleft()
            n = len(r.prompt.ids)
            r.start = width - n
            for layer, (k, v) in zip(cache.layers, self.cache.gather(r.prompt.ids, n)):
                layer.keys[b, :, r.start : width] = k
                layer.values[b, :, r.start : width] = v
            mask[b] = 0
            mask[b, r.start :] = 1
            batch[b] = r
            self.stats["slot_refills"] += 1
        return still

    @staticmethod
    def _should_compact(batch: list[_Row], mask, free: list[int], queued: bool) -> bool:
        """Rebuild the batch (drop finished rows, trim dead columns) when that saves real work: every
        row finished; half the slots are idle and nothing waits for them; or more than half of the
        columns (and at least 64) lie before every live row's start."""
        live = [r for r in batch if not r.retired]
        if not live:
            return True
        if free and not queued and len(free) * 2 >= len(batch):
            return True
        if free and queued:  # free slots that no queued row fits: rebuild so _admit can widen the batch
            return True
        dead = min(r.start for r in live)
        return dead >= 64 and dead * 2 > mask.shape[1]

    def _retire(self, batch: list[_Row], cache, mask):
        """Drop finished rows from the batch (their completions are already cached) and trim columns."""
        width = mask.shape[1]
        keep = [b for b, r in enumerate(batch) if r.finish is None]
        if not keep:
            return None, None, []
        kept = [batch[b] for b in keep]
        length = max(width - r.start for r in kept)
        idx = torch.tensor(keep, dtype=torch.long)
        headroom = self._headroom(kept)
        new_cache = DynamicCache()
        for lay in cache.layers:
            keys = lay.keys.new_empty((len(keep), lay.keys.shape[1], length + headroom, lay.keys.shape[3]))
            values = torch.empty_like(keys)
            keys[:, :, :length] = lay.keys[idx, :, width - length :]
            values[:, :, :length] = lay.values[idx, :, width - length :]
            new_cache.layers.append(_BufferedLayer(keys, values, length))
        cache = new_cache
        mask = mask[idx, width - length :].contiguous()
        for r in kept:
            r.start -= width - length
        return cache, mask, kept

    @staticmethod
    def _headroom(rows: list[_Row]) -> int:
        """Columns to preallocate for a decode batch: its longest remaining generation, at most 256."""
        return max(1, min(256, max((r.req.max_tokens - len(r.ids) + 1 for r in rows), default=1)))

    # ------------------------------------------------------------------ sampling
    def _sample_step(self, rows: list[_Row], logits: torch.Tensor) -> None:
        """Pick the next token of each row from its logits `[rows, vocab]` (float32) and update it."""
        need_lp = any(r.logprobs is not None for r in rows)
        logp = torch.log_softmax(logits, dim=-1) if need_lp else None
        tokens = torch.empty(len(rows), dtype=torch.long)
        greedy = [b for b, r in enumerate(rows) if r.generator is None]
        sampled = [b for b, r in enumerate(rows) if r.generator is not None]
        if greedy:
            tokens[greedy] = logits[greedy].argmax(dim=-1)
        if sampled:
            idx = torch.tensor(sampled)
            temps = torch.tensor([rows[b].req.temperature for b in sampled], dtype=logits.dtype)
            top_p = torch.tensor([rows[b].req.top_p for b in sampled], dtype=logits.dtype)
            u = torch.stack(
                [torch.rand((), generator=rows[b].generator, dtype=torch.float64) for b in sampled]
            )
            probs = torch.softmax(logits[idx] / temps[:, None], dim=-1)
            tokens[idx] = _inverse_cdf_pick(probs, top_p, u)
        chosen_lp = logp.gather(1, tokens[:, None])[:, 0].tolist() if logp is not None else None
        tok_list = tokens.tolist()
        for b, r in enumerate(rows):
            tok = tok_list[b]
            if r.logprobs is not None:
                r.logprobs.append(chosen_lp[b])
                if r.top_logprobs is not None:
                    r.top_logprobs.append(logp[b].topk(r.req.logprobs).values.tolist())
            delta = r.detok.push(tok)
            if tok in self.eos_token_ids:
                r.finish = "stop"
                continue
            if delta and r.req.stop:
                start = max(0, len(r.detok.text) - len(delta) - r.max_stop_len + 1)
                at = _find_stop(r.detok.text, r.req.stop, start)
                if at >= 0:
                    r.finish, r.stop_at = "stop", at
                    continue
            if len(r.ids) >= r.req.max_tokens:
                r.finish = "length"

    # ------------------------------------------------------------------ results
    def _results(
        self, requests: list[GenerationRequest], per_request: list[_Prompt], rows: list[list[_Row]]
    ) -> list[GenerationResult]:
        results = []
        for i, (req, p) in enumerate(zip(requests, per_request)):
            computed = p.computed if p.owner == i else 0
            comps, token_ids = [], []
            for r in rows[i]:
                ids = list(r.ids)
                text_ids = ids[:-1] if ids and ids[-1] in self.eos_token_ids else ids
                text = r.detok._decode(text_ids)
                if r.stop_at >= 0:
                    at = _find_stop(text, req.stop)
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


class _BufferedLayer(DynamicLayer):
    """A full-attention cache layer writing into a preallocated buffer.

    `DynamicLayer.update` concatenates, copying the whole cache at every decode step; this layer writes
    the new columns in place and returns views (the buffer grows by reallocation only when full).
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        super().__init__()
        self.lazy_initialization(keys, values)
        self._kbuf, self._vbuf, self._length = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self._length + key_states.shape[-2]
        if end > self._kbuf.shape[-2]:
            grow = max(end, self._kbuf.shape[-2] + max(64, self._kbuf.shape[-2] // 2))
            shape = (*self._kbuf.shape[:2], grow, self._kbuf.shape[3])
            kbuf, vbuf = self._kbuf.new_empty(shape), self._vbuf.new_empty(shape)
            kbuf[:, :, : self._length] = self._kbuf[:, :, : self._length]
            vbuf[:, :, : self._length] = self._vbuf[:, :, : self._length]
            self._kbuf, self._vbuf = kbuf, vbuf
        self._kbuf[:, :, self._length : end] = key_states
        self._vbuf[:, :, self._length : end] = value_states
        self._length = end
        self.keys, self.values = self._kbuf[:, :, :end], self._vbuf[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self._length


#: The nucleus is looked for among this many most likely tokens first (a full sort of the vocabulary
#: only for rows whose top tokens hold less than top_p of the mass).
_NUCLEUS_CANDIDATES = 256


def _inverse_cdf_pick(probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample one token per row of `probs` with top-p filtering, by inverting the CDF at `u` in [0, 1).

    The nucleus of a row is its smallest set of most likely tokens holding at least `top_p` of the
    mass (top_p = 1: the whole vocabulary, in vocabulary order). Each row uses only its own `u`.
    """
    rows, vocab = probs.shape
    out = torch.empty(rows, dtype=torch.long)
    full = top_p >= 1
    nucleus_rows = (~full).nonzero()[:, 0].tolist()
    if bool(full.any()):
        cum = probs[full].cumsum(dim=-1)
        target = (u[full] * cum[:, -1].double()).to(cum.dtype)[:, None]
        out[full] = torch.searchsorted(cum, target, right=True).clamp_(max=vocab - 1)[:, 0]
    if nucleus_rows:
        p = probs[nucleus_rows]
        vals, order = p.topk(min(vocab, _NUCLEUS_CANDIDATES), dim=-1)
        short = (vals.sum(dim=-1) < top_p[nucleus_rows]).nonzero()[:, 0].tolist()
        if short:  # the nucleus is wider than the candidates: sort these rows' whole vocabulary
            vals = torch.nn.functional.pad(vals, (0, vocab - vals.shape[1]))
            order = torch.nn.functional.pad(order, (0, vocab - order.shape[1]))
            vals[short], order[short] = p[short].sort(dim=-1, descending=True)
        cum = vals.cumsum(dim=-1)
        vals = vals.masked_fill(cum - vals >= top_p[nucleus_rows][:, None], 0.0)
        cum = vals.cumsum(dim=-1)
        target = (u[nucleus_rows] * cum[:, -1].double()).to(cum.dtype)[:, None]
        pick = torch.searchsorted(cum, target, right=True).clamp_(max=cum.shape[1] - 1)
        out[nucleus_rows] = order.gather(1, pick)[:, 0]
    return out


def _check_full_attention(model) -> None:
    """Refuse models whose cache is not plain full attention (sliding windows, recurrent state)."""
    try:
        probe = DynamicCache(config=model.config)
    except Exception:  # configs the cache cannot read: decided at the first forward instead
        return
    odd = {type(layer).__name__ for layer in probe.layers if type(layer) is not DynamicLayer}
    if odd:
        raise NotImplementedError(
            f"{type(model).__name__} uses {', '.join(sorted(odd))} cache layers; the transformers backend's "
            "prefix cache supports full-attention models only (use the vllm or openai backend)"
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
