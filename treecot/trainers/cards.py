"""Model cards: the README.md of a model trained by treecot, rendered from a Jinja template.

The template is ``hub_cards/model_card.md`` (the trainers' ``_template_file``, found like the dataset card's, see
:func:`treecot.hub.cards.find_template`), rendered through ``huggingface_hub.ModelCard.from_template`` with
:func:`model_card_metadata` as its ``ModelCardData``. :func:`render_model_card` renders it from a plain ``info``
mapping; :func:`model_card_info` collects that mapping from a finished trainer (arguments, state, datasets, its
``_paper`` and ``_tag_names``), and :func:`write_model_card` writes the card into the trainer's ``output_dir``.
`BalancedSFTTrainer` and `CDPOTrainer` override TRL's ``create_model_card`` with it (`TreecotModelCardMixin`),
so ``trainer.push_to_hub()`` uploads this card. Everything in ``info`` goes through :func:`treecot.hub.redact`
first, so a token never reaches a card.

``info`` keys (all optional except ``stage`` and ``model_name``)::

    stage            "sft" or "cdpo"
    model_name       the card's title (e.g. the output directory's name)
    hub_model_id     "org/name" the model is pushed to (used in the loading snippet)
    base_model       the initial weights: a Hub id, a local path, or None (random weights)
    base_model_hub_id  the Hub id the initial weights descend from (front matter ``base_model``); defaults to
                     ``base_model`` when that is a Hub id
    dataset_name, dataset_config, dataset_revision, dataset_rows
    length_ranks     {"longest": n_rows, …}: the `length_rank` values of the training rows
    recipe           {parameter: value}: the training arguments (see `recipe_from_args`)
    recipe_file      path of the YAML recipe
    adapter          {"r": 16, "lora_alpha": 32, …} when the model is a LoRA adapter
    train_metrics, eval_metrics  {name: number}
    license          defaults to the base model's known license, else "other"
    tags             extra tags; "treecot", "trl" and the stage are always present
    system_prompts   {task: system prompt} the model was trained with (the training rows' prompt contract, or
                     ``treecot_provenance.json``): the "How to use" snippet puts it in its messages
    paper            {"title", "id", "citation"} (TRL's ``_paper``): the card cites it; default `PAPER`
    description, treecot_version, trl_version, transformers_version
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from treecot.hub import is_repo_id, redact
from treecot.hub.cards import card_rows, find_template, package_version, render_card

__all__ = [
    "MODEL_CARD_TEMPLATE",
    "PAPER",
    "STAGES",
    "TreecotModelCardMixin",
    "model_card_info",
    "model_card_metadata",
    "recipe_from_args",
    "render_model_card",
    "write_model_card",
]

MODEL_CARD_TEMPLATE = "model_card.md"
STAGES = ("sft", "cdpo")
HUB_URL = "https://huggingface.co"
#: The paper treecot's trainers implement, as TRL's ``_paper`` (the model card cites it).
PAPER = {
    "title": "Marco-o1 v2: Towards Widening The Distillation Bottleneck for Reasoning Models",
    "id": "2503.01461",
    "citation": """@misc{marco-o1-v2,
  title         = {Marco-o1 v2: Towards Widening The Distillation Bottleneck for Reasoning Models},
  author        = {Yin, Huifeng and others},
  year          = {2025},
  eprint        = {2503.01461},
  archivePrefix = {arXiv}
}""",
}

#: Licenses of the base models treecot ships recipes for (front matter `license` when not given).
_KNOWN_LICENSES = {
    "HuggingFaceTB/SmolLM2-": "apache-2.0",
    "Qwen/Qwen2.5-": "apache-2.0",
    "meta-llama/Llama-3.1-": "llama3.1",
    "meta-llama/Llama-3.2-": "llama3.2",
}

#: Training arguments shown in the card's recipe table, per stage, with their labels.
_COMMON_ARGS = {
    "learning_rate": "learning rate",
    "num_train_epochs": "epochs",
    "max_steps": "max steps",
    "lr_scheduler_type": "LR schedule",
    "warmup_steps": "warmup (steps, or ratio if < 1)",
    "per_device_train_batch_size": "batch size per device",
    "gradient_accumulation_steps": "gradient accumulation steps",
    "effective_batch_size": "effective batch size",
    "max_length": "max length (tokens)",
    "optim": "optimizer",
    "weight_decay": "weight decay",
    "bf16": "bf16",
    "activation_checkpointing": "activation checkpointing",
    "seed": "seed",
}
_STAGE_ARGS = {
    "sft": {
        "length_ranks": "length ranks kept",
        "length_weights": "length weights",
        "sources": "sources kept",
        "completion_only_loss": "assistant-only loss",
        "packing": "packing",
    },
    "cdpo": {
        "beta": "β",
        "cdpo_epsilon": "ε (cDPO label noise)",
        "sft_alpha": "α (joint SFT loss weight)",
        "mask_shared_prefix": "shared-prefix masking",
        "reference": "reference model",
    },
}
_TRAIN_METRICS = {
    "train_loss": "train loss (mean over the run)",
    "final_loss": "final logged loss",
    "loss/dpo": "final cDPO loss",
    "loss/sft": "final SFT loss",
    "rewards/accuracies": "final reward accuracy",
    "rewards/margins": "final reward margin",
    "mean_token_accuracy": "final token accuracy",
    "global_step": "optimizer steps",
    "epoch": "epochs completed",
}
#: Logged keys that are speed or bookkeeping, not metrics worth a card row.
_SKIPPED_EVAL_SUFFIXES = ("_runtime", "_samples_per_second", "_steps_per_second")


def _license(info: Mapping[str, Any], base_hub_id: str | None) -> str:
    if info.get("license"):
        return str(info["license"])
    for prefix, license_id in _KNOWN_LICENSES.items():
        if base_hub_id and base_hub_id.startswith(prefix):
            return license_id
    return "other"


def _base_hub_id(info: Mapping[str, Any]) -> str | None:
    if info.get("base_model_hub_id"):
        return str(info["base_model_hub_id"])
    return info["base_model"] if is_repo_id(info.get("base_model")) else None


def model_card_metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The YAML front matter of a model card (base model, datasets, library, tags, license)."""
    stage = _stage(info)
    base_hub_id = _base_hub_id(info)
    metadata: dict[str, Any] = {}
    if base_hub_id:
        metadata["base_model"] = base_hub_id
    if is_repo_id(info.get("dataset_name")):
        metadata["datasets"] = [info["dataset_name"]]
    # an adapter is loaded through PEFT: the Hub shows the right snippet for library_name "peft"
    metadata["library_name"] = "peft" if info.get("adapter") else "transformers"
    metadata["pipeline_tag"] = "text-generation"
    metadata["tags"] = list(dict.fromkeys(["treecot", "trl", stage, *(info.get("tags") or ())]))
    metadata["license"] = _license(info, base_hub_id)
    if info.get("model_name"):
        metadata["model_name"] = str(info["model_name"])
    return metadata


