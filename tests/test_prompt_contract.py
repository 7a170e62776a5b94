"""One prompt contract from search to evaluation (`treecot.prompts`): the system prompt the generators see
at search time is the one in every SFT/DPO row, in the dataset's `treecot_prompt.json` and card, in the
trained model's provenance, and the one `treecot eval` renders."""

from __future__ import annotations

import json
import warnings

import pytest

from tests.pipeline.test_generate import fake_generators, recipe_dict
from treecot.prompts import (
    CONTRACT_FILE,
    TAG_GUIDE,
    BudgetWarning,
    PromptContract,
    contract_system_prompt,
    with_system_prompt,
)
from treecot.tasks import get_task


def _system_of(chat_prompt: str) -> str:
    """The system message of a FakeGenerator chat prompt (`<|system|>\\n…\\n<|user|>`)."""
    return chat_prompt.split("<|system|>\n", 1)[1].split("\n<|user|>", 1)[0]


def test_contract_prompt_explains_the_tags_and_keeps_the_answer_format():
    for name in ("gsm8k", "arithmetic", "math500", "blocksworld", "ifeval"):
        task = get_task(name)
        prompt = contract_system_prompt(task)
        assert prompt.startswith(TAG_GUIDE) and prompt.endswith(task.system_prompt)


@pytest.mark.parametrize("name", ["gsm8k", "arithmetic", "math", "math500", "aime24", "blocksworld"])
def test_no_task_prompt_carries_an_example_answer_to_copy(name):
    import re

    prompt = get_task(name).system_prompt
    assert not re.search(r"\\boxed\{\s*-?\d", prompt), prompt  # e.g. the old "e.g. \boxed{1250}"
    # nor a placeholder word: SmolLM2 wrote `\boxed{ANSWER}` in 1,046 of 3,649 wrong answers of 320 trees
    assert not re.search(r"\\boxed\{\s*[A-Za-z]", prompt), prompt
    assert "red block" not in prompt and "blue block" not in prompt, prompt  # no concrete plan either


def test_with_system_prompt_replaces_or_adds_the_system_message():
    msgs = [{"role": "system", "content": "old"}, {"role": "user", "content": "q"}]
    assert with_system_prompt(msgs, "new") == [
        {"role": "system", "content": "new"},
        {"role": "user", "content": "q"},
    ]
    assert with_system_prompt(msgs[1:], "new")[0] == {"role": "system", "content": "new"}
    assert with_system_prompt(msgs, None) == msgs


def _sft(task: str, system: str, n_tokens: int) -> dict:
    return {
        "task": task,
        "n_tokens": n_tokens,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
    }


def test_contract_from_rows_lengths_budget_and_warning():
    sft = [_sft("gsm8k", "S", n) for n in range(10, 110, 10)]  # 10 … 100
    dpo = [{"task": "gsm8k", "prompt": [{"role": "system", "content": "S"}], "chosen_tokens": 120}]
    contract = PromptContract.from_rows(sft, dpo)
    assert contract.system_prompt("gsm8k") == "S" and contract.system_prompt("math") is None
    assert contract.response_tokens["gsm8k"] == {"n": 11, "p50": 60, "p95": 120, "max": 120}
    assert contract.budget() == 160  # 120 × 1.25 = 150, rounded up to a multiple of 16
    assert PromptContract.from_dict(json.loads(contract.to_json())) == contract
    with pytest.warns(BudgetWarning, match=r"max_new_tokens=100 is below .*\(120 tokens\).*'gsm8k'"):
        messages = contract.check_budget(100)
    assert len(messages) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert contract.check_budget(120) == []
    with pytest.raises(ValueError, match="two different system prompts"):
        PromptContract.from_rows([_sft("gsm8k", "S", 1), _sft("gsm8k", "T", 1)])
    with pytest.raises(ValueError, match="system_prompts"):
        PromptContract.from_dict({"nope": 1})


