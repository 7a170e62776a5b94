"""From search trees to training rows (DESIGN §4, METHOD §2 and §6).

* Clean paths: a path is used as an SFT row or as a chosen response only when none of its nodes was cut
  at its token cap (`finish_reason == "length"`), loops on the same content (`treecot.tasks.diagnostics`
  repetition detector, per node text) or holds a section tag the model wrote itself (`path_defects`),
  nor when its answer section breaks the format the task's prompt asks for (`answer_defects`: one
  ``\\boxed{}``, a plain number where the prompt asks for one, no LaTeX or tags after it). Reasons:
  `DEFECT_REASONS`. Defective wrong paths stay usable as rejected responses (`unclean_rejected`).
* SFT rows: clean correct root-to-answer paths, serialized with their tags, in chat format with the
  recipe's system prompt.
* Preference rows: chosen = a clean correct path; rejected = a wrong path of the same tree picked by the
  pair rule (`PAIR_RULES`): `shortest_prefix` (the paper's: the wrong path sharing the fewest leading
  tokens with the chosen one, to limit overlap) or `latest_branch` (Step-DPO style: the wrong path that
  branches off the chosen one as late as possible). Ties: the closest length, then the lowest answer id.
* `shared_prefix` is the token-level common prefix of the two responses (student tokenizer, no special
  tokens), decoded: the text the trainer masks (METHOD §3). `shared_prefix_nodes` counts the tree nodes
  both paths go through.

Which clean correct paths are used is decided by Thoughts Length Balance (`treecot.data.balance`), which
ranks only the clean ones: "longest" never means "the one with a loop cut at the token cap".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from treecot.data.balance import LENGTH_CHOICES, rank_labels, select_by_length
from treecot.data.defects import DEFECT_REASONS as DEFECT_REASONS
from treecot.data.defects import FOREIGN_TAGS as FOREIGN_TAGS
from treecot.data.defects import answer_defects, path_defects, section_tags
from treecot.data.defects import node_defects as node_defects
from treecot.data.defects import stray_tags as stray_tags
from treecot.prompts import TAG_GUIDE, contract_system_prompt
from treecot.search.tree import Node, Tree
from treecot.tasks import get_task, task_names
from treecot.tasks.diagnostics import DiagnosticsConfig

DATA_SCHEMA_VERSION = 1
#: How the rejected path of a chosen one is picked (`pick_rejected`).
PAIR_RULES = ("shortest_prefix", "latest_branch")

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
    task = str(tree.problem.get("task", ""))
    return contract_system_prompt(get_task(task)) if task in task_names() else DEFAULT_SYSTEM_PROMPT


# --------------------------------------------------------------------------------------------------
# paths and pairs


@dataclass
class PathInfo:
    """A root-to-answer path of one tree.

    Args:
        answer_id (`int`):
            The id of the path's answer node.
        nodes (`list[Node]`):
            The path's nodes, root to answer.
        text (`str`):
            Its serialized text.
        n_tokens (`int`):
            Its student-token length.
        token_ids (`list`, *optional*):
            Its student-token ids, when the path was tokenized.
        defects (`list[str]`, *optional*, defaults to `[]`):
            Its defects (`path_defects`; empty: a clean path).
    """

    answer_id: int
    nodes: list[Node]
    text: str
    n_tokens: int
    token_ids: list | None = None
    defects: list[str] = field(default_factory=list)

    @property
    def node_ids(self) -> list[int]:
        return [n.id for n in self.nodes]

    @property
    def clean(self) -> bool:
        return not self.defects


def _zero_counts() -> dict[str, int]:
    return dict.fromkeys(DEFECT_REASONS, 0)


@dataclass
class BuildReport:
    """Counts of what went in and what came out (nothing is dropped silently).

    Args:
        trees (`int`):
            Trees read.
        problems_without_correct_path (`list[str]`), problems_without_wrong_path (`list[str]`):
            Problems with no correct (wrong) path.
        sft_rows (`int`), dpo_rows (`int`), dpo_all_rows (`int`):
            Rows of each config.
        sft_duplicates_dropped (`int`), dpo_duplicates_dropped (`int`), dpo_all_duplicates_dropped (`int`):
            Duplicate rows dropped from each config.
        correct_paths (`int`), wrong_paths (`int`):
            Correct (wrong) paths.
        pair_rule (`str`), clean_chosen (`bool`), unclean_rejected (`bool`):
            The settings used (see `build_rows`).
        correct_path_defects (`dict[str, int]`), wrong_path_defects (`dict[str, int]`):
            Paths with each defect (a path may have several).
        unclean_correct_paths (`int`), unclean_wrong_paths (`int`):
            Paths with at least one defect.
        dropped_correct_paths (`int`):
            Correct paths kept out of SFT rows and chosen responses (`clean_chosen`).
        dropped_wrong_paths (`int`):
            Wrong paths kept out of rejected responses (`unclean_rejected=False`).
        problems_without_clean_correct_path (`list[str]`), problems_without_clean_wrong_path (`list[str]`):
            Problems that had such paths but lost every one to the filter.
        rejected_unclean (`int`):
            Preference rows whose rejected path has a defect.
        shared_prefix_stats (`dict`, *optional*):
            The distribution of `shared_prefix_tokens` over the `dpo` rows (`shared_prefix_stats`).
    """

    trees: int = 0
    problems_without_correct_path: list[str] = field(default_factory=list)
    problems_without_wrong_path: list[str] = field(default_factory=list)
    sft_rows: int = 0
    dpo_rows: int = 0
    dpo_all_rows: int = 0
    sft_duplicates_dropped: int = 0
    dpo_duplicates_dropped: int = 0
    dpo_all_duplicates_dropped: int = 0
    correct_paths: int = 0
    wrong_paths: int = 0
    pair_rule: str = "shortest_prefix"
    clean_chosen: bool = True
    unclean_rejected: bool = True
    unclean_correct_paths: int = 0
    unclean_wrong_paths: int = 0
    correct_path_defects: dict[str, int] = field(default_factory=_zero_counts)
    wrong_path_defects: dict[str, int] = field(default_factory=_zero_counts)
    dropped_correct_paths: int = 0
    dropped_wrong_paths: int = 0
    problems_without_clean_correct_path: list[str] = field(default_factory=list)
    problems_without_clean_wrong_path: list[str] = field(default_factory=list)
    rejected_unclean: int = 0
    shared_prefix_stats: dict | None = None

    def to_dict(self) -> dict:
        d = {k: (dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v)
             for k, v in self.__dict__.items()}  # fmt: skip
        for name in (
            "problems_without_correct_path",
            "problems_without_wrong_path",
            "problems_without_clean_correct_path",
            "problems_without_clean_wrong_path",
        ):
            d[f"n_{name}"] = len(getattr(self, name))
        return d

    def summary(self) -> str:
        text = (
            f"{self.trees} trees → {self.sft_rows} SFT rows, {self.dpo_rows} preference rows"
            f"{f' ({self.dpo_all_rows} in dpo_all)' if self.dpo_all_rows else ''}; "
            f"{len(self.problems_without_correct_path)} problems had no correct path (no SFT row), "
            f"{len(self.problems_without_wrong_path)} had no wrong path (no preference row); "
            f"duplicates dropped: {self.sft_duplicates_dropped} SFT, {self.dpo_duplicates_dropped} preference"
        )
        reasons = ", ".join(f"{k} {v}" for k, v in self.correct_path_defects.items())
        if self.clean_chosen:
            text += (
                f"; clean paths only: {self.dropped_correct_paths} of {self.correct_paths} correct paths "
                f"dropped ({reasons}), {len(self.problems_without_clean_correct_path)} problems lost every "
                "correct path to the filter"
            )
        else:
            text += f"; {self.unclean_correct_paths} correct paths with defects kept ({reasons})"
        if self.unclean_rejected:
            text += f"; {self.rejected_unclean} pairs have a defective rejected path"
        else:
            text += (
                f"; {self.dropped_wrong_paths} defective wrong paths dropped, "
                f"{len(self.problems_without_clean_wrong_path)} problems lost every wrong path to the filter"
            )
        s = self.shared_prefix_stats
        if s:
            text += (
                f"; pair rule {self.pair_rule}, shared prefix per pair: mean {s['mean']:.1f}, median "
                f"{s['median']:g}, p90 {s['p90']:g} tokens, {s['zero_share']:.0%} of pairs share none"
            )
        return text

    def quality(self) -> dict:
        """The card's "Path quality" figures: a flat {measure: value} mapping."""
        labels = {"truncated": "cut at the token cap", "repetition": "repetition loop",
                  "stray_tag": "stray tag in a section", "answer_format": "answer breaks the prompt's format"}  # fmt: skip
        q: dict = {"pair rule": self.pair_rule, "correct paths with a defect": self.unclean_correct_paths}
        q.update({f"correct paths: {labels[k]}": v for k, v in self.correct_path_defects.items()})
        if self.clean_chosen:
            q["correct paths dropped from SFT and chosen"] = self.dropped_correct_paths
            q["problems that lost every correct path to the filter"] = len(
                self.problems_without_clean_correct_path
            )
        q["wrong paths with a defect"] = self.unclean_wrong_paths
        q.update({f"wrong paths: {labels[k]}": v for k, v in self.wrong_path_defects.items()})
        if self.unclean_rejected:
            q["preference pairs with a defective rejected path"] = self.rejected_unclean
        else:
            q["wrong paths dropped from rejected"] = self.dropped_wrong_paths
            q["problems that lost every wrong path to the filter"] = len(
                self.problems_without_clean_wrong_path
            )
        s = self.shared_prefix_stats
        if s:
            q["shared prefix tokens per pair: mean"] = round(s["mean"], 2)
            q["shared prefix tokens per pair: median"] = s["median"]
            q["shared prefix tokens per pair: 90th percentile"] = s["p90"]
            q["pairs sharing no token"] = f"{s['zero_share']:.1%}"
        return q


