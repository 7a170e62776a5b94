"""`treecot eval` end to end through lighteval on the tiny model (random weights: accuracy ≈ 0, so these
tests check keys, ranges, counts and wiring; exact metric values are tested in test_eval_metrics.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from treecot.evaluation.lighteval_tasks import EVAL_TASKS

MAX_NEW_TOKENS = 12
#: A small PlanBench checkout (tests/fixtures/data/planbench, MIT): the PlanBench tasks read it via $TREECOT_PLANBENCH.
PLANBENCH = Path(__file__).parent.parent / "fixtures" / "data" / "planbench"
PLANBENCH_TASKS = ("planbench", "planbench_zeroshot")
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
    with pytest.MonkeyPatch.context() as mp:  # every task, PlanBench's from the fixture checkout
        mp.setenv("TREECOT_PLANBENCH", str(PLANBENCH))
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


def test_planbench_is_evaluated_on_the_checkouts_problems_and_scored_as_plans(all_tasks_run):
    """`--tasks planbench,planbench_zeroshot`: the first problems of the checkout, PlanBench's prompt text as
    the only (user) message, each response scored by the Blocksworld verifier; the summary lists both."""
    from treecot.models import load_tokenizer
    from treecot.tasks import get_task
    from treecot.tasks.planbench import ZERO_SHOT_QUESTION, problems_from_checkout

    tokenizer = load_tokenizer("tiny")
    verifier = get_task("planbench")
    for task, prompt_type in zip(PLANBENCH_TASKS, ("oneshot", "zeroshot")):
        expected = problems_from_checkout(PLANBENCH, prompt_type, task="planbench")[:2]
        details = _details(all_tasks_run, task).to_dict("records")
        assert len(details) == 2
        seen = {}
        for row in details:
            problem = json.loads(row["doc"]["specific"]["problem"])
            seen[problem["meta"]["instance_id"]] = problem
            prompt = tokenizer.decode(list(row["model_response"]["input_tokens"]))
            # no system prompt (PlanBench sends none; the empty one keeps the template's default out)
            assert prompt == (
                f"<|im_start|>system\n<|im_end|>\n<|im_start|>user\n{problem['question']}<|im_end|>\n"
                "<|im_start|>assistant\n"
            )
            (text,) = list(row["model_response"]["text"])
            verdict = verifier.verify(text, problem)
            assert row["metric"]["accuracy"] == float(verdict.correct)
            assert row["metric"]["no_answer_rate"] == float(not verdict.answered)
        assert {i: p["question"] for i, p in seen.items()} == {
            p["meta"]["instance_id"]: p["question"] for p in expected
        }
        assert all(p["meta"]["prompt_type"] == prompt_type for p in seen.values())
        assert all(
            p["question"].endswith(ZERO_SHOT_QUESTION) == (prompt_type == "zeroshot") for p in seen.values()
        )
        assert all(p["meta"]["source"] == f"planbench:{PLANBENCH}" for p in seen.values())
        assert all_tasks_run.summary["tasks"][task]["n"] == 2
        assert all_tasks_run.summary["prompt"]["system_prompts"][task] == ""
    assert sorted(seen) == [1, 2]  # zero-shot: instances 1–500 (one-shot: 2–501, checked above)
    table = all_tasks_run.markdown_path.read_text()
    assert "| planbench | 2 |" in table and "| planbench_zeroshot | 2 |" in table


def test_planbench_metric_is_the_blocksworld_verifier(tmp_path, monkeypatch):
    """The lighteval metric of ``treecot_planbench`` accepts a plan (in PlanBench's English) that reaches the
    goal and rejects one that does not: the plan is simulated, not compared as text."""
    from lighteval.models.model_output import ModelResponse

    from treecot.evaluation.lighteval_tasks import task_config
    from treecot.tasks.blocksworld import Action

    monkeypatch.setenv("TREECOT_PLANBENCH", str(PLANBENCH))
    config = task_config("planbench", limit=1, data_root=tmp_path)
    (line,) = [json.loads(x) for x in (Path(config.hf_repo) / "test.jsonl").read_text().splitlines()]
    doc = config.prompt_function(line, "treecot_planbench")
    plan = [Action.from_pddl(a) for a in line["reference"].splitlines()]
    assert len(plan) >= 2
    scorer = config.metrics[0].sample_level_fn

    def score(actions) -> dict:
        text = "[PLAN]\n" + "\n".join(a.text for a in actions) + "\n[PLAN END]"
        return scorer.compute(doc, ModelResponse(text=[text], output_tokens=[]))

    assert score(plan)["accuracy"] == 1.0
    wrong = score(plan[1:])  # the first step left out: the plan no longer runs (or misses the goal)
    assert wrong["accuracy"] == 0.0 and wrong["no_answer_rate"] == 0.0


def test_planbench_without_a_source_is_one_line_before_the_model_loads(tmp_path, monkeypatch, capsys):
    import datasets

    import treecot.models
    from treecot.cli import main

    loads = []
    monkeypatch.setattr(treecot.models, "load_model", lambda *a, **k: loads.append(a) or (None, None))

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'tasksource/planbench' on the Hub\n(LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("TREECOT_PLANBENCH", raising=False)
    argv = ["eval", "tiny", "--tasks", "gsm8k,planbench_zeroshot", "--limit", "1"]
    argv += ["--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("treecot eval: error: task 'planbench_zeroshot': PlanBench: no checkout given")
    assert (
        "set TREECOT_PLANBENCH to its folder" in line
        and "https://github.com/karthikv792/LLMs-Planning" in line
    )
    # a folder that is no checkout is named
    monkeypatch.setenv("TREECOT_PLANBENCH", str(tmp_path))
    assert main(argv) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert f"task 'planbench_zeroshot': no PlanBench checkout at {str(tmp_path)!r}" in line
    assert "git clone https://github.com/karthikv792/LLMs-Planning" in line
    assert loads == []  # nothing was loaded: the problems are read first


def test_custom_task_table_leaves_out_planbench_without_a_source(monkeypatch, caplog):
    """lighteval's `--custom-tasks` loader still gets every other task when PlanBench has no source."""
    import datasets
    from lighteval.tasks.registry import Registry

    import treecot.evaluation.lighteval_tasks as module
    from treecot.tasks.planbench import problems_from_checkout

    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.delenv("TREECOT_PLANBENCH", raising=False)
    loaded = Registry.create_custom_tasks_module(module.__file__)
    loaded.EVAL_TASKS = {"aime24": "test", "planbench": "test"}
    with caplog.at_level("WARNING"):
        assert set(Registry._extract_configs(loaded)) == {"treecot_aime24"}
    assert "TASKS_TABLE leaves out treecot_planbench" in caplog.text and "TREECOT_PLANBENCH" in caplog.text
    monkeypatch.setenv("TREECOT_PLANBENCH", str(PLANBENCH))
    loaded = Registry.create_custom_tasks_module(module.__file__)
    loaded.EVAL_TASKS = {"planbench_zeroshot": "test"}
    configs = Registry._extract_configs(loaded)
    data = Path(configs["treecot_planbench_zeroshot"].hf_repo) / "test.jsonl"
    rows = [json.loads(r) for r in data.read_text().splitlines()]
    expected = problems_from_checkout(PLANBENCH, "zeroshot", task="planbench")
    assert [r["id"] for r in rows] == [p["id"] for p in expected]  # every zero-shot problem of the fixture


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


def test_mcts_decode_keeps_each_planbench_variants_system_prompt(tiny_dir, tmp_path, monkeypatch):
    """planbench_zeroshot's problems are "planbench" problems: MCTS decode must still search them under
    planbench_zeroshot's system prompt, not the tag-guide default."""
    from treecot.evaluation.decode import MCTSDecodeConfig
    from treecot.evaluation.runner import run_eval
    from treecot.search.tree import Tree

    monkeypatch.setenv("TREECOT_PLANBENCH", str(PLANBENCH))
    config = MCTSDecodeConfig(max_rollouts=1, max_depth=2, max_node_tokens=4, seed=0)
    run = run_eval(
        str(tiny_dir),
        "planbench_zeroshot",
        limit=1,
        mcts=True,
        mcts_config=config,
        output_dir=tmp_path,
        progress=False,
        system_prompt="Plan with the four actions.",
    )
    (line,) = (tmp_path / "mcts_trees.jsonl").read_text().splitlines()
    tree = Tree.from_json(line)
    assert tree.generator["system_prompt"] == "Plan with the four actions."
    assert tree.problem["meta"]["prompt_type"] == "zeroshot"
    assert run.summary["tasks"]["planbench_zeroshot"]["n"] == 1


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

    from treecot.evaluation.lighteval_compat import shim_xxhash

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
    with pytest.raises(ValueError, match="offset must be a non-negative integer, got -1"):
        run_eval(str(tiny_dir), "gsm8k", offset=-1, output_dir=tmp_path)
    with pytest.raises(ValueError, match="seed must be a non-negative integer, got True"):
        run_eval(str(tiny_dir), "gsm8k", seed=True, output_dir=tmp_path)
    with pytest.raises(ValueError, match="no split 'dev'"):
        run_eval(str(tiny_dir), "gsm8k", split="dev", output_dir=tmp_path)


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


def test_noise_a_user_cannot_act_on_is_left_out(tmp_path):
    """lighteval's few-shot warning (treecot's tasks run 0-shot) and transformers' "`temperature` is not
    valid" under greedy decoding are dropped while an evaluation runs, and only those two messages."""
    import logging

    from treecot.evaluation.runner import run_eval

    seen = []

    class Collect(logging.Handler):
        def emit(self, record):
            seen.append((record.name, record.getMessage()))

    names = ("lighteval.tasks.lighteval_task", "transformers.generation.configuration_utils")
    loggers = [logging.getLogger(name) for name in names]
    handler = Collect(level=logging.WARNING)
    for log in loggers:
        log.addHandler(handler)
    logging.Logger.warning_once.cache_clear()  # transformers warns once per process: let it warn again
    try:
        run_eval("tiny", "arithmetic", limit=1, max_new_tokens=4, output_dir=tmp_path, progress=False)
        assert not [m for _, m in seen if "few shot" in m or "generation flags" in m], seen
        for log in loggers:  # outside an evaluation, and for any other message, nothing is dropped
            log.warning(
                "Careful, the task treecot_gsm8k is using evaluation data to build the few shot examples."
            )
        loggers[1].warning("The following generation flags are not valid and may be ignored: ['top_k'].")
        assert len(seen) == 3, seen
    finally:
        for log in loggers:
            log.removeHandler(handler)


def test_compat_refuses_an_unsupported_lighteval():
    """The workarounds rely on lighteval 0.13's private internals: another release is named and refused."""
    from treecot.evaluation.lighteval_version import (
        SUPPORTED_LIGHTEVAL,
        UnsupportedLightevalVersion,
        check_lighteval_version,
    )

    assert check_lighteval_version().startswith(SUPPORTED_LIGHTEVAL + ".")
    assert check_lighteval_version("0.13.2") == "0.13.2"
    with pytest.raises(UnsupportedLightevalVersion, match=r"lighteval 0\.9\.2 is installed"):
        check_lighteval_version("0.9.2")


def test_eval_refuses_an_unsupported_lighteval_before_any_work(monkeypatch, capsys):
    """`treecot eval` checks the lighteval release first: one line, exit 2, no problem read, no model loaded."""
    from treecot.cli import main
    from treecot.evaluation import lighteval_version, runner

    monkeypatch.setattr(lighteval_version, "installed_version", lambda: "0.9.2")
    monkeypatch.setattr(runner, "_parse_tasks", lambda tasks: pytest.fail("a problem set was read"))
    assert main(["eval", "tiny", "--tasks", "gsm8k", "--limit", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("treecot eval: error: treecot eval needs lighteval 0.13.x")
        and "0.9.2 is installed" in err
    )
    assert err.count("\n") == 1


def test_decoding_shows_steps_not_only_batches(tmp_path, capsys):
    """lighteval's bar counts batches ("Greedy generation 0/1" for minutes on a CPU); treecot's counts the
    decoding steps of the batch in flight."""
    from treecot.evaluation.lighteval_compat import _DecodeSteps
    from treecot.evaluation.runner import run_eval

    steps = []
    real_update = _DecodeSteps.put

    def put(self, value):
        real_update(self, value)
        steps.append(self.bar.n if self.bar is not None else None)

    _DecodeSteps.put = put
    try:
        run_eval("tiny", "arithmetic", limit=2, max_new_tokens=5, output_dir=tmp_path, progress=True)
    finally:
        _DecodeSteps.put = real_update
    assert steps[:3] == [0, 1, 2], steps  # the prompt opens the bar, then one tick per decoding step
    assert "decoding batch 1 (2 of 2 prompts)" in capsys.readouterr().err
    run = run_eval(
        "tiny", "arithmetic", limit=1, max_new_tokens=3, output_dir=tmp_path / "quiet", progress=False
    )
    assert run.summary["tasks"]["arithmetic"]["n"] == 1


def _texts(out: Path) -> list[list[str]]:
    return [list(d["model_response"]["text"]) for d in _details_of(out)]


def test_a_generation_backend_decodes_behind_lightevals_model_interface(tiny_dir, tmp_path):
    """`backend` other than the default hands the Docs to a treecot `Generator` (here the in-process one,
    standing in for a server): same prompts, same greedy texts and scores as lighteval's own model; the
    summary names the backend; bad settings are named before anything loads."""
    from treecot.backends.transformers_backend import TransformersGenerator
    from treecot.evaluation.runner import run_eval

    common = dict(limit=3, max_new_tokens=12, batch_size=1, progress=False)
    own = run_eval(str(tiny_dir), "arithmetic", output_dir=tmp_path / "own", **common)
    gen = TransformersGenerator.from_pretrained(str(tiny_dir), dtype="float32", max_batch_size=1, seed=0)
    via = run_eval(
        str(tiny_dir), "arithmetic", output_dir=tmp_path / "via", backend="vllm", generator=gen, **common
    )
    assert _texts(tmp_path / "via") == _texts(tmp_path / "own")
    assert via.summary["tasks"] == own.summary["tasks"]
    assert own.summary["backend"] == "transformers" and via.summary["backend"] == "vllm"
    assert via.summary["model_revision"] == own.summary["model_revision"], (
        "the weights are named all the same"
    )
    with pytest.raises(ValueError, match="base_url: required for the openai backend"):
        run_eval(str(tiny_dir), "arithmetic", backend="openai", output_dir=tmp_path / "x")
    with pytest.raises(ValueError, match="unknown backend setting 'base_uri'"):
        run_eval(str(tiny_dir), "arithmetic", backend="openai", backend_settings={"base_uri": "h"})
    with pytest.raises(ValueError, match="need backend 'openai' or 'vllm'"):
        run_eval(str(tiny_dir), "arithmetic", backend_settings={"base_url": "http://127.0.0.1:1/v1"})
    with pytest.raises(ValueError, match="tensor_parallel_size: a vLLM engine setting"):
        run_eval(str(tiny_dir), "arithmetic", backend="openai",
                 backend_settings={"base_url": "http://127.0.0.1:1/v1", "tensor_parallel_size": 2})  # fmt: skip


@pytest.mark.slow
def test_eval_through_a_real_vllm_server_equals_in_process(vllm_server, tmp_path):
    """`treecot eval --backend openai` against the real vLLM CPU server: greedy texts and scores equal to
    the in-process evaluation of the same float32 weights; Test@N and MCTS decode run through it too."""
    from treecot.evaluation.decode import MCTSDecodeConfig
    from treecot.evaluation.runner import eval_main, run_eval

    model = str(vllm_server.model_dir)
    common = dict(limit=4, max_new_tokens=48, dtype="float32", progress=False)
    local = run_eval(model, "arithmetic", batch_size=1, output_dir=tmp_path / "local", **common)
    code = eval_main(
        [model, "--tasks", "arithmetic", "--limit", "4", "--max-new-tokens", "48", "--dtype", "float32",
         "--backend", "openai", "--base-url", vllm_server.base_url, "--served-model", vllm_server.model,
         "--output-dir", str(tmp_path / "served"), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    served = json.loads((tmp_path / "served" / "summary.json").read_text())
    assert _texts(tmp_path / "served") == _texts(tmp_path / "local")
    assert served["tasks"] == local.summary["tasks"]
    assert served["backend"] == "openai" and served["backend_settings"]["base_url"] == vllm_server.base_url
    settings = {"base_url": vllm_server.base_url, "served_model": vllm_server.model}
    sampled = run_eval(model, "arithmetic", limit=2, samples=3, max_new_tokens=16, backend="openai",
                       backend_settings=settings, output_dir=tmp_path / "n", progress=False)  # fmt: skip
    assert (
        all(len(t) == 3 for t in _texts(tmp_path / "n"))
        and "pass@3" in sampled.summary["tasks"]["arithmetic"]
    )
    config = MCTSDecodeConfig(max_rollouts=2, max_depth=3, max_node_tokens=16, seed=0)
    tree = run_eval(model, "arithmetic", limit=1, mcts=True, mcts_config=config, backend="openai",
                    backend_settings=settings, output_dir=tmp_path / "mcts", progress=False)  # fmt: skip
    assert tree.summary["mode"] == "mcts" and tree.summary["mcts"]["stats"]["llm_calls"] > 0
