"""Tests of the Blocksworld task: generator, parser, STRIPS simulator, optimal planner, Task API.

The simulator is cross-checked against unified-planning's sequential plan validator and against the
`pddl-pyvalidator` package (both run on our PDDL domain and problem text); the planner is checked
against a breadth-first search written here independently of the module under test.
"""

from __future__ import annotations

import random
import warnings
from collections import Counter, deque

import pytest

from treecot.tasks import get_task
from treecot.tasks.base import MalformedProblemError, problem_id
from treecot.tasks.blocksworld import (
    COLOURS,
    Action,
    BlocksworldTask,
    Instance,
    SearchBudgetExceeded,
    describe,
    describe_facts,
    facts_to_towers,
    focus_on_problem,
    generate_instance,
    optimal_plan,
    parse_action,
    parse_fact,
    parse_plan,
    random_towers,
    resolve_initials,
    simulate,
    split_of_instance,
    to_pddl_domain,
    to_pddl_problem,
    towers_to_facts,
)

# --------------------------------------------------------------------------------------------------
# Helpers written independently of the module: a tower-based BFS and a random action generator
# --------------------------------------------------------------------------------------------------


def _bfs_length(init: list[str], goal: list[str]) -> int:
    """Length of a shortest 4-operator plan, by breadth-first search over (towers, held block)."""
    towers, held = facts_to_towers(init)
    goal_on = {tuple(f.strip("()").split()[1:]) for f in goal if f.startswith("(on ")}
    goal_table = {f.strip("()").split()[1] for f in goal if f.startswith("(ontable ")}

    def key(towers, held):
        return (frozenset(tuple(t) for t in towers), held)

    def satisfied(towers, held):
        on = {(t[i + 1], t[i]) for t in towers for i in range(len(t) - 1)}
        table = {t[0] for t in towers}
        return goal_on <= on and goal_table <= table and ("(handempty)" not in goal or held is None)

    start = (tuple(tuple(t) for t in towers), held)
    seen = {key(*start)}
    queue = deque([(start, 0)])
    while queue:
        (towers, held), depth = queue.popleft()
        if satisfied(towers, held):
            return depth
        children = []
        if held is None:  # pick-up or unstack the top of any tower
            for i, t in enumerate(towers):
                rest = towers[:i] + ((t[:-1],) if len(t) > 1 else ()) + towers[i + 1 :]
                children.append((rest, t[-1]))
        else:  # put-down, or stack on the top of any tower
            children.append((towers + ((held,),), None))
            for i, t in enumerate(towers):
                children.append((towers[:i] + (t + (held,),) + towers[i + 1 :], None))
        for child in children:
            k = key(*child)
            if k not in seen:
                seen.add(k)
                queue.append((child, depth + 1))
    raise AssertionError("goal unreachable")


def _random_action(blocks: list[str], rng: random.Random) -> Action:
    name = rng.choice(["pick-up", "put-down", "stack", "unstack"])
    if name in ("pick-up", "put-down"):
        return Action(name, (rng.choice(blocks),))
    return Action(name, (rng.choice(blocks), rng.choice(blocks)))


def _applicable_actions(state: list[str], blocks: list[str]) -> list[Action]:
    candidates = [Action(n, (b,)) for n in ("pick-up", "put-down") for b in blocks]
    candidates += [Action(n, (a, b)) for n in ("stack", "unstack") for a in blocks for b in blocks]
    return [a for a in candidates if simulate(state, [a]).valid]


def _mutate(plan: list[Action], blocks: list[str], rng: random.Random) -> tuple[list[Action], int]:
    """A random edit of `plan`; returns (new plan, 1-based index of the first edited step)."""
    kind = rng.choice(["replace", "delete", "insert", "swap"])
    if kind == "swap" and len(plan) < 2:
        kind = "replace"
    k = rng.randrange(len(plan))
    new = list(plan)
    if kind == "replace":
        action = _random_action(blocks, rng)
        while action == plan[k]:
            action = _random_action(blocks, rng)
        new[k] = action
    elif kind == "delete":
        del new[k]
    elif kind == "insert":
        new.insert(k, _random_action(blocks, rng))
    else:
        k = min(k, len(plan) - 2)
        if plan[k] == plan[k + 1]:
            new[k] = _random_action(blocks, rng)
        else:
            new[k], new[k + 1] = new[k + 1], new[k]
    return new, k + 1


@pytest.fixture(scope="module")
def task() -> BlocksworldTask:
    return BlocksworldTask()


@pytest.fixture(scope="module")
def test_set(task):
    return task.load("test", n=120)


# --------------------------------------------------------------------------------------------------
# Facts, actions, states
# --------------------------------------------------------------------------------------------------


def test_parse_fact_and_errors():
    assert parse_fact("(on Red blue)") == ("on", "red", "blue")
    assert parse_fact(" (handempty) ") == ("handempty",)
    assert parse_fact(("clear", "red")) == ("clear", "red")
    with pytest.raises(ValueError, match="unknown predicate"):
        parse_fact("(above red blue)")
    with pytest.raises(ValueError, match="takes 2 argument"):
        parse_fact("(on red)")
    with pytest.raises(ValueError, match="not a PDDL fact"):
        parse_fact("on red blue")


