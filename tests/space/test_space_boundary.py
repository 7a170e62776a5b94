"""The Space's file boundary (`treecot.space`): every dataset file is resolved and checked against the data
roots when it is opened, Hub ids are read only when the Space allows the Hub, and gradio's upload route
takes no file.

Each escape attempt plants a symlink (or a swap, a Hub id, an upload) whose target holds *valid* data with
the marker problem id ``SECRET``: were it followed, the load would succeed and serve it. Small datasets
written with `treecot.hub.push_dataset` (no model); one app launched for the HTTP checks.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from treecot.space import (  # noqa: E402
    ALLOW_HUB_HINT,
    MAX_UPLOAD_BYTES,
    SpaceApp,
    SpaceConfig,
    SpaceError,
    check_model_dir,
    launch_kwargs,
    leaderboard_rows,
    load_tree_source,
    open_checked,
    resolve_model,
)

OUTSIDE = "leads outside the data roots"
SECRET = "SECRET"
LEADERBOARD_RUNS = (("run-a", 0.25), ("run-b", 0.5))


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch, tmp_path):
    """No token, no endpoint: a Hub id resolves to the local Hub layout under a private TREECOT_CACHE."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("TREECOT_CACHE", str(tmp_path / "cache"))


def tree_dict(problem_id: str) -> dict:
    return {
        "problem": {"id": problem_id, "question": "2 + 2?", "task": "gsm8k", "reference": "4"},
        "nodes": [],
    }


def push_layout(folder: Path, problem_id: str) -> Path:
    """A treecot dataset in local Hub layout at `folder` (branches main + run-…, tag v1; trees + sft)."""
    from datasets import Dataset

    from treecot.hub import push_dataset

    trees = Dataset.from_list([{"problem_id": problem_id, "tree": json.dumps(tree_dict(problem_id))}])
    sft = Dataset.from_list([{"problem_id": problem_id, "messages": [{"role": "user", "content": "x"}]}])
    push_dataset(
        "local/trees",
        {"trees": trees, "sft": sft},
        card={},
        config_hash="abc12345",
        tag="v1",
        local_dir=folder,
    )
    return folder


def push_leaderboard(folder: Path, model: str) -> Path:
    from treecot.evaluation import leaderboard

    for run, accuracy in LEADERBOARD_RUNS:
        summary = {
            "model": f"{model}-{run}",
            "date": "2025-01-01",
            "tasks": {"gsm8k": {"accuracy": accuracy, "no_answer_rate": 0.1, "n": 20}},
        }
        leaderboard.push(summary, "local/leaderboard", local_dir=folder)
    return folder


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """Written once: a dataset inside the root, the same with SECRET data outside, two leaderboards."""
    base = tmp_path_factory.mktemp("boundary")
    return {
        "inside": push_layout(base / "inside", "p1"),
        "outside": push_layout(base / "outside", SECRET),
        "leaderboard": push_leaderboard(base / "leaderboard", "inside"),
        "leaderboard-outside": push_leaderboard(base / "leaderboard-outside", SECRET),
    }


@pytest.fixture
def tree(tmp_path, pristine):
    """`root/ds` (a copy of the inside dataset), `outside/ds` (the SECRET one) and the resolved root."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    shutil.copytree(pristine["inside"], root / "ds")
    shutil.copytree(pristine["outside"], outside / "ds")
    return root.resolve(), root / "ds", outside / "ds"


def relink(path: Path, target: Path) -> None:
    """Replace `path` (file or folder) with a symlink to `target`."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(target, target_is_directory=target.is_dir())


