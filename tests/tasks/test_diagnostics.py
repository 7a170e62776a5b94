"""Diagnostics of formalistic long-time thinking on crafted texts (treecot.tasks.diagnostics)."""

from __future__ import annotations

import random

import pytest

from treecot import tasks as tasks_pkg
from treecot.backends.base import Completion
from treecot.tasks.answers import extract_answer, split_sections
from treecot.tasks.base import Task, Verdict, make_problem
from treecot.tasks.diagnostics import (
    DiagnosticsConfig,
    approx_token_count,
    approx_tokens,
    diagnose,
    find_loops,
    summarize,
)

HEALTHY_PATH = (
    "<sub-task>Firstly, I need to break down this task.</sub-task>\n"
    "<thinking>Natalia sold 48 clips in April and half as many in May, so she sold 48 / 2 = 24 in May. "
    "Altogether she sold 48 + 24 = 72 clips.</thinking>\n"
    "<double-check>Let's check the result: 24 is half of 48, and 24 + 48 = 72.</double-check>\n"
    "<answer>The answer is: \\boxed{72}</answer>"
)

NUMBERED_LIST = "\n".join(
    f"{i}. Add {3 * i} apples to the basket, which now holds {3 * i * (i + 1) // 2}." for i in range(1, 25)
)


# --------------------------------------------------------------------------------------------------
# test doubles: tasks of each domain whose verifiers record what they were asked


class FakeMathTask(Task):
    name = "fake-math"
    domain = "math"

    def __init__(self, answered: bool = True, correct: bool = False):
        self.answered, self.correct, self.calls = answered, correct, []

    def load(self, split="test", limit=None):
        raise NotImplementedError

    def verify(self, completion, problem):
        self.calls.append((completion, problem["id"]))
        return Verdict(correct=self.correct, answered=self.answered, extracted=13 if self.answered else None)


class InstructionTask(Task):
    name = "fake-instructions"
    domain = "instructions"

    def load(self, split="test", limit=None):
        raise NotImplementedError

    def verify(self, completion, problem):
        return Verdict(correct=bool(completion.strip()), answered=bool(completion.strip()))


def _words(n: int, seed: int = 0) -> str:
    """n distinct-ish words: prose that contains no loop."""
    rng = random.Random(seed)
    vocab = "the apple basket holds several many red green ripe fruit we count sum each pile".split()
    return " ".join(f"{rng.choice(vocab)}{rng.randint(0, 999)}" for _ in range(n))


# --------------------------------------------------------------------------------------------------
# healthy outputs: every flag false


def test_healthy_tagged_path_has_no_flags():
    d = diagnose(HEALTHY_PATH)
    assert d["answer"] == "72"
    flags = ("no_answer", "hit_token_limit", "repetition", "over_reflection")
    assert {k: d[k] for k in flags} == dict.fromkeys(flags, False)
    assert d["instruction_failure"] is None and d["correct"] is None
    assert d["repetition_score"] == 0.0 and d["reflection_markers"] == 0
    assert d["thinking_tokens"] > 5 * d["answer_tokens"] > 0
    assert d["n_tokens"] == approx_token_count(HEALTHY_PATH)


def test_healthy_plain_cot_with_answer():
    text = "Natalia sold 48 clips in April.\nIn May she sold half: 48 / 2 = 24.\nSo the answer is 72."
    d = diagnose(text)
    assert (d["no_answer"], d["repetition"], d["over_reflection"], d["answer"]) == (False, False, False, "72")
    # the answer section starts at the line with the final-answer statement
    assert d["answer_tokens"] == approx_token_count("So the answer is 72.")
    assert d["thinking_tokens"] == approx_token_count(text) - d["answer_tokens"]


# --------------------------------------------------------------------------------------------------
# repetition


def test_same_sentence_ten_times_is_a_loop():
    sentence = "Let me compute the total number of apples in the basket now."
    d = diagnose("We start: " + " ".join([sentence] * 10))
    unit = approx_tokens(sentence.lower())
    assert d["repetition"] is True
    assert d["loop_unit_tokens"] == len(unit) and d["loop_repeats"] == 10.0
    assert d["repeated_text"] == " ".join(unit)
    # 9 of the 10 copies are redundant, out of 10 copies plus "We start:"
    assert d["repetition_score"] == pytest.approx(9 * len(unit) / (10 * len(unit) + 3))


