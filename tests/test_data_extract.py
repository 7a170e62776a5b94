"""Trees → SFT and preference rows; Thoughts Length Balance; pair invariants."""

import pytest

from treecot.data.balance import LENGTH_CHOICES, plot_length_histograms, rank_labels, select_by_length
from treecot.data.extract import build_rows, shared_prefix, tree_paths
from treecot.search.tree import Tree


class WordTokenizer:
    """Counts whitespace-separated words: makes lengths easy to reason about in tests."""

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": text.split()}


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
    assert text == "<sub-task>plan</sub-task>\n" and k == 1
    _, dpo, _ = build_rows([tree], WordTokenizer())
    assert dpo[0]["rejected"].endswith(r"w \boxed{3}</answer>"), (
        "equal shared prefix: the closest length wins"
    )
    assert dpo[0]["shared_prefix"] == "<sub-task>plan</sub-task>\n"


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
