"""Look at a search tree: an indented text view and a PNG plot (`treecot show-tree FILE --problem ID`).

>>> from treecot.search.show import format_tree, plot_tree, show_tree_main
>>> print(format_tree(tree))
problem toy-3f2a… (toy)  reference: 4
question: What is 2 + 2?
12 rollouts, 3 correct paths of 5 answers, 41 nodes, stop: enough_correct
[0] root N=12 Q=0.58
├─ [1] sub_task A N=7 Q=0.71 "Firstly, I need to break down this task. We …"
│  └─ [3] thinking A N=7 Q=0.71 "2 + 2 = 4 …"
│     └─ [5] answer A N=3 Q=1.00 r=1 ✓ "The answer is: \\boxed{4}"
…
legend: [id] node id · A/B model that wrote the node · N visits (rollouts through the node) · …
"""

from __future__ import annotations

import gzip
import os
import textwrap
import unicodedata
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
#: Answers the verifier gave no verdict on (`correct` is None).
UNVERIFIED_COLOR = "#17becf"
OTHER_COLOR = "#7f7f7f"


#: What each abbreviation and marker of the text view means; `format_tree` prints it once, as its last line.
LEGEND = (
    "legend: [id] node id · A/B model that wrote the node · N visits (rollouts through the node) · "
    "Q mean value (mean reward of those rollouts) · r reward of an answer node · "
    "✓/✗ answer judged correct/wrong · [cut] cut at the token cap · "
    "[hidden] left out of the history (serialized paths, later prompts) · … text or tree truncated"
)


def _count(n: int, word: str) -> str:
    """`1 rollout`, `2 rollouts`, `0 rollouts`."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _visible(word: str) -> str:
    """`word` as written, except characters a terminal would act on (controls), shown as `\\xNN` escapes."""
    if word.isprintable():
        return word
    # controls and format characters (bidirectional overrides) as escapes
    return "".join(ascii(c)[1:-1] if unicodedata.category(c) in ("Cc", "Cf") else c for c in word)


def _snippet(text: str, words: int) -> str:
    """The first `words` words of `text` on one line: any run of whitespace (newlines included) becomes one
    space; " …" marks a cut."""
    parts = text.split()
    out = " ".join(_visible(w) for w in parts[:words])
    return out + (" …" if len(parts) > words else "")


def format_node(node: Node, words: int = 12) -> str:
    """One line: `[id] type role N=visits Q=value r=reward ✓/✗ [cut] [hidden] "first words"`, the words as
    the model wrote them (no escaping; see `LEGEND`)."""
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
        bits.append(f'"{_snippet(node.text, words)}"')
    return " ".join(bits)


def format_tree(tree: Tree, words: int = 12, max_nodes: int | None = None) -> str:
    """The tree as indented text: a header, one line per node (depth-first, children in order), and a last
    line, `LEGEND`, explaining the abbreviations and markers.

    Args:
        tree (`Tree`):
            The search tree.
        words (`int`, *optional*, defaults to `12`):
            How many words of each node's text to show.
        max_nodes (`int`, *optional*):
            Stop after this many node lines (None = all) and say how many were left out.
    """
    problem, stats = tree.problem, tree.stats
    answers = tree.answer_nodes()
    lines = [
        f"problem {_snippet(str(problem.get('id', '?')), 3)} ({_snippet(str(problem.get('task', '?')), 3)})  reference: "
        + _snippet(str(problem.get("reference", "")), 20),
        "question: " + _snippet(str(problem.get("question", "")), 30),
        f"{_count(stats.get('rollouts', 0), 'rollout')}, {_count(len(tree.correct_answers()), 'correct path')} "
        f"of {_count(len(answers), 'answer')}, {_count(len(tree), 'node')}, "
        f"stop: {_snippet(str(stats.get('stop_reason')), 3)}",
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
            lines.append(f"… {_count(len(tree) - max_nodes, 'more node')}")
            break
        lines.append(line)
    lines.append(LEGEND)
    return "\n".join(lines)


def tree_layout(tree: Tree) -> dict[int, tuple[float, float]]:
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
    """Fill colour of `node` in plots: its type's, or for answers their verdict's."""
    if node.type == ANSWER_TYPE or node.terminal:
        if node.correct is None:
            return UNVERIFIED_COLOR
        return CORRECT_COLOR if node.correct else WRONG_COLOR
    return TYPE_COLORS.get(node.type, OTHER_COLOR)


def default_title(tree: Tree) -> str:
    """`<problem id>: 6 nodes, 3 rollouts, 1 correct answer of 2` (singular for one)."""
    return (
        f"{tree.problem.get('id', '?')}: {_count(len(tree), 'node')}, "
        f"{_count(tree.stats.get('rollouts', 0), 'rollout')}, "
        f"{_count(len(tree.correct_answers()), 'correct answer')} of {len(tree.answer_nodes())}"
    )


def _fit_title(fig, text, title: str, fontsize: float) -> None:
    """Wrap `title` into `text` (a suptitle) so that every line fits the figure's width."""
    renderer = fig.canvas.get_renderer()
    # A first guess from the average glyph width (~0.6 em), then narrower until it is measured to fit.
    chars = max(20, int(fig.bbox.width * 72.0 / fig.dpi / (0.6 * fontsize)) - 4)
    for _ in range(8):
        text.set_text(textwrap.fill(title, width=chars, break_long_words=True, break_on_hyphens=False))
        if text.get_window_extent(renderer).width <= 0.96 * fig.bbox.width or chars <= 20:
            return
        chars = max(20, int(chars * 0.85))


