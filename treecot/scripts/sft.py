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

from treecot.scripts import TrainScriptArguments, load_policy, load_training_datasets
from treecot.trainers.sft import BalancedSFTConfig, BalancedSFTTrainer

__all__ = ["SFTScriptArguments", "main", "make_parser", "train"]


@dataclass
class SFTScriptArguments(TrainScriptArguments):
    """Dataset arguments of the SFT script (`dataset_config` defaults to `"sft"`)."""


def make_parser() -> TrlParser:
    return TrlParser((SFTScriptArguments, BalancedSFTConfig, ModelConfig))


def train(script_args: SFTScriptArguments, training_args: BalancedSFTConfig, model_args: ModelConfig):
    """Build a `BalancedSFTTrainer` from parsed arguments, train, save to `output_dir`, and return the trainer."""
    model, tokenizer = load_policy(model_args, training_args)
    train_dataset, eval_dataset = load_training_datasets(
        script_args, default_config="sft", evaluate=training_args.eval_strategy != "no"
    )
    trainer = BalancedSFTTrainer(
        model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.save_model(training_args.output_dir)
    trainer.accelerator.print(
        f"Model saved to {training_args.output_dir} (trained on {trainer.accelerator.num_processes} process(es))"
    )
    if training_args.push_to_hub:
        trainer.push_to_hub(dataset_name=script_args.dataset_name)
    trainer.end()
    return trainer


def main(argv: Sequence[str] | None = None):
    """Parse `argv` (default: `sys.argv[1:]`; `--config recipe.yaml` plus overrides) and train."""
    script_args, training_args, model_args = make_parser().parse_args_and_config(
        args=list(sys.argv[1:] if argv is None else argv)
    )
    return train(script_args, training_args, model_args)


if __name__ == "__main__":
    main()
