"""The Space's Playground tab: which models it offers and may load, and generation.

- Models: `discover_models` lists the trained models under the data roots (with the training data named by
  their ``treecot_provenance.json``, `read_provenance`); `resolve_model` accepts a menu choice, an embedded
  name, an allowed Hub id or a directory under the data roots (a LoRA adapter only with a base model the
  app may open, `check_adapter_base`); `MODELS` keeps the loaded ones.
- Generation (`PlaygroundHandlers`): a question typed in or drawn from a task, the answer streamed within
  the time limit, the verifier's verdict and the diagnostics; optionally an MCTS decode.
"""

from __future__ import annotations

import html
import json
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.data.extract import DEFAULT_SYSTEM_PROMPT
from treecot.evaluation import decode
from treecot.evaluation.runner import PROVENANCE_FILE
from treecot.hub import is_repo_id
from treecot.models import embedded_model_paths, known_models, load_model
from treecot.prompts import PromptContract, contract_system_prompt, with_system_prompt
from treecot.space.config import SpaceConfig
from treecot.space.errors import (
    SpaceError,
    call_with_deadline,
    request_deadline,
    time_limit_message,
)
from treecot.space.render import render_sections, snippet, tree_plot_spec, vega_plot
from treecot.space.sources import (
    LRU,
    check_local_path,
    check_model_dir,
    checked_dir,
    input_text,
    open_checked,
    read_checked_text,
    real_path,
    refuse_hub,
)
from treecot.tasks import get_task, make_problem
from treecot.tasks.base import Verdict
from treecot.tasks.diagnostics import diagnose

logger = logging.getLogger(__name__)

#: Trained-model discovery (`discover_models`): most models listed, most folders visited per scan, deepest
#: folder looked at (levels below a data root) and most entries read from one folder.
MAX_LISTED_MODELS = 50
MAX_MODEL_SCAN_DIRS = 2_000
MAX_MODEL_SCAN_DEPTH = 6
MAX_MODEL_SCAN_ENTRIES = 2_000
#: Most directory entries one discovery scan reads in all; and the shortest time between two scans (the
#: refresh button of any visitor starts one).
MAX_MODEL_SCAN_TOTAL = 50_000
MODEL_RESCAN_SECONDS = 10.0
#: Largest ``treecot_provenance.json`` (bytes) the Space reads.
MAX_PROVENANCE_BYTES = 1 << 20
#: Files that make a folder a model: ``config.json`` with weights, or a LoRA adapter's config.
_MODEL_WEIGHTS = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
#: Folders discovery never walks into: hidden ones and the Hub cache's own layout (Hub ids, not trained runs).
_SCAN_SKIP_PREFIXES = (".", "models--", "datasets--", "spaces--", "__pycache__")


def check_adapter_base(
    folder: Path, roots: Sequence[Path], hub_allowed, what: str = "model directory"
) -> None:
    """A LoRA adapter folder loads its base model from the path or Hub id in its ``adapter_config.json``
    (``base_model_name_or_path``): refuse (`SpaceError`) a base that is a folder outside `roots` (other than
    an embedded model's own cache folder) or a Hub id `hub_allowed` does not allow. No adapter: nothing to
    check.

    Args:
        folder (`Path`):
            The model folder.
        roots (`Sequence[Path]`):
            The data roots.
        hub_allowed (`Callable[[str], bool]`):
            Whether the app may open a Hub id.
        what (`str`, *optional*, defaults to `"model directory"`):
            What the folder is, for messages.
    """
    config_path = Path(folder) / "adapter_config.json"
    if not os.path.lexists(config_path):
        return
    try:
        data = json.loads(read_checked_text(config_path, roots, f"{what}: adapter_config.json"))
    except ValueError:
        raise SpaceError(f"{what}: adapter_config.json is not JSON") from None
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(base, str) or not base.strip():
        raise SpaceError(f"{what}: adapter_config.json names no base model")

    if base in known_models():
        return
    looks_local = base.startswith((".", "/", "~")) or os.path.exists(base)
    if looks_local:
        real = Path(os.path.realpath(os.path.expanduser(base)))
        if real in {Path(os.path.realpath(p)) for p in embedded_model_paths().values()}:
            return
        try:
            check_model_dir(real, roots, what=f"{what}: its base model")
        except SpaceError:
            raise SpaceError(f"{what}: its base model {base!r} is outside the data roots") from None
        return
    if not is_repo_id(base) or not hub_allowed(base):
        raise SpaceError(f"{what}: its base model {base!r} is a Hub id this app may not open")


