"""The treecot Gradio Space: a search-tree explorer, a model playground and the leaderboard.

    >>> from treecot.space import SpaceConfig, build_app, launch_space
    >>> demo = build_app(SpaceConfig(data_roots=["outputs"], leaderboard="me/treecot-leaderboard"))
    >>> launch_space(port=7860)                       # what `treecot space` runs (127.0.0.1 only)

Tabs (each reachable directly with ``?tab=trees|playground|leaderboard``):

1. **Trees** — a treecot dataset (a local folder under the data roots, written by ``treecot build``, a
   folder of ``trees-*.jsonl`` shards written by ``treecot generate``, or a Hub id + revision) and one
   of its problems: the MCTS tree as an interactive Vega-Lite chart (nodes coloured by type, answers
   by correctness, opacity = Q, size = visits, tooltips with the text, zoom and pan), a node picker
   showing the node's text and the path from the root, the SFT path and the chosen / rejected pair
   built from this tree with their shared prefix highlighted. ``?dataset=…&revision=…&problem=…&node=…``
   opens a tree directly.
2. **Playground** — a model (default SmolLM2-135M-Instruct; any Hub id or a local directory under the
   data roots; the menu also lists the trained models found under the data roots, `discover_models`)
   and a task; a question typed in or drawn from the task; the answer streams in with
   tagged reasoning nodes shown as collapsible sections; then the verifier's verdict and the
   diagnostics. A trained model is prompted with the system prompt it was trained with (the prompt
   contract of its ``treecot_provenance.json``). Optionally an MCTS decode (token-confidence value, small
   rollout budget) whose tree is drawn like the Trees tab's.
3. **Leaderboard** — the leaderboard dataset as a sortable, filterable table with a bar chart of a
   chosen metric, two runs side by side, and the paper's reference rows on request.

Bounds (`SpaceConfig`): the longest question accepted, the most new tokens, a time limit per request, a
queue with a size limit and a concurrency limit, and the file boundary:

* Data roots: every dataset file the app opens (a tree shard, a revision folder, a card, ``refs.json``, a
  parquet file) goes through `open_checked`, which resolves all symlinks and ``..`` of that very file and
  refuses it unless it lies inside one of the roots, at open time (the opened descriptor is checked
  again); a symlink anywhere in a dataset that leads outside makes the whole load a refusal naming it. A
  local model directory is refused when any file in it leads outside the roots; the trained models the
  playground lists are found by a bounded walk of the roots that resolves every folder and lists none
  that leads outside (`discover_models`).
* The Hub: a Hub id is read only with ``allow_hub=True`` (``treecot space --allow-hub``); off by default,
  because a Hub id reads the network or ``$TREECOT_CACHE/hub``, outside the roots. Hub ids the operator
  configured (`SpaceConfig.dataset`, ``.leaderboard``, ``.models``) are always read.
* Uploads: no component takes a file, so gradio's upload route is limited to `MAX_UPLOAD_BYTES` (0: every
  non-empty file is refused with HTTP 413) by `launch_kwargs` (gradio's ``max_file_size``).

Every handler turns failures into a message (`gradio.Error`); the traceback goes to the server log only.

Programmatic API (each event has an ``api_name``; `gradio_client.Client(url).view_api()` lists them):
``/load_dataset``, ``/show_problem``, ``/show_node``, ``/draw_question``, ``/generate``, ``/leaderboard``,
``/compare_runs``.
"""

from __future__ import annotations

import functools
import gzip
import html
import io
import json
import logging
import math
import os
import random
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import gradio as gr
    import pandas as pd
    import pyarrow as pa

    from treecot.search.tree import Tree

logger = logging.getLogger(__name__)

__all__ = [
    "LocalModel",
    "SpaceConfig",
    "SpaceError",
    "TreeSource",
    "build_app",
    "check_local_path",
    "check_model_dir",
    "default_data_roots",
    "discover_models",
    "launch_space",
    "load_tree_source",
    "open_checked",
    "real_path",
    "render_sections",
    "split_tagged",
    "tree_plot_spec",
]

TABS = ("trees", "playground", "leaderboard")
#: Hub ids: ``namespace/name`` (one slash, no ``..``).
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,95}/[A-Za-z0-9][A-Za-z0-9._\-]{0,95}$")
#: Branch, tag or commit names accepted for datasets.
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,127}$")
#: Colours of the chosen / rejected texts of a preference pair.
SHARED_PREFIX_COLOR = "#f2c94c"
ANSWER_LABEL_CORRECT = "answer (correct)"
ANSWER_LABEL_WRONG = "answer (wrong)"
ANSWER_LABEL = "answer"
#: Largest file (bytes) gradio's upload route accepts: no component of the Space takes a file, so none.
MAX_UPLOAD_BYTES = 0
#: How to let the Space read Hub ids, for the refusal message.
ALLOW_HUB_HINT = (
    "this Space does not read the Hub: launch it with allow_hub=True (`treecot space --allow-hub`) to open "
    "Hub ids, or enter a folder under the data roots"
)
#: Most files and folders a local model directory may hold (each is resolved before the model loads).
MAX_MODEL_DIR_ENTRIES = 10_000
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


class SpaceError(ValueError):
    """A user-facing problem (bad input, a path outside the data roots, an exceeded bound): shown as a
    message in the app, never as a traceback."""


# ----------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------


def default_data_roots() -> list[Path]:
    """``outputs/`` (relative to the working directory) and ``$TREECOT_CACHE/hub``."""
    from treecot.models import cache_dir

    return [Path("outputs"), cache_dir() / "hub"]


