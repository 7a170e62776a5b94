"""treecot.hub (push, load, versions, dataset cards) / treecot.data.cards, against the local layout and the loopback Hub server.

Hub round trips run the client in a subprocess (``run_client``) because huggingface_hub reads
HF_ENDPOINT at import time; the server itself is the session fixture ``hub_server``.
"""

from __future__ import annotations

import json
import logging
import secrets
import subprocess
import textwrap
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub import DatasetCard

from tests.fixtures.hubserver import run_client
from treecot.data.cards import length_histogram_png
from treecot.hub import (
    MARKER_FILE,
    RetryPolicy,
    branch_name,
    card_metadata,
    list_versions,
    load_versioned,
    push_dataset,
    redact,
    render_dataset_card,
    retry,
    size_category,
    targets,
    with_retries,
)

HASH_A = "0123456789abcdef0123"
HASH_B = "fedcba9876543210fedc"


def make_configs(offset: int = 0) -> dict:
    trees = datasets.Dataset.from_list(
        [
            {
                "problem": {"id": f"p{i}", "question": f"What is {i}+{offset}?"},
                "config_hash": HASH_A,
                "generator": {"A": "tiny", "backend": "transformers"},
                "nodes": [
                    {"id": 0, "type": "root", "text": "q"},
                    {"id": 1, "type": "answer", "text": str(i + offset)},
                ],
            }
            for i in range(3)
        ]
    )
    sft = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": [f"path {i + offset}" for i in range(4)], "n_tokens": [3, 5, 8, 13]}
            ),
            "test": datasets.Dataset.from_dict({"text": ["held out"], "n_tokens": [2]}),
        }
    )
    dpo = datasets.Dataset.from_dict({"chosen": [f"good {offset}", "fine"], "rejected": ["bad", "worse"]})
    return {"trees": trees, "sft": sft, "dpo": dpo}


CARD = {
    "recipe": {"search": {"rollouts": 32, "c_puct": 1.414}, "models": {"A": "tiny"}},
    "models": {"A": "HuggingFaceTB/SmolLM2-135M-Instruct", "B": "HuggingFaceTB/SmolLM2-135M-Instruct"},
    "seeds": {"search": 1234, "sampling": 7},
    "yield": {"problems": 40, "solved": 30, "paths": 200, "correct_paths": 50},
    "cost": {"llm_calls": 1234, "prefill_tokens": 567890, "generated_tokens": 45678, "wall_seconds": 321.5},
}


# --------------------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------------------


def test_branch_name_is_stable_and_validated():
    assert branch_name(HASH_A) == "run-0123456789ab"
    assert branch_name(HASH_A.upper()) == "run-0123456789ab"
    for bad in ("", "short", "has space 1234", None):
        with pytest.raises(ValueError, match="config_hash"):
            branch_name(bad)


def test_redact_keys_known_values_and_token_shapes(monkeypatch):
    token = "hf_" + "Q" * 34
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret-value")
    config = {
        "hub": {"hf_token": "anything-at-all", "token": "abc", "repo": "me/x", "push_token": None},
        "notes": [f"pushed with {token}", ("sk-openai-secret-value",)],
        "api_key": "k" * 12,
        "rollouts": 32,
        "flag": True,
    }
    out = redact(config, secrets=["explicit-secret-1"])
    assert out["hub"] == {"hf_token": "<redacted>", "token": "<redacted>", "repo": "me/x", "push_token": None}
    assert out["notes"] == ["pushed with <redacted>", ("<redacted>",)]
    assert out["api_key"] == "<redacted>"
    assert out["rollouts"] == 32 and out["flag"] is True
    assert redact("a explicit-secret-1 b", secrets=["explicit-secret-1"]) == "a <redacted> b"
    assert config["hub"]["hf_token"] == "anything-at-all"  # input untouched


def test_size_category_boundaries():
    assert size_category(0) == "n<1K"
    assert size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(123_456) == "100K<n<1M"
    with pytest.raises(ValueError):
        size_category(-1)


