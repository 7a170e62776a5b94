"""SkyThought-style distillation with a scripted teacher: rejection sampling, difficulty filters, dedup."""

import pytest

from treecot.backends.base import Completion, GenerationResult
from treecot.data.distill import DistillConfig, difficulty_of, distill
from treecot.tasks.base import Task, Verdict


class BoxedTask(Task):
    """Correct iff the completion contains \\boxed{<reference>}; no \\boxed at all = no answer."""

    name = "toy"

    def load(self, split="test", limit=None):
        raise NotImplementedError

    def verify(self, completion, problem):
        answered = "\\boxed{" in completion
        return Verdict(correct=f"\\boxed{{{problem['reference']}}}" in completion, answered=answered)


class ScriptedTeacher:
    """Returns scripted texts per question; records requests."""

    model_id = "scripted"

    def __init__(self, script):
        self.script = script
        self.requests = []

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "|".join(m["content"] for m in messages)

    def generate(self, requests):
        self.requests.extend(requests)
        out = []
        for r in requests:
            question = r.prompt.rsplit("|", 1)[1]
            texts = self.script[question][: r.n]
            out.append(GenerationResult([Completion(t, len(t.split())) for t in texts]))
        return out


class WordTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


def problem(q, ref, level="Level 3"):
    return {"id": f"id-{q}", "task": "toy", "question": q, "reference": ref, "meta": {"level": level}}


SCRIPT = {
    "q1": ["Thought: a\n\nb Solution: \\boxed{1}", "Thought: x Solution: \\boxed{2}", "no answer here",
           "Thought: a\n\nb Solution: \\boxed{1}"],
    "q2": ["\\boxed{5}", "\\boxed{6}", "\\boxed{7}", "\\boxed{8}"],
    "q3": ["long long long \\boxed{3}", "\\boxed{3}", "\\boxed{0}", "\\boxed{3} short"],
}  # fmt: skip


def test_rejection_sampling_and_dedup():
    teacher = ScriptedTeacher(SCRIPT)
    problems = [problem("q1", "1"), problem("q2", "9"), problem("q3", "3")]
    rows, wrong, report = distill(problems, BoxedTask(), teacher, WordTokenizer(), DistillConfig(samples=4))
    assert [r["problem_id"] for r in rows] == ["id-q1", "id-q3", "id-q3", "id-q3"]
    assert report.duplicates_dropped == 1, "q1's two identical correct samples count once"
    assert report.samples == 12 and report.rejected == 2 + 4 + 1 and report.no_answer == 1
    assert report.problems_without_accepted == ["id-q2"]
    assert wrong["id-q2"] == SCRIPT["q2"] and len(wrong["id-q1"]) == 2
    for r in rows:
        assert r["source"] == "distill" and r["messages"][0]["role"] == "system"
        assert "Thought" in r["messages"][0]["content"] and r["messages"][1]["content"].startswith("q")
        assert r["n_tokens"] == len(r["messages"][2]["content"].split())
    assert sorted(r["length_rank"] for r in rows if r["problem_id"] == "id-q3") == [
        "longest",
        "medium",
        "shortest",
    ]
    assert all(req.n == 4 for req in teacher.requests)


def test_keep_first_and_difficulty_filter():
    problems = [problem("q1", "1", "Level 1"), problem("q3", "3", "Level 5")]
    rows, _, report = distill(problems, BoxedTask(), ScriptedTeacher(SCRIPT), WordTokenizer(),
                              DistillConfig(samples=4, keep="first", min_difficulty=3))  # fmt: skip
    assert report.filtered_by_difficulty == 1 and [r["problem_id"] for r in rows] == ["id-q3"]
    assert difficulty_of({"meta": {"difficulty": 7}}) == 7.0 and difficulty_of({"meta": {}}) is None


def test_pass_rate_filter_uses_reference_model():
    reference = ScriptedTeacher(
        {"q1": ["\\boxed{1}"] * 4, "q3": ["\\boxed{3}", "\\boxed{0}", "\\boxed{0}", "x"]}
    )
    cfg = DistillConfig(samples=2, pass_rate_range=(0.0, 0.5), reference_samples=4)
    rows, _, report = distill([problem("q1", "1"), problem("q3", "3")], BoxedTask(), ScriptedTeacher(SCRIPT),
                              WordTokenizer(), cfg, reference=reference)  # fmt: skip
    assert report.filtered_by_pass_rate == 1, "q1 is too easy for the reference model (pass rate 1.0)"
    assert {r["problem_id"] for r in rows} == {"id-q3"}
    with pytest.raises(ValueError, match="needs a reference generator"):
        distill([], BoxedTask(), ScriptedTeacher({}), WordTokenizer(), cfg)


def test_config_validation():
    with pytest.raises(ValueError, match="samples must be >= 1"):
        DistillConfig(samples=0)
    with pytest.raises(ValueError, match="keep must be"):
        DistillConfig(keep="best")
    with pytest.raises(ValueError, match="pass_rate_range"):
        DistillConfig(pass_rate_range=(0.8, 0.2))
