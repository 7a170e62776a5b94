"""CoT-aware post-training: TRL 1.16 subclasses for balanced SFT and conservative, prefix-masked DPO.

>>> from treecot.trainers import BalancedSFTConfig, BalancedSFTTrainer, CDPOConfig, CDPOTrainer
"""

from .cards import model_card_info, render_model_card, write_model_card
from .cdpo import (
    CDPOConfig,
    CDPOTrainer,
    DataCollatorForMaskedPreference,
    cdpo_loss,
    shared_prefix_token_count,
    to_conversational_preference,
)
from .sft import BalancedSFTConfig, BalancedSFTTrainer, split_last_turn

__all__ = [
    "BalancedSFTConfig",
    "BalancedSFTTrainer",
    "CDPOConfig",
    "CDPOTrainer",
    "DataCollatorForMaskedPreference",
    "cdpo_loss",
    "model_card_info",
    "render_model_card",
    "shared_prefix_token_count",
    "split_last_turn",
    "to_conversational_preference",
    "write_model_card",
]