def test_action_renderings_and_validation():
    action = Action("unstack", ("red", "blue"))
    assert action.pddl == "(unstack red blue)" == str(action)
    assert action.text == "unstack the red block from on top of the blue block"
    assert Action("pick-up", ("red",)).text == "pick up the red block"
    assert Action("put-down", ("red",)).text == "put down the red block"
    assert Action("stack", ("red", "blue")).text == "stack the red block on top of the blue block"
    assert Action.from_pddl("(STACK red blue)") == Action("stack", ("red", "blue"))
    for a in (
        action,
        Action("pick-up", ("red",)),
        Action("put-down", ("red",)),
        Action("stack", ("b1", "b2")),
    ):
        assert parse_action(a.text) == a
        assert parse_action(a.pddl) == a
    with pytest.raises(ValueError, match="unknown action"):
        Action("move", ("red",))
    with pytest.raises(ValueError, match="takes 2 argument"):
        Action("stack", ("red",))
    with pytest.raises(ValueError, match="not a PDDL Blocksworld action"):
        Action.from_pddl("stack red")


def test_towers_round_trip_and_inconsistent_states():
    facts = towers_to_facts([["red", "blue", "green"], ["cyan"]])
    assert facts == sorted(
        [
            "(ontable red)",
            "(on blue red)",
            "(on green blue)",
            "(clear green)",
            "(ontable cyan)",
            "(clear cyan)",
        ]
        + ["(handempty)"]
    )
    assert facts_to_towers(facts) == ([["cyan"], ["red", "blue", "green"]], None)
    held = towers_to_facts([["red"]], holding="blue")
    assert "(holding blue)" in held and "(handempty)" not in held
    assert facts_to_towers(held) == ([["red"]], "blue")
    bad_states = {
        "both on the table and on a block": [
            "(ontable red)",
            "(on red blue)",
            "(ontable blue)",
            "(handempty)",
        ],
        "on several blocks": ["(on red blue)", "(on red green)", "(ontable blue)", "(ontable green)"],
        "several blocks are on": ["(on red blue)", "(on green blue)", "(ontable blue)", "(handempty)"],
        "neither empty nor holding": ["(ontable red)", "(clear red)"],
        "with an empty hand": ["(holding red)", "(handempty)"],
        "neither on the table": ["(clear red)", "(handempty)"],
        "cycle": ["(on red blue)", "(on blue red)", "(handempty)"],
        "on itself": ["(on red red)", "(handempty)"],
        "holding several blocks": ["(holding red)", "(holding blue)"],
        "does not match the towers": ["(ontable red)", "(handempty)"],
    }
    for message, state in bad_states.items():
        with pytest.raises(ValueError, match=message):
            facts_to_towers(state)


def test_random_towers_is_uniform_over_states():
    # 3 labelled blocks have 13 states (6 single towers, 6 with a tower of two, 1 all on the table).
    rng = random.Random(0)
    counts = Counter(
        frozenset(tuple(t) for t in random_towers(["a", "b", "c"], rng)) for _ in range(13 * 400)
    )
    assert len(counts) == 13
    # Expected 400 each, standard deviation ~19: a biased sampler (e.g. uniform over tower counts)
    # puts ~1733 on the all-on-the-table state.
    assert all(300 < c < 500 for c in counts.values()), counts


def test_generate_instance_properties():
    for n in range(3, 9):
        for seed in range(20):
            inst = generate_instance(n, random.Random(seed))
            assert inst.n_blocks == n == len(set(inst.blocks))
            assert set(inst.blocks) <= set(COLOURS)
            assert inst.blocks == sorted(inst.blocks, key=COLOURS.index)
            assert inst.goal and all(g.startswith("(on ") for g in inst.goal)
            assert not set(inst.goal) <= set(inst.init), "goal must not hold initially"
            facts_to_towers(inst.init)  # consistent state
            assert "(handempty)" in inst.init
    assert generate_instance(6, random.Random(3)) == generate_instance(6, random.Random(3))
    assert generate_instance(6, random.Random(3)) != generate_instance(6, random.Random(4))
    with pytest.raises(ValueError, match="n_blocks must be between"):
        generate_instance(13, random.Random(0))


# --------------------------------------------------------------------------------------------------
# Simulator
# --------------------------------------------------------------------------------------------------

INIT = towers_to_facts([["blue", "red"], ["green"]])  # red on blue; green on the table
GOAL = ["(on blue green)", "(on red blue)"]


def test_simulate_valid_plan_reaches_goal():
    plan = ["(unstack red blue)", "(put-down red)", "(pick-up blue)", "(stack blue green)", "(pick-up red)"]
    plan.append("stack the red block on top of the blue block")
    result = simulate(INIT, plan, GOAL)
    assert result.valid and result.goal_reached and result.solved
    assert result.failed_step is None and result.reason == "" and result.n_executed == 6
    assert result.final_state == towers_to_facts([["green", "blue", "red"]])


@pytest.mark.parametrize(
    "plan, step, reason",
    [
        (["(pick-up blue)"], 1, "step 1 (pick-up blue): blue is not clear (red is on it)"),
        (["(pick-up red)"], 1, "step 1 (pick-up red): red is not on the table"),
        (
            ["(unstack blue green)"],
            1,
            "step 1 (unstack blue green): blue is not on green; blue is not clear (red is on it)",
        ),
        (["(unstack red green)"], 1, "step 1 (unstack red green): red is not on green"),
        (["(put-down red)"], 1, "step 1 (put-down red): not holding red (the hand is empty)"),
        (
            ["(unstack red blue)", "(pick-up green)"],
            2,
            "step 2 (pick-up green): the hand is not empty (holding red)",
        ),
        (
            ["(unstack red blue)", "(stack green blue)"],
            2,
            "step 2 (stack green blue): not holding green (holding red)",
        ),
        (
            ["(unstack red blue)", "(stack red red)"],
            2,
            "step 2 (stack red red): red is not clear (it is being held)",
        ),
        (
            ["(pick-up green)", "(stack green red)", "(unstack red blue)"],
            3,
            "step 3 (unstack red blue): red is not clear (green is on it)",
        ),
        (["(pick-up purple)"], 1, "step 1 (pick-up purple): unknown block 'purple'"),
    ],
)
def test_simulate_names_first_failing_step(plan, step, reason):
    result = simulate(INIT, plan, GOAL)
    assert not result.valid and not result.goal_reached
    assert result.failed_step == step and result.n_executed == step - 1
    assert result.reason == reason


