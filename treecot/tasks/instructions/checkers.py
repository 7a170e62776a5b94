"""The verifiable-instruction checkers (from if-verifiable): their registries and conflicts, running them
safely on a response, and IFEval's scoring of the verdicts."""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from treecot.tasks.answers import extract_response
from treecot.tasks.base import Verdict
from treecot.tasks.nltk_data import ensure_nltk_data, missing_resources, offline_nltk

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


def clean_kwargs(kwargs: Any) -> dict:
    """The kwargs of one instruction as a checker takes them.

    Args:
        kwargs (`dict`, `str` or `None`):
            A kwargs dict, a JSON string of one (as Multi-IF stores them), or None.

    Returns:
        `dict`: the kwargs without the entries whose value is None.

    Raises:
        `TypeError`: If `kwargs` is not a dict (after reading JSON).
    """
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

    Args:
        registry (`dict[str, type]`):
            Instruction id → checker class.
        instruction_id (`str`):
            The instruction's id.
        kwargs (`Any`):
            The stored kwargs of the instruction.
        prompt (`str`, *optional*, defaults to `""`):
            The prompt, for checkers that take it.

    Raises:
        KeyError: `instruction_id` is not in `registry`.
    """
    try:
        cls = registry[instruction_id]
    except KeyError:
        raise KeyError(f"unknown instruction id {instruction_id!r}") from None
    checker = cls(instruction_id)
    checker.build_description(**clean_kwargs(kwargs))
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

    Args:
        completion (`str`):
            The model's completion; its response is what `extract_response` returns.
        instruction_ids (`Sequence[str]`):
            The instructions' ids.
        kwargs_list (`Sequence[Any]`):
            Their kwargs, one per id.
        registry (`dict[str, type]`):
            Instruction id → checker class.
        prompt (`str`, *optional*, defaults to `""`):
            The prompt, for checkers that take it.
        loose (`bool`, *optional*, defaults to `False`):
            ``correct`` is prompt-level strict (`loose=True`: prompt-level loose).
        requirements (`dict[str, tuple[str, ...]]`, *optional*):
            Instruction id → the NLTK resources its checker needs: instructions whose checker needs data
            this machine does not have make the whole prompt unsupported: ``correct=False``, ``details["supported"]=False`` and a
            reason, and `score_ifeval` leaves it out.

    Returns:
        `Verdict`: ``answered`` is whether the response is non-empty; ``extracted`` is that response;
        ``details`` holds ``instruction_ids``, per-instruction ``strict`` / ``loose`` / ``errors``,
        ``prompt_strict``, ``prompt_loose``, ``supported`` and ``unsupported_reason``.
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
    out. With nothing to score every accuracy is 0.0.

    Args:
        verdicts (`Iterable[Verdict | dict]`):
            `Verdict`s or their ``to_dict()``.
        with_counts (`bool`, *optional*, defaults to `False`):
            Adds ``n_prompts``, ``n_instructions`` and ``n_unsupported``.
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
