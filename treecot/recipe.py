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

Every field is checked when the recipe is read, before any model loads (the `patterns` file included);
an error names the file and the field (`r.yaml: generate.search.max_dept: unknown field; known fields: …`).

Bounded inputs: user YAML is read by `treecot.configs.load_yaml` (size, depth and alias expansion capped).
Counts are capped far above what real runs use: `MAX_PROBLEMS` (problems
offset + limit), `MAX_PROBLEMS_IN_FLIGHT`, `MAX_BATCH_SIZE`, `MAX_CONCURRENCY`, `MAX_SAMPLES` (distill
samples per problem), `MAX_GENERATION_TOKENS`, `MAX_SEED`, `MAX_TENSOR_PARALLEL_SIZE` and `MAX_MODEL_LEN`
(a vllm model's engine settings); the search settings' caps live in
`treecot.search.mcts` (`MAX_ROLLOUTS`, `MAX_DEPTH`, …) and the patterns' in `treecot.search.patterns`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.configs import RecipeError, clip, fields_set, from_dict, load_yaml, merge, short_key, short_repr
from treecot.data.balance import LENGTH_CHOICES
from treecot.data.distill import DistillConfig, DistillSampling
from treecot.data.extract import PAIR_RULES
from treecot.models import DEFAULT_MODEL
from treecot.search.config import MCTSConfig
from treecot.search.patterns import PatternError, load_patterns
from treecot.tasks import task_names

BACKENDS = ("transformers", "openai", "vllm")

#: problems.offset + problems.limit at most (the largest shipped problem set has 7,500 rows).
MAX_PROBLEMS = 10_000_000
#: generate.problems_in_flight at most (the paper-scale recipes use 64).
MAX_PROBLEMS_IN_FLIGHT = 4096
#: A model's max_batch_size at most (the default is 16).
MAX_BATCH_SIZE = 4096
#: A model's concurrency (HTTP requests in flight) at most (the paper-scale recipes use 64).
MAX_CONCURRENCY = 1024
#: distill.samples and distill.reference_samples at most (recipes use 4).
MAX_SAMPLES = 1024
#: distill.max_tokens at most (a 128k-token context).
MAX_GENERATION_TOKENS = 131_072
#: The largest seed (seeds must fit a signed 64-bit integer for numpy and torch).
MAX_SEED = 2**63 - 1
#: A vllm model's tensor_parallel_size at most (GPUs per engine; one node holds 8 to 16).
MAX_TENSOR_PARALLEL_SIZE = 1024
#: A vllm model's max_model_len at most (context tokens; the longest-context models take about 10M).
MAX_MODEL_LEN = 1 << 24


def check_count(value: Any, where: str, maximum: int, name: str, minimum: int = 1) -> None:
    """Refuse an integer outside [minimum, maximum]; `name` is the constant that documents the maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise RecipeError(f"{where}: expected an integer, got {short_repr(value)}")
    if value < minimum:
        raise RecipeError(f"{where}: must be >= {minimum}, got {value}")
    if value > maximum:
        raise RecipeError(f"{where}: {short_repr(value)} is more than the maximum {maximum:,} ({name})")


#: vLLM engine settings of a ModelSpec (backend vllm only); unset (null / {}) means the engine's default.
ENGINE_FIELDS = (
    "tensor_parallel_size",
    "gpu_memory_utilization",
    "max_model_len",
    "enable_prefix_caching",
    "quantization",
    "engine_kwargs",
)
#: vllm.LLM arguments that treecot sets itself from other ModelSpec fields (or the recipe's seed).
ENGINE_OWNED_KWARGS = ("model", "tokenizer", "dtype", "seed")


@dataclass
class ModelSpec:
    """A model of a recipe: what it is, who serves it, and how.

    Args:
        model (`str`):
            An embedded name, a local directory or a Hub id (for `openai`: the served model name, defaults to
            this).
        backend (`str`, *optional*, defaults to `"transformers"`):
            `transformers` | `openai` | `vllm`.
        dtype (`str`, *optional*, defaults to `"bfloat16"`):
            The inference dtype.
        base_url (`str` or `list[str]`, *optional*):
            The OpenAI-compatible server; several servers of the same model are used sticky per tree, spread
            by load, failing over (`treecot.backends.multi`).
        api_key_env (`str`, *optional*, defaults to `"OPENAI_API_KEY"`):
            The environment variable holding the server's API key.
        served_model (`str`, *optional*):
            The model name the server knows.
        tokenizer (`str`, *optional*):
            Where the chat template comes from (default: `model`).
        max_batch_size (`int`, *optional*, defaults to `16`):
            Rows decoded together (transformers).
        concurrency (`int`, *optional*, defaults to `8`):
            HTTP requests in flight.
        timeout (`float`, *optional*, defaults to `600.0`):
            Seconds per HTTP request.
        tensor_parallel_size (`int`, *optional*):
            vLLM engine setting: GPUs per engine (default 1).
        gpu_memory_utilization (`float`, *optional*):
            vLLM engine setting: the share of each GPU's memory the engine reserves, 0 < x <= 1 (default 0.9).
        max_model_len (`int`, *optional*):
            vLLM engine setting: context tokens (default: the model's).
        enable_prefix_caching (`bool`, *optional*):
            vLLM engine setting (default true: tree search continues the same prefixes).
        quantization (`str`, *optional*):
            vLLM engine setting: vLLM's method name, e.g. awq, gptq, fp8.
        engine_kwargs (`dict[str, Any]`, *optional*):
            Any other `vllm.LLM` argument (e.g. `{enforce_eager: true, swap_space: 8}`), not one of the
            settings above nor model / tokenizer / dtype / seed, which treecot sets.

    The vLLM engine settings are taken by backend vllm only (null leaves vLLM's / treecot's default; any other
    backend refuses them, since a server takes its settings on its own command line). Left unset, they are
    left out of `to_dict()`, so the hashes that name runs (`treecot generate`'s config hash,
    `Recipe.section_hash`) of recipes written before these fields existed do not change.
    """

    model: str = DEFAULT_MODEL
    backend: str = "transformers"
    dtype: str = "bfloat16"
    base_url: str | list[str] | None = None
    api_key_env: str = "OPENAI_API_KEY"
    served_model: str | None = None
    tokenizer: str | None = None
    max_batch_size: int = 16
    concurrency: int = 8
    timeout: float = 600.0
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None
    max_model_len: int | None = None
    enable_prefix_caching: bool | None = None
    quantization: str | None = None
    engine_kwargs: dict[str, Any] | None = None

    def base_urls(self) -> list[str]:
        """The servers of this model: `base_url` as a list (several: requests spread over them, sticky per
        tree, failing over when one dies; `treecot.backends.multi`)."""
        if self.base_url is None:
            return []
        return list(self.base_url) if isinstance(self.base_url, list) else [self.base_url]

    def engine_settings(self) -> dict[str, Any]:
        """The vLLM engine settings that are set (not null, not an empty engine_kwargs)."""
        return {name: getattr(self, name) for name in ENGINE_FIELDS if getattr(self, name) not in (None, {})}

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data for hashes and cards: every field, less the unset engine settings."""
        return _drop_unset_engine_settings(dataclasses.asdict(self))

    def validate(self, where: str) -> None:
        if self.backend not in BACKENDS:
            raise RecipeError(
                f"{where}.backend: {short_repr(self.backend)} is not a backend; choose one of {BACKENDS}"
            )
        if self.backend == "openai" and not self.base_url:
            raise RecipeError(
                f"{where}.base_url: required for the openai backend (e.g. http://127.0.0.1:8000/v1)"
            )
        for i, url in enumerate(self.base_urls()):
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                at = f"{where}.base_url" + (f"[{i}]" if isinstance(self.base_url, list) else "")
                raise RecipeError(f"{at}: expected an http(s) URL such as http://127.0.0.1:8000/v1, got "
                                  f"{short_repr(url)}")  # fmt: skip
        urls = self.base_urls()
        if len(set(urls)) != len(urls):
            raise RecipeError(f"{where}.base_url: lists a server twice")
        check_count(
            self.max_batch_size, f"{where}.max_batch_size", MAX_BATCH_SIZE, "treecot.recipe.MAX_BATCH_SIZE"
        )
        check_count(
            self.concurrency, f"{where}.concurrency", MAX_CONCURRENCY, "treecot.recipe.MAX_CONCURRENCY"
        )
        self._validate_engine_settings(where)

    def _validate_engine_settings(self, where: str) -> None:
        settings = self.engine_settings()
        if settings and self.backend != "vllm":
            name = next(iter(settings))
            hint = (
                "give it to the server instead (e.g. `vllm serve … --tensor-parallel-size 4`)"
                if self.backend == "openai"
                else "remove it, or set backend: vllm"
            )
            raise RecipeError(
                f"{where}.{name}: a vLLM engine setting, taken only by backend vllm (this model uses "
                f"backend {short_repr(self.backend)}); {hint}"
            )
        if self.tensor_parallel_size is not None:
            check_count(
                self.tensor_parallel_size,
                f"{where}.tensor_parallel_size",
                MAX_TENSOR_PARALLEL_SIZE,
                "treecot.recipe.MAX_TENSOR_PARALLEL_SIZE",
            )
        if self.max_model_len is not None:
            check_count(
                self.max_model_len, f"{where}.max_model_len", MAX_MODEL_LEN, "treecot.recipe.MAX_MODEL_LEN"
            )
        util = self.gpu_memory_utilization
        if util is not None and not (isinstance(util, float) and 0 < util <= 1):
            raise RecipeError(
                f"{where}.gpu_memory_utilization: must be a share of the GPU's memory, 0 < x <= 1 "
                f"(e.g. 0.9), got {short_repr(util)}"
            )
        if self.quantization is not None and not (isinstance(self.quantization, str) and self.quantization):
            raise RecipeError(
                f"{where}.quantization: expected vLLM's name of a quantization method (e.g. awq, gptq, "
                f"fp8), got {short_repr(self.quantization)}"
            )
        for key in self.engine_kwargs or {}:
            loc = f"{where}.engine_kwargs.{short_key(key)}"
            if not isinstance(key, str) or not key.isidentifier():
                raise RecipeError(f"{loc}: not a vllm.LLM argument name (a Python identifier)")
            if key in ENGINE_FIELDS:
                raise RecipeError(f"{loc}: set it as {where}.{key}, not inside engine_kwargs")
            if key in ENGINE_OWNED_KWARGS:
                set_by = "the recipe's seed" if key == "seed" else f"{where}.{key}"
                raise RecipeError(f"{loc}: treecot sets this vllm.LLM argument from {set_by}")


def _drop_unset_engine_settings(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if not (k in ENGINE_FIELDS and v in (None, {}))}


_MODEL_SPEC_FIELDS = frozenset(f.name for f in dataclasses.fields(ModelSpec))


def _recipe_dict_factory(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`dataclasses.asdict`'s dict_factory for recipes: a ModelSpec (recognised by its field names, the
    only thing asdict hands a factory) loses its unset engine settings, as in `ModelSpec.to_dict`."""
    d = dict(pairs)
    return _drop_unset_engine_settings(d) if d.keys() == _MODEL_SPEC_FIELDS else d


@dataclass
class ProblemsSpec:
    """The `problems` section: which problems a recipe searches.

    Args:
        task (`str`, *optional*, defaults to `"gsm8k"`):
            A registered task name.
        split (`str`, *optional*, defaults to `"train"`):
            The task's split.
        offset (`int`, *optional*, defaults to `0`):
            The first problem of the slice.
        limit (`int`, *optional*):
            The number of problems (null: all).
    """

    task: str = "gsm8k"
    split: str = "train"
    offset: int = 0
    limit: int | None = None

    def validate(self, where: str) -> None:
        if self.task not in task_names():
            raise RecipeError(
                f"{where}.task: unknown task {short_repr(self.task)}; known: {', '.join(task_names())}"
            )
        if self.offset < 0 or (self.limit is not None and self.limit < 0):
            raise RecipeError(f"{where}.offset/limit: must be >= 0")
        check_count(self.offset, f"{where}.offset", MAX_PROBLEMS, "treecot.recipe.MAX_PROBLEMS", minimum=0)
        if self.limit is not None:
            check_count(
                self.offset + self.limit,
                f"{where}.offset + {where}.limit",
                MAX_PROBLEMS,
                "treecot.recipe.MAX_PROBLEMS",
                minimum=0,
            )


@dataclass
class GenerateSpec:
    """The `generate` section: the tree search of a recipe.

    Args:
        patterns (`str`, *optional*):
            Node patterns: a name under the patterns directories or a YAML path (default: the task's domain).
        models (`dict[str, ModelSpec]`):
            The model of each role: `A` writes most nodes, `B` the double-checks and reflections.
        search (`MCTSConfig`):
            The search settings (`treecot.search.mcts.MCTSConfig`, every field typed and checked). The
            recipe's `seed` seeds the search unless `search.seed` is set.
        system_prompt (`str`, *optional*):
            The dataset's system prompt, seen by the generators and copied into every training row (default:
            `treecot.prompts.contract_system_prompt(task)`: the tag guide plus the task's answer format).
        output_dir (`str`):
            Where the tree shards go.
        problems_in_flight (`int`):
            Problems searched at once.
    """

    patterns: str | None = None  # default: the task's domain patterns
    models: dict[str, ModelSpec] = field(default_factory=lambda: {"A": ModelSpec(), "B": ModelSpec()})
    search: MCTSConfig = field(default_factory=MCTSConfig)
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
        check_count(
            self.problems_in_flight,
            f"{where}.problems_in_flight",
            MAX_PROBLEMS_IN_FLIGHT,
            "treecot.recipe.MAX_PROBLEMS_IN_FLIGHT",
        )
        if isinstance(self.search, Mapping):  # set in code as plain data: read as the file's would be
            self.search = from_dict(MCTSConfig, dict(self.search), f"{where}.search", RecipeError)
        if not isinstance(self.search, MCTSConfig):
            raise RecipeError(f"{where}.search: expected the search settings (a mapping or an MCTSConfig), got "
                              f"{type(self.search).__name__}")  # fmt: skip
        try:  # a search changed in code after loading is checked as one read from a file
            dataclasses.replace(self.search)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{where}.search: {clip(str(e))}") from None
        if self.patterns is not None:
            self.load_patterns(where)

    def search_settings(self) -> dict[str, Any]:
        """The search settings the recipe sets (`treecot.configs.fields_set`): they, not the defaults, name
        the recipe in `Recipe.to_dict` and its hashes, as when `search` was a plain mapping."""
        if isinstance(self.search, Mapping):  # set in code as plain data, not yet validated
            return dict(self.search)
        given = fields_set(self.search)
        return {
            f.name: getattr(self.search, f.name) for f in dataclasses.fields(self.search) if f.name in given
        }

    def search_config(self, seed: int) -> MCTSConfig:
        """The search's `MCTSConfig`: `search` with the recipe's `seed`, unless the recipe sets `search.seed`."""
        return (
            self.search if "seed" in fields_set(self.search) else dataclasses.replace(self.search, seed=seed)
        )

    def load_patterns(self, where: str = "generate"):
        """The `patterns` named by this section (a name under the patterns directories or a YAML path),
        validated; None when the task's default applies. Errors are RecipeErrors naming `patterns`, the file
        and its field."""
        if self.patterns is None:
            return None
        try:
            return load_patterns(self.patterns)
        except (PatternError, FileNotFoundError) as e:
            raise RecipeError(f"{where}.patterns: {clip(str(e), 1000)}") from None


@dataclass
class BuildSpec:
    """The `build` section: the datasets built from a recipe's trees.

    Args:
        trees (`str` or `list[str]`, *optional*):
            Tree directories or shard files (default: `generate.output_dir`).
        student (`str`):
            The tokenizer that measures lengths and shared prefixes.
        system_prompt (`str`, *optional*):
            Must restate the trees' search prompt (default: theirs).
        sft_length (`str`, *optional*, defaults to `"longest"`):
            Thoughts Length Balance of the SFT rows: shortest | medium | longest | all (the paper: longest).
        dpo_length (`str`, *optional*, defaults to `"shortest"`):
            The same for the chosen responses of the pairs (the paper: shortest).
        clean_chosen (`bool`, *optional*, defaults to `True`):
            Only clean correct paths become SFT rows and chosen responses, and only they are ranked by length
            (a path is unclean when a node was cut at its token cap, loops, or holds a section tag the model
            wrote itself: `treecot.data.extract.path_defects`).
        unclean_rejected (`bool`, *optional*, defaults to `True`):
            Wrong paths with such defects may still be rejected responses.
        pair_rule (`str`, *optional*, defaults to `"shortest_prefix"`):
            How each chosen path's rejected path is picked: shortest_prefix (the paper's: the fewest shared
            leading tokens) | latest_branch (Step-DPO style: branches off the chosen path as late as possible,
            so the shared-prefix mask has something to mask).
        dpo_all (`bool`, *optional*, defaults to `False`):
            Also write config `dpo_all`, a pair for every clean correct path (dpo_length "all", same pair
            rule), for the Thoughts Length Balance ablation.
        output_dir (`str`, *optional*, defaults to `"outputs/dataset"`):
            Where the dataset goes.
        push_to_hub (`str`, *optional*):
            A repo id to push the dataset to (or the local Hub layout).
        tag (`str`, *optional*):
            The version tag of the push.
        private (`bool`, *optional*, defaults to `False`):
            Push as a private repo.
    """

    trees: str | list[str] | None = None  # tree directories or shard files; default: generate.output_dir
    student: str = DEFAULT_MODEL
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
        for name in ("sft_length", "dpo_length"):
            if getattr(self, name) not in LENGTH_CHOICES:
                raise RecipeError(
                    f"{where}.{name}: {short_repr(getattr(self, name))} is not one of {LENGTH_CHOICES}"
                )
        if self.pair_rule not in PAIR_RULES:
            raise RecipeError(f"{where}.pair_rule: {short_repr(self.pair_rule)} is not one of {PAIR_RULES}")


@dataclass
class DistillSpec(DistillSampling):
    """The `distill` section: SkyThought-style distillation from a teacher.

    The sampling and filtering fields are `treecot.data.distill.DistillSampling`'s (declared there once);
    this section adds where the data comes from and where it goes.

    Args:
        teacher (`ModelSpec`): The teacher model.
        reference (`ModelSpec`, *optional*): The model whose pass rate `pass_rate_range` filters on.
        student (`str`): The tokenizer that measures lengths.
        output_dir (`str`): Where the dataset goes.
        push_to_hub (`str`, *optional*): A repo id to push the dataset to.
        tag (`str`, *optional*): The version tag of the push.
    """

    teacher: ModelSpec = field(default_factory=ModelSpec)
    reference: ModelSpec | None = None
    student: str = DEFAULT_MODEL
    output_dir: str = "outputs/distill"
    push_to_hub: str | None = None
    tag: str | None = None

    def validate(self, where: str) -> None:
        self.teacher.validate(f"{where}.teacher")
        if self.reference is not None:
            self.reference.validate(f"{where}.reference")
        try:  # settings changed in code after loading are checked as ones read from a file
            self.distill_config(seed=0)
        except (TypeError, ValueError) as e:
            raise RecipeError(f"{where}: {clip(str(e))}") from None
        for name in ("samples", "reference_samples"):
            check_count(getattr(self, name), f"{where}.{name}", MAX_SAMPLES, "treecot.recipe.MAX_SAMPLES")
        check_count(
            self.max_tokens,
            f"{where}.max_tokens",
            MAX_GENERATION_TOKENS,
            "treecot.recipe.MAX_GENERATION_TOKENS",
        )

    def distill_config(self, seed: int) -> DistillConfig:
        """The `DistillConfig` of this section, seeded with the recipe's `seed`."""
        sampling = {f.name: getattr(self, f.name) for f in dataclasses.fields(DistillSampling)}
        rng = sampling["pass_rate_range"]
        return DistillConfig(
            **{**sampling, "pass_rate_range": None if rng is None else tuple(rng)}, seed=seed
        )


@dataclass
class Recipe:
    """A data run: problems → trees → datasets (`generate`, `build`), or teacher distillation (`distill`).

    Args:
        name (`str`, *optional*, defaults to `"treecot-run"`):
            Names the run in logs and cards.
        seed (`int`, *optional*, defaults to `0`):
            Seeds the search (unless `generate.search.seed` is set) and the distillation.
        problems (`ProblemsSpec`):
            The problems.
        generate (`GenerateSpec`, *optional*):
            The tree search.
        build (`BuildSpec`, *optional*):
            The datasets built from the trees.
        distill (`DistillSpec`, *optional*):
            SkyThought-style distillation.
        path (`str`, *optional*):
            The file the recipe was read from (set by `load_recipe`; not part of any hash).
    """

    name: str = "treecot-run"
    seed: int = 0
    problems: ProblemsSpec = field(default_factory=ProblemsSpec)
    generate: GenerateSpec | None = None
    build: BuildSpec | None = None
    distill: DistillSpec | None = None
    path: str | None = None  # where it was read from (not part of the hash)

    def validate(self) -> Recipe:
        check_count(self.seed, "seed", MAX_SEED, "treecot.recipe.MAX_SEED", minimum=0)
        self.problems.validate("problems")
        for name in ("generate", "build", "distill"):
            section = getattr(self, name)
            if section is not None:
                section.validate(name)
        return self

    def to_dict(self) -> dict:
        """The recipe as plain data, for hashes and cards: unset engine settings and search settings left out
        (`ModelSpec.to_dict`, `GenerateSpec.search_settings`), so a recipe's hashes do not change when treecot
        adds a field."""
        d = dataclasses.asdict(self, dict_factory=_recipe_dict_factory)
        d.pop("path", None)
        if self.generate is not None:
            d["generate"]["search"] = self.generate.search_settings()
        return d

    def section_hash(self, *names: str) -> str:
        """A short stable hash of the named sections (plus problems and seed): names a run's outputs."""
        d = self.to_dict()
        payload = {k: d[k] for k in ("seed", "problems", *names)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_recipe(path_or_dict: str | os.PathLike | dict, overrides: Mapping[str, Any] | None = None) -> Recipe:
    """Read and validate a recipe (a YAML path or a dict); errors from a file start with its path.

    `overrides`: nested fields laid over the recipe before it is checked (`treecot.configs.parse_overrides`
    reads them from the command line: `--generate.search.max_rollouts 8`)."""
    if isinstance(path_or_dict, dict):
        data = merge(path_or_dict, overrides or {}, error=RecipeError)
        return from_dict(Recipe, data, "", RecipeError).validate()
    path = Path(path_or_dict)
    try:
        exists = path.is_file()
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte, …
        raise RecipeError(
            f"recipe file {short_repr(str(path))}: not a usable path ({getattr(e, 'strerror', None) or e})"
        ) from None
    if not exists:
        raise RecipeError(f"recipe file {short_repr(str(path))} does not exist")
    data = load_yaml(path, "recipe")
    try:
        recipe = from_dict(Recipe, merge(data, overrides or {}, error=RecipeError), "", RecipeError)
        recipe.path = str(path)
        return recipe.validate()
    except RecipeError as e:
        raise RecipeError(f"recipe {path}: {e}") from None
