"""Look at a search tree: an indented text view and a PNG plot (`treecot show-tree FILE --problem ID`).

>>> from treecot.search.show import format_tree, plot_tree, show_tree_main
>>> print(format_tree(tree))
problem toy-3f2a… (toy)  reference: 4
rollouts 12, correct paths 3/5 answers, 41 nodes, stop: enough_correct
[0] root N=12 Q=0.58
├─ [1] sub_task A N=7 Q=0.71 "Firstly, I need to break down this task. We …"
│  └─ [3] thinking A N=7 Q=0.71 "2 + 2 = 4 …"
│     └─ [5] answer A N=3 Q=1.00 r=1 ✓ "The answer is: \\boxed{4}"
…
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterator
from pathlib import Path

from treecot.search.tree import ANSWER_TYPE, Node, Tree

#: Fill colour per node type in plots (answers are coloured by correctness instead).
TYPE_COLORS = {
    "root": "#4d4d4d",
    "sub_task": "#1f77b4",
    "thinking": "#9ecae1",
    "hypothesis": "#9467bd",
    "double_check": "#ff7f0e",
    "reflection": "#8c564b",
    "reclarify": "#e377c2",
    "thinking_from_scratch": "#bcbd22",
}
CORRECT_COLOR = "#2ca02c"
WRONG_COLOR = "#d62728"
OTHER_COLOR = "#7f7f7f"


def _snippet(text: str, words: int) -> str:
    parts = text.split()
    out = " ".join(parts[:words])
    return out + (" …" if len(parts) > words else "")


def format_node(node: Node, words: int = 12) -> str:
    """One line: `[id] type role N=visits Q=value r=reward ✓/✗ "first words"`."""
    bits = [f"[{node.id}]", node.type]
    if node.role:
        bits.append(node.role)
    bits.append(f"N={node.visits}")
    bits.append(f"Q={node.q:.2f}")
    if node.reward is not None:
        bits.append(f"r={node.reward:g}")
    if node.correct is not None:
        bits.append("✓" if node.correct else "✗")
    if node.finish_reason == "length":
        bits.append("[cut]")
    if not node.in_history:
        bits.append("[hidden]")
    if node.type != "root":
        bits.append(json.dumps(_snippet(node.text, words), ensure_ascii=False))
    return " ".join(bits)


def format_tree(tree: Tree, words: int = 12, max_nodes: int | None = None) -> str:
    """The tree as indented text: a header, then one line per node (depth-first, children in order).

    words:     how many words of each node's text to show.
    max_nodes: stop after this many node lines (None = all) and say how many were left out.
    """
    problem, stats = tree.problem, tree.stats
    answers = tree.answer_nodes()
    lines = [
        f"problem {problem.get('id', '?')} ({problem.get('task', '?')})  reference: "
        + _snippet(str(problem.get("reference", "")), 20),
        "question: " + _snippet(str(problem.get("question", "")), 30),
        f"rollouts {stats.get('rollouts', 0)}, correct paths {len(tree.correct_answers())}/{len(answers)} "
        f"answers, {len(tree)} nodes, stop: {stats.get('stop_reason')}",
    ]
    shown = 0

    def walk(node_id: int, prefix: str, is_last: bool, top: bool) -> Iterator[str]:
        nonlocal shown
        node = tree.nodes[node_id]
        connector = "" if top else ("└─ " if is_last else "├─ ")
        shown += 1
        yield prefix + connector + format_node(node, words)
        child_prefix = prefix if top else prefix + ("   " if is_last else "│  ")
        kids = node.children
        for i, kid in enumerate(kids):
            yield from walk(kid, child_prefix, i == len(kids) - 1, False)

    for line in walk(0, "", True, True):
        if max_nodes is not None and shown > max_nodes:
            lines.append(f"… {len(tree) - max_nodes} more nodes")
            break
        lines.append(line)
    return "\n".join(lines)


def _layout(tree: Tree) -> dict[int, tuple[float, float]]:
    """Leaves spread left to right in depth-first order; a parent sits above the middle of its children."""
    pos: dict[int, tuple[float, float]] = {}
    next_x = 0.0
    # Iterative post-order to stay clear of the recursion limit on deep trees.
    stack: list[tuple[int, bool]] = [(0, False)]
    while stack:
        node_id, seen = stack.pop()
        node = tree.nodes[node_id]
        if not node.children:
            pos[node_id] = (next_x, -float(node.depth))
            next_x += 1.0
        elif seen:
            xs = [pos[c][0] for c in node.children]
            pos[node_id] = ((min(xs) + max(xs)) / 2.0, -float(node.depth))
        else:
            stack.append((node_id, True))
            stack.extend((c, False) for c in reversed(node.children))
    return pos


def node_color(node: Node) -> str:
    if node.type == ANSWER_TYPE or node.terminal:
        return CORRECT_COLOR if node.correct else WRONG_COLOR
    return TYPE_COLORS.get(node.type, OTHER_COLOR)


def plot_tree(tree: Tree, path_png: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the tree to a PNG: nodes coloured by type (answers green if correct, red if wrong), an edge to
    each parent, marker area growing with visits, and a legend. Returns the written path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pos = _layout(tree)
    n_leaves = sum(1 for n in tree.nodes if not n.children)
    depth = max(n.depth for n in tree.nodes)
    width = min(max(6.0, 0.35 * n_leaves + 2.0), 60.0)
    height = min(max(4.0, 0.6 * depth + 2.0), 30.0)
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        for node in tree.nodes[1:]:
            (x0, y0), (x1, y1) = pos[node.parent], pos[node.id]
            ax.plot([x0, x1], [y0, y1], color="#bbbbbb", linewidth=0.8, zorder=1)
        max_visits = max(1, max(n.visits for n in tree.nodes))
        xs = [pos[n.id][0] for n in tree.nodes]
        ys = [pos[n.id][1] for n in tree.nodes]
        sizes = [30.0 + 270.0 * (n.visits / max_visits) ** 0.5 for n in tree.nodes]
        colors = [node_color(n) for n in tree.nodes]
        edges = ["black" if n.finish_reason == "length" else "white" for n in tree.nodes]
        ax.scatter(xs, ys, s=sizes, c=colors, edgecolors=edges, linewidths=0.8, zorder=2)

        present = []
        for n in tree.nodes:
            if n.type not in present and not n.terminal:
                present.append(n.type)
        handles = [
            Line2D([], [], marker="o", linestyle="", color=TYPE_COLORS.get(t, OTHER_COLOR), label=t)
            for t in present
        ]
        handles.append(
            Line2D([], [], marker="o", linestyle="", color=CORRECT_COLOR, label="answer (correct)")
        )
        handles.append(Line2D([], [], marker="o", linestyle="", color=WRONG_COLOR, label="answer (wrong)"))
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
        stats = tree.stats
        ax.set_title(
            title
            or f"{tree.problem.get('id', '?')}: {len(tree)} nodes, {stats.get('rollouts', 0)} rollouts, "
            f"{len(tree.correct_answers())} correct answers (marker area ~ visits)",
            fontsize=9,
        )
        ax.set_ylabel("depth")
        ax.set_yticks(sorted({-float(d) for d in range(depth + 1)}))
        ax.set_yticklabels([str(d) for d in sorted(range(depth + 1), reverse=True)])
        ax.set_xticks([])
        for side in ("top", "right", "bottom"):
            ax.spines[side].set_visible(False)
        fig.tight_layout()
        out = Path(path_png)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=100)
    finally:
        plt.close(fig)
    return out


def iter_trees(file: str | os.PathLike) -> Iterator[Tree]:
    """Trees of a JSONL shard (`.jsonl` or `.jsonl.gz`), one per line."""
    path = Path(file)
    if not path.is_file():
        raise FileNotFoundError(f"tree file {str(path)!r} does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Tree.from_json(line)
            except (ValueError, TypeError) as e:
                raise ValueError(f"{path}:{lineno}: not a tree record: {e}") from e


def find_tree(file: str | os.PathLike, problem_id: str | None = None) -> Tree:
    """The tree of `problem_id` in a JSONL shard (an unambiguous id prefix works; None if the file has
    exactly one tree). Raises `KeyError` listing the available ids when it is absent."""
    trees = list(iter_trees(file))
    if not trees:
        raise ValueError(f"{file} holds no trees")
    if problem_id is None:
        if len(trees) == 1:
            return trees[0]
        raise KeyError(f"{file} holds {len(trees)} trees; choose one with --problem: {_id_list(trees)}")
    exact = [t for t in trees if t.problem_id == problem_id]
    if exact:
        return exact[0]
    prefixed = [t for t in trees if t.problem_id.startswith(problem_id)]
    if len(prefixed) == 1:
        return prefixed[0]
    if len(prefixed) > 1:
        raise KeyError(f"problem id prefix {problem_id!r} is ambiguous in {file}: {_id_list(prefixed)}")
    raise KeyError(f"no tree for problem {problem_id!r} in {file}; available ids: {_id_list(trees)}")


def _id_list(trees: list[Tree], limit: int = 20) -> str:
    ids = [t.problem_id for t in trees]
    more = f" … and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def show_tree_main(
    file: str | os.PathLike,
    problem_id: str | None = None,
    png: str | os.PathLike | None = None,
    words: int = 12,
) -> str:
    """`treecot show-tree FILE --problem ID [--png OUT]`: print the text view, optionally write the plot.

    Returns the printed text (with a final line naming the PNG when one was written).
    """
    tree = find_tree(file, problem_id)
    text = format_tree(tree, words=words)
    if png is not None:
        out = plot_tree(tree, png)
        text += f"\nplot written to {out}"
    print(text)
    return text
