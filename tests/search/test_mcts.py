"""The MCTS engine (treecot.search.mcts) driven by the scripted fake generator."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from tests.fixtures.fake_generator import FakeGenerator, ToyMathTask, last_open_tag, toy_problem
from treecot.backends.base import Completion, GenerationResult
from treecot.prompts import contract_system_prompt, with_system_prompt
from treecot.search.mcts import (
    MCTS,
    MCTSConfig,
    config_hash,
    reflection_stats,
    reflection_summary,
    render_chat_prompts,
    run_search,
    token_confidences,
)
from treecot.search.patterns import Patterns, load_patterns
from treecot.search.tree import Tree

REFLECTION = "Wait! Something is wrong, let's think again."

# root → thinking → (answer, thinking) → …: every expansion creates exactly one new answer.
CHAIN = {"root": {"thinking": 1}, "transfer": {"thinking": {"answer": 1, "thinking": 1}}}

# 40 thinking nodes under the root: rollout i reaches a new thinking node and creates the i-th answer.
FAN = {"root": {"thinking": 40}, "transfer": {"thinking": {"answer": 1, "thinking": 1}}}

# thinking → double_check → (thinking, answer); reflections go under the nearest double_check.
BACKTRACK = {
    "root": {"thinking": 1},
    "transfer": {
        "thinking": {"double_check": 1},
        "double_check": {"thinking": 1, "answer": 1},
        "reflection": {"thinking_from_scratch": 1},
        "thinking_from_scratch": {"answer": 1},
    },
    "backtrack_to": "double_check",
    "reflection_text": REFLECTION,
}


def answers(*texts: str):
    """A responder cycling through answer texts in order of generation (across requests and samples)."""
    it = itertools.cycle(texts)
    return lambda request, i: next(it)


def first_n_correct(n: int):
    counter = itertools.count()
    return lambda request, i: "4}" if next(counter) < n else "5}"


def make(patterns, config=None, a_script=None, b_script=None, problem=None, task=None, same_generator=False):
    a = FakeGenerator({"answer": "4}", **(a_script or {})}, role="A", default="step")
    b = a if same_generator else FakeGenerator(b_script or {}, role="B", default="check")
    gens = {"A": a, "B": b}
    task = task or ToyMathTask()
    problem = problem or toy_problem()
    if isinstance(patterns, dict):
        types = {"answer": {"prefills": ["The answer is: \\boxed{"]}, **patterns.get("types", {})}
        pats = Patterns.from_dict({**patterns, "types": types})
    else:
        pats = load_patterns(patterns)
    search = MCTS(
        problem, task, pats, config or MCTSConfig(), chat_prompts=render_chat_prompts(task, problem, gens)
    )
    return search, gens


def drive(search: MCTS, gens, until=None) -> MCTS:
    """Serve pending requests (one generate call per request) until done or `until(search)`."""
    while not search.done and not (until and until(search)):
        results = []
        for exp in search.pending_requests():
            results.extend(gens[exp.role].generate([exp.request]))
        search.feed(results)
    return search


# -- config ------------------------------------------------------------------------------------------------


def test_config_defaults_follow_the_method():
    cfg = MCTSConfig()
    assert (cfg.c, cfg.max_depth, cfg.max_node_tokens, cfg.temperature, cfg.top_p) == (
        1.414,
        16,
        512,
        0.7,
        0.9,
    )
    assert (cfg.stop_at_correct, cfg.early_stop_rollouts, cfg.early_stop_correct, cfg.max_rollouts) == (
        8,
        32,
        4,
        128,
    )
    assert cfg.value_mode == "verifier"
    assert cfg.reflection_first is True and cfg.stop_at_any_tag is True  # METHOD §6; tags end a node
    assert MCTSConfig.from_dict(cfg.to_dict()) == cfg


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"c": -1.0}, "MCTSConfig.c must be >= 0"),
        ({"c": float("nan")}, "MCTSConfig.c must be a finite number"),
        ({"temperature": -0.1}, "MCTSConfig.temperature must be >= 0"),
        ({"top_p": 0.0}, r"MCTSConfig.top_p must be in \(0, 1\]"),
        ({"top_p": 1.5}, r"MCTSConfig.top_p must be in \(0, 1\]"),
        ({"max_depth": 0}, "MCTSConfig.max_depth must be > 0"),
        ({"max_node_tokens": 2.5}, "MCTSConfig.max_node_tokens must be an integer"),
        ({"max_rollouts": True}, "MCTSConfig.max_rollouts must be an integer"),
        ({"stop_at_correct": 0}, "MCTSConfig.stop_at_correct must be > 0"),
        ({"early_stop_correct": -1}, "MCTSConfig.early_stop_correct must be >= 0"),
        ({"value_mode": "reward"}, "MCTSConfig.value_mode must be one of"),
        ({"record_logprobs": 1}, "MCTSConfig.record_logprobs must be true or false"),
        ({"reflection_first": "yes"}, "MCTSConfig.reflection_first must be true or false"),
        ({"stop_at_any_tag": None}, "MCTSConfig.stop_at_any_tag must be true or false"),
    ],
)
def test_config_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MCTSConfig(**kwargs)


def test_config_from_dict_rejects_unknown_fields():
    with pytest.raises(ValueError, match="MCTSConfig has no field 'exploration'"):
        MCTSConfig.from_dict({"exploration": 2.0})


def test_config_hash_tracks_config_patterns_and_generator():
    pats = load_patterns("math")
    base = config_hash(MCTSConfig(), pats, {"models": {"A": "x"}})
    assert base == config_hash(MCTSConfig(), load_patterns("math"), {"models": {"A": "x"}})
    assert base != config_hash(MCTSConfig(c=2.0), pats, {"models": {"A": "x"}})
    assert base != config_hash(MCTSConfig(), load_patterns("ifeval"), {"models": {"A": "x"}})
    assert base != config_hash(MCTSConfig(), pats, {"models": {"A": "y"}})


# -- UCT selection ---------------------------------------------------------------------------------------


def hand_tree(stats: list[tuple[int, float]], parent_visits: int) -> Tree:
    tree = Tree(problem=toy_problem())
    tree.root.expanded = True
    tree.root.visits = parent_visits
    for visits, value in stats:
        tree.add_node(0, "thinking", tag="thinking", visits=visits, value_sum=value)
    return tree


def test_selection_takes_the_first_unvisited_child():
    search, _ = make(CHAIN)
    search.tree = hand_tree([(4, 3.0), (0, 0.0), (0, 0.0), (9, 9.0)], parent_visits=13)
    assert search.select_child(search.tree.root).id == 2


def test_selection_maximises_uct_with_exact_scores():
    search, _ = make(CHAIN)
    search.tree = hand_tree([(4, 3.0), (1, 0.0), (5, 5.0)], parent_visits=10)
    root, (a, b, c) = search.tree.root, search.tree.children(0)
    # Q/N + 1.414 * sqrt(2 ln 10 / N)
    assert search.uct(a, root) == pytest.approx(2.267198, abs=1e-6)
    assert search.uct(b, root) == pytest.approx(3.034396, abs=1e-6)
    assert search.uct(c, root) == pytest.approx(2.357023, abs=1e-6)
    assert search.select_child(root) is b
    # Without exploration the best mean wins.
    search.config = MCTSConfig(c=0.0)
    assert search.select_child(root) is c
    with pytest.raises(ValueError, match="undefined for unvisited node"):
        search.uct(search.tree.add_node(0, "thinking"), root)


def test_uct_ties_are_broken_by_the_seeded_rng():
    def picks(seed: int) -> list[int]:
        search, _ = make(CHAIN)
        search.tree = hand_tree([(2, 1.0), (2, 1.0), (3, 0.0)], parent_visits=7)
        search.rng = random.Random(seed)
        return [search.select_child(search.tree.root).id for _ in range(12)]

    assert set(picks(0)) == {1, 2}  # both tied children get picked, never the worse one
    assert picks(0) == picks(0)
    assert any(picks(0) != picks(s) for s in range(1, 5))


# -- expansion ---------------------------------------------------------------------------------------------


def test_expansion_is_one_request_per_child_type_with_n_samples():
    search, gens = make(
        {"root": {"sub_task": 2, "thinking": 3}, "transfer": CHAIN["transfer"] | {"sub_task": {"answer": 1}}}
    )
    pending = search.pending_requests()
    assert search.pending_requests() == pending  # stable until fed
    assert [(p.child_type, p.request.n, p.role, p.node_id) for p in pending] == [
        ("sub_task", 2, "A", 0),
        ("thinking", 3, "A", 0),
    ]
    chat = contract_chat(gens["A"])
    assert pending[0].request.prompt == chat + "<sub-task>Firstly, I need to break down this task."
    assert pending[0].prefill == "Firstly, I need to break down this task."
    assert pending[1].request.prompt == chat + "<thinking>"
    assert [p.request.stop[0] for p in pending] == ["</sub-task>", "</thinking>"]  # own closing tag first
    r = pending[0].request
    assert (r.temperature, r.top_p, r.max_tokens, r.logprobs) == (0.7, 0.9, 512, 0)
    search.feed([gens["A"].generate([p.request])[0] for p in pending])
    assert [c.type for c in search.tree.children(0)] == [
        "sub_task",
        "sub_task",
        "thinking",
        "thinking",
        "thinking",
    ]
    first = search.tree.node(1)
    assert (
        first.text == "Firstly, I need to break down this task.step" and first.prefill == pending[0].prefill
    )
    assert (
        first.role == "A"
        and first.n_tokens == 1
        and first.mean_logprob == -0.5
        and first.finish_reason == "stop"
    )


def test_prompts_continue_the_serialized_path():
    search, gens = make(
        "math",
        MCTSConfig(max_rollouts=1),
        a_script={"thinking": "2 + 2 = 4."},
        b_script={"double-check": " ok"},
    )
    drive(search, gens)
    chat = contract_chat(gens["A"])
    answer = next(a for a in search.tree.answer_nodes() if a.visits)  # the one the rollout reached
    assert search.tree.serialize_path(answer.id) == (
        "<sub-task>Firstly, I need to break down this task.step</sub-task>\n"
        "<thinking>2 + 2 = 4.</thinking>\n"
        f"<double-check>{search.tree.node(answer.parent).text}</double-check>\n"
        "<answer>The answer is: \\boxed{4}</answer>"
    )
    # The request that produced the answer continued exactly that path.
    answer_request = [r for r in gens["A"].requests if last_open_tag(r.prompt) == "answer"][-1]
    assert (
        answer_request.prompt
        == chat + search.tree.serialize_path(answer.parent) + "\n<answer>The answer is: \\boxed{"
    )
    # Double checks are written by model B.
    assert all(last_open_tag(r.prompt) == "double-check" for r in gens["B"].requests)
    assert gens["B"].requests and search.tree.node(answer.parent).role == "B"


def contract_chat(gen) -> str:
    """The chat prompt the search sends: the dataset's prompt contract (tag guide + answer format)."""
    task = ToyMathTask()
    return gen.apply_chat_template(
        with_system_prompt(task.prompt(toy_problem()), contract_system_prompt(task))
    )