class ModelCache:
    """Loaded `(model, tokenizer)` pairs, least recently used evicted; one load at a time per name."""

    def __init__(self, size: int = 2) -> None:
        self._lru = LRU(size)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def cached(self, name: str) -> tuple[Any, Any] | None:
        return self._lru.get(name)

    def load(self, name: str) -> tuple[Any, Any]:
        hit = self._lru.get(name)
        if hit is not None:
            return hit
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            hit = self._lru.get(name)
            if hit is None:
                hit = load_model(name)
                self._lru.put(name, hit)
            return hit


#: Shared by every app of the process: models are large.
MODELS = ModelCache()


def resolve_model(choice: str, config: SpaceConfig) -> str:
    """The model to load for a menu choice.

    Args:
        choice (`str`):
            A configured or embedded name, a Hub id (one `config` allows), or a directory under the data
            roots.
        config (`SpaceConfig`):
            The app's configuration.

    Returns:
        `str`: the name or Hub id, or the resolved directory; anything else is refused with a `SpaceError`.
    """

    choice = input_text(choice, "model")
    if not choice:
        raise SpaceError("choose a model")
    if choice in config.models or choice in known_models():
        return choice
    if is_repo_id(choice):
        if not config.hub_allowed(choice):
            raise refuse_hub("model", choice)
        return choice
    path = check_local_path(choice, config.roots, what="model")
    if not path.is_dir():
        raise SpaceError(f"model directory {choice!r} does not exist")
    folder = check_model_dir(path, config.roots, what=f"model directory {choice!r}")
    check_adapter_base(folder, config.roots, config.hub_allowed, what=f"model directory {choice!r}")
    return str(folder)


@dataclass(frozen=True)
class LocalModel:
    """A model folder under the data roots, found by `discover_models` (nothing of it is loaded).

    Args:
        path (`Path`):
            The resolved folder: what the model menu sends and `resolve_model` accepts.
        label (`str`):
            Its menu entry: the folder relative to its data root, then the training data and stage from its
            ``treecot_provenance.json`` when it has one.
        provenance (`dict`, *optional*, defaults to `{}`):
            That file's content (empty when there is none or it cannot be read).
    """

    path: Path
    label: str
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def contract(self):
        """The prompt contract the model was trained with (`treecot.prompts.PromptContract`) or None."""
        return _provenance_contract(self.provenance)


def read_provenance(folder: str | os.PathLike, roots: Sequence[Path]) -> dict:
    """The ``treecot_provenance.json`` of a model folder, read through `open_checked`.

    Args:
        folder (`str` or `os.PathLike`):
            The model folder.
        roots (`Sequence[Path]`):
            The data roots the file must resolve inside.

    Returns:
        `dict`: the record; empty when there is none or it cannot be read (leads outside the roots, larger
        than `MAX_PROVENANCE_BYTES`, not a JSON object).
    """

    path = Path(folder) / PROVENANCE_FILE
    if not os.path.lexists(path):
        return {}
    try:
        with open_checked(path, roots, PROVENANCE_FILE) as f:
            raw = f.read(MAX_PROVENANCE_BYTES + 1)
    except SpaceError as e:
        logger.warning("treecot space: %s of %s not read: %s", PROVENANCE_FILE, folder, e)
        return {}
    if len(raw) > MAX_PROVENANCE_BYTES:
        logger.warning("treecot space: %s of %s is too large; not read", PROVENANCE_FILE, folder)
        return {}
    try:
        data = json.loads(raw.decode("utf-8"))
    except ValueError:  # not UTF-8, not JSON
        logger.warning("treecot space: %s of %s is not JSON; not read", PROVENANCE_FILE, folder)
        return {}
    return data if isinstance(data, dict) else {}