class _StudentTokens:
    """The student tokenizer, without special tokens: token ids of a text and the exact text of ids."""

    def __init__(self, tokenizer) -> None:
        if tokenizer is None:
            raise ValueError(
                "a student tokenizer is required: path lengths are measured in the student's tokens"
            )
        if not callable(getattr(tokenizer, "decode", None)):
            raise TypeError(
                f"the student tokenizer must have a `decode` method (the shared prefix is decoded from "
                f"tokens), got {type(tokenizer).__name__}"
            )
        self.tokenizer = tokenizer

    def encode(self, text: str) -> list:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: Sequence) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def tree_paths(
    tree: Tree,
    count_tokens: Callable[[str], int] | None = None,
    correct: bool = True,
    *,
    encode: Callable[[str], list] | None = None,
    tags: Iterable[str] | None = None,
    diagnostics: DiagnosticsConfig | None = None,
    cache: dict[int, list[str]] | None = None,
) -> list[PathInfo]:
    """Correct (or wrong) paths of `tree`, in answer-node order, with their defects.

    Args:
        tree (`Tree`):
            The search tree.
        count_tokens (`Callable[[str], int]`, *optional*):
            Measures a path's length when `encode` is not given.
        correct (`bool`, *optional*, defaults to `True`):
            Correct paths (False: wrong paths).
        encode (`Callable[[str], list]`, *optional*):
            Lengths come from `encode(text)` (which also stores the token ids) or else `count_tokens(text)`.
        tags (`Iterable[str]`, *optional*):
            Section tag names (default `section_tags(tree.nodes)`).
        diagnostics (`DiagnosticsConfig`, *optional*):
            Thresholds of the repetition detector (see `path_defects`).
        cache (`dict[int, list[str]]`, *optional*):
            See `path_defects`.
    """
    if encode is None and count_tokens is None:
        raise ValueError("tree_paths needs count_tokens or encode to measure path lengths")
    answers = tree.correct_answers() if correct else tree.wrong_answers()
    tag_set = section_tags(tree.nodes) if tags is None else frozenset(tags)
    cache = {} if cache is None else cache
    task = str(tree.problem.get("task", ""))
    out = []
    for a in answers:
        nodes = tree.path(a.id)
        text = tree.serialize_path(a.id)
        ids = encode(text) if encode is not None else None
        n_tokens = len(ids) if ids is not None else count_tokens(text)
        defects = path_defects(nodes, tags=tag_set, diagnostics=diagnostics, cache=cache)
        defects += answer_defects(a, task)
        out.append(PathInfo(a.id, nodes, text, n_tokens, ids, defects))
    return out


