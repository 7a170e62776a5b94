"""treecot's math verifier against math-verify's public regression suite.

    python -m benchmarks.math_verify                # all 268 cases (~10 s on 2 cores); writes results/math_verify.json
    python -m benchmarks.math_verify --no-write -v  # print every disagreement, write nothing
    python -m benchmarks.math_verify --extract GIT_DIR [--commit SHA]
                                                    # rebuild the fixture from a git mirror of the suite

It grades with whatever math-verify the verifier's worker loads (`treecot.tasks.math.math_verify_dir`,
``$TREECOT_MATH_VERIFY_DIR`` to point elsewhere); the results record its version.

The cases are the parametrized ``(gold, pred, expected)`` rows of huggingface/Math-Verify's
``tests/{test_all,test_open_thoughts,test_numina_cases,test_yujianll,test_boxed,test_strict}.py``
(commit `SUITE_COMMIT`), stored in ``tests/fixtures/data/math_verify/cases.jsonl`` (source, commit and licence in
that folder's README). ``--extract`` reads them with `ast` (nothing of the suite is executed).

A case is *in scope* when

- its options are the ones treecot's worker uses (math-verify's defaults: ``strict=True``,
  ``allow_set_relation_comp=False``, ``float_rounding=6``), and
- its prediction carries a final-answer marker (`treecot.tasks.math.extract_answer` finds a
  ``\\boxed{}``, an ``<answer>`` tag or "The answer is …" / "Final answer: …"), or is a *bare
  expression*: one math span around the whole prediction (``$…$``, ``$$…$$``, ``\\(…\\)``, ``\\[…\\]``)
  or, without math delimiters, at most two words (a number and its unit: ``28 percent``). Prose
  without a marker ("We find that $x \\lt 3$.") is out of scope: treecot reads answers only from
  markers.

treecot's verdict on a marked prediction is ``MATH500Task().verify(pred, {"reference": gold})``; on a
bare one it is ``check_equivalence(pred, gold_answer)`` (the prediction is the answer). The gold is
read by ``MathTask.gold_answer`` as for any reference.

Figures: ``cases`` (all rows), ``in_scope``, ``agreement`` (share of in-scope cases where treecot's
verdict equals the suite's), ``false_positives`` (treecot says correct, the suite says wrong),
``false_negatives``, ``marker_cases`` / ``bare_cases`` and their agreements, ``judged_suite_wrong``
(in-scope cases ``tests/fixtures/data/math_verify/judged.json`` lists as "suite wrong": the figures above count
them as they are) and ``agreement_excluding_judged`` (without them), ``unexplained_disagreements``
(disagreements that file does not list, as "suite wrong" or as a known "treecot miss": should be 0).
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

COMMAND = "python -m benchmarks.math_verify"
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "data" / "math_verify"
CASES = DATA / "cases.jsonl"
JUDGED = DATA / "judged.json"

SUITE_REPO = "huggingface/Math-Verify"
SUITE_COMMIT = "5d148cfaaf99214c2e4ffb4bc497ab042c592a7a"
SUITE_FILES = (
    "tests/test_all.py",
    "tests/test_open_thoughts.py",
    "tests/test_numina_cases.py",
    "tests/test_yujianll.py",
    "tests/test_boxed.py",
    "tests/test_strict.py",
)
#: math-verify's `verify` defaults, which treecot's worker uses.
TREECOT_OPTIONS = {"strict": True, "allow_set_relation_comp": False, "precision": 6}
_EXPECTED_NAMES = ("expected", "result")


# --------------------------------------------------------------------------------------------------
# Fixture extraction (static: the suite's files are parsed, never run)


def _literal(node: ast.AST):
    """A literal value of the suite's source; f-strings without placeholders are plain strings."""
    if isinstance(node, ast.JoinedStr):
        if all(isinstance(v, ast.Constant) for v in node.values):
            return "".join(v.value for v in node.values)
        raise ValueError("an f-string computed by the test")
    return ast.literal_eval(node)


def _call_options(fn: ast.FunctionDef) -> dict[str, str]:
    """Keyword arguments of the comparison call in a test body, as source text."""
    options: dict[str, str] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("compare_strings", "verify"):
            for kw in node.keywords:
                if kw.arg:
                    options[kw.arg] = ast.unparse(kw.value)
    return options