def test_simulate_valid_but_goal_not_reached():
    result = simulate(INIT, ["(unstack red blue)", "(put-down red)"], GOAL)
    assert result.valid and result.goal_reached is False and not result.solved
    assert result.unmet_goal == ["(on blue green)", "(on red blue)"]
    assert result.reason == "plan valid but goal not reached: (on blue green), (on red blue) false"
    assert simulate(INIT, ["(unstack red blue)"]).goal_reached is None  # no goal given
    with pytest.raises(ValueError, match="cannot read"):
        simulate(INIT, ["dance"])


# --------------------------------------------------------------------------------------------------
# Optimal planner
# --------------------------------------------------------------------------------------------------


def test_planner_plans_validate_and_are_optimal_against_bfs():
    rng = random.Random(7)
    lengths = []
    for i in range(45):
        inst = generate_instance(3 + i % 3, rng)  # 3, 4 and 5 blocks
        plan = optimal_plan(inst.init, inst.goal)
        assert simulate(inst.init, plan, inst.goal).solved
        assert len(plan) == _bfs_length(inst.init, inst.goal), (inst, plan)
        lengths.append(len(plan))
    assert max(lengths) >= 8  # the comparison covered non-trivial instances


def test_planner_handles_held_block_and_table_goals():
    rng = random.Random(11)
    for _ in range(15):
        blocks = rng.sample(COLOURS[:5], 4)
        towers = random_towers(blocks[1:], rng)
        init = towers_to_facts(towers, holding=blocks[0])
        goal_towers = random_towers(blocks, rng)
        goal = [f for f in towers_to_facts(goal_towers) if f.startswith(("(on ", "(ontable "))]
        goal.append("(handempty)")
        plan = optimal_plan(init, goal)
        assert simulate(init, plan, goal).solved
        assert len(plan) == _bfs_length(init, goal)


def test_planner_is_optimal_on_larger_instances():
    # 6-8 blocks: the plan is valid, never shorter than a lower bound, and equal to BFS on one 6-block case.
    rng = random.Random(5)
    for n in (6, 7, 8):
        for _ in range(4):
            inst = generate_instance(n, rng)
            plan = optimal_plan(inst.init, inst.goal)
            assert simulate(inst.init, plan, inst.goal).solved
            misplaced = sum(1 for g in inst.goal if g not in inst.init)
            assert len(plan) >= 2 * misplaced
    inst = generate_instance(6, random.Random(2))
    assert len(optimal_plan(inst.init, inst.goal)) == _bfs_length(inst.init, inst.goal)


def test_planner_errors():
    with pytest.raises(ValueError, match="two places"):
        optimal_plan(INIT, ["(on red blue)", "(on red green)"])
    with pytest.raises(ValueError, match="two blocks must be on"):
        optimal_plan(INIT, ["(on red blue)", "(on green blue)"])
    with pytest.raises(ValueError, match="cycle"):
        optimal_plan(INIT, ["(on red blue)", "(on blue green)", "(on green red)"])
    with pytest.raises(ValueError, match="on itself"):
        optimal_plan(INIT, ["(on red red)"])
    with pytest.raises(ValueError, match="on/ontable/handempty"):
        optimal_plan(INIT, ["(clear blue)"])
    with pytest.raises(ValueError, match="unknown block 'purple'"):
        optimal_plan(INIT, ["(on purple red)"])
    with pytest.raises(ValueError, match="inconsistent state"):
        optimal_plan(["(ontable red)", "(handempty)"], GOAL)
    inst = generate_instance(8, random.Random(1))
    with pytest.raises(SearchBudgetExceeded):
        optimal_plan(inst.init, inst.goal, max_expansions=1)
    assert optimal_plan(INIT, ["(on red blue)"]) == []  # already satisfied


def test_random_edits_fail_at_edited_step_or_later():
    rng = random.Random(3)
    failed = 0
    for trial in range(150):
        inst = generate_instance(3 + trial % 6, rng)
        plan = optimal_plan(inst.init, inst.goal)
        edited, k = _mutate(plan, inst.blocks, rng)
        result = simulate(inst.init, edited, inst.goal)
        if not result.valid:
            assert result.failed_step >= k, (plan, edited, k, result)
        if result.solved:
            assert len(edited) >= len(plan)  # an edit never beats the optimum
        else:
            failed += 1
    assert failed > 100  # most edits of an optimal plan break it


# --------------------------------------------------------------------------------------------------
# Renderings
# --------------------------------------------------------------------------------------------------


def test_describe_is_planbench_style():
    text = describe(INIT, GOAL)
    assert text.startswith(
        "I am playing with a set of blocks where I need to arrange the blocks into stacks."
    )
    assert "I can only pick up or unstack one block at a time." in text
    assert (
        "As initial conditions I have that, the red block is clear, the green block is clear, the hand is "
        "empty, the red block is on top of the blue block, the blue block is on the table and the green "
        "block is on the table.\n"
    ) in text
    assert (
        "My goal is to have that the red block is on top of the blue block and the blue block is on top of the green block."
        in text
    )
    assert "<answer>" in text
    assert describe_facts(["(holding red)"]) == "I am holding the red block"
    assert describe_facts([]) == ""