def _stage(info: Mapping[str, Any]) -> str:
    stage = info.get("stage")
    if stage not in STAGES:
        raise ValueError(f"model card: info['stage'] must be one of {list(STAGES)}, got {stage!r}")
    return stage


def render_model_card(info: Mapping[str, Any], template: str | os.PathLike | None = None) -> str:
    """Render a model card (README.md text) with ``huggingface_hub.ModelCard.from_template``.

    Args:
        info (`Mapping[str, Any]`):
            The card's fields (see the module docstring for the keys); secrets are redacted first.
        template (`str | os.PathLike`, *optional*):
            A template path; default ``model_card.md`` found by `treecot.hub.cards.find_template`.

    Returns:
        `str`: The card's text.
    """
    from huggingface_hub import ModelCard

    _stage(info)
    if not info.get("model_name"):
        raise ValueError("model card: info needs 'model_name' (e.g. the output directory's name)")
    info = redact(dict(info))
    path = Path(template) if template is not None else find_template(MODEL_CARD_TEMPLATE)
    stage = info["stage"]
    recipe = {k: v for k, v in (info.get("recipe") or {}).items() if v is not None}  # unset options: no row
    labels = {**_COMMON_ARGS, **_STAGE_ARGS[stage]}
    base_hub_id = _base_hub_id(info)
    dataset_rows = info.get("dataset_rows")
    fields = {
        "system_prompts": {str(k): str(v) for k, v in (info.get("system_prompts") or {}).items() if v},
        "model_name": info["model_name"],
        "description": info.get("description")
        or (
            "A chain-of-thought model fine-tuned on tree-structured reasoning data built by treecot."
            if stage == "sft"
            else "A chain-of-thought model post-trained with conservative, prefix-masked DPO on treecot "
            "preference pairs."
        ),
        "stage": stage,
        "hub_url": HUB_URL,
        "treecot_version": package_version("treecot", info.get("treecot_version")),
        "trl_version": package_version("trl", info.get("trl_version")),
        "transformers_version": package_version("transformers", info.get("transformers_version")),
        "base_model": info.get("base_model"),
        "base_model_hub_id": base_hub_id,
        "adapter": dict(info.get("adapter") or {}),
        "dataset": {
            "name": info.get("dataset_name"),
            "hub": is_repo_id(info.get("dataset_name")),
            "config": info.get("dataset_config"),
            "revision": info.get("dataset_revision"),
            "rows": int(dataset_rows) if dataset_rows is not None else None,
            "length_ranks": dict(info.get("length_ranks") or {}),
        },
        "recipe_file": info.get("recipe_file"),
        "recipe_rows": card_rows(recipe, labels, metric=True),
        "train_metrics": card_rows(info.get("train_metrics") or {}, _TRAIN_METRICS, metric=True),
        "eval_metrics": card_rows(info.get("eval_metrics") or {}, {}, metric=True),
        "load_id": info.get("hub_model_id") or info.get("output_dir") or info["model_name"],
        "paper": {**PAPER, **(info.get("paper") or {})},
    }
    return render_card(ModelCard, model_card_metadata(info), path, **fields)


