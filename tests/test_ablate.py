"""`treecot ablate`: the paper's Table 5 as one command, shortened (tiny model, scripted search, one training
step per row): every row trains from the SFT model, all rows are evaluated on the same problems under the
prompt contract, outputs follow the documented schema, and a rerun resumes."""

import json
from pathlib import Path

import pytest
import yaml

from tests.pipeline.test_generate import fake_generators
from treecot.ablate import (
    ROWS,
    AblationRun,
    label_of,
    load_ablation_config,
    run_ablation,
    select_learning_rate,
)
from treecot.demo import STATE_FILE, DemoError

ROOT = Path(__file__).resolve().parents[1]
CPU_RECIPE = ROOT / "recipes" / "smollm2-135m-instruct" / "ablate" / "config_arithmetic.yaml"
GPU_RECIPE = ROOT / "recipes" / "llama-3.1-8b-instruct" / "ablate" / "config_gsm8k.yaml"


def short_config(out: Path) -> dict:
    """The CPU ablation recipe cut down: tiny model, 2 GSM8K problems, one training step per row, two SFT
    learning-rate candidates scored on 2 GSM8K train (validation) problems."""
    cfg = yaml.safe_load(CPU_RECIPE.read_text())
    slice_ = cfg["generate"][0]
    slice_["name"] = "gsm8k-2"
    slice_["problems"] = {"task": "gsm8k", "split": "test", "limit": 2}
    slice_["generate"]["search"].update(
        max_rollouts=6, early_stop_rollouts=4, stop_at_correct=2, max_depth=4, max_node_tokens=8
    )
    for stage in ("sft", "dpo"):
        cfg["train"][stage]["config"] = str(ROOT / cfg["train"][stage]["config"])
        cfg["train"][stage]["overrides"].update(max_steps=1, per_device_train_batch_size=1, logging_steps=1)
    cfg.update(model="tiny", output_dir=str(out), generate=[slice_])
    cfg["eval"].update(tasks=["gsm8k"], limit=2, batch_size=2, dtype="float32")
    cfg["ablation"]["select"] = {
        "learning_rates": [1.0e-5, 3.0e-4],
        "split": "train",
        "offset": 0,
        "limit": 2,
    }
    return cfg