def test_loop_unit_may_be_a_rotation_of_the_sentence():
    sentence = "Let me compute the total number of apples in the basket now."
    d = diagnose("We start. " + " ".join([sentence] * 10))
    # "We start." ends with the same "." as every copy, so the periodic stretch begins one token early
    unit = approx_tokens(sentence.lower())
    assert d["repeated_text"] == " ".join(unit[-1:] + unit[:-1])
    assert d["loop_repeats"] == pytest.approx(10 + 1 / len(unit), abs=0.01)


def test_token_loop_and_loop_without_spaces():
    d = diagnose("The sum is 1 + " + "1 " * 60)
    assert d["repetition"] and d["loop_unit_tokens"] == 1 and d["loop_repeats"] >= 60
    assert diagnose("so the answer is " + ")" * 400)["repetition"], "one long punctuation run still loops"
    assert diagnose("x" * 5000)["repetition"], "one long word-character run still loops"


def test_loop_ignores_case_and_catches_multi_sentence_cycles():
    cycle = "Let me add the two numbers. Then I divide by three. Then I check the sum."
    d = diagnose(_words(40) + " " + " ".join([cycle, cycle.upper(), cycle] * 2))
    assert d["repetition"] and d["loop_unit_tokens"] == len(approx_tokens(cycle))
    assert d["loop_repeats"] == 6.0


def test_long_ngram_repeated_apart_is_a_loop_and_the_count_is_configurable():
    paragraph = _words(60, seed=1)
    text = " ".join(
        [_words(30, seed=2), paragraph, _words(30, seed=3), paragraph, _words(30, seed=4), paragraph]
    )
    d = diagnose(text)
    assert d["repetition"] and d["loop_unit_tokens"] == 50 and d["loop_repeats"] == 3
    assert d["repetition_score"] == pytest.approx(2 * 60 / len(approx_tokens(text)))
    assert not diagnose(text, config=DiagnosticsConfig(ngram_min_count=4))["repetition"]
    assert not diagnose(text, config=DiagnosticsConfig(ngram_size=61))["repetition"]


def test_short_repeats_below_the_thresholds_are_not_loops():
    # an 8-token sentence three times = 24 tokens < loop_min_tokens (32); four times = 32
    assert len(approx_tokens("I add one more to the total.")) == 8
    assert not diagnose("I add one more to the total. " * 3 + "Done.")["repetition"]
    assert diagnose("I add one more to the total. " * 4 + "Done.")["repetition"]
    d = diagnose("I add one more to the total. " * 3, config=DiagnosticsConfig(loop_min_tokens=20))
    assert d["repetition"] and d["loop_repeats"] == 3.0


@pytest.mark.parametrize(
    "text",
    [
        NUMBERED_LIST,
        "\n".join(f"Step {i}: x_{i} = x_{i - 1} + {i} = {i * (i + 1) // 2}." for i in range(1, 40)),
        "| a | b | c |\n|---|---|---|\n" + "\n".join(f"| {i} | {i * i} | {i**3} |" for i in range(20)),
        "def f(x):\n    if x:\n        for i in x:\n            if i:\n                return {'a': {'b': {}}}\n"
        + "=" * 120
        + "\n1 + 1 + 1 + 1 = 4",
    ],
    ids=["numbered-list", "step-by-step", "markdown-table", "code-and-rule"],
)
def test_legitimate_structured_text_is_not_a_loop(text):
    d = diagnose(text)
    assert d["repetition"] is False and d["repetition_score"] == 0.0 and d["repeated_text"] is None


