"""A bounded radix tree of key/value caches for token prefixes (prefix KV reuse for tree search).

Tree search continues the same path over and over: the children of a node share their parent's prompt,
and every sample of a node shares the node's prompt. `PrefixCache` stores the attention keys and values
of token sequences the model has already processed, keyed by their token ids, so that a new prompt only
has to be run through the model from the point where it leaves everything cached.

The store is a radix tree (as in SGLang's RadixAttention): every tree node holds the KV of one *segment*
of tokens, and a sequence's KV is the concatenation of the segments on its root-to-node path, so a
prefix shared by many sequences is stored once. Matching is at token granularity: a prompt that shares
the first 500 tokens with a cached sequence reuses those 500 tokens even if it then diverges.

Memory is bounded by a token budget: :meth:`PrefixCache.evict` drops least-recently-used leaves until at
most ``budget_tokens`` tokens are stored (a leaf's parent becomes a leaf in turn and can be dropped
later). :meth:`PrefixCache.release` drops everything that extends a given prefix (a finished subtree or
problem), :meth:`PrefixCache.clear` drops everything.

Per-layer KV tensors are stored as ``(keys, values)`` with shape ``[num_kv_heads, seq_len, head_dim]``.
Every stored tensor owns its memory (slices of batch tensors are cloned on insertion), so
:attr:`PrefixCache.n_bytes` is the real memory held.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

#: Per-layer ``(keys, values)``, each ``[num_kv_heads, seq_len, head_dim]``.
LayerKV = tuple[torch.Tensor, torch.Tensor]


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token-id sequences."""
    ta, tb = tuple(a), tuple(b)
    n = min(len(ta), len(tb))
    if ta[:n] == tb[:n]:
        return n
    # Binary search on prefix equality: slicing and comparing tuples runs in C, so this costs
    # O(n log n) in C rather than an O(n) Python loop.
    lo, hi = 0, n  # invariant: ta[:lo] == tb[:lo] and ta[:hi] != tb[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ta[:mid] == tb[:mid]:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(eq=False)
class _Node:
    ids: tuple[int, ...]
    kv: list[LayerKV]
    parent: _Node | None
    children: dict[int, _Node] = field(default_factory=dict)
    last_access: int = 0

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class PrefixMatch:
    """The cached part of a token sequence: `length` tokens, spread over `path` = [(node, n_used)]."""

    length: int
    path: list[tuple[_Node, int]]


