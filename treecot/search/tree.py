"""Search trees: `Node`, `Tree` and their JSON form (DESIGN §4).

A tree is one JSON object per problem; later stages (dataset building, the Space, `show-tree`) read only
this JSON, never the search engine::

    {"schema_version": 1, "problem": {...}, "config_hash": "…", "config": {...},
     "generator": {"A": "…", "B": "…", "backend": "…", "sampling": {...}},
     "nodes": [{"id": 0, "parent": null, "type": "root", ...}, ...],
     "stats": {"llm_calls": …, "rollouts": …, "correct_paths": …, ...}}

Node 0 is always the root: it stands for the prompt (system + question), carries no text and is never part
of a serialized path. Every other node is one tagged segment of the assistant's reasoning. A path is read
from the first node below the root down to a node, and serialized as its tagged segments joined by "\\n"::

    <sub-task>Firstly, I need to break down this task. …</sub-task>
    <thinking>…</thinking>
    <answer>The answer is: \\boxed{42}</answer>

Nodes whose type is hidden from the history (`in_history: false` in the patterns) keep their place in the
tree but are left out of serialized paths and of the prompts that continue them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TREE_SCHEMA_VERSION = 1
ROOT_TYPE = "root"
ANSWER_TYPE = "answer"


@dataclass
class Node:
    """One node of a search tree.

    id:            index in `Tree.nodes` (the root is 0).
    parent:        the parent's id (None for the root).
    type:          node type name (`root`, `sub_task`, `thinking`, …, `answer`).
    role:          "A" or "B": which model wrote it (None for the root).
    text:          the node's content without tags: prefill + generated text (or a fixed text).
    prefill:       the part of `text` that was forced rather than generated.
    tag:           the tag the node is wrapped in when serialized (e.g. "sub-task").
    in_history:    whether the node appears in serialized paths and later prompts.
    n_tokens:      generated tokens (0 for fixed texts such as reflections).
    mean_logprob:  mean log-prob of the generated tokens (None when not requested or nothing generated).
    confidence:    Marco-o1 v1 token confidence of the generated tokens (None unless requested).
    visits:        rollouts that went through the node (N).
    value_sum:     sum of the rewards of those rollouts (Q = value_sum / visits).
    reward:        answer nodes only: the reward the answer earned (else None).
    terminal:      answer nodes: the search never expands past them.
    depth:         0 for the root, parent depth + 1 otherwise.
    finish_reason: "stop", "length" (hit the per-node token cap without its closing tag) or "fixed".
    expanded:      its children have been created.
    correct:       answer nodes only: the task's verifier judged the path correct.
    answered:      answer nodes only: the verifier could extract an answer.
    extracted:     answer nodes only: what the verifier read as the answer (JSON-safe).
    extra:         any further fields found when reading a tree (kept for an exact round trip).
    """

    id: int
    parent: int | None
    type: str
    role: str | None = None
    text: str = ""
    prefill: str = ""
    tag: str = ""
    in_history: bool = True
    n_tokens: int = 0
    mean_logprob: float | None = None
    confidence: float | None = None
    visits: int = 0
    value_sum: float = 0.0
    reward: float | None = None
    terminal: bool = False
    depth: int = 0
    finish_reason: str | None = None
    expanded: bool = False
    correct: bool | None = None
    answered: bool | None = None
    extracted: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    # In-memory only: ids of the children, in creation order (rebuilt from `parent` when reading).
    children: list[int] = field(default_factory=list, repr=False, compare=False)

    @property
    def q(self) -> float:
        """Mean reward of the rollouts through this node (0.0 when never visited)."""
        return self.value_sum / self.visits if self.visits else 0.0

    @property
    def is_root(self) -> bool:
        return self.parent is None

    def serialize(self) -> str:
        """The node as it appears in a path: `<tag>text</tag>`."""
        return f"<{self.tag}>{self.text}</{self.tag}>"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("extra", "children"):
                continue
            out[f.name] = getattr(self, f.name)
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Node:
        if not isinstance(data, dict):
            raise TypeError(f"a tree node must be a JSON object, got {type(data).__name__}")
        for key in ("id", "parent", "type"):
            if key not in data:
                raise ValueError(f"tree node {data.get('id', '?')} has no {key!r} field")
        known = {f.name for f in dataclasses.fields(cls)} - {"extra", "children"}
        kwargs = {k: v for k, v in data.items() if k in known}
        extra = {k: v for k, v in data.items() if k not in known}
        return cls(**kwargs, extra=extra)


@dataclass
class Tree:
    """A search tree for one problem: the nodes plus what produced them.

    problem:      the Problem record (DESIGN §4).
    config_hash:  hash of the search configuration and patterns (names the run).
    generator:    model ids per role, backend and sampling parameters.
    nodes:        all nodes; `nodes[i].id == i` and the root is `nodes[0]`.
    stats:        cost and yield accounting (llm_calls, prefill_tokens, generated_tokens,
                  cache_hit_tokens, wall_seconds, rollouts, correct_paths, …).
    config:       the search configuration and the patterns' name (for humans; the hash is authoritative).
    """

    problem: dict[str, Any]
    nodes: list[Node] = field(default_factory=list)
    config_hash: str = ""
    generator: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    schema_version: int = TREE_SCHEMA_VERSION

    def __post_init__(self) -> None:
        if not self.nodes:
            self.nodes = [Node(id=0, parent=None, type=ROOT_TYPE, finish_reason=None)]
        self._link()

    # -- structure -----------------------------------------------------------------------------------
    def _link(self) -> None:
        for node in self.nodes:
            node.children = []
        for i, node in enumerate(self.nodes):
            if node.id != i:
                raise ValueError(f"tree node at position {i} has id {node.id}; ids must equal positions")
            if i == 0:
                if node.parent is not None:
                    raise ValueError("tree node 0 must be the root (parent null)")
                continue
            if node.parent is None or not 0 <= node.parent < i:
                raise ValueError(
                    f"tree node {i} has parent {node.parent!r}; a parent must be an earlier node's id"
                )
            self.nodes[node.parent].children.append(i)

    @property
    def root(self) -> Node:
        return self.nodes[0]

    @property
    def problem_id(self) -> str:
        return str(self.problem.get("id", ""))

    def node(self, node_id: int) -> Node:
        if not isinstance(node_id, int) or not 0 <= node_id < len(self.nodes):
            raise KeyError(
                f"tree of problem {self.problem_id!r} has no node {node_id!r} ({len(self.nodes)} nodes)"
            )
        return self.nodes[node_id]

    def children(self, node_id: int) -> list[Node]:
        return [self.nodes[i] for i in self.node(node_id).children]

    def add_node(self, parent: int, type: str, **fields: Any) -> Node:
        """Append a child of `parent` and return it (depth and id are filled in)."""
        parent_node = self.node(parent)
        node = Node(id=len(self.nodes), parent=parent, type=type, depth=parent_node.depth + 1, **fields)
        self.nodes.append(node)
        parent_node.children.append(node.id)
        return node

    def ancestors(self, node_id: int) -> Iterator[Node]:
        """The node's ancestors from its parent up to and including the root."""
        node = self.node(node_id)
        while node.parent is not None:
            node = self.nodes[node.parent]
            yield node

    def path(self, node_id: int) -> list[Node]:
        """The nodes from the first node below the root down to `node_id` (root excluded)."""
        node = self.node(node_id)
        out = []
        while node.parent is not None:
            out.append(node)
            node = self.nodes[node.parent]
        return out[::-1]

    def serialize_path(self, node_id: int) -> str:
        """The assistant text of the path to `node_id`: tagged nodes joined by "\\n" (hidden ones omitted)."""
        return "\n".join(n.serialize() for n in self.path(node_id) if n.in_history)

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    # -- answers -------------------------------------------------------------------------------------
    def answer_nodes(self) -> list[Node]:
        """All answer (terminal) nodes, in creation order."""
        return [n for n in self.nodes if n.terminal]

    def correct_answers(self) -> list[Node]:
        """Answer nodes the task's verifier judged correct."""
        return [n for n in self.answer_nodes() if n.correct is True]

    def wrong_answers(self) -> list[Node]:
        """Answer nodes the task's verifier judged wrong (including those with no answer at all)."""
        return [n for n in self.answer_nodes() if n.correct is False]

    def correct_paths(self) -> list[list[Node]]:
        return [self.path(n.id) for n in self.correct_answers()]

    def wrong_paths(self) -> list[list[Node]]:
        return [self.path(n.id) for n in self.wrong_answers()]

    # -- JSON ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "problem": self.problem,
            "config_hash": self.config_hash,
            "config": self.config,
            "generator": self.generator,
            "nodes": [n.to_dict() for n in self.nodes],
            "stats": self.stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Tree:
        if not isinstance(data, dict):
            raise TypeError(f"a tree must be a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version != TREE_SCHEMA_VERSION:
            raise ValueError(
                f"tree schema_version {version!r} is not supported (this treecot reads {TREE_SCHEMA_VERSION})"
            )
        for key in ("problem", "nodes"):
            if key not in data:
                raise ValueError(f"tree record has no {key!r} field")
        if not data["nodes"]:
            raise ValueError("tree record has an empty 'nodes' list (the root is required)")
        return cls(
            problem=data["problem"],
            nodes=[Node.from_dict(n) for n in data["nodes"]],
            config_hash=data.get("config_hash", ""),
            generator=data.get("generator", {}),
            stats=data.get("stats", {}),
            config=data.get("config", {}),
            schema_version=version,
        )

    def to_json(self) -> str:
        """One line of a JSONL shard."""
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_json(cls, line: str) -> Tree:
        return cls.from_dict(json.loads(line))


def jsonable(value: Any) -> Any:
    """`value` if it survives a JSON round trip unchanged in kind, else a JSON-safe rendering of it."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return str(value)
