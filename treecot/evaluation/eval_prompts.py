"""Which system prompt each task of a `treecot eval` run is rendered with (the prompt contract,
`treecot.prompts`): given text, a treecot dataset's contract, the model's provenance, or each task's own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treecot.evaluation.eval_model import PROVENANCE_FILE
from treecot.evaluation.registry import eval_task
from treecot.hub import load_versioned
from treecot.prompts import PromptContract, contract_system_prompt

__all__ = ["CONTRACT_PROMPT", "TASK_PROMPT", "PromptChoice", "resolve_prompts"]

#: `system_prompt` values that name a prompt instead of giving one.
TASK_PROMPT = "task"
CONTRACT_PROMPT = "contract"


@dataclass
class PromptChoice:
    """The system prompt of each evaluated task and where it came from.

    Args:
        system_prompts (`dict[str, str]`):
            Task -> the system prompt every Doc of that task is rendered with.
        sources (`dict[str, str]`):
            Task -> "dataset" (`prompt_from`), "model" (the model's `treecot_provenance.json`), "given"
            (`system_prompt` text), "task" (the task's own answer-format prompt) or "contract-default"
            (`treecot.prompts.contract_system_prompt`: the tag guide plus the task's answer format, for a
            task the contract does not cover).
        contract (`treecot.prompts.PromptContract`, *optional*):
            The prompt contract read (None when the prompt came from elsewhere).
        origin (`str`, *optional*, defaults to `""`):
            Where the prompts came from, in words ("task", "given", "dataset <repo>@<revision>", …).
    """

    system_prompts: dict[str, str]
    sources: dict[str, str]
    contract: Any = None
    origin: str = ""


def _contract_from_dataset(source: str, revision: str | None) -> Any:
    sft = dpo = ()
    errors = []
    for config in ("sft", "dpo"):
        try:
            rows = load_versioned(source, config, revision=revision, split="train")
        except Exception as err:  # noqa: BLE001 — a dataset may hold either config
            errors.append(f"{config}: {err}")
            continue
        if config == "sft":
            sft = rows
        else:
            dpo = rows
    if not sft and not dpo:
        raise ValueError(
            f"--prompt-from {source!r}: no 'sft' or 'dpo' config to read the prompt from ({'; '.join(errors)})"
        )
    return PromptContract.from_rows(sft, dpo)


def resolve_prompts(
    model: str,
    tasks: Sequence[str],
    *,
    system_prompt: str | None = None,
    prompt_from: str | None = None,
    prompt_revision: str | None = None,
) -> PromptChoice:
    """Which system prompt each task is evaluated under (the prompt contract, `treecot.prompts`).

    In order: `system_prompt` ("task": each task's own prompt; "contract": the default dataset prompt;
    any other text: that text for every task); the contract of dataset `prompt_from` (at
    `prompt_revision`); the contract in the model directory's ``treecot_provenance.json`` (what the model
    was trained with); else each task's own prompt. A task the contract does not cover gets
    `contract_system_prompt(task)`, the prompt a dataset of that task would carry.

    Args:
        model (`str`):
            The evaluated model (a directory may hold a ``treecot_provenance.json`` with a prompt contract).
        tasks (`Sequence[str]`):
            The evaluation tasks.
        system_prompt (`str`, *optional*):
            "task", "contract" or the text of every task's system prompt.
        prompt_from (`str`, *optional*):
            A treecot dataset whose rows' prompt contract gives the prompts.
        prompt_revision (`str`, *optional*):
            The revision of `prompt_from`.

    Returns:
        `PromptChoice`: each task's system prompt, where it came from, and the contract read.
    """

    def own(task: str) -> str:
        return eval_task(task).system_prompt

    if system_prompt is not None:
        if system_prompt == TASK_PROMPT:
            return PromptChoice({t: own(t) for t in tasks}, dict.fromkeys(tasks, "task"), origin="task")
        if system_prompt == CONTRACT_PROMPT:
            prompts = {t: contract_system_prompt(eval_task(t)) for t in tasks}
            return PromptChoice(prompts, dict.fromkeys(tasks, "contract-default"), origin="contract-default")
        return PromptChoice(
            dict.fromkeys(tasks, system_prompt), dict.fromkeys(tasks, "given"), origin="given"
        )
    contract, origin, source = None, "", ""
    if prompt_from is not None:
        contract = _contract_from_dataset(prompt_from, prompt_revision)
        origin = f"dataset {prompt_from}" + (f"@{prompt_revision}" if prompt_revision else "")
        source = "dataset"
    else:
        path = Path(str(model)).expanduser() / PROVENANCE_FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text()).get("prompt_contract")
            except json.JSONDecodeError as err:
                raise ValueError(f"{path} is not valid JSON: {err}") from None
            if data:
                contract = PromptContract.from_dict(data)
                origin, source = f"model provenance {path}", "model"
    if contract is None:
        return PromptChoice({t: own(t) for t in tasks}, dict.fromkeys(tasks, "task"), origin="task")
    prompts, sources = {}, {}
    for t in tasks:
        text = contract.system_prompt(t)
        if text is None:
            prompts[t], sources[t] = contract_system_prompt(eval_task(t)), "contract-default"
        else:
            prompts[t], sources[t] = text, source
    return PromptChoice(prompts, sources, contract, origin)