@dataclass
class SpaceConfig:
    """What the Space may read and how much work one request may cost.

    data_roots:        directories the app may read local datasets and models from (default
                       `default_data_roots()`); resolved (symlinks followed) once, at construction.
    model:             the playground's default model (an embedded name, a Hub id or a local directory).
    models:            choices offered in the model menu (the default model is always first; the trained
                       models found under the data roots follow, `discover_models`); users may type any
                       other Hub id or a directory under the data roots.
    leaderboard:       the leaderboard dataset (Hub id or local folder) shown in the Leaderboard tab.
    dataset:           a dataset opened in the Trees tab when the page loads (None: empty).
    allow_hub:         whether users may open Hub ids (datasets, leaderboards, models); off by default:
                       a Hub id is read from the network or `$TREECOT_CACHE/hub`, outside the data roots.
                       Hub ids named by `model`, `models`, `leaderboard` or `dataset` are always read.
    max_input_chars:   longest question (characters) the playground accepts.
    max_new_tokens:    most tokens one answer may generate (also the MCTS decode's per-node cap).
    request_timeout:   seconds one request may take (loading, generating, searching).
    concurrency_limit: requests run at once (the rest wait in the queue).
    max_queue_size:    requests the queue holds; further ones are refused with a "queue is full" message.
    max_mcts_rollouts: largest rollout budget of the playground's MCTS decode.
    draw_pool:         questions are drawn from the first `draw_pool` problems of a task's split.
    """

    data_roots: Sequence[str | os.PathLike] | None = None
    model: str = "smollm2-135m-instruct"
    models: Sequence[str] = ("smollm2-135m-instruct",)
    leaderboard: str | None = None
    dataset: str | None = None
    allow_hub: bool = False
    max_input_chars: int = 4000
    max_new_tokens: int = 512
    request_timeout: float = 120.0
    concurrency_limit: int = 1
    max_queue_size: int = 32
    max_mcts_rollouts: int = 8
    draw_pool: int = 200
    roots: list[Path] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_input_chars", "max_new_tokens", "concurrency_limit", "max_queue_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpaceConfig.{name} must be a positive integer, got {value!r}")
        for name in ("max_mcts_rollouts", "draw_pool"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SpaceConfig.{name} must be a positive integer, got {value!r}")
        timeout = self.request_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ValueError(
                f"SpaceConfig.request_timeout must be a positive number of seconds, got {timeout!r}"
            )
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError(
                f"SpaceConfig.model must be a model name, Hub id or directory, got {self.model!r}"
            )
        if not isinstance(self.allow_hub, bool):
            raise ValueError(f"SpaceConfig.allow_hub must be True or False, got {self.allow_hub!r}")
        roots = default_data_roots() if self.data_roots is None else list(self.data_roots)
        if isinstance(self.data_roots, (str, os.PathLike)):
            roots = [self.data_roots]
        self.roots = []
        for root in roots:
            resolved = Path(root).expanduser().resolve()
            if resolved not in self.roots:
                self.roots.append(resolved)
        self.models = tuple(dict.fromkeys([self.model, *self.models]))

    def hub_allowed(self, name: str) -> bool:
        """Whether the Hub id `name` may be read: the Hub is allowed, or the operator configured `name`."""
        return self.allow_hub or name in (self.dataset, self.leaderboard, *self.models)


# ----------------------------------------------------------------------------------------------------
# Errors and bounds
# ----------------------------------------------------------------------------------------------------


def _user_message(error: BaseException) -> str:
    """The text shown for an exception: its message for expected errors, type + message otherwise."""
    if isinstance(error, KeyError) and error.args:
        text = str(error.args[0])
    else:
        text = str(error) or type(error).__name__
    if isinstance(error, (SpaceError, ValueError, KeyError, FileNotFoundError, TimeoutError)):
        return text
    return f"{type(error).__name__}: {text}"


def _guarded(fn: Callable) -> Callable:
    """Wrap a handler (function or generator) so every exception reaches the user as a `gr.Error`."""
    import gradio as gr

    def convert(error: Exception) -> gr.Error:
        if isinstance(error, gr.Error):
            return error
        if not isinstance(error, SpaceError):
            logger.exception("treecot space: %s failed", fn.__name__)
        return gr.Error(_user_message(error), print_exception=False)

    if _is_generator_function(fn):

        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - every failure becomes a message
                raise convert(e) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - every failure becomes a message
            raise convert(e) from None

    return wrapper


def _is_generator_function(fn: Callable) -> bool:
    import inspect

    return inspect.isgeneratorfunction(fn)


def _time_limit_message(seconds: float, what: str) -> str:
    return f"{what} exceeded the time limit of {seconds:g} s per request"


def _call_with_deadline(fn: Callable[[], Any], deadline: float, timeout: float, what: str) -> Any:
    """Run `fn` in a worker thread and wait until `deadline` (time.monotonic()); past it, raise a
    `SpaceError` naming `what`. The worker cannot be killed: it finishes in the background and its
    result is dropped (the loaders it runs are bounded by their own I/O timeouts)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SpaceError(_time_limit_message(timeout, what))
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    worker = threading.Thread(target=run, name=f"treecot-space-{what}", daemon=True)
    worker.start()
    worker.join(remaining)
    if worker.is_alive():
        raise SpaceError(_time_limit_message(timeout, what))
    if "error" in box:
        raise box["error"]
    return box["value"]


def is_hub_id(text: str) -> bool:
    """``namespace/name`` with Hub-safe characters that does not exist as a local path."""
    return bool(_HUB_ID.match(text)) and ".." not in text and not os.path.exists(text)


def check_local_path(path: str | os.PathLike, roots: Sequence[Path], what: str = "path") -> Path:
    """`path` resolved (``~``, ``..`` and symlinks) if it lies inside one of `roots`, else `SpaceError`."""
    raw = str(path)
    if "\x00" in raw:
        raise SpaceError(f"{what} {raw!r} contains a NUL character")
    resolved = Path(raw).expanduser().resolve()
    for root in roots:
        if resolved == root or root in resolved.parents:
            return resolved
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    raise SpaceError(
        f"{what} {raw!r} is outside the data roots this Space may read ({allowed}); "
        "use a Hub id (namespace/name) or a path under one of them"
    )


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _outside(what: str, roots: Sequence[Path]) -> SpaceError:
    """The refusal of a file that leads outside `roots` (its target is not named: that would leak it)."""
    allowed = ", ".join(str(r) for r in roots) or "(none configured)"
    return SpaceError(f"{what} leads outside the data roots this Space may read ({allowed}); not served")


def real_path(path: str | os.PathLike, roots: Sequence[Path], what: str = "file") -> Path:
    """`path` with every symlink and ``..`` resolved (it must exist) if the result lies inside one of
    `roots` (already resolved), else `SpaceError`. Unlike `check_local_path`, which resolves what a user
    typed, this is applied to every file and folder the Space reads, at the moment it reads it."""
    try:
        real = Path(os.path.realpath(os.fspath(path), strict=True))
    except FileNotFoundError:
        raise SpaceError(f"{what} does not exist") from None
    except OSError as e:  # a symlink loop, a permission error
        raise SpaceError(f"{what} cannot be resolved: {e.strerror or type(e).__name__}") from None
    if not _inside(real, roots):
        raise _outside(what, roots)
    return real


def _opened_path(fd: int) -> Path | None:
    """The path the kernel reports for an open descriptor (Linux's /proc), or None where there is none."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None
    if not target.startswith("/"):
        return None
    return Path(target.removesuffix(" (deleted)"))


def open_checked(path: str | os.PathLike, roots: Sequence[Path], what: str = "file") -> IO[bytes]:
    """Open the regular file `path` for reading (binary) if it resolves inside `roots`; else `SpaceError`.

    The one way the Space opens a dataset file. `path` is resolved (all symlinks and ``..``, `real_path`),
    the resolved path is opened without following a symlink (``O_NOFOLLOW``: a file swapped for a link
    after the check fails to open) and without blocking (a FIFO), and the descriptor itself is checked
    again: it must be a regular file whose path (Linux: ``/proc/self/fd``) lies inside the roots, or, where
    the kernel does not say, the very file that was resolved."""
    real = real_path(path, roots, what)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(real, flags)
    except OSError as e:
        raise SpaceError(f"{what} cannot be opened: {e.strerror or type(e).__name__}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SpaceError(f"{what} is not a regular file")
        opened = _opened_path(fd)
        if opened is None:
            now = os.stat(real, follow_symlinks=False)
            if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
                raise SpaceError(f"{what} changed while it was opened; not served")
        elif not _inside(opened, roots):
            raise _outside(what, roots)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _checked_dir(path: str | os.PathLike, roots: Sequence[Path], what: str) -> Path:
    """`path` resolved (`real_path`) if it is a folder inside `roots`."""
    real = real_path(path, roots, what)
    if not real.is_dir():
        raise SpaceError(f"{what} is not a folder")
    return real


def _read_checked_text(path: Path, roots: Sequence[Path], what: str) -> str:
    with open_checked(path, roots, what) as f:
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise SpaceError(f"{what} is not UTF-8 text") from None


def check_model_dir(path: Path, roots: Sequence[Path], what: str = "model directory") -> Path:
    """`path` (a resolved folder inside `roots`) if nothing in it leads outside `roots`, else `SpaceError`.

    A model directory is read by transformers, not through `open_checked`, so every file and folder in it
    (symlinked folders walked into, once each) is resolved here before the model loads; a folder with
    more than `MAX_MODEL_DIR_ENTRIES` entries is refused rather than walked."""
    base = _checked_dir(path, roots, what)
    seen = {base}
    stack: list[tuple[Path, str]] = [(base, "")]
    count = 0
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise SpaceError(f"{what}: cannot list {prefix or '.'!r}: {e.strerror}") from None
        for entry in entries:
            count += 1
            if count > MAX_MODEL_DIR_ENTRIES:
                raise SpaceError(f"{what} holds more than {MAX_MODEL_DIR_ENTRIES} entries; not read")
            shown = f"{prefix}{entry.name}"
            real = real_path(entry.path, roots, f"{what}: {shown!r}")
            if real.is_dir() and real not in seen:
                seen.add(real)
                stack.append((real, f"{shown}/"))
    return base


def check_adapter_base(
    folder: Path, roots: Sequence[Path], hub_allowed, what: str = "model directory"
) -> None:
    """A LoRA adapter folder loads its base model from the path or Hub id in its ``adapter_config.json``
    (``base_model_name_or_path``): refuse (`SpaceError`) a base that is a folder outside `roots` (other than
    an embedded model's own cache folder) or a Hub id `hub_allowed` does not allow. No adapter: nothing to
    check."""
    config_path = Path(folder) / "adapter_config.json"
    if not os.path.lexists(config_path):
        return
    try:
        data = json.loads(_read_checked_text(config_path, roots, f"{what}: adapter_config.json"))
    except ValueError:
        raise SpaceError(f"{what}: adapter_config.json is not JSON") from None
    base = data.get("base_model_name_or_path") if isinstance(data, dict) else None
    if not isinstance(base, str) or not base.strip():
        raise SpaceError(f"{what}: adapter_config.json names no base model")
    from treecot.models import embedded_model_paths, known_models

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
    if not is_hub_id(base) or not hub_allowed(base):
        raise SpaceError(f"{what}: its base model {base!r} is a Hub id this app may not open")


def _text(value: Any, what: str) -> str:
    """`value` as stripped text ('' for None); anything but a string is refused with a message."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SpaceError(f"{what} must be text, got {type(value).__name__}")
    return value.strip()


def _check_revision(revision: str | None) -> str:
    revision = _text(revision, "revision") or "main"
    if not _REVISION.match(revision) or ".." in revision:
        raise SpaceError(f"invalid revision {revision!r}: use a branch, tag or commit name")
    return revision


# ----------------------------------------------------------------------------------------------------
# Datasets of trees
# ----------------------------------------------------------------------------------------------------


@dataclass
class TreeSource:
    """The trees (and, when the dataset has them, the SFT and preference rows) of one dataset version.

    kind:      "layout" (a local Hub-layout folder), "shards" (trees-*.jsonl files), "hub" (a Hub id).
    location:  the resolved folder / file, or the Hub id.
    revision:  the version read ("main" for shard folders, which have none).
    trees:     problem id -> Tree JSON dict, in dataset order.
    sft:       problem id -> SFT rows (None when the dataset has no `sft` config).
    dpo:       problem id -> preference rows (None when the dataset has no `dpo` config).
    revisions: the branches and tags of the dataset (empty for shard folders).
    """

    kind: str
    location: str
    revision: str
    trees: dict[str, dict]
    sft: dict[str, list[dict]] | None
    dpo: dict[str, list[dict]] | None
    revisions: list[str]

    def tree(self, problem_id: str) -> Tree:
        from treecot.search.tree import Tree

        pid = _text(problem_id, "problem")
        if not pid:
            raise SpaceError("choose a problem of the dataset")
        if pid not in self.trees:
            matches = [p for p in self.trees if p.startswith(pid)]
            if len(matches) != 1:
                some = ", ".join(list(self.trees)[:10])
                raise SpaceError(
                    f"problem {pid!r} is not in {self.location} (revision {self.revision}); "
                    f"{len(self.trees)} problems, e.g. {some}"
                )
            pid = matches[0]
        return Tree.from_dict(self.trees[pid])


def _group(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in rows:
        out.setdefault(str(row.get("problem_id", "")), []).append(row)
    return out


def _tree_dicts_from_config(ds) -> dict[str, dict]:
    trees: dict[str, dict] = {}
    for row in ds:
        tree = json.loads(row["tree"])
        trees[str(tree["problem"].get("id", row.get("problem_id", "")))] = tree
    return trees


def _read_versioned(location: str, revision: str, kind: str) -> TreeSource:
    from treecot.data.hub import list_versions, load_versioned

    try:
        versions = list_versions(location)
        revisions = [*versions.branches, *versions.tags]
    except Exception as e:  # noqa: BLE001 - a listing failure should not hide the data
        logger.info("could not list versions of %s: %s", location, e)
        revisions = []
    try:
        trees = load_versioned(location, "trees", revision=revision, split="train")
    except (ValueError, FileNotFoundError) as e:
        raise SpaceError(f"cannot read the trees of {location} at revision {revision!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - Hub errors of every kind become one message
        raise SpaceError(
            f"cannot load dataset {location!r} at revision {revision!r}: {type(e).__name__}: {e}"
        ) from None

    def optional(config: str) -> dict[str, list[dict]] | None:
        try:
            return _group(load_versioned(location, config, revision=revision, split="train").to_list())
        except (ValueError, FileNotFoundError):  # the dataset has no such config
            return None

    return TreeSource(
        kind=kind,
        location=location,
        revision=revision,
        trees=_tree_dicts_from_config(trees),
        sft=optional("sft"),
        dpo=optional("dpo"),
        revisions=revisions,
    )


_GLOB_CHARS = frozenset("*?[")


class _Layout:
    """A local dataset in Hub layout (``refs.json`` and one folder per branch and tag, each with a card
    whose YAML ``configs`` names its parquet files; written by `treecot.data.hub`), read the way
    `treecot.data.hub.load_versioned` reads it, except that every file goes through `open_checked`."""

    def __init__(self, path: Path, roots: Sequence[Path], name: str) -> None:
        self.path = path
        self.roots = roots
        self.name = name

    def refs(self) -> tuple[dict, dict]:
        """The branches and tags of ``refs.json``."""
        from treecot.data.hub import LOCAL_REFS_FILE

        what = f"{LOCAL_REFS_FILE} of {self.name}"
        try:
            refs = json.loads(_read_checked_text(self.path / LOCAL_REFS_FILE, self.roots, what))
        except json.JSONDecodeError:
            raise SpaceError(f"{what} is not valid JSON") from None
        branches = refs.get("branches") if isinstance(refs, dict) else None
        tags = refs.get("tags") if isinstance(refs, dict) else None
        if not isinstance(branches, dict) or not branches:
            raise SpaceError(f"no treecot dataset at {self.name} ({LOCAL_REFS_FILE} lists no branch)")
        return branches, tags if isinstance(tags, dict) else {}

    def revision(self, revision: str, refs: tuple[dict, dict]) -> tuple[Path, dict[str, dict]]:
        """The resolved folder of `revision` and the configs its card declares."""
        import yaml

        branches, tags = refs
        if revision not in branches and revision not in tags:
            available = ", ".join(sorted(map(str, [*branches, *tags])))
            raise SpaceError(f"revision {revision!r} not found in {self.name}; available: {available}")
        at = f"of {self.name} at revision {revision!r}"
        folder = _checked_dir(
            self.path / revision, self.roots, f"revision folder {revision!r} of {self.name}"
        )
        card = folder / "README.md"
        if not os.path.lexists(card):
            raise SpaceError(f"revision {revision!r} of {self.name} holds no complete push yet")
        text = _read_checked_text(card, self.roots, f"card (README.md) {at}")
        match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, flags=re.S)
        try:
            metadata = (yaml.safe_load(match.group(1)) if match else None) or {}
        except yaml.YAMLError:
            raise SpaceError(f"the card (README.md) {at} has invalid YAML front matter") from None
        configs = metadata.get("configs") if isinstance(metadata, dict) else None
        declared = {c.get("config_name"): c for c in configs or [] if isinstance(c, dict)}
        return folder, declared

    def _files(self, folder: Path, pattern: Any, at: str) -> list[Path]:
        """The files of one ``data_files`` pattern (relative, inside the revision folder)."""
        parts = Path(pattern).parts if isinstance(pattern, str) and pattern else ()
        if not parts or Path(pattern).is_absolute() or ".." in parts:
            raise SpaceError(f"the card {at} names data files {pattern!r} outside its folder")
        literal = list(parts[:-1])
        for i, part in enumerate(literal):
            if _GLOB_CHARS & set(part):
                literal = literal[:i]
                break
        base = folder
        if literal:  # the pattern's fixed folders: refused before they are listed when they lead outside
            base = _checked_dir(folder.joinpath(*literal), self.roots, f"folder {'/'.join(literal)!r} {at}")
        rest = "/".join(parts[len(literal) :])
        if _GLOB_CHARS & set(rest):
            return sorted(base.glob(rest))
        return [base / rest] if os.path.lexists(base / rest) else []

    def table(self, folder: Path, declared: dict[str, dict], config: str, revision: str) -> pa.Table | None:
        """The ``train`` split of `config` (None when the card declares no such config)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if config not in declared:
            return None
        at = f"of {self.name} at revision {revision!r}"
        entries = declared[config].get("data_files") or []
        if isinstance(entries, str):
            entries = [{"split": "train", "path": entries}]
        patterns: list[Any] = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("split", "train") == "train":
                paths = entry.get("path")
                patterns.extend(paths if isinstance(paths, list) else [paths])
        if not patterns:
            raise SpaceError(f"config {config!r} {at} has no train split")
        tables = []
        for pattern in patterns:
            files = self._files(folder, pattern, at)
            if not files:
                raise SpaceError(f"no file matches {pattern!r} for config {config!r} {at}")
            for file in files:
                rel = file.relative_to(folder).as_posix() if folder in file.parents else file.name
                what = f"data file {rel!r} {at}"
                with open_checked(file, self.roots, what) as f:
                    try:
                        tables.append(pq.read_table(f))
                    except (pa.ArrowException, OSError) as e:
                        raise SpaceError(f"{what} is not a readable parquet file: {e}") from None
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables, promote_options="default")


def _read_layout(
    path: Path, revision: str, roots: Sequence[Path], *, kind: str = "layout", name: str | None = None
) -> TreeSource:
    """The trees (and `sft` / `dpo` rows) of a local Hub-layout dataset at `revision`, read through
    `open_checked` against `roots`."""
    name = name or str(path)
    layout = _Layout(path, roots, name)
    refs = layout.refs()
    folder, declared = layout.revision(revision, refs)
    trees = layout.table(folder, declared, "trees", revision)
    if trees is None:
        available = ", ".join(sorted(map(str, declared))) or "(none)"
        raise SpaceError(
            f"cannot read the trees of {name} at revision {revision!r}: its card declares no `trees` config "
            f"(configs: {available})"
        )

    def optional(config: str) -> dict[str, list[dict]] | None:
        table = layout.table(folder, declared, config, revision)
        return None if table is None else _group(table.to_pylist())

    return TreeSource(
        kind=kind,
        location=name,
        revision=revision,
        trees=_tree_dicts_from_config(trees.to_pylist()),
        sft=optional("sft"),
        dpo=optional("dpo"),
        revisions=[*refs[0], *refs[1]],
    )


def _shard_lines(stream: IO[bytes], gz: bool) -> Iterator[dict]:
    """Tree dicts of one JSONL shard (skipping a half-written last line, like
    `treecot.search.runner.iter_tree_dicts`)."""
    raw = gzip.GzipFile(fileobj=stream) if gz else stream
    for line in io.TextIOWrapper(raw, encoding="utf-8"):
        if not line.endswith("\n"):
            break  # a killed writer's partial line
        if line.strip():
            yield json.loads(line)


def _read_shards(path: Path, roots: Sequence[Path]) -> TreeSource:
    """The trees of a shard file or a folder of ``trees-*.jsonl`` shards, each opened with `open_checked`."""
    from treecot.search.runner import tree_files

    files = [path] if path.is_file() else tree_files(path)
    trees: dict[str, dict] = {}
    for file in files:
        with open_checked(file, roots, f"tree shard {file.name!r} of {path}") as f:
            for tree in _shard_lines(f, gz=file.name.endswith(".gz")):
                trees.setdefault(str(tree["problem"].get("id", "")), tree)
    return TreeSource("shards", str(path), "main", trees, None, None, [])


def _hub_layout_dir(repo_id: str) -> Path | None:
    """Where `treecot.data.hub` reads the Hub id `repo_id` from when no token and no endpoint is configured
    (the local Hub layout under ``$TREECOT_CACHE/hub``); None when it would reach the Hub."""
    from treecot.data.hub import _online_configured, default_local_dir

    return None if _online_configured(None, None) else default_local_dir(repo_id)


def _hub_cache_roots() -> list[Path]:
    """The root a Hub id read offline stays inside: ``$TREECOT_CACHE/hub``."""
    from treecot.models import cache_dir

    return [(cache_dir() / "hub").expanduser().resolve()]


def _refuse_hub(what: str, source: str) -> SpaceError:
    return SpaceError(f"{what} {source!r} is a Hub id; {ALLOW_HUB_HINT}")


def _local_kind(path: Path) -> str:
    from treecot.data.hub import LOCAL_REFS_FILE
    from treecot.search.runner import tree_files

    if (path / LOCAL_REFS_FILE).is_file():
        return "layout"
    if path.is_file() and (path.name.endswith(".jsonl") or path.name.endswith(".jsonl.gz")):
        return "shards"
    if path.is_dir() and tree_files(path):
        return "shards"
    raise SpaceError(
        f"{str(path)!r} is neither a treecot dataset folder (no refs.json: write one with `treecot build`) "
        "nor a folder of tree shards (trees-*.jsonl from `treecot generate`)"
    )


def _fingerprint(path: Path) -> float:
    """Latest modification time of what a local source reads (cache invalidation)."""
    from treecot.data.hub import LOCAL_REFS_FILE

    if path.is_file():
        return path.stat().st_mtime
    stamps = [p.stat().st_mtime for p in path.glob("*.jsonl*")]
    refs = path / LOCAL_REFS_FILE
    if refs.is_file():
        stamps.append(refs.stat().st_mtime)
    return max(stamps, default=0.0)


class _LRU:
    """A small thread-safe LRU of loaded objects."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def load_tree_source(
    source: str, revision: str | None, roots: Sequence[Path], *, allow_hub: bool = False
) -> TreeSource:
    """Read a dataset of trees: a local folder / shard file inside `roots`, or (with `allow_hub`) a Hub id
    (+ revision). Every local file is opened with `open_checked`: a symlink anywhere in the dataset that
    leads outside `roots` is refused. A Hub id read offline comes from ``$TREECOT_CACHE/hub``, checked
    against that folder.

    Raises `SpaceError` with a readable message for every user mistake (empty input, a path outside the
    roots or missing, a folder that holds no trees, an unknown revision, a Hub id while the Hub is not
    allowed, an unreachable Hub dataset).
    """
    source = _text(source, "dataset")
    if not source:
        raise SpaceError("enter a dataset: a local folder under the data roots or a Hub id (namespace/name)")
    if len(source) > 1024:
        raise SpaceError(f"dataset name too long ({len(source)} characters)")
    revision = _check_revision(revision)
    if is_hub_id(source):
        if not allow_hub:
            raise _refuse_hub("dataset", source)
        local = _hub_layout_dir(source)
        if local is None:
            return _read_versioned(source, revision, "hub")
        from treecot.data.hub import LOCAL_REFS_FILE

        if not os.path.lexists(local / LOCAL_REFS_FILE):
            raise SpaceError(
                f"dataset {source!r} not found: no Hub token or endpoint is configured (HF_TOKEN / HF_ENDPOINT) "
                f"and the local Hub layout under $TREECOT_CACHE/hub does not hold it"
            )
        return _read_layout(local, revision, _hub_cache_roots(), kind="hub", name=source)
    path = check_local_path(source, roots, what="dataset")
    if not path.exists():
        raise SpaceError(f"dataset {source!r} does not exist ({path})")
    kind = _local_kind(path)
    if kind == "layout":
        return _read_layout(path, revision, roots)
    return _read_shards(path, roots)


# ----------------------------------------------------------------------------------------------------
# Tree views
# ----------------------------------------------------------------------------------------------------


def _kind(node) -> str:
    if node.terminal or node.type == "answer":
        if node.correct is None:
            return ANSWER_LABEL
        return ANSWER_LABEL_CORRECT if node.correct else ANSWER_LABEL_WRONG
    return node.type


def _kind_color(kind: str) -> str:
    from treecot.search.show import CORRECT_COLOR, OTHER_COLOR, TYPE_COLORS, WRONG_COLOR

    if kind == ANSWER_LABEL_CORRECT:
        return CORRECT_COLOR
    if kind == ANSWER_LABEL_WRONG:
        return WRONG_COLOR
    if kind == ANSWER_LABEL:
        return "#17becf"
    return TYPE_COLORS.get(kind, OTHER_COLOR)


def _snippet(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def tree_plot_spec(tree: Tree, selected: int | None = None, title: str | None = None) -> dict:
    """A Vega-Lite (v5) spec of `tree`: edges to parents; nodes coloured by type (answers by correctness),
    opacity growing with Q (mean reward), area with visits; tooltips with the node's fields and text;
    the path from the root to `selected` drawn bold and that node ringed; zoom and pan with the mouse."""
    from treecot.search.show import _layout

    pos = _layout(tree)
    on_path = {n.id for n in tree.path(selected)} | {0} if selected is not None else set()
    nodes, edges = [], []
    for n in tree.nodes:
        x, y = pos[n.id]
        nodes.append(
            {
                "id": n.id,
                "x": x,
                "depth": -y,
                "type": n.type,
                "kind": _kind(n),
                "role": n.role or "",
                "visits": n.visits,
                "q": round(n.q, 4),
                "reward": "" if n.reward is None else round(float(n.reward), 4),
                "tokens": n.n_tokens,
                "text": _snippet(n.text, 240),
                "selected": n.id == selected,
            }
        )
        if n.parent is not None:
            px, py = pos[n.parent]
            edges.append({"x": px, "depth": -py, "x2": x, "depth2": -y, "on_path": n.id in on_path})
    kinds = list(dict.fromkeys(d["kind"] for d in nodes))
    n_leaves = sum(1 for n in tree.nodes if not n.children)
    depth = max(d["depth"] for d in nodes)
    x_scale = {"domain": [-0.5, max(n_leaves - 0.5, 0.5)], "nice": False, "zero": False}
    y_scale = {"domain": [-0.3, depth + 0.3], "reverse": True, "nice": False, "zero": False}
    x = {"field": "x", "type": "quantitative", "scale": x_scale, "axis": None}
    y = {
        "field": "depth",
        "type": "quantitative",
        "scale": y_scale,
        "axis": {"title": "depth", "values": list(range(int(depth) + 1)), "format": "d", "grid": False},
    }
    layers: list[dict] = [
        {
            "data": {"values": edges},
            "mark": {"type": "rule"},
            "encoding": {
                "x": x,
                "y": y,
                "x2": {"field": "x2"},
                "y2": {"field": "depth2"},
                "color": {"condition": {"test": "datum.on_path", "value": "#222222"}, "value": "#c8c8c8"},
                "strokeWidth": {"condition": {"test": "datum.on_path", "value": 3}, "value": 1},
            },
        },
        {
            "data": {"values": nodes},
            "mark": {"type": "circle", "stroke": "white", "strokeWidth": 0.8},
            "params": [{"name": "zoom", "select": "interval", "bind": "scales"}],
            "encoding": {
                "x": x,
                "y": y,
                "color": {
                    "field": "kind",
                    "type": "nominal",
                    "scale": {"domain": kinds, "range": [_kind_color(k) for k in kinds]},
                    "legend": {"title": "node type", "orient": "bottom", "columns": 5},
                },
                "size": {
                    "field": "visits",
                    "type": "quantitative",
                    "scale": {"range": [60, 700], "zero": True},
                    "legend": {"title": "visits", "orient": "bottom", "tickMinStep": 1, "format": "d"},
                },
                "opacity": {
                    "field": "q",
                    "type": "quantitative",
                    "scale": {"domain": [0, 1], "range": [0.45, 1.0]},
                    "legend": {"title": "Q (mean reward)", "orient": "bottom"},
                },
                "stroke": {"condition": {"test": "datum.selected", "value": "#000000"}, "value": "#ffffff"},
                "strokeWidth": {"condition": {"test": "datum.selected", "value": 3}, "value": 0.8},
                "tooltip": [
                    {"field": "id", "title": "node"},
                    {"field": "type"},
                    {"field": "role", "title": "model"},
                    {"field": "visits"},
                    {"field": "q", "title": "Q", "format": ".2f"},
                    {"field": "reward"},
                    {"field": "tokens"},
                    {"field": "text"},
                ],
            },
        },
    ]
    if len(nodes) <= 80:
        layers.append(
            {
                "data": {"values": nodes},
                "mark": {"type": "text", "dy": -14, "fontSize": 10, "color": "#444444", "strokeWidth": 0},
                "encoding": {"x": x, "y": y, "text": {"field": "id"}},
            }
        )
    stats = tree.stats or {}
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title
        or (
            f"{tree.problem_id}: {len(tree)} nodes, {stats.get('rollouts', 0)} rollouts, "
            f"{len(tree.correct_answers())}/{len(tree.answer_nodes())} correct answers"
        ),
        "height": int(min(900, max(260, 70 * (depth + 1)))),
        "encoding": {},  # the layers encode; gradio's theming reads the top level
        "layer": layers,
    }


def _plot(spec: dict, chart: str):
    """A `gr.Plot` value rendering a raw Vega-Lite spec with gradio's Altair renderer (altair itself is not
    needed). `chart` ("scatter" or "bar") makes gradio size the chart to its container and apply the app's
    theme (fonts, text colours; for "bar", its palette for the colour scale)."""
    from gradio.components.plot import AltairPlotData

    return AltairPlotData(chart=chart, plot=json.dumps(spec))


def _node_label(node) -> str:
    from treecot.search.show import format_node

    return format_node(node, words=8)


def _node_markdown(tree: Tree, node_id: int) -> str:
    node = tree.node(node_id)
    bits = [f"**node {node.id} · {node.type}**"]
    if node.role:
        bits.append(f"model {node.role}")
    bits.append(f"depth {node.depth}")
    bits.append(f"visits N={node.visits}")
    bits.append(f"Q={node.q:.2f}")
    if node.reward is not None:
        bits.append(f"reward {float(node.reward):.3g}")
    if node.correct is not None:
        bits.append("correct ✓" if node.correct else "wrong ✗")
    if node.extracted not in (None, ""):
        bits.append(f"answer read: `{_snippet(str(node.extracted), 60)}`")
    bits.append(f"{node.n_tokens} tokens")
    if node.finish_reason:
        bits.append(f"finish: {node.finish_reason}")
    if not node.in_history:
        bits.append("hidden from the history")
    return html.escape(" · ".join(bits), quote=False)


def _problem_markdown(tree: Tree, source: TreeSource) -> str:
    problem = tree.problem
    stats = tree.stats or {}
    question = html.escape(_snippet(str(problem.get("question", "")), 1500), quote=False)
    reference = html.escape(_snippet(str(problem.get("reference", "")), 300), quote=False)
    return (
        f"**{html.escape(tree.problem_id)}** ({html.escape(str(problem.get('task', '?')))}) · "
        f"{len(tree)} nodes · {stats.get('rollouts', 0)} rollouts · "
        f"{len(tree.correct_answers())} correct / {len(tree.wrong_answers())} wrong answers · "
        f"stop: {html.escape(str(stats.get('stop_reason', '?')))}\n\n"
        f"> {question}\n\nreference: `{reference}`"
    )


def _path_segments(tree: Tree, node_ids: Sequence[int]) -> list[tuple[str, str | None]]:
    """HighlightedText segments of a serialized path, one per node, labelled by node type."""
    out: list[tuple[str, str | None]] = []
    nodes = [tree.node(int(i)) for i in node_ids]
    shown = [n for n in nodes if n.in_history]
    for k, n in enumerate(shown):
        out.append((n.serialize() + ("\n" if k < len(shown) - 1 else ""), _kind(n)))
    return out


def _pair_segments(text: str, prefix: str, label: str) -> list[tuple[str, str | None]]:
    if prefix and text.startswith(prefix):
        return [(prefix, "shared prefix"), (text[len(prefix) :], label)]
    return [(text, label)]


def _rows_for_tree(tree: Tree, source: TreeSource) -> tuple[list[dict], list[dict], str]:
    """The SFT and preference rows of this tree: the dataset's own rows when it has the configs, else
    built here with `treecot.data.extract.build_rows` (SmolLM2's tokenizer counts lengths)."""
    if source.sft is not None or source.dpo is not None:
        sft = (source.sft or {}).get(tree.problem_id, [])
        dpo = (source.dpo or {}).get(tree.problem_id, [])
        return sft, dpo, f"rows of the dataset's `sft` / `dpo` configs (revision {source.revision})"
    from treecot.data.extract import build_rows
    from treecot.models import DEFAULT_MODEL, load_tokenizer

    sft, dpo, _ = build_rows([tree], load_tokenizer(DEFAULT_MODEL))
    return sft, dpo, "built from this tree with the paper's defaults (longest path for SFT, shortest for DPO)"


# ----------------------------------------------------------------------------------------------------
# Playground
# ----------------------------------------------------------------------------------------------------


def _known_tags() -> dict[str, str]:
    from treecot.search.patterns import DEFAULT_NODE_TYPES

    tags = {t.tag: name for name, t in DEFAULT_NODE_TYPES.items()}
    tags["think"] = "thinking"
    return tags


_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z_\-]*)>")


