"""Several servers of one model (`treecot.backends.multi`): sticky per tree, spread by load, failover.

Scripted fake servers (`tests/fixtures/fake_openai_server.py`) for routing and failures; one test runs a search
against the real vLLM CPU server behind a proxy that dies mid-run.
"""

from __future__ import annotations

import json
import threading

import pytest
import requests

from tests.backends.test_backend_openai import WordTokenizer, completion_body
from tests.fixtures.fake_openai_server import DROP, FakeServer
from treecot.backends.base import GenerationRequest
from treecot.backends.multi import MultiServerGenerator
from treecot.backends.openai_backend import (
    BackendHTTPError,
    BackendUnavailable,
    OpenAIGenerator,
    normalize_base_url,
)
from treecot.recipe import ModelSpec, RecipeError


def drops_after(n: int, reply):
    """A server reply that answers with `reply` `n` times, then drops every connection (a server killed)."""
    calls = {"n": 0}
    lock = threading.Lock()

    def answer(path, body, i):
        with lock:
            calls["n"] += 1
            if calls["n"] > n:
                return DROP
        return reply(path, body, i)

    answer.calls = calls
    return answer


def echo(tag: str):
    """A server that answers every request with its own name."""
    return lambda path, body, i: (200, completion_body([tag] * int(body.get("n", 1))))


def multi(*servers: FakeServer, **kw) -> MultiServerGenerator:
    kw.setdefault("backoff", 0.0)
    kw.setdefault("max_retries", 1)
    return MultiServerGenerator(
        [OpenAIGenerator(s.url, "m", tokenizer=WordTokenizer(), **kw) for s in servers]
    )


def req(affinity: str | None, prompt: str = "p") -> GenerationRequest:
    return GenerationRequest(prompt, max_tokens=4, temperature=0.0, affinity=affinity)


def test_requests_stick_to_their_trees_server_and_trees_spread_by_load(fake_server):
    a, b = fake_server(echo("a")), fake_server(echo("b"))
    gen = multi(a, b)
    first = gen.generate([req("t1"), req("t2"), req("t3"), req("t4")])
    where = {t: r.completions[0].text for t, r in zip(("t1", "t2", "t3", "t4"), first)}
    assert sorted(where.values()) == ["a", "a", "b", "b"], "4 new trees: 2 per server"
    again = gen.generate([req(t, prompt="p + more of the path") for t in ("t4", "t3", "t2", "t1")])
    assert [r.completions[0].text for r in again] == [where[t] for t in ("t4", "t3", "t2", "t1")], "sticky"
    # two trees end on the server of t1: the next new tree goes there
    done = [t for t in where if where[t] == where["t1"]]
    for t in done:
        gen.end_affinity(t)
    [new] = gen.generate([req("t5")])
    assert new.completions[0].text == where["t1"]
    # without an affinity: spread over the batch
    assert sorted(r.completions[0].text for r in gen.generate([req(None), req(None)])) == ["a", "b"]
    assert where["t1"] == "a", "ties go to the first server listed"
    assert gen.stats["requests_per_server"] == [6, 5] and gen.stats["failovers"] == 0
    assert gen.apply_chat_template([{"role": "user", "content": "q"}]).startswith("<user>q")


def test_a_dead_server_moves_its_trees_and_nothing_is_lost(fake_server, caplog):
    dies_after_two = drops_after(2, lambda path, body, i: (200, completion_body(["b"])))
    a, b = fake_server(echo("a")), fake_server(dies_after_two)
    gen = multi(a, b)
    first = gen.generate([req("t1"), req("t2")])
    assert sorted(r.completions[0].text for r in first) == ["a", "b"]
    on_b = next(t for t, r in zip(("t1", "t2"), first) if r.completions[0].text == "b")
    second = gen.generate([req("t1"), req("t2"), req("t3")])  # b answers one more request, then drops
    third = gen.generate([req("t1"), req("t2"), req("t3"), req("t4")])
    assert all(r.completions[0].text == "a" for r in third), "every tree continues on the live server"
    assert len(second) == 3 and all(len(r.completions) == 1 for r in second)
    assert gen.stats["dead_servers"] == [b.url + "/v1"] and gen.stats["failovers"] >= 1
    assert gen.server_of(on_b) == 0
    assert "failed" in caplog.text and "move to the 1 other live server" in caplog.text
    # every server dead: the last error is raised, naming each server
    a.close()
    with pytest.raises(BackendUnavailable, match="every server failed"):
        gen.generate([req("t9")])