def test_pddl_rendering():
    domain = to_pddl_domain()
    for word in ("pick-up", "put-down", "(:action stack", "(:action unstack", "(handempty)", "(holding ?x)"):
        assert word in domain
    problem = to_pddl_problem(INIT, GOAL, name="p1")
    assert "(define (problem p1)" in problem and "(:domain blocksworld-4ops)" in problem
    assert "(:objects green red blue)" in problem  # order of first appearance in the sorted facts
    for fact in INIT + GOAL:
        assert fact in problem
    assert "(:objects a b)" in to_pddl_problem(INIT, GOAL, objects=["a", "b"])
    with pytest.raises(ValueError, match="identifier"):
        to_pddl_problem(INIT, GOAL, name="bad name")


# --------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line, expected",
    [
        ("unstack the red block from on top of the blue block", ["(unstack red blue)"]),
        ("1. Unstack the Red block from on top of the Blue block.", ["(unstack red blue)"]),
        ("Step 2: pick up the orange block", ["(pick-up orange)"]),
        ("- put down the red block", ["(put-down red)"]),
        ("* **stack the red block on top of the blue block**", ["(stack red blue)"]),
        ("(UNSTACK RED BLUE) (put-down red)", ["(unstack red blue)", "(put-down red)"]),
        ("`(stack red blue)`", ["(stack red blue)"]),
        ("unstack red blue", ["(unstack red blue)"]),
        ("pickup red", ["(pick-up red)"]),
        ("putdown red", ["(put-down red)"]),
        ("put the red block on the table", ["(put-down red)"]),
        ("pick the red block up from the table", ["(pick-up red)"]),
        ("stack red onto blue", ["(stack red blue)"]),
        ("put the red block on top of the blue block", ["(stack red blue)"]),
        ("unstack red from blue", ["(unstack red blue)"]),
        ("Finally, stack the red block on the blue block.", ["(stack red blue)"]),
        ("stack the red block on top of the blue block (to build the tower)", ["(stack red blue)"]),
        (
            "Then, pick up the red block, then stack it on the blue block",
            ["(pick-up red)", "(stack red blue)"],
        ),
        (
            "pick up the red block; stack the red block on the blue block",
            ["(pick-up red)", "(stack red blue)"],
        ),
        ("I think we should unstack the red block from on top of the blue block", []),
        ("stack it on the blue block", []),  # "it" with nothing before it
    ],
)
def test_parse_plan_line_formats(line, expected):
    assert parse_plan(line).pddl == expected


def test_parse_plan_sections():
    reasoning = "First I could pick up the red block.\npick up the green block\n"
    answer = "<answer>\nMy plan:\n1. unstack the red block from on top of the blue block\n2. put down the red block\n</answer>"
    parsed = parse_plan(reasoning + "<answer>(pick-up green)</answer>\n" + answer)
    assert parsed.section == "answer_tag"
    assert parsed.pddl == ["(unstack red blue)", "(put-down red)"]  # last answer only
    assert parse_plan("<answer>\nThe answer is:\n(pick-up red)\n(stack red blue)").pddl == [
        "(pick-up red)",
        "(stack red blue)",
    ]  # unclosed tag, "The answer is" inside
    parsed = parse_plan("pick up the green block\nThe answer is: (pick-up red)\n(stack red blue)")
    assert parsed.section == "answer_is" and parsed.pddl == ["(pick-up red)", "(stack red blue)"]
    parsed = parse_plan(
        "pick up the green block\n[PLAN]\npick up the red block\n[PLAN END]\nput down the blue block"
    )
    assert parsed.section == "plan_tag" and parsed.pddl == ["(pick-up red)"]
    # Free text without a heading: the last list of actions is the plan, not every action mentioned.
    parsed = parse_plan("Let me see.\npick up the red block\nThat works.\nput down the red block\n")
    assert parsed.section == "text" and parsed.pddl == ["(put-down red)"]
    parsed = parse_plan("Let me see.\npick up the red block\nstack it on the blue block\nThat works.\n")
    assert parsed.section == "text" and parsed.pddl == ["(pick-up red)", "(stack red blue)"]
    assert parse_plan("").actions == [] and parse_plan("no plan here").actions == []
    # A later "the plan is …" remark without actions does not hide the plan before it.
    text = "The plan is:\n(pick-up red)\n(stack red blue)\nThe plan is complete."
    assert parse_plan(text).pddl == ["(pick-up red)", "(stack red blue)"]
    assert parse_plan(f"<answer>{text}</answer>").pddl == ["(pick-up red)", "(stack red blue)"]
    assert parse_plan("<answer>pick up red\nThe plan is complete.</answer>").pddl == ["(pick-up red)"]
    # An explicit answer without actions is an empty answer, even if the reasoning had some.
    assert parse_plan("pick up the red block\n<answer>I cannot solve this.</answer>").actions == []


def test_parse_plan_reports_unreadable_action_lines_in_answer():
    text = "<answer>\n```\nunstack the red block from on top of the blue block\nmove red to green\nThis is optimal.\nput down the red block\n```\n</answer>"
    parsed = parse_plan(text)
    assert parsed.pddl == ["(unstack red blue)", "(put-down red)"]
    assert parsed.unparsed == [(2, "move red to green")]
    # Outside an answer section, unreadable lines are just text.
    assert parse_plan("move red to green\n(pick-up red)").unparsed == []


# --------------------------------------------------------------------------------------------------
# The final plan of long answers (reasoning models, markdown, one-shot continuations)
# --------------------------------------------------------------------------------------------------

