"""Model cards: rendering (front matter that parses back, every section, redaction, adapters, licenses,
lineage), the trainers' `create_model_card` override (arguments, state and evaluation metrics), and
`push_to_hub` from the SFT script against the loopback Hub (dataset pushed at a tag, model + card pushed in one
commit, no token)."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from huggingface_hub import ModelCard  # noqa: E402

from tests.fixtures.hubserver import run_client  # noqa: E402
from tests.trainers.test_trainer_cdpo import _row as pref_row  # noqa: E402
from treecot.trainers.cards import (  # noqa: E402
    model_card_info,
    model_card_metadata,
    recipe_from_args,
    render_model_card,
)

ROOT = Path(__file__).resolve().parents[2]


def _info(**overrides) -> dict:
    info = {
        "stage": "cdpo",
        "model_name": "Llama-3.1-8B-Instruct-treecot-cdpo",
        "hub_model_id": "me/Llama-3.1-8B-Instruct-treecot-cdpo",
        "base_model": "meta-llama/Llama-3.1-8B-Instruct",
        "dataset_name": "me/treecot-math",
        "dataset_config": "dpo",
        "dataset_revision": "v1",
        "dataset_rows": 1234,
        "length_ranks": {"shortest": 1234},
        "recipe": {
            "learning_rate": 5e-7,
            "num_train_epochs": 1,
            "beta": 0.1,
            "cdpo_epsilon": 0.1,
            "sft_alpha": 1.0,
            "mask_shared_prefix": True,
            "reference": "the initial policy",
        },
        "recipe_file": "recipes/llama-3.1-8b-instruct/cdpo/config_paper.yaml",
        "train_metrics": {"train_loss": 0.6523, "loss/dpo": 0.61, "loss/sft": 0.043},
        "eval_metrics": {"eval_loss": 0.7, "gsm8k_accuracy": 0.868},
        "treecot_version": "9.9.9",
    }
    info.update(overrides)
    return info


def _table_value(card: str, label: str) -> str:
    """The value cell of the first table row whose first cell is `label`."""
    for line in card.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] == label:
            return cells[1]
    raise AssertionError(f"no table row {label!r} in the card")


# ---------------------------------------------------------------------------------------------- rendering
def test_cdpo_card_front_matter_parses_back_and_body_has_every_section():
    text = render_model_card(_info())
    card = ModelCard(text)
    data = card.data.to_dict()
    assert data["base_model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert data["datasets"] == ["me/treecot-math"]
    assert data["library_name"] == "transformers"
    assert data["tags"][:3] == ["treecot", "trl", "cdpo"]
    assert data["license"] == "llama3.1"  # known base model family
    body = card.text
    for section in (
        "## Base model",
        "## Training data",
        "## Recipe",
        "## Metrics",
        "## How to use",
        "## Citation",
    ):
        assert section in body
    assert _table_value(body, "revision") == "`v1`" and _table_value(body, "config") == "`dpo`"
    assert "[`me/treecot-math`](https://huggingface.co/datasets/me/treecot-math)" in body
    assert _table_value(body, "training rows") == "1,234"
    assert _table_value(body, "length ranks") == "shortest: 1,234"
    assert _table_value(body, "learning rate") == "5e-07"
    assert _table_value(body, "β") == "0.1" and _table_value(body, "ε (cDPO label noise)") == "0.1"
    assert _table_value(body, "α (joint SFT loss weight)") == "1"
    assert _table_value(body, "shared-prefix masking") == "True"
    assert _table_value(body, "train loss (mean over the run)") == "0.6523"
    assert _table_value(body, "final SFT loss") == "0.043"
    assert _table_value(body, "gsm8k_accuracy") == "0.868"
    assert "recipes/llama-3.1-8b-instruct/cdpo/config_paper.yaml" in body
    assert 'AutoModelForCausalLM.from_pretrained("me/Llama-3.1-8B-Instruct-treecot-cdpo")' in body
    assert "treecot 9.9.9" in body and "conservative DPO" in body


def test_sft_card_shows_length_balance_and_no_dpo_rows():
    info = _info(
        stage="sft",
        base_model="Qwen/Qwen2.5-1.5B-Instruct",
        dataset_config="sft",
        recipe={
            "learning_rate": 1e-5,
            "num_train_epochs": 3,
            "length_ranks": ["longest"],
            "length_weights": None,
            "beta": 0.1,
        },
        length_ranks={"longest": 40},
        eval_metrics={},
    )
    text = render_model_card(info)
    data = ModelCard(text).data.to_dict()
    assert data["tags"][:3] == ["treecot", "trl", "sft"] and data["license"] == "apache-2.0"
    assert _table_value(text, "length ranks kept") == "longest"
    assert _table_value(text, "epochs") == "3"
    assert "Thoughts Length Balance" in text
    assert "ε (cDPO label noise)" not in text and "Evaluation:" not in text
    assert "length weights" not in text  # unset options get no row
    # a key outside the stage's known arguments keeps its own name
    assert _table_value(text, "beta") == "0.1"


def test_card_requires_stage_and_model_name_and_honours_a_custom_template(tmp_path):
    with pytest.raises(ValueError, match="stage"):
        render_model_card(_info(stage="dpo"))
    with pytest.raises(ValueError, match="model_name"):
        render_model_card(_info(model_name=""))
    template = tmp_path / "custom.md"
    template.write_text("---\n{{ metadata_yaml }}---\nonly {{ model_name }}\n")
    assert render_model_card(_info(), template=template).endswith("only Llama-3.1-8B-Instruct-treecot-cdpo\n")


def test_secrets_never_reach_the_card(monkeypatch):
    token = "hf_abcdefghijklmnopqrstuvwxyz0123456789"
    monkeypatch.setenv("HF_TOKEN", "plain-secret-value")
    info = _info(
        description="pushed with plain-secret-value",
        recipe={"learning_rate": 1e-5, "hub_token": token, "run_name": f"run-{token}"},
        dataset_revision=token,
    )
    text = render_model_card(info)
    assert token not in text and "plain-secret-value" not in text
    assert "<redacted>" in text


def test_how_to_use_prompts_with_the_training_system_prompt():
    """The usage snippet's messages start with the system prompt the model was trained with."""
    prompt = 'You are a careful solver.\nPut the answer in \\boxed{}; say "done".'
    text = render_model_card(_info(system_prompts={"gsm8k": prompt}))
    snippet = text.split("## How to use")[1].split("```python\n")[1].split("```")[0]
    assert '"role": "system", "content": system_prompts[\'gsm8k\']' in snippet
    namespace: dict = {}
    code = "system_prompts = {" + snippet.split("system_prompts = {", 1)[1].split("inputs =")[0]
    exec(code, namespace)  # noqa: S102  (the snippet's prompt and messages lines, as written)
    assert namespace["messages"][0] == {"role": "system", "content": prompt}
    assert namespace["messages"][1]["role"] == "user"
    # without a recorded prompt the snippet is unchanged
    assert "system_prompts" not in render_model_card(_info())


