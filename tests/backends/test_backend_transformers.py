"""Tests of the in-process transformers backend and its prefix KV cache.

The tiny random model (float32) makes the numerics exact enough to demand token-identical greedy output
against `model.generate`; one slow test does the same with the real SmolLM2-135M.
"""

from __future__ import annotations

import pytest
import torch

from treecot.backends.base import GenerationRequest, Generator
from treecot.backends.prefix_cache import PrefixCache, common_prefix_length
from treecot.backends.transformers_backend import TransformersGenerator
from treecot.backends.transformers_kv import BufferedLayer
from treecot.backends.transformers_sampling import inverse_cdf_pick
from treecot.models import load_model

QUESTION = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
    "How many clips did Natalia sell altogether in April and May?"
)


@pytest.fixture(scope="module")
def tiny():
    """The tiny random model with its weight matrices scaled up: at the default init its greedy output
    repeats one token whatever the prompt, which would make equality tests weak."""
    model, tok = load_model("tiny", dtype="float32")
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.mul_(8.0)
    return model, tok


def make_gen(tiny, **kw) -> TransformersGenerator:
    model, tok = tiny
    kw.setdefault("dtype", "float32")
    return TransformersGenerator(model, tok, **kw)


def ids_of(tok, text: str) -> list[int]:
    return tok(text, add_special_tokens=False)["input_ids"]


def hf_greedy(model, ids: list[int], max_new_tokens: int) -> list[int]:
    """Reference: plain `model.generate` on the full prompt, batch of one, greedy."""
    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=2,
        )
    return out[0, len(ids) :].tolist()


def greedy(prompt, n=1, max_tokens=12, **kw) -> GenerationRequest:
    return GenerationRequest(prompt, n=n, max_tokens=max_tokens, temperature=0.0, **kw)


@pytest.fixture(scope="module")
def chat_prompt(tiny):
    _, tok = tiny
    return tok.apply_chat_template(
        [{"role": "user", "content": QUESTION}], tokenize=False, add_generation_prompt=True
    )


# ---------------------------------------------------------------------------------------------------- protocol


def test_protocol_model_id_and_chat_template(tiny):
    model, tok = tiny
    gen = make_gen(tiny)
    assert isinstance(gen, Generator)
    assert gen.model_id == "tiny"
    msgs = [{"role": "user", "content": "hi"}]
    assert gen.apply_chat_template(msgs) == tok.apply_chat_template(
        msgs, tokenize=False, add_generation_prompt=True
    )
    assert gen.apply_chat_template(msgs).endswith("<|im_start|>assistant\n")
    assert tok.eos_token_id in gen.eos_token_ids
    assert tok.convert_tokens_to_ids("<|im_end|>") in gen.eos_token_ids


