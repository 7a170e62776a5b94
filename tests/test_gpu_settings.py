"""Scale-out settings: vLLM engine settings in recipes (validated, hashed only when set), each launched
rank on its own GPUs, and the `accelerate launch` that would silently start one process refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from treecot.backends.vllm_backend import GPUPlacementError, generator_kwargs, pin_rank_gpus, rank_gpu_ids
from treecot.models import PINNED_GPUS_ENV, rank_gpus
from treecot.pipeline.generate import SINGLE_PROCESS_LAUNCH, LaunchError, Shard, run_generate
from treecot.recipe import ModelSpec, RecipeError, load_recipe

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- hashes of old recipes


def old_recipe(out_dir="outputs/hash-stability/trees") -> dict:
    """A recipe as written before the engine settings existed (vllm, transformers and openai models)."""
    return {
        "name": "hash-stability",
        "seed": 0,
        "problems": {"task": "gsm8k", "split": "test", "limit": 1},
        "generate": {
            "models": {"A": {"model": "tiny"}, "B": {"model": "org/policy", "backend": "vllm", "dtype": "float16"}},
            "search": {"max_rollouts": 2, "max_depth": 3, "max_node_tokens": 8},
            "output_dir": str(out_dir),
        },
        "distill": {
            "teacher": {"model": "org/teacher", "backend": "vllm"},
            "reference": {"model": "r", "backend": "openai", "base_url": "http://127.0.0.1:1/v1"},
        },
    }  # fmt: skip


# Computed with treecot before ModelSpec had engine settings (commit e45c5e6): they name existing runs'
# output files, dataset branches and cached demo stages, so they must never change.
OLD_SECTION_HASHES = {"generate": "e4e10d85b0c0", "distill": "c4911c53ef25", "build": "90c88b02d3f1"}
OLD_RUN_CONFIG_HASH = "f1e6ab17c0ba9d7b"


def test_an_old_recipe_keeps_its_section_hashes_and_run_config_hash(tmp_path):
    from tests.pipeline.test_generate import fake_generators

    recipe = load_recipe(old_recipe())
    assert {name: recipe.section_hash(name) for name in OLD_SECTION_HASHES} == OLD_SECTION_HASHES
    recipe = load_recipe(old_recipe(tmp_path / "trees"))  # the run's hash does not depend on output_dir
    summary = run_generate(recipe, generators=fake_generators(), progress=False)
    assert summary["config_hash"] == OLD_RUN_CONFIG_HASH
    assert [p.name for p in (tmp_path / "trees").glob("trees-*.jsonl")] == [
        f"trees-{OLD_RUN_CONFIG_HASH}-shard-00000-of-00001.jsonl"
    ]
    # Writing the defaults out (null, {}) is the same recipe; setting one is another run.
    spelled = old_recipe()
    spelled["generate"]["models"]["B"].update(tensor_parallel_size=None, quantization=None, engine_kwargs={})
    spelled["distill"]["teacher"]["engine_kwargs"] = None
    assert load_recipe(spelled).section_hash("generate") == OLD_SECTION_HASHES["generate"]
    assert load_recipe(spelled).section_hash("distill") == OLD_SECTION_HASHES["distill"]
    changed = old_recipe()
    changed["generate"]["models"]["B"]["tensor_parallel_size"] = 2
    assert load_recipe(changed).section_hash("generate") != OLD_SECTION_HASHES["generate"]
    changed["distill"]["teacher"]["engine_kwargs"] = {"enforce_eager": True}
    assert load_recipe(changed).section_hash("distill") != OLD_SECTION_HASHES["distill"]
    assert "tensor_parallel_size" not in load_recipe(spelled).to_dict()["generate"]["models"]["A"]


# --------------------------------------------------------------------------- recipe fields


def with_model(**fields) -> dict:
    return {
        "problems": {"task": "gsm8k", "split": "test", "limit": 1},
        "generate": {"models": {"A": {"model": "org/m", "backend": "vllm", **fields}}},
    }


def test_engine_settings_load_for_vllm():
    spec = load_recipe(
        with_model(
            tensor_parallel_size=4,
            gpu_memory_utilization=1,  # an integer share is read as a float
            max_model_len=32768,
            enable_prefix_caching=False,
            quantization="awq",
            engine_kwargs={"enforce_eager": True, "swap_space": 8},
        )
    ).generate.models["A"]
    assert spec.engine_settings() == {
        "tensor_parallel_size": 4,
        "gpu_memory_utilization": 1.0,
        "max_model_len": 32768,
        "enable_prefix_caching": False,
        "quantization": "awq",
        "engine_kwargs": {"enforce_eager": True, "swap_space": 8},
    }
    assert isinstance(spec.gpu_memory_utilization, float)
    assert ModelSpec().engine_settings() == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tensor_parallel_size": 0}, r"generate\.models\.A\.tensor_parallel_size: must be >= 1"),
        ({"tensor_parallel_size": "2"}, r"generate\.models\.A\.tensor_parallel_size: expected int"),
        ({"tensor_parallel_size": 10**6}, r"tensor_parallel_size: .*MAX_TENSOR_PARALLEL_SIZE"),
        ({"gpu_memory_utilization": 1.5}, r"generate\.models\.A\.gpu_memory_utilization: .*0 < x <= 1"),
        ({"gpu_memory_utilization": 0}, r"generate\.models\.A\.gpu_memory_utilization: .*0 < x <= 1"),
        ({"gpu_memory_utilization": True}, r"generate\.models\.A\.gpu_memory_utilization: expected float"),
        ({"max_model_len": 0}, r"generate\.models\.A\.max_model_len: must be >= 1"),
        ({"enable_prefix_caching": "yes"}, r"generate\.models\.A\.enable_prefix_caching: expected bool"),
        ({"quantization": ""}, r"generate\.models\.A\.quantization: expected vLLM's name"),
        ({"engine_kwargs": "eager"}, r"generate\.models\.A\.engine_kwargs: expected a mapping"),
        ({"engine_kwargs": {1: True}}, r"generate\.models\.A\.engine_kwargs\.1: not a vllm\.LLM argument"),
        (
            {"engine_kwargs": {"tensor_parallel_size": 2}},
            r"engine_kwargs\.tensor_parallel_size: set it as generate\.models\.A\.tensor_parallel_size",
        ),
        ({"engine_kwargs": {"seed": 1}}, r"engine_kwargs\.seed: treecot sets .* from the recipe's seed"),
        (
            {"engine_kwargs": {"model": "x"}},
            r"engine_kwargs\.model: treecot sets .* generate\.models\.A\.model",
        ),
        (
            {"backend": "transformers", "tensor_parallel_size": 2},
            r"generate\.models\.A\.tensor_parallel_size: a vLLM engine setting, taken only by backend vllm "
            r"\(this model uses backend 'transformers'\); remove it, or set backend: vllm",
        ),
        (
            {"backend": "openai", "base_url": "http://h/v1", "engine_kwargs": {"enforce_eager": True}},
            r"generate\.models\.A\.engine_kwargs: .*backend 'openai'.*give it to the server",
        ),
    ],
)
def test_bad_engine_settings_are_named(fields, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe(with_model(**fields))


def test_engine_settings_of_a_distill_teacher_are_checked_too():
    recipe = {
        "problems": {"task": "gsm8k", "split": "test", "limit": 1},
        "distill": {"teacher": {"model": "tiny", "max_model_len": 4096}},
    }
    with pytest.raises(RecipeError, match=r"^distill\.teacher\.max_model_len: a vLLM engine setting"):
        load_recipe(recipe)


def test_generator_kwargs_pass_the_set_engine_settings_only():
    spec = ModelSpec(
        model="org/m",
        backend="vllm",
        dtype="float16",
        tokenizer="org/tok",
        tensor_parallel_size=2,
        gpu_memory_utilization=0.5,
        max_model_len=4096,
        enable_prefix_caching=False,
        quantization="fp8",
        engine_kwargs={"enforce_eager": True},
    )
    assert generator_kwargs(spec, seed=7) == {
        "model": "org/m",
        "tokenizer": "org/tok",
        "dtype": "float16",
        "seed": 7,
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.5,
        "max_model_len": 4096,
        "enable_prefix_caching": False,
        "quantization": "fp8",
        "enforce_eager": True,
    }
    # unset settings are not passed: VLLMGenerator's defaults (prefix caching on, 0.9, one GPU) apply
    plain = ModelSpec(model="org/m", backend="vllm")
    assert generator_kwargs(plain) == {"model": "org/m", "tokenizer": None, "dtype": "bfloat16", "seed": 0}
    clashing = ModelSpec(model="org/m", backend="vllm", max_model_len=8, engine_kwargs={"max_model_len": 9})
    with pytest.raises(ValueError, match="max_model_len must be set as their own fields"):
        generator_kwargs(clashing)


# --------------------------------------------------------------------------- GPUs per rank


FOUR = ["0", "1", "2", "3"]


def test_without_a_launcher_nothing_is_pinned():
    env = {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert pin_rank_gpus(2, environ=env) is None and env == {"CUDA_VISIBLE_DEVICES": "0,1"}
    assert rank_gpus(1, gpu_count=4, environ={}) is None


@pytest.mark.parametrize(
    ("local_rank", "tp", "listed", "expected"),
    [
        ("1", 1, None, "1"),  # all GPUs visible: rank r on GPU r
        ("3", 1, None, "3"),
        ("1", 2, None, "2,3"),  # rank r with t GPUs: r*t … r*t+t-1
        ("1", 2, "4,5,6,7", "6,7"),  # within the launcher's CUDA_VISIBLE_DEVICES
        ("0", 1, "GPU-a,GPU-b", "GPU-a"),  # UUIDs are kept
    ],
)
def test_each_rank_pins_its_own_gpu_group(local_rank, tp, listed, expected):
    env = {"LOCAL_RANK": local_rank}
    if listed is not None:
        env["CUDA_VISIBLE_DEVICES"] = listed
    visible = None if listed is not None else FOUR
    assert pin_rank_gpus(tp, environ=env, visible=visible) == expected
    assert env["CUDA_VISIBLE_DEVICES"] == env[PINNED_GPUS_ENV] == expected
    # a second engine of the same process stays on the group (its first GPUs), it does not re-index
    assert pin_rank_gpus(1, environ=env) == expected.split(",")[0]


def test_a_group_that_does_not_fit_is_refused_before_anything_changes():
    env = {"LOCAL_RANK": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    with pytest.raises(
        GPUPlacementError,
        match=r"LOCAL_RANK=2 with 2 GPU\(s\) per engine \(tensor_parallel_size\) needs GPUs 4-5, but this "
        r"machine shows 4 GPU\(s\) \(CUDA_VISIBLE_DEVICES=0,1,2,3\): launch at most 2 processes per machine",
    ):
        pin_rank_gpus(2, environ=env)
    assert env == {"LOCAL_RANK": "2", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    # rank 0 of a launch that cannot fit fails too (not only the ranks past the last GPU)
    env = {"LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "4"}
    with pytest.raises(GPUPlacementError, match=r"4 processes on this machine .* need 8 GPUs.*at most 2"):
        rank_gpu_ids(2, environ=env, visible=FOUR)
    env = {"LOCAL_RANK": "0", PINNED_GPUS_ENV: "5", "CUDA_VISIBLE_DEVICES": "5"}
    with pytest.raises(GPUPlacementError, match="already runs on its own 1 GPU"):
        rank_gpu_ids(2, environ=env)
    with pytest.raises(GPUPlacementError, match="LOCAL_RANK='x' is not a process index"):
        rank_gpu_ids(1, environ={"LOCAL_RANK": "x"}, visible=FOUR)
    # no GPU at all (CPU processes): nothing to pin
    assert rank_gpu_ids(1, environ={"LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": ""}) is None


# --------------------------------------------------------------------------- the silent one-process launch


def test_a_launch_that_started_one_process_of_several_is_refused():
    simple_n2 = {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}
    with pytest.raises(LaunchError) as info:
        Shard.from_environment(simple_n2)
    message = str(info.value)
    assert "\n" not in message and message == SINGLE_PROCESS_LAUNCH
    for advice in ("--multi_gpu --num_processes N", "recipes/accelerate_configs/cpu.yaml", "--shard i/N"):
        assert advice in message
    assert Shard.from_environment({"ACCELERATE_USE_CPU": "False"}) is None, "--num_processes 1 is fine"
    assert Shard.from_environment({"MASTER_ADDR": "10.0.0.1"}) is None, "no accelerate launch: not ours"
    torchrun = {**simple_n2, "WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1"}
    assert Shard.from_environment(torchrun) == Shard(1, 2)
    assert Shard.from_environment({"OMPI_COMM_WORLD_SIZE": "3", "OMPI_COMM_WORLD_RANK": "2"}) == Shard(2, 3)
    assert Shard.from_environment({"PMI_SIZE": "4", "PMI_RANK": "0", **simple_n2}) == Shard(0, 4)
    with pytest.raises(LaunchError, match=r"RANK=2 is not a rank of WORLD_SIZE=2"):
        Shard.from_environment({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(LaunchError, match=r"WORLD_SIZE='two' is not an integer"):
        Shard.from_environment({"WORLD_SIZE": "two"})


def test_run_generate_refuses_the_one_process_launch_before_writing(tmp_path, monkeypatch):
    from tests.pipeline.test_generate import fake_generators, recipe_dict

    for name in (
        "WORLD_SIZE",
        "RANK",
        "LOCAL_RANK",
        "PMI_SIZE",
        "OMPI_COMM_WORLD_SIZE",
        "MV2_COMM_WORLD_SIZE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "False")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    recipe = load_recipe(recipe_dict(tmp_path / "trees"))
    with pytest.raises(LaunchError, match="accelerate launch started a single process"):
        run_generate(recipe, generators=fake_generators(), progress=False)
    assert not (tmp_path / "trees").exists()
    # an explicit shard is the user's choice: it runs
    summary = run_generate(recipe, Shard(0, 1), generators=fake_generators(), progress=False)
    assert summary["new_trees"] == 3


def test_real_accelerate_launch_with_num_processes_on_cpu_fails_with_one_line(tmp_path):
    """`accelerate launch --num_processes 2` on this GPU-less machine starts ONE process (accelerate's
    simple launcher); `treecot generate` under it stops with the advice instead of doing all the work."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "problems": {"task": "gsm8k", "split": "test", "limit": 1},
                "generate": {
                    # were the check gone, this run would be quick (tiny random model) and write a tree
                    "models": {"A": {"model": "tiny", "dtype": "float32"}},
                    "search": {"max_rollouts": 1, "max_depth": 2, "max_node_tokens": 4},
                    "output_dir": str(tmp_path / "trees"),
                },
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["HF_HOME"] = str(tmp_path / "hf")  # no default accelerate config from the user's cache
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [
        str(accelerate),
        "launch",
        "--num_processes",
        "2",
        "-m",
        "treecot.cli",
        "generate",
        str(recipe),
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # accelerate and the process it started
            proc.communicate()
    assert proc.returncode != 0, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.startswith("treecot generate: error:")]
    assert lines == [f"treecot generate: error: {SINGLE_PROCESS_LAUNCH}"], stderr[-3000:]
    assert not (tmp_path / "trees").exists()


def test_the_prepared_gpu_check_uses_options_that_exist():
    """`scripts/gpu_check.sh` runs only on GPU machines: keep its commands in step with the CLI here."""
    import re
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"
    text = script.read_text()
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    from treecot.cli import build_parser

    eval_parser = build_parser()._subparsers._group_actions[0].choices["eval"]
    known = {o for a in eval_parser._actions for o in a.option_strings}
    used = set(re.findall(r"(--[a-z][a-z-]+)", text.split("== 2.")[0].split("COMMON=(")[1]))
    used |= set(re.findall(r"(--[a-z][a-z-]+)", text.split("== 2.")[1].split("PYCODE")[0]))
    assert used and used <= known, sorted(used - known)
    assert (
        "tests/backends/test_backend_vllm.py" in text
        and (script.parent.parent / "tests" / "backends" / "test_backend_vllm.py").is_file()
    )
