"""Training entry points: recipe parsing (YAML + CLI overrides, unknown keys named), in-process runs of both
scripts on the tiny model, and a 2-process CPU `accelerate launch` (gloo) end to end for SFT and cDPO."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("trl")

from tests.trainers.test_trainer_cdpo import _row as pref_row  # noqa: E402
from tests.trainers.test_trainer_sft import _rows as sft_rows  # noqa: E402
from treecot.scripts import dpo as dpo_script  # noqa: E402
from treecot.scripts import sft as sft_script  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "recipes"


@pytest.fixture
def data_files(tmp_path) -> dict[str, Path]:
    sft, dpo = tmp_path / "sft.jsonl", tmp_path / "dpo.jsonl"
    sft.write_text("".join(json.dumps(r) + "\n" for r in sft_rows()))
    dpo.write_text("".join(json.dumps(pref_row(i, 2 + i, 3 + i)) + "\n" for i in range(4)))
    return {"sft": sft, "dpo": dpo}


def _recipe(tmp_path: Path, name: str, **overrides) -> Path:
    base = {
        "model_name_or_path": "tiny",
        "use_cpu": True,
        "bf16": True,
        "max_steps": 2,
        "per_device_train_batch_size": 1,
        "activation_checkpointing": False,
        "ddp_find_unused_parameters": False,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 1,
        "disable_tqdm": True,
        "output_dir": str(tmp_path / f"out-{name}"),
    }
    base.update(overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


# ---------------------------------------------------------------------------------------------- recipes
@pytest.mark.parametrize(
    "script, recipe",
    [
        (sft_script, "smollm2-135m-instruct/sft/config_demo.yaml"),
        (sft_script, "smollm2-135m-instruct/sft/config_demo_lora.yaml"),
        (dpo_script, "smollm2-135m-instruct/cdpo/config_demo.yaml"),
        (dpo_script, "smollm2-135m-instruct/cdpo/config_demo_lora.yaml"),
    ],
)
def test_shipped_recipes_parse(script, recipe):
    script_args, training_args, model_args = script.make_parser().parse_args_and_config(
        ["--config", str(RECIPES / recipe)]
    )
    assert training_args.use_cpu and training_args.bf16  # fp32 master weights + bf16 autocast on CPU
    assert model_args.dtype == "float32"
    assert model_args.use_peft == recipe.endswith("_lora.yaml")
    if script is dpo_script:
        assert (training_args.beta, training_args.cdpo_epsilon, training_args.sft_alpha) == (0.1, 0.1, 1.0)
        assert training_args.mask_shared_prefix and script_args.dataset_config == "dpo"
    else:
        assert training_args.length_ranks == ["longest"] and script_args.dataset_config == "sft"
        assert training_args.completion_only_loss is True


ALL_RECIPES = sorted(
    str(p.relative_to(RECIPES)) for stage in ("sft", "cdpo") for p in RECIPES.glob(f"*/{stage}/*.yaml")
)
#: METHOD §3: our defaults for the GPU recipes mirroring the paper.
PAPER_DEFAULTS = {
    "sft": {"learning_rate": 1e-5, "num_train_epochs": 3, "warmup_steps": 0.03, "length_ranks": ["longest"]},
    "cdpo": {
        "learning_rate": 5e-7,
        "num_train_epochs": 1,
        "warmup_steps": 0.03,
        "beta": 0.1,
        "cdpo_epsilon": 0.1,
        "sft_alpha": 1.0,
        "mask_shared_prefix": True,
    },
}


@pytest.fixture
def gpu_bf16(monkeypatch):
    """Parse GPU recipes (`bf16: true`, no `use_cpu`) on this CPU box as a bf16-capable GPU machine would."""
    import transformers.training_args

    monkeypatch.setattr(transformers.training_args, "is_torch_bf16_gpu_available", lambda *a, **k: True)


def test_every_recipe_is_found():
    assert len(ALL_RECIPES) >= 8
    for model in ("smollm2-135m-instruct", "llama-3.1-8b-instruct", "qwen2.5-1.5b-instruct"):
        assert f"{model}/sft/config_" in " ".join(ALL_RECIPES) and f"{model}/cdpo/config_" in " ".join(
            ALL_RECIPES
        )


@pytest.mark.parametrize("recipe", ALL_RECIPES)
def test_every_recipe_parses_with_its_script(recipe, gpu_bf16, tmp_path):
    stage = recipe.split("/")[1]
    script = sft_script if stage == "sft" else dpo_script
    path = RECIPES / recipe
    script_args, training_args, model_args = script.make_parser().parse_args_and_config(
        ["--config", str(path)]
    )
    assert script_args.dataset_config == ("sft" if stage == "sft" else "dpo")
    assert training_args.bf16 and training_args.lr_scheduler_type == "cosine"
    if recipe.endswith("config_paper.yaml"):
        for key, value in PAPER_DEFAULTS[stage].items():
            assert getattr(training_args, key) == value, key
        assert training_args.activation_checkpointing and not training_args.use_cpu
        assert model_args.dtype == "bfloat16"
        if stage == "sft":  # real Hub ids of the paper's models
            assert model_args.model_name_or_path in (
                "meta-llama/Llama-3.1-8B-Instruct",
                "Qwen/Qwen2.5-1.5B-Instruct",
            )
        else:  # the policy and the reference are the SFT model: the SFT recipe's output
            sft_recipe = yaml.safe_load((path.parents[1] / "sft" / "config_paper.yaml").read_text())
            assert model_args.model_name_or_path == sft_recipe["output_dir"]
        # "our default" comments on every hyperparameter the paper does not publish
        lines = {line.split(":")[0]: line for line in path.read_text().splitlines() if ":" in line}
        for key in ("learning_rate", "num_train_epochs", "lr_scheduler_type", "warmup_steps"):
            assert "our default (paper does not publish it)" in lines[key], key
        # the placeholders stop a run before anything is loaded
        with pytest.raises(ValueError, match="dataset_name=.*placeholder"):
            script.train(script_args, training_args, model_args)
    # a misspelt key in the same recipe is named
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text() + "\nlearning_rat: 1.0e-5\n")
    with pytest.raises(ValueError, match="learning_rat"):
        script.make_parser().parse_args_and_config(["--config", str(bad)])


def test_placeholders_are_named_for_every_field():
    from types import SimpleNamespace

    from treecot.scripts.utils import check_placeholders, recipe_file_from_argv

    check_placeholders(SimpleNamespace(dataset_name="me/data", hub_model_id=None))
    for field in ("dataset_name", "model_name_or_path", "ref_model_name_or_path", "hub_model_id"):
        with pytest.raises(ValueError, match=f"{field}='<you>/x' is a recipe placeholder"):
            check_placeholders(SimpleNamespace(), SimpleNamespace(**{field: "<you>/x"}))
    assert recipe_file_from_argv(["--config", "a.yaml", "--x", "1"]) == "a.yaml"
    assert recipe_file_from_argv(["--x", "1", "--config=b.yaml"]) == "b.yaml"
    assert recipe_file_from_argv(["--x", "1"]) is None


@pytest.mark.parametrize("name", ["cpu", "ddp", "zero3", "fsdp"])
def test_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(RECIPES / "accelerate_configs" / f"{name}.yaml"))
    assert config.num_machines == 1
    assert config.use_cpu == (name == "cpu")


def test_cli_overrides_yaml_and_unknown_keys_are_named(tmp_path):
    recipe = _recipe(tmp_path, "dpo", cdpo_epsilon=0.2, dataset_name="x.jsonl")
    parser = dpo_script.make_parser()
    _, training_args, _ = parser.parse_args_and_config(["--config", str(recipe), "--cdpo_epsilon", "0.05"])
    assert training_args.cdpo_epsilon == 0.05
    bad = _recipe(tmp_path, "bad", cdpo_epsilson=0.2)
    with pytest.raises(ValueError, match="cdpo_epsilson"):
        dpo_script.make_parser().parse_args_and_config(["--config", str(bad)])
    with pytest.raises(ValueError, match="--sft_alpah"):
        dpo_script.make_parser().parse_args_and_config(["--config", str(recipe), "--sft_alpah", "2"])
    # SFT-only knobs are unknown to the DPO script and vice versa
    with pytest.raises(ValueError, match="length_ranks"):
        dpo_script.make_parser().parse_args_and_config(
            ["--config", str(_recipe(tmp_path, "x", length_ranks=["all"]))]
        )
    with pytest.raises(ValueError, match="cdpo_epsilon"):
        sft_script.make_parser().parse_args_and_config(["--config", str(recipe)])


def test_missing_dataset_file_is_reported(tmp_path):
    recipe = _recipe(tmp_path, "sft", dataset_name=str(tmp_path / "nope.jsonl"), length_ranks=["all"])
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        sft_script.main(["--config", str(recipe)])


@pytest.mark.parametrize("script", [dpo_script, sft_script])
def test_missing_config_exits_with_one_line(tmp_path, script, data_files, monkeypatch):
    """A build with no preference pairs (or no SFT rows) writes no `dpo` (`sft`) config: the script names the
    configs the dataset has, why the one asked for is absent and what to change, in one line, before loading."""
    import datasets

    from treecot.hub import push_dataset
    from treecot.scripts.utils import dataset_configs

    kept = "sft" if script is dpo_script else "dpo"
    rows = [json.loads(line) for line in data_files[kept].read_text().splitlines()]
    trees = datasets.Dataset.from_list([{"problem_id": "p0", "tree": "{}"}])
    folder = tmp_path / "my-arith"
    push_dataset(
        "local/my-arith",
        {"trees": trees, kept: datasets.Dataset.from_list(rows)},
        card={"description": "x"},
        config_hash="0123456789abcdef0123",
        local_dir=folder,
    )
    assert sorted(dataset_configs(str(folder))) == sorted(["trees", kept])
    missing = "dpo" if script is dpo_script else "sft"
    extra = {"length_ranks": ["all"]} if script is sft_script else {}
    recipe = _recipe(tmp_path, missing, dataset_name=str(folder), **extra)

    def no_model(*args, **kwargs):
        raise AssertionError("the model loaded before the dataset was checked")

    monkeypatch.setattr(script, "load_policy", no_model)
    with pytest.raises(SystemExit) as exc:
        script.main(["--config", str(recipe)])
    message = str(exc.value.code)
    assert "\n" not in message and f"has no config {missing!r}" in message
    assert "trees" in message and kept in message
    if missing == "dpo":
        assert "no preference pairs" in message and "both a correct and a wrong path" in message
    else:
        assert "no SFT rows" in message
    assert "more problems" in message and "more rollouts" in message and "easier slice" in message


def test_dataset_configs_of_a_hub_id_without_a_token_read_its_local_layout(tmp_path, monkeypatch):
    """With no Hub token or endpoint, `load_versioned` reads a Hub id from its local layout; so does the
    config check (no network call, no retries)."""
    import datasets

    import treecot.hub.targets as hub
    from treecot.hub import push_dataset
    from treecot.scripts.utils import dataset_configs

    monkeypatch.setattr(hub, "online_configured", lambda token, endpoint: False)
    monkeypatch.setattr(hub, "default_local_dir", lambda repo_id: tmp_path / "cache" / repo_id)

    def no_network(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(datasets, "get_dataset_config_names", no_network)
    trees = datasets.Dataset.from_list([{"problem_id": "p0", "tree": "{}"}])
    push_dataset(
        "me/arith",
        {"trees": trees},
        card={},
        config_hash="0123456789abcdef0123",
        local_dir=tmp_path / "cache" / "me/arith",
    )
    assert dataset_configs("me/arith") == ["trees"]
    assert dataset_configs("me/none") is None  # nothing there: loading it reports that


# ---------------------------------------------------------------------------------------------- runs
def test_script_arguments_extend_trls_and_refuse_streaming(tmp_path, data_files):
    from trl import ScriptArguments

    from treecot.scripts.utils import TrainScriptArguments

    assert issubclass(sft_script.SFTScriptArguments, TrainScriptArguments)
    assert issubclass(TrainScriptArguments, ScriptArguments), "a TRL user's dataset keys work unchanged"
    recipe = _recipe(tmp_path, "sft", dataset_name=str(data_files["sft"]), dataset_streaming=True)
    with pytest.raises(ValueError, match="dataset_streaming is not supported"):
        sft_script.main(["--config", str(recipe)])


def test_sft_script_runs_in_process(tmp_path, data_files):
    recipe = _recipe(
        tmp_path,
        "sft",
        dataset_name=str(data_files["sft"]),
        length_ranks=["all"],
        max_steps=1,
        ignore_bias_buffers=True,
    )
    import torch

    trainer = sft_script.main(["--config", str(recipe)])
    assert trainer.state.global_step == 1
    bool_buffers = [n for n, b in trainer.model.named_buffers() if b.dtype == torch.bool]
    assert trainer.model._ddp_params_and_buffers_to_ignore == bool_buffers, (
        "TRL's ignore_bias_buffers is honoured"
    )
    assert (tmp_path / "out-sft" / "model.safetensors").is_file()
    config = json.loads((tmp_path / "out-sft" / "config.json").read_text())
    assert config["use_cache"] is True, (
        "saved as it will be used: KV cache on (Trainer turned it off to train)"
    )
    # the card is written next to the model, with the run's data and recipe
    card = (tmp_path / "out-sft" / "README.md").read_text()
    assert card.startswith("---\n") and "- sft\n" in card
    assert f"`{data_files['sft']}` (local)" in card and f"Recipe file: `{recipe}`" in card
    assert "| length ranks | shortest: 2, medium: 2, longest: 2 |" in card
    system = sft_rows()[0]["messages"][0]["content"]
    assert f"{'gsm8k'!r}: {system!r}," in card and '"role": "system", "content": system_prompts' in card
    # recorded for the card before training, so a checkpoint's card (before the provenance file) has it too
    assert trainer.model_card_info["system_prompts"] == {"gsm8k": system}
    # provenance for `treecot eval` / the leaderboard: the data and the recipe the model was trained on
    prov = json.loads((tmp_path / "out-sft" / "treecot_provenance.json").read_text())
    assert prov["dataset_repo"] == str(data_files["sft"]) and prov["recipe_file"] == str(recipe)
    assert prov["recipe_hash"] == hashlib.sha256(recipe.read_bytes()).hexdigest()[:12]
    # ... and the prompt contract of its rows: `treecot eval` evaluates under the prompt it was trained with
    rows = sft_rows()
    assert prov["prompt_contract"]["system_prompts"] == {"gsm8k": rows[0]["messages"][0]["content"]}
    lengths = sorted(r["n_tokens"] for r in rows)
    assert prov["prompt_contract"]["response_tokens"]["gsm8k"] == {
        "n": 6,
        "p50": lengths[2],
        "p95": lengths[-1],
        "max": lengths[-1],
    }


def test_hub_token_never_reaches_a_saved_file(tmp_path, data_files, monkeypatch):
    """transformers pickles the training arguments (`training_args.bin`, in the output directory and in each
    checkpoint): a `--hub_token` must not be among them, nor in any other file the script writes."""
    import torch

    secret = "hf_treecotSecretToken0123456789"
    monkeypatch.delenv("HF_TOKEN", raising=False)
    recipe = _recipe(
        tmp_path,
        "sft",
        dataset_name=str(data_files["sft"]),
        length_ranks=["all"],
        max_steps=1,
        save_strategy="steps",
        save_steps=1,
    )
    trainer = sft_script.main(["--config", str(recipe), "--hub_token", secret])
    out = tmp_path / "out-sft"
    saved = sorted(out.rglob("training_args.bin"))
    assert [p.relative_to(out).as_posix() for p in saved] == [
        "checkpoint-1/training_args.bin",
        "training_args.bin",
    ]
    for path in saved:
        assert torch.load(path, weights_only=False).hub_token is None
    leaks = [p for p in out.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == []
    assert trainer.args.hub_token is None and "HF_TOKEN" not in os.environ  # the process is as it was


def test_hub_token_serves_the_run_from_the_environment(monkeypatch):
    from types import SimpleNamespace

    from huggingface_hub import get_token

    from treecot.scripts.utils import hub_token_outside_args

    monkeypatch.setenv("HF_TOKEN", "hf_before")
    args = SimpleNamespace(hub_token="hf_for_this_run")
    with hub_token_outside_args(args):
        assert args.hub_token is None and get_token() == "hf_for_this_run"  # what the trainer's Hub calls use
    assert args.hub_token is None and os.environ["HF_TOKEN"] == "hf_before"
    monkeypatch.delenv("HF_TOKEN")
    args = SimpleNamespace(hub_token="hf_for_this_run")
    with pytest.raises(RuntimeError, match="failed run"), hub_token_outside_args(args):
        raise RuntimeError("failed run")
    assert "HF_TOKEN" not in os.environ
    untouched = SimpleNamespace(hub_token=None)
    with hub_token_outside_args(untouched):
        assert "HF_TOKEN" not in os.environ


def test_dpo_script_runs_in_process_with_lora(tmp_path, data_files):
    recipe = _recipe(
        tmp_path,
        "dpo",
        dataset_name=str(data_files["dpo"]),
        use_peft=True,
        lora_r=4,
        lora_alpha=8,
        lora_target_modules=["q_proj", "v_proj"],
        max_steps=1,
    )
    trainer = dpo_script.main(["--config", str(recipe)])
    assert trainer.ref_model is None  # the reference is the policy with its adapter disabled
    logs = [h for h in trainer.state.log_history if "mask/shared_tokens" in h]
    assert logs and logs[0]["rewards/margins"] == 0.0 and logs[0]["mask/shared_tokens"] > 0
    assert (tmp_path / "out-dpo" / "adapter_model.safetensors").is_file()
    assert trainer.model.get_base_model().config.use_cache is True
    card = (tmp_path / "out-dpo" / "README.md").read_text()
    assert "library_name: peft" in card and "- cdpo\n" in card
    assert "| reference model | the initial policy (the adapter disabled) |" in card
    assert "LoRA adapter: type = LORA, r = 4, lora_alpha = 8" in card


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sft", "dpo"])
def test_two_process_cpu_launch(tmp_path, data_files, kind):
    extra = {"length_ranks": ["all"]} if kind == "sft" else {"precompute_ref_log_probs": True}
    recipe = _recipe(tmp_path, kind, dataset_name=str(data_files[kind]), **extra)
    env = {
        **os.environ,
        "HF_DATASETS_CACHE": str(tmp_path / "datasets-cache"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(RECIPES / "accelerate_configs" / "cpu.yaml"),
        "--num_processes",
        "2",
        "--main_process_port",
        str(_free_port()),
        "-m",
        f"treecot.scripts.{kind}",
        "--config",
        str(recipe),
    ]
    # Own session: on a hang the launcher AND its ranks are killed (killing only the launcher orphans them).
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=300)  # hang guard only
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(
            f"2-process {kind} run hung; stdout tail:\n{stdout[-2000:]}\nstderr tail:\n{stderr[-3000:]}"
        )
    assert proc.returncode == 0, stderr[-3000:]
    assert "trained on 2 process(es)" in stdout
    assert (tmp_path / f"out-{kind}" / "model.safetensors").is_file()
    if kind == "dpo":
        assert "'mask/shared_tokens'" in stdout  # logged by the main process


@pytest.mark.parametrize("script", ["sft", "dpo"])
def test_help_lists_config_and_parsing_stays_three_way(script, tmp_path):
    import importlib

    module = importlib.import_module(f"treecot.scripts.{script}")
    parser = module.make_parser()
    assert "--config YAML" in parser.format_help()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nlearning_rate: 3.0e-5\n")
    for argv in ([], ["--config", str(recipe)]):
        parsed = module.make_parser().parse_args_and_config(
            argv + ["--output_dir", str(tmp_path / "o"), "--use_cpu", "True"]
        )
        assert len(parsed) == 3  # no extra namespace for --config
    assert parsed[1].learning_rate == 3.0e-5