def test_hidden_types_are_left_out_of_later_prompts():
    patterns = {
        "root": {"thinking": 1},
        "types": {"double_check": {"in_history": False}},
        "transfer": {"thinking": {"double_check": 1}, "double_check": {"answer": 1}},
    }
    search, gens = make(patterns, MCTSConfig(max_rollouts=1))
    drive(search, gens)
    answer_request = [r for r in gens["A"].requests if last_open_tag(r.prompt) == "answer"][-1]
    assert last_open_tag(answer_request.prompt) == "answer"
    assert (
        "double-check" not in answer_request.prompt.split("<|assistant|>")[-1]  # the tag guide names it
        and "<thinking>step</thinking>\n<answer>" in answer_request.prompt
    )


def test_answers_are_verified_on_the_whole_path():
    seen = []

    class Recording(ToyMathTask):
        def verify(self, completion, problem):
            seen.append(completion)
            return super().verify(completion, problem)

    search, gens = make(
        CHAIN, MCTSConfig(max_rollouts=2), a_script={"answer": answers("4}", "no idea")}, task=Recording()
    )
    drive(search, gens)
    a1, a2 = search.tree.answer_nodes()
    assert seen == [search.tree.serialize_path(a1.id), search.tree.serialize_path(a2.id)]
    assert seen[0].startswith("<thinking>step</thinking>\n<answer>")
    assert (a1.reward, a1.correct, a1.answered, a1.extracted) == (1.0, True, True, "4")
    assert (a2.reward, a2.correct, a2.answered, a2.extracted) == (0.0, False, False, None)
    assert a1.terminal and a1.type == "answer"


