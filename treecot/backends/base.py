"""The `Generator` protocol every generation backend implements.

A backend *continues a prefix*: the prompt is the full text (chat template already applied, plus the
assistant's partial reasoning path) or its token ids. Backends that can reuse work across requests
sharing a prefix (the in-process transformers backend, vLLM, llama.cpp) do so automatically and report
how many prompt tokens were served from cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass
class GenerationRequest:
    """Continue `prompt` with `n` independent samples.

    prompt:       text (chat template already applied) or a list of token ids.
    n:            number of samples.
    max_tokens:   cap on generated tokens per sample.
    stop:         stop strings; the returned text excludes the stop string and what follows.
    temperature:  0 means greedy.
    top_p:        nucleus sampling.
    logprobs:     None = no log-probs; 0 = log-prob of each sampled token; k > 0 = also the top-k
                  alternatives' log-probs per position (Marco-o1 v1 token-confidence value).
    seed:         per-request seed (None = backend default stream).
    affinity:     requests with the same affinity (one search tree: its problem id) go to the same server
                  when a backend spreads requests over several (`treecot.backends.multi`), so that server's
                  prefix cache keeps serving the tree; other backends ignore it.
    """

    prompt: str | list[int]
    n: int = 1
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    temperature: float = 0.7
    top_p: float = 0.9
    logprobs: int | None = None
    seed: int | None = None
    affinity: str | None = None


@dataclass
class Completion:
    """One sample.

    text:           generated text (stop string removed).
    n_tokens:       number of generated tokens.
    finish_reason:  "stop" (a stop string or EOS) or "length" (hit max_tokens).
    token_logprobs: log-prob of each generated token (None unless requested).
    top_logprobs:   per position, the log-probs of the top-k alternatives (None unless requested).
    """

    text: str
    n_tokens: int
    finish_reason: str = "stop"
    token_logprobs: list[float] | None = None
    top_logprobs: list[list[float]] | None = None


@dataclass
class GenerationResult:
    """The samples for one request plus cost accounting.

    prompt_tokens:  prompt tokens the engine had to process (prefill), excluding cache hits.
    cached_tokens:  prompt tokens served from a prefix cache.
    """

    completions: list[Completion]
    prompt_tokens: int = 0
    cached_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Generator(Protocol):
    """What the search engine, distillation and evaluation need from a model."""

    #: A human-readable model id recorded in trees and cards.
    model_id: str

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        """Serve all requests (batched as the backend sees fit); results in request order."""
        ...

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Render chat messages to the prompt text this model expects."""
        ...
