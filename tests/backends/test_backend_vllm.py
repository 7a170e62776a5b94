"""The vLLM offline-engine backend.

vLLM's wheels are CUDA-only, so the real-engine test runs on GPU machines only. Without a GPU, the
wrapper's mapping (SamplingParams, prompts, outputs, logprobs, cache accounting) is checked against a
stand-in ``vllm`` module that mimics vLLM 0.32's API and its greedy-sampling rule, and the missing-vllm
error is checked by hiding the module.
"""

from __future__ import annotations

import builtins
import os
import sys
import types
from dataclasses import dataclass, field

import pytest

from treecot.backends.base import GenerationRequest, Generator
from treecot.backends.vllm_backend import INSTALL_HINT, VLLMGenerator, import_vllm


@dataclass
class FakeLogprob:  # vllm.logprobs.Logprob
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class FakeCompletionOutput:  # vllm.outputs.CompletionOutput
    index: int
    text: str
    token_ids: list[int]
    cumulative_logprob: float | None
    logprobs: list[dict[int, FakeLogprob]] | None
    finish_reason: str | None = None


@dataclass
class FakeRequestOutput:  # vllm.outputs.RequestOutput
    request_id: str
    prompt_token_ids: list[int]
    outputs: list[FakeCompletionOutput]
    num_cached_tokens: int | None = None


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: list[str] | None = None
    max_tokens: int | None = 16
    logprobs: int | None = None

    def __post_init__(self):  # vLLM's own check
        if self.temperature == 0 and self.n > 1:
            raise ValueError(f"n must be 1 when using greedy sampling, got {self.n}.")


class FakeTokenizer:
    """Token ids are word lengths (deterministic and easy to assert on)."""

    def encode(self, text, add_special_tokens=True):
        assert add_special_tokens is False, "the chat template holds BOS; no special tokens may be added"
        return [len(w) for w in text.split()]

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        return " ".join(m["content"] for m in messages) + (" ASSISTANT" if add_generation_prompt else "")


@dataclass
class FakeLLM:
    init_kwargs: dict
    calls: list = field(default_factory=list)
    cached: int = 0

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert use_tqdm is False
        self.calls.append((prompts, sampling_params))
        outs = []
        for i, (prompt, sp) in enumerate(zip(prompts, sampling_params)):
            samples = []
            for j in range(sp.n):
                ids = [100 + j, 200, 2]  # the last one is EOS: generated, not in the text
                lps = None
                if sp.logprobs is not None:
                    # the sampled token (rank 3) plus the top-k alternatives, as vLLM returns them
                    lps = [{tid: FakeLogprob(-2.0, 3), 7: FakeLogprob(-0.5, 1), 8: FakeLogprob(-1.0, 2)}
                           for tid in ids]  # fmt: skip
                finish = "length" if sp.max_tokens == 3 else "stop"
                samples.append(
                    FakeCompletionOutput(j, f"s{j}</x>tail" if sp.stop else f"s{j}", ids, None, lps, finish)
                )
            outs.append(FakeRequestOutput(f"req-{i}", prompt["prompt_token_ids"], samples[::-1], self.cached))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")

    def LLM(**kwargs):
        module.last = FakeLLM(kwargs)
        return module.last

    module.LLM = LLM
    module.SamplingParams = FakeSamplingParams
    monkeypatch.setitem(sys.modules, "vllm", module)
    return module


def test_engine_arguments_prefix_caching_on_and_embedded_names_resolved(fake_vllm, monkeypatch):
    import treecot.models

    monkeypatch.setattr(treecot.models, "resolve_model_path", lambda name: f"/cache/{name}")
    gen = VLLMGenerator("smollm2-135m-instruct", dtype="bfloat16", max_model_len=2048, enforce_eager=True)
    assert isinstance(gen, Generator) and gen.model_id == "smollm2-135m-instruct"
    kw = fake_vllm.last.init_kwargs
    assert kw["model"] == "/cache/smollm2-135m-instruct" and kw["tokenizer"] is None
    assert kw["enable_prefix_caching"] is True
    assert (kw["dtype"], kw["max_model_len"], kw["enforce_eager"], kw["seed"]) == ("bfloat16", 2048, True, 0)
    assert gen.apply_chat_template([{"role": "user", "content": "hi"}]) == "hi ASSISTANT"


