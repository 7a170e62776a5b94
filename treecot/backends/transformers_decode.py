"""Decode loop of the transformers backend: every sample of every request of a call decoded together,
``max_batch_size`` rows at a time, with continuous batching.

The batch is left-padded (attention mask and per-row position ids) and its KV cache written into
preallocated buffers. A queued row takes a finished row's slot in place: only its own prompt KV is copied
in, right-aligned to the batch's current column, so ragged finishes (stop strings) cost no batch-wide
copy. The batch is rebuilt only to widen it for a longer prompt, or to drop idle slots and dead columns.
A finished row's prompt + generated KV goes to the prefix cache (children reuse their parent's text).
:class:`DecodeMixin` holds these steps for
:class:`~treecot.backends.transformers_backend.TransformersGenerator`.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from treecot.backends.base import GenerationRequest
from treecot.backends.prefix_cache import LayerKV, PrefixCache
from treecot.backends.transformers_kv import BufferedLayer
from treecot.backends.transformers_prefill import CallPrompt
from treecot.backends.transformers_sampling import Detokenizer, find_stop, inverse_cdf_pick, sample_seed

# the backend's one logger, whichever of its modules logs
logger = logging.getLogger("treecot.backends.transformers_backend")


@dataclass(eq=False)
class DecodeRow:
    """One sample being decoded.

    Args:
        request (`int`):
            Index of its request in the call.
        index (`int`):
            Its index among the request's ``n`` samples.
        prompt (`CallPrompt`):
            Its request's prompt (its KV starts the row).
        req (`GenerationRequest`):
            Its request.
        generator (`torch.Generator` or `None`):
            Its own random stream (seeded by :func:`~treecot.backends.transformers_sampling.sample_seed`);
            None for greedy decoding.
        detok (`Detokenizer`):
            Its generated ids and text.
        max_stop_len (`int`):
            Length of the request's longest stop string.
        logprobs (`list[float]` or `None`, *optional*, defaults to `None`):
            Log-prob of each generated token, when the request asks for them.
        top_logprobs (`list[list[float]]` or `None`, *optional*, defaults to `None`):
            The ``k`` largest log-probs at each position, when the request asks for ``k > 0``.
        finish (`str` or `None`, *optional*, defaults to `None`):
            ``"stop"`` or ``"length"`` once finished.
        stop_at (`int`, *optional*, defaults to `-1`):
            Index of the stop string in the incremental text.
        start (`int`, *optional*, defaults to `0`):
            First KV column of this row in the decode batch.
        retired (`bool`, *optional*, defaults to `False`):
            Finished and its completion cached: its batch slot is free.
    """

    request: int
    index: int
    prompt: CallPrompt
    req: GenerationRequest
    generator: torch.Generator | None
    detok: Detokenizer
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


class DecodeMixin:
    """The decode loop of :class:`~treecot.backends.transformers_backend.TransformersGenerator`.

    It reads the generator's model, tokenizer, device, prefix cache, limits, seed stream and stats (the
    attributes annotated below), which the generator sets in its constructor.
    """

    model: Any
    tokenizer: Any
    device: torch.device
    cache: PrefixCache
    cache_completions: bool
    max_batch_size: int
    pad_token_id: int
    eos_token_ids: frozenset[int]
    stats: dict[str, Any]
    _rng: random.Random

    def _decode(
        self, requests: list[GenerationRequest], per_request: list[CallPrompt]
    ) -> list[list[DecodeRow]]:
        """Sample every row; returns rows per request."""
        rows: list[list[DecodeRow]] = []
        first: list[DecodeRow] = []
        for i, (req, p) in enumerate(zip(requests, per_request)):
            seed = req.seed if req.seed is not None else self._rng.getrandbits(63)
            mine = []
            for j in range(req.n):
                gen = None
                if req.temperature > 0:
                    gen = torch.Generator().manual_seed(sample_seed(int(seed), j))
                row = DecodeRow(
                    request=i,
                    index=j,
                    prompt=p,
                    req=req,
                    generator=gen,
                    detok=Detokenizer(self.tokenizer),
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
        batch: list[DecodeRow] = []
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

    def _admit(self, batch: list[DecodeRow], cache, mask, queue: deque):
        """Add queued rows to the decode batch (their KV is their prompt's, left-padded)."""
        new_rows: list[DecodeRow] = []
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
            new_cache.layers.append(BufferedLayer(keys, values, width))
        new_mask = torch.zeros((n_all, width), dtype=torch.long)
        if n_old:
            new_mask[:n_old, width - old_len :] = mask[:, old_width - old_len :]
        for r in batch:
            r.start = width - (old_width - r.start)
        for b, r in enumerate(new_rows, start=n_old):
            r.start = width - len(r.prompt.ids)
            new_mask[b, r.start :] = 1
        return new_cache, new_mask, batch + new_rows

    def _cache_completion(self, b: int, r: DecodeRow, cache) -> None:
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

    def _refill(self, batch: list[DecodeRow], cache, mask, queue: deque, free: list[int]) -> list[int]:
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
    def _should_compact(batch: list[DecodeRow], mask, free: list[int], queued: bool) -> bool:
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

    def _retire(self, batch: list[DecodeRow], cache, mask):
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
            new_cache.layers.append(BufferedLayer(keys, values, length))
        cache = new_cache
        mask = mask[idx, width - length :].contiguous()
        for r in kept:
            r.start -= width - length
        return cache, mask, kept

    @staticmethod
    def _headroom(rows: list[DecodeRow]) -> int:
        """Columns to preallocate for a decode batch: its longest remaining generation, at most 256."""
        return max(1, min(256, max((r.req.max_tokens - len(r.ids) + 1 for r in rows), default=1)))

    # ------------------------------------------------------------------ sampling
    def _sample_step(self, rows: list[DecodeRow], logits: torch.Tensor) -> None:
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
            tokens[idx] = inverse_cdf_pick(probs, top_p, u)
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
                at = find_stop(r.detok.text, r.req.stop, start)
                if at >= 0:
                    r.finish, r.stop_at = "stop", at
                    continue
            if len(r.ids) >= r.req.max_tokens:
                r.finish = "length"
