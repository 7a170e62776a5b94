"""From search trees to training rows (DESIGN §4, METHOD §2).

* SFT rows: correct root-to-answer paths, serialized with their tags, in chat format with the recipe's
  system prompt.
* Preference rows: chosen = a correct path; rejected = a wrong path of the same tree sharing the
  **shortest** common prefix with it (fewest shared tokens, to limit overlap), ties broken by the closest
  length to the chosen path. `shared_prefix` is the exact text both start with.

Which correct paths are used is decided by Thoughts Length Balance (`treecot.data.balance`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from treecot.data.balance import LENGTH_CHOICES, rank_labels, select_by_length
from treecot.prompts import TAG_GUIDE, contract_system_prompt
from treecot.search.tree import Node, Tree

DATA_SCHEMA_VERSION = 1

#: The tag guide alone (`treecot.prompts.TAG_GUIDE`): the prompt of trees that record none and whose task
#: is unknown. A dataset's prompt is normally the one its trees were searched with (`tree_system_prompt`).
DEFAULT_SYSTEM_PROMPT = TAG_GUIDE


def tree_system_prompt(tree: Tree) -> str:
    """The system prompt `tree` was searched with (`generator["system_prompt"]`, the prompt contract).

    Trees written before treecot recorded it get `contract_system_prompt` of their task (the tag guide
    alone when the task is not registered).
    """
    recorded = (tree.generator or {}).get("system_prompt")
    if recorded is not None:
        return str(recorded)
    from treecot.tasks import get_task, task_names

    task = str(tree.problem.get("task", ""))
    return contract_system_prompt(get_task(task)) if task in task_names() else DEFAULT_SYSTEM_PROMPT


@dataclass
class PathInfo:
    """A root-to-answer path of one tree, with its serialized text and student-token length."""

    answer_id: int
    nodes: list[Node]
    text: str
    n_tokens: int

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self.nodes]


@dataclass
class BuildReport:
    """Counts of what went in and what came out (nothing is dropped silently)."""

    trees: int = 0
    problems_without_correct_path: list[str] = field(default_factory=list)
    problems_without_wrong_path: list[str] = field(default_factory=list)
    sft_rows: int = 0
    dpo_rows: int = 0
    sft_duplicates_dropped: int = 0
    dpo_duplicates_dropped: int = 0
    correct_paths: int = 0
    wrong_paths: int = 0

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["n_problems_without_correct_path"] = len(self.problems_without_correct_path)
        d["n_problems_without_wrong_path"] = len(self.problems_without_wrong_path)
        return d

    def summary(self) -> str:
        return (
            f"{self.trees} trees → {self.sft_rows} SFT rows, {self.dpo_rows} preference rows; "
            f"{len(self.problems_without_correct_path)} problems had no correct path (no SFT row), "
            f"{len(self.problems_without_wrong_path)} had no wrong path (no preference row); "
            f"duplicates dropped: {self.sft_duplicates_dropped} SFT, {self.dpo_duplicates_dropped} preference"
        )


def _token_counter(tokenizer) -> Callable[[str], int]:
    if tokenizer is None:
        raise ValueError("a student tokenizer is required: path lengths are measured in the student's tokens")
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def tree_paths(tree: Tree, count_tokens: Callable[[str], int], correct: bool) -> list[PathInfo]:
    """Correct (or wrong) paths of `tree`, in answer-node order."""
    answers = tree.correct_answers() if correct else tree.wrong_answers()
    out = []
    for a in answers:
        text = tree.serialize_path(a.id)
        out.append(PathInfo(a.id, tree.path(a.id), text, count_tokens(text)))
    return out


def prompt_messages(problem: dict, system_prompt: str) -> list[dict]:
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": problem["question"]},
    ]


def shared_prefix(a: PathInfo, b: PathInfo) -> tuple[str, int]:
    """The text both paths start with (whole shared nodes, with their separator) and the node count."""
    k = 0
    for x, y in zip(a.nodes, b.nodes):
        if x.id != y.id:
            break
        k += 1
    shared_nodes = [n for n in a.nodes[:k] if n.in_history]
    text = "\n".join(n.serialize() for n in shared_nodes)
    if text:
        text += "\n"  # both continue after the separator
    assert a.text.startswith(text) and b.text.startswith(text), "shared prefix must prefix both paths"
    return text, k


def pick_rejected(chosen: PathInfo, wrong: list[PathInfo], count_tokens: Callable[[str], int]):
    """The wrong path sharing the shortest common prefix with `chosen` (in tokens; ties: closest length,
    then lowest answer id). Returns (path, shared_prefix_text) or None when `wrong` is empty."""
    best = None
    for w in wrong:
        text, _ = shared_prefix(chosen, w)
        key = (count_tokens(text) if text else 0, abs(w.n_tokens - chosen.n_tokens), w.answer_id)
        if best is None or key < best[0]:
            best = (key, w, text)
    return None if best is None else (best[1], best[2])


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


def build_rows(
    trees: Iterable[Tree],
    tokenizer,
    *,
    system_prompt: str | None = None,
    sft_length: str = "longest",
    dpo_length: str = "shortest",
    source: str = "mcts",
) -> tuple[list[dict], list[dict], BuildReport]:
    """SFT rows and preference rows from trees, with Thoughts Length Balance and deduplication.

    system_prompt: None (default) uses each tree's own search prompt (`tree_system_prompt`), so the rows
    carry exactly what the generators saw; a string overrides it for every row.
    sft_length / dpo_length: which correct paths of each problem to use — "shortest", "medium",
    "longest" or "all" (paper: longest for SFT, shortest for DPO). Lengths are counted in `tokenizer`'s
    tokens (the STUDENT's).
    """
    for name, value in (("sft_length", sft_length), ("dpo_length", dpo_length)):
        if value not in LENGTH_CHOICES:
            raise ValueError(f"{name} must be one of {LENGTH_CHOICES}, got {value!r}")
    count = _token_counter(tokenizer)
    report = BuildReport()
    sft, dpo = [], []
    seen_sft, seen_dpo = set(), set()
    for tree in trees:
        report.trees += 1
        problem = tree.problem
        pid = str(problem.get("id", ""))
        correct = tree_paths(tree, count, correct=True)
        wrong = tree_paths(tree, count, correct=False)
        report.correct_paths += len(correct)
        report.wrong_paths += len(wrong)
        if not correct:
            report.problems_without_correct_path.append(pid)
            continue
        labels = rank_labels([p.n_tokens for p in correct])
        label_of = {p.answer_id: lab for p, lab in zip(correct, labels)}
        prompt = prompt_messages(
            problem, tree_system_prompt(tree) if system_prompt is None else system_prompt
        )

        for p in select_by_length(correct, sft_length, key=lambda p: p.n_tokens):
            key = _hash(prompt, p.text)
            if key in seen_sft:
                report.sft_duplicates_dropped += 1
                continue
            seen_sft.add(key)
            sft.append(
                {
                    "schema_version": DATA_SCHEMA_VERSION,
                    "messages": [*prompt, {"role": "assistant", "content": p.text}],
                    "problem_id": pid,
                    "task": problem.get("task", ""),
                    "node_ids": p.node_ids,
                    "n_tokens": p.n_tokens,
                    "length_rank": label_of[p.answer_id],
                    "source": source,
                }
            )

        if not wrong:
            report.problems_without_wrong_path.append(pid)
            continue
        for c in select_by_length(correct, dpo_length, key=lambda p: p.n_tokens):
            picked = pick_rejected(c, wrong, count)
            assert picked is not None
            w, prefix = picked
            key = _hash(prompt, c.text, w.text)
            if key in seen_dpo:
                report.dpo_duplicates_dropped += 1
                continue
            seen_dpo.add(key)
            dpo.append(
                {
                    "schema_version": DATA_SCHEMA_VERSION,
                    "prompt": prompt,
                    "chosen": c.text,
                    "rejected": w.text,
                    "shared_prefix": prefix,
                    "problem_id": pid,
                    "task": problem.get("task", ""),
                    "chosen_node_ids": c.node_ids,
                    "rejected_node_ids": w.node_ids,
                    "chosen_tokens": c.n_tokens,
                    "rejected_tokens": w.n_tokens,
                    "shared_prefix_tokens": count(prefix) if prefix else 0,
                    "length_rank": label_of[c.answer_id],
                    "source": source,
                }
            )
    report.sft_rows, report.dpo_rows = len(sft), len(dpo)
    return sft, dpo, report
