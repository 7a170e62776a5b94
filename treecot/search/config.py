"""Search settings of the MCTS engine: `MCTSConfig`, the upper bounds of its counts and `config_hash`.

The bounds (`MAX_ROLLOUTS`, `MAX_DEPTH`, `MAX_TOP_LOGPROBS`, `MAX_REFLECTIONS_PER_NODE`, `MAX_SEED`, and the
patterns' `MAX_NODE_TOKENS`) are far above real runs, low enough that a typo cannot ask for a search that
never ends or fills memory. They are re-exported by `treecot.search.mcts`, the name error messages give.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from treecot.search.patterns import MAX_NODE_TOKENS, Patterns

VALUE_MODES = ("verifier", "confidence")

# Upper bounds of the search settings: far above real runs (the paper: 128 rollouts, depth 16, 512-token
# nodes), low enough that a typo cannot ask for a search that never ends or fills memory.
#: max_rollouts, stop_at_correct, early_stop_rollouts and early_stop_correct at most.
MAX_ROLLOUTS = 10_000
#: max_depth at most (nodes on one root-to-answer path).
MAX_DEPTH = 128
#: top_logprobs at most (OpenAI-compatible servers allow 20).
MAX_TOP_LOGPROBS = 20
#: max_reflections_per_node at most.
MAX_REFLECTIONS_PER_NODE = 64
#: seed at most (a signed 64-bit integer, as numpy and torch need).
MAX_SEED = 2**63 - 1
_MAXIMA = {
    "max_rollouts": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "stop_at_correct": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "early_stop_rollouts": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "early_stop_correct": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "max_depth": (MAX_DEPTH, "MAX_DEPTH"),
    "max_node_tokens": (MAX_NODE_TOKENS, "MAX_NODE_TOKENS"),
    "top_logprobs": (MAX_TOP_LOGPROBS, "MAX_TOP_LOGPROBS"),
    "max_reflections_per_node": (MAX_REFLECTIONS_PER_NODE, "MAX_REFLECTIONS_PER_NODE"),
    "seed": (MAX_SEED, "MAX_SEED"),
}


@dataclass
class MCTSConfig:
    """Search settings. Defaults follow METHOD §1 (repo values) where the sources give them.

    Counts are capped (module constants `MAX_ROLLOUTS`, `MAX_DEPTH`, `MAX_NODE_TOKENS`, `MAX_TOP_LOGPROBS`,
    `MAX_REFLECTIONS_PER_NODE`, `MAX_SEED`) far above what real runs use.

    Args:
        c (`float`, *optional*, defaults to `1.414`):
            UCT exploration constant.
        max_depth (`int`, *optional*, defaults to `16`):
            Most nodes on a root-to-answer path (root excluded).
        max_node_tokens (`int`, *optional*, defaults to `512`):
            Per-node generation cap (a node type's `max_tokens` may lower it).
        temperature (`float`, *optional*, defaults to `0.7`):
            Sampling temperature of every request.
        top_p (`float`, *optional*, defaults to `0.9`):
            Nucleus sampling parameter of every request.
        stop_at_correct (`int`, *optional*, defaults to `8`):
            Stop once this many distinct correct answers exist.
        early_stop_rollouts (`int`, *optional*, defaults to `32`):
            After this many rollouts ...
        early_stop_correct (`int`, *optional*, defaults to `4`):
            ... stop if at least this many correct answers exist.
        max_rollouts (`int`, *optional*, defaults to `128`):
            Give up after this many rollouts.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the per-problem RNG (prefill choice, UCT tie-break, request seeds).
        value_mode (`str`, *optional*, defaults to `"verifier"`):
            `"verifier"` (binary reward from the task) or `"confidence"` (token confidence).
        top_logprobs (`int`, *optional*, defaults to `5`):
            Alternatives requested per token in confidence mode (Marco-o1 v1: 5).
        record_logprobs (`bool`, *optional*, defaults to `True`):
            In verifier mode, request the sampled tokens' log-probs (`mean_logprob`).
        max_reflections_per_node (`int`, *optional*, defaults to `1`):
            Reflections placed under one ancestor at most.
        seed_requests (`bool`, *optional*, defaults to `True`):
            Give every request its own seed drawn from the problem's RNG, so a backend that honours seeds
            reproduces the tree exactly.
        expand_truncated (`bool`, *optional*, defaults to `False`):
            Let a node cut at its token cap expand like a closed one (default: only to `answer`). For small
            models that rarely write closing tags, whose trees otherwise stay one node deep.
        reflection_first (`bool`, *optional*, defaults to `True`):
            The rollout after a wrong answer goes straight to the reflection it placed and expands it
            (METHOD §6); `False`: the reflection waits its turn among its parent's children under "first
            unvisited, else UCT" (the reference engine).
        stop_at_any_tag (`bool`, *optional*, defaults to `True`):
            Every request also stops at `<tag>` and `</tag>` of every node type of the patterns (after the
            node's own closing tag and its type's stop strings), so a node ends where the model starts
            another section; `False`: only those two.
    """

    # Numbers are kept as written (an int stays an int): the settings name runs (`config_hash`), and
    # recipes written when `search` was a plain mapping hashed `temperature: 1` as 1, not 1.0.
    c: int | float = 1.414
    max_depth: int = 16
    max_node_tokens: int = 512
    temperature: int | float = 0.7
    top_p: int | float = 0.9
    stop_at_correct: int = 8
    early_stop_rollouts: int = 32
    early_stop_correct: int = 4
    max_rollouts: int = 128
    seed: int = 0
    value_mode: str = "verifier"
    top_logprobs: int = 5
    record_logprobs: bool = True
    max_reflections_per_node: int = 1
    seed_requests: bool = True
    expand_truncated: bool = False
    reflection_first: bool = True
    stop_at_any_tag: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"MCTSConfig.{name} {why}, got {getattr(self, name)!r}")

        for name in ("c", "temperature", "top_p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "must be a finite number")
        if self.c < 0:
            raise bad("c", "must be >= 0")
        if self.temperature < 0:
            raise bad("temperature", "must be >= 0")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", "must be in (0, 1]")
        positive = ("max_depth", "max_node_tokens", "stop_at_correct", "max_rollouts", "top_logprobs")
        non_negative = ("early_stop_rollouts", "early_stop_correct", "max_reflections_per_node", "seed")
        for name in positive + non_negative:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(name, "must be an integer")
            if name in positive and v <= 0:
                raise bad(name, "must be > 0")
            if v < 0:
                raise bad(name, "must be >= 0")
            maximum, constant = _MAXIMA[name]
            if v > maximum:
                raise bad(name, f"must be <= {maximum:,} (treecot.search.mcts.{constant})")
        if self.value_mode not in VALUE_MODES:
            raise bad("value_mode", f"must be one of {list(VALUE_MODES)}")
        for name in (
            "record_logprobs",
            "seed_requests",
            "expand_truncated",
            "reflection_first",
            "stop_at_any_tag",
        ):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MCTSConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"MCTSConfig has no field {unknown[0]!r}; fields: {sorted(known)}")
        return cls(**data)


def config_hash(config: MCTSConfig, patterns: Patterns, generator: Mapping[str, Any] | None = None) -> str:
    """Stable short hash naming a run: search config + resolved patterns + generator description.

    Args:
        config (`MCTSConfig`):
            The search settings.
        patterns (`Patterns`):
            The resolved node types and transfer matrix.
        generator (`Mapping[str, Any]` or `None`, *optional*):
            Description of the generators (model ids, backend, sampling); `None` counts as `{}`.

    Returns:
        `str`: the first 16 hex digits of the SHA-256 of the three, as sorted JSON.
    """
    blob = json.dumps(
        {"config": config.to_dict(), "patterns": patterns.to_dict(), "generator": generator or {}},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
