"""Token choice and text of the transformers backend: per-sample seeds, inverse-CDF top-p sampling,
incremental detokenization and stop-string search.

Each sample draws its randomness from its own ``torch.Generator`` seeded by :func:`sample_seed`, one
uniform number per token that :func:`inverse_cdf_pick` turns into a token, so a sample does not depend
on the rows it is batched with. The decode loop (:mod:`treecot.backends.transformers_decode`) uses these.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

_MASK64 = (1 << 63) - 1

#: The nucleus is looked for among this many most likely tokens first (a full sort of the vocabulary
#: only for rows whose top tokens hold less than top_p of the mass).
_NUCLEUS_CANDIDATES = 256


def sample_seed(seed: int, index: int) -> int:
    """A well-mixed 63-bit seed for sample `index` of a request seeded with `seed` (splitmix64).

    Args:
        seed (`int`):
            The request's seed.
        index (`int`):
            The sample's index in its request.

    Returns:
        `int`: The seed of the sample's own ``torch.Generator``.
    """
    z = (seed * 0x9E3779B97F4A7C15 + (index + 1) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & ((1 << 64) - 1)
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & ((1 << 64) - 1)
    return (z ^ (z >> 31)) & _MASK64


class Detokenizer:
    """Incremental detokenization: text grows only by characters that later tokens cannot change.

    Args:
        tokenizer (`PreTrainedTokenizerBase`):
            The tokenizer whose ``decode`` turns ids into text (special tokens kept, no clean-up).
    """

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self.text = ""
        self._prefix_offset = 0
        self._read_offset = 0

    def decode(self, ids: list[int]) -> str:
        """The text of `ids`, special tokens kept and no tokenization spaces cleaned up.

        Args:
            ids (`list[int]`):
                Token ids to decode.

        Returns:
            `str`: Their text.
        """
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        """Add a token; returns the newly completed text (may be empty while a character is partial)."""
        self.ids.append(token)
        prefix = self.decode(self.ids[self._prefix_offset : self._read_offset])
        new = self.decode(self.ids[self._prefix_offset :])
        if len(new) > len(prefix) and not new.endswith("\ufffd"):
            delta = new[len(prefix) :]
            self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
            self.text += delta
            return delta
        return ""


def find_stop(text: str, stops: Sequence[str], start: int = 0) -> int:
    """Index of the earliest occurrence at or after `start` of any stop string in `text`, or -1.

    Args:
        text (`str`):
            The text to search.
        stops (`Sequence[str]`):
            The stop strings.
        start (`int`, *optional*, defaults to `0`):
            Where the search starts in `text`.

    Returns:
        `int`: The index of the earliest stop string found, or -1 when there is none.
    """
    best = -1
    for s in stops:
        i = text.find(s, start)
        if i >= 0 and (best < 0 or i < best):
            best = i
    return best


def inverse_cdf_pick(probs: torch.Tensor, top_p: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Sample one token per row of `probs` with top-p filtering, by inverting the CDF at `u` in [0, 1).

    The nucleus of a row is its smallest set of most likely tokens holding at least `top_p` of the
    mass (top_p = 1: the whole vocabulary, in vocabulary order). Each row uses only its own `u`.

    Args:
        probs (`torch.Tensor`):
            Probabilities, shape ``[rows, vocab]``.
        top_p (`torch.Tensor`):
            Each row's nucleus mass, shape ``[rows]``.
        u (`torch.Tensor`):
            Each row's uniform number in [0, 1) (float64), shape ``[rows]``.

    Returns:
        `torch.Tensor`: The chosen token id of each row (long), shape ``[rows]``.
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
