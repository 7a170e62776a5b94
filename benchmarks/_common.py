"""Shared helpers of treecot's benchmarks: where results go and what every result file records.

Every `benchmarks/NAME.py` measures one thing and ends with::

    write_results("NAME", {"figure_a": 12.3, "figure_b": 4}, command="python -m benchmarks.NAME")

which writes `benchmarks/results/NAME.json`: a flat object of the named figures plus `machine` (CPU
model, cores, RAM, OS, Python and torch versions), `date` (UTC, ISO 8601) and `command` (how to
reproduce the numbers).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import re
import time
from pathlib import Path

__all__ = ["RESERVED_KEYS", "RESULTS_DIR", "TimedTask", "machine_info", "write_results"]

#: Where `write_results` writes by default.
RESULTS_DIR = Path(__file__).resolve().parent / "results"
#: Keys `write_results` adds itself; figures may not use them.
RESERVED_KEYS = ("machine", "date", "command")

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _ram_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024**2, 1)  # kB -> GiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)
    except (ValueError, OSError, AttributeError):
        return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict:
    """The machine a benchmark ran on: CPU model, logical cores (and those usable by this process),
    RAM in GiB, OS, Python, torch and treecot versions. Reads no GPU state and imports nothing heavy."""
    cores = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = cores
    return {
        "cpu": _cpu_model(),
        "cores": cores,
        "usable_cores": usable,
        "ram_gib": _ram_gib(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "torch": _version("torch"),
        "treecot": _version("treecot"),
    }


def _check_figure(name: str, value: object) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"figure name {name!r} must be an identifier such as 'math_checks_per_s'")
    if name in RESERVED_KEYS:
        raise ValueError(
            f"figure name {name!r} is reserved: write_results adds {', '.join(RESERVED_KEYS)} itself"
        )
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"figure {name!r} is {value}: results must be finite numbers")
        return
    raise TypeError(
        f"figure {name!r} is a {type(value).__name__}: results are a flat object of numbers, strings, "
        "booleans or null"
    )


def write_results(name: str, figures: dict, command: str, results_dir: str | Path | None = None) -> Path:
    """Write `figures` plus `machine`, `date` and `command` to `<results_dir>/<name>.json`.

    Args:
        name: the benchmark's name (its module name), e.g. "verifiers".
        figures: flat mapping of figure name -> number (or string / bool / None).
        command: the shell command that reproduces the numbers.
        results_dir: defaults to `benchmarks/results/`.

    Returns the path written. Raises `ValueError` / `TypeError` naming the offending figure when the
    figures are not a flat object of finite values.
    """
    if not _NAME_RE.match(name or ""):
        raise ValueError(f"benchmark name {name!r} must be an identifier such as 'verifiers'")
    if not command or not command.strip():
        raise ValueError(
            "command must say how to reproduce the numbers, e.g. 'python -m benchmarks.verifiers'"
        )
    for key, value in figures.items():
        _check_figure(key, value)
    record = {
        **figures,
        "machine": machine_info(),
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "command": command.strip(),
    }
    out_dir = Path(results_dir) if results_dir is not None else RESULTS_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


class TimedTask:
    """Delegates to a task and adds up the wall time of its `verify` calls."""

    def __init__(self, task) -> None:
        self.task = task
        self.verify_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def verify(self, completion, problem):
        t = time.perf_counter()
        try:
            return self.task.verify(completion, problem)
        finally:
            self.verify_seconds += time.perf_counter() - t
