"""Evaluation metrics on scripted responses: pass@k / Test@N, accuracy and no-answer rates, diagnostics,
and MCTS-decode answer selection. No model is loaded."""

from __future__ import annotations

import json
import math

import pytest

from tests.fixtures.fake_generator import FakeGenerator, ToyMathTask, toy_problem
from treecot.backends.base import Completion
from treecot.evaluation.decode import (
    MCTSDecodeConfig,
    best_answers,
    default_ks,
    mcts_decode,
    pass_at_k,
    sample_metric_names,
    score_completions,
    test_at_n,
)
from treecot.search.tree import Tree
from treecot.tasks import get_task, make_problem

CORRECT = "<thinking>2 + 3 = 5</thinking>\n<answer>The answer is: \\boxed{5}</answer>"
WRONG = "<thinking>2 + 3 = 6</thinking>\n<answer>The answer is: \\boxed{6}</answer>"
NO_ANSWER = "<thinking>2 + 3 is a sum of two numbers and I am not sure"


@pytest.fixture(scope="module")
def gsm8k():
    return get_task("gsm8k"), make_problem("gsm8k", "What is 2 + 3?", "5")


# ------------------------------------------------------------------------------------------ pass@k


def test_pass_at_k_matches_the_combinatorial_definition():
    for n in range(1, 9):
        for c in range(n + 1):
            for k in range(1, n + 1):
                expected = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)
    assert pass_at_k(8, 0, 8) == 0.0 and pass_at_k(8, 1, 8) == 1.0


