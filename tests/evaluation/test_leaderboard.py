"""Leaderboard: rows from run summaries, push / load / compare round trips (local folder and the loopback
Hub), and the paper's reference figures."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.fixtures.hubserver import run_client
from treecot.evaluation import leaderboard as lb
from treecot.evaluation.stats import format_rate, rate_interval


def make_summary(
    model: str, accuracy: float, no_answer: float, *, samples: int = 1, date: str = "2026-01-01"
) -> dict:
    gsm8k = {
        "accuracy": accuracy,
        "no_answer_rate": no_answer,
        "repetition_rate": 0.1,
        "over_reflection_rate": 0.0,
        "instruction_failure_rate": None,
        "hit_limit_rate": 0.2,
        "mean_tokens": 120.0,
        "n": 10,
    }
    if samples > 1:
        gsm8k.update({"pass@1": accuracy, f"pass@{samples}": 0.9, "test_at_n": 0.9})
    return {
        "schema_version": 1,
        "model": model,
        "model_revision": "sha256:0123456789abcdef",
        "dataset_repo": "me/treecot-gsm8k",
        "dataset_revision": "v1",
        "recipe_hash": "feedbeef",
        "mode": "sampling" if samples > 1 else "greedy",
        "samples": samples,
        "seed": 0,
        "date": date,
        "treecot_version": "0.1.0.dev0",
        "tasks": {
            "gsm8k": gsm8k,
            "blocksworld": {"accuracy": accuracy / 2, "no_answer_rate": 0.5, "mean_tokens": 40.0, "n": 5},
        },
    }


def write(tmp_path, name: str, summary: dict) -> str:
    path = tmp_path / name / "summary.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(summary))
    return str(path)


def test_rows_from_summary():
    rows = lb.rows_from_summary(make_summary("model-a", 0.4, 0.05, samples=4))
    by = {(r["task"], r["metric"]): r for r in rows}
    assert set(rows[0]) == set(lb.COLUMNS)
    assert by[("gsm8k", "accuracy")]["value"] == 0.4 and by[("gsm8k", "accuracy")]["no_answer_rate"] == 0.05
    assert by[("gsm8k", "test@4")]["value"] == 0.9 and by[("gsm8k", "pass@4")]["value"] == 0.9
    assert ("gsm8k", "instruction_failure_rate") not in by  # None is not a measurement
    assert by[("blocksworld", "accuracy")]["value"] == 0.2 and by[("blocksworld", "accuracy")]["n"] == 5
    row = by[("gsm8k", "accuracy")]
    assert (row["model"], row["dataset_repo"], row["dataset_revision"], row["recipe_hash"]) == (
        "model-a",
        "me/treecot-gsm8k",
        "v1",
        "feedbeef",
    )
    assert row["n"] == 10 and row["samples"] == 4 and row["source"] == "treecot eval"
    assert len({r["run_id"] for r in rows}) == 1
    assert lb.rows_from_summary(make_summary("model-a", 0.5, 0.05))[0]["run_id"] != row["run_id"]
    # one model, same figures and second, under two system prompts: two runs, not one overwriting the other
    task_prompt, data_prompt = make_summary("model-a", 0.4, 0.05), make_summary("model-a", 0.4, 0.05)
    task_prompt["prompt"] = {"system_prompts": {"gsm8k": "Answer in a box."}}
    data_prompt["prompt"] = {"system_prompts": {"gsm8k": "Use tags, then answer in a box."}}
    ids = {lb.rows_from_summary(x)[0]["run_id"] for x in (task_prompt, data_prompt)}
    assert len(ids) == 2 and row["run_id"] not in ids


def test_a_validation_run_is_kept_off_the_board(tmp_path):
    summary = make_summary("model-a", 0.4, 0.05)
    summary.update(split="train", offset=1000)  # `treecot eval --split train --offset 1000`
    with pytest.raises(ValueError, match=r"problems 1000… of the train split, not the test problems"):
        lb.push(summary, "me/board", local_dir=tmp_path / "board")
    assert not (tmp_path / "board").exists()
    summary.update(split=None, offset=0)  # a test run (what `treecot eval` records by default)
    assert lb.rows_from_summary(summary)


def test_rows_from_a_lighteval_results_json(tmp_path):
    results = {
        "config_general": {"model_name": "tiny", "model_config": {"model_revision": "tiny-seed0"}},
        "results": {
            "treecot_gsm8k|0": {"accuracy": 0.25, "accuracy_stderr": 0.1, "no_answer_rate": 0.5},
            "all": {"accuracy": 0.25},
        },
    }
    path = tmp_path / "results" / "results_2026.json"
    path.parent.mkdir()
    path.write_text(json.dumps(results))
    rows = lb.rows_from_summary(str(path))
    assert [(r["task"], r["metric"], r["value"], r["n"]) for r in rows] == [("gsm8k", "accuracy", 0.25, -1)]
    assert rows[0]["model_revision"] == "tiny-seed0"
    (tmp_path / "summary.json").write_text(json.dumps(make_summary("from-summary", 0.3, 0.1)))
    assert lb.rows_from_summary(str(path))[0]["model"] == "from-summary"  # the run's summary wins
    with pytest.raises(FileNotFoundError, match="no evaluation summary"):
        lb.rows_from_summary(str(tmp_path / "missing"))


def test_local_push_load_compare_round_trip(tmp_path):
    store = tmp_path / "board"
    assert len(lb.load("me/board", local_dir=store)) == 0
    a = write(tmp_path, "a", make_summary("model-a", 0.4, 0.05))
    b = write(tmp_path, "b", make_summary("model-b", 0.6, 0.01, date="2026-02-01"))
    first = lb.push(a, "me/board", local_dir=store)
    lb.push(b, "me/board", local_dir=store)
    again = lb.push(a, "me/board", local_dir=store)  # re-pushing a run does not duplicate it
    assert first.local and first.skipped is False
    assert again.skipped is True  # same set of runs as after the second push: nothing new to write
    board = lb.load("me/board", local_dir=store)
    assert board.column_names == list(lb.COLUMNS)
    # the card: its own description (no MCTS boilerplate), a snippet that loads `main` from the folder
    card = (store / "main" / "README.md").read_text()
    assert "Built with treecot" not in card and "Monte Carlo tree search" not in card
    assert "Written by `treecot leaderboard push`" in card
    assert f"load_versioned({str(store)!r}, {lb.CONFIG!r}, revision='main')" in card
    assert "revision='run-" not in card and 'revision="run-' not in card
    assert len(board) == 2 * len(lb.rows_from_summary(a)) and len(set(board["run_id"])) == 2
    newer = write(tmp_path, "a2", make_summary("model-a", 0.45, 0.04, date="2026-03-01"))
    lb.push(newer, "me/board", local_dir=store)

    png = tmp_path / "cmp.png"
    table, path = lb.compare(
        ["model-a", b, "paper:Llama-3.2-1B-Instruct + Our Data"],
        repo_id="me/board",
        local_dir=store,
        output=png,
    )
    assert list(table.index) == ["model-a", "model-b", "Llama-3.2-1B-Instruct + Our Data (paper)"]
    assert table.loc["model-a", "gsm8k"] == 0.45  # the latest run of model-a
    assert table.loc["model-a", "gsm8k no-answer"] == 0.04
    assert table.loc["model-b", "blocksworld"] == 0.3
    assert table.loc["Llama-3.2-1B-Instruct + Our Data (paper)", "gsm8k"] == pytest.approx(0.5)
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    with pytest.raises(ValueError, match="known models: model-a, model-b"):
        lb.compare(["model-c"], repo_id="me/board", local_dir=store, output=png)
    with pytest.raises(ValueError, match="matches 0 rows"):
        lb.compare(["paper:GPT-9"], output=png)


def test_a_folder_left_by_a_killed_first_push_of_older_treecot_is_repaired(tmp_path):
    # issue #14: every push after this state exited 2 ("revision 'main' ... holds no complete push yet")
    store = tmp_path / "board"
    for name in ("main", "run-0123456789ab"):
        (store / name).mkdir(parents=True)
    refs = {"branches": {"main": {}, "run-0123456789ab": {}}, "tags": {}}  # as older treecot wrote it
    (store / "refs.json").write_text(json.dumps(refs))
    assert len(lb.load("me/board", local_dir=store)) == 0  # nothing was published
    a = write(tmp_path, "a", make_summary("model-a", 0.4, 0.05))
    assert lb.leaderboard_main(["push", a, "--repo", "me/board", "--local-dir", str(store)]) == 0
    assert set(lb.load("me/board", local_dir=store)["model"]) == {"model-a"}
    refs = json.loads((store / "refs.json").read_text())
    assert refs["branches"]["main"]["content"] and refs["branches"]["run-0123456789ab"] == {}


def test_reference_figures_are_the_papers():
    ref = lb.reference()
    assert set(ref["source"]) == {lb.PAPER_SOURCE}
    t4 = ref[(ref["table"] == "table4") & (ref["model"] == "Qwen2.5-1.5B-Instruct + Our Data")]
    assert dict(zip(t4["task"], t4["value"])) == pytest.approx(
        {
            "gsm8k": 0.746,
            "math500": 0.468,
            "aime": 0.0,
            "blocksworld": 0.054,
            "multi_if_zh": 0.515,
            "multi_if_en": 0.516,
            "multi_if_other": 0.548,
        }
    )
    assert len(ref[ref["table"] == "table4"]) == 12 * 7 and len(ref[ref["table"] == "table5"]) == 6 * 7
    masking = lb.reference("table5").query("method == '+ Masking' and task == 'aime'").iloc[0]
    assert masking["value"] == pytest.approx(0.08) and masking["no_answer_rate"] == pytest.approx(0.383)
    t7 = lb.reference("table7")
    mcts = t7[t7["method"] == "best model + MCTS decode"]
    assert dict(zip(mcts["metric"], mcts["value"])) == pytest.approx(
        {"test@1": 0.51, "test@8": 0.708, "test@32": 0.828}
    )
    with pytest.raises(ValueError, match="unknown table"):
        lb.reference("table9")


def test_leaderboard_cli(tmp_path, capsys):
    assert lb.leaderboard_main(["reference", "--table", "table5"]) == 0
    out = capsys.readouterr().out
    assert lb.PAPER_SOURCE in out and "table5: Llama-3.1-8B-Instruct + cDPO" in out and "| 87.5 |" in out
    a = write(tmp_path, "a", make_summary("model-a", 0.4, 0.05))
    store = str(tmp_path / "store")
    assert lb.leaderboard_main(["push", a, "--repo", "me/cli", "--local-dir", store]) == 0
    png = str(tmp_path / "p.png")
    assert (
        lb.leaderboard_main(["compare", "model-a", "--repo", "me/cli", "--local-dir", store, "--output", png])
        == 0
    )
    out = capsys.readouterr().out
    assert "| task | run | n | accuracy % [95% CI] | no answer % [95% CI] |" in out
    assert f"| gsm8k | model-a | 10 | {format_rate(0.4, 10)} | {format_rate(0.05, 10)} |" in out
    assert f"| blocksworld | model-a | 5 | {format_rate(0.2, 5)} | {format_rate(0.5, 5)} |" in out
    assert lb.leaderboard_main(["compare", "nobody", "--repo", "me/cli", "--local-dir", store]) == 2


def test_hub_push_compare_round_trip(hub_server, tmp_path):
    a = write(tmp_path, "a", make_summary("model-a", 0.4, 0.05))
    b = write(tmp_path, "b", make_summary("model-b", 0.6, 0.01, samples=4))
    env = hub_server.client_env(tmp_path / "hf_home")
    env["TREECOT_CACHE"] = str(tmp_path / "cache")
    code = f"""
        import json
        from huggingface_hub import HfApi
        from treecot.evaluation import leaderboard as lb
        repo = "treecot-tester/leaderboard"
        r1 = lb.push({a!r}, repo)
        r2 = lb.push({b!r}, repo)
        lb.push({a!r}, repo)
        board = lb.load(repo)
        table, png = lb.compare(["model-a", "model-b"], repo_id=repo, output={str(tmp_path / "hub.png")!r})
        refs = HfApi().list_repo_refs(repo, repo_type="dataset")
        print("RESULT " + json.dumps({{
            "local": r1.local, "url": r2.url_or_path, "rows": len(board), "runs": len(set(board["run_id"])),
            "a": table.loc["model-a", "gsm8k"], "b": table.loc["model-b [N=4]", "gsm8k"],
            "branches": sorted(b.name for b in refs.branches),
        }}))
    """
    proc = run_client(textwrap.dedent(code), env)
    (line,) = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    out = json.loads(line[len("RESULT ") :])
    assert out["local"] is False and out["url"].startswith(hub_server.url)
    n_a, n_b = len(lb.rows_from_summary(a)), len(lb.rows_from_summary(b))
    assert out["rows"] == n_a + n_b and out["runs"] == 2
    assert out["a"] == 0.4 and out["b"] == 0.6
    assert "main" in out["branches"] and len(out["branches"]) == 3  # main + one branch per push with new rows
    assert (tmp_path / "hub.png").is_file()


# ------------------------------------------------------------------------------------------- names


def test_compare_accepts_the_names_a_user_has(tmp_path, capsys):
    # `treecot eval outputs/smollm2-135m-instruct/cdpo-demo --output-dir outputs/eval/cdpo-demo`, then push
    store = str(tmp_path / "store")
    target = {"repo_id": "me/names", "local_dir": store, "output": tmp_path / "n.png"}
    cdpo = write(
        tmp_path / "eval", "cdpo-demo", make_summary("outputs/smollm2-135m-instruct/cdpo-demo", 0.4, 0.0)
    )
    base = write(tmp_path / "eval", "base", make_summary("HuggingFaceTB/SmolLM2-135M-Instruct", 0.3, 0.1))
    lb.push(cdpo, "me/names", local_dir=store)
    lb.push(base, "me/names", local_dir=store)

    def resolved(name: str) -> list[str]:
        return list(lb.compare([name], **target)[0].index)

    stored = ["outputs/smollm2-135m-instruct/cdpo-demo"]
    assert resolved("outputs/smollm2-135m-instruct/cdpo-demo") == stored  # the exact stored name
    assert resolved(str(tmp_path / "eval" / "cdpo-demo")) == stored  # the eval folder that was pushed
    assert resolved("outputs/eval/cdpo-demo") == stored  # ... named from elsewhere, or since removed
    assert resolved("cdpo-demo") == stored  # the basename of the stored name
    assert resolved("smollm2-135m-instruct/cdpo-demo/") == stored  # a trailing part of it
    assert resolved("cdpo-demo@sha256:0123") == stored  # with a revision prefix
    hub = ["HuggingFaceTB/SmolLM2-135M-Instruct"]
    assert resolved("SmolLM2-135M-Instruct") == hub
    assert resolved("smollm2-135m-instruct") == hub  # case aside
    assert resolved("HuggingFaceTB--SmolLM2-135M-Instruct") == hub  # the default eval folder of a Hub id
    argv = ["--repo", "me/names", "--local-dir", store, "--output", str(tmp_path / "cli.png")]
    assert lb.leaderboard_main(["compare", "cdpo-demo", "smollm2-135m-instruct", *argv]) == 0
    out = capsys.readouterr()
    assert "| gsm8k | outputs/smollm2-135m-instruct/cdpo-demo | 10 |" in out.out
    # a partial name says which stored run it stood for
    assert "'cdpo-demo' → 'outputs/smollm2-135m-instruct/cdpo-demo'" in out.err
    with pytest.raises(ValueError, match=r"no run of .*cdpo-demo.* has a revision starting with 'zzz'"):
        resolved("cdpo-demo@zzz")

    # another model with the same basename: "cdpo-demo" is now ambiguous, the longer names are not
    other = write(tmp_path / "eval", "other", make_summary("outputs/other-base/cdpo-demo", 0.2, 0.0))
    lb.push(other, "me/names", local_dir=store)
    with pytest.raises(ValueError, match="ambiguous") as err:
        resolved("cdpo-demo")
    assert "outputs/other-base/cdpo-demo; outputs/smollm2-135m-instruct/cdpo-demo" in str(err.value)
    assert "\n" not in str(err.value)
    assert resolved("smollm2-135m-instruct/cdpo-demo") == stored
    assert resolved("other-base/cdpo-demo") == ["outputs/other-base/cdpo-demo"]
    capsys.readouterr()
    assert lb.leaderboard_main(["compare", "cdpo-demo", *argv]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()  # one line: the candidates
    assert "ambiguous" in line and "outputs/other-base/cdpo-demo" in line and "smollm2-135m" in line

    # unknown: one line listing the stored names (a part of a name component is not a suffix)
    for unknown in ("nobody", "demo", "outputs/eval/nobody"):
        with pytest.raises(
            ValueError, match="known models: HuggingFaceTB/SmolLM2-135M-Instruct, outputs/other"
        ):
            resolved(unknown)
    assert lb.leaderboard_main(["compare", "nobody", *argv]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "'nobody'" in line and "known models: HuggingFaceTB/SmolLM2-135M-Instruct, outputs/other" in line


# ------------------------------------------------------------------------------------------- compare output


def compared(tmp_path):
    """Two runs of n=4 (one without blocksworld, with a 0% no-answer rate) and a paper row (no n, no
    no-answer rate for most tasks): `compare`'s table and the tasks in its plot."""
    small = make_summary("run-small", 0.25, 0.0)
    small["tasks"]["gsm8k"]["n"] = 4
    del small["tasks"]["blocksworld"]
    large = make_summary("run-large", 0.75, 0.25)
    large["tasks"]["gsm8k"]["n"] = 4
    paths = [write(tmp_path, "small", small), write(tmp_path, "large", large)]
    table, png = lb.compare([*paths, "paper:Llama-3.2-1B-Instruct + Our Data"], output=tmp_path / "c.png")
    return table, png