def prompt_messages(problem: dict, system_prompt: str) -> list[dict]:
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": problem["question"]},
    ]


def shared_node_count(a: PathInfo, b: PathInfo) -> int:
    """How many tree nodes both paths go through before they branch (hidden nodes included)."""
    k = 0
    for x, y in zip(a.nodes, b.nodes):
        if x.id != y.id:
            break
        k += 1
    return k


def shared_prefix(a: PathInfo, b: PathInfo) -> tuple[str, int]:
    """NODE-level sharing: the text of the whole nodes both paths start with (with their separator) and
    the shared node count. The rows' `shared_prefix` is token-level (`token_shared_prefix`)."""
    k = shared_node_count(a, b)
    shared_nodes = [n for n in a.nodes[:k] if n.in_history]
    text = "\n".join(n.serialize() for n in shared_nodes)
    if text:
        text += "\n"  # both continue after the separator
    assert a.text.startswith(text) and b.text.startswith(text), "shared prefix must prefix both paths"
    return text, k


def common_prefix_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common prefix of two token-id sequences."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def token_shared_prefix(
    a_ids: Sequence, b_ids: Sequence, a_text: str, b_text: str, decode: Callable[[Sequence], str]
) -> tuple[str, int]:
    """The token-level common prefix of two responses: its decoded text and its token count.

    The text is guaranteed to be a string prefix of both `a_text` and `b_text`: when decoding the common ids
    does not give one (a token ending inside a multi-byte character, a tokenizer that does not decode
    exactly), the prefix shrinks token by token until it does.

    Args:
        a_ids (`Sequence`), b_ids (`Sequence`):
            The responses' student tokens (no special tokens).
        a_text (`str`), b_text (`str`):
            The responses' texts.
        decode (`Callable[[Sequence], str]`):
            Decodes token ids to text.
    """
    n = common_prefix_length(a_ids, b_ids)
    while n > 0:
        text = decode(a_ids[:n])
        if text and a_text.startswith(text) and b_text.startswith(text):
            return text, n
        n -= 1
    return "", 0


