"""cDPO (conservative DPO + shared-prefix masking + joint SFT loss) on a treecot dataset's `dpo` config.

    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml -m treecot.scripts.dpo \\
        --config recipes/smollm2-135m-instruct/cdpo/config_demo.yaml [--cdpo_epsilon 0.2 ...]

The recipe's keys are the fields of `DPOScriptArguments`, `CDPOConfig` and TRL's `ModelConfig`; command-line
flags override them, and an unknown key is an error that names the key. The reference model is, in order:
`ref_model_name_or_path` if set; the policy with its adapter disabled under LoRA (`use_peft`); log-probs
precomputed from the initial policy with `precompute_ref_log_probs`; otherwise a second copy of the policy.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

from trl import ModelConfig, TrlParser, get_peft_config

from treecot.prompts import dataset_contract
from treecot.scripts.utils import (
    TrainScriptArguments,
    check_placeholders,
    hub_token_outside_args,
    load_policy,
    load_training_datasets,
    recipe_file_from_argv,
    run_training,
    with_config_option,
)
from treecot.trainers.cdpo import CDPOConfig, CDPOTrainer

__all__ = ["DPOScriptArguments", "main", "make_parser", "train"]


@dataclass
class DPOScriptArguments(TrainScriptArguments):
    """Dataset arguments of the DPO script (`dataset_config` defaults to `"dpo"`) plus the reference model.

    Args:
        ref_model_name_or_path (`str`, *optional*):
            Reference model (e.g. the SFT model the policy starts from, when the policy is something else). Default:
            the initial policy (see the module docstring).
    """

    ref_model_name_or_path: str | None = field(
        default=None, metadata={"help": "Reference model path or id; default: the initial policy."}
    )


def make_parser(prog: str | None = None) -> TrlParser:
    """The script's `TrlParser` (`prog`: the name its usage line shows, e.g. `treecot dpo`)."""
    return with_config_option(TrlParser((DPOScriptArguments, CDPOConfig, ModelConfig), prog=prog))


def _reference(script_args: DPOScriptArguments, model_args: ModelConfig, training_args: CDPOConfig):
    """The reference model instance, or None to let `CDPOTrainer` choose (see the module docstring)."""
    from trl.trainer.utils import create_model_from_path

    from treecot.models import TINY, load_model, resolve_model_path

    name = script_args.ref_model_name_or_path
    if name is not None:
        if name == TINY:
            return load_model(TINY)[0]
        return create_model_from_path(resolve_model_path(name), **dict(training_args.model_init_kwargs or {}))
    # TRL builds the default reference from the policy's path; the in-memory tiny model has none, so build the
    # same initial weights here (not needed under LoRA or with precomputed reference log-probs)
    if (
        model_args.model_name_or_path == TINY
        and not model_args.use_peft
        and not training_args.precompute_ref_log_probs
    ):
        return load_model(TINY)[0]
    return None


def train(
    script_args: DPOScriptArguments,
    training_args: CDPOConfig,
    model_args: ModelConfig,
    recipe_file: str | None = None,
):
    """Build a `CDPOTrainer` from parsed arguments, train, and return the trainer.

    The model and its card (README.md, recording `recipe_file` when given) are saved to `output_dir`; with
    `push_to_hub`, both are uploaded to `hub_model_id`. A `hub_token` is used for the run's Hub calls but kept
    out of every saved file (`hub_token_outside_args`): afterwards `training_args.hub_token` is None.
    """
    check_placeholders(script_args, training_args, model_args)
    with hub_token_outside_args(training_args):  # no saved file may hold the token
        # the data first: a dataset without the config fails in one line before any model loads
        train_dataset, eval_dataset = load_training_datasets(
            script_args, default_config="dpo", evaluate=training_args.eval_strategy != "no"
        )
        model, tokenizer = load_policy(model_args, training_args)
        ref_model = _reference(script_args, model_args, training_args)
        trainer = CDPOTrainer(
            model,
            ref_model=ref_model,
            args=training_args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=tokenizer,
            peft_config=get_peft_config(model_args),
        )
        return run_training(
            trainer,
            script_args,
            model_args,
            default_config="dpo",
            recipe_file=recipe_file,
            contract=dataset_contract(train_dataset),
        )


def main(argv: Sequence[str] | None = None, prog: str | None = None):
    """Parse `argv` (default: `sys.argv[1:]`; `--config recipe.yaml` plus overrides) and train."""
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, training_args, model_args = make_parser(prog).parse_args_and_config(args=argv)
    return train(script_args, training_args, model_args, recipe_file=recipe_file_from_argv(argv))


if __name__ == "__main__":
    main()
