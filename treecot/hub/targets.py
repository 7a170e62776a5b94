"""Where a push goes: a Hub dataset repository (`_HubTarget`) or a local folder in Hub layout (`_LocalTarget`).

Without a token and without an endpoint (no ``token=``/``endpoint=``, no ``HF_TOKEN``, no stored
login, no ``HF_ENDPOINT``), or with ``local_dir=``, a push writes the Hub layout into a local
folder (default ``$TREECOT_CACHE/hub/datasets/<repo_id>``)::

    <local_dir>/refs.json            {"branches": {...}, "tags": {...}}
    <local_dir>/<revision>/          one folder per branch (incl. main) and per tag (a frozen copy)
        README.md  treecot_push.json  data/<config>/<split>-00000-of-00001.parquet  histograms/*.png
    <local_dir>/.treecot.lock        the folder's lock file

``load_dataset(folder)`` ignores ``revision=``; `treecot.hub.load_versioned` honours it for both kinds.

The local layout is safe under concurrent writers and crashes:

* A push holds the folder's lock file (`filelock`; the OS releases it when a process dies) from the
  first read of ``refs.json`` to the last write, so pushes from several processes run one after the
  other. `treecot.hub.write_lock` holds the same lock around a read-modify-write (the leaderboard reads the
  current table inside it); it is re-entrant within a thread, so a push inside does not wait.
* ``refs.json`` is the commit point: it is only ever replaced whole (a unique temporary file, fsync,
  ``os.replace``), and it names a revision only once its folder holds a complete push. A branch is
  published together with ``main`` in one write of ``refs.json``; ``main`` and tags are replaced by
  renaming a finished copy into place, keeping the previous copy (``.<name>.treecot-old``) until
  ``refs.json`` names the new one.
* Whoever takes the lock next (a writer, or a reader that can create the lock file) first repairs what
  a killed writer left: temporary files are deleted, a half-replaced ``main`` or tag gets its previous
  copy back, a branch whose push never completed is marked incomplete (its next push completes it),
  and ``main`` or a tag without a complete copy is dropped from ``refs.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from treecot.hub.ids import check_repo_id
from treecot.hub.retry import RetryPolicy, with_retries

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

#: Written (with the card) in the last commit of a push: its presence means the branch is complete.
MARKER_FILE = "treecot_push.json"
#: The local layout's index of branches and tags.
LOCAL_REFS_FILE = "refs.json"
#: The local layout's lock file: writers (and readers that can create it) hold it.
LOCAL_LOCK_FILE = ".treecot.lock"
#: Suffixes of what a local push writes before renaming it into place (left only by a killed writer).
_TMP_SUFFIX = ".treecot-tmp"
_OLD_SUFFIX = ".treecot-old"
#: Seconds a writer waits for the lock before saying that it waits (and then waits on).
_LOCK_NOTICE_AFTER = 5.0
#: Branch, tag and revision names.
REVISION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$")
_T = TypeVar("_T")


@dataclass
class PushResult:
    """What :func:`push_dataset` did.

    Args:
        repo_id (`str`):
            The dataset repository.
        revision (`str`):
            The run's branch (``run-<hash12>``).
        url_or_path (`str`):
            The branch's URL on the Hub, or its local folder.
        tag (`str`, *optional*):
            The tag now pointing at the run (None when not requested).
        skipped (`bool`):
            The branch was already complete and ``force`` was not set: nothing was uploaded.
        local (`bool`, *optional*, defaults to `False`):
            Written to a local folder rather than a Hub.
        commit (`str`, *optional*):
            The branch's head commit on the Hub (None locally).
    """

    repo_id: str
    revision: str
    url_or_path: str
    tag: str | None
    skipped: bool
    local: bool = False
    commit: str | None = None

    @property
    def branch(self) -> str:
        return self.revision


@dataclass
class Versions:
    """Branches and tags of a dataset repository: name -> commit sha (Hub) or content id (local)."""

    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def default_local_dir(repo_id: str) -> Path:
    """Where the local Hub layout of ``repo_id`` lives by default: ``$TREECOT_CACHE/hub/datasets/<repo_id>``."""
    from treecot.models import cache_dir

    check_repo_id(repo_id)
    return cache_dir() / "hub" / "datasets" / repo_id


class Target(ABC):
    """The operations a push needs, on a Hub repository (`_HubTarget`) or a local folder (`_LocalTarget`).

    Each operation is idempotent: it re-reads the remote state, so a retried or rerun step is safe.
    """

    repo_id: str
    name: str

    def step(self, what: str, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one push step (the Hub target retries it)."""
        return fn(*args)

    def writing(self) -> contextlib.AbstractContextManager[Any]:
        """Held around a whole push: the local target's lock (a Hub has none)."""
        return contextlib.nullcontext()

    @abstractmethod
    def publish(self, branch: str, update_main: bool) -> None:
        """Make the completed ``branch`` (and ``main`` with it) visible as complete."""

    @abstractmethod
    def branch_state(self, branch: str) -> dict | None:
        """None: no such branch; {}: an incomplete push; else the completeness marker."""

    @abstractmethod
    def ensure_repo(self) -> None:
        """Create the repository (with its main branch) if missing."""

    @abstractmethod
    def create_branch(self, branch: str) -> None:
        """Create ``branch`` (from main) if missing."""

    @abstractmethod
    def begin(self, branch: str) -> None:
        """Remove the marker and card so the branch reads as incomplete until `finalize`."""

    @abstractmethod
    def commit_config(self, branch: str, config: str, files: dict[str, Path], rows: int) -> None:
        """Make ``data/<config>/`` on ``branch`` hold exactly ``files`` (one commit, none if unchanged)."""

    @abstractmethod
    def finalize(self, branch: str, top: dict[str, Path | bytes], expected: set[str]) -> None:
        """Write card, extra files and marker (last), and delete files not in ``expected``."""

    @abstractmethod
    def sync_main(self, branch: str, files: dict[str, Path | bytes]) -> None:
        """Make main hold the same files as ``branch``."""

    @abstractmethod
    def tag(self, tag: str, branch: str, force: bool) -> None:
        """Point ``tag`` at ``branch``'s head; an existing tag elsewhere needs ``force``."""

    @abstractmethod
    def versions(self) -> Versions: ...

    @abstractmethod
    def load(self, config: str, revision: str, split: str | None) -> Dataset | DatasetDict: ...

    @abstractmethod
    def result(self, branch: str, tag: str | None, skipped: bool) -> PushResult: ...


