"""KV-cache layers of the transformers backend: a preallocated full-attention layer, and the check that a
model's cache is plain full attention (what the prefix cache can store and splice)."""

from __future__ import annotations

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class BufferedLayer(DynamicLayer):
    """A full-attention cache layer writing into a preallocated buffer.

    `DynamicLayer.update` concatenates, copying the whole cache at every decode step; this layer writes
    the new columns in place and returns views (the buffer grows by reallocation only when full).

    Args:
        keys (`torch.Tensor`):
            The key buffer, ``[batch, kv_heads, capacity, head_dim]``; its first `length` columns hold keys.
        values (`torch.Tensor`):
            The value buffer, same shape as `keys`.
        length (`int`):
            Columns of the buffers already filled.
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


def check_full_attention(model) -> None:
    """Refuse models whose cache is not plain full attention (sliding windows, recurrent state).

    Args:
        model (`PreTrainedModel`):
            The causal LM to check (a config the cache cannot read is let through: the first forward
            decides).

    Raises:
        `NotImplementedError`: The model's cache has other layers than full attention.
    """
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