O1_STYLE = """To achieve your goal, you can follow these steps:

1. **Unstack the blue block from on top of the orange block.**
   - Since the blue block is clear and your hand is empty, you can unstack it from the orange block.
2. **Put down the blue block on the table.**
   - Then pick up the orange block: it is clear now.

**Actions in the plan:**

- **Unstack** the blue block from the orange block.
- **Put down** the blue block on the table.
- **Pick up** the orange block from the table.
- **Stack** the orange block on top of the blue block.
"""


def test_parse_plan_reads_only_the_final_plan_block():
    parsed = parse_plan(O1_STYLE)
    assert parsed.section == "plan_block"
    assert parsed.pddl == [
        "(unstack blue orange)",
        "(put-down blue)",
        "(pick-up orange)",
        "(stack orange blue)",
    ]
    # Sub-bullets are narration of their item, even when they name an action.
    numbered = O1_STYLE.split("**Actions")[0]
    assert parse_plan(numbered).pddl == ["(unstack blue orange)", "(put-down blue)"]
    # A later heading of narration does not make its list the plan.
    checked = numbered + "\n**Verification:**\n1. Unstack the blue block from the orange block\n"
    assert parse_plan(checked).pddl == ["(unstack blue orange)", "(put-down blue)"]
    # A numbered list that goes on after a remark is one list; one that restarts at 1 is a new one.
    text = "Here is the plan:\n1. pick up the red block\nNow the hand is full.\n2. stack the red block on the blue block"
    assert parse_plan(text).pddl == ["(pick-up red)", "(stack red blue)"]
    text = (
        "Here is the plan:\n1. pick up the red block\n2. put down the red block\n1. pick up the green block"
    )
    assert parse_plan(text).pddl == ["(pick-up red)", "(put-down red)"]  # the restart has no plan heading
    # Headings inline with the first action, and "the plan is".
    assert parse_plan("Plan: pick up the red block\nstack it on the blue block").pddl == [
        "(pick-up red)",
        "(stack red blue)",
    ]
    assert parse_plan("pick up blue\nSo the plan is: pick up red, stack it on green").pddl == [
        "(pick-up red)",
        "(stack red green)",
    ]


def test_parse_plan_thinking_is_not_the_answer():
    thinking = "<think>\nMaybe: pick up the red block\nstack the red block on the blue block\n"
    assert parse_plan(thinking + "</think>\n1. pick up the green block").pddl == ["(pick-up green)"]
    assert parse_plan("pick up the red block\n</think>\nput down the red block").pddl == ["(put-down red)"]
    unfinished = parse_plan(thinking)
    assert unfinished.actions == [] and unfinished.section == "thinking"


def test_parse_plan_narrated_walk_through_is_not_a_second_plan():
    plan = "So, perhaps the plan is:\n\n1. Unstack blue from yellow.\n\n2. Put blue down on the table.\n\n3. Pick up yellow.\n"
    walk = "\nLet me go through the plan step by step.\n\nStep 1: Unstack blue from yellow.\n\n- Condition: blue is clear"
    expected = ["(unstack blue yellow)", "(put-down blue)", "(pick-up yellow)"]
    assert parse_plan(plan + walk).pddl == expected  # the output stops inside the walk through
    assert (
        parse_plan(plan + "\nStep 1: Unstack blue from yellow. - Condition: blue is clear ✓").pddl == expected
    )
    # A shorter final plan that is not cut off is the answer, even if it starts like an earlier one.
    final = (
        plan
        + "\nWait, step 3 is not needed. Final plan:\n1. Unstack blue from yellow.\n2. Put blue down.\nDone."
    )
    assert parse_plan(final).pddl == expected[:2]


@pytest.mark.parametrize(
    "line, expected",
    [
        ("1. Unstack(red, yellow)", ["(unstack red yellow)"]),
        ("2. PutDown(red)", ["(put-down red)"]),
        ("3. Pick up(yellow)", ["(pick-up yellow)"]),
        ("4. STACK(Yellow_Block, Blue_Block)", ["(stack yellow blue)"]),
        (
            "1. **Unstack red block from orange block**: since red is clear, unstack it.",
            ["(unstack red orange)"],
        ),
        ("2. Put down the red block - the hand is now empty", ["(put-down red)"]),
        (
            "1. Unstack the red block from the yellow block. (Now holding the red block)",
            ["(unstack red yellow)"],
        ),
        ("- Pick up red and stack it onto blue.", ["(pick-up red)", "(stack red blue)"]),
        ("2. **Stack** the yellow block (Y) on top of the blue block (B).", ["(stack yellow blue)"]),
        ("9. **Pick up the orange block from the table**  \\", ["(pick-up orange)"]),
        ("5. **Pick up the yellow block:**", ["(pick-up yellow)"]),
        ("- *Action:* put down the blue block", ["(put-down blue)"]),
        ("put down the yellow block in an empty space", ["(put-down yellow)"]),
        ("6. Stack yellow on blue is not correct, so put down the blue block.", ["(put-down blue)"]),
        ("8. Stack red on blue is not possible, so put down the red block and then ", ["(put-down red)"]),
        ("put down the red block in the blue block", []),  # a block is no place to put a block down
        ("Unstack red from orange: impossible", []),  # no list marker: prose
    ],
)
def test_parse_plan_reads_common_answer_formats(line, expected):
    assert parse_plan(line).pddl == expected