def extract_cases(git_dir: str, commit: str = SUITE_COMMIT) -> tuple[list[dict], list[dict]]:
    """(cases, skipped): every parametrized row of `SUITE_FILES` at `commit` of the mirror `git_dir`."""
    cases: list[dict] = []
    skipped: list[dict] = []
    for path in SUITE_FILES:
        source = subprocess.run(
            ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for fn in ast.parse(source).body:
            if not isinstance(fn, ast.FunctionDef):
                continue
            for dec in fn.decorator_list:
                if not (isinstance(dec, ast.Call) and getattr(dec.func, "attr", None) == "parametrize"):
                    continue
                names = [n.strip() for n in ast.literal_eval(dec.args[0]).split(",")]
                call = _call_options(fn)
                for index, row in enumerate(dec.args[1].elts):
                    case_id = f"{path.rsplit('/', 1)[-1]}::{fn.name}[{index}]"
                    try:
                        values = dict(zip(names, (_literal(v) for v in row.elts)))
                    except ValueError as err:
                        skipped.append({"id": case_id, "why": str(err)})
                        continue
                    expected = next(values[n] for n in _EXPECTED_NAMES if n in values)
                    options = {
                        "match_types": ast.literal_eval(call["match_types"])
                        if "match_types" in call
                        else ["latex", "expr"],
                        "strict": bool(values.get("strict", True)),
                        "allow_set_relation_comp": bool(values.get("allow_set_relation_comp", False)),
                        "precision": int(values["precision"])
                        if "precision" in values
                        else int(ast.literal_eval(call.get("precision", "6"))),
                    }
                    cases.append(
                        {
                            "id": case_id,
                            "gold": values["gold"],
                            "pred": values["pred"],
                            "expected": int(expected),
                            "options": options,
                        }
                    )
    return cases, skipped


# --------------------------------------------------------------------------------------------------
# Scope and verdicts

_DELIMITED = (("$$", "$$"), ("\\[", "\\]"), ("\\(", "\\)"), ("$", "$"))
_DELIMITERS = re.compile(r"(?<!\\)\$|\\[()\[\]]")
_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")


def is_bare_expression(pred: str) -> bool:
    """One math span around the whole prediction, or no delimiters and at most two words (number + unit)."""
    s = pred.strip()
    if not s:
        return False
    for opener, closer in _DELIMITED:
        if s.startswith(opener) and s.endswith(closer) and len(s) >= len(opener) + len(closer):
            inner = s[len(opener) : len(s) - len(closer)]
            return bool(inner.strip()) and not _DELIMITERS.search(inner)
    return not _DELIMITERS.search(s) and len(s.split()) <= 2


def case_scope(case: dict) -> str:
    """``marker``, ``bare``, or why the case is out of scope."""
    from treecot.tasks.math import extract_answer

    options = case["options"]
    for name, value in TREECOT_OPTIONS.items():
        if options[name] != value:
            return f"option {name}={options[name]!r} (treecot uses {value!r})"
    if extract_answer(case["pred"]) is not None:
        return "marker"
    if is_bare_expression(case["pred"]):
        return "bare"
    return "prose without a final-answer marker"


@dataclass
class Outcome:
    id: str
    scope: str
    expected: int
    correct: bool
    answer: str | None
    reason: str


def treecot_verdict(case: dict, scope: str, task=None) -> Outcome:
    """treecot's verdict on one in-scope case (see the module docstring)."""
    from treecot.tasks.math import MATH500Task, check_equivalence

    task = task or MATH500Task()
    problem = {"id": case["id"], "task": "math500", "question": "", "reference": case["gold"], "meta": {}}
    if scope == "marker":
        verdict = task.verify(case["pred"], problem)
        return Outcome(
            case["id"], scope, case["expected"], verdict.correct, verdict.extracted, verdict.reason
        )
    result = check_equivalence(case["pred"], task.gold_answer(problem), timeout=task.timeout)
    return Outcome(case["id"], scope, case["expected"], result.equivalent, case["pred"], result.reason)


def load_cases(path: Path = CASES) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_judged(path: Path = JUDGED) -> dict[str, dict]:
    """Case id → ``{"kind": "suite wrong" | "treecot miss", "why": …}`` for the disagreements explained."""
    return {item["id"]: item for item in json.loads(path.read_text(encoding="utf-8"))}


def evaluate(cases: list[dict], judged: dict[str, dict] | None = None) -> tuple[dict, list[Outcome]]:
    """Figures (see the module docstring) and the outcome of every in-scope case."""
    judged = judged or {}
    outcomes: list[Outcome] = []
    out_of_scope: dict[str, int] = {}
    for case in cases:
        scope = case_scope(case)
        if scope not in ("marker", "bare"):
            out_of_scope[scope] = out_of_scope.get(scope, 0) + 1
            continue
        outcomes.append(treecot_verdict(case, scope))

    def agreement(items: list[Outcome]) -> float:
        return round(sum(o.correct == bool(o.expected) for o in items) / len(items), 4) if items else 0.0

    suite_wrong = {i for i, item in judged.items() if item["kind"] == "suite wrong"}
    kept = [o for o in outcomes if o.id not in suite_wrong]
    figures = {
        "cases": len(cases),
        "in_scope": len(outcomes),
        "agreement": agreement(outcomes),
        "false_positives": sum(o.correct and not o.expected for o in outcomes),
        "false_negatives": sum(o.expected and not o.correct for o in outcomes),
        "marker_cases": sum(o.scope == "marker" for o in outcomes),
        "marker_agreement": agreement([o for o in outcomes if o.scope == "marker"]),
        "bare_cases": sum(o.scope == "bare" for o in outcomes),
        "bare_agreement": agreement([o for o in outcomes if o.scope == "bare"]),
        "suite_positive_share": round(sum(o.expected for o in outcomes) / len(outcomes), 4)
        if outcomes
        else 0.0,
        "judged_suite_wrong": sum(o.id in suite_wrong for o in outcomes),
        "agreement_excluding_judged": agreement(kept),
        "unexplained_disagreements": sum(
            o.correct != bool(o.expected) and o.id not in judged for o in outcomes
        ),
        "out_of_scope_prose": out_of_scope.get("prose without a final-answer marker", 0),
        "out_of_scope_options": sum(v for k, v in out_of_scope.items() if k.startswith("option")),
    }
    return figures, outcomes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--extract", metavar="GIT_DIR", help="rebuild the fixture from a git mirror of the suite"
    )
    parser.add_argument("--commit", default=SUITE_COMMIT)
    parser.add_argument("--sample", type=int, default=0, help="only N random cases (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-write", action="store_true", help="print the figures, write no results file")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every disagreement")
    args = parser.parse_args(argv)

    if args.extract:
        cases, skipped = extract_cases(args.extract, args.commit)
        DATA.mkdir(parents=True, exist_ok=True)
        with open(CASES, "w", encoding="utf-8") as f:
            for case in cases:
                f.write(json.dumps(case, ensure_ascii=False) + "\n")
        print(f"wrote {len(cases)} cases to {CASES.relative_to(ROOT)}; skipped {len(skipped)}: {skipped}")
        return 0

    from treecot.tasks.math import math_verify_versions

    cases = load_cases()
    if args.sample:
        cases = random.Random(args.seed).sample(cases, min(args.sample, len(cases)))
    judged = load_judged()
    start = time.perf_counter()
    figures, outcomes = evaluate(cases, judged)
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    versions = math_verify_versions()
    figures["math_verify_version"] = versions["math-verify"]
    figures["latex2sympy2_extended_version"] = versions["latex2sympy2_extended"]
    for o in outcomes:
        if o.correct != bool(o.expected) and (args.verbose or (o.correct and not o.expected)):
            kind = "FALSE POSITIVE" if o.correct else "false negative"
            note = (
                f"  [{judged[o.id]['kind']}: {judged[o.id]['why']}]" if o.id in judged else "  [UNEXPLAINED]"
            )
            print(f"{kind}: {o.id} ({o.scope}) answer={o.answer!r:.120} reason={o.reason!r:.160}{note}")
    print(json.dumps(figures, indent=2))
    if not args.no_write and not args.sample:
        from benchmarks._common import write_results

        write_results("math_verify", figures, command=COMMAND)
    return 0


if __name__ == "__main__":
    sys.exit(main())