def split_tagged(text: str) -> list[tuple[str | None, str, bool]]:
    """Split model output into `(tag, content, closed)` sections.

    Text inside a known node tag (``<thinking>…</thinking>``, ``<answer>…</answer>``, …) becomes one
    section; text outside any tag has tag None. A section still open at the end (while streaming) or
    interrupted by another opening tag has ``closed=False``. Unknown tags are kept as text.
    """
    known = _known_tags()
    sections: list[tuple[str | None, str, bool]] = []
    current: str | None = None
    buf: list[str] = []
    pos = 0

    def flush(closed: bool) -> None:
        content = "".join(buf)
        if current is not None or content.strip():
            sections.append((current, content.strip("\n") if current else content.strip(), closed))
        buf.clear()

    for m in _TAG.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if tag not in known:
            continue
        buf.append(text[pos : m.start()])
        pos = m.end()
        if not closing:
            flush(closed=False) if current is not None else flush(closed=True)
            current = tag
        elif current == tag:
            flush(closed=True)
            current = None
        # a stray closing tag is dropped
    buf.append(text[pos:])
    flush(closed=current is None)
    return sections


def render_sections(text: str) -> str:
    """HTML of a model answer: every reasoning node a collapsible ``<details>`` section (labelled by its
    tag), the answer open and emphasised, untagged text as plain paragraphs. All text is escaped."""
    parts = []
    for tag, content, closed in split_tagged(text):
        body = html.escape(content, quote=False)
        if tag is None:
            parts.append(f'<div class="tc-text">{body}</div>')
        elif tag == "answer":
            parts.append(f'<div class="tc-answer"><strong>answer</strong><div>{body}</div></div>')
        else:
            more = "" if closed else " …"
            parts.append(
                f'<details class="tc-node tc-{tag}"><summary>{html.escape(tag)}{more}</summary>'
                f"<div>{body}</div></details>"
            )
    if not parts:
        return '<div class="tc-empty">(no output yet)</div>'
    return '<div class="tc-sections">' + "".join(parts) + "</div>"


