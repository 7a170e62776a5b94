"""Supervised fine-tuning on treecot SFT rows with Thoughts Length Balance (Marco-o1 v2, arXiv 2503.01461, §2).

`BalancedSFTTrainer` is a thin subclass of TRL's `SFTTrainer`. Before TRL's own preparation it

1. keeps the rows whose `length_rank` is in `length_ranks` (the paper's recipe: the **longest** correct path per
   problem) and whose `source` is in `sources`;
2. splits each conversation into `prompt` (every message before the final assistant turn) and `completion` (the
   final assistant turn), so that TRL's completion-only loss trains on the assistant tokens only, whatever the chat
   template (SmolLM2's template has no `{% generation %}` markers, which TRL's `assistant_only_loss` needs);
3. with `length_weights`, attaches a per-row `sample_weight` that scales the row's token losses.

Packing (`packing=True`) works as in TRL; it cannot be combined with `length_weights` (TRL's packing keeps only
`input_ids` and `labels`, so per-row weights would be lost).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from datasets import Dataset, IterableDataset
from transformers import PreTrainedTokenizerBase, ProcessorMixin
from trl import SFTConfig, SFTTrainer

from .cards import MODEL_CARD_TEMPLATE, PAPER, TreecotModelCardMixin

__all__ = [
    "BalancedSFTConfig",
    "BalancedSFTTrainer",
    "LENGTH_RANKS",
    "SAMPLE_WEIGHT_COLUMN",
    "split_last_turn",
]

LENGTH_RANKS = ("shortest", "medium", "longest")
SAMPLE_WEIGHT_COLUMN = "sample_weight"


def split_last_turn(example: dict[str, Any]) -> dict[str, Any]:
    """`messages` → `prompt` (all messages before the final assistant turn) + `completion` (that turn).

    Raises if the conversation does not end with an assistant message.
    """
    messages = example["messages"]
    if not messages or messages[-1].get("role") != "assistant":
        role = messages[-1].get("role") if messages else None
        raise ValueError(
            f"an SFT row must end with an assistant message to train on, got last role {role!r} "
            f"(problem_id={example.get('problem_id')!r})"
        )
    return {"prompt": messages[:-1], "completion": messages[-1:]}


@dataclass
class BalancedSFTConfig(SFTConfig):
    r"""
    Configuration class for [`BalancedSFTTrainer`]: TRL's [`~trl.SFTConfig`] plus Thoughts Length Balance.

    Every [`~trl.SFTConfig`] parameter keeps its meaning, except that `completion_only_loss` defaults to `True`:
    the loss covers the final assistant turn only (system and user tokens get label -100).

    Args:
        length_ranks (`list[str]`, *optional*, defaults to `["longest"]`):
            Which rows to keep by their `length_rank` column (the rank of the path's length among the correct paths
            of its problem): any of `"shortest"`, `"medium"`, `"longest"`, or `["all"]` to keep every row (needed
            for datasets without a `length_rank` column). The paper's recipe is the longest path for SFT.
        length_weights (`dict[str, float]`, *optional*):
            Per-rank loss weights, e.g. `{"shortest": 0.5, "longest": 1.0}`: every token loss of a row is multiplied
            by its rank's weight (ranks not listed weigh 1.0), and the sum is divided by the number of supervised
            tokens as in TRL's loss, so all-ones weights give TRL's loss exactly. Not compatible with packing or
            padding-free batches, with `loss_type="dft"` or with `label_smoothing_factor`.
        sources (`list[str]`, *optional*):
            Keep only rows whose `source` column is listed (`"mcts"`, `"distill"`); `None` keeps every row.
        completion_only_loss (`bool`, *optional*, defaults to `True`):
            As in [`~trl.SFTConfig`]; `True` here so that only the assistant's answer is trained.
    """

    _VALID_DICT_FIELDS = SFTConfig._VALID_DICT_FIELDS + ["length_weights"]

    length_ranks: list[str] = field(
        default_factory=lambda: ["longest"],
        metadata={
            "help": "Rows to keep by `length_rank`: any of 'shortest', 'medium', 'longest', or 'all'. The paper's "
            "recipe is 'longest'."
        },
    )
    length_weights: dict[str, float] | str | None = field(
        default=None,
        metadata={
            "help": 'Per-rank loss weights as JSON, e.g. \'{"shortest": 0.5, "longest": 1.0}\' (unlisted ranks: 1.0). '
            "Not compatible with packing."
        },
    )
    sources: list[str] | None = field(
        default=None,
        metadata={"help": "Keep only rows whose `source` is listed ('mcts', 'distill'); default: all."},
    )
    completion_only_loss: bool | None = field(
        default=True,
        metadata={"help": "Compute the loss on the final assistant turn only (system/user tokens get -100)."},
    )

    def __post_init__(self):
        super().__post_init__()
        ranks = [self.length_ranks] if isinstance(self.length_ranks, str) else list(self.length_ranks)
        if "all" in ranks:
            if len(ranks) > 1:
                raise ValueError(f"length_ranks: 'all' cannot be combined with other ranks, got {ranks}")
        else:
            unknown = sorted(set(ranks) - set(LENGTH_RANKS))
            if unknown or not ranks:
                raise ValueError(
                    f"length_ranks has unknown rank(s) {unknown or ranks}; use any of {list(LENGTH_RANKS)} or 'all'"
                )
        self.length_ranks = ranks
        if self.length_weights is not None:
            weights = dict(self.length_weights)
            unknown = sorted(set(weights) - set(LENGTH_RANKS))
            if unknown:
                raise ValueError(
                    f"length_weights has unknown rank(s) {unknown}; ranks are {list(LENGTH_RANKS)}"
                )
            for rank, weight in weights.items():
                if not isinstance(weight, int | float) or weight < 0:
                    raise ValueError(f"length_weights[{rank!r}] must be a number >= 0, got {weight!r}")
            self.length_weights = {rank: float(w) for rank, w in weights.items()}
            if self.packing or self.padding_free:
                raise ValueError(
                    "length_weights cannot be combined with packing or padding_free: TRL packs only input_ids and "
                    "labels, so the per-row weights would be lost. Drop length_weights or set packing=False."
                )
            if self.loss_type != "nll" or self.label_smoothing_factor > 0:
                raise ValueError(
                    "length_weights needs loss_type='nll' and label_smoothing_factor=0 (the weights scale the "
                    f"per-token NLL), got loss_type={self.loss_type!r}, "
                    f"label_smoothing_factor={self.label_smoothing_factor}"
                )
        if self.sources is not None:
            self.sources = [self.sources] if isinstance(self.sources, str) else list(self.sources)
            if not self.sources:
                raise ValueError("sources must name at least one source (or be None to keep all)")


class _WeightedForward:
    """Callable stand-in for the model that scales each row's per-token log-probs by its sample weight.

    TRL's `SFTTrainer.compute_loss` takes the loss as −Σ log_probs / n_tokens from the fused-LM-head output; scaling
    `log_probs` row by row turns it into the weighted loss while keeping TRL's token normalisation, gradient
    accumulation scaling and metrics (entropy and token accuracy do not read `log_probs`).
    """

    def __init__(self, model: Callable[..., Any], weights: torch.Tensor):
        self.model = model
        self.weights = weights

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        if kwargs.get("fused_lm_head"):
            out.log_probs = out.log_probs * self.weights.to(out.log_probs)[:, None]
        return out


class _CollatorWithSampleWeights:
    """Wraps a collator to add the examples' `sample_weight` as a float tensor of shape `(batch,)`."""

    def __init__(self, collator: Callable[[list[dict[str, Any]]], dict[str, Any]]):
        self.collator = collator

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        if SAMPLE_WEIGHT_COLUMN in examples[0]:
            batch[SAMPLE_WEIGHT_COLUMN] = torch.tensor(
                [float(e[SAMPLE_WEIGHT_COLUMN]) for e in examples], dtype=torch.float32
            )
        return batch


