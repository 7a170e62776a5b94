"""CDPOTrainer: the cDPO loss on literals, shared-prefix masking (data, collator, truncation), equality with TRL's
sigmoid loss, the SFT term, metrics, and short training runs (separate reference, LoRA, precomputed reference)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from treecot.models import load_model, load_tokenizer

datasets = pytest.importorskip("datasets")
trl = pytest.importorskip("trl")

from treecot.trainers.cdpo import (  # noqa: E402
    MASKED_TOKENS_KEY,
    SHARED_PREFIX_COLUMN,
    CDPOConfig,
    CDPOTrainer,
    DataCollatorForMaskedPreference,
    cdpo_loss,
    shared_prefix_token_count,
    to_conversational_preference,
)

SYSTEM = "Answer with tagged steps: <sub-task>, <thinking>, <answer>."


def _row(i: int, a: int, b: int, prefix_kind: str = "node") -> dict:
    prefix = (
        f"<sub-task>Break the task down: add {a} and {b}.</sub-task>\n"
        f"<thinking>First I write the sum {a} + {b}.</thinking>\n"
    )
    if prefix_kind == "empty":
        prefix = ""
    good, bad = a + b, a + b + 1
    chosen = (
        prefix
        + f"<thinking>{a} + {b} = {good}.</thinking>\n<answer>The answer is: \\boxed{{{good}}}</answer>"
    )
    rejected = (
        prefix
        + f"<thinking>{a} + {b} = {bad}, I think.</thinking>\n<answer>The answer is: \\boxed{{{bad}}}</answer>"
    )
    return {
        "prompt": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"What is {a} + {b}?"},
        ],
        "chosen": chosen,
        "rejected": rejected,
        "shared_prefix": prefix,
        "problem_id": f"p{i}",
        "task": "gsm8k",
        "chosen_tokens": 0,
        "rejected_tokens": 0,
        "schema_version": 1,
    }


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def pref_dataset():
    rows = [_row(0, 2, 3), _row(1, 17, 25), _row(2, 4, 9), _row(3, 11, 30, prefix_kind="empty")]
    return datasets.Dataset.from_list(rows)


def _tiny(seed: int = 0):
    model, _ = load_model("tiny", seed=seed)
    return model


def _config(tmp_path, **kw) -> CDPOConfig:
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        beta=0.1,
        dataset_num_proc=None,
        disable_tqdm=True,
    )
    base.update(kw)
    return CDPOConfig(**base)


def _batch(trainer, n: int = 2, strip_mask: bool = False) -> dict:
    """The collated first `n` training rows (the model is put in train mode so metrics land under "train")."""
    trainer.model.train()
    examples = [trainer.train_dataset[i] for i in range(n)]
    if strip_mask:
        examples = [{k: v for k, v in e.items() if k != SHARED_PREFIX_COLUMN} for e in examples]
    return trainer.data_collator(examples)


# ---------------------------------------------------------------------------------------------- the loss
def test_cdpo_loss_formula_on_literals():
    pc = torch.tensor([-10.0, -3.0, -7.5])
    pr = torch.tensor([-12.0, -2.0, -7.5])
    rc = torch.tensor([-11.0, -3.5, -6.0])
    rr = torch.tensor([-11.5, -2.5, -9.0])
    beta, eps = 0.5, 0.2
    got = cdpo_loss(pc, pr, rc, rr, beta, eps)
    for i in range(3):
        h = (pc[i] - rc[i]) - (pr[i] - rr[i])
        x = beta * float(h)
        sig = 1 / (1 + math.exp(-x))
        expected = -(1 - eps) * math.log(sig) - eps * math.log(1 - sig)
        assert got[i].item() == pytest.approx(expected, rel=1e-6)
    # ε = 0 is the standard DPO sigmoid loss
    h = (pc - rc) - (pr - rr)
    assert torch.equal(cdpo_loss(pc, pr, rc, rr, beta, 0.0), -F.logsigmoid(beta * h))


def test_cdpo_loss_is_conservative_and_validates_epsilon():
    # cDPO = sigmoid loss + ε·β·h: with ε > 0 a huge margin is penalised instead of driving the loss to 0
    zero = torch.zeros(1)
    big = torch.tensor([200.0])
    assert cdpo_loss(big, zero, zero, zero, 0.1, 0.0).item() == pytest.approx(0.0, abs=1e-6)
    assert cdpo_loss(big, zero, zero, zero, 0.1, 0.1).item() == pytest.approx(0.1 * 0.1 * 200.0, rel=1e-4)
    for bad in (-0.1, 0.5, 0.7):
        with pytest.raises(ValueError, match="epsilon"):
            cdpo_loss(zero, zero, zero, zero, 0.1, bad)


def test_config_validates_knobs(tmp_path):
    with pytest.raises(ValueError, match="cdpo_epsilon"):
        _config(tmp_path, cdpo_epsilon=0.5)
    with pytest.raises(ValueError, match="sft_alpha"):
        _config(tmp_path, sft_alpha=-1.0)
    with pytest.raises(ValueError, match="loss_type"):
        _config(tmp_path, loss_type=["sigmoid", "sft"])
    with pytest.raises(ValueError, match="label_smoothing"):
        _config(tmp_path, label_smoothing=0.1)
    cfg = CDPOConfig(output_dir=str(tmp_path), use_cpu=True, report_to=[])
    assert (cfg.cdpo_epsilon, cfg.mask_shared_prefix, cfg.sft_alpha) == (0.1, True, 1.0)


# ---------------------------------------------------------------------------------------------- the mask
def test_shared_prefix_token_count_stops_at_the_prefix(tokenizer):
    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    row = _row(0, 2, 3)
    prefix = row["shared_prefix"]
    chosen_ids = tokenizer(row["chosen"], add_special_tokens=False)["input_ids"]
    rejected_ids = tokenizer(row["rejected"], add_special_tokens=False)["input_ids"]
    n = shared_prefix_token_count(chosen_ids, rejected_ids, prefix, decode)
    # the prefix ends on a node boundary ("\n"): its tokens are exactly the masked ones
    assert decode(chosen_ids[:n]) == prefix
    assert chosen_ids[:n] == rejected_ids[:n]
    # the texts share more than the prefix ("<thinking>2 + 3 = "), which must stay unmasked
    assert chosen_ids[: n + 3] == rejected_ids[: n + 3]
    assert shared_prefix_token_count(chosen_ids, rejected_ids, "", decode) == 0
    with pytest.raises(ValueError, match="does not occur"):
        shared_prefix_token_count(chosen_ids, rejected_ids, "not in the text", decode)


def test_shared_prefix_token_count_with_tokens_merging_across_the_boundary(tokenizer):
    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    prefix = "The result is the number"
    chosen_ids = tokenizer(prefix + "s 4 and 5.", add_special_tokens=False)["input_ids"]
    rejected_ids = tokenizer(prefix + " six.", add_special_tokens=False)["input_ids"]
    n = shared_prefix_token_count(chosen_ids, rejected_ids, prefix, decode)
    assert chosen_ids[:n] == rejected_ids[:n]
    assert prefix.startswith(decode(chosen_ids[:n]))
    # maximal: one more token is either different in the two completions or reaches past the prefix
    nxt = chosen_ids[: n + 1]
    assert nxt != rejected_ids[: n + 1] or not prefix.startswith(decode(nxt))
    assert len(decode(chosen_ids[:n])) < len(prefix)  # "number" merges with "s" in the chosen text


def test_collator_masks_shared_prefix_and_survives_truncation():
    examples = [
        {
            "prompt_ids": [1, 2, 3],
            "chosen_ids": [4, 5, 6, 7],
            "rejected_ids": [4, 5, 8],
            SHARED_PREFIX_COLUMN: 2,
        },
        {"prompt_ids": [9], "chosen_ids": [10, 11], "rejected_ids": [10, 12, 13], SHARED_PREFIX_COLUMN: 1},
    ]
    out = DataCollatorForMaskedPreference(pad_token_id=0)(examples)
    assert out["completion_mask"].tolist() == [
        [0, 0, 0, 0, 0, 1, 1],
        [0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 1, 1, 0, 0, 0],
    ]
    assert out[MASKED_TOKENS_KEY].tolist() == [2, 1, 2, 1]

    # keep_start cuts inside the shared prefix of the first pair: only the surviving shared token is masked
    out = DataCollatorForMaskedPreference(pad_token_id=0, max_length=4)(examples)
    assert out["input_ids"][0].tolist() == [1, 2, 3, 4]
    assert out["completion_mask"].tolist() == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 0], [0, 0, 1, 1]]
    assert out[MASKED_TOKENS_KEY].tolist() == [1, 1, 1, 1]

    # keep_end (deprecated in TRL's config, still supported by its collator) shifts the sequence left: the
    # mask follows the tokens
    out = DataCollatorForMaskedPreference(pad_token_id=0, max_length=5, truncation_mode="keep_end")(examples)
    assert out["input_ids"][0].tolist() == [3, 4, 5, 6, 7]
    assert out["completion_mask"][0].tolist() == [0, 0, 0, 1, 1]
    assert out["input_ids"][2].tolist() == [2, 3, 4, 5, 8]
    assert out["completion_mask"][2].tolist() == [0, 0, 0, 0, 1]

    # without the column the output is exactly TRL's collator's
    plain = [{k: v for k, v in e.items() if k != SHARED_PREFIX_COLUMN} for e in examples]
    ours = DataCollatorForMaskedPreference(pad_token_id=0, max_length=5)(plain)
    theirs = trl.trainer.dpo_trainer.DataCollatorForPreference(pad_token_id=0, max_length=5)(plain)
    assert ours.keys() == theirs.keys()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_prepared_rows_mask_exactly_the_shared_prefix(tmp_path, tokenizer, pref_dataset):
    trainer = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(),
        args=_config(tmp_path),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    ds = trainer.train_dataset
    assert SHARED_PREFIX_COLUMN in ds.column_names
    for i in range(len(ds)):
        row, raw = ds[i], pref_dataset[i]
        n = row[SHARED_PREFIX_COLUMN]
        assert tokenizer.decode(row["chosen_ids"][:n]) == raw["shared_prefix"]
        assert row["chosen_ids"][:n] == row["rejected_ids"][:n]
    assert ds[3][SHARED_PREFIX_COLUMN] == 0  # empty shared prefix: nothing masked
    assert ds[0]["chosen"] == [{"role": "assistant", "content": pref_dataset[0]["chosen"]}]


def test_to_conversational_preference_leaves_other_formats_alone():
    row = _row(0, 1, 2)
    assert to_conversational_preference(row)["rejected"] == [
        {"role": "assistant", "content": row["rejected"]}
    ]
    assert to_conversational_preference({"prompt": "Q", "chosen": "a", "rejected": "b"}) == {}
    already = {"prompt": row["prompt"], "chosen": [{"role": "assistant", "content": "a"}], "rejected": "b"}
    assert "chosen" not in to_conversational_preference(already)


def test_mask_off_leaves_completion_masks_alone(tmp_path, tokenizer, pref_dataset):
    on = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(),
        args=_config(tmp_path),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    # even a dataset that already carries the counts is not masked when mask_shared_prefix=False
    off = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(),
        args=_config(tmp_path, mask_shared_prefix=False),
        train_dataset=on.train_dataset,
        processing_class=tokenizer,
    )
    assert SHARED_PREFIX_COLUMN not in off.train_dataset.column_names
    batch = _batch(off, 3)
    assert MASKED_TOKENS_KEY not in batch
    completion_lengths = [len(off.train_dataset[i]["chosen_ids"]) for i in range(3)]
    assert batch["completion_mask"][:3].sum(dim=1).tolist() == completion_lengths


def test_mask_needs_a_shared_prefix_column(tmp_path, tokenizer, pref_dataset):
    with pytest.raises(ValueError, match="shared_prefix"):
        CDPOTrainer(
            _tiny(),
            ref_model=_tiny(),
            args=_config(tmp_path),
            train_dataset=pref_dataset.remove_columns("shared_prefix"),
            processing_class=tokenizer,
        )


# ---------------------------------------------------------------------------------------------- losses
def test_equals_trl_sigmoid_loss_with_eps_0_alpha_0_no_mask(tmp_path, tokenizer, pref_dataset):
    ours = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(seed=1),
        args=_config(tmp_path, cdpo_epsilon=0.0, sft_alpha=0.0, mask_shared_prefix=False),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    trl_args = trl.DPOConfig(**{k: v for k, v in _config(tmp_path).to_dict().items() if k in _TRL_KEYS})
    theirs = trl.DPOTrainer(
        _tiny(),
        ref_model=_tiny(seed=1),
        args=trl_args,
        train_dataset=pref_dataset.map(to_conversational_preference),
        processing_class=tokenizer,
    )
    batch_ours, batch_theirs = _batch(ours, 3), _batch(theirs, 3)
    assert torch.equal(batch_ours["input_ids"], batch_theirs["input_ids"])
    with torch.no_grad():
        loss_ours = ours.compute_loss(ours.model, batch_ours)
        loss_theirs = theirs.compute_loss(theirs.model, batch_theirs)
    assert loss_ours.item() > 0
    torch.testing.assert_close(loss_ours, loss_theirs, rtol=1e-6, atol=1e-7)
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected"):
        assert len(ours._metrics["train"][key]) == 1, key
        assert ours._metrics["train"][key] == pytest.approx(theirs._metrics["train"][key], rel=1e-6, abs=1e-7)


_TRL_KEYS = {
    "output_dir",
    "report_to",
    "use_cpu",
    "bf16",
    "gradient_checkpointing",
    "per_device_train_batch_size",
    "beta",
    "max_length",
    "disable_tqdm",
}


def _manual_chosen_nll(model, batch) -> float:
    """Mean NLL over the chosen rows' completion_mask tokens, from a plain forward (no TRL code)."""
    n = batch["input_ids"].size(0) // 2
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"][:n], attention_mask=batch["attention_mask"][:n]).logits
    logps = torch.log_softmax(logits[:, :-1].float(), -1)
    token_logps = logps.gather(-1, batch["input_ids"][:n, 1:, None])[..., 0]
    mask = batch["completion_mask"][:n, 1:].bool()
    return -token_logps[mask].mean().item()