def test_requests_map_to_sampling_params_and_outputs(fake_vllm):
    gen = VLLMGenerator("some/model")
    fake_vllm.last.cached = 2
    reqs = [
        GenerationRequest(
            "ab cde f", n=2, max_tokens=50, stop=["</x>"], temperature=0.7, top_p=0.9, seed=3, logprobs=2
        ),  # fmt: skip
        GenerationRequest([5, 6, 7, 8], n=1, max_tokens=3, temperature=1.0),
    ]
    first, second = gen.generate(reqs)
    prompts, params = fake_vllm.last.calls[0]
    assert len(fake_vllm.last.calls) == 1, "one engine call for the whole batch"
    assert prompts == [{"prompt_token_ids": [2, 3, 1]}, {"prompt_token_ids": [5, 6, 7, 8]}]
    assert params[0] == FakeSamplingParams(n=2, temperature=0.7, top_p=0.9, seed=3, stop=["</x>"], max_tokens=50,
                                           logprobs=2)  # fmt: skip
    assert params[1].stop is None and params[1].logprobs is None
    # outputs come back in sample order, stop strings cut, EOS counted as a generated token
    assert [c.text for c in first.completions] == ["s0", "s1"]
    c = first.completions[0]
    assert c.n_tokens == 3 and c.finish_reason == "stop"
    assert c.token_logprobs == [-2.0, -2.0, -2.0]
    assert c.top_logprobs == [[-0.5, -1.0]] * 3, "top-k sorted, the sampled rank-3 token left out"
    assert second.completions[0].finish_reason == "length" and second.completions[0].top_logprobs is None
    assert (first.prompt_tokens, first.cached_tokens) == (1, 2) and (
        second.prompt_tokens,
        second.cached_tokens,
    ) == (2, 2)
    assert (gen.stats["calls"], gen.stats["requests"], gen.stats["samples"]) == (1, 2, 3)
    assert gen.stats["generated_tokens"] == 9 and gen.stats["cached_tokens"] == 4


def test_greedy_n_samples_once_and_copies(fake_vllm):
    gen = VLLMGenerator("some/model")
    [res] = gen.generate([GenerationRequest("q", n=3, temperature=0.0, logprobs=0)])
    params = fake_vllm.last.calls[0][1][0]
    assert params.n == 1 and params.temperature == 0.0
    assert [c.text for c in res.completions] == ["s0"] * 3 and res.completions[0].top_logprobs is None
    res.completions[0].token_logprobs.append(0.0)
    assert len(res.completions[2].token_logprobs) == 3, "copies, not aliases"


def test_invalid_request_is_rejected_before_the_engine(fake_vllm):
    gen = VLLMGenerator("some/model")
    with pytest.raises(ValueError, match="request 1: n must be >= 1"):
        gen.generate([GenerationRequest("a"), GenerationRequest("b", n=0)])
    assert fake_vllm.last.calls == [] and gen.generate([]) == []


