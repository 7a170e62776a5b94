"""The Blocksworld `Task`: generated train and test problems with optimal reference plans, and the verifier."""

from __future__ import annotations

import hashlib
import itertools
import operator
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from treecot.tasks.base import MalformedProblemError, Task, Verdict, make_problem, problem_meta
from treecot.tasks.blocksworld.domain import COLOURS, Fact, objects_of, parse_fact
from treecot.tasks.blocksworld.generator import Instance, generate_instance
from treecot.tasks.blocksworld.parsing import ParsedPlan, focus_on_problem, parse_plan, resolve_initials
from treecot.tasks.blocksworld.planner import optimal_plan
from treecot.tasks.blocksworld.render import describe, to_pddl_domain, to_pddl_problem
from treecot.tasks.blocksworld.simulator import simulate

if TYPE_CHECKING:
    from datasets import Dataset

SYSTEM_PROMPT = (
    "You are a careful planner solving Blocksworld problems. Think step by step about which blocks must "
    "move, checking every action against the rules. Then give the final plan inside <answer> and "
    '</answer>, one action per line, each phrased as one of: "pick up the X block", "put down the X '
    'block", "unstack the X block from on top of the Y block", "stack the X block on top of the Y '
    "block\" (X and Y are the colours of the problem's blocks)."
)


def _split_seed(split: str, seed: int) -> int:
    return int(hashlib.sha256(f"treecot/blocksworld/{split}/{seed}".encode()).hexdigest()[:8], 16)


def _instance_key(init: Sequence[str], goal: Sequence[str]) -> str:
    return "|".join(sorted(init)) + "=>" + "|".join(sorted(goal))


def split_of_instance(init: Sequence[str], goal: Sequence[str]) -> str:
    """The split ("train" or "test") a state pair belongs to: a hash of the (init, goal) facts.

    Partitioning by a hash of the state makes train and test disjoint by construction.
    """
    digest = hashlib.sha256(_instance_key(init, goal).encode()).digest()
    return "test" if digest[0] % 2 == 0 else "train"