def test_dataset_card_metadata_parses_back_and_body_has_every_section():
    token = "hf_" + "Z" * 34
    info = {
        **CARD,
        "repo_id": "me/treecot-demo",
        "recipe": {**CARD["recipe"], "hub": {"token": token}},
        "configs": {"sft": {"splits": {"train": 1500, "test": 20}}, "dpo": {"splits": {"train": 700}}},
        "config_hash": HASH_A,
        "branch": branch_name(HASH_A),
        "tag": "v1",
        "complete": True,
        "histograms": [{"title": "SFT lengths", "path": "histograms/sft_lengths.png"}],
    }
    text = render_dataset_card(info)
    data = DatasetCard(text).data.to_dict()
    assert data["license"] == "apache-2.0"
    assert data["task_categories"] == ["text-generation", "question-answering"]
    assert {"treecot", "chain-of-thought", "mcts"} <= set(data["tags"])
    assert data["size_categories"] == ["1K<n<10K"]
    assert data["configs"] == [
        {
            "config_name": "sft",
            "data_files": [
                {"split": "train", "path": "data/sft/train-*.parquet"},
                {"split": "test", "path": "data/sft/test-*.parquet"},
            ],
        },
        {"config_name": "dpo", "data_files": [{"split": "train", "path": "data/dpo/train-*.parquet"}]},
    ]
    assert data["treecot"]["complete"] is True and data["treecot"]["config_hash"] == HASH_A
    body = DatasetCard(text).text
    assert "rollouts: 32" in body and "c_puct: 1.414" in body  # recipe YAML block
    assert "| A | `HuggingFaceTB/SmolLM2-135M-Instruct` |" in body
    assert "search: `1234`" in body
    assert "| `sft` | train | 1,500 |" in body
    assert "75.0%" in body  # yield: 30 solved of 40
    assert "| LLM calls | 1,234 |" in body and "| prefill tokens | 567,890 |" in body
    assert "![SFT lengths](histograms/sft_lengths.png)" in body
    assert 'load_dataset("me/treecot-demo", "dpo", revision="v1")' in body
    assert token not in text and "<redacted>" in text


def test_dataset_card_requires_configs_and_honours_a_custom_template(tmp_path):
    with pytest.raises(ValueError, match="configs"):
        render_dataset_card({"repo_id": "me/x"})
    template = tmp_path / "card.md"
    template.write_text("---\n{{ metadata_yaml }}---\n{{ pretty_name }} has {{ configs|length }} config(s)\n")
    text = render_dataset_card(
        {"repo_id": "me/x", "configs": {"sft": {"splits": {"train": 1}}}}, template=template
    )
    assert text.endswith("x has 1 config(s)\n")
    assert (
        card_metadata({"repo_id": "me/x", "configs": {"sft": {"splits": {"train": 1}}}})["pretty_name"] == "x"
    )


def test_length_histogram_png():
    png = length_histogram_png(
        [[1, 2, 2, 3], [2, 3, 5]], title="chosen vs rejected", labels=["chosen", "rejected"]
    )
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    with pytest.raises(ValueError, match="no lengths"):
        length_histogram_png([], title="empty")
    with pytest.raises(ValueError, match="labels"):
        length_histogram_png([[1], [2]], title="x", labels=["only one"])


def _http_error(status: int):
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(status, request=httpx2.Request("POST", "http://127.0.0.1/api/x"))
    return HfHubHTTPError(f"{status} error", response=response)


def test_with_retries_backs_off_exponentially_on_transient_errors(monkeypatch):
    sleeps: list[float] = []
    monkeypatch.setattr(retry, "_sleep", sleeps.append)
    calls = {"n": 0}

    def flaky():
        calls["n"] += 1
        if calls["n"] == 1:
            raise _http_error(503)
        if calls["n"] == 2:
            raise ConnectionError("connection reset")
        return "ok"

    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=0.8)
    assert with_retries(flaky, retry=policy) == "ok"
    assert sleeps == [0.5, 0.8]  # 0.5 * 2**0, then 0.5 * 2**1 capped at 0.8

    def not_found():
        calls["n"] += 1
        raise _http_error(404)

    calls["n"] = 0
    with pytest.raises(Exception, match="404"):
        with_retries(not_found, retry=policy)
    assert calls["n"] == 1  # a 404 is not retried

    def always_down():
        calls["n"] += 1
        raise _http_error(502)

    calls["n"] = 0
    with pytest.raises(Exception, match="502"):
        with_retries(always_down, retry=RetryPolicy(attempts=3, base_delay=0))
    assert calls["n"] == 3


