"""How the Space draws things: the Vega-Lite spec of a search tree, node labels and texts, the highlighted
segments of an SFT path and a preference pair, and a model answer's tags as collapsible sections."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from treecot.search.patterns import DEFAULT_NODE_TYPES
from treecot.search.show import CORRECT_COLOR, OTHER_COLOR, TYPE_COLORS, WRONG_COLOR, format_node, tree_layout

if TYPE_CHECKING:
    from treecot.search.tree import Tree
    from treecot.space.sources import TreeSource

#: Colours of the chosen / rejected texts of a preference pair.
SHARED_PREFIX_COLOR = "#f2c94c"
ANSWER_LABEL_CORRECT = "answer (correct)"
ANSWER_LABEL_WRONG = "answer (wrong)"
ANSWER_LABEL = "answer"


def node_kind(node) -> str:
    """The legend entry of `node`: its type, or for an answer its verdict (`ANSWER_LABEL_CORRECT`, …)."""
    if node.terminal or node.type == "answer":
        if node.correct is None:
            return ANSWER_LABEL
        return ANSWER_LABEL_CORRECT if node.correct else ANSWER_LABEL_WRONG
    return node.type


def kind_color(kind: str) -> str:
    """The colour of a `node_kind` (the colours of `treecot.search.show`'s plots)."""

    if kind == ANSWER_LABEL_CORRECT:
        return CORRECT_COLOR
    if kind == ANSWER_LABEL_WRONG:
        return WRONG_COLOR
    if kind == ANSWER_LABEL:
        return "#17becf"
    return TYPE_COLORS.get(kind, OTHER_COLOR)


def snippet(text: str, limit: int) -> str:
    """`text` on one line, cut to `limit` characters (ending with an ellipsis when cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tree_plot_spec(tree: Tree, selected: int | None = None, title: str | None = None) -> dict:
    """A Vega-Lite (v5) spec of `tree`: edges to parents; nodes coloured by type (answers by correctness),
    opacity growing with Q (mean reward), area with visits; tooltips with the node's fields and text;
    the path from the root to `selected` drawn bold and that node ringed; zoom and pan with the mouse.

    Args:
        tree (`Tree`):
            The search tree to draw.
        selected (`int` or `None`, *optional*, defaults to `None`):
            Id of the node whose path from the root is drawn bold (and the node ringed).
        title (`str` or `None`, *optional*, defaults to `None`):
            The chart's title; default the problem id, the tree's size, rollouts and correct answers.

    Returns:
        `dict`: The Vega-Lite spec (see :func:`vega_plot` to render it).
    """
    nodes, edges = _plot_data(tree, selected)
    n_leaves = sum(1 for n in tree.nodes if not n.children)
    depth = max(d["depth"] for d in nodes)
    x, y = _position_encodings(n_leaves, depth)
    layers: list[dict] = [_edge_layer(edges, x, y), _node_layer(nodes, x, y)]
    if len(nodes) <= 80:
        layers.append(_label_layer(nodes, x, y))
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title or _default_title(tree),
        "height": int(min(900, max(260, 70 * (depth + 1)))),
        "encoding": {},  # the layers encode; gradio's theming reads the top level
        "layer": layers,
    }


def _plot_data(tree: Tree, selected: int | None) -> tuple[list[dict], list[dict]]:
    """The plot's data: one record per node (position, fields, text) and one per edge to a parent."""

    pos = tree_layout(tree)
    on_path = {n.id for n in tree.path(selected)} | {0} if selected is not None else set()
    nodes, edges = [], []
    for n in tree.nodes:
        x, y = pos[n.id]
        nodes.append(
            {
                "id": n.id,
                "x": x,
                "depth": -y,
                "type": n.type,
                "kind": node_kind(n),
                "role": n.role or "",
                "visits": n.visits,
                "q": round(n.q, 4),
                "reward": "" if n.reward is None else round(float(n.reward), 4),
                "tokens": n.n_tokens,
                "text": snippet(n.text, 240),
                "selected": n.id == selected,
            }
        )
        if n.parent is not None:
            px, py = pos[n.parent]
            edges.append({"x": px, "depth": -py, "x2": x, "depth2": -y, "on_path": n.id in on_path})
    return nodes, edges


def _position_encodings(n_leaves: int, depth) -> tuple[dict, dict]:
    """The x (leaf order, no axis) and y (depth, downwards) encodings every layer shares."""
    x_scale = {"domain": [-0.5, max(n_leaves - 0.5, 0.5)], "nice": False, "zero": False}
    y_scale = {"domain": [-0.3, depth + 0.3], "reverse": True, "nice": False, "zero": False}
    x = {"field": "x", "type": "quantitative", "scale": x_scale, "axis": None}
    y = {
        "field": "depth",
        "type": "quantitative",
        "scale": y_scale,
        "axis": {"title": "depth", "values": list(range(int(depth) + 1)), "format": "d", "grid": False},
    }
    return x, y


def _edge_layer(edges: list[dict], x: dict, y: dict) -> dict:
    """The edges as rules, the selected path dark and bold."""
    return {
        "data": {"values": edges},
        "mark": {"type": "rule"},
        "encoding": {
            "x": x,
            "y": y,
            "x2": {"field": "x2"},
            "y2": {"field": "depth2"},
            "color": {"condition": {"test": "datum.on_path", "value": "#222222"}, "value": "#c8c8c8"},
            "strokeWidth": {"condition": {"test": "datum.on_path", "value": 3}, "value": 1},
        },
    }


def _node_layer(nodes: list[dict], x: dict, y: dict) -> dict:
    """The nodes as circles (colour: kind, area: visits, opacity: Q), with tooltips and zoom and pan."""
    kinds = list(dict.fromkeys(d["kind"] for d in nodes))
    return {
        "data": {"values": nodes},
        "mark": {"type": "circle", "stroke": "white", "strokeWidth": 0.8},
        "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
        "encoding": {
            "x": x,
            "y": y,
            "color": {
                "field": "kind",
                "type": "nominal",
                "scale": {"domain": kinds, "range": [kind_color(k) for k in kinds]},
                "legend": {"title": "node type", "orient": "bottom", "columns": 5},
            },
            "size": {
                "field": "visits",
                "type": "quantitative",
                "scale": {"range": [60, 700], "zero": True},
                "legend": {"title": "visits", "orient": "bottom", "tickMinStep": 1, "format": "d"},
            },
            "opacity": {
                "field": "q",
                "type": "quantitative",
                "scale": {"domain": [0, 1], "range": [0.45, 1.0]},
                "legend": {"title": "Q (mean reward)", "orient": "bottom"},
            },
            "stroke": {"condition": {"test": "datum.selected", "value": "#000000"}, "value": "#ffffff"},
            "strokeWidth": {"condition": {"test": "datum.selected", "value": 3}, "value": 0.8},
            "tooltip": [
                {"field": "id", "title": "node"},
                {"field": "type"},
                {"field": "role", "title": "model"},
                {"field": "visits"},
                {"field": "q", "title": "Q", "format": ".2f"},
                {"field": "reward"},
                {"field": "tokens"},
                {"field": "text"},
            ],
        },
    }


def _label_layer(nodes: list[dict], x: dict, y: dict) -> dict:
    """Each node's id written above it (for trees small enough to read them)."""
    return {
        "data": {"values": nodes},
        "mark": {"type": "text", "dy": -14, "fontSize": 10, "color": "#444444", "strokeWidth": 0},
        "encoding": {"x": x, "y": y, "text": {"field": "id"}},
    }


def _default_title(tree: Tree) -> str:
    """The chart's default title: problem id, nodes, rollouts and correct answers of `tree`."""
    stats = tree.stats or {}
    return (
        f"{tree.problem_id}: {len(tree)} nodes, {stats.get('rollouts', 0)} rollouts, "
        f"{len(tree.correct_answers())}/{len(tree.answer_nodes())} correct answers"
    )


def vega_plot(spec: dict, chart: str):
    """A `gr.Plot` value rendering a raw Vega-Lite spec with gradio's Altair renderer (altair itself is not
    needed).

    Args:
        spec (`dict`):
            The Vega-Lite spec.
        chart (`str`):
            "scatter" or "bar": makes gradio size the chart to its container and apply the app's theme
            (fonts, text colours; for "bar", its palette for the colour scale).
    """
    from gradio.components.plot import AltairPlotData

    return AltairPlotData(chart=chart, plot=json.dumps(spec))


def node_label(node) -> str:
    """A node's entry in the node menu (`treecot.search.show.format_node`, 8 words of its text)."""

    return format_node(node, words=8)


def node_markdown(tree: Tree, node_id: int) -> str:
    """One line on a node: type, model, depth, visits, Q, reward, verdict, answer read, tokens (escaped)."""
    node = tree.node(node_id)
    bits = [f"**node {node.id} · {node.type}**"]
    if node.role:
        bits.append(f"model {node.role}")
    bits.append(f"depth {node.depth}")
    bits.append(f"visits N={node.visits}")
    bits.append(f"Q={node.q:.2f}")
    if node.reward is not None:
        bits.append(f"reward {float(node.reward):.3g}")
    if node.correct is not None:
        bits.append("correct ✓" if node.correct else "wrong ✗")
    if node.extracted not in (None, ""):
        bits.append(f"answer read: `{snippet(str(node.extracted), 60)}`")
    bits.append(f"{node.n_tokens} tokens")
    if node.finish_reason:
        bits.append(f"finish: {node.finish_reason}")
    if not node.in_history:
        bits.append("hidden from the history")
    return html.escape(" · ".join(bits), quote=False)


def problem_markdown(tree: Tree, source: TreeSource) -> str:
    """The problem of a tree: its id, task, search statistics, question and reference (escaped)."""
    problem = tree.problem
    stats = tree.stats or {}
    question = html.escape(snippet(str(problem.get("question", "")), 1500), quote=False)
    reference = html.escape(snippet(str(problem.get("reference", "")), 300), quote=False)
    return (
        f"**{html.escape(tree.problem_id)}** ({html.escape(str(problem.get('task', '?')))}) · "
        f"{len(tree)} nodes · {stats.get('rollouts', 0)} rollouts · "
        f"{len(tree.correct_answers())} correct / {len(tree.wrong_answers())} wrong answers · "
        f"stop: {html.escape(str(stats.get('stop_reason', '?')))}\n\n"
        f"> {question}\n\nreference: `{reference}`"
    )


def path_segments(tree: Tree, node_ids: Sequence[int]) -> list[tuple[str, str | None]]:
    """HighlightedText segments of a serialized path, one per node, labelled by node type."""
    out: list[tuple[str, str | None]] = []
    nodes = [tree.node(int(i)) for i in node_ids]
    shown = [n for n in nodes if n.in_history]
    for k, n in enumerate(shown):
        out.append((n.serialize() + ("\n" if k < len(shown) - 1 else ""), node_kind(n)))
    return out


def pair_segments(text: str, prefix: str, label: str) -> list[tuple[str, str | None]]:
    """HighlightedText segments of one text of a preference pair: its shared `prefix` (when it starts with
    it), then the rest labelled `label`.

    Args:
        text (`str`):
            The chosen or rejected text.
        prefix (`str`):
            The prefix the pair's texts share.
        label (`str`):
            "chosen" or "rejected".
    """
    if prefix and text.startswith(prefix):
        return [(prefix, "shared prefix"), (text[len(prefix) :], label)]
    return [(text, label)]


def known_tags() -> dict[str, str]:
    """Tag -> node type of the reasoning nodes (``<thinking>`` -> thinking, …), ``<think>`` included."""

    tags = {t.tag: name for name, t in DEFAULT_NODE_TYPES.items()}
    tags["think"] = "thinking"
    return tags


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z_\-]*)>")


