"""Tree / Node JSON form, paths and serialization (treecot.search.tree) and the tree views (show.py)."""

from __future__ import annotations

import gzip
import json

import pytest

from tests.fixtures.fake_generator import toy_problem
from treecot.search.show import (
    LEGEND,
    UNVERIFIED_COLOR,
    default_title,
    find_tree,
    format_node,
    format_tree,
    node_color,
    plot_tree,
    show_tree_main,
    tree_figure,
)
from treecot.search.tree import TREE_SCHEMA_VERSION, Node, Tree, jsonable


def small_tree(problem: dict | None = None) -> Tree:
    """root → sub_task → thinking → {answer ✓, double_check(hidden) → answer ✗}"""
    tree = Tree(problem=problem or toy_problem(), config_hash="abc", generator={"models": {"A": "m"}})
    st = tree.add_node(
        0,
        "sub_task",
        role="A",
        tag="sub-task",
        text="Firstly, I need to break down this task. Add.",
        prefill="Firstly, I need to break down this task.",
        n_tokens=3,
    )
    th = tree.add_node(
        st.id, "thinking", role="A", tag="thinking", text="2 + 2 = 4", n_tokens=5, mean_logprob=-0.25
    )
    ok = tree.add_node(
        th.id,
        "answer",
        role="A",
        tag="answer",
        text="The answer is: \\boxed{4}",
        terminal=True,
        reward=1.0,
        correct=True,
        answered=True,
        extracted="4",
        visits=2,
        value_sum=2.0,
    )
    dc = tree.add_node(
        th.id,
        "double_check",
        role="B",
        tag="double-check",
        text="Let's check. Hmm.",
        in_history=False,
        finish_reason="length",
    )
    bad = tree.add_node(
        dc.id,
        "answer",
        role="A",
        tag="answer",
        text="The answer is: \\boxed{5}",
        terminal=True,
        reward=0.0,
        correct=False,
        answered=True,
        extracted="5",
        visits=1,
    )
    for n in (st, th):
        n.visits, n.value_sum = 3, 2.0
    dc.visits = 1
    tree.root.visits, tree.root.value_sum = 3, 2.0
    tree.stats = {"rollouts": 3, "correct_paths": 1, "stop_reason": "max_rollouts"}
    assert [n.id for n in (st, th, ok, dc, bad)] == [1, 2, 3, 4, 5]
    return tree


def test_new_tree_has_a_root_and_add_node_links_depths():
    tree = small_tree()
    assert tree.root.type == "root" and tree.root.parent is None and tree.root.id == 0
    assert [n.depth for n in tree] == [0, 1, 2, 3, 3, 4]
    assert [c.id for c in tree.children(2)] == [3, 4]
    assert [a.id for a in tree.ancestors(5)] == [4, 2, 1, 0]
    assert tree.problem_id == toy_problem()["id"]
    assert len(tree) == 6


def test_path_excludes_the_root():
    tree = small_tree()
    assert [n.id for n in tree.path(3)] == [1, 2, 3]
    assert tree.path(0) == []


def test_serialize_path_joins_tagged_nodes_and_omits_hidden_ones():
    tree = small_tree()
    assert tree.serialize_path(3) == (
        "<sub-task>Firstly, I need to break down this task. Add.</sub-task>\n"
        "<thinking>2 + 2 = 4</thinking>\n"
        "<answer>The answer is: \\boxed{4}</answer>"
    )
    # The double_check (node 4) is hidden from the history: its answer follows the thinking directly.
    assert tree.serialize_path(5) == (
        "<sub-task>Firstly, I need to break down this task. Add.</sub-task>\n"
        "<thinking>2 + 2 = 4</thinking>\n"
        "<answer>The answer is: \\boxed{5}</answer>"
    )
    assert tree.serialize_path(0) == ""