@pytest.mark.parametrize("args", [(0, 0, 1), (3, 4, 1), (3, 1, 4), (3, 1, 0), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(args):
    with pytest.raises(ValueError, match="pass_at_k needs"):
        pass_at_k(*args)


def test_default_ks_and_test_at_n():
    assert default_ks(1) == [1]
    assert default_ks(3) == [1, 2, 3]
    assert default_ks(8) == [1, 2, 4, 8]
    assert default_ks(32) == [1, 2, 4, 8, 16, 32]
    assert test_at_n([[False, True], [False, False], [True, True], [False, False]]) == 0.5
    with pytest.raises(ValueError):
        test_at_n([])


# ------------------------------------------------------------------------------------------ scoring


def test_greedy_scores_are_exact(gsm8k):
    task, problem = gsm8k
    assert score_completions(task, problem, [CORRECT])["accuracy"] == 1.0
    wrong = score_completions(task, problem, [WRONG])
    assert wrong["accuracy"] == 0.0 and wrong["no_answer_rate"] == 0.0
    missing = score_completions(task, problem, [NO_ANSWER])
    assert missing["accuracy"] == 0.0 and missing["no_answer_rate"] == 1.0
    assert set(missing) == set(sample_metric_names(task, 1))
    assert "pass@1" not in missing and "instruction_failure_rate" not in missing


def test_sampled_scores_report_pass_at_k(gsm8k):
    task, problem = gsm8k
    scores = score_completions(task, problem, [WRONG, CORRECT, NO_ANSWER])
    assert scores["accuracy"] == pytest.approx(1 / 3)  # pass@1: mean share of correct samples
    assert scores["no_answer_rate"] == pytest.approx(1 / 3)
    assert scores["pass@1"] == pytest.approx(1 / 3)
    assert scores["pass@2"] == pytest.approx(2 / 3)
    assert scores["pass@3"] == 1.0  # Test@3: solved at least once
    assert set(scores) == set(sample_metric_names(task, 3))
    none = score_completions(task, problem, [WRONG, WRONG])
    assert none["pass@2"] == 0.0 and none["accuracy"] == 0.0


def test_token_counts_limits_and_repetition(gsm8k):
    task, problem = gsm8k
    scores = score_completions(task, problem, [WRONG, CORRECT], n_tokens=[16, 7], max_new_tokens=16)
    assert scores["mean_tokens"] == pytest.approx(11.5)
    assert scores["hit_limit_rate"] == pytest.approx(0.5)
    loop = "<thinking>" + "we add the two numbers again and again. " * 20 + "</thinking>"
    assert score_completions(task, problem, [loop])["repetition_rate"] == 1.0
    assert score_completions(task, problem, [CORRECT])["repetition_rate"] == 0.0
    reflective = "Wait, " * 3 + "hmm. Alternatively, let me check again. Wait. " * 4 + CORRECT
    assert score_completions(task, problem, [reflective])["over_reflection_rate"] == 1.0
    with pytest.raises(ValueError, match="token counts"):
        score_completions(task, problem, [CORRECT], n_tokens=[1, 2])
    with pytest.raises(ValueError, match="no completion"):
        score_completions(task, problem, [])


def test_instruction_task_scores():
    task = get_task("ifeval")
    problem = make_problem(
        "ifeval",
        "Write two sentences about cats. Do not use any commas.",
        json.dumps({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}),
    )
    ok = score_completions(task, problem, ["Cats are calm. They purr all day."])
    assert ok["accuracy"] == 1.0 and ok["prompt_loose"] == 1.0
    assert ok["inst_strict"] == [1, 1] and ok["instruction_failure_rate"] == 0.0
    bad = score_completions(task, problem, ["Cats, dogs and birds."])
    assert bad["accuracy"] == 0.0 and bad["inst_loose"] == [0, 1]
    buried = "<think>" + " ".join(f"step {i} about cats." for i in range(200)) + "</think>Cats purr."
    assert score_completions(task, problem, [buried])["instruction_failure_rate"] == 1.0
    both = score_completions(task, problem, ["Cats purr.", "Cats, dogs."])
    assert both["inst_strict"] == [1, 2] and both["pass@2"] == 1.0 and both["accuracy"] == 0.5


def test_blocksworld_scores():
    task = get_task("blocksworld")
    problem = task.load("test", limit=1)[0]
    plan = problem["reference"]
    assert score_completions(task, problem, [f"<answer>{plan}</answer>"])["accuracy"] == 1.0
    reversed_plan = "\n".join(reversed(plan.splitlines()))
    scores = score_completions(task, problem, [f"<answer>{reversed_plan}</answer>", "I cannot plan this."])
    assert scores["accuracy"] == 0.0 and scores["no_answer_rate"] == 0.5


# ------------------------------------------------------------------------------------------ MCTS decode


def _tree_with_answers(rewards_and_correct):
    tree = Tree(problem=toy_problem())
    thought = tree.add_node(0, "thinking", tag="thinking", text="think")
    for i, (reward, correct) in enumerate(rewards_and_correct):
        tree.add_node(
            thought.id,
            "answer",
            tag="answer",
            text=f"The answer is: \\boxed{{{i}}}",
            terminal=True,
            reward=reward,
            correct=correct,
            visits=1,
        )
    return tree


def test_best_answers_follow_the_value_never_the_verifier():
    tree = _tree_with_answers([(0.2, True), (0.9, False), (0.5, True), (0.9, False)])
    best = best_answers(tree, 1)[0]
    assert best.reward == 0.9 and best.correct is False and best.id == 3  # tie on value: earlier node
    tree.nodes[5].visits = 3
    assert best_answers(tree, 1)[0].id == 5  # tie on value: more visits first
    assert [n.id for n in best_answers(tree, 3)] == [5, 3, 4]
    assert best_answers(Tree(problem=toy_problem()), 2) == []


def _confidence_generator(confident_answer: str, doubtful_answer: str) -> FakeGenerator:
    """Answer samples alternate: sample 0 confident, sample 1 doubtful (by their top-k log-probs)."""

    def respond(request, i):
        if request.prompt.endswith("\\boxed{"):
            text, lp, alt = (confident_answer, -0.01, -6.0) if i % 2 == 0 else (doubtful_answer, -2.0, -0.2)
        else:
            text, lp, alt = "2 + 3 is what we need.", -0.5, -1.5
        for stop in request.stop:
            text = text.split(stop)[0]
        n = len(text.split())
        return Completion(text, n, "stop", [lp] * n, [[max(lp, alt), min(lp, alt)] for _ in range(n)])

    return FakeGenerator(respond=respond, model_id="fake-confidence")


@pytest.mark.parametrize("confident", ["5", "6"])
def test_mcts_decode_picks_the_most_confident_answer(confident):
    doubtful = "6" if confident == "5" else "5"
    problem = toy_problem("What is 2 + 3?", "5")
    gen = _confidence_generator(f"{confident}}}", f"{doubtful}}}")
    config = MCTSDecodeConfig(max_rollouts=4, max_depth=3, max_node_tokens=16, seed=0)
    (result,) = mcts_decode([problem], ToyMathTask(), gen, config, n_answers=2)
    assert f"\\boxed{{{confident}}}" in result.texts[0]  # chosen by confidence even when wrong
    assert result.values[0] >= result.values[1]
    assert len(result.texts) == 2 and result.tree.stats["rollouts"] == 4
    assert all(r.value_mode == "confidence" for r in [config.to_mcts_config()])
    again = mcts_decode(
        [problem], ToyMathTask(), _confidence_generator(f"{confident}}}", f"{doubtful}}}"), config
    )
    assert again[0].texts == result.texts[:1]  # deterministic for a seed


def test_mcts_decode_validates_its_budget():
    with pytest.raises(ValueError, match="max_rollouts >= 4"):
        mcts_decode(
            [toy_problem()], ToyMathTask(), FakeGenerator(), MCTSDecodeConfig(max_rollouts=2), n_answers=4
        )
    with pytest.raises(ValueError, match="n_answers"):
        mcts_decode([toy_problem()], ToyMathTask(), FakeGenerator(), n_answers=0)