def _provenance_contract(provenance: dict):
    """The `PromptContract` of a provenance record, or None (absent or malformed)."""

    data = provenance.get("prompt_contract") if isinstance(provenance, dict) else None
    if not data:
        return None
    try:
        return PromptContract.from_dict(data)
    except (AttributeError, TypeError, ValueError, ArithmeticError):  # e.g. "p95": Infinity
        return None


def trained_system_prompt(contract, task) -> str:
    """The system prompt a model trained under `contract` is prompted with for `task`, as `treecot eval`
    picks it: the contract's prompt of the task, else the prompt a dataset of that task would carry
    (`treecot.prompts.contract_system_prompt`)."""

    return contract.system_prompt(task.name) or contract_system_prompt(task)


def _is_model_folder(names: set[str]) -> bool:
    return ("config.json" in names and any(w in names for w in _MODEL_WEIGHTS)) or (
        "adapter_config.json" in names
    )


def _model_label(folder: Path, roots: Sequence[Path], provenance: dict) -> str:
    root = next(r for r in roots if folder == r or r in folder.parents)
    rel = folder.relative_to(root).as_posix() if folder != root else ""
    label = f"{root.name}/{rel}" if len(roots) > 1 or not rel else rel
    if not provenance:
        return label

    def value(key: str) -> str:
        item = provenance.get(key)
        return snippet(str(item), 80) if isinstance(item, (str, int, float)) and str(item).strip() else ""

    data, revision, stage = value("dataset_repo"), value("dataset_revision"), value("dataset_config")
    if data and revision:
        data = f"{data}@{revision}"
    detail = " on ".join(bit for bit in (stage, data) if bit)
    return f"{label} (trained{': ' if stage else ' on ' if data else ''}{detail})"


def discover_models(
    roots: Sequence[Path],
    *,
    max_models: int = MAX_LISTED_MODELS,
    max_dirs: int = MAX_MODEL_SCAN_DIRS,
    max_depth: int = MAX_MODEL_SCAN_DEPTH,
    max_entries: int = MAX_MODEL_SCAN_TOTAL,
    hub_allowed=None,
) -> list[LocalModel]:
    """Model folders under `roots` (resolved), for the playground's menu; no model is loaded.

    A model folder holds ``config.json`` with weights (``model.safetensors``, ``pytorch_model.bin`` or
    their sharded indexes) or a LoRA ``adapter_config.json``; the list is sorted by label. The roots are
    walked breadth first (the shallowest models are kept when the cap is hit). Every folder is resolved
    (symlinks included) and must lie inside the roots (`real_path`); a model folder is listed only when
    nothing in it leads outside them (`check_model_dir`, as when it loads) and, for an adapter, when its base
    model is one the app may open (`check_adapter_base`). Hidden folders, the Hub cache's own
    ``models--*``/``datasets--*`` layout and the folders inside a model (its checkpoints) are not walked.

    Args:
        roots (`Sequence[Path]`):
            The data roots.
        max_models (`int`, *optional*, defaults to `MAX_LISTED_MODELS`):
            List at most this many models.
        max_dirs (`int`, *optional*, defaults to `MAX_MODEL_SCAN_DIRS`):
            Visit at most this many folders (`MAX_MODEL_SCAN_ENTRIES` entries each).
        max_depth (`int`, *optional*, defaults to `MAX_MODEL_SCAN_DEPTH`):
            Walk at most this many folders deep.
        max_entries (`int`, *optional*, defaults to `MAX_MODEL_SCAN_TOTAL`):
            The whole scan reads at most this many directory entries, model folders' own checks included.
        hub_allowed (`Callable[[str], bool]`, *optional*):
            Whether an adapter's base model may be this Hub id (default: none).
    """
    import itertools
    from collections import deque

    found: list[LocalModel] = []
    seen: set[Path] = set()
    queue: deque[tuple[Path, int]] = deque()
    for root in roots:
        try:
            real = checked_dir(root, roots, "data root")
        except SpaceError:
            continue
        if real not in seen:
            seen.add(real)
            queue.append((real, 0))
    visited = read = 0
    allowed = hub_allowed or (lambda name: False)
    while queue and len(found) < max_models:
        if visited >= max_dirs or read >= max_entries:
            logger.warning(
                "treecot space: model discovery stopped after %d folders (%d entries)", visited, read
            )
            break
        folder, depth = queue.popleft()
        visited += 1
        try:
            with os.scandir(folder) as it:
                entries = sorted(itertools.islice(it, MAX_MODEL_SCAN_ENTRIES), key=lambda e: e.name)
        except OSError:
            continue
        read += len(entries)
        if _is_model_folder({e.name for e in entries}):
            try:
                if (
                    sum(1 for _ in os.scandir(folder)) + read > max_entries
                ):  # its check walks it: budget first
                    raise SpaceError("over the discovery's entry budget")
                check_model_dir(folder, roots, what="model directory")
                check_adapter_base(folder, roots, allowed)
            except (SpaceError, OSError) as e:
                logger.warning("treecot space: model folder %s not listed: %s", folder, e)
                continue
            provenance = read_provenance(folder, roots)
            found.append(LocalModel(folder, _model_label(folder, roots, provenance), provenance))
            continue
        if depth >= max_depth:
            continue
        for entry in entries:
            if entry.name.startswith(_SCAN_SKIP_PREFIXES):
                continue
            try:
                if not (entry.is_symlink() or entry.is_dir(follow_symlinks=False)):
                    continue
                real = real_path(entry.path, roots, "folder")  # a link leading outside: never listed
            except (OSError, SpaceError):
                continue
            if real not in seen and real.is_dir():
                seen.add(real)
                queue.append((real, depth + 1))
    return sorted(found, key=lambda m: m.label)