def test_answer_helpers():
    tree = small_tree()
    assert [n.id for n in tree.answer_nodes()] == [3, 5]
    assert [n.id for n in tree.correct_answers()] == [3]
    assert [n.id for n in tree.wrong_answers()] == [5]
    assert [[n.id for n in p] for p in tree.correct_paths()] == [[1, 2, 3]]
    assert [[n.id for n in p] for p in tree.wrong_paths()] == [[1, 2, 4, 5]]
    assert tree.node(3).q == 1.0 and tree.node(4).q == 0.0 and Node(id=9, parent=0, type="x").q == 0.0


def test_json_round_trip_is_exact():
    tree = small_tree()
    tree.nodes[2].extra["note"] = {"kept": [1, 2]}  # unknown fields survive
    data = tree.to_dict()
    assert data["schema_version"] == TREE_SCHEMA_VERSION
    assert set(data) == {"schema_version", "problem", "config_hash", "config", "generator", "nodes", "stats"}
    node_keys = set(data["nodes"][1])
    assert {
        "id",
        "parent",
        "type",
        "role",
        "text",
        "prefill",
        "n_tokens",
        "mean_logprob",
        "visits",
        "value_sum",
        "reward",
        "terminal",
    } <= node_keys
    assert "children" not in node_keys
    line = tree.to_json()
    assert "\n" not in line
    back = Tree.from_json(line)
    assert back.to_dict() == data
    assert json.loads(back.to_json()) == json.loads(line)
    assert back.nodes[2].extra == {"note": {"kept": [1, 2]}} and back.nodes[2].to_dict()["note"] == {
        "kept": [1, 2]
    }
    # Children are rebuilt from the parent links.
    assert [c.id for c in back.children(2)] == [3, 4]
    assert back.serialize_path(5) == tree.serialize_path(5)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.update(schema_version=99), "schema_version 99 is not supported"),
        (lambda d: d.pop("nodes"), "no 'nodes' field"),
        (lambda d: d.update(nodes=[]), "empty 'nodes' list"),
        (lambda d: d["nodes"][3].update(parent=7), "tree node 3 has parent 7"),
        (lambda d: d["nodes"][2].update(id=5), "position 2 has id 5"),
        (lambda d: d["nodes"][0].update(parent=1), "node 0 must be the root"),
        (lambda d: d["nodes"][1].pop("type"), "has no 'type' field"),
    ],
)
def test_from_dict_rejects_broken_records(mutate, message):
    data = small_tree().to_dict()
    mutate(data)
    with pytest.raises(ValueError, match=message):
        Tree.from_dict(data)


def test_node_lookup_errors_name_the_problem():
    tree = small_tree()
    with pytest.raises(KeyError, match=r"has no node 17 \(6 nodes\)"):
        tree.node(17)


def test_jsonable():
    class Odd:
        def __str__(self):
            return "odd!"

    assert jsonable(("a", 1, None, [2.5, True])) == ["a", 1, None, [2.5, True]]
    assert jsonable({1: Odd()}) == {"1": "odd!"}


# -- show ------------------------------------------------------------------------------------------------


def test_format_node_fields():
    tree = small_tree()
    assert format_node(tree.node(3)) == '[3] answer A N=2 Q=1.00 r=1 ✓ "The answer is: \\boxed{4}"'
    line = format_node(tree.node(4), words=2)
    assert line == '[4] double_check B N=1 Q=0.00 [cut] [hidden] "Let\'s check. …"'
    assert format_node(tree.root) == "[0] root N=3 Q=0.67"


def test_format_tree_is_indented_by_depth():
    text = format_tree(small_tree())
    lines = text.splitlines()
    assert lines[0].startswith(f"problem {toy_problem()['id']} (toy)  reference: 4")
    assert lines[2] == "3 rollouts, 1 correct path of 2 answers, 6 nodes, stop: max_rollouts"
    assert lines[3] == "[0] root N=3 Q=0.67"
    assert lines[4].startswith("└─ [1] sub_task A")
    assert lines[5].startswith("   └─ [2] thinking A")
    assert lines[6].startswith("      ├─ [3] answer A")
    assert lines[7].startswith("      └─ [4] double_check B")
    assert lines[8].startswith("         └─ [5] answer A N=1 Q=0.00 r=0 ✗")
    short = format_tree(small_tree(), max_nodes=3)
    assert short.splitlines()[-2:] == ["… 3 more nodes", LEGEND]
    assert "[3] answer" not in short


