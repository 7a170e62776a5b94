"""Instruction following: IFEval-style synthetic prompts, IFBench, and Multi-IF-style conversations.

The verifiable-instruction checkers are not ours: IFEval's come from ``if_verifiable.ifeval`` (Google's
reference implementation, as also vendored by lighteval) and IFBench's from ``if_verifiable.ifbench``.
This module only builds prompts from them, runs them safely, and scores the results:

    >>> from treecot.tasks import get_task
    >>> task = get_task("ifeval")
    >>> problem = task.load("test", limit=1)[0]
    >>> verdict = task.verify("<answer>my response</answer>", problem)
    >>> verdict.details["strict"], verdict.details["loose"]       # one bool per instruction

Scoring follows IFEval: an instruction is followed *strictly* when its checker accepts the response,
*loosely* when it accepts any of the eight loose variants (first / last line removed, ``*`` removed);
a prompt is followed when all its instructions are. `score_ifeval` turns verdicts into the four
numbers (prompt / instruction level × strict / loose). A checker that raises counts as "not followed"
with the exception as reason. langdetect (used by the language and case checkers) is seeded so that
verdicts are reproducible. The response checked is the content of the last ``<answer>`` tag when
there is one (treecot's tagged paths), else the text after the last ``</think>``, else the whole text
(`treecot.tasks.answers.extract_response`).

Problems (`treecot.tasks.base.make_problem`) carry ``reference`` = JSON
``{"instruction_id_list": [...], "kwargs": [...]}`` (Multi-IF: a JSON list of such objects, one per
turn, cumulative) and ``meta`` = ``{source, split, index, key, language, base_task, n_instructions, supported,
unsupported_reason, turn_prompts}`` for all three tasks.

The package's modules, by concern: `checkers` (registries, running the checkers, scoring), `records` (the
Problems' meta and reference, and Hub rows), `synthetic` (generated prompts and conversations) and `tasks`.
"""

from treecot.tasks.instructions.checkers import (
    EXTRA_CONFLICTS,
    IFBENCH_NLTK_REQUIREMENTS,
    InstructionCheck,
    build_checker,
    check_instructions,
    ifbench_registry,
    ifeval_conflicts,
    ifeval_registry,
    score_ifeval,
    unsupported_reason,
    verify_instructions,
)
from treecot.tasks.instructions.checkers import loose_variants as loose_variants
from treecot.tasks.instructions.records import hub_ifeval_rows as hub_ifeval_rows
from treecot.tasks.instructions.records import hub_multi_if_rows as hub_multi_if_rows
from treecot.tasks.instructions.synthetic import BASE_TASK_FORMS as BASE_TASK_FORMS
from treecot.tasks.instructions.synthetic import BASE_TASK_TOPICS as BASE_TASK_TOPICS
from treecot.tasks.instructions.synthetic import FOLLOW_UPS as FOLLOW_UPS
from treecot.tasks.instructions.synthetic import KEEP_EARLIER as KEEP_EARLIER
from treecot.tasks.instructions.synthetic import (
    KWARG_SAMPLERS,
    base_tasks,
    generate_ifeval_problems,
    generate_multi_turn_problems,
    sample_compatible,
)
from treecot.tasks.instructions.synthetic import SINGLE_TURN_ONLY as SINGLE_TURN_ONLY
from treecot.tasks.instructions.synthetic import Sampler as Sampler
from treecot.tasks.instructions.synthetic import compose_ifeval_prompt as compose_ifeval_prompt
from treecot.tasks.instructions.synthetic import describe_instructions as describe_instructions
from treecot.tasks.instructions.tasks import SYSTEM_PROMPT as SYSTEM_PROMPT
from treecot.tasks.instructions.tasks import IFBenchTask, IFEvalTask, MultiIFTask

__all__ = [
    "EXTRA_CONFLICTS",
    "IFBENCH_NLTK_REQUIREMENTS",
    "KWARG_SAMPLERS",
    "IFBenchTask",
    "IFEvalTask",
    "InstructionCheck",
    "MultiIFTask",
    "base_tasks",
    "build_checker",
    "check_instructions",
    "generate_ifeval_problems",
    "generate_multi_turn_problems",
    "ifbench_registry",
    "ifeval_conflicts",
    "ifeval_registry",
    "sample_compatible",
    "score_ifeval",
    "unsupported_reason",
    "verify_instructions",
]