def pick_rejected(
    chosen: PathInfo, wrong: Sequence[PathInfo], rule: str = "shortest_prefix"
) -> tuple[PathInfo, int, int] | None:
    """The rejected path of `chosen` among `wrong` under `rule`, with the tokens and the nodes both share.

    Paths need their token ids (`tree_paths(encode=...)`).

    Args:
        chosen (`PathInfo`):
            The chosen (correct) path.
        wrong (`Sequence[PathInfo]`):
            The candidate rejected paths.
        rule (`str`, *optional*, defaults to `"shortest_prefix"`):
            One of `PAIR_RULES`. shortest_prefix (the paper's): the fewest shared leading tokens.
            latest_branch (Step-DPO style): the most shared nodes (the latest branching point), then the
            most shared tokens. Ties: the closest length to `chosen`, then the lowest answer id.

    Returns:
        `tuple[PathInfo, int, int]` or `None`: the rejected path, the shared token count and the shared node
        count; None when `wrong` is empty.
    """
    if rule not in PAIR_RULES:
        raise ValueError(f"pair_rule must be one of {PAIR_RULES}, got {rule!r}")
    if chosen.token_ids is None or any(w.token_ids is None for w in wrong):
        raise ValueError("pick_rejected needs the paths' token ids: build them with tree_paths(encode=...)")
    best = None
    for w in wrong:
        n_tok = common_prefix_length(chosen.token_ids, w.token_ids)
        n_nodes = shared_node_count(chosen, w)
        tie = (abs(w.n_tokens - chosen.n_tokens), w.answer_id)
        key = (n_tok, *tie) if rule == "shortest_prefix" else (-n_nodes, -n_tok, *tie)
        if best is None or key < best[0]:
            best = (key, w, n_tok, n_nodes)
    return None if best is None else (best[1], best[2], best[3])


def _percentile(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of sorted `values`, linear interpolation (numpy's default)."""
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return float(values[lo] + (values[hi] - values[lo]) * (pos - lo))


def shared_prefix_stats(rows: Iterable[dict]) -> dict | None:
    """Distribution of `shared_prefix_tokens` over preference rows: `pairs`, `mean`, `median`, `p90`
    (linear interpolation; the three rounded to 3 decimals) and `zero_share` (the fraction of pairs
    sharing no token). None without rows."""
    values = sorted(int(r["shared_prefix_tokens"]) for r in rows)
    if not values:
        return None
    return {
        "pairs": len(values),
        "mean": round(sum(values) / len(values), 3),
        "median": round(_percentile(values, 0.5), 3),
        "p90": round(_percentile(values, 0.9), 3),
        "zero_share": sum(1 for v in values if v == 0) / len(values),
    }


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False, sort_keys=True).encode()).hexdigest()