def test_a_request_the_server_rejects_is_not_failed_over(fake_server):
    bad = fake_server(lambda path, body, i: (400, {"error": {"message": "prompt too long"}}))
    ok = fake_server(echo("ok"))
    gen = multi(bad, ok)
    with pytest.raises(BackendHTTPError, match="prompt too long"):
        gen.generate([req("t1"), req("t2")])
    assert gen.stats["dead_servers"] == []


def test_a_recipe_lists_several_fake_server(tmp_path):
    from treecot.backends import make_generator

    spec = ModelSpec(
        model="tiny", backend="openai", base_url=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    )
    spec.validate("generate.models.A")
    gen = make_generator(spec)
    assert isinstance(gen, MultiServerGenerator) and gen.names == spec.base_urls()
    assert gen.generators[1].tokenizer is gen.generators[0].tokenizer, "one tokenizer for all servers"
    gen.close()
    for bad, message in (
        (["http://127.0.0.1:1/v1", "http://127.0.0.1:1/v1"], "lists a server twice"),
        (["http://127.0.0.1:1/v1", "127.0.0.1:2"], r"base_url\[1\]: expected an http\(s\) URL"),
    ):
        with pytest.raises(RecipeError, match=message):
            ModelSpec(model="tiny", backend="openai", base_url=bad).validate("generate.models.A")
    single = ModelSpec(model="tiny", backend="openai", base_url="http://127.0.0.1:1/v1")
    assert single.to_dict()["base_url"] == "http://127.0.0.1:1/v1", "one server: the run's hash is unchanged"


@pytest.mark.slow
def test_a_search_survives_a_server_dying_mid_run(vllm_server, tmp_path):
    """`treecot generate` with two servers of one model: the real vLLM CPU server and a proxy in front of it
    that dies after a few requests. Every tree is finished and written once; the proxy's trees moved."""
    from treecot.pipeline.generate import iter_tree_dicts, run_generate, tree_files
    from treecot.recipe import load_recipe

    def forward(path, body, i):
        resp = requests.post(
            normalize_base_url(vllm_server.base_url) + path.removeprefix("/v1"), json=body, timeout=120
        )
        return resp.status_code, json.loads(resp.text)

    proxy = drops_after(2, forward)  # killed mid-run
    dying = FakeServer(proxy)
    try:
        model = {"model": str(vllm_server.model_dir), "backend": "openai", "served_model": vllm_server.model,
                 "base_url": [dying.url + "/v1", vllm_server.base_url]}  # fmt: skip
        recipe = load_recipe(
            {
                "name": "multi",
                "seed": 0,
                "problems": {"task": "arithmetic", "split": "train", "limit": 4},
                "generate": {
                    "patterns": "math-small",
                    "models": {"A": model},
                    "search": {"max_rollouts": 3, "max_depth": 3, "max_node_tokens": 24},
                    "output_dir": str(tmp_path / "trees"),
                    "problems_in_flight": 4,
                },
            }
        )
        summary = run_generate(recipe, progress=False)
    finally:
        dying.close()
    trees = list(iter_tree_dicts(tree_files(tmp_path / "trees")))
    assert summary["new_trees"] == 4 and len(trees) == 4
    assert len({t["problem"]["id"] for t in trees}) == 4, "no tree written twice"
    assert proxy.calls["n"] > 3, "the proxy died mid-run (its later requests were dropped and went elsewhere)"


def test_requests_that_fail_on_two_servers_are_raised_not_moved_on(fake_server):
    """A request that makes every server fail (say it crashes them) must not take down a third one."""

    def dies(path, body, i):
        return 500, {"error": {"message": "engine died"}}

    gen = multi(fake_server(dies), fake_server(dies), fake_server(echo("c")))
    with pytest.raises(BackendUnavailable, match="failed on two servers"):
        gen.generate([req("t1")])
    assert len(gen.stats["dead_servers"]) == 1, "one server dropped; the requests are blamed after the second"
