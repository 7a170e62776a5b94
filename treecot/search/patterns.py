"""Node types and per-domain transfer matrices (Marco-o1 v2, METHOD §1).

A *node type* says how a segment of reasoning is produced: its tag, the prefills that start it (a
sample picks one), which model writes it (role "A", or "B" for double checks and corrections), whether
it shows in the history, its token cap, and — for `reflection` — a fixed text that needs no LLM call.
The built-in definitions live in `DEFAULT_NODE_TYPES`; a patterns YAML may override any field.

A *transfer matrix* says, for each parent type, which child types an expansion creates and how many
samples of each: `{parent_type: {child_type: k}}`, plus the root's children. Children are created (and,
while unvisited, tried by the search) in the order they are listed. `backtrack_to` names the ancestor
type(s) under which a `reflection` child is placed after a wrong answer.

YAML layout (`recipes/patterns/math.yaml`)::

    name: math
    types:                    # optional overrides of DEFAULT_NODE_TYPES (or new types with tag + role)
      answer: {prefills: ["The answer is: \\\\boxed{"], max_tokens: 64}
    root: {sub_task: 2}
    transfer:
      sub_task: {thinking: 2}
      thinking: {double_check: 1, answer: 1, thinking: 2}
      double_check: {answer: 1, thinking: 1}
      reflection: {thinking_from_scratch: 2}
      thinking_from_scratch: {thinking: 2}
    backtrack_to: double_check
    reflection_text: "Wait! Something is wrong, let's think again."
    if_reward: loose          # instruction tasks: reward prompt-level loose (default) or strict accuracy

`if_reward` sets how an answer to an instruction-following task (domain ``instructions``: IFEval, IFBench,
Multi-IF) is rewarded: ``loose`` (the default) counts a response whose every instruction is followed by
IFEval's loose check (the response itself or one of its variants without the first / last line or
without ``*``), as the reference implementation's MCTS reward does (Marco-o1 v2,
``src/v2/src/tree_search/evaluator/evaluator.py``, ``instruct_follow_evaluator``: prompt-level loose);
``strict`` counts only responses that follow every instruction as written. Other tasks ignore it.
`Patterns.reward_verdict` applies it. The resolved patterns (`to_dict`, the config hash) name it only when
a patterns file sets it.

`load_patterns("math")` reads `recipes/patterns/math.yaml`; any path to a YAML file works too (read with
`treecot.configs.load_yaml`: size-capped, aliases bounded). Validation rejects a matrix that names an
unknown type, has a type from which `answer` cannot be reached, non-positive counts, or backtracking
without reflection children, naming the offending entry. Counts are capped far above real patterns (the
shipped ones create 1–2 samples per child type): `MAX_CHILD_SAMPLES` samples of one child type,
`MAX_EXPANSION_SAMPLES` samples in one row (one expansion), `MAX_NODE_TYPES` node types and
`MAX_NODE_TOKENS` tokens for a type's `max_tokens`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.configs import load_yaml, short_key, short_repr
from treecot.search.tree import ANSWER_TYPE, ROOT_TYPE

ROLES = ("A", "B")
REFLECTION_TYPE = "reflection"
DEFAULT_REFLECTION_TEXT = "Wait! Something is wrong, let's think again."
#: Environment variable naming extra directories searched by `load_patterns(name)`.
PATTERNS_PATH_ENV = "TREECOT_PATTERNS_PATH"

#: Samples of one child type in one row of the matrix at most (`root: {sub_task: k}`; shipped: 1–2).
MAX_CHILD_SAMPLES = 64
#: Samples of all child types of one row at most: the children one expansion creates.
MAX_EXPANSION_SAMPLES = 256
#: Node types at most (built-in and new ones together; there are 8 built-in types).
MAX_NODE_TYPES = 64
#: Tokens one node may generate at most (a type's `max_tokens`, `MCTSConfig.max_node_tokens`): 128k.
MAX_NODE_TOKENS = 131_072
#: Levels of the instruction-following reward (`if_reward`): IFEval's prompt-level strict or loose accuracy.
IF_REWARD_LEVELS = ("strict", "loose")
#: The reference implementation rewards instruction following at prompt-level loose accuracy.
DEFAULT_IF_REWARD = "loose"


class PatternError(ValueError):
    """A patterns file or dict is invalid; the message names the offending entry."""


class PatternsNotFoundError(PatternError, FileNotFoundError):
    """No patterns of that name, or no such patterns file."""


@dataclass(frozen=True)
class NodeType:
    """How one kind of node is produced.

    Args:
        name (`str`):
            Type name used in transfer matrices (`double_check`).
        tag (`str`):
            Tag wrapping the node's text in a path (`double-check` → `<double-check>…</double-check>`).
        prefills (`tuple[str, ...]`, *optional*, defaults to `()`):
            Texts that start the node; each expansion picks one (empty = free continuation).
        role (`str`, *optional*, defaults to `"A"`):
            "A" (main model) or "B" (second model: double checks and corrections).
        in_history (`bool`, *optional*, defaults to `True`):
            The node is part of serialized paths and of later prompts.
        max_tokens (`int`, *optional*):
            Per-node generation cap; None = the search config's `max_node_tokens`.
        terminal (`bool`, *optional*, defaults to `False`):
            The node ends a path (only `answer`).
        fixed_texts (`tuple[str, ...]`, *optional*, defaults to `()`):
            If set, the node's text is one of these and no LLM call is made (`reflection`).
        stop (`tuple[str, ...]`, *optional*, defaults to `()`):
            Extra stop strings that end the node besides its closing tag, e.g. "\n\n" so that a small model
            which never writes closing tags ends a step at a paragraph break (the node then counts as
            finished, not as truncated).
    """

    name: str
    tag: str
    prefills: tuple[str, ...] = ()
    role: str = "A"
    in_history: bool = True
    max_tokens: int | None = None
    terminal: bool = False
    fixed_texts: tuple[str, ...] = ()
    stop: tuple[str, ...] = ()

    @property
    def needs_llm(self) -> bool:
        return not self.fixed_texts

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["prefills"] = list(self.prefills)
        d["fixed_texts"] = list(self.fixed_texts)
        d["stop"] = list(self.stop)
        return d


#: Built-in node types (METHOD §1). Prefills follow the Marco-o1 v2 demo configuration.
DEFAULT_NODE_TYPES: dict[str, NodeType] = {
    t.name: t
    for t in (
        NodeType("sub_task", "sub-task", ("Firstly, I need to break down this task.",), "A"),
        NodeType("thinking", "thinking", (), "A"),
        NodeType("hypothesis", "hypothesis", ("Maybe", "Alternatively,"), "A"),
        NodeType(
            "double_check",
            "double-check",
            ("Let's check the result.", "Now I need to double check the result."),
            "B",
        ),
        NodeType(REFLECTION_TYPE, "reflection", (), "B", fixed_texts=(DEFAULT_REFLECTION_TEXT,)),
        NodeType("reclarify", "reclarify", ("To ensure clarity, let me restate the problem.",), "A"),
        NodeType(
            "thinking_from_scratch",
            "thinking-from-scratch",
            ("The previous answer is wrong, I need to rethink this question.",),
            "B",
        ),
        NodeType(ANSWER_TYPE, "answer", ("The answer is:",), "A", terminal=True),
    )
}

_TYPE_FIELDS = {"tag", "prefills", "role", "in_history", "max_tokens", "fixed_texts", "stop"}
_TOP_FIELDS = {
    "name",
    "description",
    "types",
    "root",
    "transfer",
    "backtrack_to",
    "reflection_text",
    "if_reward",
}


@dataclass(frozen=True)
class Patterns:
    """Validated node types and transfer matrix of one domain. Build with `from_dict` / `load_patterns`."""

    name: str
    types: Mapping[str, NodeType]
    root: Mapping[str, int]
    transfer: Mapping[str, Mapping[str, int]]
    backtrack_to: tuple[str, ...] = ()
    description: str = ""
    source: str = field(default="", compare=False)
    #: "strict" or "loose" as set by the patterns file; None: not set (`reward_level` gives the default).
    if_reward: str | None = None

    @property
    def reward_level(self) -> str:
        """How instruction-following answers are rewarded: "loose" (default, as the reference) or "strict"."""
        return self.if_reward or DEFAULT_IF_REWARD

    def reward_verdict(self, task: Any, completion: str, problem: Mapping[str, Any]) -> Any:
        """The verdict a search rewards for `completion`: ``task.verify``, with an instruction-following
        task (domain ``instructions`` whose ``verify`` takes ``loose``) scored at `reward_level`, so that
        ``verdict.correct`` is prompt-level loose or strict accuracy. Other tasks are verified as they are."""
        if getattr(task, "domain", "") == "instructions":
            try:
                takes_level = "loose" in inspect.signature(task.verify).parameters
            except (TypeError, ValueError):
                takes_level = False
            if takes_level:
                return task.verify(completion, problem, loose=self.reward_level == "loose")
        return task.verify(completion, problem)

    def children_of(self, type_name: str) -> dict[str, int]:
        """Child types and sample counts created when expanding a node of `type_name` (`root` included)."""
        if type_name == ROOT_TYPE:
            return dict(self.root)
        return dict(self.transfer.get(type_name, {}))

    def node_type(self, name: str) -> NodeType:
        try:
            return self.types[name]
        except KeyError:
            raise KeyError(
                f"patterns {self.name!r} have no node type {name!r}; known: {sorted(self.types)}"
            ) from None

    @property
    def reflection_texts(self) -> tuple[str, ...]:
        return self.types[REFLECTION_TYPE].fixed_texts if REFLECTION_TYPE in self.types else ()

    def used_types(self) -> set[str]:
        """Types that can occur in a tree: children of the root, of any row, and reflection if backtracking."""
        used = set(self.root)
        for row in self.transfer.values():
            used.update(row)
        if self.backtrack_to:
            used.add(REFLECTION_TYPE)
        return used

    def section_tags(self) -> tuple[str, ...]:
        """`<tag>` and `</tag>` of every node type (the root has none), in type order, without repeats.

        The search adds them to every request's stop strings (`MCTSConfig.stop_at_any_tag`), so a node
        ends where the model starts (or closes) another section instead of writing it inside this one.
        """
        out: dict[str, None] = {}
        for t in self.types.values():
            out[f"<{t.tag}>"] = None
            out[f"</{t.tag}>"] = None
        return tuple(out)

    def roles(self) -> dict[str, list[str]]:
        """Role → the LLM-written types that role serves (only types that can occur)."""
        out: dict[str, list[str]] = {}
        for name in sorted(self.used_types()):
            t = self.types[name]
            if t.needs_llm:
                out.setdefault(t.role, []).append(name)
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved patterns (every type spelled out); `from_dict(to_dict())` gives equal patterns."""
        return {
            "name": self.name,
            "description": self.description,
            "types": {
                k: {f: v for f, v in t.to_dict().items() if f not in ("name", "terminal")}
                for k, t in self.types.items()
            },
            "root": dict(self.root),
            "transfer": {k: dict(v) for k, v in self.transfer.items()},
            "backtrack_to": list(self.backtrack_to),
            **({"if_reward": self.if_reward} if self.if_reward is not None else {}),
        }

    def fingerprint(self) -> str:
        """Stable hash of the resolved patterns (part of a run's config hash)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None, source: str = "") -> Patterns:
        """Validate a patterns mapping (as read from YAML) and resolve its node types."""
        where = f" in {source}" if source else ""
        if not isinstance(data, Mapping):
            raise PatternError(f"patterns{where} must be a mapping, got {type(data).__name__}")
        unknown = sorted(map(str, set(data) - _TOP_FIELDS))
        if unknown:
            raise PatternError(
                f"{short_key(unknown[0])}: unknown field{where}; expected one of {sorted(_TOP_FIELDS)}"
            )
        pname = str(data.get("name") or name or "custom")

        types = _resolve_types(data.get("types") or {}, where)
        reflection_text = data.get("reflection_text")
        if reflection_text is not None:
            texts = _str_list(reflection_text, "reflection_text", where, allow_empty_items=False)
            if not texts:
                raise PatternError(f"reflection_text: must not be empty{where}")
            types[REFLECTION_TYPE] = dataclasses.replace(types[REFLECTION_TYPE], fixed_texts=tuple(texts))

        if "root" not in data:
            raise PatternError(f"root: missing{where}; give the root's children, e.g. root: {{sub_task: 2}}")
        root = _row(data["root"], "root", types, where)
        if not root:
            raise PatternError(f"root: the root needs at least one child type{where}")
        transfer_raw = data.get("transfer") or {}
        if not isinstance(transfer_raw, Mapping):
            raise PatternError(f"transfer: must be a mapping of parent type to {{child type: count}}{where}")
        transfer: dict[str, dict[str, int]] = {}
        for parent, row in transfer_raw.items():
            loc = f"transfer.{short_key(parent)}"
            if parent == ROOT_TYPE:
                raise PatternError(f"{loc}: give the root's children under the top-level 'root' key{where}")
            if parent not in types:
                raise PatternError(
                    f"{loc}: unknown node type {short_repr(parent)}{where}; known: {sorted(types)}"
                )
            if types[parent].terminal:
                raise PatternError(f"{loc}: {parent!r} is terminal and cannot have children{where}")
            transfer[parent] = _row(row, loc, types, where)

        backtrack_raw = data.get("backtrack_to")
        backtrack = (
            tuple(_str_list(backtrack_raw, "backtrack_to", where)) if backtrack_raw is not None else ()
        )
        for t in backtrack:
            if t not in types:
                raise PatternError(
                    f"backtrack_to.{short_key(t)}: unknown node type {short_repr(t)}{where}; known: {sorted(types)}"
                )
            if types[t].terminal:
                raise PatternError(
                    f"backtrack_to.{t}: a reflection cannot be placed under a terminal type{where}"
                )

        if_reward = data.get("if_reward")
        if if_reward is not None and if_reward not in IF_REWARD_LEVELS:
            raise PatternError(
                f"if_reward: must be one of {list(IF_REWARD_LEVELS)}{where}, got {short_repr(if_reward)}"
            )

        patterns = cls(
            if_reward=if_reward,
            name=pname,
            types=types,
            root=root,
            transfer=transfer,
            backtrack_to=backtrack,
            description=str(data.get("description") or ""),
            source=source,
        )
        _check_graph(patterns, where)
        return patterns


def _str_list(value: Any, loc: str, where: str, allow_empty_items: bool = True) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise PatternError(f"{loc}: must be a string or a list of strings{where}, got {short_repr(value)}")
    if not allow_empty_items and any(not v.strip() for v in items):
        raise PatternError(f"{loc}: entries must not be empty{where}")
    return list(items)


def _resolve_types(overrides: Any, where: str) -> dict[str, NodeType]:
    if not isinstance(overrides, Mapping):
        raise PatternError(f"types: must be a mapping of type name to fields{where}")
    new = [n for n in overrides if n not in DEFAULT_NODE_TYPES]
    if len(DEFAULT_NODE_TYPES) + len(new) > MAX_NODE_TYPES:
        raise PatternError(
            f"types: {len(new)} new node types make {len(DEFAULT_NODE_TYPES) + len(new)}, more than the "
            f"maximum {MAX_NODE_TYPES} (treecot.search.patterns.MAX_NODE_TYPES){where}"
        )
    types = dict(DEFAULT_NODE_TYPES)
    for name, spec in overrides.items():
        loc = f"types.{short_key(name)}"
        if not isinstance(name, str):
            raise PatternError(f"{loc}: a node type name must be a string{where}")
        if name == ROOT_TYPE:
            raise PatternError(f"{loc}: 'root' is not a node type that can be configured{where}")
        if not isinstance(spec, Mapping):
            raise PatternError(f"{loc}: must be a mapping of fields{where}")
        bad = sorted(set(spec) - _TYPE_FIELDS)
        if bad:
            raise PatternError(
                f"{loc}.{bad[0]}: unknown field{where}; expected one of {sorted(_TYPE_FIELDS)}"
            )
        if name in types:
            base = types[name]
        else:
            missing = [f for f in ("tag", "role") if f not in spec]
            if missing:
                raise PatternError(
                    f"{loc}: new node type {name!r} must define {' and '.join(missing)}{where} "
                    f"(built-in types: {sorted(DEFAULT_NODE_TYPES)})"
                )
            base = NodeType(name=name, tag=str(spec["tag"]))
        kwargs: dict[str, Any] = {}
        if "tag" in spec:
            tag = spec["tag"]
            if not isinstance(tag, str) or not tag or any(c in tag for c in "<>/ \n"):
                raise PatternError(
                    f"{loc}.tag: must be a non-empty name without '<', '>', '/' or spaces{where}"
                )
            kwargs["tag"] = tag
        if "prefills" in spec:
            kwargs["prefills"] = tuple(_str_list(spec["prefills"], f"{loc}.prefills", where))
        if "role" in spec:
            if spec["role"] not in ROLES:
                raise PatternError(
                    f"{loc}.role: must be one of {list(ROLES)}{where}, got {short_repr(spec['role'])}"
                )
            kwargs["role"] = spec["role"]
        if "in_history" in spec:
            if not isinstance(spec["in_history"], bool):
                raise PatternError(f"{loc}.in_history: must be true or false{where}")
            kwargs["in_history"] = spec["in_history"]
        if "max_tokens" in spec:
            mt = spec["max_tokens"]
            if mt is not None and (isinstance(mt, bool) or not isinstance(mt, int) or mt <= 0):
                raise PatternError(
                    f"{loc}.max_tokens: must be a positive integer or null{where}, got {short_repr(mt)}"
                )
            if mt is not None and mt > MAX_NODE_TOKENS:
                raise PatternError(
                    f"{loc}.max_tokens: {mt} is more than the maximum {MAX_NODE_TOKENS:,} "
                    f"(treecot.search.patterns.MAX_NODE_TOKENS){where}"
                )
            kwargs["max_tokens"] = mt
        if "fixed_texts" in spec:
            kwargs["fixed_texts"] = tuple(
                _str_list(spec["fixed_texts"], f"{loc}.fixed_texts", where, allow_empty_items=False)
            )
            if base.terminal and kwargs["fixed_texts"]:
                raise PatternError(f"{loc}.fixed_texts: the terminal type cannot have a fixed text{where}")
        if "stop" in spec:
            stops = _str_list(spec["stop"], f"{loc}.stop", where)
            if any(not v for v in stops):  # whitespace such as "\n\n" is a valid stop string
                raise PatternError(f"{loc}.stop: entries must not be empty strings{where}")
            kwargs["stop"] = tuple(stops)
        types[name] = dataclasses.replace(base, **kwargs)
    return types


def _row(row: Any, loc: str, types: Mapping[str, NodeType], where: str) -> dict[str, int]:
    if row is None:
        return {}
    if not isinstance(row, Mapping):
        raise PatternError(
            f"{loc}: must be a mapping of child type to sample count{where}, got {short_repr(row)}"
        )
    out: dict[str, int] = {}
    for child, k in row.items():
        cloc = f"{loc}.{short_key(child)}"
        if child not in types:
            raise PatternError(
                f"{cloc}: unknown node type {short_repr(child)}{where}; known: {sorted(types)}"
            )
        if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
            raise PatternError(f"{cloc}: sample count must be a positive integer{where}, got {short_repr(k)}")
        if k > MAX_CHILD_SAMPLES:
            raise PatternError(
                f"{cloc}: sample count {k} is more than the maximum {MAX_CHILD_SAMPLES} "
                f"(treecot.search.patterns.MAX_CHILD_SAMPLES){where}"
            )
        out[str(child)] = k
    if sum(out.values()) > MAX_EXPANSION_SAMPLES:
        raise PatternError(
            f"{loc}: {sum(out.values())} samples in one expansion, more than the maximum "
            f"{MAX_EXPANSION_SAMPLES} (treecot.search.patterns.MAX_EXPANSION_SAMPLES){where}"
        )
    return out


def _check_graph(p: Patterns, where: str) -> None:
    """Every type that can occur must have a row (unless terminal) and a way down to `answer`."""
    used = p.used_types()
    if p.backtrack_to:
        if not p.transfer.get(REFLECTION_TYPE):
            raise PatternError(
                f"transfer.{REFLECTION_TYPE}: backtracking is configured (backtrack_to: "
                f"{', '.join(p.backtrack_to)}) but {REFLECTION_TYPE!r} has no children{where}"
            )
        if not p.reflection_texts:
            raise PatternError(
                f"reflection_text: backtracking is configured but the reflection has no text{where}"
            )
        reachable = set(p.root)
        for row in p.transfer.values():
            reachable.update(row)
        never = [t for t in p.backtrack_to if t not in reachable]
        if never:
            raise PatternError(
                f"backtrack_to.{never[0]}: {never[0]!r} never occurs in the tree (not a child in 'root' or "
                f"'transfer'), so no reflection could be placed{where}"
            )
    for t in sorted(used):
        if not p.types[t].terminal and t not in p.transfer:
            raise PatternError(
                f"transfer.{t}: {t!r} occurs in the tree but has no row, so it can never reach "
                f"{ANSWER_TYPE!r}{where}"
            )
    # Types from which `answer` is reachable: fixed point over the rows.
    can_finish = {name for name, t in p.types.items() if t.terminal}
    changed = True
    while changed:
        changed = False
        for parent, row in p.transfer.items():
            if parent not in can_finish and any(c in can_finish for c in row):
                can_finish.add(parent)
                changed = True
    for parent in p.transfer:
        if parent not in can_finish:
            raise PatternError(f"transfer.{parent}: no path from {parent!r} leads to {ANSWER_TYPE!r}{where}")
    # Every used non-terminal type has a row and every row can finish, so the root can finish too.


# -- loading ---------------------------------------------------------------------------------------------


def patterns_dirs() -> list[Path]:
    """Directories searched by `load_patterns(name)`: `$TREECOT_PATTERNS_PATH` entries, then the package's
    `treecot/resources/patterns` (in a source checkout a link to `recipes/patterns`; copied into wheels)."""
    dirs = [Path(p) for p in os.environ.get(PATTERNS_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(Path(__file__).resolve().parents[1] / "resources" / "patterns")
    return dirs


def load_patterns(name_or_path: str | os.PathLike | Mapping[str, Any] | Patterns) -> Patterns:
    """Load and validate patterns: a name (`math`, `blocksworld`, `ifeval`), a YAML path or a dict."""
    if isinstance(name_or_path, Patterns):
        return name_or_path
    if isinstance(name_or_path, Mapping):
        return Patterns.from_dict(name_or_path)
    path = Path(name_or_path)
    try:
        if not path.suffix and not path.exists():
            candidates = [d / f"{path.name}.yaml" for d in patterns_dirs()]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                raise PatternsNotFoundError(
                    f"no patterns named {short_repr(str(name_or_path))}; known: {', '.join(known_patterns())}; "
                    f"looked for {', '.join(short_repr(str(c)) for c in candidates)} "
                    f"(set {PATTERNS_PATH_ENV} or pass a path to a YAML file)"
                )
            path = found
        if not path.is_file():
            raise PatternsNotFoundError(f"patterns file {short_repr(str(path))} does not exist")
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL byte, …
        if isinstance(e, PatternError):
            raise
        raise PatternsNotFoundError(
            f"patterns {short_repr(str(name_or_path))}: not a usable name or path ({getattr(e, 'strerror', None) or e})"
        ) from None
    data = load_yaml(path, "patterns file", error=PatternError)
    return Patterns.from_dict(data or {}, name=path.stem, source=str(path))


def known_patterns() -> list[str]:
    """Names `load_patterns(name)` finds: the `*.yaml` files of `patterns_dirs()`, sorted."""
    names = {f.stem for d in patterns_dirs() if d.is_dir() for f in d.glob("*.yaml") if f.is_file()}
    return sorted(names)


#: Task domain → default patterns name.
DOMAIN_PATTERNS = {"math": "math", "planning": "blocksworld", "instructions": "ifeval"}


def patterns_for_task(task: Any) -> Patterns:
    """The default patterns of a task's domain (`math` → math.yaml, `planning` → blocksworld.yaml, …)."""
    domain = getattr(task, "domain", "")
    if domain not in DOMAIN_PATTERNS:
        raise ValueError(
            f"task {getattr(task, 'name', task)!r} has domain {domain!r} with no default patterns; "
            f"known domains: {sorted(DOMAIN_PATTERNS)} (pass patterns explicitly)"
        )
    return load_patterns(DOMAIN_PATTERNS[domain])
