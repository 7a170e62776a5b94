"""PlanBench's Blocksworld plan-generation benchmark (Valmeekam et al., NeurIPS 2023; arXiv 2206.10498).

PlanBench (https://github.com/karthikv792/LLMs-Planning, MIT licence) holds the 500-problem evaluation set
that papers report as "Blocksworld": the instances of its ``generated_basic`` set, asked with a one-shot
prompt (an example problem and its plan, then the problem; instances 2–501) or a zero-shot prompt (the
problem, then "What is the plan to achieve my goal? Just give the actions in the plan."; instances 1–500).
PlanBench is not on PyPI, so it loads from

- a local checkout of the repository (``git clone https://github.com/karthikv792/LLMs-Planning``), given as
  ``path=`` or by the environment variable ``TREECOT_PLANBENCH``: the prompts of
  ``plan-bench/prompts/blocksworld/task_1_plan_generation.json`` and the PDDL instances of
  ``plan-bench/instances/blocksworld/generated_basic/``;
- or, online, a Hub dataset holding the same prompt file's rows (columns ``domain``, ``instance_id``,
  ``query``, ...): ``tasksource/planbench``, config ``task_1_plan_generation`` by default (environment
  variable ``TREECOT_PLANBENCH_HUB`` or ``hub_id=``). The initial state and goal are then read back from
  the English statement of the prompt.

Every problem keeps PlanBench's prompt text byte for byte as its ``question``. The one-shot texts are the
repository's; PlanBench's zero-shot texts are not stored as a file in the repository, so they are rebuilt
from the same pieces (domain introduction, the problem's statement, the zero-shot question) and checked
against the zero-shot queries recorded in PlanBench's published results (`tests/tasks/test_planbench.py`).

PlanBench also publishes its models' raw responses with VAL's verdict on each
(``llm_planning_analysis/results/blocksworld/<model>/task_1_plan_generation*.json``);
`read_plan_generation_results` reads them, and ``benchmarks/planbench.py`` measures how often treecot's
verifier agrees with those labels.
"""

from __future__ import annotations

import ast
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from treecot.tasks.base import make_problem
from treecot.tasks.blocksworld import (
    COLOURS,
    Action,
    BlocksworldTask,
    format_fact,
    optimal_plan,
    parse_fact,
    parse_plan,
    simulate,
    to_pddl_domain,
    to_pddl_problem,
)
from treecot.tasks.sources import SourceNotAvailableError

if TYPE_CHECKING:
    from datasets import Dataset

PLANBENCH_REPO = "https://github.com/karthikv792/LLMs-Planning"
PLANBENCH_LICENSE = "MIT"
#: Environment variable naming a local PlanBench checkout.
PATH_ENV = "TREECOT_PLANBENCH"
#: Environment variable naming the Hub dataset to read when no checkout is given.
HUB_ENV = "TREECOT_PLANBENCH_HUB"
DEFAULT_HUB_ID = "tasksource/planbench"
DEFAULT_HUB_CONFIG = "task_1_plan_generation"
#: The prompt variants of PlanBench's plan-generation task.
PROMPT_TYPES = ("oneshot", "zeroshot")
#: PlanBench's PDDL objects are letters; its English names them by colour (``configs/blocksworld.yaml``).
OBJECT_COLOURS: dict[str, str] = dict(zip("abcdefghijkl", COLOURS))
#: Instance files relative to a checkout (the second is the newer copy of the same files).
INSTANCE_DIRS = (
    "plan-bench/instances/blocksworld/generated_basic",
    "llm_planning_analysis/instances/blocksworld/generated_basic",
)
PROMPTS_FILE = "plan-bench/prompts/blocksworld/task_1_plan_generation.json"
ZERO_SHOT_QUESTION = "What is the plan to achieve my goal? Just give the actions in the plan."
ONE_SHOT_ENDING = "My plan is as follows:\n\n[PLAN]"
_STATEMENT = "\n[STATEMENT]\n"
#: Size caps: a prompt file, an instance file and one response are far below these in PlanBench.
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_INSTANCE_BYTES = 64 * 1024


