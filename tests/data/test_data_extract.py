"""Trees → SFT and preference rows; Thoughts Length Balance; pair invariants."""

import re

import pytest

from treecot.data.balance import LENGTH_CHOICES, plot_length_histograms, rank_labels, select_by_length
from treecot.data.extract import (
    DEFECT_REASONS,
    PAIR_RULES,
    BuildReport,
    build_datasets,
    build_rows,
    node_defects,
    path_defects,
    shared_prefix,
    shared_prefix_stats,
    stray_tags,
    token_shared_prefix,
    tree_paths,
)
from treecot.search.tree import Node, Tree


class WordTokenizer:
    """One token per whitespace-separated word (with the whitespace before it): lengths are word counts,
    and decoding the "ids" (the word strings) gives the text back exactly."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": re.findall(r"\s*\S+|\s+$", text)}

    def decode(self, ids, skip_special_tokens=False, clean_up_tokenization_spaces=False):
        return "".join(ids)


TAGS = {"sub_task": "sub-task", "thinking": "thinking", "double_check": "double-check", "answer": "answer",
        "reflection": "reflection"}  # fmt: skip


def add(tree, parent, type_, text, **kw):
    terminal = type_ == "answer"
    return tree.add_node(parent, type_, role="A", text=text, tag=TAGS[type_], terminal=terminal, **kw).id


def make_tree(pid="p1"):
    """root ─ s1 ─ t1 ─ a1 (correct, short)
    │     └ t2 ─ a2 (wrong)
    │          └ a3 (correct, long)
    └ s2 ─ a4 (wrong)"""
    tree = Tree(
        problem={"id": pid, "task": "gsm8k", "question": "What is 6*7?", "reference": "42", "meta": {}}
    )
    s1 = add(tree, 0, "sub_task", "Firstly, break it down.")
    t1 = add(tree, s1, "thinking", "six times seven")
    add(tree, t1, "answer", r"The answer is: \boxed{42}", correct=True, reward=1.0)
    t2 = add(tree, t1, "thinking", "let me compute this much more carefully step by step by step")
    add(tree, t2, "answer", r"The answer is: \boxed{41}", correct=False, reward=0.0)
    add(
        tree,
        t2,
        "answer",
        r"so six sevens make forty two The answer is: \boxed{42}",
        correct=True,
        reward=1.0,
    )
    s2 = add(tree, 0, "sub_task", "A different plan.")
    add(tree, s2, "answer", r"The answer is: \boxed{40}", correct=False, reward=0.0)
    return tree


def test_rank_labels_and_selection():
    assert rank_labels([30, 10, 20]) == ["longest", "shortest", "medium"]
    assert rank_labels([5]) == ["longest"]
    assert rank_labels([7, 7]) == ["shortest", "longest"], "ties: earlier counts as shorter"
    items = [30, 10, 20, 40]
    assert select_by_length(items, "shortest", key=int) == [10]
    assert select_by_length(items, "longest", key=int) == [40]
    assert select_by_length(items, "medium", key=int) == [20]
    assert select_by_length(items, "all", key=int) == items
    assert select_by_length([], "longest", key=int) == []
    assert LENGTH_CHOICES == ("shortest", "medium", "longest", "all")
    with pytest.raises(ValueError, match="must be one of"):
        select_by_length(items, "longer", key=int)


def test_sft_rows_use_the_longest_correct_path_by_default():
    tree = make_tree()
    sft, dpo, report = build_rows([tree], WordTokenizer(), system_prompt="SYS")
    assert len(sft) == 1
    row = sft[0]
    assert row["messages"][0] == {"role": "system", "content": "SYS"}
    assert row["messages"][1] == {"role": "user", "content": "What is 6*7?"}
    assert row["messages"][2]["content"].endswith(
        r"<answer>so six sevens make forty two The answer is: \boxed{42}</answer>"
    )
    assert row["messages"][2]["content"].startswith(
        "<sub-task>Firstly, break it down.</sub-task>\n<thinking>"
    )
    assert row["length_rank"] == "longest" and row["source"] == "mcts" and row["problem_id"] == "p1"
    assert row["node_ids"] == [1, 2, 4, 6]
    assert row["n_tokens"] == len(row["messages"][2]["content"].split())
    sft_short, _, _ = build_rows([tree], WordTokenizer(), sft_length="shortest")
    assert sft_short[0]["node_ids"] == [1, 2, 3] and sft_short[0]["length_rank"] == "shortest"
    sft_all, _, _ = build_rows([tree], WordTokenizer(), sft_length="all")
    assert {r["length_rank"] for r in sft_all} == {"shortest", "longest"}


def test_pairs_use_shortest_shared_prefix_and_invariants():
    tree = make_tree()
    _, dpo, _ = build_rows([tree], WordTokenizer())  # dpo_length defaults to shortest
    assert len(dpo) == 1
    pair = dpo[0]
    assert pair["chosen_node_ids"] == [1, 2, 3], "the shortest correct path"
    # a2 shares s1+t1 with the chosen path, a4 shares nothing: the shortest shared prefix wins.
    assert pair["rejected_node_ids"] == [7, 8]
    assert pair["shared_prefix"] == "" and pair["shared_prefix_tokens"] == 0
    _, dpo_long, _ = build_rows([tree], WordTokenizer(), dpo_length="longest")
    p = dpo_long[0]
    assert p["chosen_node_ids"] == [1, 2, 4, 6] and p["rejected_node_ids"] == [7, 8]
    for pair in dpo + dpo_long:
        assert pair["chosen"].startswith(pair["shared_prefix"]) and pair["rejected"].startswith(
            pair["shared_prefix"]
        )
        assert r"\boxed{42}" in pair["chosen"] and r"\boxed{42}" not in pair["rejected"]


def test_shared_prefix_text_and_tie_break_by_closest_length():
    tree = Tree(problem={"id": "p", "task": "gsm8k", "question": "q", "reference": "1", "meta": {}})
    s = add(tree, 0, "sub_task", "plan")
    add(tree, s, "answer", r"\boxed{1}", correct=True)  # chosen: 2 nodes
    add(tree, s, "answer", r"wrong wrong wrong wrong \boxed{2}", correct=False)
    add(tree, s, "answer", r"w \boxed{3}", correct=False)
    count = lambda t: len(t.split())  # noqa: E731
    correct = tree_paths(tree, count, correct=True)
    wrong = tree_paths(tree, count, correct=False)
    text, k = shared_prefix(correct[0], wrong[0])
    assert text == "<sub-task>plan</sub-task>\n" and k == 1, "node-level sharing: whole nodes"
    _, dpo, _ = build_rows([tree], WordTokenizer())
    assert dpo[0]["rejected"].endswith(r"w \boxed{3}</answer>"), (
        "equal shared prefix: the closest length wins"
    )
    # token level: the one shared "word" (the separator belongs to the next token)
    assert dpo[0]["shared_prefix"] == "<sub-task>plan</sub-task>"
    assert dpo[0]["shared_prefix_tokens"] == 1 and dpo[0]["shared_prefix_nodes"] == 1


def test_problems_without_paths_are_reported_and_duplicates_dropped():
    only_wrong = Tree(problem={"id": "w", "task": "gsm8k", "question": "q2", "reference": "1", "meta": {}})
    add(only_wrong, 0, "answer", r"\boxed{2}", correct=False)
    only_right = Tree(problem={"id": "r", "task": "gsm8k", "question": "q3", "reference": "1", "meta": {}})
    add(only_right, 0, "answer", r"\boxed{1}", correct=True)
    sft, dpo, report = build_rows([make_tree(), make_tree(), only_wrong, only_right], WordTokenizer())
    assert report.trees == 4
    assert report.problems_without_correct_path == ["w"]
    assert report.problems_without_wrong_path == ["r"]
    assert report.sft_duplicates_dropped == 1 and report.dpo_duplicates_dropped == 1
    assert len(sft) == 2 and len(dpo) == 1
    assert "1 problems had no correct path" in report.summary()
    assert report.to_dict()["n_problems_without_wrong_path"] == 1


def test_build_rows_validates_options():
    with pytest.raises(ValueError, match="sft_length must be one of"):
        build_rows([make_tree()], WordTokenizer(), sft_length="long")
    with pytest.raises(ValueError, match="student tokenizer is required"):
        build_rows([make_tree()], None)


def test_length_histograms_written(tmp_path):
    paths = plot_length_histograms(
        {"gsm8k": {"all": [10, 20, 30], "sft": [30]}, "empty": {"all": []}}, tmp_path
    )
    assert [p.name for p in paths] == ["length_hist_gsm8k.png"]
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ clean paths
LOOP = "so the total is 12 apples and 3 pears. " * 6


def _node(text, finish_reason="stop", type_="thinking", **kw):
    return Node(id=1, parent=0, type=type_, text=text, tag=TAGS[type_], finish_reason=finish_reason, **kw)


def test_node_defects_name_each_reason():
    assert DEFECT_REASONS == ("truncated", "repetition", "stray_tag", "answer_format")
    cut = _node(r"The answer is: \boxed{24}\textbf{boxes} + \textbf", "length", "answer")
    assert node_defects(cut) == ["truncated"], "an answer cut at its cap is not clean, boxed or not"
    assert node_defects(_node(LOOP)) == ["repetition"]
    assert node_defects(_node("6 * 7 = 42, so 42 apples in all.")) == []
    for stray in (
        "first part</sub-task> more thinking",
        "<thought-process> I think",
        "so 42 <</thinking>",
        "so 42 </thinking",
        "now <Thinking> again",
        "<think>hidden</think> 42",
        "it ends in a cut tag </sub",
        "it ends in a cut tag <double-",
    ):
        assert node_defects(_node(stray)) == ["stray_tag"], stray
    for fine in ("x < y and a<b, so 3<4 and 5 > 2", "Title: <<poem of joy>>", "<<Thinking about life>>",
                 "bold <b>x</b>", "n <", "<thinkingly"):  # fmt: skip
        assert stray_tags(fine) == [], fine
    assert stray_tags("a </thinking> b <answer>") == ["</thinking", "<answer"]
    both = _node(LOOP + "</thinking", "length")
    assert node_defects(both) == ["truncated", "repetition", "stray_tag"]
    fixed = _node("<answer>" + LOOP, "fixed", "reflection")
    assert node_defects(fixed) == [], "fixed texts are clean"
    custom = _node("so <my-step> again", type_="thinking")
    assert node_defects(custom) == [] and node_defects(custom, tags={"my-step"}) == ["stray_tag"]


def test_path_defects_union_in_reason_order_and_skip_hidden_nodes():
    tree = Tree(problem={"id": "p", "task": "gsm8k", "question": "q", "reference": "1", "meta": {}})
    s = add(tree, 0, "sub_task", "plan </sub-task> again", finish_reason="stop")
    t = add(tree, s, "thinking", "cut", finish_reason="length")
    a = add(tree, t, "answer", r"\boxed{1}", correct=True, finish_reason="stop")
    assert path_defects(tree.path(a)) == ["truncated", "stray_tag"]
    tree.node(t).in_history = False
    assert path_defects(tree.path(a)) == ["stray_tag"], "hidden nodes are not part of the text"
    cache = {}
    path_defects(tree.path(a), cache=cache)
    assert cache[s] == ["stray_tag"] and cache[a] == [] and t not in cache


def test_a_correct_answer_that_breaks_the_prompts_format_is_not_clean():
    """The verifier accepts \\boxed{9+7} for 16 and \\boxed{16}\\rightarrow 16} for 16, but the prompt asks
    for one plain number in one box: such answers are kept out of SFT rows and chosen responses."""
    from treecot.data.extract import answer_defects
    from treecot.tasks import get_task

    task = get_task("gsm8k")
    for text, why in (
        (r"The answer is: \boxed{9+7}", "not a number: 9+7"),
        (r"The answer is: \boxed{16}\rightarrow 16}", "after the box"),
        (r"The answer is: \boxed{16}</boxed>", "after the box"),
        (r"The answer is: \boxed{1}\boxed{6}", "boxes: 2"),
        (r"The answer is: \boxed{16}\]", "after the box"),
        ("The answer is: 16", "no box"),
    ):
        problems = task.answer_format_problems(text)
        assert problems and problems[0].startswith(why), (text, problems)
    for fine in (
        r"The answer is: \boxed{16}.",
        r"The answer is: \boxed{-2.5}",
        r"\boxed{16} Ben has 16 shells.",
    ):
        assert task.answer_format_problems(fine) == [], fine
    for fine in (r"The answer is: $\boxed{16}$.", r"\[\boxed{16}\]", r"\(\boxed{16}\) apples"):
        assert task.answer_format_problems(fine) == [], f"math mode around the box is fine: {fine}"
    assert task.answer_format_problems("\\boxed{\u0661\u0666}") == ["not a number: \u0661\u0666"], (
        "ASCII digits"
    )
    aime = get_task("aime24")
    assert aime.answer_format_problems(r"\boxed{35}") == []
    assert aime.answer_format_problems(r"\boxed{-5}") == ["not an integer from 0 to 999: -5"]
    assert get_task("math500").answer_format_problems(r"The answer is: \boxed{\frac{1}{2}}") == [], (
        "MATH answers may be expressions"
    )
    assert get_task("blocksworld").answer_format_problems("(unstack a b)") == [], (
        "only math tasks check boxes"
    )
    assert answer_defects(_node(r"\boxed{9+7}", type_="answer"), "gsm8k") == ["answer_format"]
    assert answer_defects(_node(r"\boxed{9+7}", type_="answer"), "no-such-task") == []

    tree = Tree(problem={"id": "f", "task": "gsm8k", "question": "q", "reference": "16", "meta": {}})
    s1 = add(tree, 0, "sub_task", "Firstly, plan it.", finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{16}", correct=True, finish_reason="stop")
    t1 = add(tree, s1, "thinking", "nine plus seven, carefully", finish_reason="stop")
    add(tree, t1, "answer", r"The answer is: \boxed{9+7}", correct=True, finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{15}", correct=False, finish_reason="stop")
    paths = tree_paths(tree, correct=True, count_tokens=lambda t: len(t.split()))
    assert [p.defects for p in paths] == [[], ["answer_format"]]
    sft, dpo, report = build_rows([tree], WordTokenizer())
    assert sft[0]["node_ids"] == [1, 2], "the longer correct path breaks the format: not the SFT row"
    assert report.correct_path_defects["answer_format"] == 1 and report.dropped_correct_paths == 1
    assert report.quality()["correct paths: answer breaks the prompt's format"] == 1
    sft_all, _, _ = build_rows([tree], WordTokenizer(), clean_chosen=False)
    assert sft_all[0]["node_ids"] == [1, 3, 4], "opting out keeps it"


def make_dirty_tree(pid="d"):
    """root ─ s1 ─ a1 (correct, short, clean)
    │    ├ a2 (correct, LONG, cut at the token cap)
    │    ├ t1 (loops) ─ a3 (correct, longer still)
    │    └ a4 (wrong, clean)
    └ s2 (stray tag) ─ a5 (wrong)"""
    tree = Tree(problem={"id": pid, "task": "gsm8k", "question": "q", "reference": "24", "meta": {}})
    s1 = add(tree, 0, "sub_task", "Firstly, plan it.", finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{24}", correct=True, finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{24}\textbf{boxes} + \textbf{boxes} + \textbf",
        correct=True, finish_reason="length")  # fmt: skip
    t1 = add(tree, s1, "thinking", LOOP, finish_reason="stop")
    add(tree, t1, "answer", r"The answer is: \boxed{24}", correct=True, finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{23}", correct=False, finish_reason="stop")
    s2 = add(tree, 0, "sub_task", "Another plan.</sub-task> and more", finish_reason="stop")
    add(tree, s2, "answer", r"The answer is: \boxed{7}", correct=False, finish_reason="stop")
    return tree


def test_unclean_paths_are_never_sft_or_chosen_by_default():
    tree = make_dirty_tree()
    sft, dpo, report = build_rows([tree], WordTokenizer())
    assert sft[0]["node_ids"] == [1, 2], "the longest CLEAN correct path, not the truncated/looping ones"
    assert sft[0]["length_rank"] == "longest", "length balance ranks clean paths only"
    assert [r["chosen_node_ids"] for r in dpo] == [[1, 2]]
    assert report.correct_paths == 3 and report.unclean_correct_paths == 2
    assert report.dropped_correct_paths == 2
    # the truncated answer also breaks the format (LaTeX after its box)
    assert report.correct_path_defects == {
        "truncated": 1,
        "repetition": 1,
        "stray_tag": 0,
        "answer_format": 1,
    }
    assert report.wrong_path_defects == {"truncated": 0, "repetition": 0, "stray_tag": 1, "answer_format": 0}
    assert report.problems_without_clean_correct_path == []
    assert (
        "2 of 3 correct paths dropped (truncated 1, repetition 1, stray_tag 0, answer_format 1)"
        in report.summary()
    )
    # the defective wrong path stays a rejected response (it shares nothing: the shortest prefix)
    assert dpo[0]["rejected_node_ids"] == [7, 8] and dpo[0]["rejected_defects"] == ["stray_tag"]
    assert report.rejected_unclean == 1
    # opting out: every correct path, as before
    sft_all, _, rep_all = build_rows([tree], WordTokenizer(), clean_chosen=False)
    assert sft_all[0]["node_ids"] == [1, 4, 5] and rep_all.dropped_correct_paths == 0
    assert rep_all.unclean_correct_paths == 2, "defects are still counted"
    # clean rejected only: the clean wrong path is the one left
    _, dpo_clean, rep_clean = build_rows([tree], WordTokenizer(), unclean_rejected=False)
    assert dpo_clean[0]["rejected_node_ids"] == [1, 6] and dpo_clean[0]["rejected_defects"] == []
    assert rep_clean.dropped_wrong_paths == 1 and rep_clean.rejected_unclean == 0


def test_problems_that_lose_every_path_to_the_filter_are_reported():
    tree = Tree(problem={"id": "cut", "task": "gsm8k", "question": "q", "reference": "1", "meta": {}})
    add(tree, 0, "answer", r"\boxed{1}\textbf", correct=True, finish_reason="length")
    add(tree, 0, "answer", r"\boxed{2} <thinking>", correct=False, finish_reason="stop")
    sft, dpo, report = build_rows([tree], WordTokenizer())
    assert sft == [] and dpo == []
    assert report.problems_without_clean_correct_path == ["cut"]
    assert report.problems_without_correct_path == [], "it had a correct path: solved, but unusable"
    assert "1 problems lost every correct path to the filter" in report.summary()
    assert report.to_dict()["n_problems_without_clean_correct_path"] == 1
    sft, dpo, report = build_rows([tree], WordTokenizer(), clean_chosen=False, unclean_rejected=False)
    assert len(sft) == 1 and dpo == [] and report.problems_without_clean_wrong_path == ["cut"]
    assert "1 problems lost every wrong path to the filter" in report.summary()


# ------------------------------------------------------------------------------ token-level shared prefix
@pytest.fixture(scope="module")
def student():
    from treecot.models import load_tokenizer

    return load_tokenizer("tiny")


def test_shared_prefix_is_the_token_level_common_prefix(student):
    """Two root children share no node, but the sub-task prefill makes the responses start alike:
    the mask must cover those tokens (METHOD §6)."""
    tree = Tree(problem={"id": "t", "task": "gsm8k", "question": "q", "reference": "42", "meta": {}})
    pre = "Firstly, I need to break down this task."
    s1 = add(tree, 0, "sub_task", pre + " Multiply six by seven.", prefill=pre, finish_reason="stop")
    add(tree, s1, "answer", r"The answer is: \boxed{42}", correct=True, finish_reason="stop")
    s2 = add(tree, 0, "sub_task", pre + " Add six sevens.", prefill=pre, finish_reason="stop")
    add(tree, s2, "answer", r"The answer is: \boxed{41}", correct=False, finish_reason="stop")
    _, dpo, report = build_rows([tree], student)
    (row,) = dpo
    prefix = row["shared_prefix"]
    assert row["shared_prefix_nodes"] == 0, "no shared node..."
    assert prefix.startswith("<sub-task>" + pre), "...but the prefill's tokens are shared"
    assert row["chosen"].startswith(prefix) and row["rejected"].startswith(prefix)
    ids = lambda text: student(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    chosen_ids, rejected_ids = ids(row["chosen"]), ids(row["rejected"])
    n = row["shared_prefix_tokens"]
    assert n == len(ids(prefix)) > 0
    assert chosen_ids[:n] == rejected_ids[:n] and chosen_ids[n] != rejected_ids[n], "the longest one"
    assert report.shared_prefix_stats == {"pairs": 1, "mean": n, "median": n, "p90": n, "zero_share": 0.0}


def test_token_shared_prefix_shrinks_until_it_prefixes_both_texts(student):
    def decode(ids):
        return student.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    a, b = "x 😀 y", "x 😁 y"  # the emojis share their first byte's token: decoding it breaks the text
    a_ids, b_ids = student(a)["input_ids"], student(b)["input_ids"]
    assert a_ids[:2] == b_ids[:2] and not a.startswith(decode(a_ids[:2]))
    assert token_shared_prefix(a_ids, b_ids, a, b, decode) == ("x", 1)
    assert token_shared_prefix([1, 2], [1, 2], "ab", "ab", lambda ids: "zz") == ("", 0)
    assert token_shared_prefix([1, 2], [3], "ab", "c", decode) == ("", 0)


def test_shared_prefix_stats_and_quality():
    stats = shared_prefix_stats([{"shared_prefix_tokens": v} for v in (10, 0, 4, 0)])
    assert stats == {"pairs": 4, "mean": 3.5, "median": 2.0, "p90": 8.2, "zero_share": 0.5}
    assert shared_prefix_stats([]) is None
    report = BuildReport(shared_prefix_stats=stats, dropped_correct_paths=3)
    report.correct_path_defects["truncated"] = 3
    q = report.quality()
    assert q["pair rule"] == "shortest_prefix" and q["correct paths: cut at the token cap"] == 3
    assert q["correct paths dropped from SFT and chosen"] == 3
    assert q["shared prefix tokens per pair: 90th percentile"] == 8.2
    assert q["pairs sharing no token"] == "50.0%"
    assert all(isinstance(v, (int, float, str)) for v in q.values()), "a flat mapping"
    assert "mean 3.5, median 2, p90 8.2 tokens, 50% of pairs share none" in report.summary()


# ----------------------------------------------------------------------------------------- pair rules
def test_pair_rule_latest_branch_picks_the_latest_branching_wrong_path():
    tree = make_tree()
    assert PAIR_RULES == ("shortest_prefix", "latest_branch")
    _, dpo, report = build_rows([tree], WordTokenizer(), pair_rule="latest_branch")
    (row,) = dpo
    assert row["chosen_node_ids"] == [1, 2, 3]
    assert row["rejected_node_ids"] == [1, 2, 4, 5], "branches after t1, not at the root"
    assert row["shared_prefix_nodes"] == 2 and row["pair_rule"] == "latest_branch"
    assert (
        row["shared_prefix"]
        == "<sub-task>Firstly, break it down.</sub-task>\n<thinking>six times seven</thinking>"
    )
    assert row["shared_prefix_tokens"] == 7 and report.pair_rule == "latest_branch"
    _, default, _ = build_rows([tree], WordTokenizer())
    assert default[0]["pair_rule"] == "shortest_prefix" and default[0]["rejected_node_ids"] == [7, 8]
    with pytest.raises(ValueError, match="pair_rule must be one of"):
        build_rows([tree], WordTokenizer(), pair_rule="longest_prefix")


def test_latest_branch_ties_go_to_more_shared_tokens_then_closest_length():
    tree = Tree(problem={"id": "p", "task": "gsm8k", "question": "q", "reference": "1", "meta": {}})
    s = add(tree, 0, "sub_task", "plan")
    add(tree, s, "answer", r"one two \boxed{1}", correct=True)
    add(tree, s, "answer", r"uno dos \boxed{2}", correct=False)  # 1 node, 1 token shared
    add(tree, s, "answer", r"one two three four five \boxed{3}", correct=False)  # 1 node, 3 tokens
    _, dpo, _ = build_rows([tree], WordTokenizer(), pair_rule="latest_branch")
    assert dpo[0]["rejected_node_ids"] == [1, 4] and dpo[0]["shared_prefix_tokens"] == 3
    _, short, _ = build_rows([tree], WordTokenizer())
    assert short[0]["rejected_node_ids"] == [1, 3] and short[0]["shared_prefix_tokens"] == 1


# ------------------------------------------------------------------------------------------- dpo_all
def test_dpo_all_pairs_every_clean_correct_path():
    trees = [make_tree(), make_dirty_tree()]
    out = build_datasets(trees, WordTokenizer(), dpo_all=True, pair_rule="latest_branch")
    assert [r["chosen_node_ids"] for r in out.dpo] == [[1, 2, 3], [1, 2]], "dpo: the dpo_length choice"
    chosen = [r["chosen_node_ids"] for r in out.dpo_all]
    assert chosen == [[1, 2, 3], [1, 2, 4, 6], [1, 2]], "every clean correct path, never an unclean one"
    assert {r["pair_rule"] for r in out.dpo_all} == {"latest_branch"}
    assert out.dpo_all[0] == out.dpo[0], "the same pair for the same chosen path"
    assert out.report.dpo_all_rows == 3 and out.report.dpo_rows == 2
    assert build_datasets(trees, WordTokenizer()).dpo_all == [], "only when asked for"
    dup = build_datasets([make_tree(), make_tree()], WordTokenizer(), dpo_all=True)
    assert len(dup.dpo_all) == 2 and dup.report.dpo_all_duplicates_dropped == 2
