"""`treecot eval` end to end through lighteval on the tiny model (random weights: accuracy ≈ 0, so these
tests check keys, ranges, counts and wiring; exact metric values are tested in test_eval_metrics.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from treecot.evaluation.lighteval_tasks import EVAL_TASKS

MAX_NEW_TOKENS = 12
RATES = ("accuracy", "no_answer_rate", "repetition_rate", "over_reflection_rate", "hit_limit_rate")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    from treecot.models import load_model

    path = tmp_path_factory.mktemp("tiny-model")
    model, tokenizer = load_model("tiny")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def all_tasks_run(tiny_dir, tmp_path_factory):
    from treecot.evaluation.runner import run_eval

    out = tmp_path_factory.mktemp("eval-all")
    run = run_eval(
        str(tiny_dir),
        list(EVAL_TASKS),
        limit=2,
        max_new_tokens=MAX_NEW_TOKENS,
        output_dir=out,
        progress=False,
        provenance={"dataset_repo": "me/treecot-gsm8k", "recipe_hash": "abc123"},
    )
    return run


def _details(run, task: str):
    import pandas as pd

    files = sorted((run.output_dir / "details").rglob(f"details_treecot_{task}|0_*.parquet"))
    assert files, f"no details parquet for {task}"
    return pd.read_parquet(files[-1])


def test_materialize_reads_a_validation_slice_of_another_split(tmp_path):
    from treecot.evaluation.lighteval_tasks import materialize
    from treecot.tasks import get_task

    def ids(path):
        return [json.loads(line)["id"] for line in (path / "test.jsonl").read_text().splitlines()]

    train = get_task("arithmetic").load("train", limit=8)
    val = materialize("arithmetic", limit=3, root=tmp_path, split="train", offset=5)
    assert ids(val) == [train[i]["id"] for i in (5, 6, 7)]
    test = materialize("arithmetic", limit=3, root=tmp_path)
    assert ids(test) == [r["id"] for r in get_task("arithmetic").load("test", limit=3)]
    assert not set(ids(val)) & set(ids(test))
    with pytest.raises(ValueError, match="no split 'dev'"):
        materialize("arithmetic", limit=3, root=tmp_path, split="dev")
    with pytest.raises(ValueError, match="offset 5000: task 'arithmetic' has only"):
        materialize("arithmetic", limit=3, root=tmp_path, split="train", offset=5000)
    with pytest.raises(ValueError, match="offset must be a non-negative integer"):
        materialize("arithmetic", limit=3, root=tmp_path, offset=-1)


def test_every_task_end_to_end(all_tasks_run):
    run = all_tasks_run
    results = json.loads(run.results_path.read_text())
    assert run.results_path.parent == run.output_dir / "results"
    for task in EVAL_TASKS:
        metrics = results["results"][f"treecot_{task}|0"]
        for rate in RATES:
            assert 0.0 <= metrics[rate] <= 1.0, (task, rate, metrics[rate])
        assert 0 < metrics["mean_tokens"] <= MAX_NEW_TOKENS
        if task in ("ifeval", "ifbench"):
            assert 0.0 <= metrics["instruction_failure_rate"] <= 1.0
            assert 0.0 <= metrics["inst_loose"] <= 1.0
        else:
            assert "instruction_failure_rate" not in metrics
        row = run.summary["tasks"][task]
        assert row["n"] == 2
        assert row["accuracy"] == metrics["accuracy"] and row["no_answer_rate"] == metrics["no_answer_rate"]
    summary = json.loads(run.summary_path.read_text())
    assert summary["mode"] == "greedy" and summary["samples"] == 1 and summary["seed"] == 0
    assert summary["model_revision"].startswith("sha256:")
    assert summary["dataset_repo"] == "me/treecot-gsm8k" and summary["recipe_hash"] == "abc123"
    assert summary["lighteval_results"] == run.results_path.relative_to(run.output_dir).as_posix()
    assert set(summary["tasks"]) == set(EVAL_TASKS)
    table = run.markdown_path.read_text()
    assert all(f"| {task} | 2 |" in table for task in EVAL_TASKS)


def test_only_treecot_tasks_are_registered_and_autograd_is_restored(all_tasks_run):
    import torch

    builtin = [m for m in sys.modules if m.startswith("lighteval.tasks.tasks.")]
    assert builtin == []  # lighteval's built-in task modules (which download / break offline) never loaded
    assert torch.is_grad_enabled()


def test_prompts_use_the_tasks_chat_messages(all_tasks_run):
    from treecot.models import load_tokenizer
    from treecot.tasks import get_task

    tokenizer = load_tokenizer("tiny")
    details = _details(all_tasks_run, "gsm8k")
    prompt = tokenizer.decode(list(details.iloc[0]["model_response"]["input_tokens"]))
    system = get_task("gsm8k").system_prompt
    assert prompt.startswith("<|im_start|>system\n" + system)
    assert prompt.endswith("<|im_start|>assistant\n")
    generated = details.iloc[0]["model_response"]["output_tokens"][0]
    assert len(generated) == MAX_NEW_TOKENS  # random weights never stop; EOS padding is trimmed


def test_test_at_n_samples_are_seeded_and_reported(tiny_dir, tmp_path):
    from treecot.evaluation.runner import eval_main

    def run(seed: int, name: str):
        code = eval_main(
            [str(tiny_dir), "--tasks", "gsm8k", "--limit", "1", "--samples", "3", "--seed", str(seed)]
            + ["--max-new-tokens", "8", "--output-dir", str(tmp_path / name), "--no-progress"]
        )
        assert code == 0
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        texts = [list(d["model_response"]["text"]) for d in _details_of(tmp_path / name)]
        return summary, texts

    first, texts_a = run(1, "a")
    _, texts_b = run(1, "b")
    _, texts_c = run(2, "c")
    assert texts_a == texts_b and len(texts_a[0]) == 3  # same seed, same samples
    assert texts_a != texts_c
    row = first["tasks"]["gsm8k"]
    assert first["mode"] == "sampling" and first["samples"] == 3 and first["temperature"] == 0.7
    assert {"pass@1", "pass@2", "pass@3", "test_at_n"} <= set(row)
    assert row["test_at_n"] == row["pass@3"] and 0.0 <= row["pass@1"] <= row["pass@3"] <= 1.0


def _details_of(out: Path):
    import pandas as pd

    (path,) = sorted((out / "details").rglob("*.parquet"))
    return pd.read_parquet(path).to_dict("records")


def test_mcts_decode_end_to_end(tiny_dir, tmp_path):
    from treecot.evaluation.decode import MCTSDecodeConfig
    from treecot.evaluation.runner import run_eval
    from treecot.search.tree import Tree

    config = MCTSDecodeConfig(max_rollouts=2, max_depth=3, max_node_tokens=6, seed=0)
    run = run_eval(
        str(tiny_dir), "gsm8k", limit=1, mcts=True, mcts_config=config, output_dir=tmp_path, progress=False
    )
    assert run.summary["mode"] == "mcts" and run.summary["mcts"]["config"]["max_rollouts"] == 2
    assert run.summary["mcts"]["stats"]["problems"] == 1 and run.summary["mcts"]["stats"]["rollouts"] == 2
    (line,) = (tmp_path / "mcts_trees.jsonl").read_text().splitlines()
    tree = Tree.from_json(line)
    assert tree.config["value_mode"] == "confidence"
    best = max(tree.answer_nodes(), key=lambda n: (n.reward, n.visits, -n.id))
    (detail,) = _details_of(tmp_path)
    assert list(detail["model_response"]["text"]) == [tree.serialize_path(best.id)]
    assert 0.0 <= run.summary["tasks"]["gsm8k"]["accuracy"] <= 1.0


def test_custom_task_file_loads_with_lightevals_own_loader():
    """The module file works with lighteval's `--custom-tasks` loader (TASKS_TABLE, unique names, local
    data). The plain CLI itself is unsupported here: its registry imports lighteval's built-in task
    modules first, which fail offline / with huggingface-hub 2.x (documented in the module)."""
    from lighteval.tasks.registry import Registry

    import treecot.evaluation.lighteval_tasks as module

    loaded = Registry.create_custom_tasks_module(module.__file__)  # a fresh module from the file
    loaded.EVAL_TASKS = {"gsm8k": "test", "aime24": "test"}  # keep the lazy TASKS_TABLE small
    configs = Registry._extract_configs(loaded)
    assert set(configs) == {"treecot_gsm8k", "treecot_aime24"}
    data = Path(configs["treecot_aime24"].hf_repo)
    assert data.is_dir() and len((data / "test.jsonl").read_text().splitlines()) == 30
    metric = configs["treecot_gsm8k"].metrics[0]
    assert "accuracy" in metric.metric_name and "no_answer_rate" in metric.metric_name


def test_xxhash_shim_hashes_strings_like_bytes():
    import xxhash
    from lighteval.logging import info_loggers

    from treecot.evaluation.runner import shim_xxhash

    shim_xxhash()
    assert info_loggers.xxhash.xxh64("abc").hexdigest() == xxhash.xxh64(b"abc").hexdigest()
    assert info_loggers.xxhash.xxh64(b"abc").hexdigest() == xxhash.xxh64(b"abc").hexdigest()


def test_run_eval_rejects_bad_arguments(tiny_dir, tmp_path):
    from treecot.evaluation.runner import run_eval

    with pytest.raises(ValueError, match="unknown evaluation task 'gsm9k'"):
        run_eval(str(tiny_dir), "gsm9k", output_dir=tmp_path)
    with pytest.raises(ValueError, match="temperature > 0"):
        run_eval(str(tiny_dir), "gsm8k", samples=2, temperature=0.0, output_dir=tmp_path)
    with pytest.raises(ValueError, match="limit must be a positive integer"):
        run_eval(str(tiny_dir), "gsm8k", limit=0, output_dir=tmp_path)
    with pytest.raises(ValueError, match="unknown device 'gpu0'"):
        run_eval(str(tiny_dir), "gsm8k", device="gpu0", output_dir=tmp_path)


def test_a_trained_model_is_evaluated_under_its_training_prompt_and_budget(tiny_dir, tmp_path):
    """The model's provenance carries its data's prompt contract: evaluation renders that system prompt and
    warns, naming both numbers, when the budget is below the training responses' 95th percentile."""
    import shutil

    from treecot.evaluation.runner import run_eval
    from treecot.models import load_tokenizer
    from treecot.prompts import BudgetWarning

    model = tmp_path / "trained"
    shutil.copytree(tiny_dir, model)
    contract = {
        "system_prompts": {"gsm8k": "Trained prompt: use <thinking> and <answer> sections."},
        "response_tokens": {"gsm8k": {"n": 20, "p50": 30, "p95": 64, "max": 80}},
    }
    (model / "treecot_provenance.json").write_text(json.dumps({"prompt_contract": contract}))
    with pytest.warns(BudgetWarning, match=r"max_new_tokens=8 is below the 95th percentile \(64 tokens\)"):
        run = run_eval(
            str(model), ["gsm8k"], limit=1, max_new_tokens=8, output_dir=tmp_path / "out", progress=False
        )
    assert run.summary["prompt"]["sources"] == {"gsm8k": "model"}
    assert run.summary["prompt"]["system_prompts"]["gsm8k"] == contract["system_prompts"]["gsm8k"]
    assert run.summary["warnings"] and "64 tokens" in run.summary["warnings"][0]
    details = _details(run, "gsm8k")
    prompt = load_tokenizer("tiny").decode(list(details.iloc[0]["model_response"]["input_tokens"]))
    assert prompt.startswith("<|im_start|>system\n" + contract["system_prompts"]["gsm8k"])
    # --system-prompt task evaluates the same model under the task's own prompt, without the warning
    other = run_eval(
        str(model),
        ["gsm8k"],
        limit=1,
        max_new_tokens=8,
        output_dir=tmp_path / "out-task",
        progress=False,
        system_prompt="task",
    )
    assert other.summary["prompt"]["sources"] == {"gsm8k": "task"} and other.summary["warnings"] == []