def test_from_pretrained_bf16_casts_and_accounts_kv_bytes():
    gen = TransformersGenerator.from_pretrained("tiny", max_batch_size=4, cache_budget_tokens=1000)
    assert gen.model.dtype == torch.bfloat16
    assert gen.model_id == "tiny" and gen.max_batch_size == 4
    [res] = gen.generate([greedy("Hello there, how are you?", max_tokens=3)])
    assert res.completions[0].n_tokens == 3
    cfg = gen.model.config
    per_token = (
        2 * cfg.num_hidden_layers * cfg.num_key_value_heads * (cfg.hidden_size // cfg.num_attention_heads) * 2
    )
    assert gen.stats["cache_tokens"] > 0
    assert gen.stats["cache_bytes"] == gen.stats["cache_tokens"] * per_token


# ---------------------------------------------------------------------------------------------------- greedy equality


def test_greedy_batched_different_lengths_match_generate(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny, cache_budget_tokens=0)
    prompts = [
        chat_prompt,
        "Short prompt.",
        ids_of(tok, "A prompt given as token ids, of a middling length, for the left padding."),
    ]
    results = gen.generate([greedy(p, max_tokens=12) for p in prompts])
    for p, res in zip(prompts, results):
        ids = p if isinstance(p, list) else ids_of(tok, p)
        ref = hf_greedy(model, ids, 12)
        assert res.extra["token_ids"][0] == ref
        assert res.completions[0].text == tok.decode(ref, skip_special_tokens=False)
        assert res.completions[0].finish_reason == "length" and res.completions[0].n_tokens == 12
        assert res.prompt_tokens == len(ids) and res.cached_tokens == 0


def test_prefix_reuse_second_call_computes_only_the_suffix(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny, cache_completions=False)
    base = ids_of(tok, chat_prompt)
    [first] = gen.generate([greedy(base, max_tokens=4)])
    assert first.prompt_tokens == len(base) and first.cached_tokens == 0
    suffix = ids_of(tok, "<thinking>Let me break this down.")
    [second] = gen.generate([greedy(base + suffix, max_tokens=10)])
    assert second.cached_tokens == len(base)
    assert second.prompt_tokens == len(suffix)
    assert second.extra["token_ids"][0] == hf_greedy(model, base + suffix, 10)
    # The exact same prompt again: everything is cached except the last token (its logits start decoding).
    [third] = gen.generate([greedy(base + suffix, max_tokens=10)])
    assert (third.prompt_tokens, third.cached_tokens) == (1, len(base) + len(suffix) - 1)
    assert third.extra["token_ids"] == second.extra["token_ids"]
    assert gen.stats["calls"] == 3
    assert gen.stats["prompt_tokens"] == len(base) + len(suffix) + 1
    assert gen.stats["cached_tokens"] == len(base) + len(base) + len(suffix) - 1


def test_shared_prefix_within_one_call_is_prefilled_once(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny, share_min_tokens=8, cache_completions=False)
    base = ids_of(tok, chat_prompt)
    a = base + ids_of(tok, "Firstly, I need to break down this task.")
    b = base + ids_of(tok, "<thinking>")
    assert a[len(base)] != b[len(base)]
    reqs = [greedy(a, n=2, max_tokens=6), greedy(b, max_tokens=6), greedy(a, max_tokens=6)]
    results = gen.generate(reqs)
    # `base` is computed once (credited to the first request), each suffix once, the repeated prompt never.
    assert results[0].prompt_tokens == len(a)
    assert results[1].prompt_tokens == len(b) - len(base)
    assert results[2].prompt_tokens == 0 and results[2].cached_tokens == len(a)
    assert sum(r.prompt_tokens for r in results) == len(a) + len(b) - len(base)
    assert results[0].extra["token_ids"] == [hf_greedy(model, a, 6)] * 2
    assert results[1].extra["token_ids"] == [hf_greedy(model, b, 6)]
    assert results[2].extra["token_ids"] == results[0].extra["token_ids"][:1]


def test_completions_are_cached_for_children(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny)
    base = ids_of(tok, chat_prompt)
    [parent] = gen.generate([greedy(base, max_tokens=8)])
    gen_ids = parent.extra["token_ids"][0]
    child = base + gen_ids + ids_of(tok, "</thinking>\n<thinking>")
    [res] = gen.generate([greedy(child, max_tokens=8)])
    # Everything up to the parent's last generated token (never fed to the model) was cached.
    assert res.cached_tokens == len(base) + len(gen_ids) - 1
    assert res.extra["token_ids"][0] == hf_greedy(model, child, 8)


def test_chunked_prefill_matches_generate(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny, max_prefill_tokens=8, cache_budget_tokens=0)
    ids = ids_of(tok, chat_prompt)
    [res] = gen.generate([greedy(ids, max_tokens=8)])
    assert res.extra["token_ids"][0] == hf_greedy(model, ids, 8)
    assert gen.stats["prefill_forwards"] == -(-len(ids) // 8)
    assert res.prompt_tokens == len(ids)


def test_continuous_batching_beyond_max_batch_size(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny, max_batch_size=2, cache_budget_tokens=0)
    prompts = [ids_of(tok, "Hi."), ids_of(tok, chat_prompt), ids_of(tok, "A medium prompt with some words.")]
    reqs = [
        greedy(prompts[0], n=3, max_tokens=5),
        greedy(prompts[1], max_tokens=11),
        greedy(prompts[2], max_tokens=7),
    ]
    results = gen.generate(reqs)
    for p, req, res in zip(prompts, reqs, results):
        assert res.extra["token_ids"] == [hf_greedy(model, p, req.max_tokens)] * req.n


def test_finished_rows_slots_are_refilled_in_place(tiny, chat_prompt):
    """Ragged finishes (different max_tokens): queued rows take finished rows' slots without a rebuild
    when their prompt fits the batch's width, and a rebuild when it does not; outputs are unchanged."""
    model, tok = tiny
    gen = make_gen(tiny, max_batch_size=3, cache_budget_tokens=0)
    long_ids = ids_of(tok, chat_prompt)
    prompts = [long_ids, ids_of(tok, "Hi."), ids_of(tok, "A medium prompt with some words."), long_ids[:20]]
    prompts += [ids_of(tok, "Short."), long_ids + ids_of(tok, " And one more sentence to make it longer.")]
    reqs = [greedy(p, max_tokens=3 + 4 * (i % 3)) for i, p in enumerate(prompts)]
    reqs += [greedy(prompts[1], n=2, max_tokens=6)]
    results = gen.generate(reqs)
    for req, res in zip(reqs, results):
        assert (
            res.extra["token_ids"] == [hf_greedy(model, list(gen.encode(req.prompt)), req.max_tokens)] * req.n
        )
    assert gen.stats["slot_refills"] >= 2, "short prompts queued behind a long one reuse slots in place"
    assert gen.stats["batch_rebuilds"] >= 1, "the longest prompt does not fit the width: a rebuild"


# ---------------------------------------------------------------------------------------------------- sampling


def test_seeded_samples_are_reproducible_and_independent_of_batch(tiny, chat_prompt):
    gen = make_gen(tiny)
    req = GenerationRequest(chat_prompt, n=4, max_tokens=10, temperature=0.8, top_p=0.95, seed=123)
    [a] = gen.generate([req])
    texts = [c.text for c in a.completions]
    assert len(set(texts)) == 4  # the samples differ from each other
    [b] = make_gen(tiny).generate([req])  # a fresh generator, same seed
    assert [c.text for c in b.completions] == texts
    # Fewer samples, other requests around: the same seeded samples come out.
    other = GenerationRequest("Something else entirely.", n=3, max_tokens=4, temperature=1.0)
    _, c = gen.generate(
        [other, GenerationRequest(chat_prompt, n=2, max_tokens=10, temperature=0.8, top_p=0.95, seed=123)]
    )
    assert [x.text for x in c.completions] == texts[:2]
    [d] = gen.generate(
        [GenerationRequest(chat_prompt, n=4, max_tokens=10, temperature=0.8, top_p=0.95, seed=124)]
    )
    assert [x.text for x in d.completions] != texts


def test_unseeded_requests_follow_the_generator_seed(tiny, chat_prompt):
    req = GenerationRequest(chat_prompt, n=2, max_tokens=6, temperature=1.0, top_p=1.0)
    first = [c.text for c in make_gen(tiny, seed=7).generate([req])[0].completions]
    assert [c.text for c in make_gen(tiny, seed=7).generate([req])[0].completions] == first
    assert [c.text for c in make_gen(tiny, seed=8).generate([req])[0].completions] != first


def test_inverse_cdf_pick_respects_top_p_and_the_uniforms():
    probs = torch.tensor([[0.1, 0.5, 0.3, 0.1], [0.1, 0.5, 0.3, 0.1]])
    top_p = torch.tensor([0.7, 1.0])
    # Row 0's nucleus is {1: 0.5, 2: 0.3} (0.8 >= 0.7), in descending order; row 1 uses the whole vocabulary.
    u = torch.tensor([0.0, 0.0], dtype=torch.float64)
    assert inverse_cdf_pick(probs, top_p, u).tolist() == [1, 0]
    u = torch.tensor(
        [0.7, 0.65], dtype=torch.float64
    )  # 0.7 * 0.8 = 0.56 > 0.5 -> token 2; row 1: cdf 0.6 < 0.65
    assert inverse_cdf_pick(probs, top_p, u).tolist() == [2, 2]
    u = torch.tensor([0.999, 0.999], dtype=torch.float64)
    assert inverse_cdf_pick(probs, top_p, u).tolist() == [2, 3]
    # A flat distribution wider than the candidate list falls back to sorting the whole vocabulary.
    flat = torch.full((1, 1000), 1e-3)
    picks = {
        inverse_cdf_pick(flat, torch.tensor([0.99]), torch.tensor([x], dtype=torch.float64)).item()
        for x in (0.0, 0.5, 0.98)
    }
    assert len(picks) == 3 and all(0 <= p < 1000 for p in picks)


def test_top_p_sampling_stays_in_the_nucleus(tiny):
    model, tok = tiny
    gen = make_gen(tiny)
    ids = ids_of(tok, "Count: one two three")
    with torch.inference_mode():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0, -1].float(), -1)
    vals, order = probs.sort(descending=True)
    nucleus = set(order[: int((vals.cumsum(0) < 0.05).sum()) + 1].tolist())
    [res] = gen.generate([GenerationRequest(ids, n=16, max_tokens=1, temperature=1.0, top_p=0.05, seed=3)])
    assert {t[0] for t in res.extra["token_ids"]} <= nucleus