class _HubTarget(Target):
    def __init__(
        self, repo_id: str, token: str | None, endpoint: str | None, retry: RetryPolicy, private: bool | None
    ):
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.api = HfApi(token=token, endpoint=endpoint)
        self.token = token
        self.endpoint = endpoint
        self.retry = retry
        self.private = private
        self.name = f"hub dataset {repo_id}"

    def step(self, what: str, fn: Callable[..., _T], *args: Any) -> _T:
        return with_retries(fn, *args, what=f"{self.name}: {what}", retry=self.retry)

    def _refs(self):
        return self.api.list_repo_refs(self.repo_id, repo_type="dataset")

    def _files(self, revision: str, folder: str | None = None) -> dict[str, Any]:
        from huggingface_hub import RepoFile
        from huggingface_hub.errors import EntryNotFoundError

        try:
            entries = self.api.list_repo_tree(
                self.repo_id, path_in_repo=folder, recursive=True, revision=revision, repo_type="dataset"
            )
            return {e.path: e for e in entries if isinstance(e, RepoFile)}
        except EntryNotFoundError:
            return {}

    def branch_state(self, branch: str) -> dict | None:
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

        try:
            branches = {b.name for b in self._refs().branches}
        except RepositoryNotFoundError:
            return None
        if branch not in branches:
            return None
        try:
            path = self.api.hf_hub_download(self.repo_id, MARKER_FILE, repo_type="dataset", revision=branch)
        except EntryNotFoundError:
            return {}
        marker = json.loads(Path(path).read_text())
        return marker if marker.get("complete") else {}

    def ensure_repo(self) -> None:
        self.api.create_repo(self.repo_id, repo_type="dataset", exist_ok=True, private=self.private)

    def create_branch(self, branch: str) -> None:
        self.api.create_branch(self.repo_id, branch=branch, repo_type="dataset", exist_ok=True)

    def begin(self, branch: str) -> None:
        from huggingface_hub import CommitOperationDelete

        stale = [p for p in (MARKER_FILE, "README.md") if p in self._files(branch)]
        if stale:
            self.api.create_commit(
                self.repo_id,
                [CommitOperationDelete(p) for p in stale],
                commit_message=f"Start push of {branch}",
                revision=branch,
                repo_type="dataset",
            )

    def _commit(
        self,
        branch: str,
        files: Mapping[str, Path | bytes],
        remote: dict[str, Any],
        keep: set[str],
        message: str,
    ) -> None:
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        operations: list = [CommitOperationDelete(p) for p in sorted(remote) if p not in keep]
        for path, source in files.items():
            if path in remote and _same_content(remote[path], source):
                continue
            operations.append(CommitOperationAdd(path, source if isinstance(source, bytes) else str(source)))
        if not operations:
            logger.info("%s: %s already up to date on %s", self.name, message, branch)
            return
        self.api.create_commit(
            self.repo_id, operations, commit_message=message, revision=branch, repo_type="dataset"
        )

    def commit_config(self, branch: str, config: str, files: dict[str, Path], rows: int) -> None:
        remote = self._files(branch, f"data/{config}")
        self._commit(branch, files, remote, set(files), f"Add config {config} ({rows:,} rows)")

    def finalize(self, branch: str, top: dict[str, Path | bytes], expected: set[str]) -> None:
        self._commit(
            branch, top, self._files(branch), expected | {".gitattributes"}, f"Complete push of {branch}"
        )

    def sync_main(self, branch: str, files: dict[str, Path | bytes]) -> None:
        self._commit(
            "main", files, self._files("main"), set(files) | {".gitattributes"}, f"Update main to {branch}"
        )

    def publish(self, branch: str, update_main: bool) -> None:
        """Nothing to do: the marker commit (and main's) are visible as soon as they are made."""

    def tag(self, tag: str, branch: str, force: bool) -> None:
        refs = self._refs()
        head = {b.name: b.target_commit for b in refs.branches}[branch]
        existing = {t.name: t.target_commit for t in refs.tags}
        if tag in existing:
            if existing[tag] == head:
                return
            if not force:
                raise ValueError(
                    f"tag {tag!r} of {self.repo_id} already points to {existing[tag]}, not to {branch} ({head}); "
                    "pass force=True to move it or choose a new tag"
                )
            self.api.delete_tag(self.repo_id, tag=tag, repo_type="dataset")
        self.api.create_tag(
            self.repo_id, tag=tag, revision=head, repo_type="dataset", tag_message=f"treecot {branch}"
        )

    def versions(self) -> Versions:
        refs = with_retries(self._refs, what=f"{self.name}: list refs", retry=self.retry)
        return Versions(
            branches={b.name: b.target_commit for b in refs.branches},
            tags={t.name: t.target_commit for t in refs.tags},
        )

    def load(self, config: str, revision: str, split: str | None) -> Dataset | DatasetDict:
        import datasets
        from huggingface_hub import constants

        if self.endpoint and self.endpoint.rstrip("/") != constants.ENDPOINT.rstrip("/"):
            raise ValueError(
                f"load_versioned: endpoint {self.endpoint!r} differs from HF_ENDPOINT={constants.ENDPOINT!r} read when "
                "huggingface_hub was imported; `datasets` only uses the latter: set HF_ENDPOINT before importing it"
            )
        return datasets.load_dataset(self.repo_id, config, revision=revision, split=split, token=self.token)

    def result(self, branch: str, tag: str | None, skipped: bool) -> PushResult:
        head = {b.name: b.target_commit for b in self._refs().branches}.get(branch)
        url = f"{self.api.endpoint.rstrip('/')}/datasets/{self.repo_id}/tree/{branch}"
        return PushResult(self.repo_id, branch, url, tag, skipped, local=False, commit=head)


