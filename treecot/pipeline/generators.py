"""The generators of a recipe's `generate` section: one per role, shared where two roles name the same model."""

from __future__ import annotations

import json
from typing import Any

from treecot import backends
from treecot.backends.vllm_backend import GPUPlacementError, VLLMGenerator, rank_gpu_ids
from treecot.recipe import Recipe, RecipeError


def build_generators(recipe: Recipe) -> dict[str, Any]:
    """Generators per role; roles with identical model specs share one instance (one model in memory).

    `vllm` models get their engine settings (`VLLMGenerator.from_spec`); under `accelerate launch` /
    torchrun every vllm model's GPU group is checked before any model loads (a RecipeError naming the
    role's tensor_parallel_size when this rank's group does not fit the machine)."""
    gen = recipe.generate
    assert gen is not None
    specs = {role: gen.models.get(role) or gen.models["A"] for role in ("A", "B")}
    for role, spec in specs.items():
        if spec.backend == "vllm":
            try:
                rank_gpu_ids(spec.tensor_parallel_size or 1)
            except GPUPlacementError as e:
                where = role if role in gen.models else "A"
                raise RecipeError(f"generate.models.{where}.tensor_parallel_size: {e}") from None
    made: dict[str, Any] = {}
    out = {}
    for role, spec in specs.items():
        key = json.dumps(spec.to_dict(), sort_keys=True, default=str)
        if key not in made:
            if spec.backend == "vllm":
                made[key] = VLLMGenerator.from_spec(spec, seed=recipe.seed)
            else:
                made[key] = backends.make_generator(spec, seed=recipe.seed)
        out[role] = made[key]
    return out
