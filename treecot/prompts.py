"""The prompt contract: what a model sees at search time, in its training rows and at evaluation is one thing.

A tree-CoT dataset owns its prompt. The system prompt that explains the node tags and the task's answer
format is rendered once, at search time (`contract_system_prompt`), recorded in every tree
(``tree.generator["system_prompt"]``), copied into every SFT and DPO row, written beside the data as
``treecot_prompt.json`` and into the card, carried by the trained model's ``treecot_provenance.json``, and
read back by ``treecot eval``::

    >>> from treecot.prompts import PromptContract, contract_system_prompt
    >>> from treecot.tasks import get_task
    >>> contract_system_prompt(get_task("gsm8k"))          # what search, rows and evaluation use
    >>> contract = PromptContract.from_rows(sft_rows, dpo_rows)
    >>> contract.system_prompt("gsm8k"), contract.response_tokens["gsm8k"]["p95"]

The contract is per task (a dataset may mix tasks whose answer formats differ). It also records the
length of the responses the model is trained to write (student tokens), so that an evaluation budget can
be checked against it (`PromptContract.check_budget`) or derived from it (`PromptContract.budget`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from treecot.tasks.base import Task

__all__ = [
    "CONTRACT_FILE",
    "CONTRACT_SCHEMA_VERSION",
    "TAG_GUIDE",
    "BudgetWarning",
    "PromptContract",
    "contract_system_prompt",
    "dataset_contract",
    "with_system_prompt",
]

CONTRACT_FILE = "treecot_prompt.json"
CONTRACT_SCHEMA_VERSION = 1

#: Explains the node tags of a serialized path (the reference implementation's base prompt does the same).
TAG_GUIDE = (
    "Think step by step in tagged sections before answering: <sub-task> breaks the problem down, "
    "<thinking> is one reasoning step, <hypothesis> proposes an assumption, <double-check> verifies "
    "requirements and results, <reflection> admits an error, <reclarify> restates the problem, and "
    "<answer> gives the final answer. Close every section with its closing tag and always finish with "
    "an <answer> section."
)


def contract_system_prompt(task: Task) -> str:
    """The default system prompt of a tree-CoT dataset for `task`: the tag guide, then the task's answer
    format (`Task.system_prompt`)."""
    task_prompt = (task.system_prompt or "").strip()
    return f"{TAG_GUIDE}\n\n{task_prompt}" if task_prompt else TAG_GUIDE


def with_system_prompt(messages: list[dict], system_prompt: str | None) -> list[dict]:
    """`messages` with their system message replaced by `system_prompt` (added first when absent).

    Args:
        messages (`list[dict]`):
            The chat messages.
        system_prompt (`str`, *optional*):
            The new system prompt; None leaves them unchanged.
    """
    if system_prompt is None:
        return [dict(m) for m in messages]
    out = [dict(m) for m in messages if m.get("role") != "system"]
    return [{"role": "system", "content": system_prompt}, *out]


class BudgetWarning(UserWarning):
    """An evaluation budget (max_new_tokens) below what the model was trained to write."""


def _percentile(values: list[int], q: float) -> int:
    """The nearest-rank `q` percentile (0 < q <= 100) of `values` (no interpolation: a length that occurs)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return int(ordered[rank - 1])


def length_stats(values: Iterable[int]) -> dict[str, int]:
    """n, p50, p95 and max of token lengths (nearest rank); empty dict for no values."""
    vals = [int(v) for v in values]
    if not vals:
        return {}
    return {"n": len(vals), "p50": _percentile(vals, 50), "p95": _percentile(vals, 95), "max": max(vals)}