def test_tree_path_with_several_reflections_is_not_a_loop():
    cycles = []
    for k in range(3):
        cycles.append(
            f"<thinking>{_words(30, seed=10 + k)}</thinking>\n<answer>The answer is: \\boxed{{{k}}}</answer>\n"
            "<reflection>Wait! Something is wrong, let's think again.</reflection>\n"
            "<thinking>The previous answer is wrong, I need to rethink this question.</thinking>\n"
        )
    path = "<sub-task>Firstly, I need to break down this task.</sub-task>\n" + "".join(cycles)
    path += "<answer>The answer is: \\boxed{7}</answer>"
    d = diagnose(path)
    assert d["repetition"] is False and d["answer"] == "7"
    assert d["reflection_markers"] == 9  # "Wait", "let's think again", "I need to rethink" per cycle


def test_find_loops_on_token_lists():
    assert find_loops([])["repetition"] is False
    assert find_loops(["a", "b"] * 20)["loop_unit_tokens"] == 2
    rng = random.Random(0)
    mixed = [w.upper() if rng.random() < 0.5 else w for w in ["the", "sum"] * 30]
    assert find_loops(mixed)["repetition"] is False, "find_loops compares tokens exactly"
    assert diagnose(" ".join(mixed))["repetition"] is True, "diagnose lowercases first"


# --------------------------------------------------------------------------------------------------
# over-reflection


def test_reflection_markers_are_counted_without_overlap_and_on_word_boundaries():
    text = (
        "Wait, x = 3. Alternatively, x = 4. Let me check again: 4 * 2 = 8. Hmm, but wait, let's double-check."
    )
    assert diagnose(text)["reflection_markers"] == 6
    assert (
        diagnose("The waitress awaited the alternative: we checked it again. I rethought it.")[
            "reflection_markers"
        ]
        == 0
    )


def test_over_reflective_text():
    text = " ".join(
        f"Wait, maybe x = {i}. Alternatively, x could be {i + 1}. Let me check again: {i} * 3 = {3 * i}."
        for i in range(12)
    )
    d = diagnose(text + " The answer is 7.")
    assert d["reflection_markers"] == 36
    assert d["reflections_per_1k"] == pytest.approx(1000 * 36 / d["n_tokens"], abs=1e-3)
    assert d["over_reflection"] is True
    assert d["repetition"] is False, "different numbers in each round: reflective, but not a loop"
    assert not diagnose(text, config=DiagnosticsConfig(reflection_threshold=200.0))["over_reflection"]


def test_one_reflection_in_a_short_text_is_not_over_reflection():
    d = diagnose("Wait, 3 + 4 = 7, not 8. The answer is 7.")
    assert d["reflections_per_1k"] > 15 and d["over_reflection"] is False, "needs min_reflection_markers"
    assert diagnose(
        "Wait, 3 + 4 = 7, not 8. The answer is 7.", config=DiagnosticsConfig(min_reflection_markers=1)
    )["over_reflection"]


# --------------------------------------------------------------------------------------------------
# answers, sections and the token limit


@pytest.mark.parametrize(
    "text",
    [
        "I think we should add the numbers 3 and 4 together.",
        "<thinking>3 + 4 = 7</thinking>\n<answer>   </answer>",
        "<thinking>3 + 4 = 7</thinking>\n<answer>The answer is: \\boxed{}</answer>",
        "<think>3 + 4 = 7, so the answer is 7 and then we",
        "<think>3 + 4 = 7</think>\n",
        "The answer is \\boxed{3",
        "<answer>\\boxed{ }</answer>",
        "",
    ],
    ids=[
        "plain",
        "empty-tag",
        "empty-box",
        "unclosed-think",
        "nothing-after-think",
        "unbalanced",
        "empty-box-only",
        "empty",
    ],
)
def test_no_answer(text):
    d = diagnose(text)
    assert d["no_answer"] is True and d["answer"] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{\\frac{1}{2}} is it", "\\frac{1}{2}"),
        ("first \\boxed{3}, then \\fbox{ 5 }", "5"),
        ("The final answer is: 42.", "42"),
        ("Final answer: x = 2", "x = 2"),
        ("<answer>(unstack a b)\n(put-down a)</answer>", "(unstack a b)\n(put-down a)"),
        ("<answer>The answer is: 18", "18"),
        ("<answer>wrong: \\boxed{5}</answer><reflection>Wait!</reflection><answer>\\boxed{6}</answer>", "6"),
        ("<think>maybe \\boxed{1}</think>The answer is \\boxed{2}", "2"),
        ("<|begin_of_thought|>hmm<|end_of_thought|><|begin_of_solution|>\\boxed{9}<|end_of_solution|>", "9"),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_split_sections():
    thinking, answer = split_sections(HEALTHY_PATH)
    assert answer == "The answer is: \\boxed{72}" and thinking.endswith("</double-check>\n")
    assert split_sections("<think>abc") == ("<think>abc", None)
    assert split_sections("an essay\nthe answer is here", instructions=True) == (
        "",
        "an essay\nthe answer is here",
    )
    assert split_sections("an essay\nthe answer is here") == ("an essay\n", "the answer is here")