def _same_content(remote: Any, source: Path | bytes) -> bool:
    """Whether a remote `RepoFile` already holds ``source`` (LFS sha256 or git blob sha)."""
    if getattr(remote, "lfs", None) is not None:
        return remote.lfs.sha256 == sha256_of(source)
    return remote.blob_id == _git_blob_sha(source)


class _LocalTarget(Target):
    def __init__(self, repo_id: str, root: Path):
        self.repo_id = repo_id
        self.root = root
        self.name = f"local dataset {repo_id} ({root})"
        #: main/tags replaced since refs.json was last written: their previous copies wait in `_old`.
        self._replaced: list[str] = []

    # lock and repair
    def writing(self) -> contextlib.AbstractContextManager[Any]:
        return self._locked(create=True)

    @contextlib.contextmanager
    def _locked(self, create: bool) -> Iterator[None]:
        with _folder_lock(self.root, create=create) as taken:
            if taken:
                self._repair()
            yield

    def _repair(self) -> None:
        """Put right what a killed writer left half-done; the caller holds the lock, so none is running."""
        if not self.root.is_dir():
            return
        refs = self._read_refs()
        recorded = {name: entry.get("content") for kind in refs.values() for name, entry in kind.items()}
        done: list[str] = []
        for path in sorted(self.root.iterdir()):
            if path.name.endswith(_TMP_SUFFIX):
                _remove(path)
                done.append(f"deleted the unfinished {path.name}")
            elif path.name.endswith(_OLD_SUFFIX):
                name = path.name[1 : -len(_OLD_SUFFIX)]
                if recorded.get(name) and self._content(name) == recorded[name]:
                    _remove(path)  # refs.json names the new copy: the previous one is no longer needed
                else:
                    self._restore(name, path)
                    done.append(f"restored the previous copy of {name}")
        changed = False
        for kind in ("branches", "tags"):
            for name, entry in list(refs[kind].items()):
                if entry.get("content") and self._content(name) == entry["content"]:
                    continue
                if kind == "branches" and name != "main":
                    if entry:  # its folder no longer holds what refs.json says: the next push completes it
                        refs[kind][name] = {}
                        changed = True
                        done.append(f"marked branch {name} incomplete")
                    continue
                del refs[kind][name]  # main and tags are only ever recorded with a complete copy
                changed = True
                what = "main" if kind == "branches" else f"tag {name}"
                done.append(f"dropped {what} from {LOCAL_REFS_FILE}: it held no complete push")
        if changed:
            self._write_refs(refs)
        for name, entry in refs["branches"].items():
            if not entry and self._folder(name).is_dir():  # only unfinished pushes leave files half-written
                for path in sorted(self._folder(name).rglob(f"*{_TMP_SUFFIX}")):
                    path.unlink()
                    done.append(f"deleted the unfinished {name}/{path.relative_to(self._folder(name))}")
        if done:
            logger.warning("%s: repaired what an interrupted push left: %s", self.name, "; ".join(done))

    def _restore(self, name: str, old: Path) -> None:
        dest = self._folder(name)
        aside = self.root / f".{name}.{_unique()}{_TMP_SUFFIX}"
        if dest.exists():
            os.replace(dest, aside)
        os.replace(old, dest)
        _remove(aside)

    # refs.json
    def _read_refs(self) -> dict[str, dict]:
        path = self.root / LOCAL_REFS_FILE
        if not path.is_file():
            return {"branches": {}, "tags": {}}
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"{path} is not valid JSON ({err}); it lists the branches and tags of {self.name}: restore it "
                "from a backup, or move the folder aside and push again"
            ) from None

    def _write_refs(self, refs: dict) -> None:
        text = json.dumps(refs, indent=2, sort_keys=True) + "\n"
        _replace_file(self.root / LOCAL_REFS_FILE, text.encode(), sync=True)

    def _commit_refs(self, refs: dict) -> None:
        """Write ``refs`` (the commit point), then delete the previous copies it no longer names."""
        self._write_refs(refs)
        for name in self._replaced:
            _remove(self._old(name))
        self._replaced.clear()

    def _folder(self, revision: str) -> Path:
        if not REVISION_PATTERN.match(revision) or revision == LOCAL_REFS_FILE:
            raise ValueError(f"invalid revision name {revision!r}")
        return self.root / revision

    def _old(self, revision: str) -> Path:
        return self.root / f".{revision}{_OLD_SUFFIX}"

    def _marker(self, revision: str) -> dict:
        path = self._folder(revision) / MARKER_FILE
        return json.loads(path.read_text()) if path.is_file() else {}

    def _content(self, revision: str) -> str:
        return _content_id(self._marker(revision))

    def _entry(self, revision: str, **extra: Any) -> dict:
        marker = self._marker(revision)
        return {"config_hash": marker.get("config_hash"), "content": _content_id(marker), **extra}

    def branch_state(self, branch: str) -> dict | None:
        entry = self._read_refs()["branches"].get(branch)
        if entry is None:
            return None
        marker = self._marker(branch)
        complete = marker.get("complete") and entry.get("content") and entry["content"] == _content_id(marker)
        return marker if complete else {}

    def ensure_repo(self) -> None:
        # main enters refs.json with the first complete push (`publish`), never before.
        self.root.mkdir(parents=True, exist_ok=True)

    def create_branch(self, branch: str) -> None:
        refs = self._read_refs()
        if branch in refs["tags"]:
            raise ValueError(f"{self.name}: a tag named {branch!r} exists")
        self._folder(branch).mkdir(parents=True, exist_ok=True)
        refs["branches"].setdefault(branch, {})
        self._write_refs(refs)

    def begin(self, branch: str) -> None:
        for name in (MARKER_FILE, "README.md"):
            (self._folder(branch) / name).unlink(missing_ok=True)

    def _write(self, folder: Path, files: Mapping[str, Path | bytes]) -> None:
        for path, source in files.items():
            dest = folder / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            _replace_file(dest, source)

    def _prune(self, folder: Path, keep: set[str], under: str = "") -> None:
        base = folder / under if under else folder
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*"), reverse=True):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and rel not in keep:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()

    def commit_config(self, branch: str, config: str, files: dict[str, Path], rows: int) -> None:
        folder = self._folder(branch)
        self._prune(folder, set(files), under=f"data/{config}")
        self._write(folder, files)

    def finalize(self, branch: str, top: dict[str, Path | bytes], expected: set[str]) -> None:
        folder = self._folder(branch)
        self._prune(folder, expected)
        marker = top[MARKER_FILE]
        self._write(folder, {p: s for p, s in top.items() if p != MARKER_FILE})
        self._write(folder, {MARKER_FILE: marker})  # last; refs.json names the branch from `publish` on

    def _snapshot(self, source: str, dest: str) -> None:
        """Make folder ``dest`` a copy of ``source``; its previous copy waits in `_old` until `_commit_refs`."""
        tmp = self.root / f".{dest}.{_unique()}{_TMP_SUFFIX}"
        shutil.copytree(self._folder(source), tmp)
        if self._folder(dest).exists():
            os.replace(self._folder(dest), self._old(dest))
        self._replaced.append(dest)
        os.replace(tmp, self._folder(dest))

    def sync_main(self, branch: str, files: dict[str, Path | bytes]) -> None:
        self._snapshot(branch, "main")

    def publish(self, branch: str, update_main: bool) -> None:
        refs = self._read_refs()
        refs["branches"][branch] = self._entry(branch)
        if update_main:
            refs["branches"]["main"] = self._entry("main")
        self._commit_refs(refs)  # one write: the branch is never complete without main holding it too

    def tag(self, tag: str, branch: str, force: bool) -> None:
        refs = self._read_refs()
        if tag in refs["branches"]:
            raise ValueError(f"{self.name}: a branch named {tag!r} exists; choose another tag")
        content = self._content(branch)
        if tag in refs["tags"]:
            if refs["tags"][tag].get("content") == content:
                return
            if not force:
                raise ValueError(
                    f"tag {tag!r} of {self.name} already holds other data (from {refs['tags'][tag].get('branch')}); "
                    "pass force=True to move it or choose a new tag"
                )
        self._snapshot(branch, tag)
        refs["tags"][tag] = self._entry(tag, branch=branch)
        self._commit_refs(refs)

    def versions(self) -> Versions:
        refs = self._read_refs()
        if not refs["branches"]:
            raise FileNotFoundError(f"no treecot dataset at {self.root} (missing {LOCAL_REFS_FILE})")
        return Versions(
            branches={k: v.get("content") or "" for k, v in refs["branches"].items()},
            tags={k: v.get("content") or "" for k, v in refs["tags"].items()},
        )

    def load(self, config: str, revision: str, split: str | None) -> Dataset | DatasetDict:
        import datasets

        self.versions()  # no layout here: say so before creating anything (the lock file)
        with self._locked(create=False):  # no push runs meanwhile, and a killed one is repaired first
            versions = self.versions()
            if revision not in versions.branches and revision not in versions.tags:
                available = ", ".join(sorted([*versions.branches, *versions.tags]))
                raise ValueError(f"revision {revision!r} not found in {self.name}; available: {available}")
            folder = self._folder(revision)
            if not (folder / "README.md").is_file():
                raise ValueError(f"revision {revision!r} of {self.name} holds no complete push yet")
            # Not `load_dataset(folder, config)`: its cache key ignores which folder the files came from, so
            # two layouts (or a force-pushed branch) could be served from one stale cache entry.
            return datasets.load_dataset("parquet", data_files=_local_data_files(folder, config), split=split)

    def result(self, branch: str, tag: str | None, skipped: bool) -> PushResult:
        return PushResult(
            self.repo_id, branch, str(self._folder(branch)), tag, skipped, local=True, commit=None
        )


