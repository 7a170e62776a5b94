"""Dataset cards: the README.md that `treecot.hub.push_dataset` writes into a dataset repository.

The template is ``hub_cards/dataset_card.md``, rendered through ``huggingface_hub.DatasetCard.from_template``
(see `treecot.hub.cards`) with :func:`card_metadata` as its ``DatasetCardData`` and the body fields below.
Everything in ``info`` goes through :func:`treecot.hub.redact` first, so a token that slipped into a recipe
never reaches a card.

``info`` keys (all optional except ``repo_id`` and ``configs``)::

    repo_id          "org/name"
    configs          {config: {"splits": {split: n_rows}, "data_files": {split: glob}}}
                     (``data_files`` defaults to ``data/<config>/<split>-*.parquet``)
    pretty_name, description, license ("apache-2.0"), task_categories, tags (extra tags)
    config_hash, branch, tag, revision (used in the loading snippet), complete (bool)
    built_with       a paragraph replacing the template's "Built with treecot …" (MCTS search and build)
                     text, for datasets made otherwise (leaderboard, perturbations)
    load_revision    the revision the loading snippet names (default: revision, tag, then branch)
    local_dir        the folder of a dataset written in treecot's local layout: the loading snippet then reads
                     it with `treecot.hub.load_versioned` instead of `load_dataset(repo_id)`
    treecot_version  (defaults to the installed treecot)
    recipe           the run's configuration (dict), shown as a YAML block
    models           {role: model id}, e.g. {"A": "…Qwen…", "B": "…Llama…"}
    seeds            int, list or {name: seed}
    yield            {"problems", "solved", "paths", "correct_paths", …}: counts; "yield" is derived
    cost             {"llm_calls", "prefill_tokens", "generated_tokens", "cache_hit_tokens", "wall_seconds", …}
    histograms       [{"title": str, "path": "histograms/sft_lengths.png"}]  (files pushed alongside)
    prompt_contract  `treecot.prompts.PromptContract.to_dict()`: the system prompt of each task (used at
                     search time, in every row and at evaluation) and its training-response lengths
    quality          {measure: value}: what the build dropped and why, shared-prefix and reflection figures
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from treecot.hub.cards import card_rows, find_template, package_version, render_card
from treecot.hub.redact import redact

TEMPLATE_NAME = "dataset_card.md"
DEFAULT_TASK_CATEGORIES = ("text-generation", "question-answering")
DEFAULT_TAGS = ("treecot", "chain-of-thought", "mcts")

_SIZE_BOUNDS = (
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
)
_YIELD_LABELS = {
    "problems": "problems searched",
    "solved": "problems with a correct path",
    "paths": "root-to-answer paths",
    "correct_paths": "correct paths",
    "rollouts": "rollouts",
    "sft_rows": "SFT rows",
    "dpo_pairs": "preference pairs",
}
_COST_LABELS = {
    "llm_calls": "LLM calls",
    "prefill_tokens": "prefill tokens",
    "generated_tokens": "generated tokens",
    "cache_hit_tokens": "cache-hit tokens",
    "wall_seconds": "wall time (s)",
    "search_seconds_summed": "search time summed over trees (s, overlapping)",
}


def size_category(n_rows: int) -> str:
    """The Hub's ``size_categories`` value for ``n_rows`` rows (``"n<1K"``, ``"1K<n<10K"``, …)."""
    if n_rows < 0:
        raise ValueError(f"size_category: n_rows must be >= 0, got {n_rows}")
    for bound, label in _SIZE_BOUNDS:
        if n_rows < bound:
            return label
    return "n>1B"


def default_data_files(config: str, split: str) -> str:
    """The glob a config/split's parquet shards live under in a treecot repository."""
    return f"data/{config}/{split}-*.parquet"


def card_metadata(info: Mapping[str, Any]) -> dict[str, Any]:
    """The YAML front matter of a dataset card (license, task categories, tags, configs, size)."""
    configs = _configs(info)
    n_rows = max((sum(c["splits"].values()) for c in configs.values()), default=0)
    tags = list(dict.fromkeys([*DEFAULT_TAGS, *info.get("tags", ())]))
    metadata: dict[str, Any] = {
        "license": info.get("license", "apache-2.0"),
        "task_categories": list(info.get("task_categories", DEFAULT_TASK_CATEGORIES)),
        "language": list(info.get("language", ["en"])),
        "tags": tags,
        "size_categories": [size_category(n_rows)],
        "pretty_name": _pretty_name(info),
        "configs": [
            {
                "config_name": name,
                "data_files": [
                    {"split": split, "path": path} for split, path in config["data_files"].items()
                ],
            }
            for name, config in configs.items()
        ],
    }
    treecot_meta = {
        key: info[key] for key in ("config_hash", "branch", "tag", "complete") if info.get(key) is not None
    }
    treecot_meta["version"] = package_version("treecot", info.get("treecot_version"))
    metadata["treecot"] = treecot_meta
    return metadata