def split_tagged(text: str) -> list[tuple[str | None, str, bool]]:
    """Split model output into `(tag, content, closed)` sections.

    Text inside a known node tag (``<thinking>…</thinking>``, ``<answer>…</answer>``, …) becomes one
    section; text outside any tag has tag None. A section still open at the end (while streaming) or
    interrupted by another opening tag has ``closed=False``. Unknown tags are kept as text.
    """
    known = known_tags()
    sections: list[tuple[str | None, str, bool]] = []
    current: str | None = None
    buf: list[str] = []
    pos = 0

    def flush(closed: bool) -> None:
        content = "".join(buf)
        if current is not None or content.strip():
            sections.append((current, content.strip("\n") if current else content.strip(), closed))
        buf.clear()

    for m in _TAG.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if tag not in known:
            continue
        buf.append(text[pos : m.start()])
        pos = m.end()
        if not closing:
            flush(closed=False) if current is not None else flush(closed=True)
            current = tag
        elif current == tag:
            flush(closed=True)
            current = None
        # a stray closing tag is dropped
    buf.append(text[pos:])
    flush(closed=current is None)
    return sections


def render_sections(text: str) -> str:
    """HTML of a model answer: every reasoning node a collapsible ``<details>`` section (labelled by its
    tag), the answer open and emphasised, untagged text as plain paragraphs. All text is escaped."""
    parts = []
    for tag, content, closed in split_tagged(text):
        body = html.escape(content, quote=False)
        if tag is None:
            parts.append(f'<div class="tc-text">{body}</div>')
        elif tag == "answer":
            parts.append(f'<div class="tc-answer"><strong>answer</strong><div>{body}</div></div>')
        else:
            more = "" if closed else " …"
            parts.append(
                f'<details class="tc-node tc-{tag}"><summary>{html.escape(tag)}{more}</summary>'
                f"<div>{body}</div></details>"
            )
    if not parts:
        return '<div class="tc-empty">(no output yet)</div>'
    return '<div class="tc-sections">' + "".join(parts) + "</div>"


def css() -> str:
    """The app's CSS: reasoning sections bordered in their node type's colour, the answer in green."""

    rules = [
        ".tc-sections details { border-left: 4px solid #9ecae1; margin: 6px 0; padding: 2px 10px;"
        " background: rgba(127,127,127,0.06); border-radius: 4px; }",
        ".tc-sections summary { cursor: pointer; font-weight: 600; }",
        ".tc-sections div { white-space: pre-wrap; }",
        ".tc-sections .tc-answer { border-left: 4px solid #2ca02c; margin: 8px 0; padding: 4px 10px;"
        " background: rgba(44,160,44,0.08); border-radius: 4px; }",
    ]
    for name, node_type in DEFAULT_NODE_TYPES.items():
        rules.append(
            f".tc-sections .tc-{node_type.tag} {{ border-left-color: {TYPE_COLORS.get(name, OTHER_COLOR)}; }}"
        )
    return "\n".join(rules)