# ---------------------------------------------------------------------------------------------------- stopping


def test_stop_string_split_across_tokens(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny)
    ids = ids_of(tok, chat_prompt)
    ref = hf_greedy(model, ids, 16)
    pieces = [tok.decode([t]) for t in ref]
    full = "".join(pieces)
    # A stop string made of the end of one token and the start of the next (both at least 2 chars).
    k = next(i for i in range(3, len(ref) - 1) if len(pieces[i]) >= 2 and len(pieces[i + 1]) >= 2)
    stop = pieces[k][-2:] + pieces[k + 1][:2]
    assert full.find(stop) == len("".join(pieces[: k + 1])) - 2, (
        "pick a stop string that occurs first at the split"
    )
    [res] = gen.generate([greedy(ids, max_tokens=16, stop=["never-occurs", stop])])
    c = res.completions[0]
    assert c.finish_reason == "stop"
    assert c.text == full[: full.find(stop)]
    assert c.n_tokens == k + 2  # up to and including the token that completed the stop string
    assert res.extra["token_ids"][0] == ref[: k + 2]


def test_eos_stops_and_is_not_in_the_text(tiny, chat_prompt):
    model, tok = tiny
    gen = make_gen(tiny)
    ids = ids_of(tok, chat_prompt)
    ref = hf_greedy(model, ids, 10)
    gen.eos_token_ids = frozenset({ref[4]})  # pretend the 5th greedy token is the model's EOS
    [res] = gen.generate([greedy(ids, max_tokens=10, logprobs=0)])
    c = res.completions[0]
    assert (c.finish_reason, c.n_tokens) == ("stop", 5)
    assert c.text == tok.decode(ref[:4])
    assert len(c.token_logprobs) == 5


