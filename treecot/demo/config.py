"""The demo's config: `recipes/demo.yaml` read into `DemoConfig` and checked before any stage runs."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.configs import read_config
from treecot.evaluation import EVAL_TASKS
from treecot.models import DEFAULT_MODEL
from treecot.prompts import PromptContract
from treecot.recipe import RecipeError, load_recipe

DEFAULT_CONFIG = "recipes/demo.yaml"
STATE_FILE = "demo-state.json"
STAGES = (
    "generate",
    "build",
    "eval-base",
    "eval-base-data-prompt",
    "sft",
    "cdpo",
    "eval-sft",
    "eval-cdpo",
    "leaderboard",
    "report",
)
MODEL_STAGES = {"base": None, "sft": "sft", "cdpo": "cdpo"}
LEADERBOARD_REPO = "treecot/demo-leaderboard"


class DemoError(RuntimeError):
    """A demo stage cannot run (its message says why and what to change)."""


# ----------------------------------------------------------------------------------------- config


@dataclass
class TrainStage:
    """A training stage of the demo config (`train.sft`, `train.cdpo`).

    Args:
        config (`str`):
            A TRL recipe of `treecot.scripts.sft` / `.dpo`.
        overrides (`dict[str, Any]`, *optional*, defaults to `{}`):
            Keys replacing the recipe's.
        accelerate_config (`str`, *optional*):
            Run the stage as `accelerate launch --config_file <it>` in a subprocess (GPUs, ZeRO-3 / FSDP)
            instead of in this process (the CPU default).
    """

    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    accelerate_config: str | None = None


#: `eval.max_new_tokens: auto`: the budget comes from the dataset (`PromptContract.budget`: the longest
#: training response × 1.25, rounded up to a multiple of 16), so the evaluation lets a trained model finish.
AUTO = "auto"


@dataclass
class EvalStage:
    """The demo config's held-out evaluation (`eval`).

    Args:
        tasks (`list[str]`, *optional*, defaults to `["arithmetic", "gsm8k"]`):
            Task names from `EVAL_TASKS`.
        limit (`int`, *optional*, defaults to `24`):
            Evaluate the first `limit` test problems of each task (a positive integer).
        max_new_tokens (`int` or `str`, *optional*, defaults to `"auto"`):
            Generation cap per response: a positive integer, or `AUTO` ("auto": the dataset's budget).
        batch_size (`int`, *optional*, defaults to `24`):
            Prompts per `generate` call.
        dtype (`str`, *optional*, defaults to `"bfloat16"`):
            Weights dtype.
        models (`list[str]`, *optional*, defaults to `["base", "sft", "cdpo"]`):
            The models to evaluate, from `MODEL_STAGES`.
    """

    tasks: list[str] = field(default_factory=lambda: ["arithmetic", "gsm8k"])
    limit: int = 24
    max_new_tokens: int | str = AUTO
    batch_size: int = 24
    dtype: str = "bfloat16"
    models: list[str] = field(default_factory=lambda: ["base", "sft", "cdpo"])


@dataclass
class DemoConfig:
    """`recipes/demo.yaml`, validated (see that file for the meaning of each section).

    Args:
        name (`str`, *optional*, defaults to `"demo"`):
            The demo's name.
        seed (`int`, *optional*, defaults to `0`):
            The seed of every stage.
        output_dir (`str`, *optional*, defaults to `"outputs/demo"`):
            Where the stages write.
        model (`str`, *optional*, defaults to `DEFAULT_MODEL`):
            The model that generates the trees (roles A and B) and is the student.
        generate (`list[dict[str, Any]]`, *optional*, defaults to `[]`):
            One `treecot generate` recipe per slice (see `recipe`).
        build (`dict[str, Any]`, *optional*, defaults to `{}`):
            The `treecot build` settings over all slices (see `build_recipe`).
        train (`dict[str, TrainStage]`, *optional*, defaults to `{}`):
            The training stages, `sft` and `cdpo`.
        eval (`EvalStage`, *optional*, defaults to `EvalStage()`):
            The held-out evaluation.
        path (`str`, *optional*):
            The config file read (None for a mapping); set by `treecot.configs.read_config`.
    """

    name: str = "demo"
    seed: int = 0
    output_dir: str = "outputs/demo"
    model: str = DEFAULT_MODEL
    generate: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    train: dict[str, TrainStage] = field(default_factory=dict)
    eval: EvalStage = field(default_factory=EvalStage)
    path: str | None = None

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    def recipe(self, i: int) -> dict[str, Any]:
        """The `treecot generate` recipe of slice `i` (models default to `model`)."""
        entry = copy.deepcopy(self.generate[i])
        name = entry.get("name") or f"{self.name}-{i}"
        gen = entry.setdefault("generate", {})
        gen.setdefault("models", {"A": {"model": self.model}, "B": {"model": self.model}})
        gen.setdefault("output_dir", str(self.out / "trees" / name))
        return {"name": name, "seed": self.seed, **{k: v for k, v in entry.items() if k != "name"}}

    def build_recipe(self) -> dict[str, Any]:
        trees = [self.recipe(i)["generate"]["output_dir"] for i in range(len(self.generate))]
        first = self.recipe(0)
        build = {"student": self.model, **self.build, "trees": trees}
        build.setdefault("output_dir", str(self.out / "dataset"))
        return {"name": self.name, "seed": self.seed, "problems": first.get("problems", {}), "build": build}


def load_demo_config(source: str | os.PathLike | Mapping[str, Any] | None = None, **overrides) -> DemoConfig:
    """Read and validate a demo config.

    Args:
        source (`str`, `os.PathLike` or `Mapping[str, Any]`, *optional*):
            A YAML path or a mapping; default `recipes/demo.yaml`.
        **overrides (`Any`):
            Nested fields laid over it (`output_dir=…`, `eval={"limit": 4}`).
    """
    if source is None:
        source = default_config_path()
    cfg, where = read_config(
        source,
        DemoConfig,
        "demo config",
        overrides,
        error=DemoError,
        hint=f" (the default is {DEFAULT_CONFIG})",
    )
    validate_demo_config(cfg, where)
    return cfg


def resolve_file(name: str, config_path: str | None, what: str) -> str:
    """`name` as given if it exists (relative to the working directory), else relative to the demo
    config's folder or the folder above it (`recipes/…` paths of a config inside `recipes/`).

    Args:
        name (`str`):
            The file's path.
        config_path (`str`, *optional*):
            The demo config's path (None: only `name` as given).
        what (`str`):
            What the file is, for the message.

    Raises:
        DemoError: no candidate exists.
    """
    candidates = [Path(name)]
    if config_path and not Path(name).is_absolute():
        here = Path(config_path).resolve().parent
        candidates += [here / name, here.parent / name]
    for c in candidates:
        if c.is_file():
            return str(c)
    raise DemoError(f"{what}: {name!r} does not exist")


def default_config_path() -> str:
    """`recipes/demo.yaml` of the working directory, else of the treecot checkout this module is in."""
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    repo = Path(__file__).resolve().parents[2] / DEFAULT_CONFIG
    return str(repo) if repo.is_file() else DEFAULT_CONFIG


def validate_demo_config(cfg: DemoConfig, where: str) -> None:
    """Check what `from_dict` cannot: the slices' recipes, the training recipes' files, the evaluation."""
    validate_slices(cfg, where)
    for stage in ("sft", "cdpo"):
        if stage not in cfg.train:
            raise DemoError(f"{where}: train.{stage} is missing (a TRL recipe path and overrides)")
        cfg.train[stage].config = resolve_file(
            cfg.train[stage].config, cfg.path, f"{where}: train.{stage}.config"
        )
    for t in cfg.eval.tasks:
        if t not in EVAL_TASKS:
            raise DemoError(f"{where}: eval.tasks: unknown task {t!r}; choose from {', '.join(EVAL_TASKS)}")
    for m in cfg.eval.models:
        if m not in MODEL_STAGES:
            raise DemoError(
                f"{where}: eval.models: unknown model {m!r}; choose from {', '.join(MODEL_STAGES)}"
            )
    check_eval_stage(cfg.eval, where)


def validate_slices(cfg: DemoConfig, where: str) -> None:
    """The generate slices and the build section of a demo or ablation config."""
    if not cfg.generate or not isinstance(cfg.generate, list):
        raise DemoError(f"{where}: 'generate' must be a non-empty list of slices (problems + generate)")
    for i, entry in enumerate(cfg.generate):
        if not isinstance(entry, Mapping):
            raise DemoError(f"{where}: generate[{i}]: expected a mapping (name, problems, generate)")
    if not isinstance(cfg.build, Mapping):
        raise DemoError(f"{where}: build: expected a mapping of build settings")
    names = [cfg.recipe(i)["name"] for i in range(len(cfg.generate))]
    if len(set(names)) != len(names):
        raise DemoError(f"{where}: generate: slice names must be unique, got {names}")
    for i in range(len(cfg.generate)):
        try:
            recipe = load_recipe(cfg.recipe(i))
        except RecipeError as e:
            raise DemoError(f"{where}: generate[{i}]: {e}") from None
        if recipe.generate is None:
            raise DemoError(f"{where}: generate[{i}]: the slice has no 'generate' section")
    try:
        load_recipe(cfg.build_recipe())
    except RecipeError as e:
        raise DemoError(f"{where}: {e}") from None


def check_eval_stage(ev: Any, where: str) -> None:
    """`eval.limit` and `eval.max_new_tokens` (a positive integer, or "auto")."""
    if isinstance(ev.limit, bool) or not isinstance(ev.limit, int) or ev.limit < 1:
        raise DemoError(f"{where}: eval.limit must be a positive integer, got {ev.limit!r}")
    budget = ev.max_new_tokens
    if budget != AUTO and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise DemoError(f"{where}: eval.max_new_tokens must be a positive integer or 'auto', got {budget!r}")


def eval_budget(ev: Any, build: Mapping[str, Any]) -> int:
    """The evaluation budget: `eval.max_new_tokens`, or with "auto" the dataset's (`PromptContract.budget`)."""
    if ev.max_new_tokens != AUTO:
        return int(ev.max_new_tokens)
    budget = PromptContract.from_dict(build["contract"]).budget()
    if budget is None:
        raise DemoError("eval.max_new_tokens is 'auto' but the dataset records no training-response lengths")
    return budget