def _provenance_prompts(output_dir: str | None) -> dict[str, str]:
    """The system prompts of ``<output_dir>/treecot_provenance.json`` (written by the training scripts)."""
    import json

    if not output_dir:
        return {}
    path = Path(output_dir) / "treecot_provenance.json"
    try:
        contract = json.loads(path.read_text()).get("prompt_contract") or {}
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(t): str(p) for t, p in (contract.get("system_prompts") or {}).items() if p}


# -- from a trainer ---------------------------------------------------------------------------------------


def recipe_from_args(args: Any, stage: str) -> dict[str, Any]:
    """The training arguments a card shows for ``stage`` (``"sft"`` or ``"cdpo"``), read from a TRL config."""
    if stage not in STAGES:
        raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
    recipe: dict[str, Any] = {}
    for name in [*_COMMON_ARGS, *_STAGE_ARGS[stage]]:
        if hasattr(args, name):
            value = getattr(args, name)
            if name == "max_steps" and (value is None or value < 0):
                continue
            recipe[name] = list(value) if isinstance(value, tuple) else value
    if hasattr(args, "world_size"):
        recipe["effective_batch_size"] = (
            args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        )
    if hasattr(recipe.get("lr_scheduler_type"), "value"):
        recipe["lr_scheduler_type"] = recipe["lr_scheduler_type"].value
    if hasattr(recipe.get("optim"), "value"):
        recipe["optim"] = recipe["optim"].value
    return recipe


def _train_metrics(
    log_history: list[dict[str, Any]], global_step: int, epoch: float | None
) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    for entry in log_history:
        if "train_loss" in entry:
            metrics["train_loss"] = entry["train_loss"]
        if "loss" in entry:
            metrics["final_loss"] = entry["loss"]
        for key in ("loss/dpo", "loss/sft", "rewards/accuracies", "rewards/margins", "mean_token_accuracy"):
            if key in entry:
                metrics[key] = entry[key]
    if global_step:
        metrics["global_step"] = int(global_step)
    if epoch is not None:
        metrics["epoch"] = round(float(epoch), 3)
    return {k: v for k, v in metrics.items() if not isinstance(v, float) or math.isfinite(v)}


