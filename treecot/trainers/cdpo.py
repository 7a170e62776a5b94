"""Conservative DPO with shared-prefix masking and a joint SFT term (Marco-o1 v2, arXiv 2503.01461, §3).

`CDPOTrainer` is a thin subclass of TRL's `DPOTrainer`. It keeps TRL's data pipeline, reference handling
(separate model, PEFT adapter disabled, precomputed log-probs), forward pass and metrics, and changes three
things, each through a documented seam:

1. **Data** (`_prepare_dataset`): treecot preference rows carry the chosen / rejected completions as assistant
   *texts* next to a conversational prompt; they are turned into TRL's conversational preference format, and, with
   `mask_shared_prefix`, the number of completion tokens that lie inside `shared_prefix` is stored per row
   (`shared_prefix_n_tokens`, see [`shared_prefix_token_count`]).
2. **Masking** ([`DataCollatorForMaskedPreference`]): the shared-prefix tokens are removed from the batch's
   `completion_mask` of both chosen and rejected sequences, after truncation, so their log-probabilities are zero
   (like padding) for the policy *and* for the reference, including precomputed reference log-probs.
3. **Loss** (`compute_loss`): L = L_cDPO + α·L_SFT with
   L_cDPO = −(1−ε)·log σ(β·h) − ε·log σ(−β·h) ([`cdpo_loss`]) and L_SFT the mean NLL over the chosen completion's
   unmasked tokens.

Masking note: with summed log-probs the shared-prefix tokens contribute identically to the chosen and rejected
log-ratios and cancel in the margin h, so masking leaves L_cDPO unchanged; it changes which tokens L_SFT
supervises and its normalisation. The tests assert both properties.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from datasets import Dataset, IterableDataset
from transformers import PreTrainedTokenizerBase, ProcessorMixin
from trl import DPOConfig, DPOTrainer
from trl.data_utils import common_prefix_length
from trl.trainer.dpo_trainer import DataCollatorForPreference

from .cards import MODEL_CARD_TEMPLATE, PAPER, TreecotModelCardMixin

__all__ = [
    "CDPOConfig",
    "CDPOTrainer",
    "DataCollatorForMaskedPreference",
    "SHARED_PREFIX_COLUMN",
    "cdpo_loss",
    "shared_prefix_token_count",
    "to_conversational_preference",
]

#: Column (and collator key) holding the number of completion tokens inside the shared prefix.
SHARED_PREFIX_COLUMN = "shared_prefix_n_tokens"
#: Batch key holding, per sequence (chosen rows then rejected rows), how many tokens the collator masked.
MASKED_TOKENS_KEY = "shared_prefix_masked_tokens"


def cdpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    epsilon: float,
) -> torch.Tensor:
    """Per-pair conservative DPO loss.

    With h = (log π(y_w|x) − log π_ref(y_w|x)) − (log π(y_l|x) − log π_ref(y_l|x)):

        L = −(1−ε)·log σ(β·h) − ε·log σ(−β·h)

    ε is the assumed probability that a preference label is flipped; ε = 0 is the standard DPO `sigmoid` loss.

    Args:
        policy_chosen_logps (`torch.Tensor`):
            Summed log-probs of the chosen completions under the policy, shape `(batch,)`.
        policy_rejected_logps (`torch.Tensor`):
            Summed log-probs of the rejected completions under the policy, shape `(batch,)`.
        ref_chosen_logps (`torch.Tensor`):
            The same as `policy_chosen_logps` under the reference model, shape `(batch,)`.
        ref_rejected_logps (`torch.Tensor`):
            The same as `policy_rejected_logps` under the reference model, shape `(batch,)`.
        beta (`float`):
            β, the inverse temperature of the implicit reward.
        epsilon (`float`):
            ε in [0, 0.5).

    Returns:
        `torch.Tensor`: The loss of each pair, shape `(batch,)` (not reduced).
    """
    if not 0.0 <= epsilon < 0.5:
        raise ValueError(f"epsilon must be in [0, 0.5), got {epsilon}")
    # Same operation order as TRL's `sigmoid` loss, so that ε = 0 reproduces it bit for bit.
    chosen_logratios = policy_chosen_logps - ref_chosen_logps
    rejected_logratios = policy_rejected_logps - ref_rejected_logps
    logits = beta * (chosen_logratios - rejected_logratios)
    if epsilon == 0.0:
        return -F.logsigmoid(logits)
    return -(1.0 - epsilon) * F.logsigmoid(logits) - epsilon * F.logsigmoid(-logits)


def shared_prefix_token_count(
    chosen_ids: list[int],
    rejected_ids: list[int],
    shared_prefix: str,
    decode: Callable[[list[int]], str],
) -> int:
    """Number of leading completion tokens that both completions share and that lie inside `shared_prefix`.

    The count is the common token-id prefix of `chosen_ids` and `rejected_ids`, capped so that the decoded tokens
    do not extend past the end of `shared_prefix` (the two texts may share more characters than the
    node-level prefix, e.g. the next node's opening tag, and those must stay unmasked). Tokens that merge across
    the end of the prefix differ between the two completions (or extend past the cap) and are therefore never
    counted: the masked tokens are always identical ids in both completions.

    `decode(ids)` must return the text of `ids` exactly (no special-token skipping, no space clean-up). The
    completion may start with template text before the assistant's content (e.g. a role header); the cap is
    measured from the start of the decoded completion, so such template tokens are masked with the prefix.

    Returns 0 when `shared_prefix` is empty.
    """
    if not shared_prefix:
        return 0
    common = common_prefix_length(chosen_ids, rejected_ids)
    if common == 0:
        return 0
    text = decode(chosen_ids)
    start = text.find(shared_prefix)
    if start < 0:
        raise ValueError(
            f"shared_prefix {shared_prefix[:60]!r}... does not occur in the tokenized chosen completion "
            f"{text[:120]!r}...: the chat template changed the assistant text (e.g. stripped it), so the shared "
            "tokens cannot be located. Fix the data or set mask_shared_prefix=False."
        )
    cap = start + len(shared_prefix)
    # Largest n <= common with len(decode(ids[:n])) <= cap. The decoded length grows with n (a token ending
    # inside a multi-byte character decodes to a replacement character, which only makes the search stop
    # earlier), so a binary search needs O(log n) decodes.
    lo, hi = 0, common
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(decode(chosen_ids[:mid])) <= cap:
            lo = mid
        else:
            hi = mid - 1
    return lo


def to_conversational_preference(example: dict[str, Any]) -> dict[str, Any]:
    """Map a treecot preference row to TRL's conversational preference format.

    treecot rows hold `prompt` as a message list and `chosen` / `rejected` as assistant texts; TRL wants the
    completions as message lists too. Rows already in TRL's format, and standard (text-only) rows, are returned
    unchanged.
    """
    prompt = example["prompt"]
    if not isinstance(prompt, list):
        return {}
    out = {}
    for key in ("chosen", "rejected"):
        value = example[key]
        if isinstance(value, str):
            out[key] = [{"role": "assistant", "content": value}]
    return out


@dataclass
class DataCollatorForMaskedPreference(DataCollatorForPreference):
    """[`~trl.trainer.dpo_trainer.DataCollatorForPreference`] that also masks the shared prefix.

    Examples may carry `shared_prefix_n_tokens` (see [`shared_prefix_token_count`]): that many leading completion
    tokens of both the chosen and the rejected sequence are removed from `completion_mask`. The mask is applied to
    the positions the tokens occupy *after* truncation (`keep_start` or `keep_end`), so a truncated sequence keeps
    exactly the masked tokens that survived the cut. The number of tokens masked per sequence (chosen rows, then
    rejected rows) is returned under `shared_prefix_masked_tokens`; the trainer pops it before the forward pass.
    Without the key in the examples the output is exactly the parent collator's.
    """

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        output = super().torch_call(examples)
        if SHARED_PREFIX_COLUMN not in examples[0]:
            return output
        completion_mask = output["completion_mask"]
        n = len(examples)
        masked = torch.zeros(2 * n, dtype=torch.long)
        for half, key in enumerate(("chosen_ids", "rejected_ids")):
            for i, example in enumerate(examples):
                prompt_len = len(example["prompt_ids"])
                total = prompt_len + len(example[key])
                n_shared = min(int(example[SHARED_PREFIX_COLUMN]), len(example[key]))
                start, end, row_len = prompt_len, prompt_len + n_shared, total
                if self.max_length is not None and total > self.max_length:
                    row_len = self.max_length
                    if self.truncation_mode == "keep_end":
                        offset = total - self.max_length
                        start, end = start - offset, end - offset
                start, end = max(start, 0), min(end, row_len)
                if end > start:
                    row = half * n + i
                    completion_mask[row, start:end] = 0
                    masked[row] = end - start
        output[MASKED_TOKENS_KEY] = masked
        return output


@dataclass
class CDPOConfig(DPOConfig):
    r"""
    Configuration class for [`CDPOTrainer`]: TRL's [`~trl.DPOConfig`] plus the three CoT-aware knobs of
    Marco-o1 v2. Every [`~trl.DPOConfig`] parameter keeps its meaning; the loss-selection parameters are fixed
    (`loss_type=["sigmoid"]`, no `loss_weights`, `label_smoothing`, `ld_alpha`, f-divergence or WPO weighting),
    because the loss is replaced by the one below.

    The defaults of the three knobs are treecot's (METHOD §3): the paper does not publish its values.

    Args:
        cdpo_epsilon (`float`, *optional*, defaults to `0.1`):
            ε of conservative DPO, the assumed probability that a preference label is flipped:
            L_cDPO = −(1−ε)·log σ(β·h) − ε·log σ(−β·h). Must lie in [0, 0.5); `0.0` is the standard sigmoid DPO
            loss.
        mask_shared_prefix (`bool`, *optional*, defaults to `True`):
            Whether to set to zero the log-probabilities of the completion tokens inside the dataset's
            `shared_prefix` column, for chosen and rejected, under the policy and the reference (including
            precomputed reference log-probs). With summed log-probs these tokens cancel in the DPO margin; masking
            removes them from the SFT term. Requires a `shared_prefix` column.
        sft_alpha (`float`, *optional*, defaults to `1.0`):
            α of the joint loss L = L_cDPO + α·L_SFT, where L_SFT is the mean negative log-likelihood over the
            chosen completions' unmasked tokens. `0.0` disables the SFT term (it is still logged as `loss/sft`).
    """

    cdpo_epsilon: float = field(
        default=0.1,
        metadata={
            "help": "ε of conservative DPO (label-flip probability): L = -(1-ε)·log σ(β·h) - ε·log σ(-β·h). In "
            "[0, 0.5); 0 is standard sigmoid DPO."
        },
    )
    mask_shared_prefix: bool = field(
        default=True,
        metadata={
            "help": "Zero the log-probs of the completion tokens inside `shared_prefix` for chosen and rejected, "
            "policy and reference. Needs a `shared_prefix` column."
        },
    )
    sft_alpha: float = field(
        default=1.0,
        metadata={
            "help": "α of the joint loss L = L_cDPO + α·L_SFT (L_SFT: mean NLL over the chosen completion's unmasked "
            "tokens). 0 disables it."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.cdpo_epsilon < 0.5:
            raise ValueError(f"cdpo_epsilon must be in [0, 0.5), got {self.cdpo_epsilon}")
        if self.sft_alpha < 0:
            raise ValueError(f"sft_alpha must be >= 0, got {self.sft_alpha}")
        fixed = {
            "loss_type": (
                self.loss_type,
                ["sigmoid"],
                "set sft_alpha for the SFT term and cdpo_epsilon for ε",
            ),
            "loss_weights": (self.loss_weights, None, "set sft_alpha instead"),
            "label_smoothing": (self.label_smoothing, 0.0, "set cdpo_epsilon instead"),
            "ld_alpha": (self.ld_alpha, None, "length-desensitised DPO is not part of cDPO"),
            "f_divergence_type": (self.f_divergence_type, "reverse_kl", "cDPO is defined for reverse KL"),
            "use_weighting": (self.use_weighting, False, "WPO weighting is not part of cDPO"),
        }
        for name, (value, expected, hint) in fixed.items():
            if value != expected:
                raise ValueError(
                    f"CDPOConfig computes its own loss, so `{name}` must be {expected!r} (got {value!r}): {hint}."
                )


class _ForwardRecorder:
    """Callable stand-in for the model that keeps the first fused-LM-head output it produces.

    `DPOTrainer._compute_loss` runs the policy forward as `model(..., fused_lm_head=True)` and reads its per-token
    log-probs inline; recording that output lets the trainer reuse TRL's forward and metrics and compute its own
    loss from the same tensors (with their autograd graph).
    """

    def __init__(self, model: Callable[..., Any]):
        self.model = model
        self.outputs: Any = None

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.model(*args, **kwargs)
        if kwargs.get("fused_lm_head") and self.outputs is None:
            self.outputs = out
        return out


class CDPOTrainer(TreecotModelCardMixin, DPOTrainer):
    """TRL's [`~trl.DPOTrainer`] with conservative DPO, shared-prefix masking and a joint SFT loss.

    Takes the same arguments as [`~trl.DPOTrainer`] with a [`CDPOConfig`]. The training data are treecot
    preference rows (`prompt` messages, `chosen` / `rejected` assistant texts, `shared_prefix`) or any TRL
    preference dataset (then `mask_shared_prefix=False`, or a `shared_prefix` column must be present).

    Reference: a separate `ref_model`; with PEFT and no `ref_model`, the policy with its adapter disabled; with
    `precompute_ref_log_probs=True`, log-probs computed once before training (masked like the policy's).

    Logged metrics: TRL's (`rewards/chosen`, `rewards/rejected`, `rewards/margins`, `rewards/accuracies`,
    `logps/chosen`, `logps/rejected`, `logits/*`, `entropy`, `mean_token_accuracy`, `num_tokens`) plus `loss/dpo`,
    `loss/sft` and `mask/shared_tokens` (mean number of masked tokens per chosen completion).

    Overridden methods (kept few so TRL upgrades stay cheap): `__init__` (collator), `_prepare_dataset`,
    `_set_signature_columns_if_needed`, `compute_ref_log_probs` (drops the collator's extra key), `compute_loss`
    and `create_model_card` (treecot's card, see [`treecot.trainers.cards`]).

    `model_card_info` (a dict, empty by default) holds card fields the trainer cannot know, such as
    `dataset_name`, `dataset_revision` or `recipe_file`; the training scripts fill it.
    """

    card_stage = "cdpo"

    _tag_names = ["trl", "dpo", "cdpo", "treecot"]
    _name = "cDPO"
    _paper = PAPER
    _template_file = MODEL_CARD_TEMPLATE

    def __init__(self, model, ref_model=None, args: CDPOConfig | None = None, data_collator=None, **kwargs):
        if args is None:
            raise ValueError("CDPOTrainer needs a CDPOConfig (`args=CDPOConfig(output_dir=...)`)")
        if not isinstance(args, CDPOConfig):
            raise TypeError(f"CDPOTrainer needs a CDPOConfig, got {type(args).__name__}")
        if data_collator is None:
            processing_class = kwargs.get("processing_class")
            if processing_class is None and isinstance(model, str):
                # TRL would load it after the model; the masking collator needs its pad token now
                from transformers import AutoTokenizer

                revision = (args.model_init_kwargs or {}).get("revision")
                processing_class = AutoTokenizer.from_pretrained(
                    model, revision=revision, trust_remote_code=args.trust_remote_code
                )
                kwargs["processing_class"] = processing_class
            tokenizer = getattr(processing_class, "tokenizer", processing_class)
            if tokenizer is not None:
                if tokenizer.pad_token is None:
                    tokenizer.pad_token = tokenizer.eos_token
                data_collator = DataCollatorForMaskedPreference(
                    pad_token_id=tokenizer.pad_token_id,
                    max_length=args.max_length,
                    truncation_mode=args.truncation_mode,
                    pad_to_multiple_of=args.pad_to_multiple_of,
                )
            elif args.mask_shared_prefix:
                raise ValueError(
                    "mask_shared_prefix=True needs the masking collator, which needs `processing_class` "
                    "(the tokenizer); pass it to CDPOTrainer."
                )
        super().__init__(model, ref_model=ref_model, args=args, data_collator=data_collator, **kwargs)
        self.model_card_info: dict[str, Any] = {}
        if args.mask_shared_prefix and not isinstance(self.data_collator, DataCollatorForMaskedPreference):
            raise ValueError(
                "mask_shared_prefix=True needs a DataCollatorForMaskedPreference (or a subclass); got "
                f"{type(self.data_collator).__name__}."
            )

    # ----------------------------------------------------------------------------------------------- data
    def _prepare_dataset(
        self,
        dataset: Dataset | IterableDataset,
        processing_class: PreTrainedTokenizerBase | ProcessorMixin,
        args: DPOConfig,
        dataset_name: str,
    ) -> Dataset | IterableDataset:
        first = next(iter(dataset))
        mask = getattr(args, "mask_shared_prefix", False)
        if mask and "shared_prefix" not in first:
            raise ValueError(
                f"mask_shared_prefix=True but the {dataset_name} dataset has no `shared_prefix` column "
                f"(columns: {sorted(first)}); add it or set mask_shared_prefix=False."
            )
        if "prompt_ids" not in first and "prompt" in first and isinstance(first["prompt"], list):
            if isinstance(first.get("chosen"), str) or isinstance(first.get("rejected"), str):
                map_kwargs = {"desc": f"Converting {dataset_name} dataset to messages"}
                if isinstance(dataset, IterableDataset):
                    map_kwargs = {}
                dataset = dataset.map(to_conversational_preference, **map_kwargs)
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        has_counts = SHARED_PREFIX_COLUMN in next(iter(dataset))
        if not mask and has_counts:
            # the collator masks whatever carries counts: drop them when masking is off
            dataset = dataset.remove_columns(SHARED_PREFIX_COLUMN)
        if mask and not has_counts:
            tokenizer = getattr(processing_class, "tokenizer", processing_class)

            def decode(ids: list[int]) -> str:
                return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

            def count(example: dict[str, Any]) -> dict[str, int]:
                n = shared_prefix_token_count(
                    example["chosen_ids"], example["rejected_ids"], example["shared_prefix"] or "", decode
                )
                return {SHARED_PREFIX_COLUMN: n}

            map_kwargs = (
                {} if isinstance(dataset, IterableDataset) else {"desc": "Counting shared-prefix tokens"}
            )
            dataset = dataset.map(count, **map_kwargs)
        return dataset

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self.args.mask_shared_prefix and SHARED_PREFIX_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, SHARED_PREFIX_COLUMN]

    # ----------------------------------------------------------------------------------------------- loss
    def compute_ref_log_probs(self, model, inputs):
        """TRL's reference log-probs, minus the collator's bookkeeping key (used by the precompute pass too)."""
        inputs = {k: v for k, v in inputs.items() if k != MASKED_TOKENS_KEY}
        return super().compute_ref_log_probs(model, inputs)

    @contextlib.contextmanager
    def _reference_from_batch(self) -> Iterator[None]:
        """Make TRL's `_compute_loss` read the reference log-probs from the batch (we computed them already)."""
        saved = self.precompute_ref_logps
        self.precompute_ref_logps = True
        try:
            yield
        finally:
            self.precompute_ref_logps = saved

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        inputs = dict(inputs)
        masked_tokens = inputs.pop(MASKED_TOKENS_KEY, None)
        if not self.precompute_ref_logps:
            ref_model = self.ref_model if self.ref_model is not None else self.model
            ref_chosen, ref_rejected = self.compute_ref_log_probs(ref_model, inputs)
            inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = ref_chosen, ref_rejected
        recorder = _ForwardRecorder(model)
        # TRL runs the policy forward, computes its sigmoid loss (discarded) and logs its metrics
        with self._reference_from_batch():
            result = super().compute_loss(recorder, inputs, return_outputs, num_items_in_batch)
        outputs = recorder.outputs

        shift_mask = inputs["completion_mask"][..., 1:]
        per_token_logps = outputs.log_probs[:, -shift_mask.size(1) :]
        chosen_logps, rejected_logps = per_token_logps.sum(dim=1).chunk(2, dim=0)
        ref_chosen = inputs["ref_chosen_logps"].to(chosen_logps.device)
        ref_rejected = inputs["ref_rejected_logps"].to(chosen_logps.device)
        dpo_loss = cdpo_loss(
            chosen_logps, rejected_logps, ref_chosen, ref_rejected, self.beta, self.args.cdpo_epsilon
        ).mean()

        chosen_mask, _ = shift_mask.chunk(2, dim=0)
        chosen_token_logps, _ = per_token_logps.chunk(2, dim=0)
        # Masked positions hold log-prob 0; clamp keeps a fully masked batch at loss 0 instead of NaN
        sft_loss = -chosen_token_logps.sum() / chosen_mask.sum().clamp(min=1)

        loss = dpo_loss + self.args.sft_alpha * sft_loss
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * outputs.aux_loss

        gather = self.accelerator.gather_for_metrics
        self._metrics[mode]["loss/dpo"].append(gather(dpo_loss.detach()).mean().item())
        self._metrics[mode]["loss/sft"].append(gather(sft_loss.detach()).mean().item())
        if masked_tokens is not None:
            chosen_masked, _ = masked_tokens.chunk(2, dim=0)
            self._metrics[mode]["mask/shared_tokens"].append(gather(chosen_masked.float()).mean().item())
        if return_outputs:
            return loss, result[1]
        return loss