class BalancedSFTTrainer(TreecotModelCardMixin, SFTTrainer):
    """TRL's [`~trl.SFTTrainer`] on the `sft` config of a treecot dataset, with Thoughts Length Balance.

    Takes the same arguments as [`~trl.SFTTrainer`] with a [`BalancedSFTConfig`]. Rows are treecot SFT rows
    (`messages`, `length_rank`, `source`, …); rows are selected by `length_ranks` / `sources`, the final assistant
    turn is the completion (assistant-only loss), and `length_weights` weighs rows by rank.

    Overridden methods: `__init__` (wraps the collator when weighting), `_prepare_dataset` (selection, prompt /
    completion split, weights), `_set_signature_columns_if_needed` (keeps `sample_weight`), `compute_loss`
    (applies the weights) and `create_model_card` (treecot's card, see [`treecot.trainers.cards`]).

    `model_card_info` (a dict, empty by default) holds card fields the trainer cannot know, such as
    `dataset_name`, `dataset_revision` or `recipe_file`; the training scripts fill it.
    """

    card_stage = "sft"

    _tag_names = ["trl", "sft", "treecot"]
    _name = "BalancedSFT"
    _paper = PAPER
    _template_file = MODEL_CARD_TEMPLATE

    def __init__(self, model, args: BalancedSFTConfig | None = None, *pargs, **kwargs):
        if args is None:
            raise ValueError(
                "BalancedSFTTrainer needs a BalancedSFTConfig (`args=BalancedSFTConfig(output_dir=...)`)"
            )
        if not isinstance(args, BalancedSFTConfig):
            raise TypeError(f"BalancedSFTTrainer needs a BalancedSFTConfig, got {type(args).__name__}")
        super().__init__(model, args, *pargs, **kwargs)
        self.model_card_info: dict[str, Any] = {}
        if args.length_weights is not None:
            self.data_collator = _CollatorWithSampleWeights(self.data_collator)

    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin,
        args: SFTConfig,
        packing: bool,
        formatting_func: Callable[[dict], str] | None,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        first = next(iter(dataset))
        if "input_ids" not in first:
            dataset = self._select(dataset, args, dataset_name)
            first = next(iter(dataset))
            if "messages" in first and "prompt" not in first:
                dataset = dataset.map(split_last_turn, remove_columns=["messages"])
        return super()._prepare_dataset(
            dataset, processing_class, args, packing, formatting_func, dataset_name
        )

    @staticmethod
    def _select(
        dataset: Dataset | IterableDataset, args: BalancedSFTConfig, name: str
    ) -> Dataset | IterableDataset:
        """Filter by `length_ranks` and `sources`, and attach `sample_weight` when `length_weights` is set."""
        first = next(iter(dataset))
        ranks = getattr(args, "length_ranks", ["all"])
        sources = getattr(args, "sources", None)
        weights = getattr(args, "length_weights", None)
        for column, wanted in (("length_rank", ranks != ["all"] or weights), ("source", sources)):
            if wanted and column not in first:
                raise ValueError(
                    f"the {name} dataset has no `{column}` column (columns: {sorted(first)}), so rows cannot be "
                    f"selected or weighted by it; use length_ranks=['all'] / sources=None / length_weights=None "
                    "for datasets without it"
                )
        if ranks != ["all"]:
            keep = set(ranks)
            dataset = dataset.filter(lambda row: row["length_rank"] in keep)
        if sources is not None:
            keep_sources = set(sources)
            dataset = dataset.filter(lambda row: row["source"] in keep_sources)
        if isinstance(dataset, Dataset) and len(dataset) == 0:
            raise ValueError(
                f"no {name} rows left after selecting length_ranks={ranks} and sources={sources}; check the "
                "dataset's `length_rank` / `source` values"
            )
        if weights is not None:
            dataset = dataset.map(lambda row: {SAMPLE_WEIGHT_COLUMN: weights.get(row["length_rank"], 1.0)})
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if SAMPLE_WEIGHT_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, SAMPLE_WEIGHT_COLUMN]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop(SAMPLE_WEIGHT_COLUMN, None)
        if weights is not None:
            model = _WeightedForward(model, weights)
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