def test_missing_vllm_names_the_extra(monkeypatch):
    monkeypatch.delitem(sys.modules, "vllm", raising=False)
    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ModuleNotFoundError("No module named 'vllm'", name="vllm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(ImportError, match=r"needs vLLM.*\n    pip install 'treecot\[vllm\]'") as info:
        VLLMGenerator("smollm2-135m-instruct")
    assert INSTALL_HINT in str(info.value) and "scripts/install_vllm_cpu.sh" in str(info.value)
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    with pytest.raises(ImportError, match="treecot\\[vllm\\]"):
        import_vllm()


@pytest.mark.gpu
@pytest.mark.slow
def test_real_engine_on_gpu():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("the vllm backend needs a CUDA GPU (vLLM's wheels are CUDA-only)")
    pytest.importorskip("vllm", reason=f"vllm is not installed ({INSTALL_HINT})")
    gen = VLLMGenerator(
        "smollm2-135m-instruct", dtype="float32", max_model_len=2048, gpu_memory_utilization=0.3
    )
    prompt = gen.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    sampled, greedy = gen.generate(
        [
            GenerationRequest(prompt, n=4, max_tokens=16, stop=["."], temperature=0.8, seed=0, logprobs=3),
            GenerationRequest(prompt, n=2, max_tokens=8, temperature=0.0),
        ]
    )
    assert len(sampled.completions) == 4 and len(greedy.completions) == 2
    for c in sampled.completions:
        assert "." not in c.text and 1 <= c.n_tokens <= 16 and len(c.token_logprobs) == c.n_tokens
        assert all(lp <= 0 for lp in c.token_logprobs)
        assert all(len(top) == 3 and top == sorted(top, reverse=True) for top in c.top_logprobs)
    assert greedy.completions[0].text == greedy.completions[1].text
    [again] = gen.generate([GenerationRequest(prompt, max_tokens=1, temperature=0.0)])
    assert again.cached_tokens > 0, "prefix caching is on"


# --------------------------------------------------------------------------- recipes and launched ranks


def _vllm_recipe(**engine):
    from treecot.recipe import load_recipe

    return load_recipe(
        {
            "seed": 5,
            "problems": {"task": "gsm8k", "split": "test", "limit": 1},
            "generate": {
                "models": {"A": {"model": "org/policy", "backend": "vllm", "dtype": "float16", **engine}}
            },
        }
    )


def test_a_recipes_engine_settings_reach_vllm_llm(fake_vllm, monkeypatch):
    from treecot.pipeline.generate import build_generators

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    gens = build_generators(
        _vllm_recipe(
            tensor_parallel_size=2,
            gpu_memory_utilization=0.6,
            max_model_len=4096,
            enable_prefix_caching=False,
            quantization="awq",
            engine_kwargs={"enforce_eager": True, "swap_space": 8},
        )
    )
    assert gens["A"] is gens["B"] and isinstance(gens["A"], VLLMGenerator), "B defaults to A: one engine"
    kw = fake_vllm.last.init_kwargs
    assert (kw["model"], kw["dtype"], kw["seed"]) == ("org/policy", "float16", 5)
    assert (kw["tensor_parallel_size"], kw["gpu_memory_utilization"], kw["max_model_len"]) == (2, 0.6, 4096)
    assert (kw["enable_prefix_caching"], kw["quantization"]) == (False, "awq")
    assert (kw["enforce_eager"], kw["swap_space"]) == (True, 8)
    # unset settings keep the generator's defaults
    build_generators(_vllm_recipe())
    kw = fake_vllm.last.init_kwargs
    assert (kw["tensor_parallel_size"], kw["gpu_memory_utilization"], kw["enable_prefix_caching"]) == (
        1,
        0.9,
        True,
    )
    assert kw["max_model_len"] is None and kw["quantization"] is None and "enforce_eager" not in kw


def test_a_distill_teachers_engine_settings_reach_vllm_llm(fake_vllm):
    from treecot.backends import make_generator
    from treecot.recipe import ModelSpec

    spec = ModelSpec(model="org/teacher", backend="vllm", tensor_parallel_size=2, max_model_len=2048,
                     engine_kwargs={"enforce_eager": True})  # fmt: skip
    make_generator(spec, seed=3)
    kw = fake_vllm.last.init_kwargs
    assert (kw["model"], kw["seed"], kw["tensor_parallel_size"], kw["max_model_len"]) == (
        "org/teacher",
        3,
        2,
        2048,
    )
    assert kw["enforce_eager"] is True


def test_under_a_launcher_the_engine_starts_on_this_ranks_gpus(fake_vllm, monkeypatch):
    from treecot.models import PINNED_GPUS_ENV

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2,3")
    monkeypatch.delenv(PINNED_GPUS_ENV, raising=False)  # restored (removed) after the test
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    seen = {}
    llm = fake_vllm.LLM

    def recording_llm(**kwargs):
        seen["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
        return llm(**kwargs)

    fake_vllm.LLM = recording_llm
    VLLMGenerator("org/policy", tensor_parallel_size=2)
    assert seen == {"CUDA_VISIBLE_DEVICES": "2,3"}, "rank 1 with 2 GPUs per engine: GPUs 2 and 3"


def test_a_rank_whose_gpus_do_not_fit_fails_naming_the_field_before_any_engine(fake_vllm, monkeypatch):
    from treecot.pipeline.generate import build_generators
    from treecot.recipe import RecipeError

    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    fake_vllm.last = None
    with pytest.raises(
        RecipeError,
        match=r"^generate\.models\.A\.tensor_parallel_size: LOCAL_RANK=1 with 2 GPU\(s\) per engine "
        r"\(tensor_parallel_size\) needs GPUs 2-3, but this machine shows 2 GPU\(s\)",
    ):
        build_generators(_vllm_recipe(tensor_parallel_size=2))
    assert fake_vllm.last is None and os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"