class _ModelCache:
    """Loaded `(model, tokenizer)` pairs, least recently used evicted; one load at a time per name."""

    def __init__(self, size: int = 2) -> None:
        self._lru = _LRU(size)
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
                from treecot.models import load_model

                hit = load_model(name)
                self._lru.put(name, hit)
            return hit


#: Shared by every app of the process: models are large.
MODELS = _ModelCache()


def resolve_model(choice: str, config: SpaceConfig) -> str:
    """The model to load for a menu choice: a configured or embedded name, a Hub id, or a directory under
    the data roots (resolved). Anything else is refused with a message."""
    from treecot.models import known_models

    choice = _text(choice, "model")
    if not choice:
        raise SpaceError("choose a model")
    if choice in config.models or choice in known_models():
        return choice
    if is_hub_id(choice):
        if not config.hub_allowed(choice):
            raise _refuse_hub("model", choice)
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

    path:       the resolved folder: what the model menu sends and `resolve_model` accepts.
    label:      its menu entry: the folder relative to its data root, then the training data and stage from
                its ``treecot_provenance.json`` when it has one.
    provenance: that file's content (empty when there is none or it cannot be read).
    """

    path: Path
    label: str
    provenance: dict = field(default_factory=dict, compare=False)

    @property
    def contract(self):
        """The prompt contract the model was trained with (`treecot.prompts.PromptContract`) or None."""
        return _provenance_contract(self.provenance)


def read_provenance(folder: str | os.PathLike, roots: Sequence[Path]) -> dict:
    """The ``treecot_provenance.json`` of the model folder `folder`, read through `open_checked` (it must
    resolve inside `roots`); empty when there is none or it cannot be read (leads outside the roots, larger
    than `MAX_PROVENANCE_BYTES`, not a JSON object)."""
    from treecot.evaluation.runner import PROVENANCE_FILE

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
    from treecot.prompts import PromptContract

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
    from treecot.prompts import contract_system_prompt

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
        return _snippet(str(item), 80) if isinstance(item, (str, int, float)) and str(item).strip() else ""

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
    walked breadth first (the shallowest models are kept when the cap is hit), at most `max_depth` folders deep, visiting at most `max_dirs` folders (`MAX_MODEL_SCAN_ENTRIES`
    entries each) and listing at most `max_models` models. Every folder is resolved (symlinks included)
    and must lie inside the roots (`real_path`); a model folder is listed only when nothing in it leads
    outside them (`check_model_dir`, as when it loads) and, for an adapter, when its base model is one the
    app may open (`check_adapter_base`; `hub_allowed`: default none). The whole scan reads at most
    `max_entries` directory entries, model folders' own checks included. Hidden folders, the Hub cache's own
    ``models--*``/``datasets--*`` layout and the folders inside a model (its checkpoints) are not walked."""
    import itertools
    from collections import deque

    found: list[LocalModel] = []
    seen: set[Path] = set()
    queue: deque[tuple[Path, int]] = deque()
    for root in roots:
        try:
            real = _checked_dir(root, roots, "data root")
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
    from treecot.models import known_models

    if name in known_models() or is_hub_id(name) or not os.path.isdir(name):
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
            raise SpaceError(_time_limit_message(self.timeout, "MCTS decode"))
        return self.inner.generate(requests)


