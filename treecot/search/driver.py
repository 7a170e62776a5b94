"""Driving many searches at once: `run_search` advances every problem's `MCTS` in lock-step.

Each step collects the pending requests of every in-flight search, groups them by generator and sends ONE
`generate()` call per generator (a generator serving both roles gets a single call), then feeds the
results back. `render_chat_prompts` and `generator_info` build what each search needs from its models::

    from treecot.search.mcts import MCTSConfig, run_search
    trees = run_search(problems, task, "math", {"A": gen_a, "B": gen_b}, MCTSConfig(seed=0))
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from treecot.backends.base import GenerationRequest, GenerationResult, Generator
from treecot.prompts import contract_system_prompt, with_system_prompt
from treecot.search.config import MCTSConfig
from treecot.search.engine import MCTS
from treecot.search.patterns import Patterns, load_patterns, patterns_for_task
from treecot.search.tree import Tree
from treecot.tasks import get_task

if TYPE_CHECKING:
    from treecot.tasks.base import Task


def render_chat_prompts(
    task: Task,
    problem: Mapping[str, Any],
    generators: Mapping[str, Generator],
    system_prompt: str | None = None,
) -> dict:
    """Role → the chat prompt (system + user, generation prompt added) of that role's generator.

    Args:
        task (`Task`):
            The task whose `prompt` turns the problem into messages.
        problem (`Mapping[str, Any]`):
            A Problem record.
        generators (`Mapping[str, Generator]`):
            Role → generator; each renders the messages with its own chat template.
        system_prompt (`str` or `None`, *optional*):
            The dataset's system prompt (`treecot.prompts`); default: `contract_system_prompt(task)`, which
            explains the node tags and the task's answer format.

    Returns:
        `dict`: role → rendered prompt.
    """
    if system_prompt is None:
        system_prompt = contract_system_prompt(task)
    messages = with_system_prompt(task.prompt(dict(problem)), system_prompt)
    return {
        role: gen.apply_chat_template(messages, add_generation_prompt=True)
        for role, gen in generators.items()
    }


def generator_info(generators: Mapping[str, Generator], config: MCTSConfig) -> dict[str, Any]:
    """What a tree records about its models: ids per role, backend class per role, sampling.

    Args:
        generators (`Mapping[str, Generator]`):
            Role → generator.
        config (`MCTSConfig`):
            The search settings (their sampling parameters are recorded).

    Returns:
        `dict[str, Any]`: `models` and `backend` (role → name) and `sampling` (temperature, top_p,
        max_node_tokens).
    """
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


class _Finished:
    """Collects the finished trees in problem order and reports each one (tqdm bar or callback)."""

    def __init__(self, total: int, progress: bool | Callable[[int, int, Tree], None] | None, desc: str):
        self.total = total
        self.trees: list[Tree | None] = [None] * total
        self.progress = progress
        self.n_done = 0
        self.bar = None
        if progress is True:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="problem")

    def add(self, i: int, search: MCTS) -> None:
        self.trees[i] = search.tree
        self.n_done += 1
        if self.bar is not None:
            self.bar.update(1)
        elif callable(self.progress):
            self.progress(self.n_done, self.total, search.tree)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _admit(
    queue: list[tuple[int, Mapping[str, Any]]],
    active: list[tuple[int, MCTS]],
    max_in_flight: int | None,
    start: Callable[[Mapping[str, Any]], MCTS],
    finished: _Finished,
) -> None:
    """Start searches from the end of `queue` until `max_in_flight` are active (a search done at once
    is finished right away)."""
    while queue and (max_in_flight is None or len(active) < max_in_flight):
        i, problem = queue.pop()
        search = start(problem)
        if search.done:
            finished.add(i, search)
        else:
            active.append((i, search))


def _generate_pending(
    active: list[tuple[int, MCTS]], gens: Mapping[str, Generator]
) -> list[list[GenerationResult | None]]:
    """Serve the pending requests of every active search with ONE `generate()` call per generator.

    Returns, per active search, the results of its `pending_requests()` in their order.
    """
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
    return answers


def _feed_results(
    active: list[tuple[int, MCTS]], answers: list[list[GenerationResult | None]], finished: _Finished
) -> list[tuple[int, MCTS]]:
    """Feed every active search its results; returns the searches still running."""
    still: list[tuple[int, MCTS]] = []
    for (i, search), res in zip(active, answers):
        search.feed(res)  # type: ignore[arg-type]
        if search.done:
            finished.add(i, search)
        else:
            still.append((i, search))
    return still


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
    feeds the results back.

    Args:
        problems (`Sequence[Mapping[str, Any]]` or `datasets.Dataset`):
            Problem records.
        task (`Task` or `str`):
            A task or its registry name.
        patterns (`Patterns`, `str` or `None`, *optional*):
            Patterns, a name or a YAML path; default: the task domain's patterns.
        generators (`Generator` or `Mapping[str, Generator]`):
            `{"A": Generator, "B": Generator}`, or one Generator for both roles. Required.
        config (`MCTSConfig` or `None`, *optional*):
            Search settings (default `MCTSConfig()`).
        progress (`bool`, `Callable[[int, int, Tree], None]` or `None`, *optional*):
            `True` for a tqdm bar, or a callable `(n_done, n_total, tree)` called per finished tree.
        max_in_flight (`int` or `None`, *optional*):
            Most problems searched at once (default: all).
        on_step (`Callable[[list[Tree]], None]` or `None`, *optional*):
            Called after every step with the trees still being searched (live progress: their `stats` hold
            rollouts, correct paths and generated tokens so far).
        system_prompt (`str` or `None`, *optional*):
            The system prompt every generator sees (the dataset's prompt contract, recorded in each tree as
            `generator["system_prompt"]`); default `contract_system_prompt(task)`.

    Returns:
        `list[Tree]`: the trees in the order of `problems`.
    """
    if generators is None:
        raise ValueError("run_search needs generators: {'A': Generator, 'B': Generator} or one Generator")
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or max_in_flight <= 0):
        raise ValueError(f"max_in_flight must be a positive integer or None, got {max_in_flight!r}")
    if isinstance(task, str):
        task = get_task(task)
    pats = load_patterns(patterns) if patterns is not None else patterns_for_task(task)
    config = config or MCTSConfig()
    gens = _role_map(generators, pats)
    if system_prompt is None:
        system_prompt = contract_system_prompt(task)
    info = {**generator_info(gens, config), "system_prompt": system_prompt}
    problems = list(problems)

    def start(problem: Mapping[str, Any]) -> MCTS:
        chat_prompts = render_chat_prompts(task, problem, gens, system_prompt)
        return MCTS(problem, task, pats, config, chat_prompts=chat_prompts, generator=info)

    finished = _Finished(len(problems), progress, f"MCTS {pats.name}")
    queue = list(enumerate(problems))[::-1]
    active: list[tuple[int, MCTS]] = []
    try:
        while queue or active:
            _admit(queue, active, max_in_flight, start, finished)
            if not active:
                continue
            answers = _generate_pending(active, gens)
            active = _feed_results(active, answers, finished)
            if on_step is not None:
                on_step([search.tree for _, search in active])
    finally:
        finished.close()
    return finished.trees  # type: ignore[return-value]