@dataclass
class BuiltRows:
    """What `build_datasets` returns: rows of the `sft`, `dpo` and (when asked for) `dpo_all` configs."""

    sft: list[dict]
    dpo: list[dict]
    dpo_all: list[dict]
    report: BuildReport


def _check_build_options(sft_length: str, dpo_length: str, pair_rule: str) -> None:
    """Raise `ValueError` for a length choice outside `LENGTH_CHOICES` or a pair rule outside `PAIR_RULES`."""
    for name, value in (("sft_length", sft_length), ("dpo_length", dpo_length)):
        if value not in LENGTH_CHOICES:
            raise ValueError(f"{name} must be one of {LENGTH_CHOICES}, got {value!r}")
    if pair_rule not in PAIR_RULES:
        raise ValueError(f"pair_rule must be one of {PAIR_RULES}, got {pair_rule!r}")


@dataclass
class _DatasetBuilder:
    """The rows of `build_datasets`, built one tree at a time (deduplication spans all trees)."""

    tok: _StudentTokens
    system_prompt: str | None
    sft_length: str
    dpo_length: str
    source: str
    clean_chosen: bool
    unclean_rejected: bool
    pair_rule: str
    dpo_all: bool
    diagnostics: DiagnosticsConfig | None
    report: BuildReport = field(init=False)
    sft: list[dict] = field(default_factory=list)
    dpo: list[dict] = field(default_factory=list)
    dpo_every: list[dict] = field(default_factory=list)
    seen_sft: set[str] = field(default_factory=set)
    seen_dpo: set[str] = field(default_factory=set)
    seen_all: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.report = BuildReport(
            pair_rule=self.pair_rule, clean_chosen=self.clean_chosen, unclean_rejected=self.unclean_rejected
        )

    def add_tree(self, tree: Tree) -> None:
        """Add the SFT and preference rows of one tree and count its paths in the report."""
        report = self.report
        report.trees += 1
        problem = tree.problem
        pid = str(problem.get("id", ""))
        correct, wrong = self._measure_paths(tree)
        if not correct:
            report.problems_without_correct_path.append(pid)
            return
        usable = [p for p in correct if p.clean] if self.clean_chosen else correct
        report.dropped_correct_paths += len(correct) - len(usable)
        if not usable:
            report.problems_without_clean_correct_path.append(pid)
            return
        labels = rank_labels([p.n_tokens for p in usable])  # Thoughts Length Balance: usable paths only
        label_of = {p.answer_id: lab for p, lab in zip(usable, labels)}
        prompt = prompt_messages(
            problem, tree_system_prompt(tree) if self.system_prompt is None else self.system_prompt
        )
        self._add_sft_rows(problem, prompt, usable, label_of)
        pool = self._rejected_pool(pid, wrong)
        if pool:
            self._add_preference_rows(problem, prompt, usable, pool, label_of)

    def _measure_paths(self, tree: Tree) -> tuple[list[PathInfo], list[PathInfo]]:
        """The tree's correct and wrong paths (tokenized, with their defects), counted in the report."""
        report = self.report
        tags, cache = section_tags(tree.nodes), {}
        kw = dict(encode=self.tok.encode, tags=tags, diagnostics=self.diagnostics, cache=cache)
        correct = tree_paths(tree, correct=True, **kw)
        wrong = tree_paths(tree, correct=False, **kw)
        report.correct_paths += len(correct)
        report.wrong_paths += len(wrong)
        for paths, counts, attr in (
            (correct, report.correct_path_defects, "unclean_correct_paths"),
            (wrong, report.wrong_path_defects, "unclean_wrong_paths"),
        ):
            for p in paths:
                for reason in p.defects:
                    counts[reason] += 1
            setattr(report, attr, getattr(report, attr) + sum(1 for p in paths if p.defects))
        return correct, wrong

    def _add_sft_rows(
        self, problem: dict, prompt: list[dict], usable: list[PathInfo], label_of: dict[int, str]
    ) -> None:
        """One SFT row per `sft_length` selection of the usable correct paths, duplicates dropped."""
        pid = str(problem.get("id", ""))
        for p in select_by_length(usable, self.sft_length, key=lambda p: p.n_tokens):
            key = _hash(prompt, p.text)
            if key in self.seen_sft:
                self.report.sft_duplicates_dropped += 1
                continue
            self.seen_sft.add(key)
            self.sft.append(
                {
                    "schema_version": DATA_SCHEMA_VERSION,
                    "messages": [*prompt, {"role": "assistant", "content": p.text}],
                    "problem_id": pid,
                    "task": problem.get("task", ""),
                    "node_ids": p.node_ids,
                    "n_tokens": p.n_tokens,
                    "length_rank": label_of[p.answer_id],
                    "source": self.source,
                }
            )

    def _rejected_pool(self, pid: str, wrong: list[PathInfo]) -> list[PathInfo]:
        """The wrong paths that may be rejected responses (empty: no preference row for this problem)."""
        report = self.report
        if not wrong:
            report.problems_without_wrong_path.append(pid)
            return []
        pool = wrong if self.unclean_rejected else [w for w in wrong if w.clean]
        report.dropped_wrong_paths += len(wrong) - len(pool)
        if not pool:
            report.problems_without_clean_wrong_path.append(pid)
        return pool

    def _add_preference_rows(
        self,
        problem: dict,
        prompt: list[dict],
        usable: list[PathInfo],
        pool: list[PathInfo],
        label_of: dict[int, str],
    ) -> None:
        """A preference row per `dpo_length` selection of the usable correct paths (`dpo`) and, with
        `dpo_all`, per usable correct path (`dpo_all`); the rejected path is picked by the pair rule."""
        pid = str(problem.get("id", ""))
        selected = {p.answer_id for p in select_by_length(usable, self.dpo_length, key=lambda p: p.n_tokens)}
        for c in usable if self.dpo_all else [p for p in usable if p.answer_id in selected]:
            picked = pick_rejected(c, pool, self.pair_rule)
            assert picked is not None
            w, _, n_nodes = picked
            prefix, n_prefix = token_shared_prefix(c.token_ids, w.token_ids, c.text, w.text, self.tok.decode)
            row = {
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
                "shared_prefix_tokens": n_prefix,
                "shared_prefix_nodes": n_nodes,
                "pair_rule": self.pair_rule,
                "rejected_defects": list(w.defects),
                "length_rank": label_of[c.answer_id],
                "source": self.source,
            }
            key = _hash(prompt, c.text, w.text)
            if c.answer_id in selected:
                if key in self.seen_dpo:
                    self.report.dpo_duplicates_dropped += 1
                else:
                    self.seen_dpo.add(key)
                    self.dpo.append(row)
                    self.report.rejected_unclean += bool(w.defects)
            if self.dpo_all:
                if key in self.seen_all:
                    self.report.dpo_all_duplicates_dropped += 1
                else:
                    self.seen_all.add(key)
                    self.dpo_every.append(dict(row))

    def rows(self) -> BuiltRows:
        """The rows built so far, with the report's row counts and shared-prefix statistics filled in."""
        report = self.report
        report.sft_rows, report.dpo_rows, report.dpo_all_rows = (
            len(self.sft),
            len(self.dpo),
            len(self.dpo_every),
        )
        report.shared_prefix_stats = shared_prefix_stats(self.dpo)
        return BuiltRows(self.sft, self.dpo, self.dpo_every, report)


