"""The benchmarks `treecot eval` runs (`EVAL_TASKS`) and the treecot task each one reads (`eval_task`)."""

from __future__ import annotations

from typing import Any

from treecot.tasks import get_task

#: The benchmarks `treecot eval` runs: evaluation task name -> evaluation split.
#:
#: ``blocksworld`` is treecot's generated test set; ``planbench`` is PlanBench's 500 Blocksworld
#: plan-generation problems under PlanBench's one-shot prompt (the setting PlanBench reports first),
#: ``planbench_zeroshot`` the same benchmark under its zero-shot prompt. PlanBench is not shipped: it loads
#: from the checkout named by ``$TREECOT_PLANBENCH`` or, online, the Hub (`treecot.tasks.planbench`).
EVAL_TASKS: dict[str, str] = {
    "gsm8k": "test",
    "arithmetic": "test",
    "math500": "test",
    "aime24": "test",
    "aime25": "test",
    "blocksworld": "test",
    "planbench": "test",
    "planbench_zeroshot": "test",
    "ifeval": "test",
    "ifbench": "test",
}

#: Evaluation tasks that are a registered treecot task under other settings:
#: name -> (`treecot.tasks` registry name, keyword arguments of the task).
EVAL_TASK_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "planbench_zeroshot": ("planbench", {"prompt_type": "zeroshot"}),
}


def eval_task(name: str):
    """The `treecot.tasks.Task` that the evaluation task `name` reads, prompts and verifies with
    (``planbench_zeroshot``: ``get_task("planbench", prompt_type="zeroshot")``; others: ``get_task(name)``)."""
    base, kwargs = EVAL_TASK_VARIANTS.get(name, (name, {}))
    return get_task(base, **kwargs)