def test_compare_table_has_n_and_intervals_and_no_empty_column(tmp_path):
    table, _ = compared(tmp_path)
    paper = "Llama-3.2-1B-Instruct + Our Data (paper)"
    assert list(table.index) == ["run-small", "run-large", paper]
    tasks = [c for c in table.columns if not c.endswith(" no-answer")]
    assert tasks[0] == "gsm8k" and "blocksworld" in tasks  # the task every run has comes first
    assert not [c for c in table.columns if table[c].isna().all()]  # no all-empty column
    assert table.loc["run-small", "gsm8k no-answer"] == 0.0 and table.attrs["n"]["gsm8k"] == [4, 4, None]

    readable = lb.comparison_table(table)
    assert list(readable.columns) == ["run", "n", "accuracy % [95% CI]", "no answer % [95% CI]"]
    assert list(readable.index[:3]) == ["gsm8k"] * 3  # grouped by task, the shared task first
    first = readable.iloc[0]
    assert (first["run"], first["n"]) == ("run-small", "4")
    assert first["accuracy % [95% CI]"] == format_rate(0.25, 4) == "25.0 [4.6, 69.9]"
    assert first["no answer % [95% CI]"] == "0.0 [0.0, 49.0]"  # a 0 of 4 is not a certain 0
    assert readable.iloc[2]["n"] == "n/a" and readable.iloc[2]["accuracy % [95% CI]"] == "50.0"  # paper
    assert ("blocksworld", "run-small") not in set(zip(readable.index, readable["run"]))  # no "–" rows
    for column in readable.columns:
        assert (readable[column] != "n/a").any() and (readable[column] != "–").any(), column
    assert len(readable.columns) + 1 < 17  # not the 17 columns of old

    # only paper rows: n and the no-answer rate are unknown everywhere, so those columns are left out
    alone, _ = lb.compare(["paper:Llama-3.2-1B-Instruct + Our Data"], output=tmp_path / "p.png")
    assert list(lb.comparison_table(alone).columns) == ["run", "accuracy % [95% CI]"]
    text = lb.format_comparison(table)
    assert (
        text.startswith("| task | run | n |")
        and "not in every run (listed after the others): blocksworld" in text
    )