class PrefixCache:
    """A radix tree of per-layer KV segments keyed by token ids, bounded by a token budget.

    Args:
        budget_tokens (`int`):
            The most tokens kept after :meth:`evict` (0 keeps nothing between calls).
    """

    def __init__(self, budget_tokens: int) -> None:
        if budget_tokens < 0:
            raise ValueError(f"budget_tokens must be >= 0, got {budget_tokens}")
        self.budget_tokens = int(budget_tokens)
        self._root = _Node(ids=(), kv=[], parent=None)
        self._clock = itertools.count(1)
        self.n_tokens = 0
        self.n_bytes = 0
        self.evicted_tokens = 0

    # ------------------------------------------------------------------ lookup
    def match(self, ids: Sequence[int], touch: bool = True) -> PrefixMatch:
        """The longest cached prefix of `ids` (marks the nodes on it as recently used if `touch`)."""
        ids = tuple(ids)
        node, pos, path = self._root, 0, []
        stamp = next(self._clock) if touch else 0
        while pos < len(ids):
            child = node.children.get(ids[pos])
            if child is None:
                break
            used = common_prefix_length(child.ids, ids[pos : pos + len(child)])
            path.append((child, used))
            if touch:
                child.last_access = stamp
            pos += used
            if used < len(child):
                break
            node = child
        return PrefixMatch(length=pos, path=path)

    def match_length(self, ids: Sequence[int]) -> int:
        """How many leading tokens of `ids` are cached (does not count as a use for LRU)."""
        return self.match(ids, touch=False).length

    def gather(self, ids: Sequence[int], length: int) -> list[LayerKV]:
        """The KV of the first `length` tokens of `ids`, concatenated per layer (`[heads, length, dim]`).

        Raises:
            KeyError: fewer than `length` leading tokens of `ids` are cached.
        """
        m = self.match(ids[:length])
        if m.length < length:
            raise KeyError(f"only {m.length} of the requested {length} prefix tokens are cached")
        if length == 0 or not m.path:
            raise KeyError("gather() needs at least one cached token")
        n_layers = len(m.path[0][0].kv)
        out: list[LayerKV] = []
        for layer in range(n_layers):
            ks = [node.kv[layer][0][:, :used] for node, used in m.path]
            vs = [node.kv[layer][1][:, :used] for node, used in m.path]
            out.append((torch.cat(ks, dim=1), torch.cat(vs, dim=1)) if len(ks) > 1 else (ks[0], vs[0]))
        return out

    # ------------------------------------------------------------------ insertion
    def insert(self, ids: Sequence[int], kv: list[LayerKV], kv_start: int) -> int:
        """Store the KV of `ids`; `kv` covers `ids[kv_start:]` (per layer `[heads, len(ids)-kv_start, dim]`).

        The tokens `ids[:kv_start]` must already be cached (their KV is what `kv` was computed on top
        of). Tokens already cached are not stored twice. Returns the number of tokens newly stored.

        Raises:
            ValueError: `ids[:kv_start]` is not cached, or `kv` does not cover `ids[kv_start:]`.
        """
        ids = tuple(ids)
        if kv and kv[0][0].shape[1] != len(ids) - kv_start:
            raise ValueError(
                f"kv covers {kv[0][0].shape[1]} tokens but ids[{kv_start}:] has {len(ids) - kv_start}"
            )
        m = self.match(ids)
        if m.length < kv_start:
            raise ValueError(
                f"cannot insert: only {m.length} of the {kv_start} prefix tokens the KV was computed on "
                "are cached (they were evicted or never stored)"
            )
        if m.length == len(ids):
            return 0
        parent = self._root
        if m.path:
            last, used = m.path[-1]
            parent = self._split(last, used) if used < len(last) else last
        offset = m.length - kv_start
        seg = [(k[:, offset:].clone(), v[:, offset:].clone()) for k, v in kv]
        node = _Node(ids=ids[m.length :], kv=seg, parent=parent, last_access=next(self._clock))
        parent.children[node.ids[0]] = node
        self.n_tokens += len(node)
        self.n_bytes += _kv_bytes(seg)
        return len(node)

    def _split(self, node: _Node, at: int) -> _Node:
        """Split `node` after `at` tokens; returns the new head node (the old node becomes its child)."""
        head_kv = [(k[:, :at].clone(), v[:, :at].clone()) for k, v in node.kv]
        tail_kv = [(k[:, at:].clone(), v[:, at:].clone()) for k, v in node.kv]
        head = _Node(ids=node.ids[:at], kv=head_kv, parent=node.parent, last_access=node.last_access)
        assert node.parent is not None
        node.parent.children[head.ids[0]] = head
        node.ids, node.kv, node.parent = node.ids[at:], tail_kv, head
        head.children[node.ids[0]] = node
        return head

    # ------------------------------------------------------------------ eviction
    def evict(self, budget_tokens: int | None = None) -> int:
        """Drop least-recently-used leaves until at most `budget_tokens` (default: the budget) remain.

        Returns the number of tokens dropped.
        """
        budget = self.budget_tokens if budget_tokens is None else budget_tokens
        if self.n_tokens <= budget:
            return 0
        heap = [(n.last_access, id(n), n) for n in self._iter_nodes() if not n.children]
        heapq.heapify(heap)
        freed = 0
        while self.n_tokens > budget and heap:
            _, _, node = heapq.heappop(heap)
            parent = node.parent
            freed += self._remove_subtree(node)
            if parent is not None and parent is not self._root and not parent.children:
                heapq.heappush(heap, (parent.last_access, id(parent), parent))
        return freed

    def release(self, ids: Sequence[int]) -> int:
        """Drop the KV of every cached sequence that starts with `ids` (a finished subtree or problem).

        The tokens of `ids` are dropped too, except where other cached sequences not starting with
        `ids` still need them. Nothing happens when `ids` is not entirely cached. Returns the number
        of tokens dropped.
        """
        ids = tuple(ids)
        if not ids:
            return 0
        m = self.match(ids, touch=False)
        if m.length < len(ids):
            return 0
        return self._remove_subtree(m.path[-1][0])

    def clear(self) -> int:
        """Drop everything; returns the number of tokens dropped."""
        freed = self.n_tokens
        self._root.children.clear()
        self.evicted_tokens += freed
        self.n_tokens = self.n_bytes = 0
        return freed

    def _remove_subtree(self, node: _Node) -> int:
        assert node.parent is not None
        del node.parent.children[node.ids[0]]
        freed = 0
        for n in self._iter_nodes(node):
            freed += len(n)
            self.n_bytes -= _kv_bytes(n.kv)
            n.kv = []
        self.n_tokens -= freed
        self.evicted_tokens += freed
        return freed

    def _iter_nodes(self, start: _Node | None = None):
        stack = [start] if start is not None else list(self._root.children.values())
        while stack:
            n = stack.pop()
            yield n
            stack.extend(n.children.values())

    # ------------------------------------------------------------------ introspection
    @property
    def n_nodes(self) -> int:
        return sum(1 for _ in self._iter_nodes())

    def sequences(self) -> list[tuple[int, ...]]:
        """The token ids of every cached leaf path (for debugging and tests)."""
        out = []
        for n in self._iter_nodes():
            if not n.children:
                parts, cur = [], n
                while cur is not None and cur is not self._root:
                    parts.append(cur.ids)
                    cur = cur.parent
                out.append(tuple(itertools.chain.from_iterable(reversed(parts))))
        return out

    def __repr__(self) -> str:
        return (
            f"PrefixCache(tokens={self.n_tokens}, budget={self.budget_tokens}, nodes={self.n_nodes}, "
            f"bytes={self.n_bytes})"
        )


def _kv_bytes(kv: list[LayerKV]) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)