class BlocksworldTask(Task):
    """Blocksworld planning (PlanBench style), generated offline with optimal reference plans.

    Args:
        min_blocks (`int`, *optional*, defaults to `3`):
            Lower end of the range of block counts (3–8 by default, spread uniformly).
        max_blocks (`int`, *optional*, defaults to `8`):
            Upper end of that range.
        seed (`int`, *optional*, defaults to `0`):
            Base seed; each split derives its own stream from it.
        max_expansions (`int`, *optional*):
            Optional A* budget per instance (None = unlimited, plans are always optimal).
    """

    name = "blocksworld"
    domain = "planning"
    system_prompt = SYSTEM_PROMPT
    splits = ("train", "test")
    #: Default number of instances per split (PlanBench has ~500 test instances).
    default_sizes: dict[str, int] = {"train": 2000, "test": 500}

    def __init__(
        self, min_blocks: int = 3, max_blocks: int = 8, seed: int = 0, max_expansions: int | None = None
    ):
        if not 3 <= min_blocks <= max_blocks <= len(COLOURS):
            raise ValueError(
                f"need 3 <= min_blocks <= max_blocks <= {len(COLOURS)}, got min_blocks={min_blocks}, "
                f"max_blocks={max_blocks}"
            )
        self.min_blocks = min_blocks
        self.max_blocks = max_blocks
        self.seed = seed
        self.max_expansions = max_expansions

    def problem_from_instance(self, instance: Instance, split: str, seed: int) -> dict:
        """A Problem record for `instance`, with its optimal plan as `reference`."""
        plan = optimal_plan(instance.init, instance.goal, max_expansions=self.max_expansions)
        meta = {
            "n_blocks": instance.n_blocks,
            "init": list(instance.init),
            "goal": list(instance.goal),
            "optimal_length": len(plan),
            "pddl_domain": to_pddl_domain(),
            "pddl_problem": to_pddl_problem(
                instance.init, instance.goal, name=f"bw-{split}-{seed}", objects=instance.blocks
            ),
            "seed": seed,
            "split": split,
        }
        question = describe(instance.init, instance.goal, instance.blocks)
        return make_problem(self.name, question, "\n".join(a.pddl for a in plan), meta)

    def iter_problems(self, split: str = "test"):
        """Endless deterministic stream of distinct Problem records of `split`."""
        self.check_split(split)
        base = _split_seed(split, self.seed)
        span = self.max_blocks - self.min_blocks + 1
        seen: set[str] = set()
        for attempt in itertools.count():
            seed = int(hashlib.sha256(f"{base}/{attempt}".encode()).hexdigest()[:8], 16)
            n_blocks = self.min_blocks + seed % span
            instance = generate_instance(n_blocks, random.Random(seed))
            key = _instance_key(instance.init, instance.goal)
            if key in seen or split_of_instance(instance.init, instance.goal) != split:
                continue
            seen.add(key)
            yield self.problem_from_instance(instance, split, seed)

    def load(
        self,
        split: str = "test",
        limit: int | None = None,
        n: int | None = None,
        *,
        source: str = "generated",
        path: str | None = None,
        hub_id: str | None = None,
        prompt_type: str = "oneshot",
    ) -> Dataset:
        """Problems of `split`: generated ones (`source="generated"`, the default) or PlanBench's.

        Generated: `n` problems (default 500 test / 2,000 train), the first `limit` of them. Deterministic:
        the same arguments give the same rows, and a smaller `n` or `limit` gives a prefix. Each row's
        instance is reproduced by ``generate_instance(meta["n_blocks"], random.Random(meta["seed"]))``.

        ``source="planbench"``: PlanBench's 500 plan-generation problems (test split only) with their exact
        one-shot or zero-shot prompt (`prompt_type`), from the checkout `path` (default
        ``$TREECOT_PLANBENCH``) or the Hub dataset `hub_id`; see `treecot.tasks.planbench`. `n` and `limit`
        both cap the count.
        """
        from datasets import Dataset

        self.check_split(split)
        if source == "planbench":
            from treecot.tasks.planbench import load_planbench

            if split != "test":
                raise ValueError("PlanBench has only a test set; use split='test' with source='planbench'")
            caps = [c for c in (limit, n) if c is not None]
            return load_planbench(
                path, prompt_type, min(caps) if caps else None, hub_id=hub_id, task=self.name
            )
        if source != "generated":
            raise ValueError(
                f"unknown source {source!r} for task {self.name!r}; choose 'generated' or 'planbench'"
            )
        count = self.default_sizes[split] if n is None else n
        if limit is not None:
            count = min(count, limit)
        if count < 0:
            raise ValueError(f"the number of problems must be >= 0, got {count}")
        rows = list(itertools.islice(self.iter_problems(split), count))
        return Dataset.from_list(rows)

    @staticmethod
    def _instance_of(problem: dict) -> tuple[list[Fact], list[Fact], int]:
        """``(init, goal, optimal_length)`` read from the problem's ``meta``; `MalformedProblemError` naming
        the field when one is missing or unreadable."""
        if not isinstance(problem, Mapping):
            raise TypeError(f"problem must be a Problem dict, got {type(problem).__name__}")
        meta = problem_meta(problem)
        facts = {}
        for key in ("init", "goal"):
            if key not in meta:
                raise MalformedProblemError(
                    problem,
                    f"meta.{key}",
                    "missing (a blocksworld problem's meta holds init, goal and optimal_length)",
                )
            value = meta[key]
            if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
                raise MalformedProblemError(
                    problem,
                    f"meta.{key}",
                    f"must be a list of facts such as '(on red blue)', got {type(value).__name__}",
                )
            try:
                facts[key] = [parse_fact(f) for f in value]
            except (ValueError, TypeError, RecursionError) as err:
                raise MalformedProblemError(problem, f"meta.{key}", str(err)[:200]) from None
        if "optimal_length" not in meta:
            raise MalformedProblemError(
                problem, "meta.optimal_length", "missing (the length of an optimal plan, from the generator)"
            )
        value = meta["optimal_length"]
        try:
            length = -1 if isinstance(value, bool) else operator.index(value)  # ints, numpy ints
        except TypeError:
            length = -1
        if length < 0:
            raise MalformedProblemError(
                problem, "meta.optimal_length", f"must be an integer >= 0, got {value!r:.80}"
            )
        return facts["init"], facts["goal"], length

    def verify(self, completion: str, problem: dict) -> Verdict:
        """Parse a plan from `completion` and execute it on the problem's initial state.

        `correct` means every step applies and the goal holds at the end; optimality is reported in
        ``details["optimal"]``. Unreadable action lines in the answer count as a failing step. A problem whose
        ``meta`` lacks ``init``, ``goal`` or ``optimal_length`` (or holds unreadable facts) raises
        `MalformedProblemError` naming the field.
        """
        init, goal, optimal_length = self._instance_of(problem)
        try:
            text = completion if isinstance(completion, str) else str(completion)
            parsed = parse_plan(focus_on_problem(text, problem.get("question")))
        except Exception as err:  # hostile input must never crash a search
            parsed = ParsedPlan(actions=[])
            parse_error = f"could not parse the completion: {err}"
        else:
            parse_error = ""
        parsed.actions = resolve_initials(parsed.actions, objects_of(init))
        details = {
            "valid": False,
            "goal_reached": False,
            "failed_step": None,
            "plan_length": len(parsed.actions),
            "optimal_length": optimal_length,
            "optimal": False,
        }
        extracted = parsed.pddl
        if not parsed.actions:
            reason = parse_error or "no action found in the answer"
            return Verdict(correct=False, answered=False, extracted=extracted, reason=reason, details=details)
        actions = parsed.actions
        stop_at = parsed.unparsed[0][0] if parsed.unparsed else None
        if stop_at is not None:
            actions = actions[: stop_at - 1]
        result = simulate(init, actions, goal)
        if result.valid and stop_at is not None:
            details["failed_step"] = stop_at
            reason = f"step {stop_at}: cannot read {parsed.unparsed[0][1]!r} as an action"
            return Verdict(correct=False, answered=True, extracted=extracted, reason=reason, details=details)
        details["valid"] = result.valid
        details["goal_reached"] = bool(result.goal_reached)
        details["failed_step"] = result.failed_step
        details["optimal"] = bool(result.solved and len(actions) == optimal_length)
        if result.reason:
            reason = result.reason
        elif details["optimal"]:
            reason = f"optimal plan ({len(actions)} steps)"
        else:
            reason = f"plan reaches the goal in {len(actions)} steps (optimal: {optimal_length})"
        return Verdict(
            correct=result.solved, answered=True, extracted=extracted, reason=reason, details=details
        )