def test_hit_token_limit():
    text = " ".join(["word"] * 20) + " and"
    assert diagnose(text, finish_reason="length")["hit_token_limit"] is True
    assert diagnose(text, finish_reason="stop")["hit_token_limit"] is False
    assert diagnose(text, max_tokens=21)["hit_token_limit"] is True
    assert diagnose(text, max_tokens=22)["hit_token_limit"] is False
    with pytest.raises(ValueError, match="max_tokens must be a positive integer"):
        diagnose(text, max_tokens=0)


def test_completion_objects_carry_finish_reason_and_token_count():
    d = diagnose(Completion(text="3 + 4 = 7, so", n_tokens=512, finish_reason="length"))
    assert d["hit_token_limit"] and d["n_tokens"] == 512 and d["no_answer"]
    d = diagnose(Completion(text="The answer is 7", n_tokens=5), finish_reason="length", max_tokens=6)
    assert d["hit_token_limit"] and not d["no_answer"]
    with pytest.raises(TypeError, match="completion must be a str or a Completion"):
        diagnose(b"bytes")


def test_real_tokenizer_counts():
    from treecot.models import load_tokenizer

    tok = load_tokenizer()
    d = diagnose(HEALTHY_PATH, tokenizer=tok)
    thinking, answer = split_sections(HEALTHY_PATH)
    assert d["n_tokens"] == len(tok.encode(HEALTHY_PATH, add_special_tokens=False))
    assert d["answer_tokens"] == len(tok.encode(answer, add_special_tokens=False))
    assert d["thinking_tokens"] == len(tok.encode(thinking, add_special_tokens=False))
    assert d["n_tokens"] != approx_token_count(HEALTHY_PATH)
    assert diagnose(HEALTHY_PATH, tokenizer=tok, max_tokens=d["n_tokens"])["hit_token_limit"]
    with pytest.raises(TypeError, match="tokenizer must have an `encode` method"):
        diagnose("x", tokenizer=object())


def test_approx_tokens():
    assert approx_tokens("The answer is \\boxed{42}.") == [
        "The",
        "answer",
        "is",
        "\\",
        "boxed",
        "{",
        "42",
        "}.",
    ]
    assert approx_tokens("-" * 10) == ["----", "----", "--"]
    assert approx_token_count("a" * 40) == 3 and approx_token_count("") == 0


# --------------------------------------------------------------------------------------------------
# tasks: verifier, instruction failure


def test_task_and_problem_use_the_verifier():
    task = FakeMathTask(answered=False)
    problem = make_problem("fake-math", "What is 6 + 7?", "13")
    d = diagnose("The answer is \\boxed{13}", task, problem=problem)
    assert task.calls == [("The answer is \\boxed{13}", problem["id"])]
    assert d["no_answer"] is True and d["answer"] is None and d["correct"] is False
    d = diagnose("no box at all", FakeMathTask(answered=True, correct=True), problem=problem)
    assert (d["no_answer"], d["correct"], d["answer"]) == (False, True, "13")


def test_task_from_registry_and_problem(monkeypatch):
    monkeypatch.setitem(
        tasks_pkg._REGISTRY, "fake-instructions", "tests.tasks.test_diagnostics:InstructionTask"
    )
    problem = make_problem("fake-instructions", "Write one word.", "{}")
    assert diagnose("", problem=problem)["no_answer"] is True  # task taken from problem["task"]
    d = diagnose("Hello", "fake-instructions")
    assert d["instruction_failure"] is False and d["correct"] is None
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        diagnose("x", "nope")
    with pytest.raises(TypeError, match="task must be a task name"):
        diagnose("x", 3)