def test_im_end_at_first_token_stops_immediately(tiny):
    model, tok = tiny
    gen = make_gen(tiny)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")

    def force(_module, _inputs, output):
        output[..., im_end] = 1e4
        return output

    handle = model.lm_head.register_forward_hook(force)
    try:
        [res] = gen.generate([greedy("Say nothing.", n=2, max_tokens=5)])
    finally:
        handle.remove()
    assert [(c.text, c.n_tokens, c.finish_reason) for c in res.completions] == [("", 1, "stop")] * 2


def test_max_tokens_length_and_zero(tiny):
    gen = make_gen(tiny)
    short, zero = gen.generate(
        [greedy("Tell me a story.", max_tokens=3), greedy("Tell me a story.", max_tokens=0)]
    )
    assert (short.completions[0].n_tokens, short.completions[0].finish_reason) == (3, "length")
    assert (zero.completions[0].text, zero.completions[0].n_tokens, zero.completions[0].finish_reason) == (
        "",
        0,
        "length",
    )


# ---------------------------------------------------------------------------------------------------- logprobs


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_logprobs_are_the_model_log_softmax(tiny, temperature):
    model, tok = tiny
    gen = make_gen(tiny)
    ids = ids_of(tok, "The quick brown fox")
    [res] = gen.generate(
        [GenerationRequest(ids, n=2, max_tokens=6, temperature=temperature, top_p=0.9, logprobs=3, seed=1)]
    )
    for c, out in zip(res.completions, res.extra["token_ids"]):
        with torch.inference_mode():
            logp = torch.log_softmax(model(torch.tensor([ids + out])).logits[0].float(), -1)
        positions = range(len(ids) - 1, len(ids) - 1 + len(out))
        expected = [logp[p, t].item() for p, t in zip(positions, out)]
        assert c.token_logprobs == pytest.approx(expected, abs=1e-4)
        assert len(c.top_logprobs) == c.n_tokens == 6
        for p, top in zip(positions, c.top_logprobs):
            assert top == pytest.approx(logp[p].topk(3).values.tolist(), abs=1e-4)
    [plain] = gen.generate([greedy(ids, max_tokens=2)])
    assert plain.completions[0].token_logprobs is None and plain.completions[0].top_logprobs is None
    [zero] = gen.generate([greedy(ids, max_tokens=2, logprobs=0)])
    assert len(zero.completions[0].token_logprobs) == 2 and zero.completions[0].top_logprobs is None


