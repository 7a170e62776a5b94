"""Math tasks (GSM8K, MATH, MATH-500, AIME 2024/2025): answer extraction and equivalence checking.

    >>> from treecot.tasks import get_task
    >>> task = get_task("gsm8k")
    >>> task.verify("<thinking>6 * 3 = 18</thinking>\\n<answer>The answer is: \\boxed{18}</answer>",
    ...             {"task": "gsm8k", "question": "…", "reference": "18", "meta": {}})
    Verdict(correct=True, answered=True, extracted='18', reason='equivalent (exact match)', ...)

Answers are read from the last brace-balanced ``\\boxed{}`` (or ``\\fbox{}``) together with the boxes
right before it that only separators divide from it (``\\boxed{1}, \\boxed{2}`` is the one answer
``1, 2``), unless a "The answer is …" written as math follows them; else the last
``<answer>…</answer>``; else the last "The answer is …" / "Final answer: …" (`extract_answer`). Boxes and
``<answer>`` tags are read by `treecot.tasks.answers` (`final_boxes`, `answer_tag`).

Equivalence (`check_equivalence`, `is_equivalent`) is decided in order of cost:

1. *exact*: the two strings agree after LaTeX clean-up (``\\dfrac``→``\\frac``, ``\\left``, spacing,
   ``$``, ``\\text{}``, degrees, a leading ``x =``, …);
2. *numeric*: both are plain numbers (``1,000``, ``$18``, ``18 dollars``, ``50%``, ``-\\frac{3}{4}``,
   ``0.75``; ``1000,99`` with a decimal comma against a reference ``1000.99``, while ``32, 349`` is a
   list): compared exactly for integers, else with a tolerance of rel 1e-6 / abs 1e-9; the decision is
   final, no sympy;
3. *guards*: answers longer than `MAX_ANSWER_CHARS`, nested deeper than `MAX_NESTING_DEPTH`, with an
   exponent tower higher than `MAX_EXPONENT_TOWER`, a factorial above `MAX_FACTORIAL` or a literal of
   more than `MAX_NUMBER_DIGITS` digits are "not equivalent" without being parsed;
4. *math-verify*: ``math_verify.parse``/``verify`` (LaTeX → sympy) in a persistent worker process
   under a hard wall-clock timeout (default 5 s): a check that takes longer is "not equivalent", the
   worker is killed and replaced. Verdicts (timeouts too) are cached per (answer, gold) pair. The
   worker imports math-verify ≥ `MIN_MATH_VERIFY` from its own directory (`math_verify_dir`), because
   lighteval, in the same environment, pins an older latex2sympy2_extended; `math_verify_versions`
   says what it runs.

Nothing read from a completion is ever evaluated or executed: numbers are parsed with regular
expressions and `fractions.Fraction`, and math-verify is used with its LaTeX parser only (its
``ExprExtractionConfig`` goes through ``sympy.parse_expr``, i.e. ``eval``, and is never enabled).

The package's modules, by concern: `extraction` (the final answer of a completion), `normalize` (LaTeX
clean-up and plain numbers), `guards` (limits checked before parsing), `equivalence` (the checks in order,
the verdict cache and the worker), `symbolic` (math-verify's install and the worker-side functions) and
`tasks` (the registered `Task`s).
"""

from treecot.tasks.math.equivalence import (
    DEFAULT_TIMEOUT,
    EquivalenceResult,
    check_equivalence,
    clear_cache,
    is_equivalent,
    shutdown,
)
from treecot.tasks.math.extraction import NO_ANSWER_REASON as NO_ANSWER_REASON
from treecot.tasks.math.extraction import extract_answer
from treecot.tasks.math.guards import MAX_ANSWER_CHARS as MAX_ANSWER_CHARS
from treecot.tasks.math.guards import MAX_EXPONENT_TOWER as MAX_EXPONENT_TOWER
from treecot.tasks.math.guards import MAX_FACTORIAL as MAX_FACTORIAL
from treecot.tasks.math.guards import MAX_NESTING_DEPTH as MAX_NESTING_DEPTH
from treecot.tasks.math.guards import MAX_NUMBER_DIGITS as MAX_NUMBER_DIGITS
from treecot.tasks.math.normalize import ABS_TOL as ABS_TOL
from treecot.tasks.math.normalize import REL_TOL as REL_TOL
from treecot.tasks.math.normalize import normalize_number
from treecot.tasks.math.symbolic import MATH_VERIFY_DIR_ENV as MATH_VERIFY_DIR_ENV
from treecot.tasks.math.symbolic import MIN_LATEX2SYMPY2_EXTENDED as MIN_LATEX2SYMPY2_EXTENDED
from treecot.tasks.math.symbolic import MIN_MATH_VERIFY, math_verify_dir, math_verify_versions
from treecot.tasks.math.tasks import AIME_INTEGER as AIME_INTEGER
from treecot.tasks.math.tasks import AIME_SYSTEM_PROMPT as AIME_SYSTEM_PROMPT
from treecot.tasks.math.tasks import GSM8K_SYSTEM_PROMPT as GSM8K_SYSTEM_PROMPT
from treecot.tasks.math.tasks import MATH_SYSTEM_PROMPT as MATH_SYSTEM_PROMPT
from treecot.tasks.math.tasks import PLAIN_NUMBER as PLAIN_NUMBER
from treecot.tasks.math.tasks import (
    AIME24Task,
    AIME25Task,
    GSM8KTask,
    MATH500Task,
    MATHTask,
    MathTask,
)

__all__ = [
    "AIME24Task",
    "AIME25Task",
    "DEFAULT_TIMEOUT",
    "EquivalenceResult",
    "GSM8KTask",
    "MATH500Task",
    "MATHTask",
    "MIN_MATH_VERIFY",
    "MathTask",
    "check_equivalence",
    "clear_cache",
    "extract_answer",
    "is_equivalent",
    "math_verify_dir",
    "math_verify_versions",
    "normalize_number",
    "shutdown",
]