@dataclass
class PromptContract:
    """Per task: the system prompt of a dataset and the token lengths of its training responses.

    Args:
        system_prompts (`dict[str, str]`, *optional*, defaults to `{}`):
            Task -> system prompt (the same text at search, in the rows and at evaluation).
        response_tokens (`dict[str, dict[str, int]]`, *optional*, defaults to `{}`):
            Task -> {n, p50, p95, max} of the responses the model is trained to write (SFT targets and DPO
            chosen responses), in the student's tokens.
        schema_version (`int`, *optional*, defaults to `CONTRACT_SCHEMA_VERSION`):
            The contract's schema version.
    """

    system_prompts: dict[str, str] = field(default_factory=dict)
    response_tokens: dict[str, dict[str, int]] = field(default_factory=dict)
    schema_version: int = CONTRACT_SCHEMA_VERSION

    # -- construction ----------------------------------------------------------------------------------
    @classmethod
    def from_rows(cls, sft_rows: Iterable[Mapping] = (), dpo_rows: Iterable[Mapping] = ()) -> PromptContract:
        """The contract a dataset's rows carry (SFT `messages` / DPO `prompt`, with their `task`).

        Raises ValueError when one task's rows carry different system prompts: the contract is broken.
        """
        prompts: dict[str, str] = {}
        lengths: dict[str, list[int]] = {}

        def note(task: str, messages: Any, where: str) -> None:
            if isinstance(messages, str):
                messages = json.loads(messages)
            system = next((m["content"] for m in messages or [] if m.get("role") == "system"), "")
            seen = prompts.setdefault(task, system)
            if seen != system:
                raise ValueError(
                    f"{where}: the rows of task {task!r} carry two different system prompts "
                    f"({seen[:60]!r}… and {system[:60]!r}…): one dataset has one prompt per task"
                )

        for row in sft_rows:
            task = str(row.get("task", ""))
            msgs = row["messages"]
            if isinstance(msgs, str):
                msgs = json.loads(msgs)
            note(task, [m for m in msgs if m.get("role") != "assistant"], "sft")
            if row.get("n_tokens") is not None:
                lengths.setdefault(task, []).append(int(row["n_tokens"]))
        for row in dpo_rows:
            task = str(row.get("task", ""))
            note(task, row["prompt"], "dpo")
            if row.get("chosen_tokens") is not None:
                lengths.setdefault(task, []).append(int(row["chosen_tokens"]))
        return cls(
            system_prompts=dict(sorted(prompts.items())),
            response_tokens={t: length_stats(v) for t, v in sorted(lengths.items())},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "system_prompts": dict(self.system_prompts),
            "response_tokens": {k: dict(v) for k, v in self.response_tokens.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PromptContract:
        if not isinstance(data, Mapping) or not isinstance(data.get("system_prompts"), Mapping):
            raise ValueError("a prompt contract needs a 'system_prompts' mapping of task -> system prompt")
        version = int(data.get("schema_version", CONTRACT_SCHEMA_VERSION))
        if version > CONTRACT_SCHEMA_VERSION:
            raise ValueError(
                f"prompt contract schema_version {version} is newer than this treecot understands "
                f"({CONTRACT_SCHEMA_VERSION}); upgrade treecot"
            )
        return cls(
            system_prompts={str(k): str(v) for k, v in data["system_prompts"].items()},
            response_tokens={
                str(k): {str(a): int(b) for a, b in v.items()}
                for k, v in (data.get("response_tokens") or {}).items()
            },
            schema_version=version,
        )

    # -- use -------------------------------------------------------------------------------------------
    def system_prompt(self, task: str) -> str | None:
        """The system prompt of `task` (None when the dataset has no rows of it)."""
        return self.system_prompts.get(task)

    def p95(self, task: str | None = None) -> int | None:
        """95th percentile of the training-response lengths of `task` (all tasks: their maximum p95)."""
        if task is not None:
            return self.response_tokens.get(task, {}).get("p95")
        values = [v["p95"] for v in self.response_tokens.values() if "p95" in v]
        return max(values) if values else None

    def budget(self, margin: float = 1.25, multiple: int = 16, minimum: int = 64) -> int | None:
        """An evaluation budget covering every training response.

        Args:
            margin (`float`, *optional*, defaults to `1.25`):
                The longest training response is multiplied by this.
            multiple (`int`, *optional*, defaults to `16`):
                The result is rounded up to a multiple of this.
            minimum (`int`, *optional*, defaults to `64`):
                The smallest budget.

        Returns:
            `int` or `None`: the budget; None without length statistics.
        """
        longest = [v["max"] for v in self.response_tokens.values() if "max" in v]
        if not longest:
            return None
        need = math.ceil(max(longest) * margin)
        return max(minimum, multiple * math.ceil(need / multiple))

    def check_budget(self, max_new_tokens: int, tasks: Iterable[str] | None = None) -> list[str]:
        """Warn (`BudgetWarning`) for each task whose training responses' p95 exceeds `max_new_tokens`.

        Args:
            max_new_tokens (`int`):
                The evaluation budget.
            tasks (`Iterable[str]`, *optional*):
                The tasks checked (default: every task with length statistics).

        Returns:
            `list[str]`: the warning messages.
        """
        messages = []
        for task in tasks if tasks is not None else list(self.response_tokens):
            p95 = self.p95(task)
            if p95 is not None and max_new_tokens < p95:
                messages.append(
                    f"max_new_tokens={max_new_tokens} is below the 95th percentile ({p95} tokens) of the "
                    f"responses the model was trained to write for {task!r}: outputs will be cut before "
                    "their answer and counted as no-answer. Raise max_new_tokens to at least "
                    f"{p95} (longest training response: {self.response_tokens[task].get('max')})."
                )
        for text in messages:
            warnings.warn(text, BudgetWarning, stacklevel=2)
        return messages


def dataset_contract(dataset: Any) -> dict[str, Any] | None:
    """The prompt contract (`PromptContract`) that training rows carry: the system prompt of
    each task and the lengths of the responses the model is trained to write. None for rows that are not
    treecot's (no `task` / `messages` / `prompt` columns)."""
    columns = set(getattr(dataset, "column_names", None) or [])
    if "task" not in columns:
        return None
    if "messages" in columns:
        contract = PromptContract.from_rows(sft_rows=dataset)
    elif "prompt" in columns and "chosen" in columns:
        contract = PromptContract.from_rows(dpo_rows=dataset)
    else:
        return None
    return contract.to_dict()