# --------------------------------------------------------------------------------------------------
# Local layout
# --------------------------------------------------------------------------------------------------


def test_local_push_versions_skip_force_and_tags(tmp_path):
    root = tmp_path / "me" / "ds"
    png = length_histogram_png([3, 5, 8, 13], title="SFT path lengths")
    result = push_dataset(
        "me/ds",
        make_configs(),
        card=CARD,
        config_hash=HASH_A,
        tag="v1",
        local_dir=root,
        extra_files={"histograms/sft_lengths.png": png},
    )
    assert result.local and not result.skipped and result.tag == "v1"
    assert result.revision == branch_name(HASH_A) and result.url_or_path == str(root / branch_name(HASH_A))
    assert (root / "v1" / "histograms" / "sft_lengths.png").read_bytes() == png
    readme = (root / "main" / "README.md").read_text()
    assert "![sft lengths](histograms/sft_lengths.png)" in readme
    versions = list_versions("me/ds", local_dir=root)
    assert set(versions.branches) == {"main", branch_name(HASH_A)} and set(versions.tags) == {"v1"}

    for revision in (None, branch_name(HASH_A), "v1"):
        dpo = load_versioned("me/ds", "dpo", revision=revision, split="train", local_dir=root)
        assert dpo["chosen"] == ["good 0", "fine"]
    sft = load_versioned(str(root), "sft", revision="v1")  # a layout folder is accepted as repo_id
    assert sft["train"].num_rows == 4 and sft["test"]["text"] == ["held out"]

    again = push_dataset("me/ds", make_configs(offset=1), card=CARD, config_hash=HASH_A, local_dir=root)
    assert again.skipped
    assert (
        load_versioned("me/ds", "dpo", revision=branch_name(HASH_A), split="train", local_dir=root)["chosen"][
            0
        ]
        == "good 0"
    )

    with pytest.raises(ValueError, match="already holds other data"):
        push_dataset("me/ds", make_configs(offset=1), card=CARD, config_hash=HASH_B, tag="v1", local_dir=root)
    # The run itself completed (only the tag was refused), and v1 still holds the first run.
    assert (
        load_versioned("me/ds", "dpo", revision=branch_name(HASH_B), split="train", local_dir=root)["chosen"][
            0
        ]
        == "good 1"
    )
    assert (
        load_versioned("me/ds", "dpo", revision="v1", split="train", local_dir=root)["chosen"][0] == "good 0"
    )

    forced = push_dataset(
        "me/ds", make_configs(offset=2), card=CARD, config_hash=HASH_A, tag="v1", force=True, local_dir=root
    )
    assert not forced.skipped
    assert (
        load_versioned("me/ds", "dpo", revision="v1", split="train", local_dir=root)["chosen"][0] == "good 2"
    )
    assert load_versioned("me/ds", "dpo", split="train", local_dir=root)["chosen"][0] == "good 2"  # main
    with pytest.raises(ValueError, match="not found.*available"):
        load_versioned("me/ds", "dpo", revision="v9", local_dir=root)


def test_local_interrupted_push_leaves_no_tag_and_rerun_completes(tmp_path, monkeypatch):
    root = tmp_path / "layout"
    original = targets._LocalTarget.commit_config
    seen: list[str] = []

    def failing(self, branch, config, files, rows):
        seen.append(config)
        if len(seen) == 2:
            raise RuntimeError("simulated crash during the second config")
        return original(self, branch, config, files, rows)

    monkeypatch.setattr(targets._LocalTarget, "commit_config", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_A, tag="v1", local_dir=root)
    branch = branch_name(HASH_A)
    assert list_versions("me/ds", local_dir=root).tags == {}
    assert not (root / branch / MARKER_FILE).exists() and not (root / "v1").exists()
    assert (root / branch / "data" / "trees").is_dir()  # the first config made it

    monkeypatch.setattr(targets._LocalTarget, "commit_config", original)
    result = push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_A, tag="v1", local_dir=root)
    assert not result.skipped and result.tag == "v1"
    assert json.loads((root / "v1" / MARKER_FILE).read_text())["complete"] is True
    assert load_versioned("me/ds", "sft", revision="v1", split="test", local_dir=root)["text"] == ["held out"]