def build_datasets(
    trees: Iterable[Tree],
    tokenizer,
    *,
    system_prompt: str | None = None,
    sft_length: str = "longest",
    dpo_length: str = "shortest",
    source: str = "mcts",
    clean_chosen: bool = True,
    unclean_rejected: bool = True,
    pair_rule: str = "shortest_prefix",
    dpo_all: bool = False,
    diagnostics: DiagnosticsConfig | None = None,
) -> BuiltRows:
    """SFT rows, preference rows and (with `dpo_all`) a preference row for EVERY usable correct path.

    Args:
        trees (`Iterable[Tree]`):
            The search trees.
        tokenizer (`PreTrainedTokenizerBase`):
            The STUDENT's tokenizer: path lengths are counted in its tokens and it decodes the token-level
            `shared_prefix`.
        system_prompt (`str` or `None`, *optional*):
            See `build_rows`; None uses each tree's own search prompt.
        sft_length (`str`, *optional*, defaults to `"longest"`):
            Which correct paths become SFT rows (`LENGTH_CHOICES`).
        dpo_length (`str`, *optional*, defaults to `"shortest"`):
            Which correct paths become chosen responses of the `dpo` rows (`LENGTH_CHOICES`).
        source (`str`, *optional*, defaults to `"mcts"`):
            The rows' `source` field.
        clean_chosen (`bool`, *optional*, defaults to `True`):
            Only clean correct paths become SFT rows and chosen responses (see `build_rows`).
        unclean_rejected (`bool`, *optional*, defaults to `True`):
            Wrong paths with defects may be rejected responses (see `build_rows`).
        pair_rule (`str`, *optional*, defaults to `"shortest_prefix"`):
            How the rejected path is picked (`PAIR_RULES`, see `pick_rejected`).
        dpo_all (`bool`, *optional*, defaults to `False`):
            Also build the `dpo_all` rows (the Thoughts Length Balance ablation: `dpo_length="all"`, same
            pair rule); `dpo` stays the `dpo_length` selection.
        diagnostics (`DiagnosticsConfig` or `None`, *optional*):
            Thresholds of the repetition detector (default `DiagnosticsConfig()`).

    Returns:
        `BuiltRows`: the `sft`, `dpo` and `dpo_all` rows and the `BuildReport`.
    """
    _check_build_options(sft_length, dpo_length, pair_rule)
    builder = _DatasetBuilder(
        tok=_StudentTokens(tokenizer),
        system_prompt=system_prompt,
        sft_length=sft_length,
        dpo_length=dpo_length,
        source=source,
        clean_chosen=clean_chosen,
        unclean_rejected=unclean_rejected,
        pair_rule=pair_rule,
        dpo_all=dpo_all,
        diagnostics=diagnostics,
    )
    for tree in trees:
        builder.add_tree(tree)
    return builder.rows()


