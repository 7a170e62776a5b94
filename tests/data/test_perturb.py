"""SkyThought perturbations: rates, seeds, logs, and the final answer always untouched."""

import json
import random

import pytest

from treecot.data.perturb import (
    KINDS,
    corrupt_digits,
    delete_steps,
    insert_steps,
    perturb_rows,
    remove_keywords,
    shuffle_steps,
    split_trace,
)

ANSWER = r"<answer>The answer is: \boxed{42}</answer>"
TAGGED = "\n".join([f"<thinking>step {i}: 1{i} + 2{i} = 3{i}</thinking>" for i in range(10)] + [ANSWER])
DISTILLED = "\n\n".join(
    [f"Paragraph {i}. Wait, 4{i} is even." for i in range(6)] + [r"**Final Answer** \boxed{7}"]
)


def row(pid, text):
    return {
        "problem_id": pid,
        "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": text}],
    }


def test_split_trace_tagged_and_paragraphs():
    t = split_trace(TAGGED)
    assert len(t.steps) == 10 and t.tail == ANSWER and t.join() == TAGGED
    d = split_trace(DISTILLED)
    assert len(d.steps) == 6 and d.tail.startswith("**Final Answer**") and d.join() == DISTILLED
    plain = "a\n\nb\n\n\n\nc"
    p = split_trace(plain)
    assert p.steps == ["a", "b"] and p.tail == "c" and p.join() == plain


@pytest.mark.parametrize("rate", [0.2, 0.5, 1.0])
def test_digits_rate_and_answer_untouched(rate):
    numbers = 40  # 10 steps × 4 numbers ("step i: 1i + 2i = 3i")
    hits = []
    for seed in range(20):
        new, log = corrupt_digits(TAGGED, rate, random.Random(seed))
        assert new.endswith(ANSWER)
        assert all(e["from"] != e["to"] for e in log)
        hits.append(len(log) / numbers)
    assert abs(sum(hits) / len(hits) - rate) < 0.08
    assert corrupt_digits(TAGGED, 0.0, random.Random(0)) == (TAGGED, [])


def test_keywords_removed_at_rate():
    new, log = remove_keywords(DISTILLED, 1.0, random.Random(0))
    assert "wait" not in new.lower() and len(log) == 6 and new.endswith(r"\boxed{7}")
    counts = [len(remove_keywords(DISTILLED, 0.5, random.Random(s))[1]) for s in range(40)]
    assert 2.3 < sum(counts) / len(counts) < 3.7


def test_structure_perturbations():
    rng = random.Random(0)
    new, log = shuffle_steps(TAGGED, 1.0, rng)
    t = split_trace(new)
    assert sorted(t.steps) == sorted(split_trace(TAGGED).steps) and t.steps != split_trace(TAGGED).steps
    assert t.tail == ANSWER and len(log) == 10
    new, log = delete_steps(TAGGED, 0.3, random.Random(0))
    assert len(split_trace(new).steps) == 7 and len(log) == 3 and new.endswith(ANSWER)
    donors = ["<thinking>foreign A</thinking>\n<thinking>foreign B</thinking>\n" + ANSWER]
    new, log = insert_steps(TAGGED, 0.2, random.Random(0), donors)
    assert len(split_trace(new).steps) == 12 and "foreign" in new and new.endswith(ANSWER)
    assert {e["text"] for e in log} <= {"<thinking>foreign A</thinking>", "<thinking>foreign B</thinking>"}


def test_perturb_rows_logs_and_is_seeded():
    rows = [row("p1", TAGGED), row("p2", DISTILLED)]
    for kind in ("digits", "keywords", "shuffle", "delete", "insert"):
        a = perturb_rows(rows, kind, 0.5, seed=3)
        b = perturb_rows(rows, kind, 0.5, seed=3)
        c = perturb_rows(rows, kind, 0.5, seed=4)
        assert a == b, kind
        assert [r["messages"] for r in a] != [r["messages"] for r in c] or kind == "keywords"
        for r in a:
            p = r["perturbation"]
            assert p["kind"] == kind and p["rate"] == 0.5 and p["seed"] == 3
            log = json.loads(p["log"])
            assert isinstance(log, list) and p["n_changed"] == sum("unchanged" not in e for e in log)
        assert rows[0]["messages"][-1]["content"] == TAGGED, "inputs are not modified"


def test_a_row_left_as_it_was_is_kept_and_says_why():
    rows = [row("p1", TAGGED), row("p2", DISTILLED)]
    for kind in ("digits", "keywords", "shuffle", "delete", "insert"):
        out = perturb_rows(rows, kind, 0.0, seed=0)
        assert [r["messages"] for r in out] == [r["messages"] for r in rows], kind
        for r in out:
            p = r["perturbation"]
            log = json.loads(p["log"])
            assert p["n_changed"] == 0 and len(log) == 1 and "rate 0" in log[0]["unchanged"], (kind, log)


def test_wrong_answer_perturbation():
    rows = [row("p1", TAGGED), row("p2", DISTILLED)]
    out = perturb_rows(rows, "wrong_answer", 1.0, wrong_traces={"p1": ["<answer>\\boxed{41}</answer>"]})
    assert out[0]["messages"][-1]["content"] == "<answer>\\boxed{41}</answer>"
    assert out[0]["perturbation"]["n_changed"] == 1
    assert out[1]["messages"][-1]["content"] == DISTILLED and out[1]["perturbation"]["n_changed"] == 0
    assert "no failed trace" in out[1]["perturbation"]["log"]
    with pytest.raises(ValueError, match="needs wrong_traces"):
        perturb_rows(rows, "wrong_answer", 1.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown perturbation 'swap'"):
        perturb_rows([], "swap")
    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        perturb_rows([row("p", TAGGED)], "delete", 1.5)
    assert set(KINDS) == {"wrong_answer", "digits", "keywords", "shuffle", "delete", "insert"}
