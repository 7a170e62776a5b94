"""Prefill of the transformers backend: every prompt of a call gets its KV into the prefix cache and its
last-position logits, computing only what no cached prefix holds and each shared uncached part once.

The call proceeds in levels: each level is a batched forward over the distinct segments whose past is
ready (past KV left-padded, new tokens right-padded, explicit position ids); segments end at the branch
points the call's prompts share and are chunked to ``max_prefill_tokens``. :class:`PrefillMixin` holds
these steps for :class:`~treecot.backends.transformers_backend.TransformersGenerator`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import DynamicCache

from treecot.backends.prefix_cache import LayerKV, PrefixCache, common_prefix_length
from treecot.backends.transformers_kv import BufferedLayer


@dataclass(eq=False)
class CallPrompt:
    """A distinct prompt of one call.

    Args:
        ids (`tuple[int, ...]`):
            Its token ids.
        owner (`int`):
            Index of the first request with this prompt (prefill is credited to it).
        computed (`int`, *optional*, defaults to `0`):
            Prompt tokens run through the model for it in this call.
        last_logits (`torch.Tensor` or `None`, *optional*, defaults to `None`):
            Logits at its last position (float32, on the CPU), set by prefill; decoding starts from them.
    """

    ids: tuple[int, ...]
    owner: int  # index of the first request with this prompt (prefill is credited to it)
    computed: int = 0  # prompt tokens run through the model for it in this call
    last_logits: torch.Tensor | None = None


@dataclass
class _Segment:
    """A prefill unit: run `ids[past:]` on top of the cached KV of `ids[:past]`."""

    ids: tuple[int, ...]
    past: int
    prompts: list[CallPrompt] = field(default_factory=list)  # prompts that end exactly here (need logits)
    owner: CallPrompt | None = None


class PrefillMixin:
    """The prefill steps of :class:`~treecot.backends.transformers_backend.TransformersGenerator`.

    It reads the generator's model, device, prefix cache, limits and stats (the attributes annotated
    below), which the generator sets in its constructor.
    """

    model: Any
    device: torch.device
    cache: PrefixCache
    max_batch_size: int
    max_prefill_tokens: int
    share_min_tokens: int
    pad_token_id: int
    stats: dict[str, Any]

    def _prefill(self, prompts: list[CallPrompt]) -> None:
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
            cache.layers.append(BufferedLayer(keys, values, length))
        return cache