def test_mask_keeps_dpo_margin_but_changes_sft_term(tmp_path, tokenizer, pref_dataset):
    trainer = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(seed=1),
        args=_config(tmp_path, cdpo_epsilon=0.1, sft_alpha=1.0),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    masked, unmasked = _batch(trainer, 3), _batch(trainer, 3, strip_mask=True)
    assert masked["completion_mask"].sum() < unmasked["completion_mask"].sum()
    metrics = trainer._metrics["train"]
    with torch.no_grad():
        trainer.compute_loss(trainer.model, masked)
        trainer.compute_loss(trainer.model, unmasked)
    dpo_masked, dpo_unmasked = metrics["loss/dpo"]
    sft_masked, sft_unmasked = metrics["loss/sft"]
    margin_masked, margin_unmasked = metrics["rewards/margins"]
    # summed log-probs: the shared tokens cancel in h
    assert dpo_masked == pytest.approx(dpo_unmasked, abs=1e-5)
    assert margin_masked == pytest.approx(margin_unmasked, abs=1e-5)
    # but the chosen log-probs themselves and the SFT term change
    logps_masked, logps_unmasked = metrics["logps/chosen"]
    assert logps_masked > logps_unmasked + 1.0
    assert abs(sft_masked - sft_unmasked) > 1e-3
    assert sft_masked == pytest.approx(_manual_chosen_nll(trainer.model, masked), rel=1e-4)
    assert sft_unmasked == pytest.approx(_manual_chosen_nll(trainer.model, unmasked), rel=1e-4)
    expected_shared = sum(trainer.train_dataset[i][SHARED_PREFIX_COLUMN] for i in range(3)) / 3
    assert metrics["mask/shared_tokens"] == [pytest.approx(expected_shared)]


