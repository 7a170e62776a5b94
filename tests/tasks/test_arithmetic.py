"""The synthetic arithmetic task: deterministic, disjoint splits, correct golds, math verification."""

import re

import pytest

from treecot.tasks import get_task, task_names
from treecot.tasks.arithmetic import _evaluate


def test_registered_and_deterministic():
    assert "arithmetic" in task_names()
    a, b = get_task("arithmetic"), get_task("arithmetic")
    assert a.load("train", limit=20).to_list() == b.load("train", limit=20).to_list()
    assert a.load("test", limit=5).to_list() == a.load("test", limit=50).to_list()[:5], "a prefix"
    other = get_task("arithmetic", seed=1).load("train", limit=20)["question"]
    assert other != a.load("train", limit=20)["question"]
    assert len(a.load("test")) == 500 and len(a.load("train", n=30)) == 30


def test_splits_are_disjoint_and_ids_unique():
    task = get_task("arithmetic")
    train, test = task.load("train"), task.load("test")
    assert not set(train["question"]) & set(test["question"])
    assert len(set(train["id"])) == len(train) and len(set(test["id"])) == len(test)
    assert {m["split"] for m in test["meta"]} == {"test"}


def test_golds_match_the_shown_solution():
    task = get_task("arithmetic")
    for p in task.load("train", limit=200):
        expr, value = p["meta"]["solution"].split(" = ")
        assert value == p["reference"]
        a = [int(x) for x in re.findall(r"\d+", expr)]
        ops = re.findall(r"[-+*/]", expr)
        assert p["meta"]["steps"] == len(ops) and all(n >= 1 for n in a)
        assert int(p["reference"]) >= 0, p["question"]
        assert all(str(n) in p["question"] for n in a if p["meta"]["operations"] != "div" or n != a[-1])


def test_one_step_only_and_bad_arguments():
    task = get_task("arithmetic", max_steps=1)
    assert {m["steps"] for m in task.load("train", limit=100)["meta"]} == {1}
    assert {m["steps"] for m in get_task("arithmetic").load("train", limit=100)["meta"]} == {1, 2}
    with pytest.raises(ValueError, match="max_steps must be 1 or 2"):
        get_task("arithmetic", max_steps=3)
    with pytest.raises(ValueError, match="max_value must be an integer >= 3"):
        get_task("arithmetic", max_value=2)
    with pytest.raises(ValueError, match="no split 'validation'"):
        get_task("arithmetic").load("validation")
    with pytest.raises(ValueError, match="limit must be >= 0"):
        get_task("arithmetic").load("test", limit=-1)


def test_evaluate_follows_precedence():
    values = {"a": 3, "b": 4, "d": 5, "e": 2, "p": 20}
    assert _evaluate("a + b - e", values) == 5
    assert _evaluate("d * a + b", values) == 19
    assert _evaluate("p / d", values) == 4
    assert _evaluate("b - e", values) == 2


def test_verified_like_gsm8k():
    task = get_task("arithmetic")
    p = task.load("test", limit=1)[0]
    gold = p["reference"]
    assert task.verify(f"So the total is {gold}. The answer is: \\boxed{{{gold}}}", p).correct
    wrong = task.verify(f"The answer is: \\boxed{{{int(gold) + 1}}}", p)
    assert wrong.answered and not wrong.correct
    assert not task.verify("I am not sure.", p).answered
    assert "\\boxed{" in task.prompt(p)[0]["content"] and task.prompt(p)[1]["content"] == p["question"]
