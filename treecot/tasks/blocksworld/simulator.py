"""The STRIPS simulator: executes a plan and names its first failing step and why."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from treecot.tasks.blocksworld.domain import Action, Fact, format_fact, objects_of, parse_fact
from treecot.tasks.blocksworld.parsing import parse_action


def _as_action(step: Action | str) -> Action:
    if isinstance(step, Action):
        return step
    action = parse_action(step)
    if action is None:
        raise ValueError(f"cannot read {step!r} as a Blocksworld action")
    return action


def _describe_missing(fact: Fact, state: frozenset[Fact]) -> str:
    """Why `fact` (a precondition) does not hold in `state`, in a few words."""
    pred, *args = fact
    if pred == "handempty":
        held = sorted(f[1] for f in state if f[0] == "holding")
        return f"the hand is not empty (holding {held[0]})" if held else "the hand is not empty"
    if pred == "clear":
        (x,) = args
        if ("holding", x) in state:
            return f"{x} is not clear (it is being held)"
        above = sorted(f[1] for f in state if f[0] == "on" and f[2] == x)
        return f"{x} is not clear ({above[0]} is on it)" if above else f"{x} is not clear"
    if pred == "ontable":
        return f"{args[0]} is not on the table"
    if pred == "on":
        return f"{args[0]} is not on {args[1]}"
    if pred == "holding":
        held = sorted(f[1] for f in state if f[0] == "holding")
        return f"not holding {args[0]}" + (f" (holding {held[0]})" if held else " (the hand is empty)")
    return f"{format_fact(fact)} is false"


def _preconditions(action: Action) -> list[Fact]:
    a = action.args
    if action.name == "pick-up":
        return [("clear", a[0]), ("ontable", a[0]), ("handempty",)]
    if action.name == "put-down":
        return [("holding", a[0])]
    if action.name == "stack":
        return [("holding", a[0]), ("clear", a[1])]
    return [("on", a[0], a[1]), ("clear", a[0]), ("handempty",)]


def _effects(action: Action) -> tuple[list[Fact], list[Fact]]:
    """(add list, delete list) of `action`."""
    a = action.args
    if action.name == "pick-up":
        return [("holding", a[0])], [("clear", a[0]), ("ontable", a[0]), ("handempty",)]
    if action.name == "put-down":
        return [("clear", a[0]), ("handempty",), ("ontable", a[0])], [("holding", a[0])]
    if action.name == "stack":
        return [("handempty",), ("clear", a[0]), ("on", a[0], a[1])], [("clear", a[1]), ("holding", a[0])]
    return [("holding", a[0]), ("clear", a[1])], [("on", a[0], a[1]), ("clear", a[0]), ("handempty",)]


@dataclass
class SimulationResult:
    """Outcome of executing a plan with `simulate`.

    valid:        every step was applicable (the first failing step stops execution).
    failed_step:  1-based index of the first inapplicable step, or None.
    reason:       why the plan failed (step + unmet precondition, or unmet goal facts); "" on success.
    goal_reached: the goal holds in the final state (None when no goal was given; False if not `valid`).
    unmet_goal:   goal facts false in the final state (PDDL strings).
    final_state:  facts true after the last executed step (PDDL strings, sorted).
    n_executed:   how many steps were applied.
    """

    valid: bool
    failed_step: int | None = None
    reason: str = ""
    goal_reached: bool | None = None
    unmet_goal: list[str] = field(default_factory=list)
    final_state: list[str] = field(default_factory=list)
    n_executed: int = 0

    @property
    def solved(self) -> bool:
        """The plan executes and reaches the goal."""
        return bool(self.valid and self.goal_reached)


def simulate(
    init: Iterable[str | Fact], plan: Sequence[Action | str], goal: Iterable[str | Fact] | None = None
) -> SimulationResult:
    """Execute `plan` from `init` with STRIPS semantics and report the first failing step.

    Args:
        init (`Iterable[str | Fact]`):
            The initial facts (closed world: anything not listed is false).
        plan (`Sequence[Action | str]`):
            Actions (`Action` objects or strings that `parse_action` understands).
        goal (`Iterable[str | Fact]`, *optional*):
            Optional goal facts; when given, `goal_reached` and `unmet_goal` are filled in.

    Raises:
        `ValueError`: If a string step is not a Blocksworld action.

    Returns:
        `SimulationResult`: A `SimulationResult`. A step fails when it names a block that does not exist or
        when one of its preconditions is false; `reason` then reads e.g. ``"step 3 (stack red blue): blue is
        not clear (green is on it)"``. A plan that executes but misses the goal has ``valid=True`` and a
        reason like ``"plan valid but goal not reached: (on red green) false"``.
    """
    state = frozenset(parse_fact(f) for f in init)
    goal_facts = [parse_fact(f) for f in goal] if goal is not None else None
    objects = set(objects_of(state))
    result = SimulationResult(valid=True)
    for index, step in enumerate(plan, start=1):
        action = _as_action(step)
        unknown = [a for a in action.args if a not in objects]
        if unknown:
            result.valid = False
            result.failed_step = index
            result.reason = f"step {index} {action.pddl}: unknown block {unknown[0]!r}"
            break
        missing = [p for p in _preconditions(action) if p not in state]
        if missing:
            result.valid = False
            result.failed_step = index
            why = "; ".join(_describe_missing(p, state) for p in missing)
            result.reason = f"step {index} {action.pddl}: {why}"
            break
        add, delete = _effects(action)
        state = (state - frozenset(delete)) | frozenset(add)
        result.n_executed = index
    result.final_state = sorted(format_fact(f) for f in state)
    if goal_facts is not None:
        result.unmet_goal = [format_fact(f) for f in goal_facts if f not in state]
        result.goal_reached = result.valid and not result.unmet_goal
        if result.valid and result.unmet_goal:
            result.reason = "plan valid but goal not reached: " + ", ".join(result.unmet_goal) + " false"
    return result