@pytest.fixture(scope="module")
def ablation(tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate") / "out"
    cfg = short_config(out)
    results = run_ablation(cfg, generators=fake_generators(), progress=False)
    return out, cfg, results


def test_ablation_trains_every_row_from_the_sft_model(ablation):
    out, cfg, results = ablation
    state = json.loads((out / STATE_FILE).read_text())
    expected = ["generate", "build", "eval-base", "eval-base-data-prompt"]
    expected += ["eval-select-base", "select-sft-0", "eval-select-sft-0", "select-sft-1", "eval-select-sft-1"]
    expected += ["sft", "eval-sft"]
    for row in ROWS:
        expected += [row, f"eval-{row}"]
    assert list(state["stages"]) == [*expected, "leaderboard", "table"]
    sft_dir = str(out / "models" / "sft")
    for row, (_, dataset_config, _) in ROWS.items():
        command = results[row]["command"]
        assert f"--model_name_or_path {sft_dir} " in command  # every preference row starts from SFT
        assert f"--dataset_config {dataset_config} " in command
        assert (out / "models" / row / "model.safetensors").is_file()
    # the cumulative loss settings of Table 5 (ε = 0.1, α = 1 in the shipped recipe)
    flags = {row: results[row]["command"] for row in ROWS}
    assert "--cdpo_epsilon 0.0 " in flags["dpo"] and "--sft_alpha 0.0 " in flags["balance"]
    assert "--cdpo_epsilon 0.1 " in flags["cdpo"] and "--sft_alpha 0.0 " in flags["cdpo"]
    assert "--sft_alpha 1.0 " in flags["joint"] and "--mask_shared_prefix False " in flags["joint"]
    assert "--mask_shared_prefix True " in flags["masking"]


def test_every_row_is_evaluated_on_the_same_problems_under_the_contract(ablation):
    out, _, results = ablation
    evals = results["eval"]
    assert list(evals) == ["base", "base-data-prompt", "sft", *ROWS]
    budgets = {rec["max_new_tokens"] for rec in evals.values()}
    assert len(budgets) == 1  # one budget, derived from the data
    data_prompt = evals["base-data-prompt"]["prompt"]["system_prompts"]["gsm8k"]
    assert evals["base"]["prompt"]["sources"] == {"gsm8k": "task"}
    assert evals["base-data-prompt"]["prompt"]["sources"] == {"gsm8k": "dataset"}
    for row in ("sft", *ROWS):  # trained models: the prompt of their data, from their provenance
        assert evals[row]["prompt"]["sources"] == {"gsm8k": "model"}
        assert evals[row]["prompt"]["system_prompts"]["gsm8k"] == data_prompt
    ids = set()
    for rec in evals.values():
        summary = json.loads(Path(rec["summary"]).read_text())
        assert summary["tasks"]["gsm8k"]["n"] == 2
        ids.add(summary["limit"])
    assert ids == {2}


def test_outputs_follow_the_schema(ablation):
    out, _, results = ablation
    record = json.loads(Path(results["table"]["json"]).read_text())
    assert {"name", "model", "commit", "date", "epsilon", "alpha", "max_new_tokens", "data", "rows"} <= set(
        record
    )
    assert record["wall_seconds_total"] >= 0 and "generate" in record["wall_seconds"]
    assert record["data"]["sft_rows"] >= 1 and record["data"]["dpo_rows"] >= 1
    assert [e["row"] for e in record["rows"]] == ["base", "base-data-prompt", "sft", *ROWS]
    for entry in record["rows"]:
        assert entry["task"] == "gsm8k" and entry["n"] == 2
        assert entry["accuracy_low"] <= entry["accuracy"] <= entry["accuracy_high"]
        assert entry["no_answer_low"] <= entry["no_answer_rate"] <= entry["no_answer_high"]
    table = Path(results["table"]["table"]).read_text()
    for name in ["base", "base-data-prompt", "sft", *ROWS]:
        assert f"| {label_of(name)} |" in table
    assert "## The paper's Table 5" in table and "| + Masking | 87.2 (0.15)" in table
    assert "exceeds noise" in table or "within noise" in table
    assert Path(results["table"]["plot"]).stat().st_size > 0
    from treecot.hub import load_versioned

    board = load_versioned(results["leaderboard"]["leaderboard"], "results", split="train")
    assert {r["model"] for r in board} == {f"{results_name(out)}: {label_of(n)}" for n in results["eval"]}


def test_sft_learning_rate_is_chosen_on_validation_problems(ablation):
    out, cfg, results = ablation
    select = results["select"]
    assert [c["learning_rate"] for c in select["candidates"]] == [1.0e-5, 3.0e-4]
    scores = {c["learning_rate"]: c["tasks"] for c in select["candidates"]}
    assert select["learning_rate"] == select_learning_rate(scores, ["gsm8k"])
    chosen = select["stage"]
    stages = json.loads((out / STATE_FILE).read_text())["stages"]
    assert f"--learning_rate {select['learning_rate']} " in stages[chosen]["command"]
    # validation problems are train problems; the rows' test problems play no part in the choice
    val_ids, test_ids = set(), set()
    for stage in ("eval-select-base", "eval-select-sft-0", "eval-select-sft-1"):
        summary = json.loads(Path(stages[stage]["summary"]).read_text())
        assert (summary["split"], summary["offset"], summary["tasks"]["gsm8k"]["n"]) == ("train", 0, 2)
        val_ids |= _problem_ids(Path(stages[stage]["summary"]).parent)
    test_ids = _problem_ids(Path(results["eval"]["sft"]["summary"]).parent)
    assert val_ids and test_ids and not val_ids & test_ids
    # the SFT row is the chosen candidate's model
    same = (out / "models" / chosen / "model.safetensors").read_bytes()
    assert (out / "models" / "sft" / "model.safetensors").read_bytes() == same
    assert results["sft"]["learning_rate"] == select["learning_rate"]
    record = json.loads(Path(results["table"]["json"]).read_text())
    assert record["selection"]["learning_rate"] == select["learning_rate"]
    assert [c["learning_rate"] for c in record["selection"]["candidates"]] == [1.0e-5, 3.0e-4]
    assert record["selection"]["candidates"][0]["gsm8k_n"] == 2
    # the base model on the same validation problems, under the data's prompt: read against, not chosen
    base = json.loads(Path(stages["eval-select-base"]["summary"]).read_text())
    assert base["model"] == "tiny" and base["prompt"]["sources"] == {"gsm8k": "dataset"}
    assert record["selection"]["base"]["gsm8k_accuracy"] == select["base"]["gsm8k"]["accuracy"]
    assert "| base (data prompt) |" in Path(results["table"]["table"]).read_text()
    assert "chosen before any test evaluation" in Path(results["table"]["table"]).read_text()


def test_benchmark_record_flattens_rows_and_selection(ablation):
    from benchmarks.ablation import flatten

    _, _, results = ablation
    figures = flatten(json.loads(Path(results["table"]["json"]).read_text()))
    assert figures["sft_learning_rate"] == results["select"]["learning_rate"]
    assert figures["validation_base_gsm8k_n"] == 2 and figures["validation_candidate_0_gsm8k_n"] == 2
    assert figures["validation_candidate_0_learning_rate"] == 1.0e-5
    assert figures["sft_gsm8k_n"] == 2 and "masking_gsm8k_accuracy" in figures
    from benchmarks._common import _check_figure

    for name, value in figures.items():  # what write_results will accept (a learning rate is not a name)
        _check_figure(name, value)


def _problem_ids(eval_dir: Path) -> set[str]:
    """The problem ids an evaluation scored (from lighteval's details)."""
    import pandas as pd

    ids = set()
    for f in eval_dir.rglob("details_*.parquet"):
        for doc in pd.read_parquet(f)["doc"]:
            ids.add(json.loads(doc["specific"]["problem"])["id"])
    return ids


def test_select_learning_rate_breaks_ties_by_no_answer_then_the_smaller_rate():
    scores = {
        1e-4: {"a": {"accuracy": 0.5, "no_answer_rate": 0.2}},
        1e-5: {"a": {"accuracy": 0.5, "no_answer_rate": 0.1}},
        5e-5: {"a": {"accuracy": 0.4, "no_answer_rate": 0.0}},
    }
    assert select_learning_rate(scores, ["a"]) == 1e-5
    scores[1e-4]["a"]["no_answer_rate"] = 0.1
    assert select_learning_rate(scores, ["a"]) == 1e-5
    scores[5e-5]["a"]["accuracy"] = 0.6
    assert select_learning_rate(scores, ["a"]) == 5e-5


def results_name(out: Path) -> str:
    return json.loads((out / "ablation" / "ablation.json").read_text())["name"]


def test_rerun_resumes_and_a_changed_row_reruns_only_downstream(ablation, capsys):
    out, cfg, _ = ablation
    run_ablation(cfg, generators=fake_generators(), progress=False)
    printed = capsys.readouterr().out
    assert (
        printed.count("reused") == len(AblationRun(load_ablation_config(cfg)).stages) - 1
    )  # table rewritten
    changed = json.loads(json.dumps(cfg))
    changed["ablation"]["epsilon"] = 0.2
    results = run_ablation(changed, generators=fake_generators(), progress=False)
    printed = capsys.readouterr().out
    for stage in ("generate", "build", "eval-base", "sft", "eval-sft", "dpo", "balance"):
        assert f" {stage}: done earlier" in printed  # ε does not touch them
    for stage in ("cdpo", "joint", "masking"):
        assert "--cdpo_epsilon 0.2 " in results[stage]["command"]


def test_config_errors_are_named(tmp_path):
    cfg = short_config(tmp_path / "x")
    bad = json.loads(json.dumps(cfg))
    bad["ablation"]["rows"] = ["dpo", "magic"]
    with pytest.raises(DemoError, match="ablation.rows: unknown row 'magic'"):
        load_ablation_config(bad)
    bad = json.loads(json.dumps(cfg))
    bad["ablation"]["epsilon"] = 0.7
    with pytest.raises(DemoError, match=r"ablation.epsilon must lie in \[0, 0.5\)"):
        load_ablation_config(bad)
    bad = json.loads(json.dumps(cfg))
    del bad["train"]["dpo"]
    with pytest.raises(DemoError, match="train.dpo is missing"):
        load_ablation_config(bad)
    bad = json.loads(json.dumps(cfg))
    bad["ablation"]["select"].update(split="test")
    with pytest.raises(DemoError, match="select.split must not be the test split"):
        load_ablation_config(bad)
    bad = json.loads(json.dumps(cfg))
    bad["generate"][0]["problems"] = {"task": "gsm8k", "split": "train", "offset": 0, "limit": 5}
    bad["ablation"]["select"].update(offset=3)
    with pytest.raises(DemoError, match=r"validation problems 3–4 of gsm8k/train overlap the search slice 0–4; "
                                        r"give ablation.select.offset >= 5"):  # fmt: skip
        load_ablation_config(bad)
    bad["ablation"]["select"].update(offset=5)
    load_ablation_config(bad)  # disjoint: fine
    for lrs in ([], [0.0], ["1e-5"], [1e-5, 1e-5]):
        bad = json.loads(json.dumps(cfg))
        bad["ablation"]["select"]["learning_rates"] = lrs
        with pytest.raises(DemoError, match="ablation.select.learning_rates"):
            load_ablation_config(bad)
    zeroshot = json.loads(json.dumps(cfg))  # an evaluation variant's splits are its task's
    zeroshot["eval"]["tasks"] = ["gsm8k", "planbench_zeroshot"]
    with pytest.raises(DemoError, match="task 'planbench_zeroshot' has no split 'train'"):
        load_ablation_config(zeroshot)
    bad = json.loads(json.dumps(cfg))
    bad["ablation"]["select"]["budget"] = 3
    with pytest.raises(DemoError, match=r"ablation\.select\.budget: unknown field"):
        load_ablation_config(bad)
    bad = json.loads(json.dumps(cfg))
    bad["eval"]["max_new_tokens"] = "lots"
    with pytest.raises(DemoError, match="max_new_tokens must be a positive integer or 'auto'"):
        load_ablation_config(bad)


@pytest.mark.parametrize("recipe", [CPU_RECIPE, GPU_RECIPE], ids=["cpu", "gpu"])
def test_shipped_recipes_load(recipe):
    cfg = load_ablation_config(recipe)
    assert cfg.eval.limit >= 200 and cfg.eval.max_new_tokens == "auto"
    assert cfg.ablation.rows == list(ROWS) and cfg.build.get("dpo_all") is True
    if recipe == CPU_RECIPE:  # the SFT learning rate is chosen on validation problems, not fixed
        assert (
            len(cfg.ablation.select.learning_rates) >= 2 and "learning_rate" not in cfg.train["sft"].overrides
        )