class PlanBenchFormatError(ValueError):
    """A PlanBench file or row that does not read as expected; the message names it."""


# --------------------------------------------------------------------------------------------------
# PDDL instances and English statements
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\(|\)|[^\s()]+")


def _sexpr(text: str) -> list:
    """The first balanced s-expression of `text` as nested lists of lower-case atoms (PDDL comments removed)."""
    text = re.sub(r";[^\n]*", "", text).lower()
    stack: list[list] = [[]]
    for token in _TOKEN_RE.findall(text):
        if token == "(":
            if len(stack) > 16:
                raise PlanBenchFormatError("PDDL nested too deeply")
            stack.append([])
        elif token == ")":
            if len(stack) == 1:
                raise PlanBenchFormatError("unbalanced ')' in PDDL")
            done = stack.pop()
            stack[-1].append(done)
            if len(stack) == 1:
                return done
        else:
            stack[-1].append(token)
    raise PlanBenchFormatError("unbalanced '(' in PDDL (no complete (define ...) found)")


def _colour(name: str, where: str) -> str:
    if name not in OBJECT_COLOURS:
        raise PlanBenchFormatError(f"{where}: object {name!r} is not one of PlanBench's a..l")
    return OBJECT_COLOURS[name]


def _pddl_fact(item, where: str) -> str:
    if not isinstance(item, list) or not item or not all(isinstance(t, str) for t in item):
        raise PlanBenchFormatError(f"{where}: not a ground fact: {item!r:.80}")
    fact = (item[0], *(_colour(a, where) for a in item[1:]))
    try:
        return format_fact(parse_fact(fact))
    except ValueError as err:
        raise PlanBenchFormatError(f"{where}: {err}") from None


@dataclass(frozen=True)
class PlanBenchInstance:
    """One PlanBench Blocksworld problem, with PlanBench's letters mapped to colours.

    blocks: the problem's blocks (colours, in the order of the PDDL objects);
    init, goal: PDDL facts (``"(on red blue)"``), sorted.
    """

    blocks: tuple[str, ...]
    init: tuple[str, ...]
    goal: tuple[str, ...]


def parse_pddl_instance(text: str, where: str = "PDDL problem") -> PlanBenchInstance:
    """Read a PlanBench Blocksworld problem file (``instance-N.pddl``); `PlanBenchFormatError` if unreadable."""
    if len(text) > MAX_INSTANCE_BYTES:
        raise PlanBenchFormatError(f"{where}: larger than {MAX_INSTANCE_BYTES} bytes")
    tree = _sexpr(text)
    if not tree or tree[0] != "define":
        raise PlanBenchFormatError(f"{where}: not a (define (problem ...) ...) form")
    sections = {
        item[0]: item[1:] for item in tree[1:] if isinstance(item, list) and item and isinstance(item[0], str)
    }
    for key in (":objects", ":init", ":goal"):
        if key not in sections:
            raise PlanBenchFormatError(f"{where}: no {key} section")
    objects = tuple(_colour(o, where) for o in sections[":objects"] if isinstance(o, str))
    init = sorted(_pddl_fact(f, where) for f in sections[":init"])
    goal_items = sections[":goal"]
    if len(goal_items) == 1 and isinstance(goal_items[0], list) and goal_items[0][:1] == ["and"]:
        goal_items = goal_items[0][1:]
    goal = sorted(_pddl_fact(f, where) for f in goal_items)
    return PlanBenchInstance(blocks=objects, init=tuple(init), goal=tuple(goal))


_COLOUR_RE = "|".join(COLOURS)
_FACT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("on", re.compile(rf"the ({_COLOUR_RE}) block is on top of the ({_COLOUR_RE}) block")),
    ("ontable", re.compile(rf"the ({_COLOUR_RE}) block is on the table")),
    ("clear", re.compile(rf"the ({_COLOUR_RE}) block is clear")),
    ("handempty", re.compile(r"the hand is empty")),
    ("holding", re.compile(rf"the hand is currently holding (?:the )?({_COLOUR_RE}) block")),
)
_SEPARATOR_RE = re.compile(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+)")