def test_local_refs_that_are_not_json_are_named(tmp_path):
    push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_A, local_dir=tmp_path)
    (tmp_path / "refs.json").write_text('{"branches": {"main"')  # damaged by hand: pushes write it whole
    for attempt in (
        lambda: load_versioned("me/ds", "dpo", local_dir=tmp_path),
        lambda: push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_B, local_dir=tmp_path),
    ):
        with pytest.raises(ValueError, match="is not valid JSON .* restore it from a backup") as err:
            attempt()
        assert str(tmp_path / "refs.json") in str(err.value)


def test_a_layout_whose_lock_file_cannot_be_made_is_read_unlocked_and_not_written(tmp_path):
    push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_A, local_dir=tmp_path)
    # as on a read-only folder (root may write anywhere, so a directory stands where the lock file goes)
    (tmp_path / targets.LOCAL_LOCK_FILE).unlink()
    (tmp_path / targets.LOCAL_LOCK_FILE).mkdir()
    assert load_versioned("me/ds", "dpo", split="train", local_dir=tmp_path)["chosen"] == ["good 0", "fine"]
    with pytest.raises(OSError, match=targets.LOCAL_LOCK_FILE):
        push_dataset("me/ds", make_configs(), card=CARD, config_hash=HASH_B, local_dir=tmp_path)
    assert set(list_versions("me/ds", local_dir=tmp_path).branches) == {"main", branch_name(HASH_A)}


def test_without_credentials_the_default_is_the_local_layout(tmp_path, monkeypatch, caplog):
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    monkeypatch.setenv("TREECOT_CACHE", str(tmp_path / "cache"))
    with caplog.at_level(logging.WARNING, logger="treecot.hub"):
        result = push_dataset("me/offline", make_configs(), card=CARD, config_hash=HASH_A)
    expected = tmp_path / "cache" / "hub" / "datasets" / "me" / "offline"
    assert result.local and Path(result.url_or_path) == expected / branch_name(HASH_A)
    assert str(expected) in caplog.text  # says where
    assert load_versioned("me/offline", "dpo", split="train")["rejected"] == ["bad", "worse"]
    notices = [r for r in caplog.records if "no Hugging Face token" in r.getMessage()]
    assert len(notices) == 1, "said once per folder and process, not at every open of the target"


def test_secrets_in_rows_are_scrubbed_before_writing(tmp_path, monkeypatch):
    token = "hf_" + secrets.token_hex(17)
    monkeypatch.setenv("HF_TOKEN", token)
    configs = make_configs()
    configs["trees"] = configs["trees"].map(
        lambda row: {"generator": {"A": f"server with {token}", "backend": "openai"}}
    )
    push_dataset(
        "me/ds",
        configs,
        card={**CARD, "description": f"made with {token}"},
        config_hash=HASH_A,
        local_dir=tmp_path,
    )
    for path in tmp_path.rglob("*"):
        if path.suffix == ".parquet":
            assert token not in json.dumps(pq.read_table(path).to_pylist())
        elif path.is_file():
            assert token.encode() not in path.read_bytes(), path
    trees = load_versioned("me/ds", "trees", split="train", local_dir=tmp_path)
    assert trees[0]["generator"]["A"] == "server with <redacted>"


def test_invalid_arguments_are_named():
    with pytest.raises(ValueError, match="namespace/name"):
        push_dataset("no-namespace", make_configs(), card={}, config_hash=HASH_A, local_dir="/nonexistent")
    with pytest.raises(ValueError, match="config name"):
        push_dataset(
            "me/x", {"bad name": make_configs()["dpo"]}, card={}, config_hash=HASH_A, local_dir="/tmp/x"
        )
    with pytest.raises(ValueError, match="reserved"):
        push_dataset(
            "me/x",
            make_configs(),
            card={},
            config_hash=HASH_A,
            local_dir="/tmp/x",
            extra_files={"README.md": b"x"},
        )
    with pytest.raises(ValueError, match="invalid tag"):
        push_dataset("me/x", make_configs(), card={}, config_hash=HASH_A, local_dir="/tmp/x", tag="v 1")