def refused(fn, *args, **kwargs) -> str:
    with pytest.raises(SpaceError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert SECRET not in message and "/outside" not in message  # the target is never named
    return message


# ----------------------------------------------------------------------------------------------------
# Local datasets: a symlink at every level
# ----------------------------------------------------------------------------------------------------

PARQUET = "data/trees/train-00000-of-00001.parquet"


@pytest.mark.parametrize(
    ("level", "planted", "named"),
    [
        ("refs", "refs.json", "refs.json of"),
        ("revision folder", "main", "revision folder 'main'"),
        ("card", "main/README.md", "card (README.md)"),
        ("data folder", "main/data", "folder 'data/trees'"),
        ("trees parquet", f"main/{PARQUET}", f"data file '{PARQUET}'"),
        ("sft parquet", "main/data/sft/train-00000-of-00001.parquet", "data file 'data/sft/"),
        ("tag folder", "v1", "revision folder 'v1'"),
    ],
)
def test_a_symlink_out_of_the_roots_at_any_level_of_a_dataset_is_refused(tree, level, planted, named):
    """A symlink inside an allowed dataset folder leading outside the roots: nothing from it is served, the
    load is a refusal naming the file (the old top-level check let each of these through)."""
    root, ds, outside = tree
    revision = "v1" if level == "tag folder" else "main"
    assert list(load_tree_source(str(ds), revision, [root]).trees) == ["p1"]  # served before the link
    relink(ds / planted, outside / planted)
    message = refused(load_tree_source, str(ds), revision, [root])
    assert OUTSIDE in message and named in message, message


def test_a_symlink_that_stays_inside_the_roots_is_followed(tree):
    """The boundary is the roots, not "no symlinks": a revision folder linked to another inside is read."""
    root, ds, _ = tree
    shutil.copytree(ds / "main", root / "elsewhere-main")
    relink(ds / "main", root / "elsewhere-main")
    assert list(load_tree_source(str(ds), "main", [root]).trees) == ["p1"]


def test_layout_reader_matches_load_versioned(tree):
    """Reading the layout through `open_checked` gives what `treecot.hub.load_versioned` gives."""
    from treecot.hub import load_versioned

    root, ds, _ = tree
    for revision in ("main", "v1"):
        src = load_tree_source(str(ds), revision, [root])
        trees = load_versioned(str(ds), "trees", revision=revision, split="train").to_list()
        sft = load_versioned(str(ds), "sft", revision=revision, split="train").to_list()
        assert src.trees == {r["problem_id"]: json.loads(r["tree"]) for r in trees}
        assert src.sft == {"p1": sft} and src.dpo is None and src.kind == "layout"
        assert sorted(src.revisions) == ["main", "run-abc12345", "v1"]
    assert "'nope' not found" in refused(load_tree_source, str(ds), "nope", [root])


def test_a_card_naming_files_outside_its_folder_is_refused(tree):
    root, ds, _ = tree
    card = ds / "main" / "README.md"
    text = card.read_text()
    for bad in ("../../../outside/ds/main/data/trees/*.parquet", "/etc/*"):  # the first one exists
        card.write_text(text.replace("data/trees/train-*.parquet", bad))
        with pytest.raises(SpaceError, match="outside its folder"):
            load_tree_source(str(ds), "main", [root])


def write_shard(path: Path, problem_id: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(tree_dict(problem_id)) + "\n")
    return path


def test_a_symlinked_tree_shard_is_refused(tmp_path):
    root = (tmp_path / "root").resolve()
    write_shard(root / "trees" / "trees-aaaa-00000.jsonl", "p1")
    secret = write_shard(tmp_path / "outside" / "trees-aaaa-00001.jsonl", SECRET)
    assert list(load_tree_source(str(root / "trees"), "main", [root]).trees) == ["p1"]
    (root / "trees" / "trees-aaaa-00001.jsonl").symlink_to(secret)
    message = refused(load_tree_source, str(root / "trees"), "main", [root])
    assert OUTSIDE in message and "tree shard 'trees-aaaa-00001.jsonl'" in message


def test_a_gzipped_shard_file_is_read(tmp_path):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    with gzip.open(root / "trees-aaaa-00000.jsonl.gz", "wt") as f:
        f.write(json.dumps(tree_dict("p1")) + "\n" + json.dumps(tree_dict("p2"))[:20])  # a partial line
    src = load_tree_source(str(root / "trees-aaaa-00000.jsonl.gz"), "main", [root])
    assert list(src.trees) == ["p1"] and src.kind == "shards"


# ----------------------------------------------------------------------------------------------------
# open_checked: the one way a dataset file is opened
# ----------------------------------------------------------------------------------------------------


def test_open_checked_refuses_links_loops_and_special_files(tmp_path):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (root / "ok.txt").write_text("fine")
    (tmp_path / "secret.txt").write_text(SECRET)
    with open_checked(root / "ok.txt", [root]) as f:
        assert f.read() == b"fine"
    (root / "out.txt").symlink_to(tmp_path / "secret.txt")
    assert OUTSIDE in refused(open_checked, root / "out.txt", [root], "file 'out.txt'")
    (root / "loop").symlink_to(root / "loop")
    assert "cannot be resolved" in refused(open_checked, root / "loop", [root])
    assert "does not exist" in refused(open_checked, root / "missing", [root])
    os.mkfifo(root / "fifo")  # opened without blocking, then refused
    assert "not a regular file" in refused(open_checked, root / "fifo", [root])
    assert "not a regular file" in refused(open_checked, root, [root])


def test_open_checked_refuses_a_file_swapped_for_a_link_after_the_check(tmp_path, monkeypatch):
    """The check happens at open time: a file replaced by a symlink between resolving and opening (the
    final component: O_NOFOLLOW) or a folder above it replaced (the opened descriptor's own path) is not
    served."""
    import treecot.space.sources as space

    root = (tmp_path / "root").resolve()
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "data.txt").write_text("fine")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "data.txt").write_text(SECRET)
    checked = space.real_path
    swap = {}

    def real_path_then_swap(path, roots, what="file"):
        real = checked(path, roots, what)
        relink(swap["path"], swap["target"])  # the attacker's move, after the check
        return real

    monkeypatch.setattr(space, "real_path", real_path_then_swap)
    swap.update(path=root / "sub" / "data.txt", target=tmp_path / "outside" / "data.txt")
    assert "cannot be opened" in refused(open_checked, root / "sub" / "data.txt", [root])
    (root / "sub" / "data.txt").unlink()
    (root / "sub" / "data.txt").write_text("fine")
    swap.update(path=root / "sub", target=tmp_path / "outside")
    assert OUTSIDE in refused(open_checked, root / "sub" / "data.txt", [root])