@pytest.mark.parametrize("level", ["loose", "strict"])
def test_instruction_answers_are_rewarded_at_the_patterns_level(level):
    seen = []

    class Instructions(ToyMathTask):
        def verify(self, completion, problem, loose=False):  # strict fails, loose passes
            seen.append(loose)
            verdict = super().verify(completion, problem)
            verdict.correct = verdict.correct and loose
            return verdict

    task = Instructions()
    task.domain = "instructions"  # IFEval's: its verify takes the level
    search, gens = make({**CHAIN, "if_reward": level}, MCTSConfig(max_rollouts=1), task=task)
    drive(search, gens)
    (a1,) = search.tree.answer_nodes()
    assert seen == [level == "loose"] and a1.correct is (level == "loose")


# -- backpropagation ------------------------------------------------------------------------------------


def test_backpropagate_adds_to_every_ancestor_only():
    search, _ = make(CHAIN)
    tree = Tree(problem=toy_problem())
    t1 = tree.add_node(0, "thinking")
    t2 = tree.add_node(t1.id, "thinking")
    sibling = tree.add_node(t1.id, "answer", terminal=True)
    leaf = tree.add_node(t2.id, "answer", terminal=True)
    search.tree = tree
    search.backpropagate(leaf, 1.0)
    search.backpropagate(leaf, 0.0)
    assert [(n.visits, n.value_sum) for n in (tree.root, t1, t2, leaf)] == [(2, 1.0)] * 4
    assert (sibling.visits, sibling.value_sum) == (0, 0.0)


def test_visit_and_value_sums_are_consistent_after_a_search():
    search, gens = make(
        "math",
        MCTSConfig(max_rollouts=40, stop_at_correct=100, early_stop_rollouts=1000),
        a_script={"answer": answers("4}", "5}", "5}")},
    )
    drive(search, gens)
    tree = search.tree
    assert tree.root.visits == tree.stats["rollouts"] == 40
    for node in tree:
        kids = tree.children(node.id)
        if node.terminal:
            assert node.value_sum == node.visits * node.reward
        elif node.visits:
            assert node.visits == sum(k.visits for k in kids)
            assert node.value_sum == sum(k.value_sum for k in kids)
    assert tree.root.value_sum == tree.stats["correct_rollouts"]
    assert tree.stats["correct_paths"] == len(tree.correct_answers())


# -- backtracking ------------------------------------------------------------------------------------------


def test_reflection_goes_under_the_nearest_double_check_and_model_b_continues():
    # The reference engine's order (reflection_first=False): a reflection waits among its parent's children.
    search, gens = make(
        BACKTRACK,
        MCTSConfig(max_depth=6, reflection_first=False),
        a_script={"answer": "5}"},
        b_script={"thinking-from-scratch": " redo"},
    )
    tree = search.tree
    # Rollout 1: t1 → d2 → t3 → d4 → t5 → forced answer at depth 6 (wrong). Rollout 2 needs no generation:
    # it ends at d2's own wrong answer. The search then waits for the reflection's continuation.
    drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 1)
    assert tree.stats["rollouts"] == 2 and tree.stats["reflections"] == 2
    deep = tree.answer_nodes()[-1]
    path = tree.path(deep.id)
    assert [n.type for n in path] == [
        "thinking",
        "double_check",
        "thinking",
        "double_check",
        "thinking",
        "answer",
    ]
    d2, d4 = path[1], path[3]
    shallow = next(c for c in tree.children(d2.id) if c.type == "answer")
    assert deep.visits == shallow.visits == 1
    refl = [n for n in tree if n.type == "reflection"]
    # The deep answer's reflection went under its NEAREST double_check (d4), the shallow one's under d2.
    assert [r.parent for r in refl] == [d4.id, d2.id]
    assert all(r.text == REFLECTION and r.finish_reason == "fixed" and r.n_tokens == 0 for r in refl)
    assert all(r.role == "B" and r.visits == 0 for r in refl)
    # Rollout 3 walks into d2's reflection (d2's only unvisited child): model B continues after the fixed text.
    (pending,) = search.pending_requests()
    assert (pending.role, pending.child_type, pending.node_id) == ("B", "thinking_from_scratch", refl[1].id)
    assert pending.request.prompt.endswith(
        f"<double-check>{d2.text}</double-check>\n<reflection>{REFLECTION}</reflection>\n<thinking-from-scratch>"
        "The previous answer is wrong, I need to rethink this question."
    )
    drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 3)
    tfs = next(n for n in tree if n.type == "thinking_from_scratch")
    assert tfs.role == "B" and tfs.parent == refl[1].id and tfs.text.endswith("redo")
    # Reflections never cost an LLM call.
    all_requests = gens["A"].requests + gens["B"].requests
    assert not any(last_open_tag(r.prompt) == "reflection" for r in all_requests)