def test_format_tree_ends_with_one_legend_naming_every_marker(tmp_path, capsys):
    text = format_tree(small_tree())
    assert text.splitlines()[-1] == LEGEND and text.count("legend:") == 1
    # Every abbreviation and marker the node lines use is explained, with its meaning.
    assert LEGEND.startswith("legend: ")
    entries = dict(e.split(" ", 1) for e in LEGEND.removeprefix("legend: ").split(" · "))
    for marker, meaning in [
        ("[id]", "node id"),
        ("A/B", "model"),
        ("N", "visits"),
        ("Q", "mean value"),
        ("r", "reward of an answer node"),
        ("✓/✗", "judged correct/wrong"),
        ("[cut]", "token cap"),
        ("[hidden]", "history"),
        ("…", "truncated"),
    ]:
        assert meaning in entries[marker], marker
    assert "\n" not in LEGEND
    write_shard(tmp_path / "t.jsonl", [small_tree()])
    show_tree_main(tmp_path / "t.jsonl", png=tmp_path / "t.png")
    printed = capsys.readouterr().out
    assert printed.count("legend:") == 1 and printed.count(LEGEND) == 1


def test_format_node_shows_the_text_as_written_on_one_line():
    tree = small_tree()
    node = tree.node(3)
    node.text = 'He said "yes",\nso it is \\boxed{42}.\r\n\tDone\x1b[0m'
    line = format_node(node)
    assert line.endswith(' "He said "yes", so it is \\boxed{42}. Done\\x1b[0m"')
    assert "\\\\" not in line and '\\"' not in line and "\n" not in line
    text = format_tree(tree)
    assert 'r=1 ✓ "He said "yes", so it is \\boxed{42}.' in text
    assert len(text.splitlines()) == 3 + len(tree) + 1  # header, one line per node, legend
    # Long text is still cut after `words` words.
    node.text = "one two\nthree four five"
    assert format_node(node, words=3).endswith('"one two three …"')


def test_counts_are_singular_for_one():
    tree = small_tree()
    assert "3 rollouts, 1 correct path of 2 answers, 6 nodes" in format_tree(tree)
    assert format_tree(tree, max_nodes=5).splitlines()[-2] == "… 1 more node"
    tree.stats["rollouts"] = 1
    tree.node(5).correct = True
    assert "1 rollout, 2 correct paths of 2 answers, 6 nodes" in format_tree(tree)
    assert default_title(tree) == f"{tree.problem_id}: 6 nodes, 1 rollout, 2 correct answers of 2"
    one = Tree(problem=toy_problem())
    one.stats = {"rollouts": 2}
    assert "2 rollouts, 0 correct paths of 0 answers, 1 node" in format_tree(one)
    assert default_title(one) == f"{one.problem_id}: 1 node, 2 rollouts, 0 correct answers of 0"
    tree.stats["rollouts"] = 2
    tree.node(3).correct = False
    assert ", 2 rollouts, 1 correct answer of 2" in default_title(tree)