# ----------------------------------------------------------------------------------------------------
# The Hub: only when allowed
# ----------------------------------------------------------------------------------------------------


def cache_layout(repo_id: str, pristine, key: str = "inside") -> Path:
    """Put a copy of a pristine layout where an offline Hub id is read from ($TREECOT_CACHE/hub)."""
    from treecot.hub import default_local_dir

    folder = default_local_dir(repo_id)
    shutil.copytree(pristine[key], folder)
    return folder


def test_hub_ids_are_read_only_when_the_space_allows_the_hub(tmp_path, pristine):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    local = cache_layout("me/trees", pristine)
    message = refused(load_tree_source, "me/trees", "main", [root])
    assert "'me/trees' is a Hub id" in message and ALLOW_HUB_HINT in message and "--allow-hub" in message
    src = load_tree_source("me/trees", "v1", [root], allow_hub=True)
    assert src.kind == "hub" and src.location == "me/trees" and list(src.trees) == ["p1"]
    message = refused(load_tree_source, "nobody/none", "main", [root], allow_hub=True)
    assert "'nobody/none' not found" in message and OUTSIDE not in message
    # Allowed, the Hub layout in the cache is itself a boundary: a link out of $TREECOT_CACHE/hub is refused.
    secret = tmp_path / "outside"
    shutil.copytree(pristine["outside"], secret)
    relink(local / "main" / PARQUET, secret / "main" / PARQUET)
    message = refused(load_tree_source, "me/trees", "main", [root], allow_hub=True)
    assert "leads outside the data roots" in message and "hub" in message


def test_the_app_reads_configured_hub_ids_and_refuses_others(tmp_path, pristine):
    root = (tmp_path / "root").resolve()
    root.mkdir()
    cache_layout("me/trees", pristine)
    cache_layout("me/other", pristine)
    cache_layout("me/board", pristine, key="leaderboard")
    cache_layout("me/board2", pristine, key="leaderboard")
    config = SpaceConfig(data_roots=[root], model="tiny", dataset="me/trees", leaderboard="me/board")
    app = SpaceApp(config)
    assert list(app.source("me/trees", "main").trees) == ["p1"]  # configured by the operator
    assert ALLOW_HUB_HINT in refused(app.source, "me/other", "main")
    assert not app._board("me/board", False).empty
    assert ALLOW_HUB_HINT in refused(app._board, "me/board2", False)
    assert ALLOW_HUB_HINT in refused(resolve_model, "someone/model", config)
    assert resolve_model("tiny", config) == "tiny"
    allowed = SpaceApp(SpaceConfig(data_roots=[root], model="tiny", allow_hub=True))
    assert list(allowed.source("me/other", "main").trees) == ["p1"]
    assert not allowed._board("me/board2", False).empty
    assert resolve_model("someone/model", allowed.config) == "someone/model"
    with pytest.raises(ValueError, match="allow_hub"):
        SpaceConfig(allow_hub="yes")