# ---------------------------------------------------------------------------------------------------- memory


def test_lru_budget_respected_and_recent_prefix_kept(tiny):
    _, tok = tiny
    gen = make_gen(tiny, cache_budget_tokens=20, cache_completions=False)
    a = ids_of(tok, "Alpha prompt number one, which is about apples and their many varieties.")
    b = ids_of(tok, "Bravo prompt number two, concerning bicycles and the people who ride them.")
    assert 10 < len(a) <= 20 and 10 < len(b) <= 20 and a[0] != b[0]
    gen.generate([greedy(a, max_tokens=2)])
    assert gen.stats["cache_tokens"] == len(a)
    gen.generate([greedy(b, max_tokens=2)])
    assert gen.stats["cache_tokens"] <= 20
    assert gen.cache.match_length(b) == len(b) and gen.cache.match_length(a) < len(a)
    assert gen.stats["evicted_tokens"] == len(a)
    [again] = gen.generate([greedy(b, max_tokens=2)])
    assert again.cached_tokens == len(b) - 1


def test_release_and_clear_cache(tiny, chat_prompt):
    _, tok = tiny
    gen = make_gen(tiny, cache_completions=False)
    p1 = chat_prompt
    p2 = tok.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 2?"}], tokenize=False, add_generation_prompt=True
    )
    gen.generate([greedy(p1, max_tokens=2), greedy(p2, max_tokens=2)])
    ids1, ids2 = ids_of(tok, p1), ids_of(tok, p2)
    shared = common_prefix_length(ids1, ids2)
    assert gen.stats["cache_tokens"] == len(ids1) + len(ids2) - shared
    freed = gen.release(p1)
    assert freed == len(ids1) - shared
    assert gen.cache.match_length(ids1) == shared and gen.cache.match_length(ids2) == len(ids2)
    assert gen.stats["cache_tokens"] == len(ids2)
    assert gen.release("not cached at all") == 0
    assert gen.clear_cache() == len(ids2)
    assert gen.stats["cache_tokens"] == 0 and gen.stats["cache_bytes"] == 0


# ---------------------------------------------------------------------------------------------------- prefix cache


def _kv(n_tokens: int, start: int = 0, layers: int = 2):
    t = torch.arange(start, start + n_tokens, dtype=torch.float32)
    return [(t.view(1, -1, 1).repeat(2, 1, 3), -t.view(1, -1, 1).repeat(2, 1, 3)) for _ in range(layers)]


def test_prefix_cache_insert_match_split_gather():
    cache = PrefixCache(budget_tokens=100)
    assert cache.insert([1, 2, 3, 4, 5], _kv(5), kv_start=0) == 5
    assert cache.insert([1, 2, 3, 9], _kv(1, start=3), kv_start=3) == 1  # splits [1..5] after 3 tokens
    assert cache.n_nodes == 3 and cache.n_tokens == 6
    assert cache.match_length([1, 2, 3, 4, 7]) == 4 and cache.match_length([1, 2, 3, 9, 9]) == 4
    assert cache.match_length([2, 1]) == 0
    k, v = cache.gather([1, 2, 3, 9, 8], 4)[0]
    assert k[0, :, 0].tolist() == [0, 1, 2, 3] and v[1, :, 2].tolist() == [0, -1, -2, -3]
    k, _ = cache.gather([1, 2, 3, 4, 5], 5)[1]
    assert k[0, :, 0].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(KeyError):
        cache.gather([1, 2, 7], 3)
    with pytest.raises(ValueError, match="cached"):
        cache.insert([4, 4, 4, 4], _kv(1), kv_start=3)
    assert cache.insert([1, 2, 3, 4, 5], _kv(5), kv_start=0) == 0  # nothing new
    assert sorted(cache.sequences()) == [(1, 2, 3, 4, 5), (1, 2, 3, 9)]
    # Stored tensors own their memory (no view of a larger batch tensor is kept alive).
    expected = sum(k.numel() * k.element_size() * 2 for k, _ in _kv(6))
    assert cache.n_bytes == expected
    big = _kv(50)
    cache.insert([7] + list(range(100, 103)), [(k[:, :4], v[:, :4]) for k, v in big], kv_start=0)
    node = cache._root.children[7]
    assert node.kv[0][0].untyped_storage().nbytes() == node.kv[0][0].numel() * 4