def test_alpha_scales_only_the_sft_term_and_epsilon_only_the_dpo_term(tmp_path, tokenizer, pref_dataset):
    trainer = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(seed=1),
        args=_config(tmp_path, cdpo_epsilon=0.0, sft_alpha=0.0),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    batch = _batch(trainer, 2)
    metrics = trainer._metrics["train"]
    losses = {}
    for eps, alpha in ((0.0, 0.0), (0.0, 2.0), (0.3, 0.0)):
        trainer.args.cdpo_epsilon, trainer.args.sft_alpha = eps, alpha
        with torch.no_grad():
            losses[eps, alpha] = trainer.compute_loss(trainer.model, batch).item()
    dpo = metrics["loss/dpo"]
    sft = metrics["loss/sft"]
    assert sft[0] == pytest.approx(sft[1]) == pytest.approx(sft[2])
    assert dpo[0] == pytest.approx(dpo[1])
    assert losses[0.0, 0.0] == pytest.approx(dpo[0])
    assert losses[0.0, 2.0] - losses[0.0, 0.0] == pytest.approx(2.0 * sft[0], rel=1e-5)
    # ε changes the DPO term by ε·(log σ(βh) − log σ(−βh)) = ε·βh per pair
    margin = metrics["rewards/margins"][0]  # mean of β·h
    assert losses[0.3, 0.0] - losses[0.0, 0.0] == pytest.approx(0.3 * margin, abs=1e-5)