def test_self_retracted_steps_are_remarks_not_unreadable_actions():
    text = "Here is the plan:\n1. pick up the red block\n2. Put down the red block is not needed here.\n3. stack the red block on the blue block"
    parsed = parse_plan(text)
    assert parsed.pddl == ["(pick-up red)", "(stack red blue)"] and parsed.unparsed == []
    # An unreadable step of a plan under a heading fails the plan; prose that starts like a verb does not.
    parsed = parse_plan("Plan:\n1. pick up the red block\n2. Move the red block somewhere nice\n")
    assert parsed.pddl == ["(pick-up red)"] and parsed.unparsed == [
        (2, "2. Move the red block somewhere nice")
    ]
    assert parse_plan("pick up the red block\nTake note that red was clear.").unparsed == []


def test_block_initials_are_resolved_against_the_problem(task):
    problem = task.problem_from_instance(
        Instance(
            ["red", "blue", "black"], towers_to_facts([["red"], ["blue"], ["black"]]), ["(on red blue)"]
        ),
        "test",
        0,
    )
    assert task.verify("1. Pick up R\n2. Stack R on top of the blue block", problem).correct
    # "B" could be blue or black: left as it is, so the step names an unknown block.
    verdict = task.verify("1. Pick up R\n2. Stack R on B", problem)
    assert not verdict.correct and "unknown block 'b'" in verdict.reason
    assert resolve_initials([Action("stack", ("r", "x"))], ["red", "blue"]) == [Action("stack", ("red", "x"))]


def test_one_shot_continuations_are_focused_on_the_problem(task):
    instance = Instance(
        ["red", "blue", "orange"], towers_to_facts([["red", "blue"], ["orange"]]), ["(on orange blue)"]
    )
    problem = task.problem_from_instance(instance, "test", 0)
    statement = problem["question"].split("[STATEMENT]\n")[1].split("\n")[0]
    example = "[PLAN]\npick up the red block\nstack the red block on top of the orange block\n[PLAN END]"
    problem = dict(
        problem,
        question=f"intro\n[STATEMENT]\nexample problem\n{example}\n\n[STATEMENT]\n{statement}\n...[PLAN]",
    )
    good = "unstack the blue block from on top of the red block\nput down the blue block\npick up the orange block\nstack the orange block on top of the blue block\n"
    # The model repeats the example's plan, restates the problem, answers it, then invents another one.
    echo = f"pick up the red block\nstack the red block on top of the orange block\n[PLAN END]\n\n[STATEMENT]\n{statement}\nMy plan is as follows:\n\n[PLAN]\n{good}[PLAN END]\n\n[STATEMENT]\nAs initial conditions I have that, the hand is empty.\n[PLAN]\npick up the red block\n[PLAN END]"
    assert focus_on_problem(echo, problem["question"]).count("[STATEMENT]") == 0
    assert task.verify(echo, problem).correct
    # Cut off while restating the same plan again: the complete earlier statement of it counts.
    cut = (
        echo.rsplit("\n\n[STATEMENT]", 1)[0] + f"\n\n[STATEMENT]\n{statement}\n[PLAN]\n" + good.split("\n")[0]
    )
    assert task.verify(cut, problem).correct
    # Only the example's plan: that is no answer to this problem.
    assert not task.verify(example.split("\n", 1)[1], problem).correct
    # A completion that only mentions the statement after its plan keeps its plan.
    assert task.verify(good + f"This solves: {statement}", problem).correct


def test_plan_reading_stays_fast_on_hostile_lists():
    import time

    huge = "\n".join(
        f"{i}. Stack the red block on the blue block\n   - Condition: held" for i in range(1, 40_000)
    )
    restated = (
        "As initial conditions I have that, the red block is clear.\n[PLAN]\npick up the red block\n" * 2000
    )
    unnumbered = "(unstack red blue)\n" * 50_000  # a block of 50,000 items must not be rescanned per item
    line = "As initial conditions I have that, the red block is clear.\n"
    long_tail = line * 8 + "pick up the red block\n" * 45_000  # each restatement must not reparse the rest
    for text in (huge, restated, unnumbered, long_tail, "- " * 200_000, "1. " + "(" * 100_000):
        start = time.perf_counter()
        parse_plan(text)
        focus_on_problem(text, "[STATEMENT]\nAs initial conditions I have that, the red block is clear.\n")
        assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------------------------------
# Task
# --------------------------------------------------------------------------------------------------


def test_registry_and_metadata(task):
    assert isinstance(get_task("blocksworld"), BlocksworldTask)
    assert task.name == "blocksworld" and task.domain == "planning" and task.splits == ("train", "test")
    with pytest.raises(ValueError, match="no split 'validation'"):
        task.load("validation")
    with pytest.raises(ValueError, match="min_blocks"):
        BlocksworldTask(min_blocks=2)
    messages = task.prompt({"question": "Q"})
    assert messages[0]["role"] == "system" and "<answer>" in messages[0]["content"]


def test_load_rows_are_consistent(task, test_set):
    assert len(test_set) == 120
    assert set(test_set.features["meta"]) == {
        "n_blocks", "init", "goal", "optimal_length", "pddl_domain", "pddl_problem", "seed", "split"
    }  # fmt: skip
    counts = Counter()
    for row in test_set:
        meta = row["meta"]
        counts[meta["n_blocks"]] += 1
        assert row["task"] == "blocksworld" and meta["split"] == "test"
        assert row["id"] == problem_id("blocksworld", row["question"])
        inst = generate_instance(meta["n_blocks"], random.Random(meta["seed"]))
        assert (inst.init, inst.goal) == (meta["init"], meta["goal"])  # reproducible from meta
        assert split_of_instance(meta["init"], meta["goal"]) == "test"
        plan = row["reference"].splitlines()
        assert len(plan) == meta["optimal_length"] > 0
        assert simulate(meta["init"], plan, meta["goal"]).solved
        assert (
            meta["pddl_problem"].count("(on ") >= len(meta["goal"])
            and meta["pddl_domain"] == to_pddl_domain()
        )
    assert set(counts) == set(range(3, 9)) and min(counts.values()) >= 10
    assert len(set(test_set["id"])) == len(test_set)


