"""The Problem records of the instruction tasks: their ``meta`` and ``reference`` written and read, and
Problems made from rows of the Hub datasets (google/IFEval, facebook/Multi-IF)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from treecot.tasks.base import MalformedProblemError, make_problem
from treecot.tasks.instructions.checkers import clean_kwargs


def instruction_meta(
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
    """The ``meta`` of an instruction Problem.

    Args:
        source (`str`):
            Where the problem comes from ("synthetic", "hub:google/IFEval", …).
        split (`str`):
            Its split.
        index (`int`):
            Its position in the split.
        key (`str`):
            Its key in the source.
        base_task (`str`, *optional*, defaults to `""`):
            The writing task a synthetic prompt is built on.
        n_instructions (`int`, *optional*, defaults to `0`):
            How many instructions it holds (all turns).
        reason (`str`, *optional*, defaults to `""`):
            Why it cannot be scored on this machine; ``supported`` is False when there is one.
        turn_prompts (`list[str]`, *optional*):
            The user prompt of each turn.
        language (`str`, *optional*, defaults to `"English"`):
            The prompts' language.

    Returns:
        `dict`: ``{source, split, index, key, language, base_task, n_instructions, supported,
        unsupported_reason, turn_prompts}``.
    """
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


def instruction_reference(ids: Sequence[str], kwargs: Sequence[dict]) -> dict:
    """One reference object: the instruction ids and their kwargs.

    Args:
        ids (`Sequence[str]`):
            Instruction ids.
        kwargs (`Sequence[dict]`):
            One kwargs dict per id.

    Returns:
        `dict`: ``{"instruction_id_list": [...], "kwargs": [...]}`` (copies).
    """
    return {"instruction_id_list": list(ids), "kwargs": [dict(k) for k in kwargs]}


def parse_reference(problem: dict) -> Any:
    """The JSON ``reference`` of an instruction Problem, read.

    Args:
        problem (`dict`):
            A Problem record.

    Returns:
        `Any`: the decoded reference (an object, or a list of objects for Multi-IF).

    Raises:
        `MalformedProblemError`: If the reference is missing or not valid JSON.
    """
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


def reference_instructions(problem: dict, turn: Any, field: str) -> tuple[list[str], list[Any]]:
    """The instruction ids and kwargs of one reference object.

    Args:
        problem (`dict`):
            The Problem the reference belongs to (named in errors).
        turn (`Any`):
            One decoded reference object.
        field (`str`):
            Where `turn` lies in the problem (``"reference"``, ``"reference[1]"``), named in errors.

    Returns:
        `tuple[list[str], list[Any]]`: the instruction ids and their kwargs, paired.

    Raises:
        `MalformedProblemError`: If `turn` is not such an object or its lists do not pair up.
    """
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


def single_turn_instructions(problem: dict) -> tuple[list[str], list[Any]]:
    """The instruction ids and kwargs of a single-turn Problem (IFEval, IFBench).

    Args:
        problem (`dict`):
            A Problem record whose ``reference`` is one reference object.

    Returns:
        `tuple[list[str], list[Any]]`: the instruction ids and their kwargs, paired.
    """
    return reference_instructions(problem, parse_reference(problem), "reference")


def hub_ifeval_rows(rows: Iterable[dict], split: str = "test") -> list[dict]:
    """Problems from rows in google/IFEval's format (``key``, ``prompt``, ``instruction_id_list``,
    ``kwargs`` with explicit nulls)."""
    out = []
    for i, r in enumerate(rows):
        kwargs = [clean_kwargs(k) for k in r["kwargs"]]
        meta = instruction_meta(
            "hub:google/IFEval",
            split,
            i,
            str(r.get("key", i)),
            n_instructions=len(r["instruction_id_list"]),
            turn_prompts=[r["prompt"]],
        )
        out.append(
            make_problem(
                "ifeval",
                r["prompt"],
                json.dumps(instruction_reference(r["instruction_id_list"], kwargs)),
                meta,
            )
        )
    return out


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
            kwargs = [clean_kwargs(k_) for k_ in loads(r[f"turn_{k}_kwargs"], [])]
            turns.append(instruction_reference(ids, kwargs))
        if not prompts:
            continue
        meta = instruction_meta(
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
