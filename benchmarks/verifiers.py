"""Verifier throughput and worst-case latency.

    python -m benchmarks.verifiers            # ~2-3 minutes on 2 cores; writes benchmarks/results/verifiers.json

Figures:

- `math_checks_per_s`, `blocksworld_checks_per_s`, `ifeval_checks_per_s`: `Task.verify` calls per second
  over 1,000 realistic completions per domain, built from the tasks' own test problems with a mix of
  right and wrong answers and of output formats (treecot's tagged paths, plain CoT, R1-style
  `<think>`, truncated outputs). Math: GSM8K + MATH-500 gold answers, rewritten equivalently (or made
  wrong). Blocksworld: the optimal plans, as PDDL or English, and mutated (steps dropped, swapped,
  blocks renamed, truncated, a detour added). IFEval: responses built to follow each instruction of the
  prompt with probability 3/4. The share of completions judged correct is reported too
  (`*_correct_rate`) to show the mix is not trivially all-right or all-wrong. Five extra warm-up
  calls per domain (worker start-up, NLTK data) are not timed. Math completions are of distinct
  problems so that the math verifier's per-(answer, gold) cache is not what gets measured.
- `hostile_max_s`: the slowest single `verify` call over the hostile suite (power towers, huge
  factorials, 1 MB strings, deep nesting, unbalanced tags and braces, control and combining
  characters, …) run through all three domains; `hostile_worst` names it, `hostile_<domain>_max_s`
  gives each domain's slowest call and `hostile_checks` counts the calls. Verifiers must never raise:
  an exception fails the benchmark.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable

from benchmarks._common import write_results

COMMAND = "python -m benchmarks.verifiers"
N_COMPLETIONS = 1000
#: Untimed calls per domain before timing (worker start-up, NLTK data, lazy imports).
WARMUP = 5
THINKING = (
    "<sub-task>Firstly, I need to break down this task.</sub-task>\n"
    "<thinking>Let me work through the problem step by step, keeping track of every quantity.</thinking>\n"
    "<double-check>Let's check the result against the question.</double-check>\n"
)


def _timed(verify: Callable, completions: list[tuple[str, dict]]) -> tuple[float, float]:
    """Checks per second and the share judged correct."""
    correct = 0
    start = time.perf_counter()
    for text, problem in completions:
        correct += bool(verify(text, problem).correct)
    elapsed = time.perf_counter() - start
    return len(completions) / elapsed, correct / len(completions)


# --------------------------------------------------------------------------------------------------
# math


def _shift_number(gold: str) -> str | None:
    try:
        value = float(gold.replace(",", ""))
    except ValueError:
        return None
    return str(int(value) + 1) if value == int(value) else f"{value + 1:g}"


def _math_completion(problem: dict, rng: random.Random) -> str:
    gold = problem["reference"].strip()
    number = _shift_number(gold)
    wrong = number if number is not None else f"{gold} + 1"
    kind = rng.choice(
        ("tagged", "tagged-wrong", "plain", "plain-wrong", "rewritten", "r1", "truncated", "none")
    )
    if kind == "tagged":
        return f"{THINKING}<answer>The answer is: \\boxed{{{gold}}}</answer>"
    if kind == "tagged-wrong":
        return f"{THINKING}<answer>The answer is: \\boxed{{{wrong}}}</answer>"
    if kind == "plain":
        return f"First we compute the pieces.\nThen we combine them.\nThe answer is {gold}."
    if kind == "plain-wrong":
        return f"First we compute the pieces.\nThe answer is {wrong}."
    if kind == "rewritten":  # equivalent but written differently
        if number is not None:
            value = float(gold.replace(",", ""))
            return f"So the total is ${value:.2f}$, i.e. \\boxed{{{value:.2f}}}."
        display = gold.replace("\\frac", "\\dfrac")
        return f"Hence the result is $\\boxed{{ {display} }}$."
    if kind == "r1":
        return f"<think>Hmm, let me compute. Wait, let me check again.</think>\nThe final answer is \\boxed{{{gold}}}"
    if kind == "truncated":
        return f"{THINKING}<answer>The answer is: \\boxed{{{gold[: max(1, len(gold) // 2)]}"
    return f"{THINKING}<thinking>I am still working on this and need more steps"


def math_completions(n: int, rng: random.Random) -> tuple[Callable, list[tuple[str, dict]]]:
    """n completions of distinct problems (half MATH-500 as far as it goes, the rest GSM8K), so that
    the verifier's per-(answer, gold) cache does not inflate the figure; then WARMUP extra rows."""
    from treecot.tasks import get_task

    gsm8k, math500 = get_task("gsm8k"), get_task("math500")
    hard = list(math500.load("test", limit=min(n // 2, 500)))
    problems = hard + list(gsm8k.load("test", limit=n - len(hard) + WARMUP))
    rng.shuffle(problems)
    rows = [(_math_completion(p, rng), p) for p in (problems[i % len(problems)] for i in range(n + WARMUP))]
    tasks = {"gsm8k": gsm8k, "math500": math500}
    return (lambda text, problem: tasks[problem["task"]].verify(text, problem)), rows


# --------------------------------------------------------------------------------------------------
# blocksworld


def _blocksworld_completion(problem: dict, rng: random.Random) -> str:
    from treecot.tasks.blocksworld import COLOURS, Action

    plan = [Action.from_pddl(line) for line in problem["reference"].splitlines() if line.strip()]
    blocks = [c for c in COLOURS if any(c in a.args for a in plan)] or ["red"]
    kind = rng.choice(
        ("pddl", "english", "plan-tags", "drop", "swap", "rename", "truncate", "detour", "none")
    )
    steps = list(plan)
    if kind == "drop" and len(steps) > 1:
        del steps[rng.randrange(len(steps))]
    elif kind == "swap" and len(steps) > 1:
        i = rng.randrange(len(steps) - 1)
        steps[i], steps[i + 1] = steps[i + 1], steps[i]
    elif kind == "rename":
        i = rng.randrange(len(steps))
        args = tuple(rng.choice(blocks) for _ in steps[i].args)
        steps[i] = Action(steps[i].name, args)
    elif kind == "truncate":
        steps = steps[: len(steps) // 2]
    elif kind == "detour":
        first = steps[0]
        if first.name == "pick-up":
            steps = [first, Action("put-down", first.args[:1]), *steps]
    if kind == "none":
        return f"{THINKING}<thinking>I need to move the blocks one at a time, but I have not finished."
    if kind == "english":
        lines = "\n".join(a.text for a in steps)
        return f"{THINKING}<answer>The plan is:\n{lines}</answer>"
    if kind == "plan-tags":
        lines = "\n".join(a.text for a in steps)
        return f"Let me plan.\n[PLAN]\n{lines}\n[PLAN END]"
    return f"{THINKING}<answer>\n" + "\n".join(a.pddl for a in steps) + "\n</answer>"


def blocksworld_completions(n: int, rng: random.Random) -> tuple[Callable, list[tuple[str, dict]]]:
    from treecot.tasks import get_task

    task = get_task("blocksworld")
    problems = list(task.load("test", limit=max(1, n // 10)))
    rows = [
        (_blocksworld_completion(p, rng), p) for p in (problems[i % len(problems)] for i in range(n + WARMUP))
    ]
    return task.verify, rows


# --------------------------------------------------------------------------------------------------
# IFEval

_FOREIGN = {
    "es": "La cocina es un arte que se aprende con paciencia y práctica diaria en casa.",
    "fr": "La cuisine est un art qui s'apprend avec patience et pratique chaque jour à la maison.",
    "de": "Das Kochen ist eine Kunst, die man mit Geduld und täglicher Übung zu Hause lernt.",
    "it": "La cucina è un'arte che si impara con pazienza e pratica quotidiana a casa.",
    "pt": "A culinária é uma arte que se aprende com paciência e prática diária em casa.",
}
_VOCAB = (
    "learning grows through patient practice and small daily habits that build confidence over time "
    "students discover ideas share stories test plans and reflect on what worked well"
).split()


def _sentences(rng: random.Random, k: int, foreign: str | None) -> list[str]:
    if foreign:
        return [_FOREIGN[foreign]] * k
    out = []
    for _ in range(k):
        words = rng.sample(_VOCAB, rng.randint(6, 12))
        if rng.random() < 0.5:
            words[len(words) // 2] += ","
        out.append(" ".join(words).capitalize() + ".")
    return out


def _ifeval_response(problem: dict, rng: random.Random) -> str:
    ref = json.loads(problem["reference"])
    todo = {iid: kw for iid, kw in zip(ref["instruction_id_list"], ref["kwargs"]) if rng.random() < 0.75}
    kw = lambda iid: todo.get(iid) or {}  # noqa: E731

    foreign = kw("language:response_language").get("language")
    n_par = kw("length_constraints:number_paragraphs").get("num_paragraphs") or kw(
        "length_constraints:nth_paragraph_first_word"
    ).get("num_paragraphs")
    n_par = n_par or rng.randint(1, 3)
    n_sent = kw("length_constraints:number_sentences").get("num_sentences")
    if n_sent and kw("length_constraints:number_sentences").get("relation") == "less than":
        n_sent = max(1, n_sent - 1)
    words_target = kw("length_constraints:number_words")
    per_par = max(1, (n_sent or rng.randint(2 * n_par, 6 * n_par)) // n_par)
    if words_target:
        target = words_target["num_words"] + (20 if words_target["relation"] == "at least" else -30)
        per_par = max(1, target // (9 * n_par))
    paragraphs = [" ".join(_sentences(rng, per_par, foreign)) for _ in range(n_par)]

    nth = kw("length_constraints:nth_paragraph_first_word")
    if nth and nth.get("nth_paragraph", 1) <= len(paragraphs):
        i = nth["nth_paragraph"] - 1
        paragraphs[i] = f"{nth['first_word'].capitalize()} {paragraphs[i]}"
    for word in kw("keywords:existence").get("keywords", []):
        paragraphs[rng.randrange(len(paragraphs))] += f" We mention {word} here."
    freq = kw("keywords:frequency")
    if freq:
        times = freq["frequency"] + 1 if freq["relation"] == "at least" else 1
        paragraphs[-1] += " " + " ".join(f"The {freq['keyword']} matters." for _ in range(times))
    if "keywords:forbidden_words" in ref["instruction_id_list"] and "keywords:forbidden_words" not in todo:
        i = ref["instruction_id_list"].index("keywords:forbidden_words")
        paragraphs[0] += " " + " ".join(ref["kwargs"][i]["forbidden_words"]) + "."
    sections = kw("detectable_format:multiple_sections")
    if sections:
        paragraphs = [f"{sections['section_spliter']} {j + 1}\n{p}" for j, p in enumerate(paragraphs)]
        paragraphs += [
            f"{sections['section_spliter']} {j + 1}\n{p}"
            for j, p in enumerate(
                paragraphs[: max(0, sections["num_sections"] - len(paragraphs))], len(paragraphs)
            )
        ]
    sep = "\n\n***\n\n" if "length_constraints:number_paragraphs" in todo else "\n\n"
    text = sep.join(paragraphs)

    bullets = kw("detectable_format:number_bullet_lists").get("num_bullets")
    if bullets:
        text += "\n" + "\n".join(f"* point {j + 1} about practice" for j in range(bullets))
    highlights = kw("detectable_format:number_highlighted_sections").get("num_highlights")
    if highlights:
        text += "\n" + " ".join(f"*highlight {j + 1}*" for j in range(highlights))
    placeholders = kw("detectable_content:number_placeholders").get("num_placeholders")
    if placeholders:
        text += " " + " ".join(f"[field{j}]" for j in range(placeholders))
    capitals = kw("change_case:capital_word_frequency")
    if capitals:
        k = capitals["capital_frequency"] + (1 if capitals["capital_relation"] == "at least" else -2)
        text += " " + " ".join(["NOTE"] * max(0, k))
    if "detectable_format:title" in todo:
        text = f"<<A Response>>\n{text}"
    if "combination:repeat_prompt" in todo:
        text = f"{kw('combination:repeat_prompt').get('prompt_to_repeat', '')}\n{text}"
    if "combination:two_responses" in todo:
        text = f"{text}\n******\n{text[::-1]}"
    if "detectable_format:constrained_response" in todo:
        text = "My answer is yes."
    postscript = kw("detectable_content:postscript").get("postscript_marker")
    if postscript:
        text += f"\n\n{postscript} Thanks for reading."
    end = kw("startend:end_checker").get("end_phrase")
    if end:
        text += f"\n{end}"
    if "change_case:english_lowercase" in todo:
        text = text.lower()
    if "change_case:english_capital" in todo:
        text = text.upper()
    if "punctuation:no_comma" in todo:
        text = text.replace(",", "")
    if "startend:quotation" in todo:
        text = f'"{text}"'
    if "detectable_format:json_format" in todo:
        text = json.dumps({"response": text})
    form = rng.random()
    if form < 0.4:
        return f"{THINKING}<answer>{text}</answer>"
    if form < 0.6:
        return f"<think>The user wants a short text. Let me plan it.</think>\n{text}"
    if form < 0.95:
        return text
    return "<think>The user wants a short text. Let me plan"  # truncated: no response


def ifeval_completions(n: int, rng: random.Random) -> tuple[Callable, list[tuple[str, dict]]]:
    from treecot.tasks import get_task

    task = get_task("ifeval")
    problems = list(task.load("test", limit=n // 2))
    rows = [(_ifeval_response(p, rng), p) for p in (problems[i % len(problems)] for i in range(n + WARMUP))]
    return task.verify, rows


# --------------------------------------------------------------------------------------------------
# hostile suite

_MB = 1_000_000


def hostile_strings() -> list[tuple[str, str]]:
    """(label, text) pairs: inputs that have hung, crashed or exhausted verifiers elsewhere."""
    payloads: list[tuple[str, str]] = [
        ("power tower 10", "10^{10^{10^{10}}}"),
        ("power tower 9", "9^{9^{9^{9^{9}}}}"),
        ("power tower 2", "2^{2^{2^{2^{2^{2^{2}}}}}}"),
        ("python power tower", "10**10**10**10"),
        ("x tower", "x^{x^{x^{x^{x^{x}}}}}"),
        ("huge factorial", "100000!"),
        ("factorial of power", "(10^{10})!"),
        ("double factorial tower", "((100!)!)!"),
        ("2^1e6", "2^{1000000}"),
        ("10^1e6", "10^{1000000}"),
        ("tiny power", "10^{-10^{10}}"),
        ("power of power", "(2^{64})^{2^{64}}"),
        ("big exponent float", "1e999999999"),
        ("huge sum", "\\sum_{i=1}^{10^{100}} i"),
        ("huge product", "\\prod_{k=1}^{10^{9}} k"),
        ("integral", "\\int_0^\\infty e^{-x^2} \\, dx"),
        ("limit", "\\lim_{x \\to \\infty} x^{x}"),
        ("sin of huge", "\\sin(10^{100})"),
        ("division by zero", "\\frac{1}{0}"),
        ("zero over zero", "0/0"),
        ("inf minus inf", "\\infty - \\infty"),
        ("nan", "NaN"),
        ("i^i", "i^{i}"),
        ("euler", "e^{i\\pi}"),
        ("nested fractions", "\\frac{1}{" * 300 + "2" + "}" * 300),
        ("nested roots", "\\sqrt{" * 1000 + "2" + "}" * 1000),
        ("nested parens", "(" * 5000 + "1" + ")" * 5000),
        ("left right", "\\left(" * 500 + "x" + "\\right)" * 500),
        ("open braces", "{" * 20000),
        ("close braces", "}" * 20000),
        ("open boxes", "\\boxed{" * 5000),
        (
            "matrix",
            "\\begin{pmatrix}"
            + " \\\\ ".join(" & ".join("1" for _ in range(60)) for _ in range(60))
            + "\\end{pmatrix}",
        ),
        ("long digits", "9" * 100_000),
        ("long decimal", "0." + "3" * 100_000),
        ("near one", "1." + "0" * 50_000 + "1"),
        ("long sum", "+".join("1" for _ in range(20_000))),
        ("chain equality", "x = " * 5000 + "1"),
        ("backslashes", "\\" * 20_000),
        ("dollars", "$" * 20_000),
        ("text macro", "\\text{" * 2000),
        ("percent", "\\%" * 10_000),
        ("fullwidth digits", "１２３４５"),
        ("arabic digits", "١٢٣"),
        ("rtl override", "\u202e42\u202d"),
        ("null bytes", "\x00" * 5000),
        ("combining marks", "a" + "\u0301" * 20_000),
        ("emoji", "🙂" * 20_000),
        ("lone surrogate", "\ud800\udfff\ud800"),
        ("control chars", "".join(chr(i) for i in range(32)) * 500),
    ]
    wrappers: list[tuple[str, Callable[[str], str]]] = [
        ("raw", lambda s: s),
        ("boxed", lambda s: f"\\boxed{{{s}}}"),
        ("tagged", lambda s: f"{THINKING}<answer>The answer is: \\boxed{{{s}}}</answer>"),
        ("answer-is", lambda s: f"<think>ok</think>The answer is {s}."),
    ]
    out = [(f"{label} / {wname}", wrap(text)) for label, text in payloads for wname, wrap in wrappers]
    # whole-completion attacks: size, tags, and each checker family's regular expressions
    out += [
        ("1 MB of digits", "9" * _MB),
        ("1 MB of one letter", "a" * _MB),
        ("1 MB of spaces", " " * _MB),
        ("1 MB of newlines", "\n" * _MB),
        ("1 MB of words", "word " * (_MB // 5)),
        ("1 MB of boxes", "\\boxed{1}" * (_MB // 9)),
        ("1 MB looping sentence", "Let me check again. " * (_MB // 20)),
        ("answer tags", "<answer>" * 100_000),
        ("closing answer tags", "</answer>" * 100_000),
        ("think tags", "<think>" * 100_000),
        ("unclosed answer", "<answer>" + "x " * 200_000),
        ("the answer is many times", "The answer is: " * 50_000),
        ("stars", "*" * 200_000),
        ("star pairs", "*a*" * 100_000),
        ("title brackets", "<<" * 100_000 + ">>" * 100_000),
        ("deep json array", "[" * 100_000),
        ("deep json object", '{"a":' * 50_000),
        ("sections", "SECTION " * 100_000),
        ("bullets", "* \n" * 100_000),
        ("paragraph separators", "\n\n***\n\n" * 50_000),
        ("quotes", '"' * 100_000),
        ("postscripts", "P.S. " * 100_000),
        ("placeholders", "[a]" * 100_000),
        ("mixed scripts", "Привет مرحبا 你好 こんにちは " * 20_000),
        ("no letters", "!?." * 200_000),
        ("regex backtracking", "a" * 50_000 + "!"),
        ("pddl flood", "(unstack red blue)\n" * 50_000),
        ("pddl open parens", "(stack " * 100_000),
        ("english plan flood", "pick up the red block then " * 30_000),
        ("plan tags", "[PLAN]" * 100_000),
        ("long pddl atom", "(" + "a " * 200_000 + ")"),
        (
            "long english action",
            "unstack the red block from on top of the " + "blue block from on top of the " * 20_000,
        ),
        ("unknown blocks", "\n".join(f"(stack b{i} b{i + 1})" for i in range(20_000))),
        ("pronoun chain", "pick it up and then put it down " * 20_000),
        ("empty", ""),
        ("whitespace", "   \n\t  "),
    ]
    return out


def _extra_hostile() -> list[tuple[str, str]]:
    """Hostile strings the math verifier's author collected, when the module exposes them."""
    try:
        from treecot.tasks import math as math_task
    except ImportError:
        return []
    for name in ("HOSTILE_STRINGS", "HOSTILE_INPUTS", "HOSTILE"):
        strings = getattr(math_task, name, None)
        if strings:
            return [(f"math module #{i}", s if isinstance(s, str) else str(s)) for i, s in enumerate(strings)]
    return []


def run_hostile(
    verifiers: dict[str, tuple[Callable, dict]],
) -> tuple[dict[str, float], list[tuple[float, str]]]:
    """Run every hostile string through every domain's verifier.

    Returns the slowest call per domain (seconds) and all (seconds, "domain: label") timings, slowest first.
    """
    strings = hostile_strings() + _extra_hostile()
    per_domain: dict[str, float] = {}
    timings: list[tuple[float, str]] = []
    for domain, (verify, problem) in verifiers.items():
        for label, text in strings:
            start = time.perf_counter()
            verify(text, problem)
            elapsed = time.perf_counter() - start
            timings.append((elapsed, f"{domain}: {label}"))
            per_domain[domain] = max(per_domain.get(domain, 0.0), elapsed)
    timings.sort(reverse=True)
    return per_domain, timings


# --------------------------------------------------------------------------------------------------

DOMAINS: dict[str, Callable[[int, random.Random], tuple[Callable, list[tuple[str, dict]]]]] = {
    "math": math_completions,
    "blocksworld": blocksworld_completions,
    "ifeval": ifeval_completions,
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=N_COMPLETIONS, help="completions per domain (default 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--domains", default=",".join(DOMAINS), help="comma-separated subset (needs --no-write)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures without writing results")
    args = parser.parse_args(argv)
    if args.n < 10:
        parser.error(f"--n must be at least 10, got {args.n}")
    domains = [d.strip() for d in args.domains.split(",") if d.strip()]
    unknown = sorted(set(domains) - set(DOMAINS))
    if unknown or not domains:
        parser.error(f"unknown domain(s) {unknown}; choose from {', '.join(DOMAINS)}")
    if set(domains) != set(DOMAINS) and not args.no_write:
        parser.error("a results file needs every domain: pass --no-write to run a subset")

    figures: dict = {}
    hostile: dict[str, tuple[Callable, dict]] = {}
    for domain in domains:
        verify, rows = DOMAINS[domain](args.n, random.Random(args.seed))
        rows, warmup = rows[: args.n], rows[args.n :]
        for text, problem in warmup:
            verify(text, problem)
        rate, correct = _timed(verify, rows)
        figures[f"{domain}_checks_per_s"] = round(rate, 1)
        figures[f"{domain}_correct_rate"] = round(correct, 3)
        # the hostile suite runs against the hardest problem kind of the domain (MATH-500: LaTeX answers)
        hostile[domain] = (verify, next((p for _, p in rows if p["task"] == "math500"), rows[-1][1]))
        print(
            f"{domain}: {rate:.1f} checks/s over {len(rows)} completions ({correct:.0%} correct)", flush=True
        )

    start = time.perf_counter()
    per_domain, timings = run_hostile(hostile)
    worst, label = timings[0]
    for domain, seconds in per_domain.items():
        figures[f"hostile_{domain}_max_s"] = round(seconds, 3)
    figures.update(
        hostile_max_s=round(worst, 3), hostile_worst=label, hostile_checks=len(timings), n_completions=args.n
    )
    print(f"hostile: {len(timings)} checks in {time.perf_counter() - start:.1f} s; slowest:", flush=True)
    for seconds, what in timings[:8]:
        print(f"  {seconds:8.3f} s  {what}")
    if not args.no_write:
        command = COMMAND if argv is None or not argv else f"{COMMAND} {' '.join(argv)}"
        print(f"wrote {write_results('verifiers', figures, command)}")
    return figures


if __name__ == "__main__":
    main(sys.argv[1:] or None)