# --------------------------------------------------------------------------------------------------
# Loopback Hub round trips (client in a subprocess)
# --------------------------------------------------------------------------------------------------

CLIENT_PRELUDE = textwrap.dedent(
    """
    import json, logging, sys
    import datasets
    from huggingface_hub import HfApi, DatasetCard
    from treecot.hub import targets
    from treecot.hub import push_dataset, load_versioned, list_versions, branch_name, RetryPolicy
    from tests.hub.test_hub import make_configs, CARD, HASH_A, HASH_B
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    api = HfApi()
    def emit(**kw):
        print("RESULT " + json.dumps(kw))
    """
)


def client(code: str, env: dict) -> tuple[dict, subprocess.CompletedProcess]:
    proc = run_client(CLIENT_PRELUDE + textwrap.dedent(code), env)
    results: dict = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            results.update(json.loads(line[len("RESULT ") :]))
    return results, proc


def test_hub_roundtrip_branch_tag_main_card_edit_and_skip(hub_server, tmp_path):
    env = hub_server.client_env(tmp_path / "hf_home")
    out, _ = client(
        """
        repo = "treecot-tester/roundtrip"
        r = push_dataset(repo, make_configs(), card=CARD, config_hash=HASH_A, tag="v1",
                         extra_files={"histograms/sft_lengths.png": b"not really a png"})
        refs = api.list_repo_refs(repo, repo_type="dataset")
        v1 = datasets.load_dataset(repo, "dpo", revision="v1")
        at_branch = load_versioned(repo, "sft", revision=r.revision, split="test")
        at_main = datasets.load_dataset(repo, "trees", split="train")
        card = DatasetCard.load(api.hf_hub_download(repo, "README.md", repo_type="dataset", revision="v1"))
        files = api.list_repo_files(repo, repo_type="dataset", revision="v1")
        again = push_dataset(repo, make_configs(offset=5), card=CARD, config_hash=HASH_A, tag="v1")
        # card edit on main, then everything still loads
        card.text = card.text + "\\nEdited by a human.\\n"
        card.push_to_hub(repo, repo_type="dataset", commit_message="Edit card")
        edited = DatasetCard.load(repo, repo_type="dataset")
        after_edit = datasets.load_dataset(repo, "dpo", split="train")
        try:
            push_dataset(repo, make_configs(offset=1), card=CARD, config_hash=HASH_B, tag="v1")
            moved = "no error"
        except ValueError as err:
            moved = str(err)
        forced = push_dataset(repo, make_configs(offset=3), card=CARD, config_hash=HASH_A, tag="v1", force=True)
        forced_v1 = load_versioned(repo, "dpo", revision="v1", split="train")
        emit(forced_skipped=forced.skipped, forced_v1=list(forced_v1["chosen"]))
        emit(revision=r.revision, url=r.url_or_path, local=r.local, tag=r.tag, commit=r.commit,
             branches={b.name: b.target_commit for b in refs.branches},
             tags={t.name: t.target_commit for t in refs.tags},
             v1_chosen=list(v1["train"]["chosen"]), branch_test=list(at_branch["text"]), main_rows=at_main.num_rows,
             card_data=card.data.to_dict(), files=files, skipped=again.skipped,
             edited="Edited by a human." in edited.text, after_edit=list(after_edit["chosen"]), moved=moved,
             versions=list_versions(repo).__dict__)
        """,
        env,
    )
    branch = branch_name(HASH_A)
    assert out["revision"] == branch and out["local"] is False and out["tag"] == "v1"
    assert out["url"].startswith(hub_server.url) and out["url"].endswith(
        f"/datasets/treecot-tester/roundtrip/tree/{branch}"
    )
    assert set(out["branches"]) == {"main", branch}
    assert out["tags"] == {"v1": out["branches"][branch]} == {"v1": out["commit"]}
    assert out["v1_chosen"] == ["good 0", "fine"]
    assert out["branch_test"] == ["held out"] and out["main_rows"] == 3
    assert out["card_data"]["treecot"]["complete"] is True
    assert [c["config_name"] for c in out["card_data"]["configs"]] == ["trees", "sft", "dpo"]
    assert {
        MARKER_FILE,
        "README.md",
        "histograms/sft_lengths.png",
        "data/dpo/train-00000-of-00001.parquet",
    } <= set(out["files"])
    assert out["skipped"] is True
    assert out["edited"] is True and out["after_edit"] == ["good 0", "fine"]
    assert "already points to" in out["moved"]  # v1 is not moved without force
    assert set(out["versions"]["branches"]) == {"main", branch, branch_name(HASH_B)}
    assert set(out["versions"]["tags"]) == {"v1"}
    assert out["forced_skipped"] is False and out["forced_v1"] == [
        "good 3",
        "fine",
    ]  # force overwrites and moves v1