def render_dataset_card(info: Mapping[str, Any], template: str | os.PathLike | None = None) -> str:
    """Render a dataset card (README.md text) with ``huggingface_hub.DatasetCard.from_template``.

    Args:
        info (`Mapping[str, Any]`):
            The card's fields (see the module docstring for the keys); secrets are redacted first.
        template (`str | os.PathLike`, *optional*):
            A template path; default ``dataset_card.md`` found by `treecot.hub.cards.find_template`.

    Returns:
        `str`: The card's text.
    """
    from huggingface_hub import DatasetCard

    if "repo_id" not in info:
        raise ValueError("render_dataset_card: info needs 'repo_id'")
    info = redact(dict(info))
    path = Path(template) if template is not None else find_template(TEMPLATE_NAME)
    recipe = info.get("recipe")
    revision = info.get("load_revision") or info.get("revision") or info.get("tag") or info.get("branch")
    fields = {
        "repo_id": info["repo_id"],
        "pretty_name": _pretty_name(info),
        "description": info.get("description")
        or "Tree-structured chain-of-thought data: MCTS search trees, SFT paths and preference pairs.",
        "treecot_version": package_version("treecot", info.get("treecot_version")),
        "configs": _configs(info),
        "config_hash": info.get("config_hash"),
        "branch": info.get("branch"),
        "tag": info.get("tag"),
        "revision": revision,
        "built_with": str(info.get("built_with") or "").strip(),
        "local_dir": repr(str(info["local_dir"])) if info.get("local_dir") else None,  # a Python literal
        "complete": bool(info.get("complete")),
        "models": dict(info.get("models") or {}),
        "seeds": info.get("seeds"),
        "yield_stats": _yield_rows(info.get("yield") or {}),
        "cost_stats": card_rows(info.get("cost") or {}, _COST_LABELS, spaced_keys=True),
        "histograms": [
            {"title": h.get("title") or Path(h["path"]).stem, "path": h["path"]}
            for h in info.get("histograms") or []
        ],
        "prompts": _prompt_rows(info.get("prompt_contract")),
        "quality_stats": card_rows(info.get("quality") or {}, {}, spaced_keys=True),
        "recipe_yaml": yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True, width=110)
        if recipe
        else "",
    }
    return render_card(DatasetCard, card_metadata(info), path, **fields)


def _configs(info: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    configs = info.get("configs")
    if not configs:
        raise ValueError("dataset card: info['configs'] must name at least one config with its splits")
    out = {}
    for name, config in configs.items():
        splits = {str(split): int(rows) for split, rows in (config.get("splits") or {}).items()}
        if not splits:
            raise ValueError(f"dataset card: config {name!r} has no splits")
        data_files = dict(config.get("data_files") or {})
        for split in splits:
            data_files.setdefault(split, default_data_files(name, split))
        out[name] = {"splits": splits, "data_files": data_files}
    return out


def _pretty_name(info: Mapping[str, Any]) -> str:
    return info.get("pretty_name") or info["repo_id"].split("/")[-1]


def _prompt_rows(contract: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not contract:
        return []
    lengths = contract.get("response_tokens") or {}
    return [
        {"task": task, "system_prompt": prompt, "tokens": lengths.get(task) or {}}
        for task, prompt in (contract.get("system_prompts") or {}).items()
    ]


def _yield_rows(stats: Mapping[str, Any]) -> list[dict[str, str]]:
    rows = card_rows(stats, _YIELD_LABELS, spaced_keys=True)
    if stats.get("problems") and "solved" in stats:
        rows.append(
            {"label": "yield (solved / searched)", "value": f"{stats['solved'] / stats['problems']:.1%}"}
        )
    if stats.get("paths") and "correct_paths" in stats:
        rows.append({"label": "correct path rate", "value": f"{stats['correct_paths'] / stats['paths']:.1%}"})
    return rows