def tree_figure(tree: Tree, title: str | None = None):
    """The plot of `tree` as a matplotlib `Figure` (Agg canvas, no pyplot state): nodes coloured by type
    (answers green if correct, red if wrong, cyan if not verified), each labelled with its id, a black ring
    on nodes cut at the token cap, marker area growing with visits, an edge to each parent, a legend on the
    right and the title (`default_title` unless given) wrapped to the figure's width, left-aligned."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    pos = tree_layout(tree)
    n_leaves = sum(1 for n in tree.nodes if not n.children)
    depth = max(n.depth for n in tree.nodes)
    width = min(max(6.0, 0.35 * n_leaves + 2.0), 60.0)
    height = min(max(4.0, 0.6 * depth + 2.0), 30.0)
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
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
    for n, x, y, s in zip(tree.nodes, xs, ys, sizes, strict=True):
        # Just above the marker (its radius in points is sqrt(area) / 2).
        ax.annotate(
            str(n.id),
            (x, y),
            xytext=(0.0, s**0.5 / 2.0 + 1.0),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=7,
            color="#333333",
            zorder=3,
        )

    def key(label: str, color: str = "white", edge: str | None = None, **kw) -> Line2D:
        return Line2D(
            [], [], marker="o", linestyle="", color=color, markeredgecolor=edge or color, label=label, **kw
        )

    present: list[str] = []
    for n in tree.nodes:
        if n.type not in present and n.type != ANSWER_TYPE and not n.terminal:
            present.append(n.type)
    handles = [key(t, TYPE_COLORS.get(t, OTHER_COLOR)) for t in present]
    handles += [key("answer (correct)", CORRECT_COLOR), key("answer (wrong)", WRONG_COLOR)]
    if any(node_color(n) == UNVERIFIED_COLOR for n in tree.nodes if n.type == ANSWER_TYPE or n.terminal):
        handles.append(key("answer (not verified)", UNVERIFIED_COLOR))
    handles += [
        key("cut at the token cap", "white", "black"),
        key("marker area ~ visits N", "#cccccc", markersize=11),
        Line2D([], [], marker="$7$", linestyle="", color="#333333", label="node id (above its marker)"),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    ax.set_ylabel("depth")
    ax.set_yticks([-float(d) for d in range(depth, -1, -1)])
    ax.set_yticklabels([str(d) for d in range(depth, -1, -1)])
    ax.set_ylim(-depth - 0.4, 0.5)  # room for the labels above the root
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    fontsize = 9
    text = fig.suptitle("", x=0.01, ha="left", fontsize=fontsize)
    _fit_title(fig, text, title or default_title(tree), fontsize)
    fig.tight_layout()
    return fig


def plot_tree(tree: Tree, path_png: str | os.PathLike, title: str | None = None) -> Path:
    """Draw the tree to a PNG (see `tree_figure`; `title` defaults to `default_title`), cropped to what is
    drawn so that neither the title nor the legend is cut off. Returns the written path."""
    fig = tree_figure(tree, title)
    out = Path(path_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100, bbox_inches="tight", pad_inches=0.15)
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