def test_hub_interrupted_push_then_rerun(hub_server, tmp_path):
    env = hub_server.client_env(tmp_path / "hf_home")
    out, _ = client(
        """
        repo = "treecot-tester/interrupted"
        original = targets._HubTarget.commit_config
        seen = []
        def failing(self, branch, config, files, rows):
            seen.append(config)
            if len(seen) == 2:
                raise RuntimeError("simulated crash while uploading " + config)
            return original(self, branch, config, files, rows)
        targets._HubTarget.commit_config = failing
        try:
            push_dataset(repo, make_configs(), card=CARD, config_hash=HASH_A, tag="v1")
            crashed = False
        except RuntimeError:
            crashed = True
        refs = api.list_repo_refs(repo, repo_type="dataset")
        branch = branch_name(HASH_A)
        files_after_crash = api.list_repo_files(repo, repo_type="dataset", revision=branch)
        emit(crashed=crashed, tags_after_crash=[t.name for t in refs.tags],
             branches_after_crash=[b.name for b in refs.branches], files_after_crash=files_after_crash)
        targets._HubTarget.commit_config = original
        r = push_dataset(repo, make_configs(), card=CARD, config_hash=HASH_A, tag="v1")
        commits = [c.title.strip() for c in api.list_repo_commits(repo, repo_type="dataset", revision=branch)]
        dpo = load_versioned(repo, "dpo", revision="v1", split="train")
        emit(skipped=r.skipped, tag=r.tag, commits=commits, dpo=list(dpo["chosen"]),
             tags=[t.name for t in api.list_repo_refs(repo, repo_type="dataset").tags])
        """,
        env,
    )
    assert out["crashed"] is True
    assert out["tags_after_crash"] == []
    assert branch_name(HASH_A) in out["branches_after_crash"]
    assert MARKER_FILE not in out["files_after_crash"]
    assert any(f.startswith("data/trees/") for f in out["files_after_crash"])
    assert not any(f.startswith("data/sft/") for f in out["files_after_crash"])
    assert out["skipped"] is False and out["tag"] == "v1" and out["tags"] == ["v1"]
    assert out["dpo"] == ["good 0", "fine"]
    # The rerun did not commit the already uploaded `trees` config a second time.
    assert out["commits"].count("Add config trees (3 rows)") == 1
    assert out["commits"][0] == f"Complete push of {branch_name(HASH_A)}"


def test_hub_push_retries_server_errors(hub_server, tmp_path):
    env = hub_server.client_env(tmp_path / "hf_home")
    hub_server.fail_next(2, status=503, method="POST", path_pattern=r"/retrying/commit/")
    try:
        out, proc = client(
            """
            r = push_dataset("treecot-tester/retrying", make_configs(), card=CARD, config_hash=HASH_A,
                             retry=RetryPolicy(attempts=4, base_delay=0.01))
            emit(revision=r.revision, rows=load_versioned("treecot-tester/retrying", "dpo", split="train").num_rows)
            """,
            env,
        )
    finally:
        hub_server.clear_failures()
    assert out["rows"] == 2
    statuses = [r.status for r in hub_server.requests if r.method == "POST" and "/retrying/commit/" in r.path]
    assert statuses[:3] == [503, 503, 200]
    assert "retry 1/3" in proc.stderr and "retry 2/3" in proc.stderr


