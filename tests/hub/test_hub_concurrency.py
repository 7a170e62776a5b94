"""The local Hub layout under concurrent and killed writers (treecot.hub, treecot.evaluation.leaderboard).

Writers are forked processes. A killed writer is one that SIGKILLs itself, through an audit hook
(`sys.addaudithook`), just before its k-th change to the layout folder (see `_killed_at`); k runs from 1
until a push makes fewer than k changes, so every point of the push is tried.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import sys
import traceback

import pytest

from tests.evaluation.test_leaderboard import make_summary
from tests.hub.test_hub import CARD, HASH_A, HASH_B, make_configs
from treecot import hub
from treecot.evaluation import leaderboard as lb
from treecot.hub import targets

pytestmark = pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="writers are forked processes"
)

REPO = "me/board"
WRITERS = 4
ROUNDS = 3


def _ctx():
    return multiprocessing.get_context("fork")


def _summary(name: str, accuracy: float = 0.5) -> dict:
    return make_summary(name, accuracy, 0.05)


def _models(store) -> list[str]:
    """The models on the board (one entry per row: a run pushed twice or half would show)."""
    return sorted(lb.load(REPO, local_dir=store)["model"])


def _rows(*models: str) -> list[str]:
    per_run = len(lb.rows_from_summary(_summary("x")))
    return sorted(m for m in models for _ in range(per_run))


def _push(summary: dict, store) -> None:
    lb.push(summary, REPO, local_dir=store)


def _leftovers(store) -> list[str]:
    return sorted(
        p.name for p in store.rglob("*") if p.name.endswith((targets._TMP_SUFFIX, targets._OLD_SUFFIX))
    )


# --------------------------------------------------------------------------------------------------
# Concurrent writers
# --------------------------------------------------------------------------------------------------


def _together(barrier, results, i, fn, *args):
    """Child: wait for every writer, run ``fn(*args)``, report "ok" or the traceback."""
    try:
        barrier.wait(timeout=60)
        fn(*args)
        results.put((i, "ok"))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put((i, traceback.format_exc()))


def _run_together(calls: list[tuple]) -> dict[int, str]:
    ctx = _ctx()
    barrier, results = ctx.Barrier(len(calls)), ctx.Queue()
    procs = [ctx.Process(target=_together, args=(barrier, results, i, *call)) for i, call in enumerate(calls)]
    for proc in procs:
        proc.start()
    outcome = dict(results.get(timeout=120) for _ in procs)
    for proc in procs:
        proc.join(60)
    return outcome


def test_concurrent_leaderboard_pushes_all_land(tmp_path):
    for r in range(ROUNDS):
        store = tmp_path / f"board-{r}"
        names = [f"model-{r}-{i}" for i in range(WRITERS)]
        outcome = _run_together([(_push, _summary(name, 0.1 * i), store) for i, name in enumerate(names)])
        assert outcome == {i: "ok" for i in range(WRITERS)}, "\n".join(outcome.values())
        assert _models(store) == _rows(*names), f"round {r}: a run was lost"
        assert _leftovers(store) == []


def _run_hash(i: int) -> str:
    return f"{i + 1:x}" * 16


def _push_run(store, i: int) -> None:
    hub.push_dataset(
        "me/ds", make_configs(offset=i), card=CARD, config_hash=_run_hash(i), tag=f"t{i}", local_dir=store
    )


def test_concurrent_dataset_pushes_keep_every_branch_and_tag(tmp_path):
    store = tmp_path / "ds"
    outcome = _run_together([(_push_run, store, i) for i in range(WRITERS)])
    assert outcome == {i: "ok" for i in range(WRITERS)}, "\n".join(outcome.values())
    versions = hub.list_versions("me/ds", local_dir=store)
    branches = [hub.branch_name(_run_hash(i)) for i in range(WRITERS)]
    assert set(versions.branches) == {*branches, "main"} and all(versions.branches.values())
    assert set(versions.tags) == {f"t{i}" for i in range(WRITERS)}
    for i in range(WRITERS):
        dpo = hub.load_versioned("me/ds", "dpo", revision=f"t{i}", split="train", local_dir=store)
        assert dpo["chosen"][0] == f"good {i}"
    (last,) = [
        i for i, branch in enumerate(branches) if versions.branches[branch] == versions.branches["main"]
    ]
    assert hub.load_versioned("me/ds", "dpo", split="train", local_dir=store)["chosen"][0] == f"good {last}"


def _push_and_report_logs(results, summary, store) -> None:
    """Child: push ``summary``, sending each log message of the hub module as it comes, then "done"."""
    handler = logging.Handler()
    handler.emit = lambda record: results.put(("log", record.getMessage()))
    logging.getLogger("treecot.hub").addHandler(handler)
    try:
        lb.push(summary, REPO, local_dir=store)
        results.put(("done", "ok"))
    except BaseException:  # noqa: BLE001 - reported to the parent
        results.put(("done", traceback.format_exc()))


def test_a_writer_waits_for_the_lock_and_says_so(tmp_path, monkeypatch):
    store = tmp_path / "board"
    lb.push(_summary("first"), REPO, local_dir=store)
    monkeypatch.setattr(targets, "_LOCK_NOTICE_AFTER", 0.2)
    ctx = _ctx()
    results = ctx.Queue()
    proc = ctx.Process(target=_push_and_report_logs, args=(results, _summary("second"), store))
    with hub.write_lock(REPO, local_dir=store):  # e.g. another push, between its read and its write
        proc.start()
        kind, message = results.get(timeout=60)
        while kind == "log" and "waiting" not in message:
            kind, message = results.get(timeout=60)
        assert kind == "log", f"the second push did not wait for the lock: {message}"
        assert "waiting for it to finish" in message and hub.LOCAL_LOCK_FILE in message
        assert _models(store) == _rows("first")  # re-entrant: this thread reads under its own lock
    proc.join(60)
    assert results.get(timeout=5) == ("done", "ok")
    assert _models(store) == _rows("first", "second")


# --------------------------------------------------------------------------------------------------
# Killed writers
# --------------------------------------------------------------------------------------------------


def _killed_at(k: int, store, fn, *args) -> None:
    """Child: run ``fn(*args)``, SIGKILLed just before its k-th change under ``store`` (exit 0: fewer).

    A change: a file opened for writing, a rename, a removal, a new directory. Inside a temporary copy
    (``.<name>.treecot-tmp`` being filled, ``.<name>.treecot-old`` being deleted) only its first change
    counts: the others only add to or take from the same unpublished copy.
    """
    root = os.path.realpath(store)
    lock_file = os.path.join(root, hub.LOCAL_LOCK_FILE)
    changes, copies, rmtree_at = 0, set(), None

    def relative(path) -> str | None:
        if not isinstance(path, (str, bytes, os.PathLike)):
            return None
        real = os.path.realpath(os.fsdecode(path))
        if real == lock_file or not (real == root or real.startswith(root + os.sep)):
            return None
        return os.path.relpath(real, root)

    def counts(rel: str | None) -> bool:
        if rel is None:
            return False
        top, _, inner = rel.partition(os.sep)
        if inner and top.endswith((targets._TMP_SUFFIX, targets._OLD_SUFFIX)):
            if top in copies:
                return False
            copies.add(top)
        return True

    def hook(event: str, args: tuple) -> None:
        nonlocal changes, rmtree_at
        if event == "shutil.rmtree":
            rmtree_at = relative(args[0])
            return
        if event == "open":
            change = bool(args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)) and counts(relative(args[0]))
        elif event == "os.rename":  # os.rename and os.replace
            change = relative(args[0]) is not None or relative(args[1]) is not None
        elif event in ("os.remove", "os.rmdir"):
            if args[1] == -1:
                change = counts(relative(args[0]))
            else:  # a name under a directory rmtree holds open
                change = rmtree_at is not None and counts(os.path.join(rmtree_at, os.fsdecode(args[0])))
        elif event == "os.mkdir":  # makedirs(exist_ok=True) tries existing directories too: no change
            change = not os.path.isdir(args[0]) and counts(relative(args[0]))
        else:
            return
        if change:
            changes += 1
            if changes == k:
                os.kill(os.getpid(), signal.SIGKILL)

    sys.addaudithook(hook)
    fn(*args)
    os._exit(0)


def _crash_sweep(tmp_path, base, fn, args, check) -> int:
    """Kill ``fn(*args, store)`` at each of its changes to a copy ``store`` of the folder ``base``, then
    ``check(store, k)`` what the next reader and writer get. Returns the number of crash points tried."""
    ctx = _ctx()
    k = 0
    while True:
        k += 1
        store = tmp_path / f"killed-at-{k}"
        if base.exists():
            shutil.copytree(base, store)
        proc = ctx.Process(target=_killed_at, args=(k, store, fn, *args, store))
        proc.start()
        proc.join(60)
        if proc.exitcode == 0:
            break  # fewer than k changes: every point has been tried
        assert proc.exitcode == -signal.SIGKILL, f"point {k}: the push failed on its own ({proc.exitcode})"
        check(store, k)
        assert _leftovers(store) == [], f"point {k}"
        shutil.rmtree(store, ignore_errors=True)
    return k - 1


def _board_sweep(tmp_path, before: list[str]) -> int:
    """A leaderboard push killed at each point over a board of ``before``: a reader sees the board as
    before or with the killed run whole, and the next push lands with all of it."""
    base = tmp_path / "base"
    for name in before:
        lb.push(_summary(name), REPO, local_dir=base)

    def check(store, k: int) -> None:
        seen = _models(store)
        landed = "killed" in seen
        assert seen == _rows(*before, *(["killed"] if landed else [])), f"point {k}"
        assert not lb.push(_summary("next"), REPO, local_dir=store).skipped, f"point {k}"
        assert _models(store) == _rows(*before, *(["killed"] if landed else []), "next"), f"point {k}"

    return _crash_sweep(tmp_path, base, _push, (_summary("killed"),), check)


def test_a_first_push_killed_at_any_point_is_repaired_by_the_next(tmp_path):
    # issue #14: a first push killed once refs.json appeared blocked the folder for every later push
    assert _board_sweep(tmp_path, before=[]) >= 15


def test_a_push_killed_at_any_point_keeps_the_board(tmp_path):
    assert _board_sweep(tmp_path, before=["earlier"]) >= 20


def _move_tag(store) -> None:
    dpo = make_configs(offset=1)["dpo"]
    hub.push_dataset(
        "me/ds", {"dpo": dpo}, card=CARD, config_hash=HASH_B, tag="v1", force=True, local_dir=store
    )


def test_a_push_killed_while_moving_main_and_a_tag_leaves_both_whole(tmp_path):
    base = tmp_path / "base"
    first = make_configs()["dpo"]
    hub.push_dataset("me/ds", {"dpo": first}, card=CARD, config_hash=HASH_A, tag="v1", local_dir=base)
    old, new = ["good 0", "fine"], ["good 1", "fine"]
    first_content = hub.list_versions("me/ds", local_dir=base).branches[hub.branch_name(HASH_A)]

    def chosen(store, revision: str) -> list[str]:
        return hub.load_versioned("me/ds", "dpo", revision=revision, split="train", local_dir=store)["chosen"]

    def check(store, k: int) -> None:
        main, v1 = chosen(store, "main"), chosen(store, "v1")  # read first: the reader repairs
        versions = hub.list_versions("me/ds", local_dir=store)
        published = bool(versions.branches.get(hub.branch_name(HASH_B)))
        assert main == (new if published else old), f"point {k}"
        assert v1 == (new if versions.tags["v1"] == versions.branches.get(hub.branch_name(HASH_B)) else old)
        _move_tag(store)  # the rerun of the killed push
        assert chosen(store, "v1") == new, f"point {k}"
        versions = hub.list_versions("me/ds", local_dir=store)  # content ids: hashes of the files' hashes
        assert versions.branches["main"] == versions.tags["v1"] == versions.branches[hub.branch_name(HASH_B)]
        assert versions.branches[hub.branch_name(HASH_A)] == first_content, f"point {k}"

    assert _crash_sweep(tmp_path, base, _move_tag, (), check) >= 15