def test_search_rows_provenance_and_evaluation_share_one_prompt(tmp_path):
    from treecot.evaluation.lighteval_tasks import prompt_fn, task_config
    from treecot.evaluation.runner import resolve_prompts
    from treecot.hub import load_versioned
    from treecot.pipeline.build import run_build
    from treecot.pipeline.generate import run_generate
    from treecot.prompts import dataset_contract
    from treecot.recipe import load_recipe

    recipe = recipe_dict(tmp_path / "trees")
    recipe["build"] = {"student": "tiny", "output_dir": str(tmp_path / "dataset")}
    recipe = load_recipe(recipe)
    gens = fake_generators()
    run_generate(recipe, generators=gens, progress=False)
    # 1. search: every request of both roles carries one system prompt, the task's contract prompt
    searched = {_system_of(r.prompt) for r in gens["A"].requests}
    assert searched == {contract_system_prompt(get_task("gsm8k"))}
    (search_prompt,) = searched

    # 2. rows: every SFT and DPO row carries it; the contract file and the card record it
    built = run_build(recipe)
    sft = load_versioned(str(tmp_path / "dataset"), "sft", split="train")
    dpo = load_versioned(str(tmp_path / "dataset"), "dpo", split="train")
    assert len(sft) and len(dpo)
    assert {r["messages"][0]["content"] for r in sft} == {search_prompt}
    assert {r["prompt"][0]["content"] for r in dpo} == {search_prompt}
    on_disk = json.loads((tmp_path / "dataset" / "main" / CONTRACT_FILE).read_text())
    assert on_disk["system_prompts"] == {"gsm8k": search_prompt}
    assert built["card"]["prompt_contract"]["system_prompts"] == {"gsm8k": search_prompt}
    assert search_prompt in (tmp_path / "dataset" / "main" / "README.md").read_text()

    # 3. training: the provenance written next to the model carries the rows' contract
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "treecot_provenance.json").write_text(json.dumps({"prompt_contract": dataset_contract(sft)}))

    # 4. evaluation: by default under the model's training prompt; --prompt-from the dataset gives the same
    choice = resolve_prompts(str(model_dir), ["gsm8k", "math500"])
    assert choice.system_prompts["gsm8k"] == search_prompt and choice.sources["gsm8k"] == "model"
    # a task the data does not cover gets the prompt a dataset of that task would carry
    assert choice.system_prompts["math500"] == contract_system_prompt(get_task("math500"))
    assert choice.sources["math500"] == "contract-default"
    from_data = resolve_prompts("base-model", ["gsm8k"], prompt_from=str(tmp_path / "dataset"))
    assert from_data.system_prompts == {"gsm8k": search_prompt} and from_data.sources["gsm8k"] == "dataset"
    # the lighteval Doc renders exactly that system message
    config = task_config(
        "gsm8k", limit=1, system_prompt=choice.system_prompts["gsm8k"], data_root=tmp_path / "ev"
    )
    line = json.loads((next((tmp_path / "ev").rglob("test.jsonl"))).read_text().splitlines()[0])
    doc = config.prompt_function(line, "treecot_gsm8k|0")
    assert json.loads(doc.specific["messages"])[0] == {"role": "system", "content": search_prompt}
    # without a contract: the task's own prompt (untrained models), or the named alternatives
    plain = json.loads(prompt_fn(line).specific["messages"])
    assert plain[0]["content"] == get_task("gsm8k").system_prompt
    assert resolve_prompts("base-model", ["gsm8k"]).sources == {"gsm8k": "task"}
    assert (
        resolve_prompts("m", ["gsm8k"], system_prompt="task").system_prompts["gsm8k"]
        == get_task("gsm8k").system_prompt
    )
    assert resolve_prompts("m", ["gsm8k"], system_prompt="contract").system_prompts["gsm8k"] == search_prompt
    assert resolve_prompts("m", ["gsm8k"], system_prompt="Be brief.").system_prompts == {"gsm8k": "Be brief."}


def test_build_refuses_a_system_prompt_other_than_the_search_prompt(tmp_path):
    from treecot.pipeline.build import run_build
    from treecot.pipeline.generate import run_generate
    from treecot.recipe import RecipeError, load_recipe

    recipe = recipe_dict(tmp_path / "trees", limit=1)
    recipe["build"] = {"student": "tiny", "output_dir": str(tmp_path / "dataset"), "system_prompt": "Other."}
    recipe = load_recipe(recipe)
    run_generate(recipe, generators=fake_generators(), progress=False)
    with pytest.raises(RecipeError, match="build.system_prompt differs from the prompt"):
        run_build(recipe)


def test_generate_system_prompt_is_seen_by_the_search_and_names_the_run(tmp_path):
    from treecot.pipeline.generate import run_generate
    from treecot.recipe import load_recipe

    hashes = []
    for i, prompt in enumerate((None, "Solve it. Tags: <thinking>, <answer>.")):
        recipe = recipe_dict(tmp_path / f"trees{i}", limit=1)
        recipe["generate"]["system_prompt"] = prompt
        gens = fake_generators()
        summary = run_generate(load_recipe(recipe), generators=gens, progress=False)
        hashes.append(summary["config_hash"])
        if prompt is not None:
            assert {_system_of(r.prompt) for r in gens["A"].requests} == {prompt}
    assert hashes[0] != hashes[1]  # the prompt is part of the run's configuration
