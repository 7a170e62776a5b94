"""BalancedSFTTrainer: Thoughts Length Balance selection, source filter, assistant-only labels, per-rank loss
weights, packing, and short training runs (full and LoRA) with the tiny model."""

from __future__ import annotations

import math

import pytest
import torch

from treecot.models import load_model, load_tokenizer

datasets = pytest.importorskip("datasets")
pytest.importorskip("trl")

from treecot.trainers.sft import SAMPLE_WEIGHT_COLUMN, BalancedSFTConfig, BalancedSFTTrainer  # noqa: E402

SYSTEM = "Answer with tagged steps: <sub-task>, <thinking>, <answer>."


def _path(a: int, b: int, n_steps: int) -> str:
    steps = "".join(f"<thinking>Step {k}: I look at {a} and {b} again.</thinking>\n" for k in range(n_steps))
    return f"<sub-task>Add {a} and {b}.</sub-task>\n{steps}<answer>The answer is: \\boxed{{{a + b}}}</answer>"


def _rows() -> list[dict]:
    rows = []
    for p, (a, b) in enumerate([(2, 3), (10, 7)]):
        for rank, n_steps in (("shortest", 0), ("medium", 1), ("longest", 2)):
            text = _path(a, b, n_steps)
            rows.append(
                {
                    "messages": [
                        {"role": "system", "content": SYSTEM},
                        {"role": "user", "content": f"What is {a} + {b}?"},
                        {"role": "assistant", "content": text},
                    ],
                    "problem_id": f"p{p}",
                    "task": "gsm8k",
                    "node_ids": [0, 1, 2],
                    "n_tokens": len(text) // 3,
                    "length_rank": rank,
                    "source": "distill" if (p == 1 and rank == "longest") else "mcts",
                    "schema_version": 1,
                }
            )
    return rows


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny")


@pytest.fixture(scope="module")
def sft_dataset():
    return datasets.Dataset.from_list(_rows())


def _tiny(seed: int = 0):
    return load_model("tiny", seed=seed)[0]


def _config(tmp_path, **kw) -> BalancedSFTConfig:
    base = dict(
        output_dir=str(tmp_path / "out"),
        report_to=[],
        use_cpu=True,
        bf16=False,
        gradient_checkpointing=False,
        per_device_train_batch_size=2,
        max_steps=2,
        logging_steps=1,
        save_strategy="no",
        learning_rate=1e-3,
        max_length=256,
        disable_tqdm=True,
    )
    base.update(kw)
    return BalancedSFTConfig(**base)


def _trainer(tmp_path, tokenizer, dataset, **kw) -> BalancedSFTTrainer:
    peft_config = kw.pop("peft_config", None)
    return BalancedSFTTrainer(
        _tiny(),
        args=_config(tmp_path, **kw),
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )


