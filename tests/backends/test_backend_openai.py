"""The OpenAI-compatible HTTP backend.

Two kinds of servers:

* scripted fake servers (``http.server`` in a thread, ``tests/fixtures/fake_openai_server.py``) for retries, timeouts, feature errors,
  concurrency and the parsing of every response format;
* a REAL vLLM CPU server on loopback (``tests/fixtures/servers/vllm_server.py``) for n > 1, stop strings,
  log-probs, prefix-cache accounting and greedy equality with in-process transformers.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fake_openai_server import DROP, FakeServer
from tests.fixtures.servers.vllm_server import VLLMServerError, free_port, start_vllm_server
from treecot.backends.base import GenerationRequest, Generator
from treecot.backends.openai_backend import (
    SERVER_STOP_LIMIT,
    BackendError,
    BackendFeatureError,
    BackendHTTPError,
    OpenAIGenerator,
    cut_at_stop,
    normalize_base_url,
    parse_logprobs,
)

# --------------------------------------------------------------------------------------------------
# A scripted fake server
# --------------------------------------------------------------------------------------------------

# DROP, FakeServer and the `fake_server` fixture: tests/fixtures/fake_openai_server.py


def completion_body(
    texts: list[str],
    *,
    finish: str = "stop",
    usage: dict | None = None,
    logprobs: str | None = None,
    k: int = 0,
    token_ids: bool = False,
    extra: dict | None = None,
) -> dict:
    """A /v1/completions response; ``logprobs`` is None, "completions" or "chat" (one token per word)."""
    choices = []
    for i, text in enumerate(texts):
        words = text.split()
        choice: dict[str, Any] = {"index": i, "text": text, "finish_reason": finish}
        if logprobs == "completions":
            choice["logprobs"] = {
                "tokens": words,
                "token_logprobs": [-0.5] * len(words),
                "top_logprobs": [{w: -0.5, "a": -0.1, "b": -2.0, "c": -1.0} for w in words] if k else None,
            }
        elif logprobs == "chat":
            choice["logprobs"] = {
                "content": [
                    {
                        "token": w,
                        "logprob": -0.25,
                        "top_logprobs": [
                            {"token": "x", "logprob": -3.0},
                            {"token": w, "logprob": -0.25},
                            {"token": "y", "logprob": -1.5},
                        ][: k + 1],
                    }  # fmt: skip
                    for w in words
                ]
            }
        if token_ids:
            choice["token_ids"] = list(range(len(words) + 1))  # + EOS
        choices.append(choice)
    body: dict[str, Any] = {"id": "cmpl-1", "object": "text_completion", "model": "fake", "choices": choices}
    if usage is not None:
        body["usage"] = usage
    body.update(extra or {})
    return body


class WordTokenizer:
    """A local tokenizer stand-in: one token per whitespace-separated word."""

    def encode(self, text, add_special_tokens=False):
        return text.split()

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True):
        out = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return out + ("<assistant>" if add_generation_prompt else "")


def ok(texts=("fine",), **kw):
    return lambda path, body, i: (200, completion_body(list(texts), **kw))


def gen_for(server: FakeServer, **kw) -> OpenAIGenerator:
    kw.setdefault("backoff", 0.0)
    return OpenAIGenerator(server.url, "fake-model", tokenizer=WordTokenizer(), **kw)


# --------------------------------------------------------------------------------------------------
# Parsing (pure functions)
# --------------------------------------------------------------------------------------------------


def test_parse_completions_format_sorts_and_cuts_top_k():
    lps = {
        "tokens": ["Two", " and"],
        "token_logprobs": [-2.16, -0.85],
        # vLLM adds the sampled token to the top-k dict when it is not among them ("Two" is 3rd here)
        "top_logprobs": [{"Two": -2.16, "The": -1.59, "To": -2.05}, {" and": -0.85, " +": -1.88}],
    }
    tokens, top = parse_logprobs(lps, 2)
    assert tokens == [-2.16, -0.85]
    assert top == [[-1.59, -2.05], [-0.85, -1.88]]
    assert parse_logprobs(lps, 0) == ([-2.16, -0.85], None)


def test_parse_chat_format_as_llama_cpp_returns_on_completions():
    lps = {
        "content": [
            {
                "token": "4",
                "logprob": -0.1,
                "top_logprobs": [{"token": "5", "logprob": -3.0}, {"token": "4", "logprob": -0.1}],
            },  # fmt: skip
            {"token": ".", "logprob": -0.7, "top_logprobs": [{"token": ".", "logprob": -0.7}]},
        ]
    }
    assert parse_logprobs(lps, 2) == ([-0.1, -0.7], [[-0.1, -3.0], [-0.7]])


def test_parse_logprobs_absent_empty_or_unknown():
    assert parse_logprobs(None, 3) == (None, None)
    # alternatives requested but every position empty: that is "not supported", reported as None
    assert parse_logprobs({"token_logprobs": [-1.0], "top_logprobs": [{}]}, 3) == ([-1.0], None)
    with pytest.raises(BackendError, match="unrecognised logprobs format with keys"):
        parse_logprobs({"weird": []}, 1)


def test_cut_at_stop_and_base_url():
    assert cut_at_stop("a. b</x> c</y>", ["</y>", "</x>"]) == "a. b"
    assert cut_at_stop("abc", ["", "z"]) == "abc"
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert normalize_base_url(url) == "http://h:1/v1"
    with pytest.raises(ValueError, match="base_url must be an http"):
        normalize_base_url("localhost:8000")


# --------------------------------------------------------------------------------------------------
# Requests and responses against fake servers
# --------------------------------------------------------------------------------------------------


def test_payload_fields_auth_and_extra_body(fake_server):
    server = fake_server(ok(["x y"], usage={"prompt_tokens": 3, "completion_tokens": 2}))
    gen = gen_for(server, api_key="sk-test", extra_body={"top_k": 20})
    assert isinstance(gen, Generator)
    req = GenerationRequest(prompt=[1, 2, 3], n=1, max_tokens=7, stop=["</a>"], temperature=0.3, top_p=0.8,
                            logprobs=None, seed=11)  # fmt: skip
    [res] = gen.generate([req])
    body = server.bodies[0]
    assert server.paths == ["/v1/completions"]
    assert body == {"model": "fake-model", "prompt": [1, 2, 3], "n": 1, "max_tokens": 7, "temperature": 0.3,
                    "top_p": 0.8, "stop": ["</a>"], "seed": 11, "top_k": 20}  # fmt: skip
    assert server.headers[0]["Authorization"] == "Bearer sk-test"
    assert res.completions[0].text == "x y" and res.completions[0].n_tokens == 2
    assert res.completions[0].token_logprobs is None and res.completions[0].top_logprobs is None
    assert (res.prompt_tokens, res.cached_tokens) == (3, 0)


def test_stop_string_kept_by_server_is_removed_and_finish_reason_mapped(fake_server):
    server = fake_server(
        lambda p, b, i: (200, completion_body(["step one</thinking> junk"], finish=b["extra"]))
    )
    gen = gen_for(server)
    for server_reason, ours in [("stop", "stop"), ("length", "length"), ("eos", "stop")]:
        gen.extra_body = {"extra": server_reason}
        [res] = gen.generate([GenerationRequest("p", stop=["</thinking>"])])
        assert res.completions[0].text == "step one"
        assert res.completions[0].finish_reason == ours


def test_more_stop_strings_than_the_api_takes_are_applied_to_the_text(fake_server):
    """The OpenAI API (and vLLM's server) take at most 4 stop strings; MCTS sends one per node tag. The first
    4 go to the server, the others end the text here, and what followed them is dropped from the
    completion: its tokens, log-probs and the finish reason."""
    bodies = []

    def reply(path, body, i):
        bodies.append(body)
        return 200, completion_body(
            ["a b </t5> c d"], finish="length", logprobs="completions", token_ids=True
        )

    stops = [f"</t{i}>" for i in range(1, 7)]
    [res] = gen_for(fake_server(reply)).generate([GenerationRequest("p", stop=stops, logprobs=0)])
    assert bodies[0]["stop"] == stops[:SERVER_STOP_LIMIT] == stops[:4]
    c = res.completions[0]
    assert c.text == "a b " and c.finish_reason == "stop"
    assert c.n_tokens == 2 and c.token_logprobs == [-0.5, -0.5] and res.extra["token_ids"] == [[0, 1]]
    # the count comes from the generated tokens (wholly before the cut), not from re-encoding the cut text,
    # which a tokenizer may split differently ("a b c" is 3 words; the model wrote "a", " b", " c</", "t5>")
    body = completion_body(["a b c</t5>"], finish="length")
    body["choices"][0]["logprobs"] = {
        "tokens": ["a", " b", " c</", "t5>"],
        "token_logprobs": [-0.1, -0.2, -0.3, -0.4],
    }
    [res] = gen_for(fake_server(lambda p, b, i: (200, body))).generate(
        [GenerationRequest("p", stop=stops, logprobs=0)]
    )
    assert res.completions[0].text == "a b c"
    assert res.completions[0].n_tokens == 2 and res.completions[0].token_logprobs == [-0.1, -0.2]
    # a stop string the server was sent: nothing to redo
    [res] = gen_for(fake_server(ok(["a b"], finish="stop", logprobs="completions"))).generate(
        [GenerationRequest("p", stop=stops, logprobs=0)]
    )
    assert res.completions[0].text == "a b" and res.completions[0].token_logprobs == [-0.5, -0.5]


def test_token_count_sources_in_order_of_preference(fake_server):
    usage = {"prompt_tokens": 5, "completion_tokens": 40}
    # 1. token_ids (vLLM return_token_ids): 3 words + EOS
    server = fake_server(ok(["a b c"], usage=usage, token_ids=True, logprobs="completions"))
    [res] = gen_for(server).generate([GenerationRequest("p")])
    assert res.completions[0].n_tokens == 4 and res.extra["token_ids"] == [[0, 1, 2, 3]]
    # 2. per-token log-probs
    server = fake_server(ok(["a b c"], usage=usage, logprobs="chat"))
    [res] = gen_for(server).generate([GenerationRequest("p", logprobs=0)])
    assert res.completions[0].n_tokens == 3
    # 3. usage when the response holds one choice
    server = fake_server(ok(["a b c"], usage=usage))
    assert gen_for(server).generate([GenerationRequest("p")])[0].completions[0].n_tokens == 40
    # 4. several choices: usage is not per choice (llama.cpp counts one), so count locally
    server = fake_server(ok(["a b c", "d e"], usage=usage))
    gen = gen_for(server)
    [res] = gen.generate([GenerationRequest("p", n=2)])
    assert [c.n_tokens for c in res.completions] == [3, 2]
    assert gen.stats["generated_tokens"] == 5


def test_prompt_and_cached_tokens_from_usage_llama_cpp_timings_or_local_count(fake_server):
    usage = {"prompt_tokens": 300, "completion_tokens": 1, "prompt_tokens_details": {"cached_tokens": 256}}
    server = fake_server(ok(usage=usage))
    gen = gen_for(server)
    [res] = gen.generate([GenerationRequest("p")])
    assert (res.prompt_tokens, res.cached_tokens) == (44, 256)
    server = fake_server(
        ok(usage={"prompt_tokens": 50, "completion_tokens": 1}, extra={"timings": {"cache_n": 20}})
    )
    [res] = gen_for(server).generate([GenerationRequest("p")])
    assert (res.prompt_tokens, res.cached_tokens) == (30, 20)
    server = fake_server(ok())  # no usage at all: the local tokenizer counts the prompt
    [res] = gen_for(server).generate([GenerationRequest("one two three four")])
    assert (res.prompt_tokens, res.cached_tokens) == (4, 0)
    assert (
        gen.stats["prompt_tokens"] == 44 and gen.stats["cached_tokens"] == 256 and gen.stats["requests"] == 1
    )


def test_logprobs_both_formats_end_to_end(fake_server):
    for fmt, top0 in [("completions", [-0.1, -0.5]), ("chat", [-0.25, -1.5])]:
        server = fake_server(ok(["x z"], logprobs=fmt, k=2))
        [res] = gen_for(server).generate([GenerationRequest("p", logprobs=2)])
        c = res.completions[0]
        assert server.bodies[0]["logprobs"] == 2
        assert len(c.token_logprobs) == 2 and c.top_logprobs[0] == top0


def test_greedy_n_asks_for_one_sample_and_copies_it(fake_server):
    server = fake_server(ok(["same"], logprobs="completions", k=1))
    [res] = gen_for(server).generate([GenerationRequest("p", n=3, temperature=0.0, logprobs=1)])
    assert server.bodies[0]["n"] == 1 and len(server.bodies) == 1
    assert [c.text for c in res.completions] == ["same"] * 3
    res.completions[0].token_logprobs.append(0.0)  # copies, not aliases
    assert len(res.completions[1].token_logprobs) == 1


# --------------------------------------------------------------------------------------------------
# Feature errors
# --------------------------------------------------------------------------------------------------


def test_server_ignoring_n_fills_missing_samples_and_warns_once(fake_server, caplog):
    server = fake_server(lambda p, b, i: (200, completion_body([f"sample {i}"])))
    gen = gen_for(server)
    with caplog.at_level(logging.WARNING, logger="treecot.backends.openai_backend"):
        [res] = gen.generate([GenerationRequest("p", n=3, seed=5)])
        gen.generate([GenerationRequest("q", n=2)])
    assert sorted(c.text for c in res.completions) == ["sample 0", "sample 1", "sample 2"]
    assert [b["n"] for b in server.bodies[:3]] == [3, 1, 1]
    assert sorted(b["seed"] for b in server.bodies[1:3]) == [6, 7], "fills get distinct, reproducible seeds"
    assert "seed" not in server.bodies[4], "no seed requested, none invented"
    assert res.extra["http_requests"] == 3 and gen.stats["http_requests"] == 5
    warnings = [r for r in caplog.records if "ignored n=" in r.getMessage()]
    assert len(warnings) == 1 and server.url in warnings[0].getMessage()


def test_server_ignoring_n_strict_mode_raises_feature_error(fake_server):
    server = fake_server(ok(["only one"]))
    with pytest.raises(
        BackendFeatureError, match=r"at http://127\.0\.0\.1:\d+/v1 does not support n > 1: .*n=4"
    ):
        gen_for(server, fill_missing_samples=False).generate([GenerationRequest("p", n=4)])


def test_missing_logprobs_raise_feature_errors(fake_server):
    server = fake_server(ok(["a b"]))
    with pytest.raises(BackendFeatureError, match=rf"{server.url}/v1 does not support logprobs") as info:
        gen_for(server).generate([GenerationRequest("p", logprobs=0)])
    assert info.value.feature == "logprobs"
    server = fake_server(ok(["a b"], logprobs="completions", k=0))  # sampled tokens only, no alternatives
    with pytest.raises(BackendFeatureError, match="does not support top-k logprobs"):
        gen_for(server).generate([GenerationRequest("p", logprobs=3)])


def test_malformed_responses_are_clear_errors(fake_server):
    server = fake_server(lambda p, b, i: (200, "<html>proxy</html>"))
    with pytest.raises(BackendError, match=r"HTTP 200 with a body that is not JSON: '<html>proxy"):
        gen_for(server).generate([GenerationRequest("p")])
    server = fake_server(lambda p, b, i: (200, {"object": "error"}))
    with pytest.raises(BackendError, match="without a 'choices' list"):
        gen_for(server).generate([GenerationRequest("p")])
    server = fake_server(lambda p, b, i: (200, {"choices": []}))
    with pytest.raises(BackendError, match="returned no choices"):
        gen_for(server).generate([GenerationRequest("p")])


def test_invalid_requests_and_arguments():
    gen = OpenAIGenerator("http://127.0.0.1:9", "m", tokenizer=WordTokenizer())
    for bad, msg in [
        (GenerationRequest("p", n=0), "request 0: n must be >= 1"),
        (GenerationRequest("p", max_tokens=0), "max_tokens must be >= 1"),
        (GenerationRequest(""), "prompt must be a non-empty"),
        (GenerationRequest("p", logprobs=-1), "logprobs must be None or >= 0"),
    ]:
        with pytest.raises(ValueError, match=msg):
            gen.generate([bad])
    with pytest.raises(TypeError, match="stop must be a list of strings"):
        gen.generate([GenerationRequest("p", stop="</x>")])
    with pytest.raises(ValueError, match="concurrency must be a positive integer"):
        OpenAIGenerator("http://127.0.0.1:9", "m", concurrency=0)
    assert gen.generate([]) == [] and gen.stats["http_requests"] == 0


# --------------------------------------------------------------------------------------------------
# Retries, timeouts, concurrency
# --------------------------------------------------------------------------------------------------


def scripted(*steps):
    """Reply with ``steps[i]`` to the i-th request: a status (error body), DROP, "sleep:S", or "ok"."""

    def reply(path, body, i):
        step = steps[min(i, len(steps) - 1)]
        if step is DROP:
            return DROP
        if step == "ok":
            return 200, completion_body(["done"], usage={"prompt_tokens": 1, "completion_tokens": 1})
        if isinstance(step, str) and step.startswith("sleep:"):
            time.sleep(float(step[6:]))
            return 200, completion_body(["late"])
        return step, {"error": {"message": f"scripted failure {step}", "code": step}}

    return reply


def test_retries_5xx_and_dropped_connections_then_succeeds(fake_server):
    server = fake_server(scripted(500, DROP, 503, "ok"))
    gen = gen_for(server, max_retries=4)
    [res] = gen.generate([GenerationRequest("p")])
    assert res.completions[0].text == "done"
    assert len(server.bodies) == 4 and gen.stats["retries"] == 3 and gen.stats["http_requests"] == 1


def test_gives_up_after_max_retries_with_the_last_error(fake_server):
    server = fake_server(scripted(502))
    gen = gen_for(server, max_retries=2)
    with pytest.raises(
        BackendError, match=r"failed after 3 attempt\(s\); last error: HTTP 502: scripted failure"
    ):
        gen.generate([GenerationRequest("p")])
    assert len(server.bodies) == 3 and gen.stats["retries"] == 2


def test_no_retry_on_4xx_and_the_server_message_is_raised(fake_server):
    server = fake_server(scripted(400))
    gen = gen_for(server, max_retries=4)
    with pytest.raises(BackendHTTPError, match=r"answered HTTP 400: scripted failure 400") as info:
        gen.generate([GenerationRequest("p")])
    assert info.value.status == 400 and len(server.bodies) == 1 and gen.stats["retries"] == 0
    server = fake_server(lambda p, b, i: (422, {"detail": "field required: prompt"}))  # FastAPI style
    with pytest.raises(BackendHTTPError, match="HTTP 422: field required: prompt"):
        gen_for(server).generate([GenerationRequest("p")])


def test_429_is_retried_honouring_retry_after(fake_server):
    server = fake_server(lambda p, b, i: (429, {"error": {"message": "slow down"}}, {"Retry-After": "0.2"})
                         if i == 0 else (200, completion_body(["ok"])))  # fmt: skip
    gen = gen_for(server, max_retries=1)
    t0 = time.perf_counter()
    [res] = gen.generate([GenerationRequest("p")])
    assert res.completions[0].text == "ok" and gen.stats["retries"] == 1
    assert time.perf_counter() - t0 >= 0.2, "Retry-After must be honoured"


def test_connection_refused_is_retried_then_reported():
    port = free_port()  # nothing listens here
    gen = OpenAIGenerator(
        f"http://127.0.0.1:{port}", "m", tokenizer=WordTokenizer(), max_retries=2, backoff=0.01
    )
    with pytest.raises(
        BackendError, match=rf"POST http://127\.0\.0\.1:{port}/v1/completions failed after 3.*ConnectionError"
    ):
        gen.generate([GenerationRequest("p")])
    assert gen.stats["retries"] == 2


def test_read_timeout_is_retried(fake_server):
    server = fake_server(scripted("sleep:1.0", "ok"))
    gen = gen_for(server, timeout=0.3, max_retries=1)
    [res] = gen.generate([GenerationRequest("p")])
    assert res.completions[0].text == "done" and gen.stats["retries"] == 1


def test_concurrency_limit_is_shared_by_threads_and_order_is_kept(fake_server):
    def reply(path, body, i):
        time.sleep(0.1)
        return 200, completion_body([f"echo {body['prompt']}"])

    server = fake_server(reply)
    gen = gen_for(server, concurrency=3)
    results: dict[str, list] = {}

    def run(tag):
        results[tag] = gen.generate([GenerationRequest(f"{tag}{i}") for i in range(6)])

    threads = [threading.Thread(target=run, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert server.max_in_flight == 3, "at most `concurrency` in flight, and really concurrent"
    for tag in "ab":
        assert [r.completions[0].text for r in results[tag]] == [f"echo {tag}{i}" for i in range(6)]
    assert (gen.stats["calls"], gen.stats["requests"], gen.stats["samples"]) == (2, 12, 12)


def test_worker_threads_and_connections_are_reused_across_calls_until_close(fake_server):
    server = fake_server(ok(["x"]))
    with gen_for(server, concurrency=2) as gen:
        for _ in range(3):
            gen.generate([GenerationRequest(f"p{i}") for i in range(4)])
        assert 1 <= len(gen._sessions) <= 2, "one keep-alive session per worker thread, not per call"
    assert gen._sessions == [] and gen._pool is None
    assert gen.generate([GenerationRequest("again")])[0].completions[0].text == "x", "usable after close()"
    gen.close()


def test_model_discovery_from_v1_models(fake_server):
    def one(path, body, i):
        return 200, {"data": [{"id": "served-x"}]} if path == "/v1/models" else completion_body(["hi"])

    gen = OpenAIGenerator(fake_server(one).url, None, tokenizer=WordTokenizer())
    assert gen.model == "served-x" and gen.model_id == "served-x"
    two = fake_server(lambda p, b, i: (200, {"data": [{"id": "a"}, {"id": "b"}]}))
    with pytest.raises(ValueError, match=r"exactly one model; .*/v1/models lists \['a', 'b'\]"):
        OpenAIGenerator(two.url, None, tokenizer=WordTokenizer())


def test_chat_template_is_applied_client_side_with_the_local_tokenizer():
    from treecot.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    gen = OpenAIGenerator("http://127.0.0.1:9", "m", tokenizer="smollm2-135m-instruct")
    messages = [{"role": "user", "content": "What is 2+2?"}]
    assert gen.apply_chat_template(messages) == tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert gen.apply_chat_template(messages).endswith("<|im_start|>assistant\n")


# --------------------------------------------------------------------------------------------------
# A real vLLM CPU server
# --------------------------------------------------------------------------------------------------


def test_server_fixture_reports_a_crash_with_the_log_tail(tmp_path):
    # the main venv has no vllm: the server process dies at once, and the error shows why
    with pytest.raises(
        VLLMServerError, match=r"exited with code 1 during start-up(.|\n)*No module named 'vllm'"
    ):
        start_vllm_server(tmp_path, python=Path(sys.executable), log_path=tmp_path / "server.log")


def test_server_fixture_times_out_and_kills_the_process_group(tmp_path, monkeypatch):
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\necho starting up slowly\nsleep 600 &\nwait\n")
    hang.chmod(0o755)
    launched = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(
        subprocess, "Popen", lambda *a, **k: launched.append(real_popen(*a, **k)) or launched[-1]
    )
    with pytest.raises(
        VLLMServerError, match=r"did not answer .*/v1/models within 1 s(.|\n)*starting up slowly"
    ):
        start_vllm_server(tmp_path, python=hang, log_path=tmp_path / "server.log", startup_timeout=1)
    assert launched[0].poll() is not None
    assert not _group_alive(launched[0].pid), "the backgrounded `sleep` is gone too"


def _group_alive(pgid: int, wait: float = 5.0) -> bool:
    """Whether process group `pgid` still has a live member (an orphan is reaped by init asynchronously)."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        time.sleep(0.1)
    return True


QUESTION = [{"role": "user", "content": "What is 2+2? Answer briefly."}]


@pytest.fixture(scope="module")
def vllm_gen(vllm_server):
    gen = OpenAIGenerator(
        vllm_server.base_url,
        vllm_server.model,
        tokenizer=vllm_server.model_dir,  # a Path: loaded locally on first use
        extra_body={"return_token_ids": True},  # vLLM: exact token ids per sample
    )
    yield gen
    gen.close()


@pytest.mark.slow
def test_vllm_n_samples_stop_strings_and_logprobs(vllm_gen):
    prompt = vllm_gen.apply_chat_template(QUESTION)
    reqs = [
        GenerationRequest(
            prompt, n=3, max_tokens=16, stop=[" "], temperature=1.0, top_p=1.0, logprobs=3, seed=0
        ),
        GenerationRequest(prompt, n=2, max_tokens=3, temperature=1.0, seed=1),
    ]
    before = dict(vllm_gen.stats)
    first, second = vllm_gen.generate(reqs)
    assert len(first.completions) == 3 and len(second.completions) == 2
    for c in first.completions:
        assert " " not in c.text, "the stop string and what follows are removed"
        assert c.n_tokens == len(c.token_logprobs) == len(c.top_logprobs) >= 1
        assert all(lp <= 0 for lp in c.token_logprobs)
        for lp, top in zip(c.token_logprobs, c.top_logprobs):
            assert len(top) == 3 and top == sorted(top, reverse=True) and all(x <= 0 for x in top)
            assert lp <= top[0] + 1e-4, "no token is more likely than the top-1 alternative"
    for c in second.completions:
        assert c.token_logprobs is None and 1 <= c.n_tokens <= 3
        assert c.finish_reason == "stop" if c.n_tokens < 3 else c.finish_reason in ("length", "stop")
    assert any(c.finish_reason == "length" for c in second.completions), "3 tokens are too few to finish"
    assert vllm_gen.stats["generated_tokens"] - before["generated_tokens"] == sum(
        c.n_tokens for r in (first, second) for c in r.completions
    )
    assert vllm_gen.stats["http_requests"] - before["http_requests"] == 2, "n samples in one request"
    assert first.prompt_tokens + first.cached_tokens == len(
        vllm_gen.tokenizer.encode(prompt, add_special_tokens=False)
    )


@pytest.mark.slow
def test_vllm_greedy_equals_transformers_greedy(vllm_gen, vllm_server):
    import torch

    from treecot.models import load_model

    model, tok = load_model(str(vllm_server.model_dir), dtype="float32")
    prompt = vllm_gen.apply_chat_template(QUESTION)
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=tok.pad_token_id
        )
    hf_tokens = out[0, len(ids) :].tolist()
    # text prompt with n=2 greedy samples, and the same prompt as token ids
    by_text, by_ids = vllm_gen.generate(
        [
            GenerationRequest(prompt, n=2, max_tokens=12, temperature=0.0),
            GenerationRequest(ids, max_tokens=12, temperature=0.0),
        ]
    )
    assert [c.text for c in by_text.completions] == [by_text.completions[0].text] * 2
    assert by_ids.completions[0].text == by_text.completions[0].text
    assert by_text.extra["token_ids"] == [hf_tokens, hf_tokens], "float32 vLLM and transformers: same tokens"
    assert by_ids.extra["token_ids"] == [hf_tokens]
    assert by_text.completions[0].text == tok.decode(hf_tokens, skip_special_tokens=True)
    assert by_text.completions[0].n_tokens == len(hf_tokens)


@pytest.mark.slow
def test_vllm_prefix_cache_hits_and_http_errors_are_reported(vllm_gen):
    long_prompt = vllm_gen.apply_chat_template(
        [{"role": "user", "content": "Count: " + "one two three " * 60}]
    )
    req = GenerationRequest(long_prompt, max_tokens=1, temperature=0.0)
    cold, warm = vllm_gen.generate([req]), vllm_gen.generate([req])
    total = cold[0].prompt_tokens + cold[0].cached_tokens
    assert total > 128 and warm[0].prompt_tokens + warm[0].cached_tokens == total
    assert warm[0].cached_tokens >= 128, "the repeated prefix is served from vLLM's prefix cache"
    bad = OpenAIGenerator(vllm_gen.base_url, "no-such-model", tokenizer=vllm_gen.tokenizer, max_retries=3)
    with pytest.raises(BackendHTTPError, match="HTTP 404: The model `no-such-model` does not exist"):
        bad.generate([GenerationRequest("hi", max_tokens=1)])
    assert bad.stats["retries"] == 0