def test_metrics_logged_like_trl(tmp_path, tokenizer, pref_dataset):
    trainer = CDPOTrainer(
        _tiny(),
        ref_model=_tiny(seed=1),
        args=_config(tmp_path),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    with torch.no_grad():
        trainer.compute_loss(trainer.model, _batch(trainer, 2))
    logs = {}
    trainer.log(logs)
    for key in (
        "rewards/chosen",
        "rewards/rejected",
        "rewards/margins",
        "rewards/accuracies",
        "logps/chosen",
        "logps/rejected",
        "loss/dpo",
        "loss/sft",
        "mask/shared_tokens",
    ):
        assert key in logs and math.isfinite(logs[key]), key
    assert logs["rewards/margins"] == pytest.approx(
        logs["rewards/chosen"] - logs["rewards/rejected"], abs=1e-6
    )
    assert 0.0 <= logs["rewards/accuracies"] <= 1.0


# ---------------------------------------------------------------------------------------------- training
def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_train_full_with_separate_reference_model(tmp_path, tokenizer, pref_dataset):
    ref = _tiny(seed=1)
    ref_before = _params(ref)
    model = _tiny()
    before = _params(model)
    trainer = CDPOTrainer(
        model, ref_model=ref, args=_config(tmp_path), train_dataset=pref_dataset, processing_class=tokenizer
    )
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    logs = [h for h in trainer.state.log_history if "loss/dpo" in h]
    assert len(logs) == 2 and all(math.isfinite(h["loss/sft"]) for h in logs)
    # the reference differs from the policy from the start, so the first step has non-zero rewards
    assert logs[0]["rewards/chosen"] != 0.0
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())
    assert all(torch.equal(ref_before[n], p) for n, p in ref.named_parameters())