def test_config_validates_knobs(tmp_path):
    cfg = _config(tmp_path)
    assert cfg.length_ranks == ["longest"] and cfg.completion_only_loss is True and cfg.sources is None
    with pytest.raises(ValueError, match="unknown rank"):
        _config(tmp_path, length_ranks=["long"])
    with pytest.raises(ValueError, match="'all' cannot be combined"):
        _config(tmp_path, length_ranks=["all", "longest"])
    with pytest.raises(ValueError, match="unknown rank"):
        _config(tmp_path, length_weights={"huge": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        _config(tmp_path, length_weights={"longest": -1.0})
    with pytest.raises(ValueError, match="packing"):
        _config(tmp_path, length_weights={"longest": 1.0}, packing=True)
    # JSON from the command line / YAML string
    cfg = _config(tmp_path, length_weights='{"shortest": 0.5, "longest": 1}')
    assert cfg.length_weights == {"shortest": 0.5, "longest": 1.0}


def test_selects_longest_by_default_and_filters_sources(tmp_path, tokenizer, sft_dataset):
    trainer = _trainer(tmp_path, tokenizer, sft_dataset)
    assert len(trainer.train_dataset) == 2
    longest = [r for r in _rows() if r["length_rank"] == "longest"]
    got = sorted(tokenizer.decode([t for t in row["labels"] if t != -100]) for row in trainer.train_dataset)
    assert got == sorted(r["messages"][-1]["content"] + "<|im_end|>\n" for r in longest)

    trainer = _trainer(tmp_path, tokenizer, sft_dataset, length_ranks=["all"])
    assert len(trainer.train_dataset) == 6
    trainer = _trainer(
        tmp_path, tokenizer, sft_dataset, length_ranks=["shortest", "medium"], sources=["mcts"]
    )
    assert len(trainer.train_dataset) == 4
    trainer = _trainer(tmp_path, tokenizer, sft_dataset, sources=["mcts"])
    assert len(trainer.train_dataset) == 1  # problem p1's longest path is distilled


def test_selection_errors_name_the_problem(tmp_path, tokenizer, sft_dataset):
    with pytest.raises(ValueError, match="length_rank"):
        _trainer(tmp_path, tokenizer, sft_dataset.remove_columns("length_rank"))
    with pytest.raises(ValueError, match="no train rows left"):
        _trainer(tmp_path, tokenizer, sft_dataset, sources=["teacher"])
    # no length_rank column is fine with length_ranks=['all']
    trainer = _trainer(
        tmp_path, tokenizer, sft_dataset.remove_columns(["length_rank", "source"]), length_ranks=["all"]
    )
    assert len(trainer.train_dataset) == 6


def test_labels_cover_the_assistant_turn_only(tmp_path, tokenizer, sft_dataset):
    trainer = _trainer(tmp_path, tokenizer, sft_dataset)
    row = trainer.train_dataset[0]
    ids, labels = row["input_ids"], row["labels"]
    first = next(i for i, t in enumerate(labels) if t != -100)
    # everything before the assistant's content (system, user, the assistant header) is -100 ...
    assert all(t == -100 for t in labels[:first])
    assert tokenizer.decode(ids[:first]).endswith("<|im_start|>assistant\n")
    assert SYSTEM in tokenizer.decode(ids[:first])
    # ... and every assistant token, including the end-of-turn token, is supervised
    assert labels[first:] == ids[first:]
    assert tokenizer.decode(ids[first:]).startswith("<sub-task>")


def _batch(trainer, n: int) -> dict:
    trainer.model.train()
    return trainer.data_collator([trainer.train_dataset[i] for i in range(n)])


def _row_nll_sums(model, batch) -> tuple[torch.Tensor, int]:
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = torch.log_softmax(logits[:, :-1].float(), -1)
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    token_logps = logps.gather(-1, labels.clamp(min=0)[..., None])[..., 0] * mask
    return -token_logps.sum(dim=1), int(mask.sum())


def test_length_weights_scale_each_rows_loss(tmp_path, tokenizer, sft_dataset):
    weights = {"shortest": 0.25, "longest": 2.0}  # medium: 1.0
    trainer = _trainer(tmp_path, tokenizer, sft_dataset, length_ranks=["all"], length_weights=weights)
    ds = trainer.train_dataset
    assert SAMPLE_WEIGHT_COLUMN in ds.column_names
    batch = _batch(trainer, 3)
    w = batch[SAMPLE_WEIGHT_COLUMN]
    assert w.tolist() == [weights.get(ds[i]["length_rank"], 1.0) for i in range(3)] == [0.25, 1.0, 2.0]
    nll_sums, n_tokens = _row_nll_sums(trainer.model, batch)
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, dict(batch))
    assert loss.item() == pytest.approx((w * nll_sums).sum().item() / n_tokens, rel=1e-5)
    # all-ones weights give TRL's own loss
    unweighted = _trainer(tmp_path, tokenizer, sft_dataset, length_ranks=["all"])
    plain = _batch(unweighted, 3)
    assert SAMPLE_WEIGHT_COLUMN not in plain
    with torch.no_grad():
        loss_trl = unweighted.compute_loss(unweighted.model, dict(plain))
        ones = dict(batch)
        ones[SAMPLE_WEIGHT_COLUMN] = torch.ones(3)
        loss_ones = trainer.compute_loss(trainer.model, ones)
    assert loss_trl.item() == pytest.approx(nll_sums.sum().item() / n_tokens, rel=1e-5)
    torch.testing.assert_close(loss_ones, loss_trl)


def test_train_full_with_weights(tmp_path, tokenizer, sft_dataset):
    trainer = _trainer(
        tmp_path, tokenizer, sft_dataset, length_ranks=["all"], length_weights={"shortest": 0.5}
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(before[n], p) for n, p in trainer.model.named_parameters())


def test_train_with_packing(tmp_path, tokenizer, sft_dataset):
    trainer = _trainer(tmp_path, tokenizer, sft_dataset, length_ranks=["all"], packing=True, max_length=256)
    ds = trainer.train_dataset
    assert "seq_lengths" in ds.column_names and len(ds) < 6  # rows were packed together
    # the prompt tokens of every packed row keep label -100
    for row in ds:
        assert sum(row["seq_lengths"]) == len(row["input_ids"])
        start = 0
        for length in row["seq_lengths"]:
            labels = row["labels"][start : start + length]
            assert labels[0] == -100 and any(t != -100 for t in labels)
            start += length
    result = trainer.train()
    assert math.isfinite(result.training_loss)


def test_train_lora(tmp_path, tokenizer, sft_dataset):
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    trainer = _trainer(tmp_path, tokenizer, sft_dataset, peft_config=lora)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
