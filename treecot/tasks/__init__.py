"""Tasks: problem sets, answer verifiers and diagnostics. Knows nothing of models."""

from __future__ import annotations

import importlib

from treecot.tasks.base import MalformedProblemError, Task, Verdict, make_problem, problem_id

# name -> "module:Class". Imported lazily so that `import treecot.tasks` stays cheap.
_REGISTRY: dict[str, str] = {
    "gsm8k": "treecot.tasks.math:GSM8KTask",
    "math": "treecot.tasks.math:MATHTask",
    "math500": "treecot.tasks.math:MATH500Task",
    "aime24": "treecot.tasks.math:AIME24Task",
    "aime25": "treecot.tasks.math:AIME25Task",
    "arithmetic": "treecot.tasks.arithmetic:ArithmeticTask",
    "blocksworld": "treecot.tasks.blocksworld:BlocksworldTask",
    "planbench": "treecot.tasks.planbench:PlanBenchTask",
    "ifeval": "treecot.tasks.instructions:IFEvalTask",
    "ifbench": "treecot.tasks.instructions:IFBenchTask",
    "multi_if": "treecot.tasks.instructions:MultiIFTask",
}


def task_names() -> list[str]:
    return list(_REGISTRY)


def get_task(name: str, **kwargs) -> Task:
    """Return a fresh `Task` instance by registry name (e.g. "gsm8k", "blocksworld", "ifeval")."""
    if isinstance(name, Task):
        return name
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(_REGISTRY)}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)(**kwargs)


__all__ = ["MalformedProblemError", "Task", "Verdict", "get_task", "make_problem", "problem_id", "task_names"]