def test_adapter_card_loads_through_peft():
    text = render_model_card(_info(adapter={"type": "LORA", "r": 16, "lora_alpha": 32}))
    assert ModelCard(text).data.to_dict()["library_name"] == "peft"
    assert "AutoPeftModelForCausalLM.from_pretrained" in text
    assert "LoRA adapter: type = LORA, r = 16, lora_alpha = 32." in text


def test_license_and_front_matter_for_local_and_unknown_models(tmp_path):
    assert model_card_metadata(_info(license="mit"))["license"] == "mit"
    local = tmp_path / "sft-out"
    local.mkdir()
    meta = model_card_metadata(_info(base_model=str(local), dataset_name=str(tmp_path / "dpo.jsonl")))
    assert "base_model" not in meta and "datasets" not in meta and meta["license"] == "other"
    text = render_model_card(_info(base_model=str(local), dataset_name=str(tmp_path / "dpo.jsonl")))
    assert f"`{tmp_path / 'dpo.jsonl'}` (local)" in text
    # lineage: a local SFT model with a treecot card names its own base model
    meta = model_card_metadata(_info(base_model=str(local), base_model_hub_id="Qwen/Qwen2.5-1.5B-Instruct"))
    assert meta["base_model"] == "Qwen/Qwen2.5-1.5B-Instruct" and meta["license"] == "apache-2.0"


# ---------------------------------------------------------------------------------------------- trainers
@pytest.fixture(scope="module")
def cdpo_trainer(tmp_path_factory):
    """A CDPOTrainer on the tiny model after one optimizer step, with an eval split."""
    import datasets

    from treecot.models import load_model
    from treecot.trainers.cdpo import CDPOConfig, CDPOTrainer

    out = tmp_path_factory.mktemp("cdpo-card") / "tiny-cdpo"
    rows = [pref_row(i, 2 + i, 3 + i) for i in range(4)]
    for row in rows:
        row["length_rank"] = "shortest"
    model, tokenizer = load_model("tiny")
    ref_model, _ = load_model("tiny")
    args = CDPOConfig(
        output_dir=str(out),
        max_steps=1,
        per_device_train_batch_size=2,
        per_device_eval_batch_size=2,
        learning_rate=1e-4,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_steps=1,
        disable_tqdm=True,
        activation_checkpointing=False,
        cdpo_epsilon=0.2,
        sft_alpha=0.5,
    )
    trainer = CDPOTrainer(
        model,
        ref_model=ref_model,
        args=args,
        train_dataset=datasets.Dataset.from_list(rows),
        eval_dataset=datasets.Dataset.from_list(rows[:2]),
        processing_class=tokenizer,
    )
    trainer.train()
    trainer.evaluate()
    return trainer