def test_hub_token_never_written_or_logged(hub_server, tmp_path):
    token = "hf_" + secrets.token_hex(17)
    env = hub_server.client_env(tmp_path / "hf_home", token=token)
    repo = "treecot-tester/hygiene"
    out, proc = client(
        f"""
        logging.getLogger().setLevel(logging.DEBUG)
        import os
        token = os.environ["HF_TOKEN"]
        configs = make_configs()
        configs["trees"] = configs["trees"].map(lambda row: {{"generator": {{"A": "tiny", "api_key": token}}}})
        card = {{**CARD, "recipe": {{**CARD["recipe"], "push_to_hub": {{"repo": "{repo}", "token": token}}}},
                "description": "pushed by " + token}}
        push_dataset("{repo}", configs, card=card, config_hash=HASH_A, tag="v1", token=token)
        contents = {{}}
        refs = api.list_repo_refs("{repo}", repo_type="dataset")
        for rev in [b.name for b in refs.branches] + [t.name for t in refs.tags]:
            for path in api.list_repo_files("{repo}", repo_type="dataset", revision=rev):
                local = api.hf_hub_download("{repo}", path, repo_type="dataset", revision=rev)
                if path.endswith(".parquet"):
                    import pyarrow.parquet as pq
                    contents[rev + ":" + path] = json.dumps(pq.read_table(local).to_pylist())
                else:
                    contents[rev + ":" + path] = open(local, "rb").read().decode("utf-8", "replace")
        emit(contents=contents)
        """,
        env,
    )
    assert len(out["contents"]) >= 8
    for where, text in out["contents"].items():
        assert token not in text, f"token leaked into {where}"
    assert "<redacted>" in out["contents"]["v1:README.md"]
    assert token not in proc.stdout and token not in proc.stderr
    # Raw server storage: every blob of every ref, and every LFS object.
    repo_dir = hub_server.repo_dir(repo)
    assert (
        subprocess.run(
            [
                "git",
                "-C",
                str(repo_dir),
                "grep",
                "-q",
                "-F",
                token,
                *[
                    r.split()[0]
                    for r in subprocess.run(
                        ["git", "-C", str(repo_dir), "for-each-ref", "--format=%(objectname)"],
                        capture_output=True,
                        text=True,
                    ).stdout.split()
                ],
            ],
            capture_output=True,
        ).returncode
        == 1
    )  # 1 = no match
    for obj in (repo_dir / ".git" / "lfs" / "objects").rglob("*"):
        if obj.is_file():
            assert token.encode() not in obj.read_bytes()


def test_card_templates_render_strictly(tmp_path):
    """A variable the template names but the card does not give is an error (no silently empty section), and
    `pyrepr` works as a function and as a filter (custom templates written for either form keep working)."""
    import jinja2
    from huggingface_hub import ModelCard

    from treecot.hub.cards import render_card

    template = tmp_path / "card.md"
    template.write_text("---\n{{ metadata_yaml }}---\n{{ pyrepr(name) }} {{ name | pyrepr }} {{ license }}\n")
    text = render_card(ModelCard, {"license": "apache-2.0"}, template, name="it's")
    assert text.endswith('\n"it\'s" "it\'s" apache-2.0\n') and "license: apache-2.0" in text
    template.write_text("---\n{{ metadata_yaml }}---\n{{ nmae }}\n")
    with pytest.raises(jinja2.UndefinedError, match="nmae"):
        render_card(ModelCard, {"license": "apache-2.0"}, template, name="x")


@pytest.mark.parametrize(
    "value, ok",
    [("org/name", True), ("org/name.v2", True), ("_org/name", False), ("org/-name", False), ("org/a--b", False),
     ("gpt2", False), ("a/b/c", False), ("org/name.git", False), (3, False)],
)  # fmt: skip
def test_one_repo_id_check(value, ok, tmp_path, monkeypatch):
    from treecot.hub import check_repo_id, is_repo_id

    assert is_repo_id(value, local_first=False) is ok
    if not ok:
        with pytest.raises(ValueError, match="namespace/name"):
            check_repo_id(value)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert is_repo_id("org/name") is False, "an existing local folder of that name is a path"
