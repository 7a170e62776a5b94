"""Clean paths (DESIGN §4): a path is used as an SFT row or as a chosen response only when none of its nodes
was cut at its token cap, loops on the same content, or holds a section tag the model wrote itself
(`path_defects`), nor when its answer section breaks the format the task's prompt asks for
(`answer_defects`). Reasons: `DEFECT_REASONS`. `treecot.data.extract` builds the rows and re-exports these.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from treecot.search.patterns import DEFAULT_NODE_TYPES
from treecot.search.tree import Node
from treecot.tasks import get_task, task_names
from treecot.tasks.diagnostics import DiagnosticsConfig, approx_tokens, find_loops

#: Why a path is not clean (`path_defects`), in report order: a node cut at its token cap, a node that
#: loops on the same content, a node holding a section tag (or a broken fragment of one) in its text, an
#: answer section that breaks the task's answer format (`answer_defects`).
DEFECT_REASONS = ("truncated", "repetition", "stray_tag", "answer_format")


#: Reasoning tags of other formats that no section may contain either: R1's `<think>`, Marco-o1 v1's
#: `<Thought>` / `<Output>` (a `<thought-…` fragment is a model inventing a tag).
FOREIGN_TAGS = ("think", "thought", "output")


def section_tags(nodes: Iterable[Node] = ()) -> frozenset[str]:
    """Tag names no node text may contain (lowercased): every built-in node type's tag and type name,
    `FOREIGN_TAGS`, and the tags of `nodes` (custom types of a patterns file)."""
    names = set(FOREIGN_TAGS)
    for name, node_type in DEFAULT_NODE_TYPES.items():
        names.update((name, node_type.tag))
    names.update(n.tag for n in nodes if n.tag)
    return frozenset(x.lower() for x in names if x)


@lru_cache(maxsize=64)
def _stray_tag_re(tags: frozenset[str]) -> re.Pattern:
    alternatives = "|".join(re.escape(t) for t in sorted(tags, key=lambda t: (-len(t), t)))
    # not followed by more of a word ("<thinkingly") nor by prose ("<<Thinking about life>>", an IFEval title)
    return re.compile(rf"<\s*/?\s*(?:{alternatives})(?![A-Za-z0-9])(?![ \t]+\w)", re.IGNORECASE)


_TRAILING_FRAGMENT_RE = re.compile(r"<\s*(/?)\s*([A-Za-z_-]*)$")


def stray_tags(text: str, tags: Iterable[str] | None = None) -> list[str]:
    """The section-tag fragments inside one node's text, in order (empty: none).

    A fragment is `<` (optionally `/`, spaces allowed) followed by one of `tags` (default `section_tags()`),
    case-insensitively, as a whole name, whether or not a `>` follows: `<thinking>`, `</sub-task>`,
    `</thinking` (no `>`), `<</thinking>`, `<thought-`. At the very end of the text, a tag cut short (`</`,
    `</sub`, `<double-`) counts too. Angle brackets of maths (`x < y`, `a<b`), tags that name no section
    (`<b>`, `<<poem of joy>>`) and a tag name followed by prose (`<<Thinking about life>>`) do not.
    """
    tag_set = section_tags() if tags is None else frozenset(t.lower() for t in tags)
    found = [m.group(0) for m in _stray_tag_re(tag_set).finditer(text)] if tag_set else []
    tail = _TRAILING_FRAGMENT_RE.search(text.rstrip())
    if tail and not (found and text.rstrip().endswith(found[-1])):
        slash, name = tail.group(1), tail.group(2).lower()
        if slash or (len(name) >= 2 and any(t.startswith(name) for t in tag_set)):
            found.append(tail.group(0))
    return found


def node_defects(
    node: Node, *, tags: Iterable[str] | None = None, diagnostics: DiagnosticsConfig | None = None
) -> list[str]:
    """Why one node is not clean (`DEFECT_REASONS` order; empty: clean).

    `truncated`: generation hit the node's token cap (`finish_reason == "length"`). `repetition`: the
    diagnostics' loop detector (`find_loops` with `diagnostics`, default `DiagnosticsConfig()`) finds a
    loop in the node's text. `stray_tag`: `stray_tags(node.text, tags)` finds a fragment (the tags the
    node is wrapped in when serialized are not part of its text). Fixed-text nodes are always clean.
    """
    if node.finish_reason == "fixed":
        return []
    out = []
    if node.finish_reason == "length":
        out.append("truncated")
    if node.text and find_loops(approx_tokens(node.text.lower()), diagnostics)["repetition"]:
        out.append("repetition")
    if stray_tags(node.text, section_tags([node]) if tags is None else tags):
        out.append("stray_tag")
    return out


def path_defects(
    path_nodes: Sequence[Node],
    *,
    tags: Iterable[str] | None = None,
    diagnostics: DiagnosticsConfig | None = None,
    cache: dict[int, list[str]] | None = None,
) -> list[str]:
    """Why a root-to-answer path is not clean: the union of `node_defects` over its nodes, answer node
    included, in `DEFECT_REASONS` order (empty: clean). Nodes hidden from the history (`in_history:
    false`) are not part of the path's text and are not checked.

    Args:
        path_nodes (`Sequence[Node]`):
            The nodes of the path, root to answer.
        tags (`Iterable[str]`, *optional*):
            Section tag names (default `section_tags(path_nodes)`).
        diagnostics (`DiagnosticsConfig`, *optional*):
            Thresholds of the repetition detector (see `node_defects`).
        cache (`dict[int, list[str]]`, *optional*):
            Node id → defects, shared by the paths of ONE tree so that each node is diagnosed once.
    """
    nodes = [n for n in path_nodes if n.in_history and not n.is_root]
    tag_set = section_tags(nodes) if tags is None else frozenset(t.lower() for t in tags)
    found: set[str] = set()
    for node in nodes:
        reasons = None if cache is None else cache.get(node.id)
        if reasons is None:
            reasons = node_defects(node, tags=tag_set, diagnostics=diagnostics)
            if cache is not None:
                cache[node.id] = reasons
        found.update(reasons)
    return [r for r in DEFECT_REASONS if r in found]


def answer_defects(answer: Node, task: str) -> list[str]:
    """``["answer_format"]`` when the text of the answer node breaks the format the prompt of `task` asks
    for, else empty.

    The format is `Task.answer_format_problems`'s: for math, one ``\\boxed{}``, a plain number where the
    prompt asks for one, no LaTeX or tags after it. The verifier may have accepted it (``\\boxed{9+7}`` is
    16): as training text it would teach the student to break the format.

    Args:
        answer (`Node`):
            The answer node.
        task (`str`):
            The task's name; unregistered tasks: empty.
    """
    checker = _format_task(task)
    if answer.finish_reason == "fixed" or checker is None:
        return []
    return ["answer_format"] if checker.answer_format_problems(answer.text or "") else []


@lru_cache(maxsize=32)
def _format_task(name: str):
    return get_task(name) if name in task_names() else None