def test_plot_tree_writes_a_png(tmp_path):
    out = plot_tree(small_tree(), tmp_path / "sub" / "tree.png")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_tree_figure_labels_node_ids_and_shows_the_whole_title(tmp_path):
    tree = small_tree()
    tree.problem["id"] = "gsm8k-" + "0123456789abcdef" * 8  # far wider than the figure on one line
    fig = tree_figure(tree)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (ax,) = fig.axes
    labels = sorted(t.get_text() for t in ax.texts)
    assert labels == sorted(str(n.id) for n in tree.nodes)
    # The title: the default one (a count in the singular for one), wrapped, and within the figure.
    title = fig._suptitle
    assert title.get_text().replace("\n", "").replace(" ", "") == default_title(tree).replace(" ", "")
    assert title.get_text().endswith("1 correct answer of 2")
    assert title.get_text().count("\n") >= 1
    box, page = title.get_window_extent(renderer), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1
    tight = fig.get_tightbbox(renderer).transformed(fig.dpi_scale_trans)
    assert tight.x0 <= box.x0 and box.x1 <= tight.x1 and box.y1 <= tight.y1
    # The legend names the colours and markers.
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for entry in ("sub_task", "answer (correct)", "answer (wrong)", "cut at the token cap"):
        assert entry in legend
    assert any("visits" in t for t in legend) and any("node id" in t for t in legend)
    assert not any("not verified" in t for t in legend)
    # A given title is used as is (wrapped only when too wide); the PNG is written.
    out = plot_tree(tree, tmp_path / "t.png", title="short title")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert tree_figure(tree, "short title")._suptitle.get_text() == "short title"


def test_tree_figure_keys_unverified_answers():
    tree = small_tree()
    tree.node(5).correct = None
    assert node_color(tree.node(5)) == UNVERIFIED_COLOR
    fig = tree_figure(tree)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "answer (not verified)" in legend


def write_shard(path, trees):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as f:
        for t in trees:
            f.write(t.to_json() + "\n")


def test_show_tree_main_finds_the_problem(tmp_path, capsys):
    p1, p2 = toy_problem("What is 1 + 1?", "2"), toy_problem("What is 3 + 3?", "6")
    shard = tmp_path / "trees.jsonl.gz"
    write_shard(shard, [small_tree(p1), small_tree(p2)])
    text = show_tree_main(shard, p2["id"], png=tmp_path / "t.png")
    assert "What is 3 + 3?" in text and "What is 1 + 1?" not in text
    assert text.endswith(f"plot written to {tmp_path / 't.png'}")
    assert (tmp_path / "t.png").is_file()
    assert capsys.readouterr().out.strip() == text
    # An unambiguous prefix works; the full id is "toy-<hash>".
    assert find_tree(shard, p1["id"][:10]).problem_id == p1["id"]


def test_show_tree_main_lists_available_ids(tmp_path):
    p1, p2 = toy_problem("What is 1 + 1?", "2"), toy_problem("What is 3 + 3?", "6")
    shard = tmp_path / "trees.jsonl"
    write_shard(shard, [small_tree(p1), small_tree(p2)])
    with pytest.raises(KeyError) as e:
        show_tree_main(shard, "gsm8k-0000")
    assert "no tree for problem 'gsm8k-0000'" in str(e.value)
    assert p1["id"] in str(e.value) and p2["id"] in str(e.value)
    with pytest.raises(KeyError, match="holds 2 trees; choose one with --problem"):
        find_tree(shard)
    with pytest.raises(KeyError, match="ambiguous"):
        find_tree(shard, "toy-")
    single = tmp_path / "one.jsonl"
    write_shard(single, [small_tree(p1)])
    assert find_tree(single).problem_id == p1["id"]


def test_show_tree_main_reports_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        show_tree_main(tmp_path / "missing.jsonl", "x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"schema_version": 1, "problem": {}}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not a tree record"):
        show_tree_main(bad, "x")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no trees"):
        find_tree(empty)


def test_the_header_shows_a_problems_fields_without_terminal_controls():
    from treecot.search.show import format_tree

    tree = Tree(
        problem={"id": "p\x1b[2J1", "task": "gsm8k\u202e", "question": "q", "reference": "1", "meta": {}}
    )
    header = format_tree(tree).splitlines()[0]
    assert "\x1b" not in header and "\u202e" not in header
    assert "p\\x1b[2J1" in header and "\\u202e" in header
