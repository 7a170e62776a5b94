"""math-verify (LaTeX -> sympy) for the symbolic checks: its install, its versions, and the functions
that run inside the `TimeoutWorker` process only (`sympy_equivalent`, `warm_up`)."""

from __future__ import annotations

import logging
import os
import re
import sys
from functools import lru_cache
from pathlib import Path

from treecot.tasks._timeout import TimeoutWorker

logger = logging.getLogger(__name__)

#: Oldest math-verify (and latex2sympy2_extended) the worker is meant to run: 0.5.2 accepts
#: ``n=1, 2, 3`` for ``n=2, 3, 4``, ``D = (0, 1.5)`` for ``D = (0, 1)`` and ``1:00`` for ``12:00``. An
#: older one is still used (with a warning), so that an environment not yet upgraded keeps working.
MIN_MATH_VERIFY = "0.9.0"
MIN_LATEX2SYMPY2_EXTENDED = "1.11.0"
#: Names the directory the worker imports math-verify from (default: `math_verify_dir`).
MATH_VERIFY_DIR_ENV = "TREECOT_MATH_VERIFY_DIR"


def math_verify_dir() -> Path:
    """The directory the worker imports math-verify from, ahead of the environment's own packages:
    ``$TREECOT_MATH_VERIFY_DIR``, else ``<sys.prefix>/treecot-math-verify`` (`make install` fills it from
    ``requirements/math-verify.txt`` with ``pip install --no-deps --target``).

    Why a directory of its own: lighteval 0.13, installed in the same environment, pins
    latex2sympy2_extended 1.0.6 and checks that version when its metrics module is imported, while
    math-verify 0.9 needs latex2sympy2_extended 1.11. The directory is put on the worker process's
    path only, never the caller's, so lighteval keeps its version and the verifier gets the newer one.
    """
    configured = os.environ.get(MATH_VERIFY_DIR_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "treecot-math-verify"


_MATH_VERIFY_DISTS = (
    ("math-verify", "math_verify", MIN_MATH_VERIFY),
    ("latex2sympy2_extended", "latex2sympy2_extended", MIN_LATEX2SYMPY2_EXTENDED),
)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def _math_verify_status(directory: Path) -> dict:
    """Which math-verify and latex2sympy2_extended an import finds with `directory` first on the path
    (read from their metadata: nothing is imported), where their packages lie, and what is wrong with
    them: ``missing`` (math-verify cannot be imported) and ``problem`` (missing or older than
    `MIN_MATH_VERIFY` / `MIN_LATEX2SYMPY2_EXTENDED`), both None when all is well."""
    import importlib.metadata

    path = ([str(directory)] if directory.is_dir() else []) + sys.path
    status: dict = {"dir": str(directory), "missing": None, "problem": None, "packages": {}}
    problems = []
    for dist_name, module, minimum in _MATH_VERIFY_DISTS:
        dist = next(iter(importlib.metadata.distributions(name=dist_name, path=path)), None)
        version = dist.version if dist is not None else None
        status[dist_name] = version
        if dist is not None:
            status["packages"][module] = str(Path(str(dist.locate_file(module))).resolve())
        if version is None:
            problems.append(f"{dist_name} is not installed")
        elif _version_tuple(version) < _version_tuple(minimum):
            problems.append(f"{dist_name} {version} is older than {minimum}")
    if problems:
        status["problem"] = (
            f"the math verifier wants math-verify>={MIN_MATH_VERIFY} and latex2sympy2_extended>="
            f"{MIN_LATEX2SYMPY2_EXTENDED} in {directory} ({'; '.join(problems)}): run `make install`, or "
            f"`{sys.executable} -m pip install --no-deps --target {directory} -r requirements/math-verify.txt`"
        )
        if not status["packages"]:
            status["missing"] = status["problem"]
    return status


@lru_cache(maxsize=8)
def math_verify_missing(directory: str) -> str | None:
    """Why math-verify cannot be used from `directory`, checked once per directory in the calling process.

    Older than the minimum, it is logged once, and used (math-verify 0.5.2 has known false positives: see
    `MIN_MATH_VERIFY`).

    Args:
        directory (`str`):
            The directory the worker imports math-verify from (`math_verify_dir`).

    Returns:
        `str` or `None`: why math-verify is missing (symbolic checks then answer "verifier error" without
        starting a worker each time), or None when it can be imported.
    """
    status = _math_verify_status(Path(directory))
    if status["missing"]:
        logger.error("symbolic math checks are disabled: %s", status["missing"])
    elif status["problem"]:
        logger.warning("symbolic math checks use an old math-verify: %s", status["problem"])
    return status["missing"]


_math_verify_module = None


def _load_math_verify():
    """math-verify, imported from `math_verify_dir` first. Worker process only: it changes ``sys.path``."""
    global _math_verify_module
    if _math_verify_module is not None:
        return _math_verify_module
    if "lighteval" in sys.modules:
        raise ImportError(
            "math-verify is imported in the verifier's worker process only: this process runs lighteval, "
            "which needs its own latex2sympy2_extended"
        )
    directory = math_verify_dir()
    status = _math_verify_status(directory)
    if status["missing"]:
        raise ImportError(status["missing"])

    def check(name: str) -> None:  # before the import (a copy already loaded) and after it
        module = sys.modules.get(name)
        where = str(Path(module.__file__).resolve().parent) if module is not None else None
        if module is not None and where != status["packages"].get(name):
            raise ImportError(
                f"{name} was imported from {where}, not from {status['packages'].get(name)} "
                f"(it was imported before the worker put {directory} on its path)"
            )

    for name in ("latex2sympy2_extended", "math_verify"):
        check(name)
    if directory.is_dir() and str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    import math_verify

    for name in ("latex2sympy2_extended", "math_verify"):
        check(name)
    _math_verify_module = math_verify
    return math_verify


def _worker_versions() -> dict:
    """Worker side of `math_verify_versions`."""
    _load_math_verify()
    status = _math_verify_status(math_verify_dir())
    return {
        key: status[key] for key in ("math-verify", "latex2sympy2_extended", "dir", "packages", "problem")
    }


def math_verify_versions(timeout: float = 60.0) -> dict:
    """The math-verify and latex2sympy2_extended versions the verifier's worker runs, where their
    packages lie, and ``problem`` (None, or why they are older than wanted). Asked of a fresh worker
    process (this process may hold other versions, e.g. lighteval's latex2sympy2_extended); raises
    `WorkerError` with the reason when the worker cannot load math-verify at all."""
    with TimeoutWorker("treecot.tasks.math.symbolic:_worker_versions") as worker:
        return worker.call(timeout=timeout)


def warm_up() -> None:
    """Import math-verify and build its parsers before the worker reports ready (not on the clock).

    The `TimeoutWorker`'s warm-up; runs in the worker process only.
    """
    _load_math_verify()
    sympy_equivalent("\\frac{1}{2}", "0.5", 5)
    sympy_equivalent("(1, 2]", "\\{x\\}", 5)
    _mv_parse.cache_clear()


@lru_cache(maxsize=4096)
def _mv_parse(latex: str, seconds: int) -> tuple:
    mv = _load_math_verify()
    # LaTeX only: ExprExtractionConfig would run sympy.parse_expr, which evals its input.
    config = [mv.LatexExtractionConfig(boxed_match_priority=0)]
    return tuple(mv.parse(f"${latex}$", extraction_config=config, parsing_timeout=seconds))


def sympy_equivalent(pred: str, gold: str, seconds: int) -> dict:
    """math-verify's verdict on `pred` vs `gold`, in the worker process.

    Runs in the worker's main thread, where math-verify's own ``signal.alarm`` timeouts work; the caller's
    hard timeout backs them up.

    Args:
        pred (`str`):
            The cleaned answer.
        gold (`str`):
            The cleaned gold answer.
        seconds (`int`):
            math-verify's own parsing and verification timeout.

    Returns:
        `dict`: ``{"equivalent": bool}``, with a ``"note"`` when one side could not be parsed.
    """
    mv = _load_math_verify()
    gold_parsed = _mv_parse(gold, seconds)
    if not gold_parsed:
        return {"equivalent": False, "note": "the gold answer could not be parsed"}
    pred_parsed = _mv_parse(pred, seconds)
    if not pred_parsed:
        return {"equivalent": False, "note": "the answer could not be parsed"}
    return {"equivalent": bool(mv.verify(list(gold_parsed), list(pred_parsed), timeout_seconds=seconds))}
