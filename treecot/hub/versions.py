"""Versioned push and load of treecot datasets: one branch per run, tags for releases.

See `treecot.hub` for the versioning scheme and `treecot.hub.targets` for the local layout.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from treecot.hub.cards import package_version
from treecot.hub.dataset_card import render_dataset_card
from treecot.hub.ids import check_repo_id
from treecot.hub.redact import known_secrets, redact, scrub_dataset
from treecot.hub.retry import RetryPolicy
from treecot.hub.targets import (
    MARKER_FILE,
    REVISION_PATTERN,
    PushResult,
    Target,
    Versions,
    open_target,
    sha256_of,
)

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

logger = logging.getLogger(__name__)

MARKER_SCHEMA_VERSION = 1
#: Parquet shards are cut to stay under this many (in-memory Arrow) bytes.
MAX_SHARD_BYTES = 500 * 1024 * 1024
#: Config and split names.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$")


def branch_name(config_hash: str) -> str:
    """The branch of a run: ``run-`` + the first 12 characters of its config hash."""
    if not isinstance(config_hash, str) or not re.fullmatch(r"[A-Za-z0-9]{8,}", config_hash):
        raise ValueError(
            f"config_hash must be an alphanumeric hash of at least 8 characters, got {config_hash!r}"
        )
    return f"run-{config_hash[:12].lower()}"


def push_dataset(
    repo_id: str,
    configs: Mapping[str, Dataset | DatasetDict],
    *,
    card: Mapping[str, Any],
    config_hash: str,
    tag: str | None = None,
    force: bool = False,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    extra_files: Mapping[str, bytes | str | os.PathLike] | None = None,
    update_main: bool = True,
    private: bool | None = None,
    retry: RetryPolicy | None = None,
) -> PushResult:
    """Push one run's configs to ``repo_id`` on its own branch; optionally tag it; see `treecot.hub`.

    Args:
        repo_id (`str`):
            ``"namespace/name"`` of the dataset repository (created if missing).
        configs (`Mapping[str, Dataset | DatasetDict]`):
            ``{"trees": ds, "sft": ds_or_dict, "dpo": …}``; a `Dataset` becomes split ``train``.
        card (`Mapping[str, Any]`):
            Card fields (``recipe``, ``models``, ``seeds``, ``yield``, ``cost``, ``description``, …;
            see `treecot.hub.dataset_card`); counts, configs, versions and histograms are filled in here.
        config_hash (`str`):
            The run's configuration hash; names the branch.
        tag (`str`, *optional*):
            e.g. ``"v1"``; created after the complete push (an existing tag elsewhere needs ``force``).
        force (`bool`, *optional*, defaults to `False`):
            Overwrite a complete branch (and move an existing tag).
        local_dir (`str | os.PathLike`, *optional*):
            Write the local Hub layout here instead of pushing.
        token (`str`, *optional*):
            Hub credentials; default ``HF_TOKEN``/stored login.
        endpoint (`str`, *optional*):
            Hub URL; default ``HF_ENDPOINT``.
        extra_files (`Mapping[str, bytes | str | os.PathLike]`, *optional*):
            ``{path_in_repo: bytes or file path}`` pushed alongside (e.g. histogram PNGs).
            PNGs under ``histograms/`` are linked from the card unless ``card["histograms"]`` is given.
        update_main (`bool`, *optional*, defaults to `True`):
            After a complete push, make ``main`` hold this run too.
        private (`bool`, *optional*):
            Visibility when the repository is created.
        retry (`RetryPolicy`, *optional*):
            Backoff policy for Hub calls.
    """
    branch = branch_name(config_hash)
    check_repo_id(repo_id)
    if tag is not None and not REVISION_PATTERN.match(tag):
        raise ValueError(f"invalid tag {tag!r}: use letters, digits, '.', '_' or '-' (e.g. 'v1')")
    if not configs:
        raise ValueError("push_dataset: configs is empty; pass e.g. {'trees': ..., 'sft': ..., 'dpo': ...}")
    for name in configs:
        if not _NAME.match(name):
            raise ValueError(f"invalid config name {name!r}: use letters, digits, '_' or '-'")
    extra = _normalise_extra_files(extra_files or {})
    target = open_target(
        repo_id,
        local_dir=local_dir,
        token=token,
        endpoint=endpoint,
        retry=retry or RetryPolicy(),
        private=private,
    )
    secrets = known_secrets([token])
    with tempfile.TemporaryDirectory(prefix="treecot-hub-") as tmp:
        staged, counts = _stage(configs, Path(tmp), secrets)
        with target.writing():
            return _push(
                target,
                staged,
                counts,
                extra,
                dict(card),
                config_hash,
                branch,
                tag,
                force,
                update_main,
                secrets,
            )


def load_versioned(
    repo_id: str,
    config: str,
    revision: str | None = None,
    split: str | None = None,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Dataset | DatasetDict:
    """Load ``config`` of a treecot dataset at ``revision`` (branch, tag or commit; default ``main``).

    Works for Hub repositories and for the local layout written by :func:`push_dataset` (where
    ``revision`` is honoured too).

    Args:
        repo_id (`str`):
            The dataset repository; may also be the path of a local layout folder.
        config (`str`):
            The config to load.
        revision (`str`, *optional*):
            Branch, tag or commit; default ``main``.
        split (`str`, *optional*):
            The split to load.
        local_dir (`str | os.PathLike`, *optional*):
            The local Hub layout to read instead of the Hub, as in :func:`push_dataset`.
        token (`str`, *optional*):
            Hub credentials, as in :func:`push_dataset`.
        endpoint (`str`, *optional*):
            Hub URL, as in :func:`push_dataset`.
    """
    target = open_target(repo_id, local_dir=local_dir, token=token, endpoint=endpoint, retry=RetryPolicy())
    return target.load(config, revision or "main", split)


def list_versions(
    repo_id: str,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Versions:
    """Branches and tags of a treecot dataset repository (Hub or local layout)."""
    return open_target(
        repo_id, local_dir=local_dir, token=token, endpoint=endpoint, retry=RetryPolicy()
    ).versions()


@contextlib.contextmanager
def write_lock(
    repo_id: str,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
) -> Iterator[None]:
    """Hold the write lock of ``repo_id``'s local layout around a read-modify-write.

    Args:
        repo_id (`str`):
            ``"namespace/name"`` of the dataset repository.
        local_dir (`str | os.PathLike`, *optional*):
            The local Hub layout.
        token (`str`, *optional*):
            Hub credentials.
        endpoint (`str`, *optional*):
            Hub URL.

    ``repo_id`` and the keywords resolve the target as :func:`push_dataset` does. Locally, every other
    push to the folder waits until the block ends, so a table read inside it (e.g. with
    :func:`load_versioned`) is still current when the block pushes its new version; the lock is
    re-entrant within a thread, so :func:`push_dataset` and :func:`load_versioned` inside do not wait on
    it. A Hub repository has no lock: there the block runs unlocked, and two concurrent
    read-modify-writes can still lose one.
    """
    target = open_target(repo_id, local_dir=local_dir, token=token, endpoint=endpoint, retry=RetryPolicy())
    with target.writing():
        yield


def _push(
    target: Target,
    staged: dict[str, dict[str, Path]],
    counts: dict[str, dict[str, int]],
    extra: dict[str, Path | bytes],
    card: dict[str, Any],
    config_hash: str,
    branch: str,
    tag: str | None,
    force: bool,
    update_main: bool,
    secrets: set[str],
) -> PushResult:
    state = target.step("read branch state", target.branch_state, branch)
    if state and not force:
        if state.get("config_hash") != config_hash:
            raise RuntimeError(
                f"branch {branch} of {target.name} is complete but holds config hash {state.get('config_hash')!r}, "
                f"not {config_hash!r} (a 12-character prefix collision): pass force=True to overwrite it"
            )
        logger.info(
            "%s: branch %s is already complete; skipping the upload (force=True overwrites)",
            target.name,
            branch,
        )
        if tag:
            target.step(f"tag {tag}", target.tag, tag, branch, False)
        return target.result(branch, tag, skipped=True)

    logger.info("%s: pushing %s to branch %s", target.name, ", ".join(staged), branch)
    target.step("create repository", target.ensure_repo)
    if state is None:
        target.step(f"create branch {branch}", target.create_branch, branch)
    target.step(f"open branch {branch}", target.begin, branch)
    for config, files in staged.items():
        rows = sum(counts[config].values())
        target.step(f"upload config {config}", target.commit_config, branch, config, files, rows)

    # The last commit: card, extra files, and the completeness marker.
    hashes = {path: sha256_of(p) for files in staged.values() for path, p in files.items()}
    hashes.update({path: sha256_of(content) for path, content in extra.items()})
    histograms = card.get("histograms") or [
        {"title": Path(p).stem.replace("_", " "), "path": p}
        for p in sorted(extra)
        if p.startswith("histograms/") and p.endswith(".png")
    ]
    info = {
        **card,
        "repo_id": target.repo_id,
        "configs": {name: {"splits": splits} for name, splits in counts.items()},
        "config_hash": config_hash,
        "branch": branch,
        "tag": tag,
        "revision": tag or branch,
        "complete": True,
        "histograms": histograms,
    }
    readme = render_dataset_card(redact(info, secrets))
    marker = redact(
        {
            "schema_version": MARKER_SCHEMA_VERSION,
            "complete": True,
            "config_hash": config_hash,
            "branch": branch,
            "treecot_version": package_version("treecot"),
            "configs": counts,
            "files": dict(sorted(hashes.items())),
            "pushed_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
        secrets,
    )
    top: dict[str, Path | bytes] = {
        **extra,
        "README.md": readme.encode(),
        MARKER_FILE: (json.dumps(marker, indent=2, sort_keys=True) + "\n").encode(),
    }
    expected = set(hashes) | set(top)
    target.step(f"complete branch {branch}", target.finalize, branch, top, expected)
    if update_main:
        all_files: dict[str, Path | bytes] = {p: f for files in staged.values() for p, f in files.items()}
        all_files.update(top)
        target.step("update main", target.sync_main, branch, all_files)
    target.step(f"publish branch {branch}", target.publish, branch, update_main)
    if tag:
        target.step(f"tag {tag}", target.tag, tag, branch, force)
    result = target.result(branch, tag, skipped=False)
    logger.info(
        "%s: pushed branch %s%s -> %s",
        target.name,
        branch,
        f" (tag {tag})" if tag else "",
        result.url_or_path,
    )
    return result


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """`datasets`' progress bars off for one short step (restored after)."""
    import datasets

    was_disabled = datasets.utils.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _stage(
    configs: Mapping[str, Dataset | DatasetDict], out: Path, secrets: set[str]
) -> tuple[dict[str, dict[str, Path]], dict[str, dict[str, int]]]:
    """Write every config/split as parquet shards under ``out/data/<config>/``."""
    from datasets import Dataset, DatasetDict

    staged: dict[str, dict[str, Path]] = {}
    counts: dict[str, dict[str, int]] = {}
    for name, value in configs.items():
        if isinstance(value, Dataset):
            splits = {"train": value}
        elif isinstance(value, (DatasetDict, Mapping)):
            splits = dict(value)
        else:
            raise TypeError(
                f"config {name!r}: expected a datasets.Dataset or DatasetDict, got {type(value).__name__}"
            )
        if not splits:
            raise ValueError(f"config {name!r} has no splits")
        staged[name], counts[name] = {}, {}
        for split, ds in splits.items():
            if not _NAME.match(split):
                raise ValueError(f"config {name!r}: invalid split name {split!r}")
            ds = scrub_dataset(ds, secrets, f"{name}/{split}")
            n_shards = max(1, math.ceil(ds.data.nbytes / MAX_SHARD_BYTES))
            for i in range(n_shards):
                rel = f"data/{name}/{split}-{i:05d}-of-{n_shards:05d}.parquet"
                (out / rel).parent.mkdir(parents=True, exist_ok=True)
                shard = ds.shard(n_shards, i, contiguous=True) if n_shards > 1 else ds
                with quiet_datasets():  # "Creating parquet from Arrow format" per file: noise
                    shard.to_parquet(str(out / rel))
                staged[name][rel] = out / rel
            counts[name][split] = len(ds)
    return staged, counts


def _normalise_extra_files(extra: Mapping[str, bytes | str | os.PathLike]) -> dict[str, Path | bytes]:
    out: dict[str, Path | bytes] = {}
    for path, source in extra.items():
        clean = path.strip("/")
        if not clean or clean.startswith("data/") or clean in ("README.md", MARKER_FILE, ".gitattributes"):
            raise ValueError(f"extra file path {path!r} is reserved (data/, README.md, {MARKER_FILE})")
        if ".." in clean.split("/"):
            raise ValueError(f"extra file path {path!r} must stay inside the repository")
        if isinstance(source, bytes):
            out[clean] = source
        else:
            if not Path(source).is_file():
                raise FileNotFoundError(f"extra file {path!r}: {source} does not exist")
            out[clean] = Path(source)
    return out
