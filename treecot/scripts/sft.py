"""Balanced SFT on a treecot dataset's `sft` config.

    accelerate launch --config_file recipes/accelerate_configs/cpu.yaml -m treecot.scripts.sft \\
        --config recipes/smollm2-135m-instruct/sft/config_demo.yaml [--learning_rate 2e-5 ...]

The recipe's keys are the fields of `TrainScriptArguments`, `BalancedSFTConfig` and TRL's `ModelConfig`
(`model_name_or_path`, `use_peft`, `lora_r`, …); command-line flags override them, and an unknown key is an error
that names the key.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass

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
from treecot.trainers.sft import BalancedSFTConfig, BalancedSFTTrainer

__all__ = ["SFTScriptArguments", "main", "make_parser", "train"]


@dataclass
class SFTScriptArguments(TrainScriptArguments):
    """Dataset arguments of the SFT script (`dataset_config` defaults to `"sft"`)."""


def make_parser(prog: str | None = None) -> TrlParser:
    """The script's `TrlParser` (`prog`: the name its usage line shows, e.g. `treecot sft`)."""
    return with_config_option(TrlParser((SFTScriptArguments, BalancedSFTConfig, ModelConfig), prog=prog))


def train(
    script_args: SFTScriptArguments,
    training_args: BalancedSFTConfig,
    model_args: ModelConfig,
    recipe_file: str | None = None,
):
    """Build a `BalancedSFTTrainer` from parsed arguments, train, and return the trainer.

    The model and its card (README.md, recording `recipe_file` when given) are saved to `output_dir`; with
    `push_to_hub`, both are uploaded to `hub_model_id`. A `hub_token` is used for the run's Hub calls but kept
    out of every saved file (`hub_token_outside_args`): afterwards `training_args.hub_token` is None.
    """
    check_placeholders(script_args, training_args, model_args)
    with hub_token_outside_args(training_args):  # no saved file may hold the token
        # the data first: a dataset without the config fails in one line before any model loads
        train_dataset, eval_dataset = load_training_datasets(
            script_args, default_config="sft", evaluate=training_args.eval_strategy != "no"
        )
        model, tokenizer = load_policy(model_args, training_args)
        trainer = BalancedSFTTrainer(
            model,
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
            default_config="sft",
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