def test_reflections_per_ancestor_are_capped():
    for cap in (1, 2):
        search, gens = make(
            BACKTRACK,
            MCTSConfig(max_depth=6, max_rollouts=30, max_reflections_per_node=cap),
            a_script={"answer": "5}"},
        )
        drive(search, gens)
        per_parent = [
            sum(1 for c in search.tree.children(n.id) if c.type == "reflection") for n in search.tree
        ]
        assert max(per_parent) == cap


def test_no_reflection_without_a_target_ancestor_or_room():
    # The root's wrong answer has no double_check above it.
    search2, gens2 = make(
        dict(BACKTRACK, root={"answer": 1, "thinking": 1}),
        MCTSConfig(max_rollouts=1),
        a_script={"answer": "5}"},
    )
    drive(search2, gens2)
    assert search2.tree.stats["rollouts"] == 1 and search2.tree.stats["reflections"] == 0
    # A double_check at depth max_depth - 1 leaves no room for reflection + answer.
    search3, gens3 = make(BACKTRACK, MCTSConfig(max_depth=3, max_rollouts=1), a_script={"answer": "5}"})
    drive(search3, gens3)
    assert [n.type for n in search3.tree.path(search3.tree.answer_nodes()[0].id)] == [
        "thinking",
        "double_check",
        "answer",
    ]
    assert search3.tree.stats["reflections"] == 0


# thinking → double_check → (answer, thinking); a reflection under the double_check is rethought by model B.
# With max_depth=5, rollout 1 ends at d2's answer a3 (node 3) and places reflection r5 under d2, beside the
# unvisited thinking t4.
REFLECT_NEXT = {
    "root": {"thinking": 1},
    "transfer": {
        "thinking": {"double_check": 1},
        "double_check": {"answer": 1, "thinking": 1},
        "reflection": {"thinking_from_scratch": 1},
        "thinking_from_scratch": {"answer": 1},
    },
    "backtrack_to": "double_check",
    "reflection_text": REFLECTION,
}


def recording_selection(search: MCTS) -> list[tuple[int, int]]:
    """Record (rollouts done, node id) for every UCT/first-unvisited selection the search makes."""
    calls: list[tuple[int, int]] = []
    original = search.select_child

    def select_child(node):
        calls.append((search.tree.stats["rollouts"], node.id))
        return original(node)

    search.select_child = select_child  # type: ignore[method-assign]
    return calls


@pytest.mark.parametrize("first", [True, False])
def test_the_rollout_after_a_wrong_answer_expands_its_reflection(first):
    search, gens = make(
        REFLECT_NEXT,
        MCTSConfig(max_depth=5, max_rollouts=3, reflection_first=first),
        a_script={"answer": answers("5}", "4}")},
        b_script={"thinking-from-scratch": " redo"},
    )
    tree = search.tree
    calls = recording_selection(search)
    drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 1)
    t1, d2, a3, t4, r5 = (tree.node(i) for i in range(1, 6))
    assert [n.type for n in (t1, d2, a3, t4, r5)] == [
        "thinking",
        "double_check",
        "answer",
        "thinking",
        "reflection",
    ]
    assert a3.visits == 1 and a3.correct is False and r5.parent == d2.id and tree.stats["reflections"] == 1
    (pending,) = search.pending_requests()
    if not first:
        # The reference order: rollout 2 takes d2's first unvisited child, the thinking t4, and expands it.
        assert (pending.child_type, pending.node_id) == ("double_check", t4.id)
        drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 2)
        assert not r5.expanded and r5.visits == 0 and tree.stats["reflections_expanded"] == 0
        return
    # Rollout 2 goes straight to the reflection and expands it: model B rethinks after the fixed text.
    assert (pending.role, pending.child_type, pending.node_id) == ("B", "thinking_from_scratch", r5.id)
    assert pending.request.prompt.endswith(
        f"<reflection>{REFLECTION}</reflection>\n<thinking-from-scratch>"
        "The previous answer is wrong, I need to rethink this question."
    )
    drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 2)
    assert r5.expanded and r5.visits == 1 and not t4.expanded and t4.visits == 0
    tfs, a7 = tree.node(6), tree.node(7)
    assert (tfs.type, tfs.parent, a7.type, a7.parent, a7.correct) == (
        "thinking_from_scratch",
        r5.id,
        "answer",
        tfs.id,
        True,
    )
    # The path to the reflection was fixed: no selection at the root, t1 or d2 during rollout 2 ...
    assert [node for done, node in calls if done == 1] == [r5.id, tfs.id]
    # ... but backpropagation still reached every ancestor.
    assert [(n.visits, n.value_sum) for n in (tree.root, t1, d2)] == [(2, 1.0)] * 3
    assert tree.stats["reflections_expanded"] == 1 and tree.stats["correct_via_reflection"] == 1
    # Rollout 3 selects from the root again.
    drive(search, gens)
    assert (2, 0) in calls and search.stop_reason == "max_rollouts"


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        (MCTSConfig(max_depth=5, max_rollouts=1), "max_rollouts"),
        (MCTSConfig(max_depth=5, early_stop_rollouts=1, early_stop_correct=0), "early_stop"),
    ],
)
def test_stop_rules_apply_before_the_reflection_rollout(config, reason):
    # The wrong answer of the last rollout places a reflection the search can no longer explore: the stop
    # rule wins, nothing is left pending and the reflection stays an unexpanded leaf, counted as placed.
    search, gens = make(REFLECT_NEXT, config, a_script={"answer": "5}"})
    drive(search, gens)
    assert search.done and search.stop_reason == reason and not search.pending_requests()
    (refl,) = [n for n in search.tree if n.type == "reflection"]
    assert not refl.expanded and refl.visits == 0 and not search.tree.children(refl.id)
    assert search.tree.stats["rollouts"] == 1
    assert (search.tree.stats["reflections"], search.tree.stats["reflections_expanded"]) == (1, 0)
    assert not any(last_open_tag(r.prompt) == "thinking-from-scratch" for r in gens["B"].requests)


