"""Generation backends behind one `Generator` protocol (see `treecot.backends.base`).

* `transformers` (default): in-process, batched, with KV-cache reuse of shared prefixes.
* `openai`: any OpenAI-compatible `/v1/completions` server (vLLM, SGLang, llama.cpp server).
* `vllm`: vLLM's offline engine with prefix caching (the `vllm` extra, GPU).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from treecot.backends.base import Completion, GenerationRequest, GenerationResult, Generator

if TYPE_CHECKING:
    from treecot.recipe import ModelSpec


def make_generator(spec: ModelSpec, seed: int = 0) -> Generator:
    """Build the generator a recipe's model spec describes."""
    if spec.backend == "transformers":
        from treecot.backends.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_pretrained(
            spec.model, dtype=spec.dtype, max_batch_size=spec.max_batch_size, seed=seed
        )
    if spec.backend == "openai":
        import os

        from treecot.backends.openai_backend import OpenAIGenerator

        servers = []
        for url in spec.base_urls():
            servers.append(
                OpenAIGenerator(
                    url,
                    spec.served_model or spec.model,
                    # one tokenizer for every server of the model
                    tokenizer=servers[0].tokenizer if servers else spec.tokenizer or spec.model,
                    concurrency=spec.concurrency,
                    timeout=spec.timeout,
                    api_key=os.environ.get(spec.api_key_env),
                )
            )
        if len(servers) == 1:
            return servers[0]
        from treecot.backends.multi import MultiServerGenerator

        return MultiServerGenerator(servers)
    if spec.backend == "vllm":
        from treecot.backends.vllm_backend import VLLMGenerator

        return VLLMGenerator.from_spec(spec, seed=seed)  # the recipe's engine settings too
    raise ValueError(f"unknown backend {spec.backend!r}; choose transformers, openai or vllm")


__all__ = ["Completion", "GenerationRequest", "GenerationResult", "Generator", "make_generator"]
