"""Leaderboard storage: the table as config ``results`` of a versioned dataset (Hub repo or local folder,
through `treecot.hub`): `load` it, `push` a run to it.

See `treecot.evaluation.leaderboard` for the layout (a ``run-<hash>`` branch per push, ``main`` holding
every row) and the lock that serialises pushes to one local folder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any

from treecot.evaluation.leaderboard.rows import COLUMNS, PAPER_SOURCE, rows_from_summary
from treecot.hub import list_versions, load_versioned, push_dataset, write_lock

#: The leaderboard's logger (named after `treecot.evaluation.leaderboard`, where `push` was first defined).
logger = logging.getLogger("treecot.evaluation.leaderboard")

__all__ = ["CONFIG", "DEFAULT_REPO", "load", "push"]

DEFAULT_REPO = "treecot/leaderboard"
CONFIG = "results"


def _features():
    from datasets import Features, Value

    return Features({name: Value(kind) for name, kind in COLUMNS.items()})


def _is_missing(err: BaseException) -> bool:
    if isinstance(err, FileNotFoundError):
        return True
    try:
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        return isinstance(err, (RepositoryNotFoundError, RevisionNotFoundError))
    except ImportError:  # pragma: no cover
        return False


def load(
    repo_id: str | None = None,
    *,
    revision: str | None = None,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """The leaderboard table; empty when the repository does not exist.

    Args:
        repo_id (`str`, *optional*):
            The leaderboard dataset (default `DEFAULT_REPO`).
        revision (`str`, *optional*):
            A branch, tag or commit (default: ``main``, which holds every row).
        local_dir (`str` or `os.PathLike`, *optional*):
            Read this local folder instead of the Hub.
        token (`str`, *optional*):
            Hub token.
        endpoint (`str`, *optional*):
            Hub endpoint.

    Returns:
        `datasets.Dataset`: the rows, with the `COLUMNS` features.
    """
    from datasets import Dataset

    repo_id = repo_id or DEFAULT_REPO
    empty = Dataset.from_dict({name: [] for name in COLUMNS}, features=_features())
    try:
        versions = list_versions(repo_id, local_dir=local_dir, token=token, endpoint=endpoint)
    except Exception as err:  # noqa: BLE001 - only "does not exist" is swallowed
        if _is_missing(err):
            return empty
        raise
    if revision is None and not versions.branches.get("main"):
        return empty  # a local folder whose first push never completed: no row was published
    ds = load_versioned(
        repo_id, CONFIG, revision, split="train", local_dir=local_dir, token=token, endpoint=endpoint
    )
    missing = sorted(set(COLUMNS) - set(ds.column_names))
    if missing:
        raise ValueError(f"{repo_id} is not a treecot leaderboard: config {CONFIG!r} lacks columns {missing}")
    return ds.select_columns(list(COLUMNS)).cast(_features())


def push(
    results_or_summary_path: str | os.PathLike | Mapping[str, Any],
    repo_id: str | None = None,
    *,
    local_dir: str | os.PathLike | None = None,
    token: str | None = None,
    endpoint: str | None = None,
):
    """Append a run's rows to the leaderboard `repo_id` (see `treecot.evaluation.leaderboard`).

    Re-pushing a run replaces its rows.

    Args:
        results_or_summary_path (`str`, `os.PathLike` or `Mapping[str, Any]`):
            A run's ``summary.json``, its output directory, lighteval's results JSON of a treecot run, or a
            summary dict.
        repo_id (`str`, *optional*):
            The leaderboard dataset (default `DEFAULT_REPO`).
        local_dir (`str` or `os.PathLike`, *optional*):
            Write this local folder instead of the Hub.
        token (`str`, *optional*):
            Hub token.
        endpoint (`str`, *optional*):
            Hub endpoint.

    Returns:
        `treecot.hub.PushResult`: where the table was written.
    """
    from datasets import Dataset

    repo_id = repo_id or DEFAULT_REPO
    new = rows_from_summary(results_or_summary_path)
    run_id = new[0]["run_id"]
    target = {"local_dir": local_dir, "token": token, "endpoint": endpoint}
    with write_lock(repo_id, **target):  # the table read here is still main's when the push below lands
        current = load(repo_id, **target)
        kept = [row for row in current.to_list() if row["run_id"] != run_id]
        rows = kept + new
        table = Dataset.from_list(rows, features=_features())
        runs = sorted({row["run_id"] for row in rows})
        config_hash = hashlib.sha256(json.dumps(runs).encode()).hexdigest()[:16]
        card = {
            "pretty_name": "treecot leaderboard",
            "description": (
                "Evaluation runs of `treecot eval` (lighteval with treecot's verifiers): one row per run, task "
                "and metric, with the task's no-answer rate. Rates are fractions in [0, 1]. Compare with the "
                f"paper's figures via `treecot leaderboard reference` ({PAPER_SOURCE})."
            ),
            "built_with": (
                "Written by `treecot leaderboard push`: every push rewrites the whole table on `main` (load that) "
                "and keeps a snapshot of it on its own `run-*` branch."
            ),
            "load_revision": "main",
            **({"local_dir": str(local_dir)} if local_dir is not None else {}),
            "tags": ["leaderboard", "evaluation"],
            "models": {f"run {i + 1}": m for i, m in enumerate(sorted({row["model"] for row in rows}))},
            "yield": {"runs": len(runs), "rows": len(rows)},
        }
        result = push_dataset(
            repo_id, {CONFIG: table}, card=card, config_hash=config_hash, update_main=True, **target
        )
    logger.info("leaderboard %s: %d rows (%d runs) -> %s", repo_id, len(rows), len(runs), result.url_or_path)
    return result