def test_reflection_first_explores_every_reflection_the_search_has_time_for():
    def run(first: bool) -> dict:
        cfg = MCTSConfig(max_depth=6, max_rollouts=16, max_node_tokens=40, reflection_first=first)
        search, gens = make("math-small", cfg, a_script={"answer": "5}"})
        drive(search, gens)
        return reflection_stats(search.tree)

    before, after = run(False), run(True)
    assert after["reflections"] >= 2
    # Only a reflection placed by the very last rollout can stay unexpanded.
    assert after["reflections_expanded"] >= after["reflections"] - 1
    assert before["reflections_expanded"] < before["reflections"] - 1


def test_reflection_stats_read_any_tree_and_match_the_search_stats():
    search, gens = make(
        REFLECT_NEXT,
        MCTSConfig(max_depth=5, max_rollouts=6, stop_at_correct=99, early_stop_rollouts=99),
        a_script={"answer": answers("5}", "4}", "4}", "5}")},
    )
    drive(search, gens)
    tree = search.tree
    st = tree.stats
    assert st["reflections"] >= 1 and st["reflections_expanded"] >= 1 and st["correct_via_reflection"] >= 1
    assert st["correct_via_reflection"] < st["correct_paths"]  # some correct answers need no reflection
    expected = {
        k: st[k] for k in ("reflections", "reflections_expanded", "correct_paths", "correct_via_reflection")
    }
    assert reflection_stats(tree) == expected
    # A tree written before these stats existed (JSON without the keys) is measured from its nodes.
    old = tree.to_dict()
    old["stats"] = {
        k: v for k, v in old["stats"].items() if k not in ("reflections_expanded", "correct_via_reflection")
    }
    assert reflection_stats(old) == reflection_stats(Tree.from_dict(old)) == expected
    summary = reflection_summary([tree, old])
    assert summary == {
        "reflections_placed": 2 * st["reflections"],
        "reflections_expanded": 2 * st["reflections_expanded"],
        "reflections_expanded_share": round(st["reflections_expanded"] / st["reflections"], 4),
        "correct_paths": 2 * st["correct_paths"],
        "correct_via_reflection": 2 * st["correct_via_reflection"],
        "correct_via_reflection_share": round(st["correct_via_reflection"] / st["correct_paths"], 4),
    }
    empty = reflection_summary([Tree(problem=toy_problem())])
    assert empty["reflections_placed"] == 0 and empty["reflections_expanded_share"] is None
    assert empty["correct_via_reflection_share"] is None


# -- stop rules ------------------------------------------------------------------------------------------


def test_stops_at_8_correct():
    search, gens = make(FAN)
    drive(search, gens)
    assert search.stop_reason == "enough_correct"
    assert search.tree.stats["correct_paths"] == 8 and search.tree.stats["rollouts"] == 8
    assert not search.pending_requests() and search.done


def test_correct_paths_count_distinct_answers_not_revisits():
    # A single chain: once both children of a node are visited and tie, UCT may re-select an answer;
    # re-selecting it is a rollout but not a new correct path.
    search, gens = make(CHAIN, MCTSConfig(max_depth=3, max_rollouts=20))
    drive(search, gens)
    assert search.tree.stats["correct_paths"] == len(search.tree.answer_nodes()) == 2  # depths 2 and 3
    assert search.tree.stats["correct_rollouts"] == search.tree.stats["rollouts"] == 20
    assert search.stop_reason == "max_rollouts"


def test_stops_after_32_rollouts_with_4_correct():
    search, gens = make(FAN, a_script={"answer": first_n_correct(4)})
    drive(search, gens)
    assert search.stop_reason == "early_stop"
    assert search.tree.stats["rollouts"] == 32 and search.tree.stats["correct_paths"] == 4


def test_gives_up_at_128_rollouts():
    search, gens = make(CHAIN, a_script={"answer": first_n_correct(3)})
    drive(search, gens)
    assert search.stop_reason == "max_rollouts"
    assert search.tree.stats["rollouts"] == 128 and search.tree.stats["correct_paths"] == 3


def test_stop_rules_are_configurable():
    cfg = MCTSConfig(stop_at_correct=2, early_stop_rollouts=5, early_stop_correct=1, max_rollouts=9)
    search, gens = make(FAN, cfg)
    assert drive(search, gens).stop_reason == "enough_correct" and search.tree.stats["rollouts"] == 2
    search, gens = make(FAN, cfg, a_script={"answer": first_n_correct(1)})
    assert drive(search, gens).stop_reason == "early_stop" and search.tree.stats["rollouts"] == 5
    search, gens = make(FAN, cfg, a_script={"answer": "5}"})
    assert drive(search, gens).stop_reason == "max_rollouts" and search.tree.stats["rollouts"] == 9


# -- caps ----------------------------------------------------------------------------------------------------


def test_depth_cap_forces_answers_at_the_last_level():
    patterns = {"root": {"thinking": 1}, "transfer": {"thinking": {"thinking": 1, "answer": 2}}}
    search, gens = make(patterns, MCTSConfig(max_depth=4, max_rollouts=1))
    drive(search, gens)
    tree = search.tree
    deepest_thinking = max((n for n in tree if n.type == "thinking"), key=lambda n: n.depth)
    assert deepest_thinking.depth == 3
    assert [c.type for c in tree.children(deepest_thinking.id)] == [
        "answer",
        "answer",
    ]  # the row's answer count
    assert max(n.depth for n in tree) == 4
    assert len(tree.path(tree.answer_nodes()[-1].id)) == 4
    # max_depth=1: the root itself may only create answers (default 1 sample when its row has none).
    search, gens = make(patterns, MCTSConfig(max_depth=1, max_rollouts=1))
    assert [(p.child_type, p.request.n) for p in search.pending_requests()] == [("answer", 1)]


