"""What the training scripts (`treecot.scripts.sft`, `treecot.scripts.dpo`) share.

Arguments come from a YAML recipe and/or the command line (command line wins), parsed by TRL's `TrlParser`; an
unknown key fails with its name. This module resolves treecot's model names, loads a treecot dataset config, and
runs the shared tail of a training (card, provenance, save, push).

A Hub token given as `hub_token` (`--hub_token`, or the recipe) never reaches a saved file: transformers pickles
the training arguments into `training_args.bin` (next to the model and in every checkpoint), so the scripts move
the token out of the arguments into the process's `HF_TOKEN` for the run (see `hub_token_outside_args`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import ScriptArguments

__all__ = [
    "with_config_option",
    "TrainScriptArguments",
    "check_dataset_config",
    "check_placeholders",
    "dataset_configs",
    "describe_run",
    "finish_training",
    "hub_token_outside_args",
    "ignore_bool_buffers",
    "load_policy",
    "load_training_datasets",
    "recipe_file_from_argv",
    "run_training",
    "write_provenance",
]

_FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
#: A value left as a recipe placeholder, e.g. `<you>/treecot-math`.
_PLACEHOLDER = re.compile(r"<[^<>\s]+>")
_PLACEHOLDER_FIELDS = ("dataset_name", "model_name_or_path", "ref_model_name_or_path", "hub_model_id")


@dataclass
class TrainScriptArguments(ScriptArguments):
    """TRL's `ScriptArguments` for treecot datasets, shared by the training scripts.

    Args:
        dataset_name (`str`):
            A treecot dataset: a Hub id or a local folder in the layout written by `treecot.hub` (its
            `dataset_config` is loaded at `dataset_revision`), or a `.jsonl` / `.json` / `.parquet` file of rows.
        dataset_config (`str`, *optional*):
            Config of the dataset to train on; defaults to `"sft"` for the SFT script and `"dpo"` for the DPO script.
        dataset_revision (`str`, *optional*):
            Branch, tag or commit of the dataset (default: `main`).
        dataset_train_split (`str`, *optional*, defaults to `"train"`):
            Split to train on.
        dataset_test_split (`str`, *optional*, defaults to `"test"`):
            Split to evaluate on when `eval_strategy` is not `"no"`.
        dataset_streaming (`bool`, *optional*, defaults to `False`):
            Not supported: treecot datasets are loaded in memory (setting it is an error).
        ignore_bias_buffers (`bool`, *optional*, defaults to `False`):
            Leave the model's boolean buffers out of DDP's synchronisation (TRL's fix for DDP errors on LM
            bias/mask buffers).
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "treecot dataset: Hub id, local Hub-layout folder, or a .jsonl/.json/.parquet file."
        },
    )
    dataset_config: str | None = field(
        default=None, metadata={"help": "Dataset config (default: 'sft' for sft, 'dpo' for dpo)."}
    )
    dataset_revision: str | None = field(default=None, metadata={"help": "Dataset branch, tag or commit."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split to train on."})
    dataset_test_split: str = field(
        default="test", metadata={"help": "Split to evaluate on when eval_strategy is not 'no'."}
    )


def load_training_datasets(
    args: TrainScriptArguments, default_config: str, evaluate: bool
) -> tuple[Any, Any]:
    """`(train_dataset, eval_dataset or None)` for the script arguments.

    A file path is read with the matching `datasets` builder (its only split is the train split); anything else
    goes through `treecot.hub.load_versioned`.
    """
    if args.dataset_streaming:
        raise ValueError("dataset_streaming is not supported: treecot datasets are loaded in memory")
    if not args.dataset_name:
        raise ValueError("dataset_name is required (a treecot dataset id, folder, or a .jsonl/.parquet file)")
    config = args.dataset_config or default_config
    path = Path(args.dataset_name).expanduser()
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in _FILE_BUILDERS:
        if not path.is_file():
            raise FileNotFoundError(f"dataset file {str(path)!r} does not exist")
        from datasets import load_dataset

        train = load_dataset(_FILE_BUILDERS[suffix], data_files=str(path), split="train")
        if evaluate:
            raise ValueError(
                f"eval_strategy is set but {path.name} is a single file with no {args.dataset_test_split!r} split; "
                "set eval_strategy='no' or use a dataset with a test split"
            )
        return train, None
    from treecot.hub import load_versioned

    check_dataset_config(args.dataset_name, config, args.dataset_revision)
    splits = load_versioned(args.dataset_name, config, revision=args.dataset_revision)
    if args.dataset_train_split not in splits:
        raise ValueError(
            f"split {args.dataset_train_split!r} not in config {config!r} of {args.dataset_name!r} "
            f"(splits: {', '.join(splits)})"
        )
    eval_dataset = None
    if evaluate:
        if args.dataset_test_split not in splits:
            raise ValueError(
                f"eval_strategy is set but config {config!r} of {args.dataset_name!r} has no split "
                f"{args.dataset_test_split!r} (splits: {', '.join(splits)})"
            )
        eval_dataset = splits[args.dataset_test_split]
    return splits[args.dataset_train_split], eval_dataset


#: Why a treecot build leaves a config out, and what to change (`treecot build` writes a config only when it has rows).
_MISSING_CONFIG_HINTS = {
    "dpo": (
        "the build produced no preference pairs (no problem had both a correct and a wrong path); "
        "rebuild with more problems (problems.limit), more rollouts (generate.search.max_rollouts) "
        "or an easier slice of problems"
    ),
    "sft": (
        "the build produced no SFT rows (no problem had a correct path); rebuild with more problems "
        "(problems.limit), more rollouts (generate.search.max_rollouts) or an easier slice of problems"
    ),
}


def _local_configs(name: str, revision: str | None) -> list[str] | None:
    """The configs a local-layout dataset folder declares at `revision` (None: not a local layout, or no push
    at that revision: `load_versioned` then says what is wrong)."""
    import yaml

    from treecot.hub import LOCAL_REFS_FILE

    folder = Path(name).expanduser()
    if not (folder / LOCAL_REFS_FILE).is_file():
        return None
    readme = folder / (revision or "main") / "README.md"
    if not readme.is_file():
        return None
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", readme.read_text(), flags=re.S)
    metadata = (yaml.safe_load(match.group(1)) if match else None) or {}
    return [str(c.get("config_name")) for c in metadata.get("configs") or []]


def dataset_configs(name: str, revision: str | None = None) -> list[str] | None:
    """The config names of a treecot dataset (local layout folder or Hub id) at `revision`; None when they
    cannot be listed here (loading the dataset then reports the problem)."""
    from treecot.hub.targets import default_local_dir, online_configured

    configs = _local_configs(name, revision)
    if configs is not None:
        return configs
    if os.path.exists(os.path.expanduser(name)):
        return None
    if not online_configured(None, None):  # as `load_versioned`: a Hub id is read from its local layout
        try:
            return _local_configs(str(default_local_dir(name)), revision)
        except ValueError:  # not a valid repo id: load_versioned says so
            return None
    try:
        from datasets import get_dataset_config_names

        return list(get_dataset_config_names(name, revision=revision))
    except Exception:  # noqa: BLE001 — offline, private, …: load_versioned reports it with its own message
        return None


def check_dataset_config(name: str, config: str, revision: str | None = None) -> None:
    """Exit with one line when the dataset has no config `config`: the configs it has, why a treecot build
    leaves that config out, and what to change; instead of the loader's traceback (`config 'dpo' not found`)."""
    configs = dataset_configs(name, revision)
    if configs is None or config in configs:
        return
    why = _MISSING_CONFIG_HINTS.get(config, "pick one of these with --dataset_config")
    at = f" at revision {revision!r}" if revision else ""
    raise SystemExit(
        f"error: dataset {name!r}{at} has no config {config!r} (its configs: {', '.join(configs) or 'none'}): {why}"
    )


def load_policy(model_args: Any, training_args: Any) -> tuple[Any, Any]:
    """`(model, tokenizer)` for TRL's trainers from a `ModelConfig`.

    treecot names are resolved offline: `"tiny"` becomes an in-memory random model (tests, smoke runs) and an
    embedded name such as `"smollm2-135m-instruct"` its cached safetensors directory. Any other value is passed
    through as a path or Hub id. Paths are returned as strings so that TRL loads them with
    `training_args.model_init_kwargs` (set here from `dtype`, `attn_implementation` and `model_revision`).
    """
    from treecot.models import TINY, load_model, load_tokenizer, resolve_model_path

    name = model_args.model_name_or_path
    if not name:
        raise ValueError("model_name_or_path is required")
    if name == TINY:
        return load_model(TINY)
    init_kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": getattr(training_args, "trust_remote_code", False),
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    init_kwargs.update(training_args.model_init_kwargs or {})
    training_args.model_init_kwargs = init_kwargs
    path = resolve_model_path(name)
    if os.path.isdir(os.path.expanduser(path)):
        path = os.path.expanduser(path)
    return path, load_tokenizer(path)


@contextlib.contextmanager
def hub_token_outside_args(training_args: Any) -> Iterator[None]:
    """Run a training with its Hub token held outside `training_args`, so that no saved file holds it.

    transformers saves the training arguments as they are (a pickle: `training_args.bin`, in the output
    directory and in every checkpoint, uploaded with a push). Inside this block `training_args.hub_token` is
    None and the token is the process's `HF_TOKEN`, which every Hub call of the trainer (create the repo,
    push checkpoints and the final model) uses when it is given no token; on exit `HF_TOKEN` is restored
    to what it was, and the arguments keep no token.
    """
    token = getattr(training_args, "hub_token", None)
    if not token:
        yield
        return
    before = os.environ.get("HF_TOKEN")
    training_args.hub_token = None
    os.environ["HF_TOKEN"] = token
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_TOKEN", None)
        else:
            os.environ["HF_TOKEN"] = before


def check_placeholders(*arguments: Any) -> None:
    """Raise if a recipe placeholder such as `<you>/treecot-math` was left in a dataset, model or Hub id.

    The GPU recipes ship with placeholders for the user's own repositories; this names the key to replace
    instead of failing later with a Hub error.
    """
    for args in arguments:
        for name in _PLACEHOLDER_FIELDS:
            if name == "hub_model_id" and not getattr(args, "push_to_hub", True):
                continue  # never used without a push
            value = getattr(args, name, None)
            if isinstance(value, str) and _PLACEHOLDER.search(value):
                raise ValueError(
                    f"{name}={value!r} is a recipe placeholder: replace it with your own id (e.g. --{name} "
                    "my-org/my-repo) in the recipe or on the command line"
                )


def recipe_file_from_argv(argv: Sequence[str]) -> str | None:
    """The value of `--config` (`--config FILE` or `--config=FILE`) in `argv`, if any."""
    argv = list(argv)
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
    return None


def describe_run(
    trainer: Any,
    script_args: TrainScriptArguments,
    model_args: Any,
    default_config: str,
    recipe_file: str | None = None,
) -> None:
    """Record what the model card needs and the trainer cannot know in `trainer.model_card_info`.

    The dataset (name, config, revision), the recipe file and the base model's Hub id (treecot's embedded
    names, e.g. `smollm2-135m-instruct`, are cached local directories whose Hub id is known).
    """
    from treecot.models import EMBEDDED, TINY

    name = model_args.model_name_or_path
    if name in EMBEDDED:
        base_model = EMBEDDED[name].hub_id
    elif name == TINY:
        base_model = None
    else:
        base_model = name
    info = {
        "dataset_name": script_args.dataset_name,
        "dataset_config": script_args.dataset_config or default_config,
        "dataset_revision": script_args.dataset_revision or "main",
        "recipe_file": recipe_file,
        "base_model": base_model,
    }
    if Path(str(script_args.dataset_name)).suffix.lower() in _FILE_BUILDERS:
        info["dataset_config"] = None  # a single file: no config, no revision
        info["dataset_revision"] = None
    trainer.model_card_info.update({k: v for k, v in info.items() if v is not None})


def end_training(trainer: Any) -> None:
    """Release the distributed wrapper, then destroy the process group (`Trainer.end`).

    The DDP wrapper's gradient reducer holds the gloo process group; if the group is destroyed first, the
    reducer's destructor later blocks forever joining gloo's threads when the returned trainer is freed at
    interpreter exit (seen as a 2-process run that trains, saves, and never exits). So the wrapper goes first.
    """
    import gc

    trainer.model_wrapped = trainer.model
    trainer.accelerator.free_memory()  # drops the accelerator's references to the prepared (wrapped) model
    gc.collect()
    trainer.end()


def restore_use_cache(model: Any) -> None:
    """Save the model as it will be used: with its KV cache on. `transformers.Trainer` sets
    `config.use_cache = args.use_cache` (False) for training, so every trained model's `config.json` said
    `use_cache: false`. Generation reads `generation_config.use_cache` (True) and was not slowed by it (200
    greedy tokens took the same time either way), but any consumer that honours the model config would be."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is not None and getattr(config, "use_cache", None) is False:
        config.use_cache = True


def finish_training(trainer: Any, training_args: Any) -> None:
    """Save the model and its card (README.md) to `output_dir`; with `push_to_hub`, upload both.

    `Trainer.push_to_hub` saves the model, writes the card (the trainers' `create_model_card`) and uploads
    `output_dir` to `hub_model_id` in one commit; without it, the model is saved and the card written locally.
    """
    restore_use_cache(trainer.model)
    if training_args.push_to_hub:
        trainer.push_to_hub(commit_message="End of training")
    else:
        trainer.save_model(training_args.output_dir)
        trainer.create_model_card()


def write_provenance(
    trainer: Any, output_dir: str, recipe_file: str | None = None, contract: dict[str, Any] | None = None
) -> Path | None:
    """Write ``treecot_provenance.json`` (the training dataset, its revision, the recipe's hash and the
    prompt contract of the training rows) to `output_dir` on the main process; `treecot eval` reads it, so
    leaderboard rows name the data a model was trained on and the model is evaluated under the prompt it
    was trained with."""
    import hashlib
    import json

    if not trainer.accelerator.is_main_process:
        return None
    info = trainer.model_card_info
    recipe_hash = None
    if recipe_file and Path(recipe_file).is_file():
        recipe_hash = hashlib.sha256(Path(recipe_file).read_bytes()).hexdigest()[:12]
    data = {
        "dataset_repo": info.get("dataset_name"),
        "dataset_config": info.get("dataset_config"),
        "dataset_revision": info.get("dataset_revision"),
        "recipe_hash": recipe_hash,
        "recipe_file": recipe_file,
        "base_model": info.get("base_model"),
        "prompt_contract": contract,
    }
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "treecot_provenance.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def run_training(
    trainer: Any,
    script_args: Any,
    model_args: Any,
    *,
    default_config: str,
    recipe_file: str | None = None,
    contract: dict[str, Any] | None = None,
) -> Any:
    """Shared tail of the scripts: record the run for the card, train, save (and push) model and card, say
    where, then end the distributed run. Returns the trainer. `contract`: the training rows' prompt
    contract (`treecot.prompts.dataset_contract`), written to the provenance file."""
    training_args = trainer.args
    describe_run(trainer, script_args, model_args, default_config=default_config, recipe_file=recipe_file)
    prompts = {t: p for t, p in ((contract or {}).get("system_prompts") or {}).items() if p}
    if prompts:  # the card's usage snippet prompts the model as it was trained
        trainer.model_card_info["system_prompts"] = prompts
    if getattr(script_args, "ignore_bias_buffers", False):
        ignore_bool_buffers(trainer.model)
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    write_provenance(
        trainer, training_args.output_dir, recipe_file, contract
    )  # before a push: it is uploaded too
    finish_training(trainer, training_args)
    where = f"{training_args.output_dir}" + (
        f" and pushed to {trainer.hub_model_id}" if training_args.push_to_hub else ""
    )
    trainer.accelerator.print(
        f"Model and card saved to {where} (trained on {trainer.accelerator.num_processes} process(es))"
    )
    end_training(trainer)
    return trainer


def ignore_bool_buffers(model: Any) -> None:
    """Leave `model`'s boolean buffers out of DDP's parameter/buffer synchronisation (as TRL's DPO script does
    for `ignore_bias_buffers`, see huggingface/transformers#22482)."""
    import torch

    model._ddp_params_and_buffers_to_ignore = [
        name for name, buffer in model.named_buffers() if buffer.dtype == torch.bool
    ]


def with_config_option(parser):
    """`parser` (a `trl.TrlParser`) with ``--config`` listed in its ``--help``. TRL reads ``--config FILE``
    itself in `parse_args_and_config` (and removes it before parsing); this only documents it. Its default
    is `argparse.SUPPRESS` so that a parse never gains a ``config`` attribute (HfArgumentParser would then
    return an extra namespace)."""
    parser.add_argument(
        "--config",
        metavar="YAML",
        default=argparse.SUPPRESS,
        help="recipe YAML whose keys set the defaults of the options below (command-line flags win)",
    )
    return parser