def test_load_is_deterministic_and_prefix_stable(task, test_set):
    again = BlocksworldTask().load("test", limit=30)
    assert again.to_list() == test_set.select(range(30)).to_list()
    assert BlocksworldTask(seed=1).load("test", limit=5)["id"] != again["id"][:5]
    assert len(task.load("test", limit=7, n=5)) == 5


def test_train_and_test_are_disjoint_by_state(task, test_set):
    train = task.load("train", n=240)
    key = lambda m: (tuple(m["init"]), tuple(m["goal"]))  # noqa: E731
    train_states = {key(m) for m in train["meta"]}
    test_states = {key(m) for m in test_set["meta"]}
    assert len(train_states) == 240 and not train_states & test_states
    assert {m["split"] for m in train["meta"]} == {"train"}


def test_small_block_range():
    ds = BlocksworldTask(min_blocks=3, max_blocks=3).load("test", n=20)
    assert set(ds["meta"][i]["n_blocks"] for i in range(20)) == {3}
    assert len({(tuple(m["init"]), tuple(m["goal"])) for m in ds["meta"]}) == 20


# --------------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def problem(test_set):
    return next(row for row in test_set if row["meta"]["optimal_length"] >= 6)


def _answer(lines):
    return "Let me think about it.\n<answer>\n" + "\n".join(lines) + "\n</answer>"


def test_verify_correct_plans(task, problem):
    plan = [Action.from_pddl(p) for p in problem["reference"].splitlines()]
    verdict = task.verify(_answer(f"{i}. {a.text}" for i, a in enumerate(plan, 1)), problem)
    assert verdict.correct and verdict.answered
    assert verdict.extracted == [a.pddl for a in plan]
    assert verdict.details == {
        "valid": True,
        "goal_reached": True,
        "failed_step": None,
        "plan_length": len(plan),
        "optimal_length": len(plan),
        "optimal": True,
    }
    assert verdict.reason == f"optimal plan ({len(plan)} steps)"
    # A longer plan that still works: correct but not optimal.
    # A longer plan that still works (put the first block down and pick it up again): correct, not optimal.
    held = plan[0].args[0]
    longer = [plan[0], Action("put-down", (held,)), Action("pick-up", (held,)), *plan[1:]]
    verdict = task.verify(_answer(a.pddl for a in longer), problem)
    assert verdict.correct and not verdict.details["optimal"]
    assert verdict.reason == f"plan reaches the goal in {len(plan) + 2} steps (optimal: {len(plan)})"


def test_verify_wrong_plans(task, problem):
    plan = problem["reference"].splitlines()
    verdict = task.verify(_answer(plan[:-1]), problem)
    assert not verdict.correct and verdict.answered
    assert verdict.details["valid"] and not verdict.details["goal_reached"]
    assert verdict.reason.startswith("plan valid but goal not reached: ")
    broken = plan[:2] + plan[3:]
    verdict = task.verify(_answer(broken), problem)
    assert not verdict.correct and not verdict.details["valid"]
    assert verdict.details["failed_step"] == 3 and verdict.reason.startswith("step 3 ")
    verdict = task.verify(_answer([plan[0], "move it somewhere", *plan[1:]]), problem)
    assert not verdict.correct and verdict.details["failed_step"] == 2
    assert verdict.reason == "step 2: cannot read 'move it somewhere' as an action"


@pytest.mark.parametrize(
    "completion",
    # The last one would take minutes if every "the answer is" were tried in turn (quadratic parsing).
    ["", "I don't know.", "<answer></answer>", "\x00\ufffd" * 50, "(" * 5000, "The answer is " * 3000],
)
def test_verify_no_answer_never_raises(task, problem, completion):
    verdict = task.verify(completion, problem)
    assert not verdict.correct and not verdict.answered and verdict.extracted == []
    assert verdict.reason == "no action found in the answer"


def test_verify_unknown_block(task, problem):
    verdict = task.verify("<answer>(pick-up purple)</answer>", problem)
    assert verdict.answered and not verdict.correct and "unknown block 'purple'" in verdict.reason


def test_malformed_problems_name_their_id_and_field():
    """A record without the instance (no meta, or meta without init / goal / optimal_length, unreadable facts)
    is a data error naming the problem and the field, never a KeyError or TypeError from inside the verifier."""
    small = BlocksworldTask(min_blocks=3, max_blocks=3)
    good = small.load("test", n=1)[0]
    answer = _answer(good["reference"].splitlines())
    assert small.verify(answer, good).correct

    def broken(meta):
        return {**good, "meta": meta}

    cases = [
        (broken(None), "meta.init", "missing"),
        (broken({}), "meta.init", "missing"),
        (broken("init goal"), "meta", "must be an object"),
        (broken({**good["meta"], "goal": None}), "meta.goal", "must be a list of facts"),
        (broken({**good["meta"], "init": ["(on red)"]}), "meta.init", "takes 2 argument"),
        (broken({**good["meta"], "init": "(on red blue)"}), "meta.init", "must be a list of facts"),
        (
            broken({k: v for k, v in good["meta"].items() if k != "optimal_length"}),
            "meta.optimal_length",
            "missing",
        ),
        (broken({**good["meta"], "optimal_length": "three"}), "meta.optimal_length", "integer >= 0"),
    ]
    for record, field, why in cases:
        with pytest.raises(MalformedProblemError) as err:
            small.verify(answer, record)
        assert err.value.problem_id == good["id"] and err.value.field == field, (field, str(err.value))
        assert str(err.value).startswith(f"problem {good['id']}: {field}: ") and why in str(err.value)
    nameless = {"question": "q", "reference": "", "meta": {}}
    with pytest.raises(MalformedProblemError, match=r"^problem \(without id\): meta.init: missing"):
        small.verify(answer, nameless)
    # hostile completion text is still a verdict, never an exception
    deep = "<answer>" + "[" * 100_000 + "</answer>"
    assert not small.verify(deep, good).correct