def build_rows(
    trees: Iterable[Tree],
    tokenizer,
    *,
    system_prompt: str | None = None,
    sft_length: str = "longest",
    dpo_length: str = "shortest",
    source: str = "mcts",
    clean_chosen: bool = True,
    unclean_rejected: bool = True,
    pair_rule: str = "shortest_prefix",
    diagnostics: DiagnosticsConfig | None = None,
) -> tuple[list[dict], list[dict], BuildReport]:
    """SFT rows and preference rows from trees, with clean paths, Thoughts Length Balance and deduplication.

    Args:
        trees (`Iterable[Tree]`):
            The search trees.
        tokenizer (`PreTrainedTokenizerBase`):
            The STUDENT's tokenizer: lengths are counted in its tokens; it also decodes the token-level
            `shared_prefix`.
        system_prompt (`str`, *optional*):
            None (default) uses each tree's own search prompt (`tree_system_prompt`), so the rows carry
            exactly what the generators saw; a string overrides it for every row.
        sft_length (`str`, *optional*, defaults to `"longest"`):
            Which correct paths of each problem to use for SFT — "shortest", "medium", "longest" or "all"
            (paper: longest for SFT).
        dpo_length (`str`, *optional*, defaults to `"shortest"`):
            The same for DPO (paper: shortest for DPO).
        source (`str`, *optional*, defaults to `"mcts"`):
            The rows' `source` column.
        clean_chosen (`bool`, *optional*, defaults to `True`):
            Only clean correct paths (`path_defects` empty) become SFT rows and chosen responses, and
            Thoughts Length Balance ranks only those (False: every correct path).
        unclean_rejected (`bool`, *optional*, defaults to `True`):
            Wrong paths with defects may be rejected responses (False: only clean wrong paths).
        pair_rule (`str`, *optional*, defaults to `"shortest_prefix"`):
            How the rejected path is picked (`PAIR_RULES`, see `pick_rejected`; default the paper's
            "shortest_prefix").
        diagnostics (`DiagnosticsConfig`, *optional*):
            Thresholds of the repetition detector (default `DiagnosticsConfig()`).
    """
    out = build_datasets(
        trees,
        tokenizer,
        system_prompt=system_prompt,
        sft_length=sft_length,
        dpo_length=dpo_length,
        source=source,
        clean_chosen=clean_chosen,
        unclean_rejected=unclean_rejected,
        pair_rule=pair_rule,
        diagnostics=diagnostics,
    )
    return out.sft, out.dpo, out.report