def test_instruction_failure():
    task = InstructionTask()
    long_thinking = f"<think>{_words(300)}</think>\n"
    d = diagnose(long_thinking + "Paris.", task)
    assert d["instruction_failure"] is True and d["thinking_tokens"] == 300 + 3 and d["answer_tokens"] == 2
    assert diagnose(f"<think>{_words(300)}", task)["instruction_failure"] is True, "no answer section"
    essay = _words(100)
    assert diagnose(long_thinking + essay, task)["instruction_failure"] is False, "answer long enough"
    assert diagnose("<think>Keep it short.</think>\nParis.", task)["instruction_failure"] is False
    d = diagnose(f"Answer: {essay}\nThe answer is here, at the end.", task)
    assert d["instruction_failure"] is False and d["thinking_tokens"] == 0, "plain responses are all answer"
    assert diagnose(long_thinking + "Paris.", FakeMathTask())["instruction_failure"] is None
    relaxed = DiagnosticsConfig(instruction_ratio=500.0)
    assert diagnose(long_thinking + "Paris.", task, config=relaxed)["instruction_failure"] is False


# --------------------------------------------------------------------------------------------------
# edge cases


def test_empty_input():
    d = diagnose("")
    assert d["n_tokens"] == d["thinking_tokens"] == d["answer_tokens"] == d["reflection_markers"] == 0
    assert d["reflections_per_1k"] == 0.0 and d["repetition_score"] == 0.0
    assert (d["no_answer"], d["repetition"], d["over_reflection"], d["hit_token_limit"]) == (
        True,
        False,
        False,
        False,
    )


