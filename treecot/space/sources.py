"""Where the Space's data comes from, and the boundary it may not cross.

- Path guards: every dataset file goes through `open_checked` (resolved at open time, refused unless it lies
  inside the data roots); a model directory is checked whole (`check_model_dir`) before transformers reads it.
- Datasets of trees (`load_tree_source` -> `TreeSource`): a local Hub-layout folder (`HubLayout`, written by
  ``treecot build``), a folder of ``trees-*.jsonl`` shards (``treecot generate``) or a Hub id (read offline
  from ``$TREECOT_CACHE/hub``, `hub_layout_dir`).
- `LRU`: the small cache of loaded datasets and models.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from treecot.data.extract import build_rows
from treecot.hub import LOCAL_REFS_FILE, is_repo_id, list_versions, load_versioned, targets
from treecot.models import DEFAULT_MODEL, cache_dir, load_tokenizer
from treecot.pipeline.generate import tree_files
from treecot.search.tree import Tree
from treecot.space.errors import SpaceError

if TYPE_CHECKING:
    import pyarrow as pa

    from treecot.search.tree import Tree

logger = logging.getLogger(__name__)

#: Branch, tag or commit names accepted for datasets.
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,127}$")
#: How to let the Space read Hub ids, for the refusal message.
ALLOW_HUB_HINT = (
    "this Space does not read the Hub: launch it with allow_hub=True (`treecot space --allow-hub`) to open "
    "Hub ids, or enter a folder under the data roots"
)
#: Most files and folders a local model directory may hold (each is resolved before the model loads).
MAX_MODEL_DIR_ENTRIES = 10_000


def check_local_path(path: str | os.PathLike, roots: Sequence[Path], what: str = "path") -> Path:
    """`path` resolved (``~``, ``..`` and symlinks) if it lies inside one of `roots`, else `SpaceError`.

    Args:
        path (`str` or `os.PathLike`):
            The path a user typed.
        roots (`Sequence[Path]`):
            The data roots.
        what (`str`, *optional*, defaults to `"path"`):
            What the path is, for messages.
    """
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
    `roots`, else `SpaceError`. Unlike `check_local_path`, which resolves what a user typed, this is applied
    to every file and folder the Space reads, at the moment it reads it.

    Args:
        path (`str` or `os.PathLike`):
            The file or folder.
        roots (`Sequence[Path]`):
            The data roots (already resolved).
        what (`str`, *optional*, defaults to `"file"`):
            What the file is, for messages.
    """
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
    the kernel does not say, the very file that was resolved.

    Args:
        path (`str` or `os.PathLike`):
            The file.
        roots (`Sequence[Path]`):
            The data roots.
        what (`str`, *optional*, defaults to `"file"`):
            What the file is, for messages.

    Returns:
        `IO[bytes]`: the open file.
    """
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


def checked_dir(path: str | os.PathLike, roots: Sequence[Path], what: str) -> Path:
    """`path` resolved (`real_path`) if it is a folder inside `roots`.

    Args:
        path (`str` or `os.PathLike`):
            The folder.
        roots (`Sequence[Path]`):
            The data roots.
        what (`str`):
            What the folder is, for messages.

    Raises:
        SpaceError: `path` does not resolve inside `roots` or is not a folder.
    """
    real = real_path(path, roots, what)
    if not real.is_dir():
        raise SpaceError(f"{what} is not a folder")
    return real


def read_checked_text(path: Path, roots: Sequence[Path], what: str) -> str:
    """The UTF-8 text of the file `path`, opened with `open_checked`.

    Args:
        path (`Path`):
            The file.
        roots (`Sequence[Path]`):
            The data roots.
        what (`str`):
            What the file is, for messages.
    """
    with open_checked(path, roots, what) as f:
        try:
            return f.read().decode("utf-8")
        except UnicodeDecodeError:
            raise SpaceError(f"{what} is not UTF-8 text") from None


def check_model_dir(path: Path, roots: Sequence[Path], what: str = "model directory") -> Path:
    """`path` (a resolved folder inside `roots`) if nothing in it leads outside `roots`, else `SpaceError`.

    A model directory is read by transformers, not through `open_checked`, so every file and folder in it
    (symlinked folders walked into, once each) is resolved here before the model loads; a folder with
    more than `MAX_MODEL_DIR_ENTRIES` entries is refused rather than walked.

    Args:
        path (`Path`):
            A resolved folder inside `roots`.
        roots (`Sequence[Path]`):
            The data roots.
        what (`str`, *optional*, defaults to `"model directory"`):
            What the folder is, for messages.
    """
    base = checked_dir(path, roots, what)
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


def input_text(value: Any, what: str) -> str:
    """`value` as stripped text ('' for None); anything but a string is refused with a message."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise SpaceError(f"{what} must be text, got {type(value).__name__}")
    return value.strip()