def parse_facts_text(text: str, where: str = "statement") -> list[str]:
    """PlanBench's English list of facts ("the red block is clear, ... and the hand is empty") as PDDL facts.

    Every word must belong to a fact or a separator: an unreadable fragment raises `PlanBenchFormatError`.
    """
    text = text.strip().rstrip(".").strip()
    facts: list[str] = []
    pos = 0
    while pos < len(text):
        if facts:
            sep = _SEPARATOR_RE.match(text, pos)
            if sep is None or sep.end() == pos:
                raise PlanBenchFormatError(f"{where}: cannot read {text[pos : pos + 60]!r}")
            pos = sep.end()
        for pred, pattern in _FACT_PATTERNS:
            match = pattern.match(text, pos)
            if match is not None:
                facts.append(format_fact((pred, *match.groups())))
                pos = match.end()
                break
        else:
            raise PlanBenchFormatError(f"{where}: cannot read {text[pos : pos + 60]!r} as a fact")
    return sorted(facts)


_STATEMENT_RE = re.compile(
    r"As initial conditions I have that, (?P<init>.*?)\.\s*\nMy goal is to have that (?P<goal>.*?)\.\s*(?:\n|$)",
    re.DOTALL,
)


@dataclass(frozen=True)
class Statement:
    """One ``[STATEMENT]`` of a PlanBench prompt: its exact text, facts, and the plan after it (one-shot
    examples), as written between ``[PLAN]`` and ``[PLAN END]`` (None when the prompt asks for it)."""

    text: str
    init: tuple[str, ...]
    goal: tuple[str, ...]
    plan_text: str | None


def split_query(query: str, where: str = "query") -> tuple[str, list[Statement]]:
    """A PlanBench plan-generation prompt as (domain introduction, statements in order)."""
    if _STATEMENT not in query:
        raise PlanBenchFormatError(f"{where}: no [STATEMENT] section")
    intro, *parts = query.split(_STATEMENT)
    statements = []
    for part in parts:
        match = _STATEMENT_RE.match(part)
        if match is None:
            raise PlanBenchFormatError(f"{where}: a [STATEMENT] without initial conditions and goal")
        text = part[: match.end()].rstrip("\n")
        plan_text = None
        if "[PLAN]" in part and "[PLAN END]" in part:
            plan_text = part.split("[PLAN]", 1)[1].split("[PLAN END]", 1)[0]
        statements.append(
            Statement(
                text=text,
                init=tuple(parse_facts_text(match.group("init"), where)),
                goal=tuple(parse_facts_text(match.group("goal"), where)),
                plan_text=plan_text,
            )
        )
    return intro, statements


def zero_shot_query(intro: str, statement: str) -> str:
    """PlanBench's zero-shot plan-generation prompt for one problem statement."""
    return f"{intro}{_STATEMENT}{statement}\n\n{ZERO_SHOT_QUESTION}"


def to_colour_plan(plan: str | Iterable[str]) -> list[str]:
    """A PlanBench plan (``"(unstack b c)\\n(put-down b)"`` or a list, letters or colours) in colour PDDL."""
    lines = plan.splitlines() if isinstance(plan, str) else list(plan)
    out = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        action = Action.from_pddl(line)
        out.append(Action(action.name, tuple(OBJECT_COLOURS.get(a, a) for a in action.args)).pddl)
    return out


# --------------------------------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------------------------------


def _find_checkout_file(root: Path, relative: str) -> Path | None:
    """`relative` under a checkout `root`, also when `root` is the checkout's ``plan-bench`` folder."""
    for base in (root, root.parent):
        candidate = base / relative
        if candidate.is_file():
            return candidate
    if relative.startswith("plan-bench/"):
        candidate = root / relative[len("plan-bench/") :]
        if candidate.is_file():
            return candidate
    return None