def test_prefix_cache_lru_eviction_and_release():
    cache = PrefixCache(budget_tokens=6)
    cache.insert([1, 2, 3], _kv(3), kv_start=0)
    cache.insert([1, 2, 3, 4, 5], _kv(2, 3), kv_start=3)
    cache.insert([1, 2, 3, 6, 7], _kv(2, 3), kv_start=3)
    cache.insert([8, 9], _kv(2), kv_start=0)
    cache.match([1, 2, 3, 4])  # touch: [8, 9] and [6, 7] are now the least recently used leaves
    assert cache.n_tokens == 9
    assert cache.evict() == 4 and cache.n_tokens == 5
    assert sorted(cache.sequences()) == [(1, 2, 3, 4, 5)]
    assert cache.evict(budget_tokens=0) == 5 and cache.n_tokens == 0 and cache.n_bytes == 0
    cache.insert([1, 2, 3], _kv(3), kv_start=0)
    cache.insert([1, 2, 3, 4], _kv(1, 3), kv_start=3)
    cache.insert([1, 2, 5], _kv(1, 2), kv_start=2)
    assert cache.release([1, 2, 3, 9]) == 0  # not entirely cached: nothing extends it
    assert cache.release([1, 2, 3]) == 2  # drops [3] and [4]; [1, 2] is still needed by [1, 2, 5]
    assert sorted(cache.sequences()) == [(1, 2, 5)] and cache.n_tokens == 3
    assert cache.clear() == 3 and cache.sequences() == []
    with pytest.raises(ValueError):
        PrefixCache(budget_tokens=-1)


def test_buffered_layer_writes_in_place_and_grows():
    k, v = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    kbuf, vbuf = torch.zeros(2, 3, 5, 5), torch.zeros(2, 3, 5, 5)
    kbuf[:, :, :4], vbuf[:, :, :4] = k, v
    layer = BufferedLayer(kbuf, vbuf, 4)
    assert layer.get_seq_length() == 4 and torch.equal(layer.keys, k)
    new = [torch.randn(2, 3, 1, 5) for _ in range(3)]
    out_k, out_v = layer.update(new[0], -new[0])
    assert out_k.data_ptr() == kbuf.data_ptr()  # written into the preallocated buffer
    for x in new[1:]:  # the second one no longer fits: the buffer is reallocated
        out_k, out_v = layer.update(x, -x)
    assert layer.get_seq_length() == 7
    assert torch.equal(out_k, torch.cat([k, *new], dim=2))
    assert torch.equal(out_v, torch.cat([v, *[-x for x in new]], dim=2))


def test_common_prefix_length():
    assert common_prefix_length([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix_length((1, 2), [1, 2, 3]) == 2
    assert common_prefix_length([], [1]) == 0
    assert common_prefix_length(list(range(1000)), list(range(999)) + [5]) == 999


# ---------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "n must be"),
        ({"prompt": ""}, "empty"),
        ({"top_p": 0.0}, "top_p"),
        ({"temperature": -1.0}, "temperature"),
        ({"stop": "</thinking>"}, "stop must be a list"),
        ({"prompt": [1, 10**9]}, "out of range"),
        ({"logprobs": -1}, "logprobs"),
        ({"max_tokens": 10**6}, "positions"),
    ],
)
def test_invalid_requests_name_the_problem(tiny, kwargs, message):
    gen = make_gen(tiny)
    fields = {"prompt": "Hello", "max_tokens": 2} | kwargs
    with pytest.raises(ValueError, match=message) as err:
        gen.generate([greedy("ok"), GenerationRequest(**fields)])
    assert "request 1" in str(err.value)


def test_invalid_constructor_arguments(tiny):
    with pytest.raises(ValueError, match="max_batch_size"):
        make_gen(tiny, max_batch_size=0)
    with pytest.raises(ValueError, match="unknown dtype"):
        make_gen(tiny, dtype="float8")


# ---------------------------------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_smollm2_greedy_matches_generate():
    model, tok = load_model("smollm2-135m-instruct", dtype="float32")
    gen = TransformersGenerator(model, tok, dtype="float32")
    prompt = gen.apply_chat_template([{"role": "user", "content": QUESTION}])
    ids = ids_of(tok, prompt)
    [res] = gen.generate([greedy(prompt, max_tokens=16)])
    ref = hf_greedy(model, ids, 16)
    assert res.extra["token_ids"][0] == ref
    assert res.completions[0].text == tok.decode(ref, skip_special_tokens=True)