# ----------------------------------------------------------------------------------------------------
# Leaderboards and model folders
# ----------------------------------------------------------------------------------------------------


def test_leaderboard_folder_is_read_through_the_boundary(tmp_path, pristine):
    from treecot.evaluation import leaderboard

    root = (tmp_path / "root").resolve()
    board = root / "board"
    shutil.copytree(pristine["leaderboard"], board)
    df = leaderboard_rows(str(board), [root])
    expected = leaderboard.load(str(board)).to_pandas()
    assert df[list(leaderboard.COLUMNS)].equals(expected)  # same rows and types as leaderboard.load
    assert sorted(df["model"].unique()) == ["inside-run-a", "inside-run-b"]
    parquet = next((board / "main").rglob("*.parquet")).relative_to(board)
    shutil.copytree(pristine["leaderboard-outside"], tmp_path / "outside")
    relink(board / parquet, tmp_path / "outside" / parquet)
    assert OUTSIDE in refused(leaderboard_rows, str(board), [root])
    assert "no refs.json" in refused(leaderboard_rows, str(root), [root])


def test_a_model_folder_with_a_file_leading_outside_is_refused(tmp_path):
    root = (tmp_path / "root").resolve()
    model = root / "model"
    (model / "sub").mkdir(parents=True)
    (model / "config.json").write_text("{}")
    (root / "shared").mkdir()
    (root / "shared" / "tokenizer.json").write_text("{}")
    (model / "sub" / "tokenizer.json").symlink_to(root / "shared" / "tokenizer.json")  # inside: fine
    config = SpaceConfig(data_roots=[root], model="tiny")
    assert resolve_model(str(model), config) == str(model)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "chat_template.jinja").write_text(SECRET)
    (root / "shared" / "chat_template.jinja").symlink_to(tmp_path / "secret" / "chat_template.jinja")
    (model / "sub" / "shared").symlink_to(root / "shared", target_is_directory=True)  # walked into
    message = refused(resolve_model, str(model), config)
    assert OUTSIDE in message and "'sub/shared/chat_template.jinja'" in message
    (model / "sub" / "loop").symlink_to(model, target_is_directory=True)  # a cycle ends the walk
    (model / "sub" / "shared").unlink()
    assert check_model_dir(model, [root]) == model


# ----------------------------------------------------------------------------------------------------
# Through the served app: the API, gradio's file route and its upload route
# ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory, pristine):
    from gradio_client import Client

    from treecot.space import launch_space

    base = tmp_path_factory.mktemp("served")
    root = (base / "root").resolve()
    shutil.copytree(pristine["inside"], root / "ds")
    shutil.copytree(pristine["outside"], base / "outside")
    relink(root / "ds" / "main" / PARQUET, base / "outside" / "main" / PARQUET)
    demo = launch_space(port=None, data_roots=[root], model="tiny", block=False)
    try:
        yield demo, Client(demo.local_url, verbose=False), root
    finally:
        demo.close()


def test_uploads_are_refused(served):
    """No component takes a file: gradio's upload route refuses any non-empty file (HTTP 413) as it streams
    in, before storing it (the finding: a 200 MB upload was accepted)."""
    import httpx

    demo, _, _ = served
    assert MAX_UPLOAD_BYTES == 0 and launch_kwargs()["max_file_size"] == 0 and demo.max_file_size == 0
    reply = httpx.post(f"{demo.local_url}gradio_api/upload", files={"files": ("a.bin", b"x" * 4096)})
    assert reply.status_code == 413 and "maximum allowed size of 0 bytes" in reply.text


def test_the_served_api_refuses_escapes(served):
    import httpx
    from gradio_client.exceptions import AppError

    demo, client, root = served
    with pytest.raises(AppError) as info:
        client.predict(str(root / "ds"), "main", api_name="/load_dataset")
    assert OUTSIDE in str(info.value) and SECRET not in str(info.value)
    with pytest.raises(AppError) as info:
        client.predict("me/trees", "main", api_name="/load_dataset")
    assert "--allow-hub" in str(info.value)
    for path in ("/etc/passwd", root / "ds" / "refs.json"):  # gradio's file route serves neither
        reply = httpx.get(f"{demo.local_url}gradio_api/file={path}")
        assert reply.status_code == 403, path