def test_token_cap_truncates_and_truncated_nodes_only_answer():
    patterns = {
        "root": {"thinking": 1},
        "types": {"answer": {"max_tokens": 3}, "thinking": {"max_tokens": 50}},
        "transfer": {"thinking": {"thinking": 1, "answer": 1}},
    }
    long = "one two three four five six seven"
    search, gens = make(patterns, MCTSConfig(max_node_tokens=5, max_rollouts=1), a_script={"thinking": long})
    drive(search, gens)
    tree = search.tree
    cut = tree.node(1)
    assert (cut.finish_reason, cut.n_tokens, cut.text) == ("length", 5, " one two three four five")
    assert [c.type for c in tree.children(cut.id)] == ["answer"]  # no further thinking under a cut node
    assert tree.serialize_path(cut.id) == "<thinking> one two three four five</thinking>"
    caps = {last_open_tag(r.prompt): r.max_tokens for r in gens["A"].requests}
    assert caps == {"thinking": 5, "answer": 3}  # min(type cap, config cap)
    # expand_truncated: a cut node expands by its transfer row like a closed one.
    config = MCTSConfig(max_node_tokens=5, max_rollouts=1, expand_truncated=True)
    search, gens = make(patterns, config, a_script={"thinking": long})
    drive(search, gens)
    cut = search.tree.node(1)
    assert cut.finish_reason == "length"
    assert [c.type for c in search.tree.children(cut.id)] == ["thinking", "answer"]
    with pytest.raises(ValueError, match="expand_truncated must be true or false"):
        MCTSConfig(expand_truncated="yes")


# -- value modes ---------------------------------------------------------------------------------------


def test_token_confidences_match_marco_o1_v1():
    # Sampled token among the top-k: its probability renormalised over the top-k.
    assert token_confidences([-0.1], [[-0.1, -2.0]]) == pytest.approx([1 / (1 + math.exp(-1.9))])
    # Sampled token outside the top-k: added to the set.
    expect = math.exp(-3) / (math.exp(-1) + math.exp(-2) + math.exp(-3))
    assert token_confidences([-3.0], [[-1.0, -2.0]]) == pytest.approx([expect])
    assert token_confidences([-0.7], [[]]) == [1.0]
    with pytest.raises(ValueError, match="1 positions but top_logprobs has 2"):
        token_confidences([-1.0], [[-1.0], [-2.0]])


def test_path_confidence_is_token_weighted():
    search, _ = make(CHAIN)
    tree = Tree(problem=toy_problem())
    a = tree.add_node(0, "thinking", confidence=0.5, n_tokens=2)
    b = tree.add_node(a.id, "reflection", confidence=None, n_tokens=0)
    c = tree.add_node(b.id, "answer", confidence=0.8, n_tokens=6, terminal=True)
    search.tree = tree
    assert search.path_confidence(c.id) == pytest.approx((0.5 * 2 + 0.8 * 6) / 8)


def test_confidence_mode_scores_answers_without_ground_truth():
    cfg = MCTSConfig(value_mode="confidence", max_rollouts=6, max_depth=5)
    search, gens = make(BACKTRACK, cfg, a_script={"answer": "5}"})
    drive(search, gens)
    tree = search.tree
    assert {r.logprobs for r in gens["A"].requests + gens["B"].requests} == {5}
    one = 1 / sum(math.exp(-j) for j in range(5))  # fake: each token's top-5 are lp, lp-1, …, lp-4
    assert all(n.confidence == pytest.approx(one) for n in tree if n.n_tokens)
    for a in tree.answer_nodes():
        assert a.reward == pytest.approx(search.path_confidence(a.id)) and 0 < a.reward < 1
        assert a.correct is False  # still verified, for the record
    assert tree.stats["reflections"] == 0  # no backtracking without ground truth
    assert search.stop_reason == "max_rollouts"
    # Correct answers do not stop a confidence search early either.
    search, gens = make(FAN, MCTSConfig(value_mode="confidence", max_rollouts=12))
    assert drive(search, gens).stop_reason == "max_rollouts" and search.tree.stats["correct_paths"] == 12


def test_confidence_mode_needs_top_logprobs():
    bare = Completion(text="x", n_tokens=1)
    search, gens = make(CHAIN, MCTSConfig(value_mode="confidence"), a_script={"thinking": bare})
    with pytest.raises(
        ValueError, match="needs per-token top log-probs, but the generator for role A returned none"
    ):
        drive(search, gens)


def test_logprobs_are_not_requested_when_disabled():
    search, gens = make(CHAIN, MCTSConfig(record_logprobs=False, max_rollouts=1))
    drive(search, gens)
    assert {r.logprobs for r in gens["A"].requests} == {None}
    assert all(n.mean_logprob is None for n in search.tree)


# -- state machine errors -------------------------------------------------------------------------------


def test_feed_checks_its_input():
    search, gens = make(
        {"root": {"sub_task": 2, "thinking": 1}, "transfer": CHAIN["transfer"] | {"sub_task": {"answer": 1}}}
    )
    pending = search.pending_requests()
    good = [gens["A"].generate([p.request])[0] for p in pending]
    with pytest.raises(ValueError, match="expected 2 results, got 1"):
        search.feed(good[:1])
    short = [GenerationResult(completions=good[0].completions[:1]), good[1]]
    with pytest.raises(
        ValueError, match=r"returned 1 completions for a request with n=2 .*child type 'sub_task'"
    ):
        search.feed(short)
    search.feed(good)
    done, dgens = make(CHAIN, MCTSConfig(max_rollouts=1))
    drive(done, dgens)
    with pytest.raises(RuntimeError, match="is not waiting for generations"):
        done.feed([])


def test_missing_inputs_are_named():
    pats = load_patterns("math")
    with pytest.raises(
        ValueError,
        match=r"chat_prompts has no prompt for role 'B'.*\['double_check', 'thinking_from_scratch'\]",
    ):
        MCTS(toy_problem(), ToyMathTask(), pats, chat_prompts={"A": "x"})
    with pytest.raises(ValueError, match="problem has no 'id' field"):
        MCTS({"question": "q"}, ToyMathTask(), pats, chat_prompts={"A": "x", "B": "y"})
    with pytest.raises(ValueError, match=r"no generator for role 'B'.*pass generators="):
        run_search([toy_problem()], ToyMathTask(), "math", {"A": FakeGenerator()})
    with pytest.raises(ValueError, match="generators has unknown role 'C'"):
        run_search(
            [toy_problem()],
            ToyMathTask(),
            "math",
            {"A": FakeGenerator(), "B": FakeGenerator(), "C": FakeGenerator()},
        )
    with pytest.raises(ValueError, match="run_search needs generators"):
        run_search([toy_problem()], ToyMathTask(), "math")