def _gids(ax, prefix: str) -> dict[str, object]:
    return {
        a.get_gid(): a for a in ax.get_children() + list(ax.texts) if (a.get_gid() or "").startswith(prefix)
    }


def test_compare_plot_draws_zero_missing_intervals_and_unclipped_axes(tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.container import ErrorbarContainer

    table, png = compared(tmp_path)
    assert png.read_bytes()[:4] == b"\x89PNG"
    tasks = [c for c in table.columns if not c.endswith(" no-answer")]
    fig = lb.comparison_figure(table, tasks, "accuracy")
    try:
        top, bottom = fig.axes[:2]
        # the 0% no-answer rate of run-small is drawn (a line at 0 labelled "0"), unlike a missing value
        zero = _gids(bottom, "zero:run-small:gsm8k")["zero:run-small:gsm8k"]
        (segment,) = zero.get_segments()
        assert segment[:, 1].tolist() == [0.0, 0.0] and segment[1, 0] > segment[0, 0]
        assert _gids(bottom, "label:run-small:gsm8k")["label:run-small:gsm8k"].get_text() == "0"
        assert "bar:run-small:gsm8k" not in _gids(bottom, "bar:")
        # missing values (run-small has no blocksworld; the paper reports no no-answer rate here): "n/a"
        assert (
            _gids(top, "missing:run-small:blocksworld")["missing:run-small:blocksworld"].get_text() == "n/a"
        )
        assert _gids(bottom, "missing:").keys() >= {
            "missing:run-small:blocksworld",
            "missing:Llama-3.2-1B-Instruct + Our Data (paper):gsm8k",
        }
        assert "zero:run-small:blocksworld" not in _gids(top, "zero:")
        # the bars that are there, with 95% error bars for the runs (n known), none for the paper
        assert _gids(top, "bar:").keys() >= {
            "bar:run-small:gsm8k",
            "bar:run-large:gsm8k",
            "bar:run-large:blocksworld",
        }
        assert len([c for c in top.containers if isinstance(c, ErrorbarContainer)]) == 3
        assert len([c for c in bottom.containers if isinstance(c, ErrorbarContainer)]) == 3
        # n is on the axis, and no axis stops below a bar or an interval
        assert [t.get_text() for t in bottom.get_xticklabels()][0] == "gsm8k\nn=4"
        highest = 100 * max(rate_interval(0.75, 4)[1], rate_interval(0.25, 4)[1])
        assert highest > 90 and top.get_ylim()[1] >= highest
        assert bottom.get_ylim()[1] >= 100 * rate_interval(0.5, 5)[1]
        assert top.get_ylim()[0] < 0 <= max(top.get_yticks())  # room for the line drawn at 0
    finally:
        plt.close(fig)