_lock_state = threading.local()


@contextlib.contextmanager
def _folder_lock(root: Path, *, create: bool) -> Iterator[bool]:
    """Hold ``root``'s :data:`LOCAL_LOCK_FILE`; yields whether this call took it.

    False: this thread already holds it (re-entrant), or, with ``create=False`` (a reader), the lock file
    cannot be created here (a read-only folder, which no one writes either): it is read unlocked.
    """
    from filelock import FileLock, Timeout

    if getattr(_lock_state, "pid", None) != os.getpid():  # a forked child holds none of its parent's locks
        _lock_state.pid, _lock_state.depth = os.getpid(), {}
    depth: dict[str, int] = _lock_state.depth
    if create:
        root.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(root)
    if depth.get(key):
        depth[key] += 1
        try:
            yield False
        finally:
            depth[key] -= 1
        return
    lock = FileLock(os.path.join(key, LOCAL_LOCK_FILE))
    try:
        try:
            lock.acquire(timeout=_LOCK_NOTICE_AFTER)
        except Timeout:
            logger.warning(
                "%s is in use by another process (a push, or a read of it, holds %s); waiting for it to finish",
                root,
                lock.lock_file,
            )
            lock.acquire()
    except OSError as err:
        if create:
            raise
        logger.debug("cannot create the lock file of %s (%s); reading it unlocked", root, err)
        lock = None
    if lock is None:
        yield False
        return
    depth[key] = 1
    try:
        yield True
    finally:
        del depth[key]
        lock.release()