# -- driver: batching, determinism ---------------------------------------------------------------------------


PROBLEMS = [
    toy_problem("What is 2 + 2?", "4"),
    toy_problem("What is 1 + 3?", "4"),
    toy_problem("What is 5 - 1?", "4"),
]


def question_of(prompt: str) -> str:
    return prompt.split("<|user|>\n")[1].split("\n")[0]


def count_feeds(monkeypatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    original = MCTS.feed

    def feed(self, results):
        counts[self.problem_id] = counts.get(self.problem_id, 0) + 1
        return original(self, results)

    monkeypatch.setattr(MCTS, "feed", feed)
    return counts


def strip_time(tree: Tree) -> dict:
    d = tree.to_dict()
    d["stats"] = {k: v for k, v in d["stats"].items() if k != "wall_seconds"}
    return d


def by_prompt(request, i):
    """Right or wrong depending on the prompt only, so a problem's answers do not depend on batching."""
    return "4}" if (len(request.prompt) + i) % 3 else "5}"


def test_run_search_batches_problems_in_lock_step(monkeypatch):
    feeds = count_feeds(monkeypatch)

    def gens():
        return {
            "A": FakeGenerator({"answer": by_prompt}, role="A", default="step"),
            "B": FakeGenerator(role="B", default="check"),
        }

    g = gens()
    cfg = MCTSConfig(max_rollouts=10)
    trees = run_search(PROBLEMS, ToyMathTask(), "math", g, cfg)
    a, b = g["A"], g["B"]
    assert [t.problem_id for t in trees] == [p["id"] for p in PROBLEMS]
    steps = max(feeds.values())
    # ONE generate call per role per step, and every call mixes the problems that need that role.
    assert len(a.calls) <= steps and len(b.calls) <= steps and len(a.calls) + len(b.calls) >= steps
    first = a.calls[0]
    assert len(first) == 3 and {question_of(r.prompt) for r in first} == {p["question"] for p in PROBLEMS}
    assert all(last_open_tag(r.prompt) in {"sub-task", "thinking", "answer"} for r in a.requests)
    assert all(last_open_tag(r.prompt) in {"double-check", "thinking-from-scratch"} for r in b.requests)
    assert b.requests and sum(t.stats["llm_calls"] for t in trees) == len(a.requests) + len(b.requests)
    # Interleaving does not change any search: each tree equals the one searched alone.
    for p, tree in zip(PROBLEMS, trees):
        alone = run_search([p], ToyMathTask(), "math", gens(), cfg)[0]
        assert strip_time(alone) == strip_time(tree)


def test_one_generator_for_both_roles_gets_one_call_per_step(monkeypatch):
    feeds = count_feeds(monkeypatch)
    gen = FakeGenerator(role="A", default="step", script={"answer": "4}"})
    trees = run_search(PROBLEMS, ToyMathTask(), "math", gen, MCTSConfig(max_rollouts=5))
    assert len(gen.calls) == max(feeds.values())
    # Requests of both roles travel in the same call when one generator serves both.
    assert any({last_open_tag(r.prompt) for r in call} >= {"double-check", "answer"} for call in gen.calls)
    assert trees[0].generator["models"] == {"A": "fake-A", "B": "fake-A"}
    assert trees[0].generator["backend"] == {"A": "FakeGenerator", "B": "FakeGenerator"}
    assert trees[0].generator["sampling"] == {"temperature": 0.7, "top_p": 0.9, "max_node_tokens": 512}


def test_max_in_flight_and_progress():
    gen = FakeGenerator(role="A", default="step", script={"answer": "4}"})
    seen = []
    trees = run_search(
        PROBLEMS,
        ToyMathTask(),
        "math",
        gen,
        MCTSConfig(max_rollouts=3),
        progress=lambda d, n, t: seen.append((d, n, t.problem_id)),
        max_in_flight=1,
    )
    assert all(len({question_of(r.prompt) for r in call}) == 1 for call in gen.calls)
    assert seen == [(i + 1, 3, p["id"]) for i, p in enumerate(PROBLEMS)]
    assert [t.problem_id for t in trees] == [p["id"] for p in PROBLEMS]
    bar_trees = run_search(
        PROBLEMS[:1], ToyMathTask(), "math", gen, MCTSConfig(max_rollouts=1), progress=True
    )
    assert bar_trees[0].stats["rollouts"] == 1
    steps: list[list[tuple[str, int]]] = []
    calls_before = len(gen.calls)
    run_search(
        PROBLEMS[:2],
        ToyMathTask(),
        "math",
        gen,
        MCTSConfig(max_rollouts=2),
        on_step=lambda live: steps.append([(t.problem_id, t.stats["rollouts"]) for t in live]),
    )
    assert len(steps) == len(gen.calls) - calls_before, "one callback per step (one generate call)"
    assert {pid for step in steps[:-1] for pid, _ in step} == {p["id"] for p in PROBLEMS[:2]}
    assert steps[-1] == [], "the last step finishes every search"
    rollouts = [sum(r for _, r in step) for step in steps[:-1]]
    assert rollouts == sorted(rollouts) and max(rollouts) >= 1, "live counts grow"
    with pytest.raises(ValueError, match="max_in_flight must be a positive integer"):
        run_search(PROBLEMS, ToyMathTask(), "math", gen, max_in_flight=0)


def test_searches_are_deterministic_given_the_seed():
    def run(seed: int):
        gen = FakeGenerator({"answer": answers("5}", "5}", "4}")}, role="A", default="step")
        trees = run_search(
            PROBLEMS[:2], ToyMathTask(), "blocksworld", gen, MCTSConfig(seed=seed, max_rollouts=12)
        )
        return (
            [strip_time(t) for t in trees],
            [r.seed for r in gen.requests],
            [r.prompt for r in gen.requests],
        )

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first[1] != other[1]  # request seeds follow the config seed
    # Hypothesis prefills ("Maybe" / "Alternatively,") are drawn from the seeded RNG.
    prefills = {
        p.rsplit("<hypothesis>", 1)[1]
        for p in first[2] + other[2]
        if p.endswith(("<hypothesis>Maybe", "<hypothesis>Alternatively,"))
    }
    assert prefills == {"Maybe", "Alternatively,"}
    assert first[0][0]["config_hash"] == first[0][1]["config_hash"] != other[0][0]["config_hash"]


def test_searched_tree_json_round_trip_and_record():
    gen = FakeGenerator({"answer": answers("5}", "4}")}, role="A", default="step")
    (tree,) = run_search(PROBLEMS[:1], ToyMathTask(), "math", gen, MCTSConfig(max_rollouts=20))
    data = json.loads(tree.to_json())
    assert Tree.from_dict(data).to_dict() == tree.to_dict()
    assert data["config"]["patterns"] == "math" and data["config"]["c"] == 1.414
    stats = data["stats"]
    for key in (
        "llm_calls",
        "prefill_tokens",
        "generated_tokens",
        "cache_hit_tokens",
        "wall_seconds",
        "rollouts",
        "correct_paths",
    ):
        assert key in stats
    assert stats["generated_tokens"] == sum(n["n_tokens"] for n in data["nodes"])
    assert stats["prefill_tokens"] == sum(len(r.prompt.split()) for r in gen.requests)
    assert stats["samples"] == len(data["nodes"]) - 1 - stats["reflections"]
    assert all(n["expanded"] or n["terminal"] or n["visits"] == 0 for n in data["nodes"])


def test_extra_stop_strings_end_a_step_at_a_paragraph_break():
    chain = {**CHAIN, "types": {"thinking": {"stop": ["\n\n"]}}}
    search, gens = make(chain, MCTSConfig(max_rollouts=1), a_script={"thinking": "first step\n\nsecond step"})
    (pending,) = search.pending_requests()
    assert pending.request.stop[:3] == ["</thinking>", "\n\n", "<sub-task>"]  # then every section tag
    plain, _ = make(chain, MCTSConfig(max_rollouts=1, stop_at_any_tag=False))
    assert plain.pending_requests()[0].request.stop == ["</thinking>", "\n\n"]
    drive(search, gens)
    thinking = search.tree.children(0)[0]
    assert thinking.text == "first step" and thinking.finish_reason == "stop"
    assert any(c.type == "thinking" for c in search.tree.children(thinking.id)), (
        "a finished step expands fully"
    )
    assert load_patterns(
        chain | {"types": {"answer": {"prefills": ["x"]}, "thinking": {"stop": ["\n\n"]}}}
    ).node_type("thinking").stop == ("\n\n",)
    with pytest.raises(ValueError, match=r"types\.thinking\.stop"):
        Patterns.from_dict({**CHAIN, "types": {"thinking": {"stop": [""]}}})


SECTION_TAGS = [
    f"{o}{tag}>"
    for tag in (
        "sub-task",
        "thinking",
        "hypothesis",
        "double-check",
        "reflection",
        "reclarify",
        "thinking-from-scratch",
        "answer",
    )
    for o in ("<", "</")
]


def test_requests_stop_at_every_section_tag():
    cfg = MCTSConfig(max_depth=6, max_rollouts=6, max_node_tokens=40)
    search, gens = make("math-small", cfg, a_script={"answer": "5}"})
    (pending,) = search.pending_requests()
    # The node's own closing tag first (as before), its type's stop strings, then every tag once.
    assert pending.request.stop == ["</sub-task>", "\n\n"] + [t for t in SECTION_TAGS if t != "</sub-task>"]
    drive(search, gens)
    requests = gens["A"].requests + gens["B"].requests
    pats = search.patterns
    assert {last_open_tag(r.prompt) for r in requests} >= {"sub-task", "thinking", "double-check", "answer"}
    for r in requests:
        t = next(t for t in pats.types.values() if t.tag == last_open_tag(r.prompt))
        assert r.stop[: 1 + len(t.stop)] == [f"</{t.tag}>", *t.stop]
        assert set(r.stop) == {*SECTION_TAGS, *t.stop} and len(r.stop) == len(set(r.stop))
    # stop_at_any_tag=False: the node's closing tag and its type's stop strings only (the old list).
    search, gens = make("math-small", MCTSConfig(**{**cfg.to_dict(), "stop_at_any_tag": False}))
    drive(search, gens, until=lambda s: s.tree.stats["rollouts"] >= 1)
    for r in gens["A"].requests + gens["B"].requests:
        t = next(t for t in pats.types.values() if t.tag == last_open_tag(r.prompt))
        assert r.stop == [f"</{t.tag}>", *t.stop]


def test_a_section_tag_written_inside_a_node_ends_it():
    written = "2 + 2 = 4.</sub-task>\n<thinking> So 4"
    for any_tag, text in ((True, "2 + 2 = 4."), (False, written)):
        cfg = MCTSConfig(max_rollouts=1, stop_at_any_tag=any_tag)
        search, gens = make(CHAIN, cfg, a_script={"thinking": written, "answer": "4}<answer>x"})
        drive(search, gens)
        thinking = search.tree.node(1)
        assert thinking.type == "thinking" and thinking.text == text and thinking.finish_reason == "stop"
        if any_tag:
            assert search.tree.serialize_path(thinking.id) == "<thinking>2 + 2 = 4.</thinking>"
            answer = search.tree.answer_nodes()[0]
            assert answer.text.endswith("\\boxed{4}") and answer.correct
