"""Recipes: one YAML file describing a data run (problems → trees → datasets, or teacher distillation).

    name: demo-gsm8k
    seed: 0
    problems: {task: gsm8k, split: train, offset: 0, limit: 8}
    generate:
      patterns: math                       # a name under recipes/patterns/ or a YAML path
      models:
        A: {model: smollm2-135m-instruct, backend: transformers}
        B: {model: smollm2-135m-instruct, backend: transformers}
      search: {max_rollouts: 16, stop_at_correct: 4, max_depth: 8, max_node_tokens: 96}
      output_dir: outputs/demo-gsm8k/trees
    build:
      student: smollm2-135m-instruct
      sft_length: longest
      dpo_length: shortest
      output_dir: outputs/demo-gsm8k/dataset
      push_to_hub: null                    # a repo id pushes to the Hub (or the local Hub layout)
    distill:
      teacher: {model: Qwen/QwQ-32B, backend: openai, base_url: http://127.0.0.1:8000/v1}
      samples: 4
      output_dir: outputs/demo-gsm8k/distill

Every field is checked when the recipe is read, before any model loads; an error names the field
(`generate.search.max_dept: unknown field; known fields: …`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BACKENDS = ("transformers", "openai", "vllm")


class RecipeError(ValueError):
    """A recipe field is missing, unknown or has a bad value; the message names it."""


@dataclass
class ModelSpec:
    """model: embedded name, local dir or Hub id (for `openai`: the served model name, defaults to this);
    backend: transformers | openai | vllm; dtype: inference dtype (transformers: bfloat16 default);
    base_url / api_key_env / served_model: OpenAI-compatible server settings; tokenizer: where the chat
    template comes from (default: `model`); max_batch_size: rows decoded together (transformers);
    concurrency / timeout: HTTP backend limits."""

    model: str = "smollm2-135m-instruct"
    backend: str = "transformers"
    dtype: str = "bfloat16"
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    served_model: str | None = None
    tokenizer: str | None = None
    max_batch_size: int = 16
    concurrency: int = 8
    timeout: float = 600.0

    def validate(self, where: str) -> None:
        if self.backend not in BACKENDS:
            raise RecipeError(f"{where}.backend: {self.backend!r} is not a backend; choose one of {BACKENDS}")
        if self.backend == "openai" and not self.base_url:
            raise RecipeError(
                f"{where}.base_url: required for the openai backend (e.g. http://127.0.0.1:8000/v1)"
            )
        if self.max_batch_size < 1:
            raise RecipeError(f"{where}.max_batch_size: must be >= 1")


@dataclass
class ProblemsSpec:
    """task: a registered task name; split; offset / limit: the slice of problems (limit null = all)."""

    task: str = "gsm8k"
    split: str = "train"
    offset: int = 0
    limit: int | None = None

    def validate(self, where: str) -> None:
        from treecot.tasks import task_names

        if self.task not in task_names():
            raise RecipeError(f"{where}.task: unknown task {self.task!r}; known: {', '.join(task_names())}")
        if self.offset < 0 or (self.limit is not None and self.limit < 0):
            raise RecipeError(f"{where}.offset/limit: must be >= 0")


@dataclass
class GenerateSpec:
    """patterns: node patterns (default: the task's domain); models per role; search: MCTSConfig fields;
    system_prompt: the dataset's system prompt, seen by the generators and copied into every training row
    (default: `treecot.prompts.contract_system_prompt(task)`: the tag guide plus the task's answer format);
    output_dir: tree shards; problems_in_flight: problems searched at once."""

    patterns: str | None = None  # default: the task's domain patterns
    models: dict[str, ModelSpec] = field(default_factory=lambda: {"A": ModelSpec(), "B": ModelSpec()})
    search: dict[str, Any] = field(default_factory=dict)  # treecot.search.mcts.MCTSConfig fields
    system_prompt: str | None = None
    output_dir: str = "outputs/trees"
    problems_in_flight: int = 8

    def validate(self, where: str) -> None:
        for role, spec in self.models.items():
            if role not in ("A", "B"):
                raise RecipeError(f"{where}.models.{role}: roles are 'A' and 'B'")
            spec.validate(f"{where}.models.{role}")
        if "A" not in self.models:
            raise RecipeError(f"{where}.models.A: required (model A writes most nodes)")
        if self.problems_in_flight < 1:
            raise RecipeError(f"{where}.problems_in_flight: must be >= 1")
        from treecot.search.mcts import MCTSConfig

        known = {f.name for f in dataclasses.fields(MCTSConfig)}
        for key in self.search:
            if key not in known:
                raise RecipeError(
                    f"{where}.search.{key}: unknown field; known fields: {', '.join(sorted(known))}"
                )
        try:
            MCTSConfig(**self.search)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{where}.search: {e}") from None


@dataclass
class BuildSpec:
    """trees: tree directories or shard files (default: generate.output_dir); student: the tokenizer that
    measures lengths and shared prefixes; system_prompt: must restate the trees' search prompt (default:
    theirs); sft_length / dpo_length: Thoughts Length Balance, shortest | medium | longest | all (paper:
    longest for SFT, shortest for DPO).
    clean_chosen: only clean correct paths become SFT rows and chosen responses, and only they are ranked
    by length (a path is unclean when a node was cut at its token cap, loops, or holds a section tag the
    model wrote itself: `treecot.data.extract.path_defects`); default true.
    unclean_rejected: wrong paths with such defects may still be rejected responses; default true.
    pair_rule: how each chosen path's rejected path is picked: shortest_prefix (the paper's: the fewest
    shared leading tokens) | latest_branch (Step-DPO style: branches off the chosen path as late as
    possible, so the shared-prefix mask has something to mask).
    dpo_all: also write config `dpo_all`, a pair for every clean correct path (dpo_length "all", same
    pair rule), for the Thoughts Length Balance ablation; default false.
    output_dir / push_to_hub / tag / private: where the dataset goes."""

    trees: str | list[str] | None = None  # tree directories or shard files; default: generate.output_dir
    student: str = "smollm2-135m-instruct"
    system_prompt: str | None = None
    sft_length: str = "longest"
    dpo_length: str = "shortest"
    clean_chosen: bool = True
    unclean_rejected: bool = True
    pair_rule: str = "shortest_prefix"
    dpo_all: bool = False
    output_dir: str = "outputs/dataset"
    push_to_hub: str | None = None
    tag: str | None = None
    private: bool = False

    def validate(self, where: str) -> None:
        from treecot.data.balance import LENGTH_CHOICES
        from treecot.data.extract import PAIR_RULES

        for name in ("sft_length", "dpo_length"):
            if getattr(self, name) not in LENGTH_CHOICES:
                raise RecipeError(f"{where}.{name}: {getattr(self, name)!r} is not one of {LENGTH_CHOICES}")
        if self.pair_rule not in PAIR_RULES:
            raise RecipeError(f"{where}.pair_rule: {self.pair_rule!r} is not one of {PAIR_RULES}")


@dataclass
class DistillSpec:
    teacher: ModelSpec = field(default_factory=ModelSpec)
    reference: ModelSpec | None = None
    student: str = "smollm2-135m-instruct"
    samples: int = 4
    max_tokens: int = 1024
    temperature: float = 0.7
    top_p: float = 0.95
    keep: str = "all"
    min_difficulty: float | None = None
    max_difficulty: float | None = None
    pass_rate_range: list[float] | None = None
    reference_samples: int = 4
    output_dir: str = "outputs/distill"
    push_to_hub: str | None = None
    tag: str | None = None

    def validate(self, where: str) -> None:
        self.teacher.validate(f"{where}.teacher")
        if self.reference is not None:
            self.reference.validate(f"{where}.reference")
        try:
            self.distill_config(seed=0)
        except ValueError as e:
            raise RecipeError(f"{where}: {e}") from None

    def distill_config(self, seed: int):
        from treecot.data.distill import DistillConfig

        rng = tuple(self.pass_rate_range) if self.pass_rate_range is not None else None
        return DistillConfig(
            samples=self.samples,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            keep=self.keep,
            min_difficulty=self.min_difficulty,
            max_difficulty=self.max_difficulty,
            pass_rate_range=rng,
            reference_samples=self.reference_samples,
            seed=seed,
        )


@dataclass
class Recipe:
    name: str = "treecot-run"
    seed: int = 0
    problems: ProblemsSpec = field(default_factory=ProblemsSpec)
    generate: GenerateSpec | None = None
    build: BuildSpec | None = None
    distill: DistillSpec | None = None
    path: str | None = None  # where it was read from (not part of the hash)

    def validate(self) -> Recipe:
        self.problems.validate("problems")
        for name in ("generate", "build", "distill"):
            section = getattr(self, name)
            if section is not None:
                section.validate(name)
        return self

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.pop("path", None)
        return d

    def section_hash(self, *names: str) -> str:
        """A short stable hash of the named sections (plus problems and seed): names a run's outputs."""
        d = self.to_dict()
        payload = {k: d[k] for k in ("seed", "problems", *names)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _is_dataclass_type(tp) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for arg in args[:-1]:  # the first alternative that accepts the value; the last one reports
            try:
                return _coerce(value, arg, where)
            except RecipeError:
                continue
        return _coerce(value, args[-1], where)
    if _is_dataclass_type(tp):
        return _from_dict(tp, value, where)
    if origin is dict:
        _, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {k: _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise RecipeError(f"{where}: expected a list, got {type(value).__name__}")
        (it,) = typing.get_args(tp)
        return [_coerce(v, it, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is Any:
        return value
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool) and not (
        isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    ):
        raise RecipeError(f"{where}: expected {tp.__name__}, got {value!r}")
    return value


def _from_dict(cls, data: Any, where: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - {"path"}
    kwargs = {}
    for key, value in data.items():
        loc = f"{where}.{key}" if where else str(key)
        if key not in known:
            raise RecipeError(f"{loc}: unknown field; known fields: {', '.join(sorted(known))}")
        kwargs[key] = _coerce(value, hints[key], loc)
    return cls(**kwargs)


def load_recipe(path_or_dict: str | os.PathLike | dict) -> Recipe:
    """Read and validate a recipe (a YAML path or a dict)."""
    path = None
    if isinstance(path_or_dict, dict):
        data = path_or_dict
    else:
        path = Path(path_or_dict)
        if not path.is_file():
            raise RecipeError(f"recipe file {str(path)!r} does not exist")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise RecipeError(f"recipe {str(path)!r} is not valid YAML: {e}") from None
    recipe = _from_dict(Recipe, data, "")
    recipe.path = str(path) if path else None
    return recipe.validate()