def _eval_metrics(log_history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last evaluation's metrics (``eval_*`` keys, speed figures left out)."""
    for entry in reversed(log_history):
        found = {
            k: v
            for k, v in entry.items()
            if k.startswith("eval_") and not k.endswith(_SKIPPED_EVAL_SUFFIXES) and isinstance(v, int | float)
        }
        if found:
            return found
    return {}


def _length_ranks(dataset: Any) -> dict[str, int]:
    column_names = getattr(dataset, "column_names", None)
    if not column_names or "length_rank" not in column_names:
        return {}
    counts = Counter(dataset["length_rank"])
    order = ("shortest", "medium", "longest")
    return {rank: counts[rank] for rank in [*order, *sorted(set(counts) - set(order))] if counts[rank]}


def _base_model_of(model: Any) -> str | None:
    config = getattr(model, "config", None)
    name = getattr(config, "_name_or_path", None) or getattr(config, "name_or_path", None)
    if hasattr(model, "peft_config"):  # a PeftModel: the base model's path
        peft_config = next(iter(model.peft_config.values()), None)
        name = getattr(peft_config, "base_model_name_or_path", None) or name
    return name or None


def _card_base_model(path: str) -> str | None:
    """The ``base_model`` recorded in the card of a local model folder (lineage of e.g. an SFT model)."""
    readme = Path(path).expanduser() / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text(encoding="utf-8")
    match = re.match(r"^---\n(.*?)\n---\n", text, flags=re.DOTALL)
    if not match:
        return None
    try:
        metadata = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return None
    base = metadata.get("base_model") if isinstance(metadata, dict) else None
    if isinstance(base, list):
        base = base[0] if base else None
    return base if is_repo_id(base) else None


def _reference(trainer: Any) -> str:
    args = trainer.args
    if getattr(trainer, "ref_model", None) is not None:
        source = "a separate reference model"
        name = _base_model_of(trainer.ref_model)
        if name:
            source += f" (`{name}`)"
        return source
    if getattr(args, "precompute_ref_log_probs", False):
        return "the initial policy (log-probs precomputed before training)"
    if hasattr(trainer.model, "peft_config"):
        return "the initial policy (the adapter disabled)"
    return "the initial policy"


def model_card_info(trainer: Any, stage: str, **overrides: Any) -> dict[str, Any]:
    """The ``info`` of :func:`render_model_card` for a trainer: arguments, state, data, model lineage.

    ``overrides`` (any ``info`` key) win over what is read from the trainer; ``None`` values are ignored. Use
    them for what a trainer cannot know: ``dataset_name`` / ``dataset_config`` / ``dataset_revision``,
    ``recipe_file``, ``base_model`` (when the model was passed as an object) and ``eval_metrics`` from an
    external evaluation.
    """
    args = trainer.args
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base_model = overrides.pop("base_model", None) or _base_model_of(trainer.model)
    if base_model and os.path.isdir(os.path.expanduser(base_model)):
        resolved = _embedded_hub_id(base_model)
        base_model = resolved or base_model
    info: dict[str, Any] = {
        "stage": stage,
        "model_name": (args.hub_model_id or "").split("/")[-1] or Path(args.output_dir).name,
        "hub_model_id": getattr(trainer, "hub_model_id", None) or args.hub_model_id,
        "output_dir": args.output_dir,
        "base_model": base_model,
        "recipe": recipe_from_args(args, stage),
        "train_metrics": _train_metrics(
            trainer.state.log_history, trainer.state.global_step, trainer.state.epoch
        ),
        "eval_metrics": _eval_metrics(trainer.state.log_history),
        "tags": [t for t in getattr(trainer, "_tag_names", []) if t not in ("treecot", "trl")],
        "paper": dict(getattr(trainer, "_paper", None) or PAPER),
    }
    if stage == "cdpo":
        info["recipe"]["reference"] = _reference(trainer)
    train_dataset = getattr(trainer, "train_dataset", None)
    if train_dataset is not None and hasattr(train_dataset, "__len__"):
        info["dataset_rows"] = len(train_dataset)
        info["length_ranks"] = _length_ranks(train_dataset)
        try:
            from treecot.prompts import dataset_contract

            contract = dataset_contract(train_dataset) or {}
        except (ValueError, KeyError, TypeError):
            contract = {}
        prompts = {t: p for t, p in (contract.get("system_prompts") or {}).items() if p}
        if prompts:
            info["system_prompts"] = prompts
    if not info.get("system_prompts"):
        prompts = _provenance_prompts(args.output_dir)
        if prompts:
            info["system_prompts"] = prompts
    if hasattr(trainer.model, "peft_config"):
        peft_config = next(iter(trainer.model.peft_config.values()))
        adapter = {"type": str(getattr(peft_config, "peft_type", "LORA")).split(".")[-1]}
        for key in ("r", "lora_alpha", "lora_dropout", "target_modules"):
            value = getattr(peft_config, key, None)
            if value is not None:
                adapter[key] = sorted(value) if isinstance(value, set | frozenset) else value
        info["adapter"] = adapter
    extra_metrics = overrides.pop("eval_metrics", None)
    extra_tags = overrides.pop("tags", None)
    info.update(overrides)
    if extra_metrics:
        info["eval_metrics"] = {**info["eval_metrics"], **dict(extra_metrics)}
    if extra_tags:
        extra = [extra_tags] if isinstance(extra_tags, str) else list(extra_tags)
        info["tags"] = list(dict.fromkeys([*info["tags"], *extra]))
    if not info.get("base_model_hub_id") and info.get("base_model") and not is_repo_id(info["base_model"]):
        lineage = _card_base_model(info["base_model"])
        if lineage:
            info["base_model_hub_id"] = lineage
    return info


def _embedded_hub_id(path: str) -> str | None:
    """The Hub id of a treecot embedded model whose cached directory is ``path``, else None.

    The cache directory written by `treecot.models.embedded_model_dir` records its key (name + GGUF hash) in
    ``treecot_complete.json``; nothing is converted or downloaded here.
    """
    import json

    from treecot.models import EMBEDDED

    marker = Path(path).expanduser() / "treecot_complete.json"
    try:
        key = json.loads(marker.read_text(encoding="utf-8")).get("key", "")
    except (OSError, ValueError, AttributeError):
        return None
    for spec in EMBEDDED.values():
        if isinstance(key, str) and key.startswith(f"{spec.name}-{spec.sha256[:12]}-"):
            return spec.hub_id
    return None


def write_model_card(trainer: Any, stage: str, **overrides: Any) -> Path | None:
    """Render the card of ``trainer`` and write it to ``<output_dir>/README.md`` (main process only).

    The template is the trainer's ``_template_file`` (TRL's attribute; default ``model_card.md``), found by
    `treecot.hub.cards.find_template`.

    Args:
        trainer (`Any`):
            A finished treecot trainer (`BalancedSFTTrainer`, `CDPOTrainer`: a TRL trainer with
            `TreecotModelCardMixin`, whose ``_template_file`` and ``_paper`` are treecot's).
        stage (`str`):
            ``"sft"`` or ``"cdpo"``.
        overrides (`Any`):
            Any ``info`` key of :func:`render_model_card` (see :func:`model_card_info`).

    Returns:
        `Path | None`: The path written, or None on other processes.
    """
    if not trainer.is_world_process_zero():
        return None
    template = find_template(getattr(trainer, "_template_file", None) or MODEL_CARD_TEMPLATE)
    text = render_model_card(model_card_info(trainer, stage, **overrides), template=template)
    path = Path(trainer.args.output_dir) / "README.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


class TreecotModelCardMixin:
    """`create_model_card` for treecot's trainers (put it before the TRL trainer in the bases).

    TRL's own `create_model_card` cannot render treecot's card: it always builds a fixed `ModelCardData`
    (library ``transformers``, a ``generated_from_trainer`` tag, no license or pipeline tag), reads
    ``_template_file`` from inside the `trl` package, and passes a fixed set of fields (no recipe, metrics,
    length ranks, adapter, lineage or system prompts). Its seams are used where they exist: the trainers set
    ``_tag_names``, ``_paper`` (cited by the card) and ``_template_file`` (treecot's template name), and this
    override reads them. TRL calls it at every checkpoint save and `push_to_hub` calls it before uploading, so the
    pushed README is treecot's card. Arguments (and any `info` key of `render_model_card` as a keyword) override
    the trainer's `model_card_info`, which overrides what is read from the trainer. Subclasses set `card_stage`
    (TRL has no stage attribute).
    """

    card_stage: str = ""

    def create_model_card(
        self,
        model_name: str | None = None,
        dataset_name: str | None = None,
        tags: str | list[str] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write treecot's model card to `output_dir/README.md` (main process only)."""
        info = {**getattr(self, "model_card_info", {}), **kwargs}
        for key, value in (("model_name", model_name), ("dataset_name", dataset_name), ("tags", tags)):
            if value is not None:
                info[key] = value
        write_model_card(self, self.card_stage, **info)
