"""Blocksworld planning task: instance generator, plan parser, STRIPS simulator, optimal planner.

The domain is the standard 4-operator Blocksworld of IPC 2000 and PlanBench (arXiv 2206.10498):
actions ``pick-up``, ``put-down``, ``stack`` and ``unstack``; predicates ``on``, ``ontable``,
``clear``, ``holding`` and ``handempty``. Blocks are named by colour ("red", "blue", …) both in the
natural-language description and in the PDDL objects.

Facts and actions are written in PDDL syntax throughout (``"(on red blue)"``, ``"(unstack red blue)"``)
so that they can be stored as plain strings in a `datasets.Dataset`.

Public helpers reused elsewhere in treecot:

- `generate_instance(n_blocks, rng)`: a random initial state and goal (uniform random towers).
- `parse_plan(text)`: a tolerant reader of the *final* plan of an answer, written in English or PDDL
  (after ``</think>``; the last ``<answer>``, ``[PLAN]`` block or list under a plan heading; see its doc;
  the thinking and the answer tag are read by `treecot.tasks.answers`: `after_thinking`, `answer_tag`).
- `focus_on_problem(completion, question)`: the part of a PlanBench-style one-shot continuation that
  answers the question's own problem; `resolve_initials(actions, blocks)`: "Stack R on B" → colours.
- `simulate(init, plan, goal)`: executes a plan and names the first failing step and why.
- `optimal_plan(init, goal)`: an optimal plan (A* in the space of block moves).
- `to_pddl_domain()`, `to_pddl_problem(init, goal)`, `describe(init, goal)`: renderings.
- `BlocksworldTask`: the `Task` registered as ``"blocksworld"``; its generator makes training and test
  problems, and ``load(source="planbench")`` reads PlanBench's 500 evaluation problems
  (`treecot.tasks.planbench`, also registered as the task ``"planbench"``).

The package's modules, by concern: `domain` (colours, facts, actions), `simulator`, `states` (towers),
`generator`, `planner`, `render` (PDDL and English), `parsing` (plans in model output) and `task`.
"""

from treecot.tasks.blocksworld.domain import ACTION_ARITY as ACTION_ARITY
from treecot.tasks.blocksworld.domain import COLOURS, Action, parse_fact
from treecot.tasks.blocksworld.domain import DOMAIN_NAME as DOMAIN_NAME
from treecot.tasks.blocksworld.domain import PREDICATE_ARITY as PREDICATE_ARITY
from treecot.tasks.blocksworld.domain import Fact as Fact
from treecot.tasks.blocksworld.domain import format_fact as format_fact
from treecot.tasks.blocksworld.generator import Instance, generate_instance, random_towers
from treecot.tasks.blocksworld.parsing import (
    ParsedPlan,
    focus_on_problem,
    parse_action,
    parse_plan,
    resolve_initials,
)
from treecot.tasks.blocksworld.planner import SearchBudgetExceeded, optimal_plan
from treecot.tasks.blocksworld.render import describe, describe_facts, to_pddl_domain, to_pddl_problem
from treecot.tasks.blocksworld.simulator import SimulationResult, simulate
from treecot.tasks.blocksworld.states import facts_to_towers, towers_to_facts
from treecot.tasks.blocksworld.task import SYSTEM_PROMPT as SYSTEM_PROMPT
from treecot.tasks.blocksworld.task import BlocksworldTask, split_of_instance

__all__ = [
    "COLOURS",
    "Action",
    "BlocksworldTask",
    "Instance",
    "ParsedPlan",
    "SearchBudgetExceeded",
    "SimulationResult",
    "describe",
    "describe_facts",
    "facts_to_towers",
    "focus_on_problem",
    "generate_instance",
    "optimal_plan",
    "parse_action",
    "parse_fact",
    "parse_plan",
    "random_towers",
    "resolve_initials",
    "simulate",
    "split_of_instance",
    "to_pddl_domain",
    "to_pddl_problem",
    "towers_to_facts",
]