def _unverified(task):
    """`task` with a verifier that never fails: for questions typed by the user (no reference answer),
    so that an MCTS decode can run; its verdicts say "not verified"."""
    from treecot.tasks.base import Verdict

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
        lines.append(f"answer read: `{html.escape(_snippet(str(extracted), 200), quote=False)}`")
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
        lines.append(f"reference: `{html.escape(_snippet(str(problem['reference']), 200), quote=False)}`")
    if verdict.reason:
        lines.append(html.escape(_snippet(verdict.reason, 400), quote=False))
    return " · ".join(lines)


# ----------------------------------------------------------------------------------------------------
# Leaderboard
# ----------------------------------------------------------------------------------------------------

#: Bar colours (gradio's theme may swap in its own palette).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
#: Metrics shown as raw numbers; every other leaderboard metric is a rate shown in percent.
RAW_METRICS = ("mean_tokens",)


def _lb():
    from treecot.evaluation import leaderboard

    return leaderboard


def _leaderboard_layout(path: Path, roots: Sequence[Path], name: str) -> pd.DataFrame:
    """The leaderboard table of a local Hub layout (its ``main``), read through `open_checked` and typed
    like `treecot.evaluation.leaderboard.load`."""
    import pyarrow as pa

    lb = _lb()
    layout = _Layout(path, roots, name)
    folder, declared = layout.revision("main", layout.refs())
    table = layout.table(folder, declared, lb.CONFIG, "main")
    if table is None:
        raise SpaceError(f"{name} is not a treecot leaderboard: its card declares no {lb.CONFIG!r} config")
    missing = sorted(set(lb.COLUMNS) - set(table.column_names))
    if missing:
        raise SpaceError(f"{name} is not a treecot leaderboard: config {lb.CONFIG!r} lacks columns {missing}")
    schema = pa.schema([(column, pa.type_for_alias(kind)) for column, kind in lb.COLUMNS.items()])
    return table.select(list(lb.COLUMNS)).cast(schema).to_pandas()


def leaderboard_rows(
    source: str | None, roots: Sequence[Path], include_reference: bool = False, *, allow_hub: bool = False
) -> pd.DataFrame:
    """The leaderboard's long-format rows (one per run × task × metric, `treecot.evaluation.leaderboard`)
    of `source` (a folder under `roots`, read through `open_checked`, or with `allow_hub` a Hub id), plus the
    paper's reference rows when asked, with a ``label`` column naming each run. Raises `SpaceError` when
    there is nothing to show."""
    import pandas as pd

    from treecot.data.hub import LOCAL_REFS_FILE

    lb = _lb()
    frames = []
    source = _text(source, "leaderboard")
    if source and is_hub_id(source):
        if not allow_hub:
            raise _refuse_hub("leaderboard", source)
        local = _hub_layout_dir(source)
        try:
            if local is None:
                frames.append(lb.load(source).to_pandas())
            elif os.path.lexists(local / LOCAL_REFS_FILE):
                frames.append(_leaderboard_layout(local, _hub_cache_roots(), source))
            # else: offline and not in the local Hub layout, like a missing repository: no runs yet
        except SpaceError:
            raise
        except Exception as e:  # noqa: BLE001 - any loading failure becomes one message
            raise SpaceError(f"cannot load the leaderboard {source!r}: {_user_message(e)}") from None
    elif source:
        path = check_local_path(source, roots, what="leaderboard")
        if not os.path.lexists(path / LOCAL_REFS_FILE):
            raise SpaceError(
                f"cannot load the leaderboard {source!r}: no treecot dataset there (no {LOCAL_REFS_FILE}; "
                "write one with `treecot leaderboard push --local-dir`)"
            )
        frames.append(_leaderboard_layout(path, roots, str(path)))
    if include_reference:
        frames.append(lb.reference())
    if not frames:
        raise SpaceError(
            "no leaderboard dataset configured: enter a Hub id or a folder under the data roots, "
            "or show the paper's reference rows"
        )
    df = pd.concat(frames, ignore_index=True, sort=False)
    if df.empty:
        raise SpaceError(
            f"the leaderboard {source!r} has no runs yet (push one with `treecot leaderboard push`)"
        )
    labels = {}
    for row in df.drop_duplicates("run_id").to_dict("records"):
        label = (
            lb._label(row)
            if row.get("source") != lb.PAPER_SOURCE
            else f"{row['model']} (paper, {row.get('table', '')})"
        )
        labels[row["run_id"]] = label
    df["label"] = df["run_id"].map(labels)
    return df


def _scale(metric: str) -> float:
    return 1.0 if metric in RAW_METRICS else 100.0


def leaderboard_views(
    df: pd.DataFrame,
    metric: str | None = None,
    task: str | None = "all",
    query: str | None = "",
    sort_by: str | None = "mean",
    descending: bool = True,
) -> tuple[pd.DataFrame, pd.DataFrame, str, list[str], list[str]]:
    """The wide table (one row per run: the metric per task, their mean, the no-answer rate per task) and
    the long rows of the chart, after filtering by task and text and sorting.

    Returns (table, chart rows, metric, metrics, tasks). Rates are in percent.
    """
    import pandas as pd

    metrics = sorted(df["metric"].dropna().unique().tolist(), key=lambda m: (m != "accuracy", m))
    metric = _text(metric, "metric") or "accuracy"
    if metric not in metrics:
        raise SpaceError(f"metric {metric!r} is not on the leaderboard; metrics: {', '.join(metrics)}")
    rows = df[df["metric"] == metric]
    tasks = sorted(rows["task"].dropna().unique().tolist())
    task = _text(task, "task") or "all"
    if task != "all":
        if task not in tasks:
            raise SpaceError(f"task {task!r} has no {metric} rows; tasks: {', '.join(tasks)}")
        rows = rows[rows["task"] == task]
    query = _text(query, "filter").lower()
    if query:
        text = (
            rows[["label", "model", "source", "mode", "dataset_repo", "run_id"]]
            .astype(str)
            .agg(" ".join, axis=1)
        )
        rows = rows[text.str.lower().str.contains(query, regex=False)]
    scale = _scale(metric)
    shown = sorted(rows["task"].unique().tolist())
    info = rows.drop_duplicates("run_id").set_index("run_id")
    table = pd.DataFrame(
        {"run": info["label"], "source": info["source"], "mode": info["mode"], "samples": info["samples"]}
    )
    values = rows.pivot_table(index="run_id", columns="task", values="value", aggfunc="first") * scale
    missing = (
        rows.pivot_table(index="run_id", columns="task", values="no_answer_rate", aggfunc="first") * 100.0
    )
    for t in shown:
        table[t] = values[t].round(2) if t in values else math.nan
    table["mean"] = table[shown].mean(axis=1, skipna=True).round(2) if shown else math.nan
    for t in shown:
        if t in missing and missing[t].notna().any():
            table[f"{t} no-answer"] = missing[t].round(2)
    table = table.reset_index(drop=True)
    sort_by = _text(sort_by, "sort column")
    if sort_by:
        if sort_by not in table.columns:
            raise SpaceError(f"cannot sort by {sort_by!r}: columns are {', '.join(map(str, table.columns))}")
        table = table.sort_values(sort_by, ascending=not descending, kind="stable", na_position="last")
        table = table.reset_index(drop=True)
    chart = pd.DataFrame(
        {
            "run": rows["label"],
            "task": rows["task"],
            "value": rows["value"] * scale,
            "no_answer": rows["no_answer_rate"] * 100.0,
        }
    ).dropna(subset=["value"])
    return table, chart, metric, metrics, tasks