def _unique() -> str:
    """A file name part that no other writer (process or call) uses."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:12]}"


def _replace_file(dest: Path, source: Path | bytes, *, sync: bool = False) -> None:
    """Write ``dest`` whole or not at all: a unique temporary file beside it, then ``os.replace``."""
    tmp = dest.with_name(f".{dest.name}.{_unique()}{_TMP_SUFFIX}")  # one left behind: `_repair` deletes it
    if isinstance(source, bytes):
        with open(tmp, "wb") as f:
            f.write(source)
            if sync:
                f.flush()
                os.fsync(f.fileno())
    else:
        shutil.copyfile(source, tmp)
    os.replace(tmp, dest)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _local_data_files(folder: Path, config: str) -> dict[str, list[str]]:
    """``{split: [parquet paths]}`` of ``config`` as declared by the README's YAML ``configs``."""
    import yaml

    text = (folder / "README.md").read_text()
    match = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, flags=re.S)
    metadata = (yaml.safe_load(match.group(1)) if match else None) or {}
    declared = {c.get("config_name"): c for c in metadata.get("configs") or []}
    if config not in declared:
        raise ValueError(
            f"config {config!r} not found in {folder}; available: {', '.join(sorted(map(str, declared)))}"
        )
    entries = declared[config].get("data_files") or []
    if isinstance(entries, str):
        entries = [{"split": "train", "path": entries}]
    out: dict[str, list[str]] = {}
    for entry in entries:
        patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
        files = sorted(str(p) for pattern in patterns for p in folder.glob(pattern))
        if not files:
            raise FileNotFoundError(f"no file matches {patterns} for config {config!r} in {folder}")
        out[entry.get("split", "train")] = files
    return out