def check_revision(revision: str | None) -> str:
    """`revision` (default ``main``) if it is a branch, tag or commit name, else `SpaceError`."""
    revision = input_text(revision, "revision") or "main"
    if not _REVISION.match(revision) or ".." in revision:
        raise SpaceError(f"invalid revision {revision!r}: use a branch, tag or commit name")
    return revision


@dataclass
class TreeSource:
    """The trees (and, when the dataset has them, the SFT and preference rows) of one dataset version.

    Args:
        kind (`str`):
            "layout" (a local Hub-layout folder), "shards" (trees-*.jsonl files), "hub" (a Hub id).
        location (`str`):
            The resolved folder / file, or the Hub id.
        revision (`str`):
            The version read ("main" for shard folders, which have none).
        trees (`dict[str, dict]`):
            Problem id -> Tree JSON dict, in dataset order.
        sft (`dict[str, list[dict]]` or `None`):
            Problem id -> SFT rows (None when the dataset has no `sft` config).
        dpo (`dict[str, list[dict]]` or `None`):
            Problem id -> preference rows (None when the dataset has no `dpo` config).
        revisions (`list[str]`):
            The branches and tags of the dataset (empty for shard folders).
    """

    kind: str
    location: str
    revision: str
    trees: dict[str, dict]
    sft: dict[str, list[dict]] | None
    dpo: dict[str, list[dict]] | None
    revisions: list[str]

    def tree(self, problem_id: str) -> Tree:

        pid = input_text(problem_id, "problem")
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