def test_train_lora_reference_is_the_adapter_disabled_policy(tmp_path, tokenizer, pref_dataset):
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = CDPOTrainer(
        _tiny(),
        args=_config(tmp_path, learning_rate=1e-2),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
        peft_config=lora,
    )
    assert trainer.ref_model is None
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/chosen" in h]
    # LoRA starts as the identity, so policy == reference at the first step; the adapter then moves it
    assert logs[0]["rewards/chosen"] == 0.0 and logs[0]["rewards/rejected"] == 0.0
    assert logs[1]["rewards/chosen"] != 0.0


def test_train_with_precomputed_reference_log_probs_masked(tmp_path, tokenizer, pref_dataset):
    trainer = CDPOTrainer(
        _tiny(),
        args=_config(tmp_path, precompute_ref_log_probs=True, precompute_ref_batch_size=4),
        train_dataset=pref_dataset,
        processing_class=tokenizer,
    )
    ds = trainer.train_dataset
    assert "ref_chosen_logps" in ds.column_names
    # the precomputed reference log-probs are masked like the policy's: compare with masked / unmasked batches
    batch = trainer.data_collator([ds[i] for i in range(4)])
    plain = trainer.data_collator(
        [{k: v for k, v in ds[i].items() if k != SHARED_PREFIX_COLUMN} for i in range(4)]
    )
    masked_c, _ = trainer.compute_ref_log_probs(trainer.model, batch)
    plain_c, _ = trainer.compute_ref_log_probs(trainer.model, plain)
    torch.testing.assert_close(torch.tensor(ds["ref_chosen_logps"]), masked_c, rtol=1e-5, atol=1e-4)
    assert not torch.allclose(torch.tensor(ds["ref_chosen_logps"][:3]), plain_c[:3], atol=1e-2)
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/chosen" in h]
    assert abs(logs[0]["rewards/chosen"]) < 1e-5  # the policy starts equal to its reference
    assert math.isfinite(logs[1]["loss/dpo"])