def test_cdpo_trainer_card_reads_args_state_and_eval(cdpo_trainer):
    info = model_card_info(cdpo_trainer, "cdpo")
    assert info["recipe"]["cdpo_epsilon"] == 0.2 and info["recipe"]["sft_alpha"] == 0.5
    assert info["recipe"]["effective_batch_size"] == 2
    assert info["recipe"]["reference"].startswith("a separate reference model")
    assert info["length_ranks"] == {"shortest": 4} and info["dataset_rows"] == 4
    history = cdpo_trainer.state.log_history
    assert info["train_metrics"]["train_loss"] == next(h["train_loss"] for h in history if "train_loss" in h)
    assert info["train_metrics"]["loss/dpo"] == next(h["loss/dpo"] for h in history if "loss/dpo" in h)
    assert info["train_metrics"]["global_step"] == 1
    eval_entry = next(h for h in history if "eval_loss" in h)
    assert info["eval_metrics"]["eval_loss"] == eval_entry["eval_loss"]
    assert "eval_runtime" not in info["eval_metrics"]


def test_trainer_card_prompts_with_the_system_prompt_of_its_rows(cdpo_trainer, tmp_path):
    import datasets

    from tests.trainers.test_trainer_cdpo import SYSTEM

    train, output_dir = cdpo_trainer.train_dataset, cdpo_trainer.args.output_dir
    try:
        # the training rows carry the system prompt
        info = model_card_info(cdpo_trainer, "cdpo")
        assert info["system_prompts"] == {"gsm8k": SYSTEM}
        assert f"'gsm8k': {SYSTEM!r}," in render_model_card(info)
        # no rows to read: the provenance file the scripts write next to the model
        cdpo_trainer.train_dataset = None
        assert "system_prompts" not in model_card_info(cdpo_trainer, "cdpo")
        (tmp_path / "treecot_provenance.json").write_text(
            json.dumps({"prompt_contract": {"system_prompts": {"blocksworld": "Plan it."}}})
        )
        cdpo_trainer.args.output_dir = str(tmp_path)
        info = model_card_info(cdpo_trainer, "cdpo")
        assert info["system_prompts"] == {"blocksworld": "Plan it."}
        assert "'blocksworld': 'Plan it.'," in render_model_card(info)
        # rows that carry their prompts win over the file
        cdpo_trainer.train_dataset = datasets.Dataset.from_list([pref_row(i, 2 + i, 3 + i) for i in range(2)])
        assert model_card_info(cdpo_trainer, "cdpo")["system_prompts"] == {"gsm8k": SYSTEM}
        # what the scripts record in `model_card_info` reaches the written card
        cdpo_trainer.model_card_info["system_prompts"] = {"gsm8k": "From the script."}
        cdpo_trainer.create_model_card()
        assert "'gsm8k': 'From the script.'," in (tmp_path / "README.md").read_text()
    finally:
        cdpo_trainer.train_dataset, cdpo_trainer.args.output_dir = train, output_dir
        cdpo_trainer.model_card_info.pop("system_prompts", None)


def test_create_model_card_override_writes_readme_with_precedence(cdpo_trainer):
    cdpo_trainer.model_card_info.update(
        dataset_name="me/from-info", dataset_revision="v2", base_model="me/base"
    )
    try:
        cdpo_trainer.create_model_card(dataset_name="me/explicit", eval_metrics={"math500_accuracy": 0.25})
    finally:
        cdpo_trainer.model_card_info.clear()
    text = (Path(cdpo_trainer.args.output_dir) / "README.md").read_text()
    data = ModelCard(text).data.to_dict()
    assert data["datasets"] == ["me/explicit"]  # the argument wins over model_card_info
    assert data["base_model"] == "me/base" and data["tags"][:3] == ["treecot", "trl", "cdpo"]
    assert _table_value(text, "revision") == "`v2`"
    assert _table_value(text, "ε (cDPO label noise)") == "0.2"
    assert _table_value(text, "math500_accuracy") == "0.25" and "eval_loss" in text