def _find_instance(root: Path, instance_id: int) -> Path | None:
    for folder in INSTANCE_DIRS:
        found = _find_checkout_file(root, f"{folder}/instance-{instance_id}.pddl")
        if found is not None:
            return found
    return None


def _read_json(path: Path) -> object:
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise PlanBenchFormatError(
            f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a PlanBench file has"
        )
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PlanBenchFormatError(f"{path}: not JSON ({err})") from None


def _int(value, where: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise PlanBenchFormatError(f"{where}: not an integer: {value!r:.40}") from None


@dataclass
class _Entry:
    instance_id: int
    statement: Statement
    query: str
    example_ids: list[int]
    planbench_plan: list[str]


def _entries(rows: Iterable[Mapping], prompt_type: str, where: str) -> list[_Entry]:
    """Problems of PlanBench's one-shot prompt rows, in the variant `prompt_type`.

    One-shot: each row as it is. Zero-shot: one problem per instance that appears in the rows (as the
    problem or as the example), its statement under the zero-shot question, instances 1–500 as in
    PlanBench's zero-shot runs (the one-shot rows go up to 501).
    """
    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown PlanBench prompt type {prompt_type!r}; choose one of {list(PROMPT_TYPES)}")
    one_shot: list[_Entry] = []
    statements: dict[int, tuple[Statement, list[str]]] = {}
    intro = None
    for row in rows:
        instance_id = _int(row.get("instance_id"), f"{where}: instance_id")
        here = f"{where}: instance {instance_id}"
        query = row.get("query")
        if not isinstance(query, str):
            raise PlanBenchFormatError(f"{here}: no query text")
        row_intro, found = split_query(query, here)
        intro = intro if intro is not None else row_intro
        examples = [_int(e, f"{here}: example_instance_ids") for e in (row.get("example_instance_ids") or [])]
        if len(found) != len(examples) + 1:
            raise PlanBenchFormatError(f"{here}: {len(found)} statements for {len(examples)} example(s)")
        gold = row.get("ground_truth_plan")
        plan = to_colour_plan(gold) if isinstance(gold, str) and gold.strip() else []
        one_shot.append(_Entry(instance_id, found[-1], query, examples, plan))
        statements.setdefault(instance_id, (found[-1], plan))
        for example_id, statement in zip(examples, found[:-1]):
            if example_id not in statements:
                read = parse_plan(statement.plan_text or "")
                statements[example_id] = (statement, read.pddl)
    if prompt_type == "oneshot":
        return sorted(one_shot, key=lambda e: e.instance_id)
    if intro is None:
        return []
    ids = sorted(i for i in statements if i <= 500)
    return [
        _Entry(i, statements[i][0], zero_shot_query(intro, statements[i][0].text), [], statements[i][1])
        for i in ids
    ]


def _problem(task: str, entry: _Entry, instance: PlanBenchInstance, prompt_type: str, origin: str) -> dict:
    plan = optimal_plan(instance.init, instance.goal)
    meta = {
        "n_blocks": len(instance.blocks),
        "init": list(instance.init),
        "goal": list(instance.goal),
        "optimal_length": len(plan),
        "pddl_domain": to_pddl_domain(),
        "pddl_problem": to_pddl_problem(
            instance.init, instance.goal, name=f"planbench-{entry.instance_id}", objects=instance.blocks
        ),
        "seed": entry.instance_id,
        "split": "test",
        "source": origin,
        "instance_id": entry.instance_id,
        "prompt_type": prompt_type,
        "example_instance_ids": list(entry.example_ids),
        "planbench_plan": list(entry.planbench_plan),
    }
    return make_problem(task, entry.query, "\n".join(a.pddl for a in plan), meta)


def _check_facts(entry: _Entry, instance: PlanBenchInstance, where: str) -> None:
    if set(entry.statement.init) != set(instance.init) or set(entry.statement.goal) != set(instance.goal):
        raise PlanBenchFormatError(
            f"{where}: instance {entry.instance_id}: the prompt's statement and the PDDL file disagree"
        )


def problems_from_checkout(
    path: str | os.PathLike, prompt_type: str = "oneshot", task: str = "blocksworld"
) -> list[dict]:
    """PlanBench's plan-generation problems from a local checkout (`prompt_type` "oneshot" or "zeroshot").

    Facts come from the PDDL instance files and must match the prompt's English statement.
    Raises `SourceNotAvailableError` when `path` holds no PlanBench prompts, `PlanBenchFormatError` on
    unreadable files.
    """
    root = Path(path).expanduser()
    prompts = _find_checkout_file(root, PROMPTS_FILE)
    if prompts is None:
        raise SourceNotAvailableError(
            f"no PlanBench checkout at {str(root)!r}: {PROMPTS_FILE} not found (git clone {PLANBENCH_REPO})"
        )
    data = _read_json(prompts)
    rows = data.get("instances") if isinstance(data, Mapping) else None
    if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
        raise PlanBenchFormatError(f"{prompts}: no list of 'instances'")
    if isinstance(data, Mapping) and data.get("domain", "blocksworld") != "blocksworld":
        raise PlanBenchFormatError(f"{prompts}: domain {data.get('domain')!r}, expected 'blocksworld'")
    origin = f"planbench:{root}"
    out = []
    for entry in _entries(rows, prompt_type, str(prompts)):
        file = _find_instance(root, entry.instance_id)
        if file is None:
            raise PlanBenchFormatError(
                f"{root}: instance-{entry.instance_id}.pddl not found in {INSTANCE_DIRS[0]}"
            )
        instance = parse_pddl_instance(file.read_text(encoding="utf-8", errors="replace"), str(file))
        _check_facts(entry, instance, str(file))
        out.append(_problem(task, entry, instance, prompt_type, origin))
    return out


def problems_from_rows(
    rows: Iterable[Mapping], prompt_type: str = "oneshot", task: str = "blocksworld", origin: str = "hub"
) -> list[dict]:
    """PlanBench problems from rows shaped like its prompt file's (``instance_id``, ``query``,
    ``example_instance_ids``, ``ground_truth_plan``; rows of other domains than ``blocksworld`` and of
    other prompt types than one-shot are skipped). The facts are read from each prompt's statement."""
    kept = [
        r
        for r in rows
        if r.get("domain", "blocksworld") == "blocksworld" and r.get("prompt_type", "oneshot") == "oneshot"
    ]
    out = []
    for entry in _entries(kept, prompt_type, origin):
        named = {arg for fact in entry.statement.init for arg in parse_fact(fact)[1:]}
        blocks = tuple(c for c in COLOURS if c in named)
        instance = PlanBenchInstance(blocks=blocks, init=entry.statement.init, goal=entry.statement.goal)
        out.append(_problem(task, entry, instance, prompt_type, origin))
    return out


def load_planbench(
    path: str | os.PathLike | None = None,
    prompt_type: str = "oneshot",
    limit: int | None = None,
    *,
    hub_id: str | None = None,
    task: str = "blocksworld",
) -> Dataset:
    """PlanBench's Blocksworld plan-generation problems as a `datasets.Dataset` of Problem records.

    Args:
        path (`str | os.PathLike`, *optional*):
            The PlanBench checkout read first (default ``$TREECOT_PLANBENCH``).
        prompt_type (`str`, *optional*, defaults to `"oneshot"`):
            The PlanBench prompt type: "oneshot" or "zeroshot".
        limit (`int`, *optional*):
            Keeps the first rows (ordered by PlanBench's instance number).
        hub_id (`str`, *optional*):
            The Hub dataset read when no checkout is found (default ``$TREECOT_PLANBENCH_HUB``, else
            ``tasksource/planbench``).
        task (`str`, *optional*, defaults to `"blocksworld"`):
            The PlanBench task.

    Raises:
        `SourceNotAvailableError`: When neither can be read.
    """
    from datasets import Dataset

    if prompt_type not in PROMPT_TYPES:
        raise ValueError(f"unknown PlanBench prompt type {prompt_type!r}; choose one of {list(PROMPT_TYPES)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    path = path if path is not None else os.environ.get(PATH_ENV) or None
    if path is not None:
        rows = problems_from_checkout(path, prompt_type, task)
    else:
        hub_id = hub_id or os.environ.get(HUB_ENV) or DEFAULT_HUB_ID
        try:
            from datasets import load_dataset

            hub_rows = load_dataset(hub_id, DEFAULT_HUB_CONFIG, split="train")
        except Exception as err:  # noqa: BLE001 - any Hub failure means "not available"
            raise SourceNotAvailableError(
                f"PlanBench: no checkout given (argument path or ${PATH_ENV}) and the Hub dataset {hub_id!r} "
                f"could not be loaded ({type(err).__name__}: {str(err)[:200]}). Offline, clone "
                f"{PLANBENCH_REPO} and set {PATH_ENV} to its folder."
            ) from err
        rows = problems_from_rows(hub_rows, prompt_type, task, origin=f"hub:{hub_id}")
    if limit is not None:
        rows = rows[:limit]
    return Dataset.from_list(rows)


def describe_planbench() -> dict:
    """PlanBench as a row of ``treecot sources`` (the shape of `treecot.tasks.sources.describe_sources`):
    offline when ``$TREECOT_PLANBENCH`` names a checkout that holds its prompts. ``offline_missing`` says,
    when it is not, what to do about it."""
    path = os.environ.get(PATH_ENV) or ""
    found = bool(path) and _find_checkout_file(Path(path).expanduser(), PROMPTS_FILE) is not None
    if not path:
        missing = f"no (git clone {PLANBENCH_REPO}, set {PATH_ENV} to it)"
    else:
        missing = f"no ({PATH_ENV}={path} holds no {PROMPTS_FILE})"
    return {
        "name": "planbench",
        "split": "test",
        "rows": 500,
        "offline": found,
        "offline_source": f"{PATH_ENV}={path}"
        if path
        else f"a checkout of {PLANBENCH_REPO} named by {PATH_ENV}",
        "offline_missing": None if found else missing,
        "hub_id": DEFAULT_HUB_ID,
        "description": "PlanBench Blocksworld plan generation, one-shot / zero-shot prompts (Valmeekam et al., 2023)",
    }


# --------------------------------------------------------------------------------------------------
# PlanBench's published responses with VAL labels
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LabelledResponse:
    """One model response of PlanBench's results, with VAL's verdict on PlanBench's reading of it."""

    model: str
    prompt_type: str
    instance_id: int
    response: str
    label: bool
    planbench_plan: tuple[str, ...]


def _literal(value):
    """Old result files store Python reprs (``"'text'"``, ``"True"``, ``"['(stack a b)']"``)."""
    if isinstance(value, str) and value[:1] in ("'", '"', "["):
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
    return value


def read_plan_generation_results(
    path: str | os.PathLike, model: str | None = None
) -> Iterator[LabelledResponse]:
    """The labelled responses of one PlanBench results file (``task_1_plan_generation*.json``).

    Reads both layouts PlanBench used (``llm_correct`` booleans; older ``correct`` strings with Python
    reprs); entries without a label or a response are skipped. `model` defaults to the file's ``engine``.
    """
    path = Path(path)
    data = _read_json(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("instances"), list):
        raise PlanBenchFormatError(f"{path}: no list of 'instances'")
    model = model or str(data.get("engine") or path.parent.name)
    prompt_type = str(data.get("prompt_type") or ("zeroshot" if "zero_shot" in path.name else "oneshot"))
    for item in data["instances"]:
        if not isinstance(item, Mapping):
            continue
        label = item.get("llm_correct", item.get("correct"))
        label = _literal(label) if isinstance(label, str) else label
        response = _literal(item.get("llm_raw_response"))
        if not isinstance(label, bool) or not isinstance(response, str):
            continue
        plan = _literal(item.get("extracted_llm_plan"))
        if isinstance(plan, str):
            plan = plan.splitlines()
        try:
            planbench_plan = tuple(to_colour_plan(plan or []))
        except (ValueError, TypeError):
            planbench_plan = ()
        yield LabelledResponse(
            model=model,
            prompt_type=prompt_type,
            instance_id=_int(item.get("instance_id"), f"{path}: instance_id"),
            response=response,
            label=label,
            planbench_plan=planbench_plan,
        )


def planbench_plan_valid(problem: Mapping, plan: Iterable[str]) -> bool:
    """Whether PlanBench's own extracted plan (colour PDDL) solves `problem` in treecot's simulator."""
    meta = problem["meta"]
    try:
        return simulate(meta["init"], list(plan), meta["goal"]).solved
    except ValueError:
        return False


# --------------------------------------------------------------------------------------------------
# The Task
# --------------------------------------------------------------------------------------------------


class PlanBenchTask(BlocksworldTask):
    """PlanBench's 500 Blocksworld plan-generation problems, verified like `BlocksworldTask`.

    Args:
        path (`str | os.PathLike`, *optional*):
            A local PlanBench checkout (default ``$TREECOT_PLANBENCH``).
        hub_id (`str`, *optional*):
            The Hub dataset read when no checkout is given (default ``$TREECOT_PLANBENCH_HUB``, else
            ``tasksource/planbench``).
        prompt_type (`str`, *optional*, defaults to `"oneshot"`):
            "oneshot" (instances 2–501) or "zeroshot" (instances 1–500).

    The question is PlanBench's prompt text unchanged; as in PlanBench, no system prompt is sent unless a
    prompt contract adds one. Only a ``test`` split exists. Training data comes from ``blocksworld``'s
    generator (`BlocksworldTask`), whose train split never overlaps a benchmark's problems by construction.
    """

    name = "planbench"
    splits = ("test",)
    default_sizes: dict[str, int] = {"test": 500}
    #: PlanBench sends its prompt alone; the answer-format instructions are in the prompt itself.
    system_prompt = ""

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        hub_id: str | None = None,
        prompt_type: str = "oneshot",
    ):
        super().__init__()
        if prompt_type not in PROMPT_TYPES:
            raise ValueError(
                f"unknown PlanBench prompt type {prompt_type!r}; choose one of {list(PROMPT_TYPES)}"
            )
        self.path = path
        self.hub_id = hub_id
        self.prompt_type = prompt_type

    def prompt(self, problem: dict) -> list[dict]:
        """PlanBench's prompt as the only (user) message."""
        return [{"role": "user", "content": problem["question"]}]

    def load(self, split: str = "test", limit: int | None = None, n: int | None = None, **kwargs) -> Dataset:
        """The PlanBench problems; `n` and `limit` both cap the count. Keyword arguments override the
        constructor's (`path`, `hub_id`, `prompt_type`); ``source`` may only be "planbench"."""
        source = kwargs.pop("source", "planbench")
        if source != "planbench":
            raise ValueError(f"task 'planbench' loads only source='planbench', got {source!r}")
        settings = {"path": self.path, "hub_id": self.hub_id, "prompt_type": self.prompt_type, **kwargs}
        return super().load(split, limit, n, source="planbench", **settings)


__all__ = [
    "DEFAULT_HUB_ID",
    "HUB_ENV",
    "OBJECT_COLOURS",
    "PATH_ENV",
    "PROMPT_TYPES",
    "LabelledResponse",
    "PlanBenchFormatError",
    "PlanBenchInstance",
    "PlanBenchTask",
    "Statement",
    "describe_planbench",
    "load_planbench",
    "parse_facts_text",
    "parse_pddl_instance",
    "planbench_plan_valid",
    "problems_from_checkout",
    "problems_from_rows",
    "read_plan_generation_results",
    "split_query",
    "to_colour_plan",
    "zero_shot_query",
]
