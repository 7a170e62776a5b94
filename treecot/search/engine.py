"""The MCTS engine: the search of one problem as a resumable state machine (Marco-o1 v2, METHOD §1).

Each problem is searched by an `MCTS` object: a resumable state machine that never calls a model
itself. It says what it needs generated (`pending_requests()`), and continues when it is fed the results
(`feed(results)`). This lets a runner interleave many problems and send all their expansions to one
backend call per model; `run_search` (`treecot.search.driver`) is such a driver, advancing every problem in
lock-step::

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
`reflection_stats(tree)` and `reflection_summary(trees)` (`treecot.search.reflection`) measure
backtracking on any tree (also trees written before these stats existed): reflections placed and
expanded, and correct answers below one.

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

import math
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treecot.backends.base import Completion, GenerationRequest, GenerationResult
from treecot.search.config import MCTSConfig, config_hash
from treecot.search.patterns import REFLECTION_TYPE, Patterns, load_patterns
from treecot.search.tree import ANSWER_TYPE, Node, Tree, jsonable

if TYPE_CHECKING:
    from treecot.tasks.base import Task


def token_confidences(
    token_logprobs: Sequence[float], top_logprobs: Sequence[Sequence[float]]
) -> list[float]:
    """Marco-o1 v1 confidence of each generated token.

    c_i = exp(lp_i) / Σ_{j ∈ top-k ∪ {i}} exp(lp_j): the token's probability renormalised over its top-k
    alternatives. If the sampled token is not among the alternatives (sampling can pick a token outside
    the top k), it is added to the set so that c_i ≤ 1 still holds. A position without alternatives
    has confidence 1.

    Args:
        token_logprobs (`Sequence[float]`):
            Log-probability of each sampled token.
        top_logprobs (`Sequence[Sequence[float]]`):
            Per position, the log-probabilities of the top-k alternatives (same length as
            `token_logprobs`).

    Returns:
        `list[float]`: one confidence in (0, 1] per position.
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

    Args:
        problem_id (`str`):
            The problem being searched.
        role (`str`):
            The role (`"A"` or `"B"`) whose generator serves the request.
        request (`GenerationRequest`):
            The generation to run (n = the number of children of this type).
        node_id (`int`):
            The node being expanded (the children's parent).
        child_type (`str`):
            The node type the samples become.
        prefill (`str`):
            The forced start of the children's text (already at the end of the prompt).
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
        problem (`Mapping[str, Any]`):
            A Problem record (DESIGN §4).
        task (`Task`):
            The task whose `verify` scores answers.
        patterns (`Patterns` or `str`):
            Node types and transfer matrix (a `Patterns`, a name such as `"math"`, or a path).
        config (`MCTSConfig` or `None`, *optional*):
            Search settings (default `MCTSConfig()`).
        rng (`random.Random` or `None`, *optional*):
            Source of randomness (default: seeded from `config.seed` and the problem id).
        chat_prompts (`Mapping[str, str]`):
            Role → rendered chat prompt (system + user, generation prompt added) of that role's model; see
            `render_chat_prompts`. Every role the patterns use must be present.
        generator (`Mapping[str, Any]` or `None`, *optional*):
            Description recorded in the tree and its config hash (model ids, backend, sampling).
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