def leaderboard_chart_spec(chart: pd.DataFrame, field: str, title: str) -> dict:
    """Vega-Lite grouped bars of `field` ("value" or "no_answer") per task, one bar per run; tooltips
    carry both figures."""
    runs = list(dict.fromkeys(chart["run"]))
    values = chart.astype(object).where(chart.notna(), None).to_dict("records")
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "data": {"values": values},
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "task", "type": "nominal", "axis": {"labelAngle": 0, "title": None}},
            "xOffset": {"field": "run", "type": "nominal", "sort": runs},
            "y": {"field": field, "type": "quantitative", "title": title},
            "color": {
                "field": "run",
                "type": "nominal",
                "sort": runs,
                "scale": {"domain": runs, "range": [PALETTE[i % len(PALETTE)] for i in range(len(runs))]},
                "legend": {"title": "run", "orient": "bottom", "columns": 2, "labelLimit": 400},
            },
            "tooltip": [
                {"field": "run"},
                {"field": "task"},
                {"field": "value", "format": ".2f"},
                {"field": "no_answer", "title": "no answer (%)", "format": ".2f"},
            ],
        },
        "height": 280,
    }


def compare_runs_frame(df: pd.DataFrame, run_a: str, run_b: str) -> pd.DataFrame:
    """Two runs (by run id) side by side: one row per (task, metric) either reports, both values and B − A.
    Rates in percent."""
    import pandas as pd

    runs = dict(zip(df["run_id"], df["label"]))
    for name, run in (("first", run_a), ("second", run_b)):
        if not run:
            raise SpaceError(f"choose the {name} run to compare")
        if run not in runs:
            raise SpaceError(f"run {run!r} is not on the leaderboard (choose one from the menu)")
    a = df[df["run_id"] == run_a].set_index(["task", "metric"])
    b = df[df["run_id"] == run_b].set_index(["task", "metric"])
    keys = list(dict.fromkeys([*a.index, *b.index]))
    rows = []
    for task, metric in keys:
        scale = _scale(metric)
        va = float(a.loc[(task, metric), "value"]) * scale if (task, metric) in a.index else math.nan
        vb = float(b.loc[(task, metric), "value"]) * scale if (task, metric) in b.index else math.nan
        rows.append(
            {"task": task, "metric": metric, "A": round(va, 2), "B": round(vb, 2), "B − A": round(vb - va, 2)}
        )
    out = pd.DataFrame(rows).sort_values(["metric", "task"], kind="stable").reset_index(drop=True)
    return out.rename(columns={"A": f"A: {runs[run_a]}", "B": f"B: {runs[run_b]}"})


# ----------------------------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------------------------


def _css() -> str:
    from treecot.search.patterns import DEFAULT_NODE_TYPES
    from treecot.search.show import OTHER_COLOR, TYPE_COLORS

    rules = [
        ".tc-sections details { border-left: 4px solid #9ecae1; margin: 6px 0; padding: 2px 10px;"
        " background: rgba(127,127,127,0.06); border-radius: 4px; }",
        ".tc-sections summary { cursor: pointer; font-weight: 600; }",
        ".tc-sections div { white-space: pre-wrap; }",
        ".tc-sections .tc-answer { border-left: 4px solid #2ca02c; margin: 8px 0; padding: 4px 10px;"
        " background: rgba(44,160,44,0.08); border-radius: 4px; }",
    ]
    for name, node_type in DEFAULT_NODE_TYPES.items():
        rules.append(
            f".tc-sections .tc-{node_type.tag} {{ border-left-color: {TYPE_COLORS.get(name, OTHER_COLOR)}; }}"
        )
    return "\n".join(rules)


