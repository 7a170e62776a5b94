"""Equivalence of a math answer and a gold answer: exact, numeric, guards, then math-verify in a worker."""

from __future__ import annotations

import atexit
import logging
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from treecot.tasks._timeout import CheckTimeout, TimeoutWorker, WorkerError
from treecot.tasks.math.guards import MAX_ANSWER_CHARS, unsafe_reason
from treecot.tasks.math.normalize import clean_answer, decimal_comma, numbers_equal, parse_number, shorten
from treecot.tasks.math.symbolic import math_verify_dir, math_verify_missing

logger = logging.getLogger(__name__)

#: Hard wall-clock limit of one symbolic check, in seconds.
DEFAULT_TIMEOUT = 5.0

_ASSIGNMENT = re.compile(r"\s*(?:[A-Za-z]|\\[A-Za-z]+)(?:_\{?[\w\\]+\}?)?\s*=\s*(.+)", re.DOTALL)


def _key(s: str) -> str:
    """Exact-comparison key of a cleaned string: no spaces; words compared case-insensitively."""
    key = s.replace(" ", "")
    return key.lower() if key.isalpha() else key


def _drop_assignments(pred: str, gold: str) -> tuple[str, str]:
    """``x = 3`` vs ``3`` → compare ``3`` with ``3`` (only when the other side has no ``=``)."""
    if "=" in pred and "=" not in gold:
        m = _ASSIGNMENT.fullmatch(pred)
        if m:
            pred = m.group(1).strip()
    elif "=" in gold and "=" not in pred:
        m = _ASSIGNMENT.fullmatch(gold)
        if m:
            gold = m.group(1).strip()
    return pred, gold


@dataclass(frozen=True)
class EquivalenceResult:
    """Outcome of one equivalence check.

    Args:
        equivalent (`bool`):
            The answer matches the gold answer.
        method (`str`):
            What decided: ``exact``, ``numeric``, ``sympy`` (math-verify), ``guard`` (rejected before
            parsing), ``timeout`` or ``error`` (the worker failed).
        reason (`str`):
            Human-readable, e.g. ``"equivalent (numeric)"``, ``"not equivalent: 41 vs 42"``.
    """

    equivalent: bool
    method: str
    reason: str

    def __bool__(self) -> bool:
        return self.equivalent


_worker: TimeoutWorker | None = None
_worker_lock = threading.Lock()
_CACHE_SIZE = 50_000
_cache: OrderedDict[tuple[str, str], EquivalenceResult] = OrderedDict()
_cache_lock = threading.Lock()


def _get_worker() -> TimeoutWorker:
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = TimeoutWorker(
                "treecot.tasks.math.symbolic:sympy_equivalent", warmup="treecot.tasks.math.symbolic:warm_up"
            )
        return _worker


def shutdown() -> None:
    """Stop the math-verify worker process (it restarts on the next symbolic check). Also runs at exit."""
    global _worker
    with _worker_lock:
        worker, _worker = _worker, None
    if worker is not None:
        worker.shutdown()


atexit.register(shutdown)


def clear_cache() -> None:
    """Forget cached symbolic verdicts (e.g. before measuring throughput) and the check of the worker's
    math-verify install."""
    with _cache_lock:
        _cache.clear()
    math_verify_missing.cache_clear()


def _symbolic(pred: str, gold: str, timeout: float) -> EquivalenceResult:
    key = (pred, gold)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    missing = math_verify_missing(str(math_verify_dir()))
    if missing:  # not cached: installing math-verify fixes it (after `clear_cache()`)
        return EquivalenceResult(False, "error", f"verifier error: {missing}")
    try:
        answer = _get_worker().call(pred, gold, max(1, int(timeout)), timeout=timeout)
    except CheckTimeout:
        # Cached like any verdict: the same hostile answer, sampled again, must not cost another timeout.
        result = EquivalenceResult(False, "timeout", f"timed out after {float(timeout)}s")
    except WorkerError as err:  # not cached: a crashed worker says nothing about the answer
        logger.warning("math-verify worker failed on %r vs %r: %s", shorten(pred), shorten(gold), err)
        return EquivalenceResult(False, "error", f"verifier error: {err}")
    else:
        if answer["equivalent"]:
            result = EquivalenceResult(True, "sympy", "equivalent (math-verify)")
        else:
            note = f" ({answer['note']})" if answer.get("note") else ""
            result = EquivalenceResult(
                False, "sympy", f"not equivalent: {shorten(pred)} vs {shorten(gold)}{note}"
            )
    with _cache_lock:
        _cache[key] = result
        if len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


def check_equivalence(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> EquivalenceResult:
    """Decide whether answer `pred` is mathematically equivalent to `gold` (see the module docstring).

    Never raises on any `pred`; fast paths (exact, numeric, guards) never start the worker process.

    Args:
        pred (`str`):
            The answer.
        gold (`str`):
            The gold answer.
        timeout (`float`, *optional*, defaults to `DEFAULT_TIMEOUT`):
            Symbolic checks run in a worker process under this hard timeout (in seconds).

    Raises:
        ValueError: `timeout` is not a positive number of seconds.
    """
    if timeout is None or timeout <= 0:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    pred = "" if pred is None else str(pred)
    gold = "" if gold is None else str(gold)
    for name, s in (("answer", pred), ("gold answer", gold)):
        if len(s) > MAX_ANSWER_CHARS:
            return EquivalenceResult(
                False, "guard", f"{name} too long ({len(s)} chars > {MAX_ANSWER_CHARS}): not checked"
            )
    p, g = clean_answer(pred), clean_answer(gold)
    if not p:
        return EquivalenceResult(False, "exact", "not equivalent: the answer is empty")
    if not g:
        return EquivalenceResult(False, "exact", "not equivalent: the gold answer is empty")
    p, g = _drop_assignments(p, g)
    if _key(p) == _key(g):
        return EquivalenceResult(True, "exact", "equivalent (exact match)")
    p_num, g_num = parse_number(p), parse_number(g)
    if p_num is None and g_num is not None and "." in g:
        p_num = decimal_comma(p)  # "1000,99" for 1000.99
    if p_num is not None and g_num is not None:
        if numbers_equal(p_num, g_num):
            return EquivalenceResult(True, "numeric", "equivalent (numeric)")
        return EquivalenceResult(False, "numeric", f"not equivalent: {shorten(pred)} vs {shorten(gold)}")
    for name, s in (("answer", p), ("gold answer", g)):
        why = unsafe_reason(s)
        if why:
            return EquivalenceResult(False, "guard", f"not checked: the {name} {why}")
    return _symbolic(p, g, timeout)


def is_equivalent(pred: str, gold: str, timeout: float = DEFAULT_TIMEOUT) -> bool:
    """True if answer `pred` is mathematically equivalent to `gold` (`check_equivalence` as a bool).

    Args:
        pred (`str`):
            The answer.
        gold (`str`):
            The gold answer.
        timeout (`float`, *optional*, defaults to `DEFAULT_TIMEOUT`):
            Seconds allowed to the symbolic check (see `check_equivalence`).
    """
    return check_equivalence(pred, gold, timeout).equivalent