# --------------------------------------------------------------------------------------------------
# Cross-check against independent PDDL validators (unified-planning, pddl-pyvalidator)
# --------------------------------------------------------------------------------------------------


def _plan_corpus(rng: random.Random, n_instances: int, per_instance: int):
    """(instance, plan) pairs: optimal, mutated, random, random walks and overlong plans."""
    corpus = []
    for i in range(n_instances):
        inst = generate_instance(3 + i % 6, rng)
        optimal = optimal_plan(inst.init, inst.goal)
        held = optimal[0].args[0]
        detour = [optimal[0], Action("put-down", (held,)), Action("pick-up", (held,)), *optimal[1:]]
        plans = [optimal, detour, optimal[:-1], []]
        state = list(inst.init)
        walk: list[Action] = []
        for _ in range(rng.randint(1, 10)):  # a random valid walk
            options = _applicable_actions(state, inst.blocks)
            walk.append(rng.choice(options))
            state = simulate(state, [walk[-1]]).final_state
        plans.append(walk)
        plans.append(optimal + walk[:3])  # valid continuation or a failure after the goal was reached
        while len(plans) < per_instance:
            if rng.random() < 0.6:
                plans.append(_mutate(optimal, inst.blocks, rng)[0])
            else:
                plans.append([_random_action(inst.blocks, rng) for _ in range(rng.randint(1, 6))])
        corpus.extend((inst, plan) for plan in plans)
    return corpus


def test_simulator_agrees_with_unified_planning_validator():
    from unified_planning.engines import ValidationResultStatus
    from unified_planning.engines.plan_validator import SequentialPlanValidator
    from unified_planning.engines.results import FailedValidationReason
    from unified_planning.io import PDDLReader

    reader = PDDLReader()
    corpus = _plan_corpus(random.Random(2024), n_instances=24, per_instance=10)
    outcomes = Counter()
    parsed: dict[int, object] = {}
    for inst, plan in corpus:
        ours = simulate(inst.init, plan, inst.goal)
        key = id(inst)
        if key not in parsed:
            parsed[key] = reader.parse_problem_string(to_pddl_domain(), to_pddl_problem(inst.init, inst.goal))
        up_problem = parsed[key]
        up_plan = reader.parse_plan_string(up_problem, "\n".join(a.pddl for a in plan))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with SequentialPlanValidator() as validator:
                theirs = validator.validate(up_problem, up_plan)
        assert ours.solved == (theirs.status == ValidationResultStatus.VALID), (inst, plan, ours, theirs)
        if theirs.reason == FailedValidationReason.INAPPLICABLE_ACTION:
            assert ours.failed_step == len(theirs.trace), (inst, plan, ours)
        elif not ours.solved:
            assert ours.valid and theirs.reason == FailedValidationReason.UNSATISFIED_GOALS
        outcomes["solved" if ours.solved else "goal missed" if ours.valid else "invalid"] += 1
    assert len(corpus) >= 200
    assert outcomes["solved"] >= 48 and outcomes["goal missed"] >= 30 and outcomes["invalid"] >= 60, outcomes


def test_simulator_agrees_with_pddl_pyvalidator(tmp_path):
    from pyval import PDDLValidator

    validator = PDDLValidator()
    corpus = _plan_corpus(random.Random(99), n_instances=3, per_instance=8)
    domain_path = tmp_path / "domain.pddl"
    domain_path.write_text(to_pddl_domain())
    outcomes = Counter()
    for i, (inst, plan) in enumerate(corpus):
        problem_path = tmp_path / f"problem{i}.pddl"
        problem_path.write_text(to_pddl_problem(inst.init, inst.goal, name=f"p{i}"))
        plan_path = tmp_path / f"plan{i}.txt"
        plan_path.write_text("".join(f"{a.pddl}\n" for a in plan))
        theirs = validator.validate(str(domain_path), str(problem_path), str(plan_path))
        ours = simulate(inst.init, plan, inst.goal)
        assert theirs.status in ("VALID", "INVALID"), theirs.phases
        assert ours.solved == theirs.is_valid, (plan, ours, theirs.report())
        assert ours.failed_step == theirs.failed_step, (plan, ours, theirs.report())
        outcomes[ours.solved] += 1
    assert outcomes[True] >= 3 and outcomes[False] >= 10


def test_bfs_helper_sanity():
    # The independent BFS itself: known optimal lengths.
    assert _bfs_length(INIT, GOAL) == 6
    assert _bfs_length(INIT, ["(on red blue)"]) == 0
    assert _bfs_length(towers_to_facts([["a", "b", "c"]]), ["(on a b)", "(on b c)"]) == 6
    assert _bfs_length(towers_to_facts([["a"]], holding="b"), ["(on b a)"]) == 1
    assert _bfs_length(towers_to_facts([["a", "b"]]), ["(ontable b)", "(handempty)"]) == 2