def test_one_megabyte_inputs():
    prose = _words(200_000, seed=5)[:1_000_000]
    d = diagnose(prose + " The answer is \\boxed{1}.")
    assert d["repetition"] is False and d["answer"] == "1" and d["n_tokens"] > 100_000
    loop = (HEALTHY_PATH[:200] + " ") * (1_000_000 // 201)
    d = diagnose(loop)
    assert d["repetition"] is True and d["repetition_score"] > 0.99
    d = diagnose("Wait. " * 170_000)
    assert d["over_reflection"] and d["reflection_markers"] == 170_000 and d["repetition"]


def test_config_validation():
    with pytest.raises(ValueError, match="loop_max_period must be >= 1"):
        DiagnosticsConfig(loop_max_period=0)
    with pytest.raises(ValueError, match="one occurrence is no repeat"):
        DiagnosticsConfig(ngram_min_count=1)
    with pytest.raises(ValueError, match="reflection_markers must not be empty"):
        DiagnosticsConfig(reflection_markers=())
    with pytest.raises(ValueError, match="must be >= 0"):
        DiagnosticsConfig(reflection_threshold=-1)
    custom = DiagnosticsConfig(reflection_markers=(r"\bhmm\b",))
    assert diagnose("Wait, hmm. Hmm.", config=custom)["reflection_markers"] == 2


# --------------------------------------------------------------------------------------------------
# summarize


def test_summarize_rates_and_means():
    rows = [
        diagnose(HEALTHY_PATH),
        diagnose("Let me think about it. " * 20, finish_reason="length"),
        diagnose("<think>" + "Wait, hmm. " * 10 + "</think> Paris.", InstructionTask()),
        diagnose(
            "The answer is \\boxed{13}", FakeMathTask(correct=True), problem=make_problem("m", "q", "13")
        ),
    ]
    s = summarize(rows)
    assert s["n"] == 4
    assert s["no_answer_rate"] == 0.25
    assert s["repetition_rate"] == 0.5  # the looped sentence and the looped "wait, hmm."
    assert s["over_reflection_rate"] == 0.25
    assert s["hit_limit_rate"] == 0.25
    assert s["instruction_failure_rate"] == 0.0, "only the instruction row counts"
    assert s["accuracy"] == 1.0, "only rows with a known verdict count"
    assert s["mean_tokens"] == pytest.approx(sum(r["n_tokens"] for r in rows) / 4)
    assert s["mean_repetition_score"] == pytest.approx(sum(r["repetition_score"] for r in rows) / 4)
    assert s["mean_answer_tokens"] == pytest.approx(sum(r["answer_tokens"] for r in rows) / 4)


def test_summarize_empty_and_malformed():
    s = summarize([])
    assert s["n"] == 0 and s["no_answer_rate"] is None and s["mean_tokens"] is None
    with pytest.raises(KeyError, match=r"diagnosis #1 lacks \['no_answer'\]"):
        summarize([diagnose("x"), {k: v for k, v in diagnose("x").items() if k != "no_answer"}])


# --------------------------------------------------------------------------------------------------
# benchmarks/_common.py (the result writer shared by benchmarks; tested here, it has no test file)


def test_write_results(tmp_path):
    import json

    from benchmarks._common import write_results

    path = write_results("demo", {"checks_per_s": 12.5, "n": 3, "worst": "math: x"}, "python -m x", tmp_path)
    record = json.loads(path.read_text())
    assert path == tmp_path / "demo.json"
    assert {k: record[k] for k in ("checks_per_s", "n", "worst", "command")} == {
        "checks_per_s": 12.5,
        "n": 3,
        "worst": "math: x",
        "command": "python -m x",
    }
    assert record["date"].endswith("+00:00") and record["machine"]["cores"] >= 1
    assert record["machine"]["python"].count(".") == 2 and record["machine"]["torch"].startswith("2.")
    with pytest.raises(TypeError, match="figure 'nested' is a dict"):
        write_results("demo", {"nested": {"a": 1}}, "cmd", tmp_path)
    with pytest.raises(ValueError, match="figure name 'date' is reserved"):
        write_results("demo", {"date": 1}, "cmd", tmp_path)
    with pytest.raises(ValueError, match="results must be finite"):
        write_results("demo", {"rate": float("nan")}, "cmd", tmp_path)
    with pytest.raises(ValueError, match="command must say how to reproduce"):
        write_results("demo", {}, " ", tmp_path)
    with pytest.raises(ValueError, match="benchmark name '../x'"):
        write_results("../x", {}, "cmd", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json"], "no temp files left behind"


# --------------------------------------------------------------------------------------------------
# the real tasks


def test_real_math_task_verifies_when_a_problem_is_given():
    problem = make_problem("gsm8k", "How many clips did Natalia sell altogether?", "72")
    d = diagnose(HEALTHY_PATH, "gsm8k", problem=problem)
    assert (d["no_answer"], d["correct"], d["answer"], d["instruction_failure"]) == (False, True, "72", None)
    d = diagnose(HEALTHY_PATH.replace("{72}", "{73}"), problem=problem)  # task from problem["task"]
    assert (d["no_answer"], d["correct"]) == (False, False)


def test_real_instruction_task_sections_match_its_checkers():
    from treecot.tasks.answers import extract_response

    texts = [
        HEALTHY_PATH,
        "<think>plan</think>\nMy response, in full.",
        "<think>never finished",
        "a plain response\nthe answer is here",
        "<answer>first</answer> then <answer>second",
        "<|begin_of_thought|>x<|end_of_thought|><|begin_of_solution|>sol<|end_of_solution|>",
    ]
    for text in texts:
        _, answer = split_sections(text, instructions=True)
        assert (answer or "").strip() == extract_response(text), text
    d = diagnose(f"<think>{_words(300)}</think>\nParis.", "ifeval")
    assert d["instruction_failure"] is True and d["correct"] is None


def test_real_planning_task_answer_is_the_plan():
    from treecot.tasks.blocksworld import BlocksworldTask

    problem = BlocksworldTask(min_blocks=3, max_blocks=3).load("test", limit=1)[0]
    d = diagnose(f"<answer>{problem['reference']}</answer>", "blocksworld", problem=problem)
    assert (d["no_answer"], d["correct"], d["answer"]) == (False, True, problem["reference"])
    d = diagnose("<answer>I would move some blocks.</answer>", problem=problem)
    assert (d["no_answer"], d["correct"], d["answer"]) == (True, False, None)