def online_configured(token: str | None, endpoint: str | None) -> bool:
    if token or endpoint or os.environ.get("HF_ENDPOINT"):
        return True
    return bool(_hf_tokens())


def _hf_tokens() -> set[str]:
    values = {os.environ.get(name) for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    try:
        from huggingface_hub import get_token

        values.add(get_token())
    except Exception:  # noqa: BLE001
        pass
    return {v for v in values if v}


def open_target(
    repo_id: str,
    *,
    local_dir: str | os.PathLike | None,
    token: str | None,
    endpoint: str | None,
    retry: RetryPolicy,
    private: bool | None = None,
) -> Target:
    if local_dir is not None:
        return _LocalTarget(repo_id, Path(local_dir))
    if os.path.isfile(os.path.join(str(repo_id), LOCAL_REFS_FILE)):
        return _LocalTarget(Path(repo_id).name, Path(repo_id))
    check_repo_id(repo_id)
    if online_configured(token, endpoint):
        return _HubTarget(repo_id, token, endpoint, retry, private)
    root = default_local_dir(repo_id)
    if str(root) not in _LOCAL_NOTICES:  # once per folder and process: a command opens its target 2–3 times
        _LOCAL_NOTICES.add(str(root))
        logger.warning(
            "no Hugging Face token or endpoint configured (HF_TOKEN / HF_ENDPOINT): using the local Hub layout at %s",
            root,
        )
    return _LocalTarget(repo_id, root)


#: Local-layout folders already announced in this process (`open_target`).
_LOCAL_NOTICES: set[str] = set()


def _read(source: Path | bytes) -> bytes:
    return source if isinstance(source, bytes) else Path(source).read_bytes()


def sha256_of(source: Path | bytes) -> str:
    return hashlib.sha256(_read(source)).hexdigest()


def _git_blob_sha(source: Path | bytes) -> str:
    data = _read(source)
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _content_id(marker: Mapping[str, Any]) -> str:
    """A stable id of a complete push's content (its file hashes); empty for an incomplete one."""
    if not marker.get("files"):
        return ""
    return hashlib.sha256(json.dumps(marker["files"], sort_keys=True).encode()).hexdigest()[:16]