class SpaceApp:
    """The handlers of the three tabs, bound to one `SpaceConfig` (each returns component values)."""

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config
        self._sources = _LRU(4)
        self._local_models: list[LocalModel] | None = None
        self._models_scanned = float("-inf")
        self._models_lock = threading.Lock()

    # -- helpers -------------------------------------------------------------------------------------
    def _deadline(self) -> float:
        return time.monotonic() + float(self.config.request_timeout)

    def source(self, dataset: str, revision: str | None, deadline: float | None = None) -> TreeSource:
        """A dataset's trees, cached (local sources are re-read when their files change)."""
        dataset = _text(dataset, "dataset")
        revision = _check_revision(revision)
        allow_hub = self.config.hub_allowed(dataset)
        if dataset and not is_hub_id(dataset):
            path = check_local_path(dataset, self.config.roots, what="dataset")
            key: tuple = ("local", str(path), revision, _fingerprint(path) if path.exists() else None)
        elif dataset and not allow_hub:
            raise _refuse_hub("dataset", dataset)
        else:
            key = ("hub", dataset, revision)
        hit = self._sources.get(key)
        if hit is not None:
            return hit
        src = _call_with_deadline(
            lambda: load_tree_source(dataset, revision, self.config.roots, allow_hub=allow_hub),
            deadline or self._deadline(),
            self.config.request_timeout,
            "loading the dataset",
        )
        self._sources.put(key, src)
        return src

    # -- Trees ---------------------------------------------------------------------------------------
    @staticmethod
    def _problem_menu(src: TreeSource) -> list[tuple[str, str]]:
        choices = []
        for pid, tree in src.trees.items():
            nodes = tree.get("nodes", [])
            good = sum(1 for n in nodes if n.get("terminal") and n.get("correct") is True)
            bad = sum(1 for n in nodes if n.get("terminal") and n.get("correct") is False)
            question = _snippet(str(tree["problem"].get("question", "")), 70)
            choices.append((f"{pid} · {question} ({len(nodes)} nodes, {good}✓ {bad}✗)", pid))
        if not choices:
            raise SpaceError(f"{src.location} (revision {src.revision}) holds no trees")
        return choices

    @staticmethod
    def _source_status(src: TreeSource) -> str:
        configs = "with its sft / dpo configs" if src.sft is not None or src.dpo is not None else "trees only"
        return (
            f"{len(src.trees)} trees from {html.escape(src.location)} (revision `{src.revision}`, {src.kind}, "
            f"{configs})"
        )

    def load_dataset(self, dataset: str, revision: str | None):
        """→ (problem menu, revision menu, status)."""
        import gradio as gr

        src = self.source(dataset, revision)
        choices = self._problem_menu(src)
        revisions = list(dict.fromkeys([src.revision, *src.revisions]))
        return (
            gr.Dropdown(choices=choices, value=choices[0][1]),
            gr.Dropdown(choices=revisions, value=src.revision),
            self._source_status(src),
        )

    @staticmethod
    def _node_id(tree: Tree, node_id: Any) -> int:
        try:
            nid = int(str(node_id).strip())
        except (TypeError, ValueError):
            raise SpaceError(
                f"choose a node: a node number between 0 and {len(tree) - 1}, got {node_id!r}"
            ) from None
        if not 0 <= nid < len(tree):
            raise SpaceError(f"the tree of {tree.problem_id} has no node {nid} (nodes 0–{len(tree) - 1})")
        return nid

    def show_problem(self, dataset: str, revision: str | None, problem_id: str, node_id: Any = None):
        """→ (problem, plot, node menu, SFT info, SFT path, pair info, chosen, rejected, node, text, path).

        The node shown (and drawn with its path) is `node_id`, by default the SFT path's answer."""
        import gradio as gr

        src = self.source(dataset, revision)
        tree = src.tree(problem_id)
        sft, dpo, origin = _rows_for_tree(tree, src)
        if sft:
            selected = int(sft[0]["node_ids"][-1])
            row = sft[0]
            sft_info = (
                f"**SFT path** ({origin}): {len(sft)} row(s) for this problem; shown: the "
                f"{row.get('length_rank', '?')} correct path, nodes {list(row['node_ids'])}, "
                f"{row.get('n_tokens', '?')} tokens"
            )
            sft_segments = _path_segments(tree, row["node_ids"])
        else:
            answers = tree.correct_answers() or tree.answer_nodes()
            selected = answers[0].id if answers else 0
            sft_info = f"**SFT path** ({origin}): none — this tree has no correct path"
            sft_segments = []
        if node_id not in (None, ""):
            selected = self._node_id(tree, node_id)
        if dpo:
            pair = dpo[0]
            shared = pair.get("shared_prefix") or ""
            pair_info = (
                f"**Preference pair** ({len(dpo)} for this problem): chosen nodes {list(pair.get('chosen_node_ids', []))}"
                f" vs rejected nodes {list(pair.get('rejected_node_ids', []))}; shared prefix "
                f"{pair.get('shared_prefix_tokens', len(shared))} tokens (highlighted)"
            )
            chosen = _pair_segments(pair["chosen"], shared, "chosen")
            rejected = _pair_segments(pair["rejected"], shared, "rejected")
        else:
            pair_info = "**Preference pair**: none — a pair needs a correct and a wrong path of this tree"
            chosen, rejected = [], []
        node_md, node_text, path_text = self._node_views(tree, selected)
        return (
            _problem_markdown(tree, src),
            _plot(tree_plot_spec(tree, selected), "scatter"),
            gr.Dropdown(choices=[(_node_label(n), n.id) for n in tree.nodes], value=selected),
            sft_info,
            sft_segments,
            pair_info,
            chosen,
            rejected,
            node_md,
            node_text,
            path_text,
        )

    @staticmethod
    def _node_views(tree: Tree, node_id: int) -> tuple[str, str, str]:
        node = tree.node(node_id)
        path = tree.serialize_path(node_id) if node_id else "(the root stands for the prompt: no text)"
        return _node_markdown(tree, node_id), node.text, path

    def show_node(self, dataset: str, revision: str | None, problem_id: str, node_id: Any):
        """→ (node, text, path from the root, plot with that path highlighted)."""
        tree = self.source(dataset, revision).tree(problem_id)
        nid = self._node_id(tree, node_id)
        return (*self._node_views(tree, nid), _plot(tree_plot_spec(tree, nid), "scatter"))

    def initial_trees(self, dataset: str, revision: str, problem: str, node: str):
        """Page load: open the dataset / problem / node given in the URL or the config (messages, not
        errors, when they cannot be opened)."""
        import gradio as gr

        if not _text(dataset, "dataset"):
            return tuple(gr.skip() for _ in range(3 + 11))
        try:
            src = self.source(dataset, revision)
            choices = self._problem_menu(src)
            pid = src.tree(_text(problem, "problem") or choices[0][1]).problem_id
            views = self.show_problem(dataset, revision, pid, _text(node, "node") or None)
            revisions = list(dict.fromkeys([src.revision, *src.revisions]))
            return (
                gr.Dropdown(choices=choices, value=pid),
                gr.Dropdown(choices=revisions, value=src.revision),
                self._source_status(src),
                *views,
            )
        except Exception as e:  # noqa: BLE001 - shown in the status line
            return (
                gr.skip(),
                gr.skip(),
                f"⚠️ {html.escape(_user_message(e))}",
                *(gr.skip() for _ in range(11)),
            )

    # -- Playground ----------------------------------------------------------------------------------
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
        """→ (question, problem record, info). `seed` picks the problem (None or negative: random)."""
        from treecot.tasks import get_task

        task = get_task(_text(task_name, "task"))
        split = _default_split(task)
        problems = _call_with_deadline(
            lambda: task.load(split, limit=self.config.draw_pool),
            self._deadline(),
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
        question = _text(question, "question")
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
        """Stream (answer HTML, raw text, verdict, diagnostics, status, MCTS tree plot)."""
        from treecot.data.extract import DEFAULT_SYSTEM_PROMPT
        from treecot.prompts import with_system_prompt
        from treecot.tasks import get_task, make_problem

        start = time.monotonic()
        deadline = start + float(self.config.request_timeout)
        question, max_new, temp, n_rollouts = self._validate_request(
            question, max_new_tokens, temperature, use_mcts, rollouts
        )
        task = get_task(_text(task_name, "task"))
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
        loaded = MODELS.cached(name) or _call_with_deadline(
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
        from treecot.tasks.diagnostics import diagnose

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
        from treecot.evaluation.decode import MCTSDecodeConfig, best_answers, mcts_decode

        try:
            from treecot.backends.transformers_backend import TransformersGenerator

            inner = TransformersGenerator(
                model, tokenizer, dtype=None, max_batch_size=8, cache_budget_tokens=8192
            )
        except ImportError:  # pragma: no cover - fallback when the optimised backend is unavailable
            from treecot.evaluation.decode import HFGenerator

            inner = HFGenerator(model, tokenizer)
        generator = _DeadlineGenerator(inner, deadline, float(self.config.request_timeout))
        config = MCTSDecodeConfig(
            max_rollouts=n_rollouts,
            max_depth=6,
            max_node_tokens=min(128, max_new),
            temperature=temp if temp > 0 else 0.7,
        )
        yield "", "", "", None, f"MCTS decode: searching with {n_rollouts} rollouts …", None
        search_task = task if drawn else _unverified(task)
        [result] = mcts_decode([record], search_task, generator, config, system_prompt=system_prompt)
        tree = result.tree
        text = result.texts[0]
        best = best_answers(tree, 1)
        verdict_md, diagnostics = self._finish(task, record, drawn, text, tokenizer, max_new, "stop")
        elapsed = time.monotonic() - start
        status = (
            f"MCTS decode: {tree.stats.get('rollouts', 0)} rollouts, {len(tree)} nodes, best answer "
            f"{'node ' + str(best[0].id) if best else '(none)'} with value {result.values[0]:.3f} "
            f"(token confidence) · {elapsed:.1f} s"
        )
        title = f"MCTS decode: {len(tree)} nodes, {tree.stats.get('rollouts', 0)} rollouts (bold: the chosen path)"
        plot = _plot(tree_plot_spec(tree, best[0].id if best else None, title=title), "scatter")
        yield render_sections(text), text, verdict_md, diagnostics, status, plot

    # -- Leaderboard ---------------------------------------------------------------------------------
    def _board(self, source: str | None, include_reference: bool) -> pd.DataFrame:
        return _call_with_deadline(
            lambda: leaderboard_rows(
                source,
                self.config.roots,
                bool(include_reference),
                allow_hub=self.config.hub_allowed(_text(source, "leaderboard")),
            ),
            self._deadline(),
            self.config.request_timeout,
            "loading the leaderboard",
        )

    def leaderboard(
        self,
        source: str | None,
        include_reference: bool = False,
        query: str | None = "",
        task: str | None = "all",
        metric: str | None = "accuracy",
        sort_by: str | None = "mean",
        descending: bool = True,
    ):
        """→ (table, metric chart, no-answer chart, run A menu, run B menu, task menu, metric menu, sort menu,
        status)."""
        import gradio as gr

        df = self._board(source, include_reference)
        table, chart, metric, metrics, tasks = leaderboard_views(df, metric, task, query, sort_by, descending)
        runs = list(dict.fromkeys(zip(df["label"], df["run_id"])))
        mine = [r for r in runs if not str(r[1]).startswith("paper-")] or runs
        first = mine[0][1]
        second = (mine[1] if len(mine) > 1 else next((r for r in runs if r[1] != first), mine[0]))[1]
        n_runs = df["run_id"].nunique()
        status = f"{len(table)} of {n_runs} runs · metric `{metric}`" + (
            " · with the paper's reference rows (arXiv 2503.01461)" if include_reference else ""
        )
        task = _text(task, "task") or "all"
        return (
            table,
            _plot(
                leaderboard_chart_spec(chart, "value", metric + ("" if metric in RAW_METRICS else " (%)")),
                "bar",
            ),
            _plot(leaderboard_chart_spec(chart, "no_answer", "no answer (%)"), "bar")
            if chart["no_answer"].notna().any()
            else None,
            gr.Dropdown(choices=runs, value=first),
            gr.Dropdown(choices=runs, value=second),
            gr.Dropdown(choices=["all", *tasks], value=task),
            gr.Dropdown(choices=metrics, value=metric),
            gr.Dropdown(choices=[str(c) for c in table.columns], value=_text(sort_by, "sort column") or None),
            status,
        )

    def compare_runs(self, source: str | None, include_reference: bool, run_a: str, run_b: str):
        """→ (side-by-side table, summary)."""
        df = self._board(source, include_reference)
        run_a, run_b = _text(run_a, "run A"), _text(run_b, "run B")
        table = compare_runs_frame(df, run_a, run_b)
        delta = table["B − A"]
        labels = dict(zip(df["run_id"], df["label"]))
        summary = (
            f"**B** {html.escape(labels[run_b])} vs **A** {html.escape(labels[run_a])}: B is higher on "
            f"{int((delta > 0).sum())}, lower on {int((delta < 0).sum())} of {int(delta.notna().sum())} (task, metric) "
            "pairs both report (for rates such as no-answer or repetition, lower is better)"
        )
        return table, summary

    def initial_leaderboard(self):
        """Page load: the configured leaderboard (a message in the status line when it cannot be read)."""
        import gradio as gr

        if not self.config.leaderboard:
            return tuple(gr.skip() for _ in range(9))
        try:
            return self.leaderboard(self.config.leaderboard)
        except Exception as e:  # noqa: BLE001 - shown in the status line
            return (*(gr.skip() for _ in range(8)), f"⚠️ {html.escape(_user_message(e))}")


def _route(config: SpaceConfig, request: gr.Request | None):
    """Page load: the tab and the Trees tab's dataset from the URL (``?tab=…&dataset=…``) or the config."""
    import gradio as gr

    params = dict(request.query_params) if request is not None else {}
    tab = params.get("tab", "trees")
    if tab not in TABS:
        tab = "trees"
    dataset = params.get("dataset") or config.dataset or ""
    return (
        gr.Tabs(selected=tab),
        dataset,
        params.get("revision") or "main",
        params.get("problem", ""),
        params.get("node", ""),
    )


INTRO = (
    "# treecot\n"
    "Tree-structured chain-of-thought data built with Monte Carlo tree search (Marco-o1 v2, "
    "[arXiv 2503.01461](https://arxiv.org/abs/2503.01461)): look at search trees, try models, compare runs."
)


def build_app(config: SpaceConfig | None = None) -> gr.Blocks:
    """The Gradio Blocks app of the Space (queue configured from `config`; call `.launch()` or use
    `launch_space`)."""
    import gradio as gr

    from treecot.search.show import CORRECT_COLOR, WRONG_COLOR
    from treecot.tasks import task_names

    config = config or SpaceConfig()
    app = SpaceApp(config)
    kind_colors = {
        k: _kind_color(k)
        for k in (*_known_tags().values(), ANSWER_LABEL, ANSWER_LABEL_CORRECT, ANSWER_LABEL_WRONG)
    }
    pair_colors = {"shared prefix": SHARED_PREFIX_COLOR, "chosen": CORRECT_COLOR, "rejected": WRONG_COLOR}
    roots = ", ".join(f"`{r}`" for r in config.roots) or "(none)"
    hub = " — or a Hub id" if config.allow_hub else ""

    with gr.Blocks(title="treecot") as demo:
        gr.Markdown(INTRO)
        with gr.Tabs(selected="trees") as tabs:
            # ---------------------------------------------------------------------------------- Trees
            with gr.Tab("Trees", id="trees"):
                gr.Markdown(
                    "**Search trees.** Open a treecot dataset (a folder under the data roots — "
                    f"{roots}{hub}) and pick a problem. Nodes are coloured by type (answers green "
                    "when correct, red when wrong), their opacity grows with Q and their area with visits; "
                    "hover for the text, drag to pan, scroll to zoom."
                )
                with gr.Row():
                    dataset = gr.Textbox(
                        label="Dataset (folder or Hub id)", scale=4, placeholder="outputs/demo/dataset"
                    )
                    revision = gr.Dropdown(
                        label="Revision", choices=["main"], value="main", allow_custom_value=True, scale=1
                    )
                    open_btn = gr.Button("Open", variant="primary", scale=1)
                trees_status = gr.Markdown()
                problem = gr.Dropdown(label="Problem", choices=[], allow_custom_value=True)
                problem_md = gr.Markdown()
                tree_plot = gr.Plot(label="MCTS tree")
                with gr.Row():
                    node = gr.Dropdown(label="Node", choices=[], allow_custom_value=True, scale=3)
                node_md = gr.Markdown()
                with gr.Row():
                    node_text = gr.Textbox(label="Node text", lines=4, interactive=False)
                    node_path = gr.Textbox(label="Path from the root", lines=8, interactive=False)
                sft_md = gr.Markdown()
                sft_path = gr.HighlightedText(
                    label="SFT path (by node type)", color_map=kind_colors, show_legend=True
                )
                pair_md = gr.Markdown()
                with gr.Row():
                    chosen = gr.HighlightedText(label="Chosen", color_map=pair_colors, show_legend=True)
                    rejected = gr.HighlightedText(label="Rejected", color_map=pair_colors, show_legend=True)
                hint_problem = gr.Textbox(visible=False)
                hint_node = gr.Textbox(visible=False)

            # ---------------------------------------------------------------------------------- Playground
            with gr.Tab("Playground", id="playground"):
                gr.Markdown(
                    "**Playground.** Ask a model a question, or draw one from a task to get the verifier's "
                    "verdict. Reasoning nodes (`<thinking>`, `<double-check>`, …) fold into sections. "
                    f"Limits: {config.max_input_chars} characters per question, {config.max_new_tokens} new "
                    f"tokens, {config.request_timeout:g} s per request."
                )
                with gr.Row():
                    model = gr.Dropdown(
                        label="Model (name, Hub id or local folder; trained models under the data roots)",
                        choices=app.model_choices(),
                        value=config.model,
                        allow_custom_value=True,
                        scale=3,
                    )
                    models_btn = gr.Button("↻ Models", scale=0, min_width=80)
                    task = gr.Dropdown(label="Task", choices=task_names(), value="gsm8k", scale=2)
                    system_prompt = gr.Radio(
                        label="System prompt",
                        choices=["treecot", "task"],
                        value="treecot",
                        info="treecot: the prompt a trained model was trained with, else the tag guide",
                        scale=2,
                    )
                question = gr.Textbox(label="Question", lines=4, max_length=config.max_input_chars)
                with gr.Row():
                    seed = gr.Number(label="Draw seed (-1: random)", value=-1, precision=0, scale=1)
                    draw_btn = gr.Button("Draw a question from the task", scale=2)
                draw_info = gr.Markdown()
                with gr.Accordion("Problem record (reference answer for the verifier)", open=False):
                    problem_json = gr.JSON(label="Problem")
                with gr.Row():
                    max_new = gr.Slider(
                        1,
                        config.max_new_tokens,
                        value=min(256, config.max_new_tokens),
                        step=1,
                        label="Max new tokens",
                    )
                    temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)")
                    use_mcts = gr.Checkbox(label="MCTS decode (token-confidence value)", value=False)
                    rollouts = gr.Slider(
                        1,
                        config.max_mcts_rollouts,
                        value=min(4, config.max_mcts_rollouts),
                        step=1,
                        label="MCTS rollouts",
                    )
                run_btn = gr.Button("Generate", variant="primary")
                gen_status = gr.Markdown()
                answer_html = gr.HTML(label="Answer")
                verdict = gr.Markdown()
                with gr.Accordion("Raw text and diagnostics", open=False):
                    raw_text = gr.Textbox(label="Raw model output", lines=6, interactive=False)
                    diagnostics = gr.JSON(label="Diagnostics")
                mcts_plot = gr.Plot(label="MCTS decode tree")

            # ---------------------------------------------------------------------------------- Leaderboard
            with gr.Tab("Leaderboard", id="leaderboard"):
                gr.Markdown(
                    "**Leaderboard.** Evaluated runs (`treecot eval` → `treecot leaderboard push`): one row per "
                    "run, the chosen metric per task (rates in %), their mean and the no-answer rates. Click a "
                    "column header to sort, use the search box or the filters; toggle the paper's reference "
                    "rows on to put runs next to Marco-o1 v2's figures."
                )
                with gr.Row():
                    lb_source = gr.Textbox(
                        label="Leaderboard dataset (Hub id or folder)",
                        value=config.leaderboard or "",
                        scale=4,
                    )
                    lb_reference = gr.Checkbox(label="Show the paper's reference rows", value=False, scale=1)
                    lb_btn = gr.Button("Load", variant="primary", scale=1)
                with gr.Row():
                    lb_query = gr.Textbox(label="Filter runs (text)", scale=2)
                    lb_task = gr.Dropdown(
                        label="Task", choices=["all"], value="all", allow_custom_value=True, scale=1
                    )
                    lb_metric = gr.Dropdown(
                        label="Metric",
                        choices=["accuracy"],
                        value="accuracy",
                        allow_custom_value=True,
                        scale=1,
                    )
                    lb_sort = gr.Dropdown(
                        label="Sort by", choices=["mean"], value="mean", allow_custom_value=True, scale=1
                    )
                    lb_desc = gr.Checkbox(label="Descending", value=True, scale=1)
                lb_status = gr.Markdown()
                lb_table = gr.Dataframe(label="Runs", interactive=False, show_search="filter", wrap=True)
                with gr.Row():
                    lb_bars = gr.Plot(label="Metric per task")
                    lb_missing = gr.Plot(label="No-answer rate per task")
                gr.Markdown("**Compare two runs**")
                with gr.Row():
                    run_a = gr.Dropdown(label="Run A", choices=[], allow_custom_value=True)
                    run_b = gr.Dropdown(label="Run B", choices=[], allow_custom_value=True)
                    cmp_btn = gr.Button("Compare")
                cmp_md = gr.Markdown()
                cmp_table = gr.Dataframe(
                    label="A vs B", headers=["task", "metric", "A", "B", "B − A"], interactive=False
                )

        # ---------------------------------------------------------------------------------- events
        problem_outputs = [
            problem_md, tree_plot, node, sft_md, sft_path, pair_md, chosen, rejected, node_md, node_text, node_path
        ]  # fmt: skip
        load_outputs = [problem, revision, trees_status]
        open_btn.click(
            _guarded(app.load_dataset), [dataset, revision], load_outputs, api_name="load_dataset"
        ).success(
            _guarded(app.show_problem),
            [dataset, revision, problem],
            problem_outputs,
            api_name="open_then_show_problem",
            api_visibility="private",
        )
        dataset.submit(
            _guarded(app.load_dataset),
            [dataset, revision],
            load_outputs,
            api_name="submit_dataset",
            api_visibility="private",
        ).success(
            _guarded(app.show_problem),
            [dataset, revision, problem],
            problem_outputs,
            api_name="submit_then_show_problem",
            api_visibility="private",
        )
        problem.input(
            _guarded(app.show_problem), [dataset, revision, problem], problem_outputs, api_name="show_problem"
        )
        node.input(
            _guarded(app.show_node),
            [dataset, revision, problem, node],
            [node_md, node_text, node_path, tree_plot],
            api_name="show_node",
        )
        draw_btn.click(
            _guarded(app.draw_question),
            [task, seed],
            [question, problem_json, draw_info],
            api_name="draw_question",
        )
        models_btn.click(
            _guarded(app.refresh_models), [model], [model], api_name="list_models", api_visibility="private"
        )
        run_btn.click(
            _guarded(app.generate),
            [model, task, question, problem_json, system_prompt, max_new, temperature, use_mcts, rollouts],
            [answer_html, raw_text, verdict, diagnostics, gen_status, mcts_plot],
            api_name="generate",
        )
        lb_inputs = [lb_source, lb_reference, lb_query, lb_task, lb_metric, lb_sort, lb_desc]
        lb_outputs = [lb_table, lb_bars, lb_missing, run_a, run_b, lb_task, lb_metric, lb_sort, lb_status]
        lb_btn.click(_guarded(app.leaderboard), lb_inputs, lb_outputs, api_name="leaderboard")
        for trigger in (
            lb_reference.input,
            lb_query.submit,
            lb_task.input,
            lb_metric.input,
            lb_sort.input,
            lb_desc.input,
        ):
            trigger(_guarded(app.leaderboard), lb_inputs, lb_outputs, api_visibility="private")
        cmp_btn.click(
            _guarded(app.compare_runs),
            [lb_source, lb_reference, run_a, run_b],
            [cmp_table, cmp_md],
            api_name="compare_runs",
        )

        def route(request: gr.Request):
            return _route(config, request)

        # A resolvable annotation: gradio injects the request by type hint (this module's are strings).
        route.__annotations__ = {"request": gr.Request}
        demo.load(
            route,
            None,
            [tabs, dataset, revision, hint_problem, hint_node],
            api_visibility="private",
        ).then(
            app.initial_trees,
            [dataset, revision, hint_problem, hint_node],
            [*load_outputs, *problem_outputs],
            api_visibility="private",
        ).then(app.initial_leaderboard, None, lb_outputs, api_visibility="private")

    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=config.max_queue_size)
    demo.treecot_app = app  # type: ignore[attr-defined]  # the handlers, for tests and embedding
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Arguments of `gr.Blocks.launch` shared by `launch_space` and `spaces/app.py`: errors shown as
    messages, the app's CSS, and gradio's upload route limited to `MAX_UPLOAD_BYTES` per file (gradio
    refuses a larger file with HTTP 413 while it streams in, before it is stored)."""
    return {"show_error": True, "css": _css(), "max_file_size": MAX_UPLOAD_BYTES}


def launch_space(
    host: str = "127.0.0.1",
    port: int | None = 7860,
    *,
    data_roots: Sequence[str | os.PathLike] | None = None,
    model: str = "smollm2-135m-instruct",
    models: Sequence[str] = (),
    leaderboard: str | None = None,
    dataset: str | None = None,
    allow_hub: bool = False,
    max_input_chars: int = 4000,
    max_new_tokens: int = 512,
    request_timeout: float = 120.0,
    concurrency_limit: int = 1,
    max_queue_size: int = 32,
    max_mcts_rollouts: int = 8,
    block: bool = True,
    share: bool = False,
) -> gr.Blocks:
    """`treecot space`: build the app and serve it on `host:port` (127.0.0.1 by default: local only).

    `port=None` picks a free port. With `block=False` the server runs in a background thread and the
    launched app is returned (its URL is `demo.local_url`; stop it with `demo.close()`). `allow_hub`: let
    users open Hub ids (`SpaceConfig.allow_hub`; off by default). `share`: gradio's `share=True`, a public
    gradio.live link to this server besides the local one (off by default).
    """
    config = SpaceConfig(
        data_roots=data_roots,
        model=model,
        models=tuple(models) or (model,),
        leaderboard=leaderboard,
        dataset=dataset,
        allow_hub=allow_hub,
        max_input_chars=max_input_chars,
        max_new_tokens=max_new_tokens,
        request_timeout=request_timeout,
        concurrency_limit=concurrency_limit,
        max_queue_size=max_queue_size,
        max_mcts_rollouts=max_mcts_rollouts,
    )
    demo = build_app(config)
    demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, share=share, **launch_kwargs()
    )
    return demo