def test_recipe_from_args_rejects_unknown_stage(cdpo_trainer):
    with pytest.raises(ValueError, match="stage"):
        recipe_from_args(cdpo_trainer.args, "grpo")


def test_embedded_model_directory_maps_to_its_hub_id(cdpo_trainer, tmp_path):
    from treecot.models import EMBEDDED

    spec = EMBEDDED["smollm2-135m-instruct"]
    cached = tmp_path / "models" / "x"
    cached.mkdir(parents=True)
    (cached / "treecot_complete.json").write_text(json.dumps({"key": f"{spec.name}-{spec.sha256[:12]}-tf5"}))
    info = model_card_info(cdpo_trainer, "cdpo", base_model=str(cached))
    assert info["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    # a local model folder with a treecot card: its base model becomes the front matter's
    sft_out = tmp_path / "sft-out"
    sft_out.mkdir()
    (sft_out / "README.md").write_text("---\nbase_model: Qwen/Qwen2.5-1.5B-Instruct\n---\n# x\n")
    info = model_card_info(cdpo_trainer, "cdpo", base_model=str(sft_out))
    assert info["base_model"] == str(sft_out) and info["base_model_hub_id"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert f"`{sft_out}`, itself fine-tuned from" in render_model_card(info)


# ---------------------------------------------------------------------------------------------- push
PUSH_CLIENT = textwrap.dedent(
    """
    import json, os
    import datasets
    from huggingface_hub import HfApi
    from treecot.hub import push_dataset
    from tests.trainers.test_trainer_sft import _rows
    from treecot.scripts import sft

    api = HfApi()
    data_repo, model_repo = "treecot-tester/treecot-data", "treecot-tester/tiny-treecot-sft"
    rows = datasets.Dataset.from_list(_rows())
    push_dataset(data_repo, {"sft": rows}, card={}, config_hash="ab" * 10, tag="v1")
    trainer = sft.main(["--config", RECIPE])
    readme = open(api.hf_hub_download(model_repo, "README.md")).read()
    config = json.load(open(api.hf_hub_download(model_repo, "config.json")))
    print("RESULT " + json.dumps({
        "readme": readme,
        "local_readme": open(os.path.join(trainer.args.output_dir, "README.md")).read(),
        "config": config,
        "files": api.list_repo_files(model_repo),
        "commits": [c.title for c in api.list_repo_commits(model_repo)],
        "history": trainer.state.log_history,
    }))
    """
)


def test_sft_script_pushes_model_and_card_to_the_hub(hub_server, tmp_path):
    env = hub_server.client_env(tmp_path / "hf_home")
    env.update(TREECOT_CACHE=os.environ.get("TREECOT_CACHE", ""), OMP_NUM_THREADS="1")
    recipe = tmp_path / "push.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "model_name_or_path": "tiny",
                "use_cpu": True,
                "dataset_name": "treecot-tester/treecot-data",
                "dataset_revision": "v1",
                "length_ranks": ["longest"],
                "max_steps": 2,
                "per_device_train_batch_size": 1,
                "activation_checkpointing": False,
                "save_strategy": "no",
                "report_to": "none",
                "logging_steps": 1,
                "disable_tqdm": True,
                "output_dir": str(tmp_path / "out"),
                "push_to_hub": True,
                "hub_model_id": "treecot-tester/tiny-treecot-sft",
            }
        )
    )
    proc = run_client(f"RECIPE = {str(recipe)!r}\n" + PUSH_CLIENT, env, cwd=ROOT)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert {"README.md", "config.json", "model.safetensors", "tokenizer.json"} <= set(out["files"])
    assert out["commits"].count("End of training") == 1  # one upload, not one per save
    assert out["config"]["model_type"] == "llama"
    card = ModelCard(out["readme"])
    assert out["readme"] == out["local_readme"]
    data = card.data.to_dict()
    assert data["datasets"] == ["treecot-tester/treecot-data"] and data["tags"][:3] == [
        "treecot",
        "trl",
        "sft",
    ]
    assert _table_value(card.text, "revision") == "`v1`" and _table_value(card.text, "config") == "`sft`"
    assert _table_value(card.text, "length ranks") == "longest: 2"  # 2 longest rows of 6 selected
    assert _table_value(card.text, "length ranks kept") == "longest"
    train_loss = next(h["train_loss"] for h in out["history"] if "train_loss" in h)
    assert _table_value(card.text, "train loss (mean over the run)") == f"{train_loss:.4g}"
    assert f"Recipe file: `{recipe}`" in card.text
    assert 'from_pretrained("treecot-tester/tiny-treecot-sft")' in card.text
    token = env["HF_TOKEN"]
    assert token not in out["readme"] and token not in json.dumps(out["config"])
