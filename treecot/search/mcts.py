"""Monte Carlo tree search over reasoning steps (Marco-o1 v2, METHOD §1).

Each problem is searched by an `MCTS` object: a resumable state machine that never calls a model
itself. It says what it needs generated (`pending_requests()`), and continues when it is fed the results
(`feed(results)`). This lets a runner interleave many problems and send all their expansions to one
backend call per model; `run_search` is such a driver, advancing every problem in lock-step::

    from treecot.search.mcts import MCTSConfig, run_search
    trees = run_search(problems, task, "math", {"A": gen_a, "B": gen_b}, MCTSConfig(seed=0))

A rollout walks from the root: at an expanded node it picks the first unvisited child, else the child
maximising the UCT score Q/N + c·√(2·ln N_parent / N) (ties broken by the seeded RNG); at a node not yet
expanded it creates all the node's children at once — for each child type of the transfer matrix one
`GenerationRequest` with n = k samples, so the samples share their prefix — and carries on among them.
The rollout ends at an answer node; its reward (1.0 if the task's verifier accepts the whole path, else
0.0) is added, with one visit, to the answer and every ancestor. After a wrong answer a `reflection`
child with a fixed text (no LLM call) is added under the nearest ancestor of a type listed in the
patterns' `backtrack_to` (at most `max_reflections_per_node` per ancestor); its children are written by
the types' roles (model B's `thinking_from_scratch` in the shipped patterns).

With `reflection_first` (the default) the rollout after a wrong answer goes straight to the reflection it
placed — the path from the root to it is fixed, no UCT selection on the way — and expands it: the paper's
figure draws reflection as the immediate response to a wrong answer (METHOD §6). Under plain "first
unvisited child, else UCT" the reflection joins its parent's other children and is reached late or
never. The stop rules are checked before that rollout as before any other: if the search stops, the
reflection stays in the tree unexpanded (`stats.reflections` counts it, `stats.reflections_expanded`
does not). Backpropagation still adds the rollout's visit and reward to every ancestor.
`reflection_stats(tree)` and `reflection_summary(trees)` measure backtracking on any tree (also trees
written before these stats existed): reflections placed and expanded, and correct answers below one.

Every request stops at the node's closing tag and its type's extra stop strings; with `stop_at_any_tag`
(the default) also at the opening and closing tag of every node type of the patterns, so a node ends
where a small model starts another section inside it (`</sub-task>` closing a thinking step,
`<thinking>` inside a double check). Backends drop the stop string from the text (`finish_reason`
"stop"), so the node stays a single section.

Caps and choices of ours (the sources are silent):

- Depth: a path holds at most `max_depth` nodes below the root, so a node at depth `max_depth - 1`
  expands only to `answer` (with the row's answer count, else 1 sample). A reflection that would not
  leave room for an answer below it is not placed.
- Tokens: each node generates at most `max_node_tokens` tokens (or its type's smaller `max_tokens`). A
  node that hits the cap without its closing tag is kept with `finish_reason="length"` (its tag is
  closed when serialized) and, like a node at the depth cap, may only expand to `answer`: truncated
  text is usually a repetition loop, so the branch gets no further investment but still ends in a
  (usually wrong) answer that preference data can use as a rejected path. `expand_truncated=True` lifts
  this for small models that never close their tags.
- Every answer node is verified when it is created (so `reward`, `correct` and `extracted` are set on
  all answers, visited or not); visits and backpropagation happen only when a rollout selects it.
- Selection may re-select an answer that was already visited (when it is the UCT-best child): that is
  a rollout which reinforces the path's value, as in the repo, and costs no LLM call, but it is not a
  new correct path.
- Stop rules count `correct_paths` = distinct answer nodes judged correct (the repo counts rewarded
  rollouts, so re-selecting one correct answer counted again): stop at `stop_at_correct`; or once
  `early_stop_rollouts` rollouts are done with at least `early_stop_correct`; give up at `max_rollouts`.
- `stats.wall_seconds` runs from the search's creation to its stop; under `run_search` it includes the
  time spent serving the other problems of the same batch.
- Value mode "confidence" (no ground truth, e.g. MCTS decoding): an answer's reward is the Marco-o1 v1
  token confidence averaged over every generated token of its path; no backtracking (nothing says the
  answer is wrong) and only `max_rollouts` stops the search. The verifier still runs, for the record.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

from treecot.backends.base import Completion, GenerationRequest, GenerationResult, Generator
from treecot.search.patterns import (
    MAX_NODE_TOKENS,
    REFLECTION_TYPE,
    Patterns,
    load_patterns,
    patterns_for_task,
)
from treecot.search.tree import ANSWER_TYPE, Node, Tree, jsonable

if TYPE_CHECKING:
    from treecot.tasks.base import Task

VALUE_MODES = ("verifier", "confidence")

# Upper bounds of the search settings: far above real runs (the paper: 128 rollouts, depth 16, 512-token
# nodes), low enough that a typo cannot ask for a search that never ends or fills memory.
#: max_rollouts, stop_at_correct, early_stop_rollouts and early_stop_correct at most.
MAX_ROLLOUTS = 10_000
#: max_depth at most (nodes on one root-to-answer path).
MAX_DEPTH = 128
#: top_logprobs at most (OpenAI-compatible servers allow 20).
MAX_TOP_LOGPROBS = 20
#: max_reflections_per_node at most.
MAX_REFLECTIONS_PER_NODE = 64
#: seed at most (a signed 64-bit integer, as numpy and torch need).
MAX_SEED = 2**63 - 1
_MAXIMA = {
    "max_rollouts": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "stop_at_correct": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "early_stop_rollouts": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "early_stop_correct": (MAX_ROLLOUTS, "MAX_ROLLOUTS"),
    "max_depth": (MAX_DEPTH, "MAX_DEPTH"),
    "max_node_tokens": (MAX_NODE_TOKENS, "MAX_NODE_TOKENS"),
    "top_logprobs": (MAX_TOP_LOGPROBS, "MAX_TOP_LOGPROBS"),
    "max_reflections_per_node": (MAX_REFLECTIONS_PER_NODE, "MAX_REFLECTIONS_PER_NODE"),
    "seed": (MAX_SEED, "MAX_SEED"),
}


@dataclass
class MCTSConfig:
    """Search settings. Defaults follow METHOD §1 (repo values) where the sources give them.

    c:                        UCT exploration constant.
    max_depth:                most nodes on a root-to-answer path (root excluded).
    max_node_tokens:          per-node generation cap (a node type's `max_tokens` may lower it).
    temperature, top_p:       sampling parameters of every request.
    stop_at_correct:          stop once this many distinct correct answers exist.
    early_stop_rollouts:      after this many rollouts ...
    early_stop_correct:       ... stop if at least this many correct answers exist.
    max_rollouts:             give up after this many rollouts.
    seed:                     seeds the per-problem RNG (prefill choice, UCT tie-break, request seeds).
    value_mode:               "verifier" (binary reward from the task) or "confidence" (token confidence).
    top_logprobs:             alternatives requested per token in confidence mode (Marco-o1 v1: 5).
    record_logprobs:          in verifier mode, request the sampled tokens' log-probs (`mean_logprob`).
    max_reflections_per_node: reflections placed under one ancestor at most.
    seed_requests:            give every request its own seed drawn from the problem's RNG, so a
                              backend that honours seeds reproduces the tree exactly.
    expand_truncated:         let a node cut at its token cap expand like a closed one (default: only
                              to `answer`). For small models that rarely write closing tags, whose
                              trees otherwise stay one node deep.
    reflection_first:         the rollout after a wrong answer goes straight to the reflection it placed
                              and expands it (METHOD §6); False: the reflection waits its turn among its
                              parent's children under "first unvisited, else UCT" (the reference engine).
    stop_at_any_tag:          every request also stops at `<tag>` and `</tag>` of every node type of the
                              patterns (after the node's own closing tag and its type's stop strings), so
                              a node ends where the model starts another section; False: only those two.

    Counts are capped (module constants `MAX_ROLLOUTS`, `MAX_DEPTH`, `MAX_NODE_TOKENS`, `MAX_TOP_LOGPROBS`,
    `MAX_REFLECTIONS_PER_NODE`, `MAX_SEED`) far above what real runs use.
    """

    c: float = 1.414
    max_depth: int = 16
    max_node_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.9
    stop_at_correct: int = 8
    early_stop_rollouts: int = 32
    early_stop_correct: int = 4
    max_rollouts: int = 128
    seed: int = 0
    value_mode: str = "verifier"
    top_logprobs: int = 5
    record_logprobs: bool = True
    max_reflections_per_node: int = 1
    seed_requests: bool = True
    expand_truncated: bool = False
    reflection_first: bool = True
    stop_at_any_tag: bool = True

    def __post_init__(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"MCTSConfig.{name} {why}, got {getattr(self, name)!r}")

        for name in ("c", "temperature", "top_p"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise bad(name, "must be a finite number")
        if self.c < 0:
            raise bad("c", "must be >= 0")
        if self.temperature < 0:
            raise bad("temperature", "must be >= 0")
        if not 0 < self.top_p <= 1:
            raise bad("top_p", "must be in (0, 1]")
        positive = ("max_depth", "max_node_tokens", "stop_at_correct", "max_rollouts", "top_logprobs")
        non_negative = ("early_stop_rollouts", "early_stop_correct", "max_reflections_per_node", "seed")
        for name in positive + non_negative:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int):
                raise bad(name, "must be an integer")
            if name in positive and v <= 0:
                raise bad(name, "must be > 0")
            if v < 0:
                raise bad(name, "must be >= 0")
            maximum, constant = _MAXIMA[name]
            if v > maximum:
                raise bad(name, f"must be <= {maximum:,} (treecot.search.mcts.{constant})")
        if self.value_mode not in VALUE_MODES:
            raise bad("value_mode", f"must be one of {list(VALUE_MODES)}")
        for name in (
            "record_logprobs",
            "seed_requests",
            "expand_truncated",
            "reflection_first",
            "stop_at_any_tag",
        ):
            if not isinstance(getattr(self, name), bool):
                raise bad(name, "must be true or false")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MCTSConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"MCTSConfig has no field {unknown[0]!r}; fields: {sorted(known)}")
        return cls(**data)


def config_hash(config: MCTSConfig, patterns: Patterns, generator: Mapping[str, Any] | None = None) -> str:
    """Stable short hash naming a run: search config + resolved patterns + generator description."""
    blob = json.dumps(
        {"config": config.to_dict(), "patterns": patterns.to_dict(), "generator": generator or {}},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def token_confidences(
    token_logprobs: Sequence[float], top_logprobs: Sequence[Sequence[float]]
) -> list[float]:
    """Marco-o1 v1 confidence of each generated token.

    c_i = exp(lp_i) / Σ_{j ∈ top-k ∪ {i}} exp(lp_j): the token's probability renormalised over its top-k
    alternatives. If the sampled token is not among the alternatives (sampling can pick a token outside
    the top k), it is added to the set so that c_i ≤ 1 still holds. A position without alternatives
    has confidence 1.
    """
    if len(token_logprobs) != len(top_logprobs):
        raise ValueError(
            f"token_logprobs has {len(token_logprobs)} positions but top_logprobs has {len(top_logprobs)}"
        )
    out = []
    for lp, tops in zip(token_logprobs, top_logprobs):
        vals = [float(v) for v in tops]
        if not any(abs(v - lp) <= 1e-6 * max(1.0, abs(lp)) for v in vals):
            vals.append(float(lp))
        m = max(vals)
        out.append(math.exp(lp - m) / sum(math.exp(v - m) for v in vals))
    return out


@dataclass
class ExpansionRequest:
    """One generation the search needs: `request` must be served by the generator of `role`.

    problem_id: the problem being searched.
    node_id:    the node being expanded (the children's parent).
    child_type: the node type the samples become.
    prefill:    the forced start of the children's text (already at the end of the prompt).
    """

    problem_id: str
    role: str
    request: GenerationRequest
    node_id: int
    child_type: str
    prefill: str


@dataclass
class _PlanItem:
    child_type: str
    k: int
    expansion: ExpansionRequest | None  # None: fixed text, no LLM call


class MCTS:
    """The search of one problem, as a state machine driven by `pending_requests()` / `feed()`.

    Args:
        problem:      a Problem record (DESIGN §4).
        task:         the `Task` whose `verify` scores answers.
        patterns:     node types and transfer matrix (a `Patterns`, a name such as "math", or a path).
        config:       search settings.
        rng:          source of randomness (default: seeded from `config.seed` and the problem id).
        chat_prompts: role → rendered chat prompt (system + user, generation prompt added) of that role's
                      model; see `render_chat_prompts`. Every role the patterns use must be present.
        generator:    description recorded in the tree and its config hash (model ids, backend, sampling).
    """

    def __init__(
        self,
        problem: Mapping[str, Any],
        task: Task,
        patterns: Patterns | str,
        config: MCTSConfig | None = None,
        rng: random.Random | None = None,
        *,
        chat_prompts: Mapping[str, str],
        generator: Mapping[str, Any] | None = None,
    ) -> None:
        if "id" not in problem:
            raise ValueError("problem has no 'id' field; build problems with treecot.tasks.make_problem")
        self.problem = dict(problem)
        self.task = task
        self.patterns = load_patterns(patterns)
        self.config = config or MCTSConfig()
        self.rng = rng if rng is not None else random.Random(f"{self.config.seed}:{self.problem['id']}")
        missing = sorted(set(self.patterns.roles()) - set(chat_prompts))
        if missing:
            raise ValueError(
                f"chat_prompts has no prompt for role {missing[0]!r}, which patterns {self.patterns.name!r} "
                f"use for {self.patterns.roles()[missing[0]]}"
            )
        self.chat_prompts = dict(chat_prompts)
        gen_info = dict(generator or {})
        self.tree = Tree(
            problem=self.problem,
            config_hash=config_hash(self.config, self.patterns, gen_info),
            generator=gen_info,
            config={**self.config.to_dict(), "patterns": self.patterns.name},
            stats={
                "llm_calls": 0,
                "samples": 0,
                "prefill_tokens": 0,
                "generated_tokens": 0,
                "cache_hit_tokens": 0,
                "wall_seconds": 0.0,
                "rollouts": 0,
                "correct_paths": 0,
                "correct_rollouts": 0,
                "reflections": 0,
                "reflections_expanded": 0,
                "correct_via_reflection": 0,
                "expansions": 0,
                "stop_reason": None,
            },
        )
        self._cursor: int | None = None  # node reached by the current rollout (None: between rollouts)
        self._plan: list[_PlanItem] = []  # the expansion waiting for generations
        self._expanding: int | None = None
        self._reflection_next: int | None = None  # reflection the next rollout goes to (reflection_first)
        self._done = False
        self._t0 = time.perf_counter()
        self._advance()

    # -- public state ----------------------------------------------------------------------------------
    @property
    def problem_id(self) -> str:
        return str(self.problem["id"])

    @property
    def done(self) -> bool:
        return self._done

    @property
    def stop_reason(self) -> str | None:
        return self.tree.stats["stop_reason"]

    def pending_requests(self) -> list[ExpansionRequest]:
        """The generations needed to continue (empty once done). Same list until `feed` is called."""
        return [item.expansion for item in self._plan if item.expansion is not None]

    def feed(self, results: Sequence[GenerationResult]) -> None:
        """Give the results of `pending_requests()` (same order) and run the search to its next need."""
        pending = self.pending_requests()
        if not pending:
            raise RuntimeError(f"search of problem {self.problem_id!r} is not waiting for generations")
        if len(results) != len(pending):
            raise ValueError(
                f"search of problem {self.problem_id!r} expected {len(pending)} results, got {len(results)}"
            )
        for exp, res in zip(pending, results):
            if len(res.completions) != exp.request.n:
                raise ValueError(
                    f"generator for role {exp.role} returned {len(res.completions)} completions for a request "
                    f"with n={exp.request.n} (problem {self.problem_id!r}, node {exp.node_id}, "
                    f"child type {exp.child_type!r})"
                )
        stats = self.tree.stats
        by_expansion = {id(exp): res for exp, res in zip(pending, results)}
        parent = self.tree.node(self._expanding)  # type: ignore[arg-type]
        for item in self._plan:
            if item.expansion is None:
                for _ in range(item.k):
                    self._add_fixed(parent, item.child_type)
                continue
            res = by_expansion[id(item.expansion)]
            stats["llm_calls"] += 1
            stats["samples"] += len(res.completions)
            stats["prefill_tokens"] += int(res.prompt_tokens)
            stats["cache_hit_tokens"] += int(res.cached_tokens)
            for comp in res.completions:
                self._add_generated(parent, item, comp)
        self._finish_expansion(parent)
        self._advance()

    # -- the loop --------------------------------------------------------------------------------------
    def _advance(self) -> None:
        """Run rollouts until a generation is needed or a stop rule fires."""
        tree = self.tree
        while True:
            if self._cursor is None:
                reason = self._stop_reason()
                if reason is not None:
                    self._finish(reason)
                    return
                # A reflection placed by the last rollout is where this one starts (its ancestors are
                # expanded and get the visit at backpropagation); otherwise select from the root.
                target, self._reflection_next = self._reflection_next, None
                self._cursor = 0 if target is None else target
            node = tree.node(self._cursor)
            if node.terminal:
                self._end_rollout(node)
                self._cursor = None
                continue
            if not node.expanded:
                self._begin_expansion(node)
                if self.pending_requests():
                    return
                self._finish_expansion(node)
            self._cursor = self.select_child(node).id

    def _stop_reason(self) -> str | None:
        cfg, stats = self.config, self.tree.stats
        if cfg.value_mode == "verifier":
            correct = stats["correct_paths"]
            if correct >= cfg.stop_at_correct:
                return "enough_correct"
            if stats["rollouts"] >= cfg.early_stop_rollouts and correct >= cfg.early_stop_correct:
                return "early_stop"
        if stats["rollouts"] >= cfg.max_rollouts:
            return "max_rollouts"
        return None

    def _finish(self, reason: str) -> None:
        self._done = True
        self._plan = []
        self._reflection_next = None  # a reflection placed by the last rollout stays unexpanded
        self.tree.stats["stop_reason"] = reason
        self.tree.stats["wall_seconds"] = round(time.perf_counter() - self._t0, 3)

    # -- selection -------------------------------------------------------------------------------------
    def uct(self, node: Node, parent: Node) -> float:
        """Q/N + c·√(2·ln N_parent / N) for a visited child `node` of `parent`."""
        if node.visits == 0:
            raise ValueError(f"UCT is undefined for unvisited node {node.id}")
        return node.q + self.config.c * math.sqrt(2.0 * math.log(parent.visits) / node.visits)

    def select_child(self, node: Node) -> Node:
        """First unvisited child, else the UCT-best child (seeded random tie-break)."""
        children = self.tree.children(node.id)
        if not children:
            raise RuntimeError(f"node {node.id} ({node.type}) of problem {self.problem_id!r} has no children")
        for child in children:
            if child.visits == 0:
                return child
        scores = [self.uct(child, node) for child in children]
        best = max(scores)
        tied = [c for c, s in zip(children, scores) if math.isclose(s, best, rel_tol=1e-12, abs_tol=1e-12)]
        return tied[0] if len(tied) == 1 else self.rng.choice(tied)

    # -- expansion -------------------------------------------------------------------------------------
    def child_types(self, node: Node) -> dict[str, int]:
        """What expanding `node` creates: its transfer row, or only answers at the depth/token cap."""
        row = self.patterns.children_of(node.type)
        truncated = node.finish_reason == "length" and not self.config.expand_truncated
        if node.depth + 1 >= self.config.max_depth or truncated:
            return {ANSWER_TYPE: row.get(ANSWER_TYPE, 1)}
        return row

    def _prefix(self, node: Node) -> str:
        path = self.tree.serialize_path(node.id)
        return path + "\n" if path else ""

    def _begin_expansion(self, node: Node) -> None:
        cfg = self.config
        plan: list[_PlanItem] = []
        for child_type, k in self.child_types(node).items():
            t = self.patterns.node_type(child_type)
            if not t.needs_llm:
                plan.append(_PlanItem(child_type, k, None))
                continue
            prefill = self.rng.choice(t.prefills) if t.prefills else ""
            stop = [f"</{t.tag}>", *t.stop]
            if cfg.stop_at_any_tag:  # own closing tag first, then every section tag, no repeats
                stop = list(dict.fromkeys([*stop, *self.patterns.section_tags()]))
            max_tokens = min(t.max_tokens, cfg.max_node_tokens) if t.max_tokens else cfg.max_node_tokens
            if cfg.value_mode == "confidence":
                logprobs: int | None = cfg.top_logprobs
            else:
                logprobs = 0 if cfg.record_logprobs else None
            request = GenerationRequest(
                prompt=self.chat_prompts[t.role] + self._prefix(node) + f"<{t.tag}>" + prefill,
                n=k,
                max_tokens=max_tokens,
                stop=stop,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                logprobs=logprobs,
                seed=self.rng.getrandbits(31) if cfg.seed_requests else None,
                affinity=self.problem_id,  # one tree, one server (several servers: treecot.backends.multi)
            )
            exp = ExpansionRequest(self.problem_id, t.role, request, node.id, child_type, prefill)
            plan.append(_PlanItem(child_type, k, exp))
        self._plan = plan
        self._expanding = node.id
        if not self.pending_requests():  # only fixed-text children: create them now
            for item in plan:
                for _ in range(item.k):
                    self._add_fixed(node, item.child_type)

    def _finish_expansion(self, node: Node) -> None:
        node.expanded = True
        self._plan = []
        self._expanding = None
        self.tree.stats["expansions"] += 1
        if node.type == REFLECTION_TYPE:
            self.tree.stats["reflections_expanded"] += 1

    def _add_fixed(self, parent: Node, child_type: str) -> Node:
        t = self.patterns.node_type(child_type)
        text = self.rng.choice(t.fixed_texts)
        return self.tree.add_node(
            parent.id,
            child_type,
            role=t.role,
            text=text,
            prefill=text,
            tag=t.tag,
            in_history=t.in_history,
            terminal=t.terminal,
            finish_reason="fixed",
        )

    def _add_generated(self, parent: Node, item: _PlanItem, comp: Completion) -> Node:
        exp = item.expansion
        assert exp is not None
        t = self.patterns.node_type(item.child_type)
        mean_lp = None
        if comp.token_logprobs:
            mean_lp = sum(comp.token_logprobs) / len(comp.token_logprobs)
        confidence = None
        if self.config.value_mode == "confidence":
            if comp.token_logprobs is None or comp.top_logprobs is None:
                raise ValueError(
                    f"value_mode='confidence' needs per-token top log-probs, but the generator for role "
                    f"{exp.role} returned none (problem {self.problem_id!r}, child type {item.child_type!r})"
                )
            confs = token_confidences(comp.token_logprobs, comp.top_logprobs)
            confidence = sum(confs) / len(confs) if confs else None
        child = self.tree.add_node(
            parent.id,
            item.child_type,
            role=t.role,
            text=exp.prefill + comp.text,
            prefill=exp.prefill,
            tag=t.tag,
            in_history=t.in_history,
            n_tokens=int(comp.n_tokens),
            mean_logprob=mean_lp,
            confidence=confidence,
            terminal=t.terminal,
            finish_reason=comp.finish_reason,
        )
        self.tree.stats["generated_tokens"] += int(comp.n_tokens)
        if child.terminal:
            self._evaluate(child)
        return child

    # -- evaluation, backprop, backtracking --------------------------------------------------------------
    def _evaluate(self, answer: Node) -> None:
        verdict = self.patterns.reward_verdict(self.task, self.tree.serialize_path(answer.id), self.problem)
        answer.correct = bool(verdict.correct)
        answer.answered = bool(verdict.answered)
        answer.extracted = jsonable(verdict.extracted)
        if self.config.value_mode == "confidence":
            answer.reward = self.path_confidence(answer.id)
        else:
            answer.reward = 1.0 if answer.correct else 0.0
        if answer.correct:
            self.tree.stats["correct_paths"] += 1
            if any(a.type == REFLECTION_TYPE for a in self.tree.ancestors(answer.id)):
                self.tree.stats["correct_via_reflection"] += 1

    def path_confidence(self, node_id: int) -> float:
        """Token confidence averaged over every generated token on the path (Marco-o1 v1 rollout value)."""
        num = den = 0.0
        for n in self.tree.path(node_id):
            if n.confidence is not None and n.n_tokens > 0:
                num += n.confidence * n.n_tokens
                den += n.n_tokens
        return num / den if den else 0.0

    def _end_rollout(self, answer: Node) -> None:
        reward = float(answer.reward or 0.0)
        self.backpropagate(answer, reward)
        stats = self.tree.stats
        stats["rollouts"] += 1
        if answer.correct and self.config.value_mode == "verifier":
            stats["correct_rollouts"] += 1
        if self.config.value_mode == "verifier" and not answer.correct:
            reflection = self.backtrack(answer)
            if reflection is not None and self.config.reflection_first:
                self._reflection_next = reflection.id

    def backpropagate(self, node: Node, reward: float) -> None:
        """Add one visit and `reward` to `node` and every ancestor up to the root."""
        node.visits += 1
        node.value_sum += reward
        for anc in self.tree.ancestors(node.id):
            anc.visits += 1
            anc.value_sum += reward

    def backtrack(self, wrong: Node) -> Node | None:
        """Place a reflection under the nearest `backtrack_to` ancestor of a wrong answer (None if none)."""
        targets = self.patterns.backtrack_to
        if not targets:
            return None
        target = next((a for a in self.tree.ancestors(wrong.id) if a.type in targets), None)
        if target is None:
            return None
        if target.depth + 1 > self.config.max_depth - 1:  # no room for reflection + answer
            return None
        existing = sum(1 for c in self.tree.children(target.id) if c.type == REFLECTION_TYPE)
        if existing >= self.config.max_reflections_per_node:
            return None
        self.tree.stats["reflections"] += 1
        return self._add_fixed(target, REFLECTION_TYPE)


# -- measuring backtracking ------------------------------------------------------------------------------


def reflection_stats(tree: Tree | Mapping[str, Any]) -> dict[str, int]:
    """Backtracking figures of one tree, read from its nodes (a `Tree` or its JSON dict).

    Works on any tree, including those written before `reflections_expanded` / `correct_via_reflection`
    were kept in `tree.stats`; on a tree searched by this engine the figures equal those stats.

    reflections:            reflection nodes (placed after wrong answers).
    reflections_expanded:   those that were expanded (their continuation was generated).
    correct_paths:          answer nodes judged correct.
    correct_via_reflection: correct answer nodes with a reflection among their ancestors.
    """
    nodes = tree.nodes if isinstance(tree, Tree) else tree.get("nodes", [])
    # Per node id: the node is a reflection or has one among its ancestors (parents precede children).
    in_reflection: list[bool] = []
    out = {"reflections": 0, "reflections_expanded": 0, "correct_paths": 0, "correct_via_reflection": 0}
    for i, n in enumerate(nodes):
        if isinstance(n, Node):
            parent, ntype, expanded, terminal, correct = n.parent, n.type, n.expanded, n.terminal, n.correct
        else:
            parent, ntype = n.get("parent"), n.get("type")
            expanded, terminal, correct = n.get("expanded"), n.get("terminal"), n.get("correct")
        below = isinstance(parent, int) and 0 <= parent < i and in_reflection[parent]
        in_reflection.append(below or ntype == REFLECTION_TYPE)
        if ntype == REFLECTION_TYPE:
            out["reflections"] += 1
            out["reflections_expanded"] += int(bool(expanded))
        if terminal and correct is True:
            out["correct_paths"] += 1
            out["correct_via_reflection"] += int(below)
    return out


def share(part: int | float, whole: int | float, digits: int = 4) -> float | None:
    """`part / whole` rounded to `digits`; None when `whole` is 0 (nothing to take a share of)."""
    return round(part / whole, digits) if whole else None


def reflection_summary(trees: Iterable[Tree | Mapping[str, Any]]) -> dict[str, Any]:
    """`reflection_stats` added up over trees, with the two shares that say whether backtracking works.

    reflections_placed, reflections_expanded, reflections_expanded_share (expanded ÷ placed),
    correct_paths, correct_via_reflection, correct_via_reflection_share (÷ correct paths); a share is
    None when its denominator is 0.
    """
    total = {"reflections": 0, "reflections_expanded": 0, "correct_paths": 0, "correct_via_reflection": 0}
    for tree in trees:
        for k, v in reflection_stats(tree).items():
            total[k] += v
    return {
        "reflections_placed": total["reflections"],
        "reflections_expanded": total["reflections_expanded"],
        "reflections_expanded_share": share(total["reflections_expanded"], total["reflections"]),
        "correct_paths": total["correct_paths"],
        "correct_via_reflection": total["correct_via_reflection"],
        "correct_via_reflection_share": share(total["correct_via_reflection"], total["correct_paths"]),
    }


# -- driver ----------------------------------------------------------------------------------------------


def render_chat_prompts(
    task: Task,
    problem: Mapping[str, Any],
    generators: Mapping[str, Generator],
    system_prompt: str | None = None,
) -> dict:
    """Role → the chat prompt (system + user, generation prompt added) of that role's generator.

    system_prompt: the dataset's system prompt (`treecot.prompts`); default: `contract_system_prompt(task)`,
    which explains the node tags and the task's answer format.
    """
    from treecot.prompts import contract_system_prompt, with_system_prompt

    if system_prompt is None:
        system_prompt = contract_system_prompt(task)
    messages = with_system_prompt(task.prompt(dict(problem)), system_prompt)
    return {
        role: gen.apply_chat_template(messages, add_generation_prompt=True)
        for role, gen in generators.items()
    }


def generator_info(generators: Mapping[str, Generator], config: MCTSConfig) -> dict[str, Any]:
    """What a tree records about its models: ids per role, backend class per role, sampling."""
    return {
        "models": {
            role: str(getattr(g, "model_id", type(g).__name__)) for role, g in sorted(generators.items())
        },
        "backend": {
            role: str(getattr(g, "backend_name", type(g).__name__)) for role, g in sorted(generators.items())
        },
        "sampling": {
            "temperature": config.temperature,
            "top_p": config.top_p,
            "max_node_tokens": config.max_node_tokens,
        },
    }


def _role_map(generators: Generator | Mapping[str, Generator], patterns: Patterns) -> dict[str, Generator]:
    roles = patterns.roles()
    if not isinstance(generators, Mapping):
        return {role: generators for role in ("A", "B")}
    missing = sorted(set(roles) - set(generators))
    if missing:
        raise ValueError(
            f"no generator for role {missing[0]!r}, which patterns {patterns.name!r} use for "
            f"{roles[missing[0]]}; pass generators={{'A': …, 'B': …}} (the same generator may serve both)"
        )
    unknown = sorted(set(generators) - {"A", "B"})
    if unknown:
        raise ValueError(f"generators has unknown role {unknown[0]!r}; roles are 'A' and 'B'")
    return dict(generators)


def run_search(
    problems: Sequence[Mapping[str, Any]] | Any,
    task: Task | str,
    patterns: Patterns | str | None = None,
    generators: Generator | Mapping[str, Generator] | None = None,
    config: MCTSConfig | None = None,
    progress: bool | Callable[[int, int, Tree], None] | None = None,
    max_in_flight: int | None = None,
    on_step: Callable[[list[Tree]], None] | None = None,
    system_prompt: str | None = None,
) -> list[Tree]:
    """Search every problem, advancing all in-flight searches in lock-step.

    Each step collects the pending requests of every in-flight search, groups them by generator and
    sends ONE `generate()` call per generator (a generator serving both roles gets a single call), then
    feeds the results back. Returns the trees in the order of `problems`.

    Args:
        problems:      Problem records (a list or a `datasets.Dataset`).
        task:          a `Task` or its registry name.
        patterns:      `Patterns`, a name or a YAML path; default: the task domain's patterns.
        generators:    {"A": Generator, "B": Generator}, or one Generator for both roles.
        config:        search settings (default `MCTSConfig()`).
        progress:      True for a tqdm bar, or a callable `(n_done, n_total, tree)` called per finished tree.
        max_in_flight: most problems searched at once (default: all).
        on_step:       called after every step with the trees still being searched (live progress:
                       their `stats` hold rollouts, correct paths and generated tokens so far).
        system_prompt: the system prompt every generator sees (the dataset's prompt contract, recorded in
                       each tree as `generator["system_prompt"]`); default `contract_system_prompt(task)`.
    """
    if generators is None:
        raise ValueError("run_search needs generators: {'A': Generator, 'B': Generator} or one Generator")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or max_in_flight <= 0):
        raise ValueError(f"max_in_flight must be a positive integer or None, got {max_in_flight!r}")
    if isinstance(task, str):
        from treecot.tasks import get_task

        task = get_task(task)
    pats = load_patterns(patterns) if patterns is not None else patterns_for_task(task)
    config = config or MCTSConfig()
    gens = _role_map(generators, pats)
    if system_prompt is None:
        from treecot.prompts import contract_system_prompt

        system_prompt = contract_system_prompt(task)
    info = {**generator_info(gens, config), "system_prompt": system_prompt}
    problems = list(problems)
    total = len(problems)
    trees: list[Tree | None] = [None] * total

    bar = None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"MCTS {pats.name}", unit="problem")
    n_done = 0

    def finished(i: int, search: MCTS) -> None:
        nonlocal n_done
        trees[i] = search.tree
        n_done += 1
        if bar is not None:
            bar.update(1)
        elif callable(progress):
            progress(n_done, total, search.tree)

    queue = list(enumerate(problems))[::-1]
    active: list[tuple[int, MCTS]] = []
    try:
        while queue or active:
            while queue and (max_in_flight is None or len(active) < max_in_flight):
                i, problem = queue.pop()
                search = MCTS(
                    problem,
                    task,
                    pats,
                    config,
                    chat_prompts=render_chat_prompts(task, problem, gens, system_prompt),
                    generator=info,
                )
                if search.done:
                    finished(i, search)
                else:
                    active.append((i, search))
            if not active:
                continue
            # Group every pending request by the generator that serves it (one call per generator).
            groups: dict[int, tuple[Generator, list[tuple[int, int]], list[GenerationRequest]]] = {}
            pending = [search.pending_requests() for _, search in active]
            for a, reqs in enumerate(pending):
                for r, exp in enumerate(reqs):
                    gen = gens[exp.role]
                    _, where, batch = groups.setdefault(id(gen), (gen, [], []))
                    where.append((a, r))
                    batch.append(exp.request)
            answers: list[list[GenerationResult | None]] = [[None] * len(reqs) for reqs in pending]
            for gen, where, batch in groups.values():
                results = gen.generate(batch)
                if len(results) != len(batch):
                    raise ValueError(
                        f"generator {getattr(gen, 'model_id', gen)!r} returned {len(results)} results "
                        f"for {len(batch)} requests"
                    )
                for (a, r), res in zip(where, results):
                    answers[a][r] = res
            still: list[tuple[int, MCTS]] = []
            for (i, search), res in zip(active, answers):
                search.feed(res)  # type: ignore[arg-type]
                if search.done:
                    finished(i, search)
                else:
                    still.append((i, search))
            active = still
            if on_step is not None:
                on_step([search.tree for _, search in active])
    finally:
        if bar is not None:
            bar.close()
    return trees  # type: ignore[return-value]
