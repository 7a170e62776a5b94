"""Node types, transfer matrices and their validation (treecot.search.patterns)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from treecot.search.patterns import (
    DEFAULT_NODE_TYPES,
    DEFAULT_REFLECTION_TEXT,
    PATTERNS_PATH_ENV,
    PatternError,
    Patterns,
    load_patterns,
    patterns_dirs,
    patterns_for_task,
)

BASE = {
    "name": "t",
    "root": {"sub_task": 2},
    "transfer": {
        "sub_task": {"thinking": 2},
        "thinking": {"double_check": 1, "answer": 1, "thinking": 2},
        "double_check": {"answer": 1},
        "reflection": {"thinking_from_scratch": 2},
        "thinking_from_scratch": {"thinking": 2},
    },
    "backtrack_to": "double_check",
}


def with_changes(**changes) -> dict:
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        keys = dotted.split("__")
        target = data
        for k in keys[:-1]:
            target = target.setdefault(k, {})
        if value is DELETE:
            del target[keys[-1]]
        else:
            target[keys[-1]] = value
    return data


DELETE = object()


def test_builtin_node_types_cover_the_paper():
    assert set(DEFAULT_NODE_TYPES) == {
        "sub_task",
        "thinking",
        "hypothesis",
        "double_check",
        "reflection",
        "reclarify",
        "thinking_from_scratch",
        "answer",
    }
    assert DEFAULT_NODE_TYPES["answer"].terminal
    assert [t for t in DEFAULT_NODE_TYPES.values() if t.terminal] == [DEFAULT_NODE_TYPES["answer"]]
    assert DEFAULT_NODE_TYPES["double_check"].role == "B"
    assert DEFAULT_NODE_TYPES["thinking_from_scratch"].role == "B"
    assert DEFAULT_NODE_TYPES["sub_task"].tag == "sub-task"
    reflection = DEFAULT_NODE_TYPES["reflection"]
    assert reflection.fixed_texts == (DEFAULT_REFLECTION_TEXT,) and not reflection.needs_llm


@pytest.mark.parametrize("name", ["math", "blocksworld", "ifeval"])
def test_shipped_patterns_load_and_are_valid(name):
    p = load_patterns(name)
    assert p.name == name
    assert p.source.endswith(f"resources/patterns/{name}.yaml")  # the package's link to recipes/patterns
    assert p.backtrack_to == ("double_check",)
    assert p.reflection_texts and all(t.strip() for t in p.reflection_texts)
    # Both models are used: A writes the reasoning, B checks and corrects.
    assert set(p.roles()) == {"A", "B"}
    assert "double_check" in p.roles()["B"]
    # Round trip through the resolved dict.
    assert Patterns.from_dict(p.to_dict()) == p


def test_shipped_patterns_follow_the_papers_patterns():
    math, bw, ife = (load_patterns(n) for n in ("math", "blocksworld", "ifeval"))
    # (a)/(c): thinking can answer directly or go through a double check.
    assert {"answer", "double_check", "thinking"} <= set(math.children_of("thinking"))
    assert math.children_of("reflection") == {"thinking_from_scratch": 2}
    assert math.types["answer"].prefills == ("The answer is: \\boxed{",)
    # (b): hypotheses branch from the sub-task and lead to thinking.
    assert "hypothesis" in bw.children_of("sub_task") and bw.children_of("hypothesis") == {"thinking": 2}
    # (d): reclarify after a wrong answer, then thinking; written by model B there.
    assert ife.children_of("reflection") == {"reclarify": 2}
    assert ife.children_of("reclarify") == {"thinking": 2}
    assert ife.types["reclarify"].role == "B"
    assert ife.types["answer"].prefills == ()


def test_children_order_is_kept():
    p = Patterns.from_dict(BASE)
    assert list(p.children_of("thinking")) == ["double_check", "answer", "thinking"]
    assert p.children_of("root") == {"sub_task": 2}
    assert p.children_of("answer") == {}


def test_type_overrides_and_new_types():
    data = with_changes(
        types={
            "answer": {"prefills": ["Final:"], "max_tokens": 32},
            "thinking": {"in_history": False},
            "plan_step": {"tag": "step", "role": "B", "prefills": "Next,"},
        },
        transfer__sub_task={"plan_step": 1, "thinking": 1},
        transfer__plan_step={"answer": 1},
        reflection_text=["Oops.", "Hmm, no."],
    )
    p = Patterns.from_dict(data)
    assert p.types["answer"].prefills == ("Final:",) and p.types["answer"].max_tokens == 32
    assert p.types["answer"].tag == "answer" and p.types["answer"].terminal
    assert p.types["thinking"].in_history is False
    assert p.types["plan_step"].tag == "step" and p.types["plan_step"].prefills == ("Next,",)
    assert p.reflection_texts == ("Oops.", "Hmm, no.")
    assert "plan_step" in p.roles()["B"]


def test_section_tags_cover_every_node_type_once():
    p = Patterns.from_dict(BASE)
    tags = [t.tag for t in DEFAULT_NODE_TYPES.values()]
    assert p.section_tags() == tuple(x for tag in tags for x in (f"<{tag}>", f"</{tag}>"))
    # A new type's tag is added; two types sharing a tag give it once.
    data = with_changes(
        types={"plan_step": {"tag": "step", "role": "A"}, "hypothesis": {"tag": "thinking"}},
        transfer__sub_task={"plan_step": 1, "thinking": 1},
        transfer__plan_step={"answer": 1},
    )
    got = Patterns.from_dict(data).section_tags()
    assert len(got) == len(set(got)) and got.count("<thinking>") == 1
    assert got[-2:] == ("<step>", "</step>") and "<hypothesis>" not in got


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"transfer__thinking": {"double_chek": 1, "answer": 1}},
            "transfer.thinking.double_chek: unknown node type 'double_chek'",
        ),
        ({"root": {"thinkin": 1}}, "root.thinkin: unknown node type 'thinkin'"),
        ({"transfer__thoughts": {"answer": 1}}, "transfer.thoughts: unknown node type 'thoughts'"),
        (
            {"transfer__thinking": {"answer": 0}},
            "transfer.thinking.answer: sample count must be a positive integer",
        ),
        (
            {"transfer__thinking": {"answer": -2}},
            "transfer.thinking.answer: sample count must be a positive integer",
        ),
        (
            {"transfer__thinking": {"answer": 1.5}},
            "transfer.thinking.answer: sample count must be a positive integer",
        ),
        (
            {"transfer__thinking": {"answer": True}},
            "transfer.thinking.answer: sample count must be a positive integer",
        ),
        ({"root": {"sub_task": 0}}, "root.sub_task: sample count must be a positive integer"),
        ({"root": {}}, "root: the root needs at least one child type"),
        ({"root": DELETE}, "root: missing"),
        ({"transfer__answer": {"thinking": 1}}, "transfer.answer: 'answer' is terminal"),
        ({"transfer__reflection": DELETE}, "transfer.reflection: backtracking is configured"),
        ({"transfer__reflection": {}}, "transfer.reflection: backtracking is configured"),
        ({"backtrack_to": "double_chek"}, "backtrack_to.double_chek: unknown node type"),
        ({"backtrack_to": ["hypothesis"]}, "backtrack_to.hypothesis: 'hypothesis' never occurs"),
        ({"backtrack_to": "answer"}, "backtrack_to.answer: a reflection cannot be placed under a terminal"),
        ({"reflection_text": ""}, "reflection_text: entries must not be empty"),
        ({"reflection_text": []}, "reflection_text: must not be empty"),
        ({"reflection_text": 3}, "reflection_text: must be a string or a list of strings"),
        (
            {"transfer__sub_task": {"hypothesis": 1}},
            "transfer.hypothesis: 'hypothesis' occurs in the tree but has no row",
        ),
        ({"types__answer__prefil": ["x"]}, "types.answer.prefil: unknown field"),
        ({"types__thinking__role": "C"}, "types.thinking.role: must be one of ['A', 'B']"),
        ({"types__thinking__max_tokens": 0}, "types.thinking.max_tokens: must be a positive integer or null"),
        ({"types__thinking__in_history": "yes"}, "types.thinking.in_history: must be true or false"),
        ({"types__thinking__tag": "</x>"}, "types.thinking.tag: must be a non-empty name"),
        (
            {"types__answer__fixed_texts": ["42"]},
            "types.answer.fixed_texts: the terminal type cannot have a fixed",
        ),
        ({"types__plan": {"prefills": ["x"]}}, "types.plan: new node type 'plan' must define tag and role"),
        ({"types__root": {"tag": "r"}}, "types.root: 'root' is not a node type"),
        (
            {"transfer__root": {"answer": 1}},
            "transfer.root: give the root's children under the top-level 'root'",
        ),
        ({"matrix": {}}, "matrix: unknown field"),
        ({"transfer": [1, 2]}, "transfer: must be a mapping"),
    ],
)
def test_invalid_patterns_name_the_offending_entry(changes, message):
    with pytest.raises(PatternError, match=re.escape(message)):
        Patterns.from_dict(with_changes(**changes))


def test_a_type_that_cannot_reach_answer_is_rejected():
    data = {
        "root": {"sub_task": 1},
        "transfer": {
            "sub_task": {"answer": 1, "hypothesis": 1},
            "hypothesis": {"thinking": 1},
            "thinking": {"hypothesis": 1},  # hypothesis <-> thinking loop, no way out
        },
    }
    with pytest.raises(
        PatternError, match=r"transfer\.hypothesis: no path from 'hypothesis' leads to 'answer'"
    ):
        Patterns.from_dict(data)


def test_a_root_that_cannot_reach_answer_is_rejected():
    with pytest.raises(PatternError, match="no path from 'thinking' leads to 'answer'"):
        Patterns.from_dict({"root": {"thinking": 1}, "transfer": {"thinking": {"thinking": 1}}})


def test_backtracking_is_optional():
    data = with_changes(
        backtrack_to=DELETE, transfer__reflection=DELETE, transfer__thinking_from_scratch=DELETE
    )
    p = Patterns.from_dict(data)
    assert p.backtrack_to == ()
    assert "B" in p.roles() and "thinking_from_scratch" not in p.roles()["B"]


def test_source_is_named_in_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(with_changes(transfer__thinking={"answr": 1})))
    with pytest.raises(
        PatternError, match=r"transfer\.thinking\.answr: unknown node type 'answr' in .*bad\.yaml"
    ):
        load_patterns(bad)


def test_load_by_path_and_by_name_from_env_dir(tmp_path, monkeypatch):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({k: v for k, v in BASE.items() if k != "name"}))
    assert load_patterns(f).name == "mine"  # named after the file when the YAML has no name
    monkeypatch.setenv(PATTERNS_PATH_ENV, str(tmp_path))
    assert patterns_dirs()[0] == tmp_path
    assert load_patterns("mine").source == str(f)
    assert load_patterns(BASE).name == "t"
    p = load_patterns("math")
    assert load_patterns(p) is p


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(
        FileNotFoundError,
        match=r"no patterns named 'nope'; known: blocksworld, ifeval, math(, [\w-]+)*; looked for .*nope\.yaml",
    ):
        load_patterns("nope")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_patterns(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("root: {sub_task: 2\n")
    with pytest.raises(PatternError, match="not valid YAML"):
        load_patterns(broken)


def test_fingerprint_changes_with_the_matrix():
    a = Patterns.from_dict(BASE)
    b = Patterns.from_dict(with_changes(transfer__sub_task={"thinking": 3}))
    assert a.fingerprint() == Patterns.from_dict(copy.deepcopy(BASE)).fingerprint()
    assert a.fingerprint() != b.fingerprint()


def test_patterns_for_task_uses_the_domain():
    class T:
        name = "x"

        def __init__(self, domain):
            self.domain = domain

    assert patterns_for_task(T("math")).name == "math"
    assert patterns_for_task(T("planning")).name == "blocksworld"
    assert patterns_for_task(T("instructions")).name == "ifeval"
    with pytest.raises(ValueError, match="domain 'poetry' with no default patterns"):
        patterns_for_task(T("poetry"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"root": {"sub_task": 1_000_000_000}}, "root.sub_task: sample count 1000000000 is more than the maximum 64"),
        ({"transfer__thinking__thinking": 65}, "transfer.thinking.thinking: sample count 65 is more than the maximum 64"),
        (
            {"transfer__thinking": {"double_check": 64, "answer": 64, "thinking": 64, "hypothesis": 64, "reclarify": 1}},
            "transfer.thinking: 257 samples in one expansion, more than the maximum 256",
        ),
        ({"types__thinking__max_tokens": 10**12}, "types.thinking.max_tokens: 1000000000000 is more than the maximum"),
        (
            {"types": {f"t{i}": {"tag": f"t{i}", "role": "A"} for i in range(57)}},
            "types: 57 new node types make 65, more than the maximum 64",
        ),
    ],
)  # fmt: skip
def test_counts_are_capped_and_named(changes, message):
    """A count of a billion (issue #14: `root: {sub_task: 1000000000}` grew to 15.8 GB) is refused with
    the entry named, before any search."""
    with pytest.raises(PatternError, match=re.escape(message)):
        Patterns.from_dict(with_changes(**changes))


def test_counts_at_the_caps_are_accepted():
    from treecot.search.patterns import MAX_CHILD_SAMPLES, MAX_EXPANSION_SAMPLES, MAX_NODE_TYPES

    assert MAX_CHILD_SAMPLES * 4 == MAX_EXPANSION_SAMPLES
    p = Patterns.from_dict(
        with_changes(
            root={"sub_task": MAX_CHILD_SAMPLES},
            transfer__thinking={"double_check": 64, "answer": 64, "thinking": 64, "hypothesis": 64},
            transfer__hypothesis={"answer": 1},
            types={f"t{i}": {"tag": f"t{i}", "role": "A"} for i in range(MAX_NODE_TYPES - 8)},
        )
    )
    assert p.children_of("root") == {"sub_task": 64} and sum(p.children_of("thinking").values()) == 256


def test_messages_quote_huge_values_briefly():
    huge = "x" * 200_000
    for changes in (
        {"root": {"sub_task": huge}},
        {"transfer__thinking": {huge: 1}},
        {"types__thinking__role": huge},
    ):
        with pytest.raises(PatternError) as e:
            Patterns.from_dict(with_changes(**changes))
        assert len(str(e.value)) < 600, changes


def test_unreadable_patterns_files_name_the_file(tmp_path):
    from treecot.search.patterns import PatternsNotFoundError

    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    with pytest.raises(PatternError, match=r"^patterns file .*bin\.yaml: not UTF-8 text"):
        load_patterns(binary)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BILLION_LAUGHS + "root: {sub_task: 1}\nname: *i\n")
    with pytest.raises(
        PatternError, match=r"^patterns file .*bomb\.yaml: with its aliases \(\*name\) expanded"
    ):
        load_patterns(bomb)
    with pytest.raises(PatternsNotFoundError) as e:
        load_patterns("nope")
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, ValueError)


BILLION_LAUGHS = "".join(
    f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, a in zip(["", *"abcdefgh"], "abcdefghi")
)


# -- the instruction-following reward level (if_reward) ------------------------------------------------


def test_if_reward_defaults_to_loose_and_is_validated():
    assert Patterns.from_dict(BASE).reward_level == "loose" and Patterns.from_dict(BASE).if_reward is None
    assert Patterns.from_dict({**BASE, "if_reward": "strict"}).reward_level == "strict"
    with pytest.raises(PatternError, match=r"if_reward: must be one of \['strict', 'loose'\], got 'lax'"):
        Patterns.from_dict({**BASE, "if_reward": "lax"})
    with pytest.raises(PatternError, match="if_reward: must be one of"):
        Patterns.from_dict({**BASE, "if_reward": True})
    # The shipped IF patterns say it explicitly; the others leave it unset.
    assert load_patterns("ifeval").if_reward == "loose"
    assert load_patterns("math").if_reward is None and load_patterns("blocksworld").if_reward is None


def test_if_reward_round_trips_and_names_the_run_only_when_set():
    unset = Patterns.from_dict(BASE)
    strict = Patterns.from_dict({**BASE, "if_reward": "strict"})
    loose = Patterns.from_dict({**BASE, "if_reward": "loose"})
    assert "if_reward" not in unset.to_dict() and strict.to_dict()["if_reward"] == "strict"
    for p in (unset, strict, loose):
        assert Patterns.from_dict(p.to_dict()) == p
    # Runs made before the setting existed keep their config hash; a set level is part of it.
    assert len({unset.fingerprint(), strict.fingerprint(), loose.fingerprint()}) == 3


def test_reward_verdict_scores_instruction_tasks_at_the_patterns_level():
    import json

    from treecot.tasks import get_task, make_problem

    task = get_task("ifeval")  # verify() alone scores prompt-level strict
    problem = make_problem(
        "ifeval",
        "Write JSON. No commas.",
        json.dumps({"instruction_id_list": ["detectable_format:json_format"], "kwargs": [{}]}),
    )
    chatty = 'Sure here is the JSON you asked for:\n{"city": "Paris"}'  # JSON only without the first line
    assert not task.verify(chatty, problem).correct
    loose = load_patterns("ifeval").reward_verdict(task, chatty, problem)
    assert loose.correct and loose.details["prompt_loose"] and not loose.details["prompt_strict"]
    strict = Patterns.from_dict({**BASE, "if_reward": "strict"}).reward_verdict(task, chatty, problem)
    assert not strict.correct
    # Other domains are verified as they are, whatever the level.

    class Planning:
        domain = "planning"

        def verify(self, completion, problem, loose=None):
            return ("planning", loose)

    assert Patterns.from_dict({**BASE, "if_reward": "strict"}).reward_verdict(Planning(), "x", problem) == (
        "planning",
        None,
    )

    class NoLevel:  # an instruction task whose verify takes no level
        domain = "instructions"

        def verify(self, completion, problem):
            return ("plain", completion)

    assert load_patterns("ifeval").reward_verdict(NoLevel(), "x", problem) == ("plain", "x")