def _model_contract(name: str, config: SpaceConfig):
    """The prompt contract of the model `resolve_model` returned, when it is a local folder whose
    ``treecot_provenance.json`` (inside the data roots) carries one; else None."""

    if name in known_models() or is_repo_id(name) or not os.path.isdir(name):
        return None
    return _provenance_contract(read_provenance(name, config.roots))


def _default_split(task) -> str:
    return "test" if "test" in task.splits else task.splits[0]


class _Deadline:
    """A transformers `StoppingCriteria` that ends generation at a wall-clock deadline and remembers it."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.triggered = False

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        if time.monotonic() >= self.deadline:
            self.triggered = True
        return torch.full((input_ids.shape[0],), self.triggered, dtype=torch.bool, device=input_ids.device)


class _DeadlineGenerator:
    """A `Generator` proxy refusing calls past a deadline: bounds an MCTS decode between search steps."""

    def __init__(self, inner, deadline: float, timeout: float) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.deadline = deadline
        self.timeout = timeout

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        return self.inner.apply_chat_template(messages, add_generation_prompt=add_generation_prompt)

    def generate(self, requests):
        if time.monotonic() >= self.deadline:
            raise SpaceError(time_limit_message(self.timeout, "MCTS decode"))
        return self.inner.generate(requests)


def _unverified(task):
    """`task` with a verifier that never fails: for questions typed by the user (no reference answer),
    so that an MCTS decode can run; its verdicts say "not verified"."""

    class Unverified(type(task)):
        def __init__(self) -> None:  # share the configured task's state, skip its constructor
            self.__dict__.update(task.__dict__)

        def verify(self, completion: str, problem: dict) -> Verdict:
            return Verdict(correct=False, answered=False, reason="no reference answer: not verified")

    return Unverified()


def _verdict_markdown(verdict, problem: dict | None) -> str:
    if verdict is None:
        return (
            "**not verified** — this question has no reference answer. Draw a question from the task to "
            "get the verifier's verdict."
        )
    mark = "✓ **correct**" if verdict.correct else ("✗ **wrong**" if verdict.answered else "✗ **no answer**")
    extracted = verdict.extracted
    if isinstance(extracted, (list, tuple)):
        extracted = "; ".join(map(str, extracted))
    lines = [mark]
    if extracted not in (None, ""):
        lines.append(f"answer read: `{html.escape(snippet(str(extracted), 200), quote=False)}`")
    if (
        problem is not None
        and problem.get("reference")
        and problem.get("task")
        not in (
            "ifeval",
            "ifbench",
            "multi_if",
        )
    ):
        lines.append(f"reference: `{html.escape(snippet(str(problem['reference']), 200), quote=False)}`")
    if verdict.reason:
        lines.append(html.escape(snippet(verdict.reason, 400), quote=False))
    return " · ".join(lines)


class PlaygroundHandlers:
    """The Playground tab's handlers, mixed into `SpaceApp` (which sets `config` and the model listing's
    state: `_local_models`, `_models_scanned`, `_models_lock`); each returns component values."""

    config: SpaceConfig
    _local_models: list[LocalModel] | None
    _models_scanned: float
    _models_lock: threading.Lock

    def local_models(self, refresh: bool = False) -> list[LocalModel]:
        """The model folders under the data roots (`discover_models`), scanned once and cached; `refresh`
        scans again."""
        with self._models_lock:
            stale = time.monotonic() - self._models_scanned >= MODEL_RESCAN_SECONDS
            if self._local_models is None or (refresh and stale):
                self._local_models = discover_models(self.config.roots, hub_allowed=self.config.hub_allowed)
                self._models_scanned = time.monotonic()
            return list(self._local_models)

    def model_choices(self, refresh: bool = False) -> list[tuple[str, str]]:
        """The model menu: the configured models, then the trained models found under the data roots
        (labelled, sending their resolved folder)."""
        choices = [(m, m) for m in self.config.models]
        configured = {os.path.realpath(m) for m in self.config.models if os.path.isdir(m)}
        choices += [
            (m.label, str(m.path)) for m in self.local_models(refresh) if str(m.path) not in configured
        ]
        return choices

    def refresh_models(self, current: str | None = None):
        """The model menu scanned again (the Playground's refresh button); the current choice is kept."""
        import gradio as gr

        return gr.Dropdown(choices=self.model_choices(refresh=True), value=current or self.config.model)

    def draw_question(self, task_name: str, seed: Any = None):
        """Draw a question from a task.

        Args:
            task_name (`str`):
                The task.
            seed (`Any`, *optional*):
                Picks the problem (None or negative: random).

        Returns:
            `tuple`: (question, problem record, info).
        """

        task = get_task(input_text(task_name, "task"))
        split = _default_split(task)
        problems = call_with_deadline(
            lambda: task.load(split, limit=self.config.draw_pool),
            request_deadline(self.config.request_timeout),
            self.config.request_timeout,
            "loading the task's problems",
        )
        if len(problems) == 0:
            raise SpaceError(f"task {task.name!r} has no problems in split {split!r}")
        try:
            seed = None if seed in (None, "") or int(seed) < 0 else int(seed)
        except (TypeError, ValueError):
            raise SpaceError(f"the draw seed must be a whole number (-1: random), got {seed!r}") from None
        rng = random.Random(seed)
        index = rng.randrange(len(problems))
        problem = dict(problems[index])
        info = f"problem `{problem['id']}` ({task.name}, {split} split, row {index})"
        return problem["question"], problem, info

    def _validate_request(
        self, question: str, max_new_tokens: Any, temperature: Any, use_mcts: bool, rollouts: Any
    ):
        cfg = self.config
        question = input_text(question, "question")
        if not question:
            raise SpaceError("enter a question or draw one from the task")
        if len(question) > cfg.max_input_chars:
            raise SpaceError(
                f"input too long: {len(question)} characters; this Space accepts at most {cfg.max_input_chars}"
            )
        try:
            max_new = int(max_new_tokens)
        except (TypeError, ValueError):
            raise SpaceError(f"max new tokens must be a whole number, got {max_new_tokens!r}") from None
        if not 1 <= max_new <= cfg.max_new_tokens:
            raise SpaceError(f"max new tokens must be between 1 and {cfg.max_new_tokens}, got {max_new}")
        try:
            temp = float(temperature)
        except (TypeError, ValueError):
            raise SpaceError(f"temperature must be a number, got {temperature!r}") from None
        if not 0.0 <= temp <= 2.0:
            raise SpaceError(f"temperature must be between 0 and 2, got {temp:g}")
        n_rollouts = 0
        if use_mcts:
            try:
                n_rollouts = int(rollouts)
            except (TypeError, ValueError):
                raise SpaceError(f"MCTS rollouts must be a whole number, got {rollouts!r}") from None
            if not 1 <= n_rollouts <= cfg.max_mcts_rollouts:
                raise SpaceError(
                    f"MCTS rollouts must be between 1 and {cfg.max_mcts_rollouts}, got {n_rollouts}"
                )
        return question, max_new, temp, n_rollouts

    def generate(
        self,
        model_choice: str,
        task_name: str,
        question: str,
        problem: dict | None,
        system_prompt: str = "treecot",
        max_new_tokens: Any = 256,
        temperature: Any = 0.7,
        use_mcts: bool = False,
        rollouts: Any = 4,
    ) -> Iterator[tuple]:
        """Stream (answer HTML, raw text, verdict, diagnostics, status, MCTS tree plot).

        Args:
            model_choice (`str`):
                The model menu's choice (`resolve_model`).
            task_name (`str`):
                The task.
            question (`str`):
                The question, typed in or drawn.
            problem (`dict`, *optional*):
                The drawn problem record; verified only when it is this task's and question's.
            system_prompt (`str`, *optional*, defaults to `"treecot"`):
                "treecot" (the prompt a trained model was trained with, else the tag guide) or "task" (the
                task's own prompt).
            max_new_tokens (`Any`, *optional*, defaults to `256`):
                Generation cap, between 1 and the config's `max_new_tokens`.
            temperature (`Any`, *optional*, defaults to `0.7`):
                Sampling temperature, between 0 and 2.
            use_mcts (`bool`, *optional*, defaults to `False`):
                Decode by MCTS.
            rollouts (`Any`, *optional*, defaults to `4`):
                The MCTS rollouts, between 1 and the config's `max_mcts_rollouts`.
        """

        start = time.monotonic()
        deadline = start + float(self.config.request_timeout)
        question, max_new, temp, n_rollouts = self._validate_request(
            question, max_new_tokens, temperature, use_mcts, rollouts
        )
        task = get_task(input_text(task_name, "task"))
        drawn = (
            isinstance(problem, dict)
            and str(problem.get("task", "")) == task.name
            and str(problem.get("question", "")).strip() == question
            and bool(str(problem.get("reference", "")).strip())
        )
        record = dict(problem) if drawn else make_problem(task.name, question, "", {"source": "playground"})
        if system_prompt not in ("treecot", "task"):
            raise SpaceError(f"system prompt must be 'treecot' or 'task', got {system_prompt!r}")
        name = resolve_model(model_choice, self.config)
        # "treecot": the prompt a trained model was trained with (its treecot_provenance.json), else the
        # tag guide; "task": the task's own prompt.
        contract = _model_contract(name, self.config) if system_prompt == "treecot" else None
        trained_prompt = trained_system_prompt(contract, task) if contract is not None else None
        prompt_note = " with the system prompt it was trained with" if trained_prompt else ""
        yield "", "", "", None, f"loading model `{html.escape(name)}`{prompt_note} …", None
        loaded = MODELS.cached(name) or call_with_deadline(
            lambda: MODELS.load(name), deadline, self.config.request_timeout, "loading the model"
        )
        model, tokenizer = loaded
        messages = task.prompt(record)
        if system_prompt == "treecot":
            messages = with_system_prompt(messages, trained_prompt or DEFAULT_SYSTEM_PROMPT)
        if use_mcts:
            yield from self._mcts(
                model,
                tokenizer,
                task,
                record,
                drawn,
                max_new,
                temp,
                n_rollouts,
                start,
                deadline,
                system_prompt=trained_prompt,
            )
            return
        yield from self._stream(
            model, tokenizer, task, record, drawn, messages, max_new, temp, start, deadline
        )

    def _finish(self, task, record: dict, drawn: bool, text: str, tokenizer, max_new: int, finish: str):

        verdict = task.verify(text, record) if drawn else None
        diagnostics = diagnose(
            text,
            task,
            tokenizer=tokenizer,
            max_tokens=max_new,
            finish_reason=finish,
            problem=record if drawn else None,
        )
        return _verdict_markdown(verdict, record if drawn else None), diagnostics

    def _stream(self, model, tokenizer, task, record, drawn, messages, max_new, temp, start, deadline):
        import torch
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")
        stop = _Deadline(deadline)
        streamer = TextIteratorStreamer(
            tokenizer,
            skip_prompt=True,
            skip_special_tokens=True,
            timeout=float(self.config.request_timeout) + 30,
        )
        sampling = (
            {"do_sample": True, "temperature": temp, "top_p": 0.9}
            if temp > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                with torch.no_grad():
                    box["out"] = model.generate(
                        **enc,
                        max_new_tokens=max_new,
                        streamer=streamer,
                        stopping_criteria=StoppingCriteriaList([stop]),
                        pad_token_id=tokenizer.pad_token_id,
                        **sampling,
                    )
            except BaseException as e:  # noqa: BLE001 - re-raised in the handler
                box["error"] = e
                streamer.end()

        worker = threading.Thread(target=run, name="treecot-space-generate", daemon=True)
        worker.start()
        text = ""
        for chunk in streamer:
            text += chunk
            yield (
                render_sections(text),
                text,
                "",
                None,
                f"generating … {time.monotonic() - start:.1f} s",
                None,
            )
        worker.join()
        if "error" in box:
            raise box["error"]
        out = box["out"]
        n_prompt = enc["input_ids"].shape[1]
        generated = out[0, n_prompt:].tolist()
        eos = {
            tokenizer.eos_token_id,
            *(
                [model.generation_config.eos_token_id]
                if isinstance(model.generation_config.eos_token_id, int)
                else (model.generation_config.eos_token_id or [])
            ),
        }
        if stop.triggered and not (generated and generated[-1] in eos):
            finish = "time"
        elif generated and generated[-1] in eos:
            finish = "stop"
        else:
            finish = "length" if len(generated) >= max_new else "stop"
        verdict_md, diagnostics = self._finish(
            task, record, drawn, text, tokenizer, max_new, "length" if finish == "length" else "stop"
        )
        elapsed = time.monotonic() - start
        status = f"{len(generated)} tokens in {elapsed:.1f} s · finish: {finish}"
        if finish == "time":
            status = (
                f"⏱ stopped: the request reached the time limit of {self.config.request_timeout:g} s per request "
                f"(answer cut after {len(generated)} tokens)"
            )
        elif finish == "length":
            status += f" (hit the limit of {max_new} new tokens)"
        yield render_sections(text), text, verdict_md, diagnostics, status, None

    def _mcts(
        self,
        model,
        tokenizer,
        task,
        record,
        drawn,
        max_new,
        temp,
        n_rollouts,
        start,
        deadline,
        system_prompt: str | None = None,
    ):
        """An MCTS decode; `system_prompt` None: `mcts_decode`'s default (the task's contract prompt)."""

        from treecot.backends.transformers_backend import TransformersGenerator  # torch: loaded on use

        inner = TransformersGenerator(
            model, tokenizer, dtype=None, max_batch_size=8, cache_budget_tokens=8192
        )
        generator = _DeadlineGenerator(inner, deadline, float(self.config.request_timeout))
        config = decode.MCTSDecodeConfig(
            max_rollouts=n_rollouts,
            max_depth=6,
            max_node_tokens=min(128, max_new),
            temperature=temp if temp > 0 else 0.7,
        )
        yield "", "", "", None, f"MCTS decode: searching with {n_rollouts} rollouts …", None
        search_task = task if drawn else _unverified(task)
        [result] = decode.mcts_decode([record], search_task, generator, config, system_prompt=system_prompt)
        tree = result.tree
        text = result.texts[0]
        best = decode.best_answers(tree, 1)
        verdict_md, diagnostics = self._finish(task, record, drawn, text, tokenizer, max_new, "stop")
        elapsed = time.monotonic() - start
        status = (
            f"MCTS decode: {tree.stats.get('rollouts', 0)} rollouts, {len(tree)} nodes, best answer "
            f"{'node ' + str(best[0].id) if best else '(none)'} with value {result.values[0]:.3f} "
            f"(token confidence) · {elapsed:.1f} s"
        )
        title = f"MCTS decode: {len(tree)} nodes, {tree.stats.get('rollouts', 0)} rollouts (bold: the chosen path)"
        plot = vega_plot(tree_plot_spec(tree, best[0].id if best else None, title=title), "scatter")
        yield render_sections(text), text, verdict_md, diagnostics, status, plot