class HubLayout:
    """A local dataset in Hub layout (``refs.json`` and one folder per branch and tag, each with a card
    whose YAML ``configs`` names its parquet files; written by `treecot.hub`), read the way
    `treecot.hub.load_versioned` reads it, except that every file goes through `open_checked`.

    Args:
        path (`Path`):
            The dataset's folder.
        roots (`Sequence[Path]`):
            The data roots every file must resolve inside.
        name (`str`):
            The dataset's name, for messages.
    """

    def __init__(self, path: Path, roots: Sequence[Path], name: str) -> None:
        self.path = path
        self.roots = roots
        self.name = name

    def refs(self) -> tuple[dict, dict]:
        """The branches and tags of ``refs.json``."""

        what = f"{LOCAL_REFS_FILE} of {self.name}"
        try:
            refs = json.loads(read_checked_text(self.path / LOCAL_REFS_FILE, self.roots, what))
        except json.JSONDecodeError:
            raise SpaceError(f"{what} is not valid JSON") from None
        branches = refs.get("branches") if isinstance(refs, dict) else None
        tags = refs.get("tags") if isinstance(refs, dict) else None
        if not isinstance(branches, dict) or not branches:
            raise SpaceError(f"no treecot dataset at {self.name} ({LOCAL_REFS_FILE} lists no branch)")
        return branches, tags if isinstance(tags, dict) else {}

    def revision(self, revision: str, refs: tuple[dict, dict]) -> tuple[Path, dict[str, dict]]:
        """The resolved folder of `revision` and the configs its card declares.

        Args:
            revision (`str`):
                A branch or tag.
            refs (`tuple[dict, dict]`):
                The branches and tags (`refs`).

        Returns:
            `tuple[Path, dict[str, dict]]`: the folder, and config name -> the card's entry of it.
        """
        import yaml

        branches, tags = refs
        if revision not in branches and revision not in tags:
            available = ", ".join(sorted(map(str, [*branches, *tags])))
            raise SpaceError(f"revision {revision!r} not found in {self.name}; available: {available}")
        at = f"of {self.name} at revision {revision!r}"
        folder = checked_dir(self.path / revision, self.roots, f"revision folder {revision!r} of {self.name}")
        card = folder / "README.md"
        if not os.path.lexists(card):
            raise SpaceError(f"revision {revision!r} of {self.name} holds no complete push yet")
        text = read_checked_text(card, self.roots, f"card (README.md) {at}")
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
            base = checked_dir(folder.joinpath(*literal), self.roots, f"folder {'/'.join(literal)!r} {at}")
        rest = "/".join(parts[len(literal) :])
        if _GLOB_CHARS & set(rest):
            return sorted(base.glob(rest))
        return [base / rest] if os.path.lexists(base / rest) else []

    def table(self, folder: Path, declared: dict[str, dict], config: str, revision: str) -> pa.Table | None:
        """The ``train`` split of `config` (None when the card declares no such config).

        Args:
            folder (`Path`):
                The revision's folder (`revision`).
            declared (`dict[str, dict]`):
                The configs its card declares (`revision`).
            config (`str`):
                The config to read.
            revision (`str`):
                The revision, for messages.
        """
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
    layout = HubLayout(path, roots, name)
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
    `treecot.pipeline.generate.iter_tree_dicts`)."""
    raw = gzip.GzipFile(fileobj=stream) if gz else stream
    for line in io.TextIOWrapper(raw, encoding="utf-8"):
        if not line.endswith("\n"):
            break  # a killed writer's partial line
        if line.strip():
            yield json.loads(line)


def _read_shards(path: Path, roots: Sequence[Path]) -> TreeSource:
    """The trees of a shard file or a folder of ``trees-*.jsonl`` shards, each opened with `open_checked`."""

    files = [path] if path.is_file() else tree_files(path)
    trees: dict[str, dict] = {}
    for file in files:
        with open_checked(file, roots, f"tree shard {file.name!r} of {path}") as f:
            for tree in _shard_lines(f, gz=file.name.endswith(".gz")):
                trees.setdefault(str(tree["problem"].get("id", "")), tree)
    return TreeSource("shards", str(path), "main", trees, None, None, [])


def hub_layout_dir(repo_id: str) -> Path | None:
    """Where `treecot.hub` reads the Hub id `repo_id` from when no token and no endpoint is configured
    (the local Hub layout under ``$TREECOT_CACHE/hub``); None when it would reach the Hub."""

    return None if targets.online_configured(None, None) else targets.default_local_dir(repo_id)


def hub_cache_roots() -> list[Path]:
    """The root a Hub id read offline stays inside: ``$TREECOT_CACHE/hub``."""

    return [(cache_dir() / "hub").expanduser().resolve()]


def refuse_hub(what: str, source: str) -> SpaceError:
    """The refusal of the Hub id `source` while the app may not read the Hub (`ALLOW_HUB_HINT`)."""
    return SpaceError(f"{what} {source!r} is a Hub id; {ALLOW_HUB_HINT}")


def _local_kind(path: Path) -> str:

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


def fingerprint(path: Path) -> float:
    """Latest modification time of what a local source reads (cache invalidation)."""

    if path.is_file():
        return path.stat().st_mtime
    stamps = [p.stat().st_mtime for p in path.glob("*.jsonl*")]
    refs = path / LOCAL_REFS_FILE
    if refs.is_file():
        stamps.append(refs.stat().st_mtime)
    return max(stamps, default=0.0)


class LRU:
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
    """Read a dataset of trees.

    Every local file is opened with `open_checked`: a symlink anywhere in the dataset that leads outside
    `roots` is refused. A Hub id read offline comes from ``$TREECOT_CACHE/hub``, checked against that folder.

    Args:
        source (`str`):
            A local folder or shard file inside `roots`, or (with `allow_hub`) a Hub id.
        revision (`str`, *optional*):
            The branch, tag or commit (default ``main``; shard folders have none).
        roots (`Sequence[Path]`):
            The data roots (resolved).
        allow_hub (`bool`, *optional*, defaults to `False`):
            Whether a Hub id may be read.

    Returns:
        `TreeSource`: the trees. Every user mistake (empty input, a path outside the roots or missing, a folder
        that holds no trees, an unknown revision, a Hub id while the Hub is not allowed, an unreachable Hub
        dataset) is a `SpaceError` with a readable message.
    """
    source = input_text(source, "dataset")
    if not source:
        raise SpaceError("enter a dataset: a local folder under the data roots or a Hub id (namespace/name)")
    if len(source) > 1024:
        raise SpaceError(f"dataset name too long ({len(source)} characters)")
    revision = check_revision(revision)
    if is_repo_id(source):
        if not allow_hub:
            raise refuse_hub("dataset", source)
        local = hub_layout_dir(source)
        if local is None:
            return _read_versioned(source, revision, "hub")

        if not os.path.lexists(local / LOCAL_REFS_FILE):
            raise SpaceError(
                f"dataset {source!r} not found: no Hub token or endpoint is configured (HF_TOKEN / HF_ENDPOINT) "
                f"and the local Hub layout under $TREECOT_CACHE/hub does not hold it"
            )
        return _read_layout(local, revision, hub_cache_roots(), kind="hub", name=source)
    path = check_local_path(source, roots, what="dataset")
    if not path.exists():
        raise SpaceError(f"dataset {source!r} does not exist ({path})")
    kind = _local_kind(path)
    if kind == "layout":
        return _read_layout(path, revision, roots)
    return _read_shards(path, roots)


def rows_for_tree(tree: Tree, source: TreeSource) -> tuple[list[dict], list[dict], str]:
    """The SFT and preference rows of this tree: the dataset's own rows when it has the configs, else
    built here with `treecot.data.extract.build_rows` (SmolLM2's tokenizer counts lengths)."""
    if source.sft is not None or source.dpo is not None:
        sft = (source.sft or {}).get(tree.problem_id, [])
        dpo = (source.dpo or {}).get(tree.problem_id, [])
        return sft, dpo, f"rows of the dataset's `sft` / `dpo` configs (revision {source.revision})"

    sft, dpo, _ = build_rows([tree], load_tokenizer(DEFAULT_MODEL))
    return sft, dpo, "built from this tree with the paper's defaults (longest path for SFT, shortest for DPO)"
