"""`treecot demo`: the whole pipeline, shortened (tiny model, 2 problems), end to end; resume and errors."""

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.pipeline.test_generate import fake_generators
from treecot.cli import main
from treecot.demo import STAGES, STATE_FILE, Demo, DemoError, fresh_start, load_demo_config, run_demo
from treecot.hub import list_versions, load_versioned

ROOT = Path(__file__).resolve().parents[1]


def short_config(out: Path, **eval_overrides) -> dict:
    """recipes/demo.yaml cut down: tiny model, 2 GSM8K test problems, one training step per stage."""
    cfg = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    slice_ = cfg["generate"][0]
    slice_["name"] = "gsm8k-2"
    slice_["problems"] = {"task": "gsm8k", "split": "test", "limit": 2}
    slice_["generate"]["search"].update(max_rollouts=6, early_stop_rollouts=4, max_depth=4, max_node_tokens=8)
    for stage in ("sft", "cdpo"):
        cfg["train"][stage]["config"] = str(ROOT / cfg["train"][stage]["config"])
        cfg["train"][stage]["overrides"].update(max_steps=1, per_device_train_batch_size=1, logging_steps=1)
    cfg.update(
        model="tiny",
        output_dir=str(out),
        generate=[slice_],
        eval={"tasks": ["gsm8k"], "limit": 2, "max_new_tokens": 8, "batch_size": 2, "dtype": "float32",
              **eval_overrides},
    )  # fmt: skip
    return cfg


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    cfg = short_config(out)
    # The tiny random model never answers right: the search uses scripted generators whose answers
    # alternate between right and wrong, so the trees hold both; training and evaluation use `tiny`.
    results = run_demo(cfg, generators=fake_generators(), progress=False)
    return out, cfg, results


def test_demo_runs_every_stage(demo_run):
    out, _, results = demo_run
    state = json.loads((out / STATE_FILE).read_text())
    assert list(state["stages"]) == list(STAGES)
    assert all(rec["seconds"] >= 0 for rec in state["stages"].values())
    # trees and a versioned dataset with SFT rows and preference pairs
    gen = results["generate"]["slices"]["gsm8k-2"]
    assert gen["problems"] == 2 and gen["correct_paths"] >= 2
    build = results["build"]
    assert build["revision"] in list_versions(build["dataset"]).branches
    sft = load_versioned(build["dataset"], "sft", revision=build["revision"], split="train")
    dpo = load_versioned(build["dataset"], "dpo", revision=build["revision"], split="train")
    assert len(sft) == 2 and len(dpo) >= 1 and {r["length_rank"] for r in sft} == {"longest"}
    # trained models, each evaluated; leaderboard rows
    for stage in ("sft", "cdpo"):
        assert (out / "models" / stage / "model.safetensors").is_file()
        assert any("loss" in x for x in results[stage]["log_history"])
    # the base model under its tasks' own prompt and under the data's prompt (a fair "base vs trained")
    assert set(results["eval"]) == {"base", "base-data-prompt", "sft", "cdpo"}
    assert results["eval"]["base"]["prompt"]["sources"] == {"gsm8k": "task"}
    data_prompt = results["eval"]["base-data-prompt"]["prompt"]["system_prompts"]["gsm8k"]
    for which in ("sft", "cdpo"):
        assert results["eval"][which]["prompt"]["system_prompts"]["gsm8k"] == data_prompt
    for which, rec in results["eval"].items():
        summary = json.loads(Path(rec["summary"]).read_text())
        assert summary["tasks"]["gsm8k"]["n"] == 2 and "no_answer_rate" in summary["tasks"]["gsm8k"]
        if which in ("sft", "cdpo"):  # trained models carry their dataset version to the leaderboard
            assert (summary["dataset_repo"], summary["dataset_revision"]) == (
                build["dataset"],
                build["revision"],
            )
    board = load_versioned(results["leaderboard"]["leaderboard"], "results", split="train")
    assert len({r["run_id"] for r in board}) == 4
    assert set(results["leaderboard"]["table"]) == {"base", "base-data-prompt", "sft", "cdpo"}


def test_demo_report(demo_run):
    out, _, results = demo_run
    report = Path(results["report"]["report"])
    text = report.read_text()
    for heading in (
        "## Stages",
        "## Trees (MCTS)",
        "## Dataset",
        "## Training",
        "## Evaluation",
        "## Open the Space",
    ):
        assert heading in text
    for png in ("tree_example.png", "before_after_intervals.png", "length_hist_gsm8k.png"):
        assert f"]({png})" in text and (report.parent / png).read_bytes()[:4] == b"\x89PNG"
    assert "| base |" in text and "| cdpo |" in text and "treecot space --data-root" in text
    # every rate comes with its 95% interval, and the report says which differences exceed noise
    assert "within noise" in text or "exceeds noise" in text
    assert re.search(r"\| base-data-prompt \| \d+\.\d \[\d+\.\d, \d+\.\d\]", text)
    assert "accelerate launch" in text and "-m treecot.scripts.dpo" in text


def test_demo_resumes_and_reruns_only_what_changed(demo_run, capsys, monkeypatch):
    out, cfg, first = demo_run
    import treecot.pipeline.build
    import treecot.scripts.sft

    def refuse(*a, **k):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr(treecot.pipeline.build, "run_build", refuse)
    monkeypatch.setattr(treecot.scripts.sft, "main", refuse)
    again = run_demo(cfg, generators=fake_generators(), progress=False)
    printed = capsys.readouterr().out
    assert printed.count("reused") == len(STAGES) - 1  # the report is always rewritten
    assert again["cdpo"]["model"] == first["cdpo"]["model"]
    # Another evaluation setting: only the evaluations and what follows them run again.
    changed = short_config(out, limit=1)
    result = run_demo(changed, generators=fake_generators(), progress=False)
    printed = capsys.readouterr().out
    assert all(f"{stage}: done earlier" in printed for stage in ("generate", "build", "sft", "cdpo"))
    assert all(
        f"{stage} finished" in printed for stage in ("eval-base", "eval-sft", "eval-cdpo", "leaderboard")
    )
    assert all(rec["tasks"]["gsm8k"]["n"] == 1 for rec in result["eval"].values())


def test_fresh_only_deletes_a_demo_directory(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DemoError, match="has no demo-state.json"):
        fresh_start(mine)
    assert (mine / "notes.txt").read_text() == "keep me"
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / STATE_FILE).write_text("{}")
    fresh_start(demo)
    assert not demo.exists()
    fresh_start(tmp_path / "never-written")  # nothing to delete
    # A run killed during its first stage has already marked its directory: --fresh may delete it.
    killed = tmp_path / "killed"
    Demo(load_demo_config(short_config(killed)))
    (killed / "trees").mkdir()
    fresh_start(killed)
    assert not killed.exists()


def test_no_correct_path_stops_before_training(tmp_path):
    """The real tiny model searches (no scripted answers): it solves nothing, and the demo says so."""
    cfg = short_config(tmp_path / "out")
    cfg["generate"][0]["problems"]["limit"] = 1
    cfg["generate"][0]["generate"]["search"].update(max_rollouts=2, early_stop_rollouts=2)
    with pytest.raises(DemoError, match="nothing to train on.*more problems or rollouts"):
        run_demo(cfg, progress=False)
    state = json.loads((tmp_path / "out" / STATE_FILE).read_text())
    assert list(state["stages"]) == ["generate"], "the finished generation is kept for a rerun"


def test_config_errors_name_the_field(tmp_path):
    good = short_config(tmp_path / "out")
    with pytest.raises(DemoError, match="modle: unknown field; known fields"):
        load_demo_config({**good, "modle": "x"})
    with pytest.raises(DemoError, match="non-empty list of slices"):
        load_demo_config({**good, "generate": []})
    bad_slice = json.loads(json.dumps(good))
    bad_slice["generate"][0]["generate"]["search"]["max_rollouts"] = 0
    with pytest.raises(DemoError, match=r"generate\[0\].*max_rollouts"):
        load_demo_config(bad_slice)
    with pytest.raises(DemoError, match="train.cdpo.config: 'nope.yaml' does not exist"):
        load_demo_config({**good, "train": {**good["train"], "cdpo": {"config": "nope.yaml"}}})
    with pytest.raises(DemoError, match="eval.tasks: unknown task 'gsm9k'"):
        load_demo_config({**good, "eval": {**good["eval"], "tasks": ["gsm9k"]}})
    with pytest.raises(DemoError, match=r"eval\.limt: unknown field"):
        load_demo_config({**good, "eval": {"limt": 2}})
    with pytest.raises(DemoError, match="train.sft: missing field 'config'"):
        load_demo_config({**good, "train": {**good["train"], "sft": {"overrides": {}}}})
    with pytest.raises(DemoError, match=r"generate\[0\]: expected a mapping"):
        load_demo_config({**good, "generate": ["arithmetic"]})
    with pytest.raises(DemoError, match="does not exist"):
        load_demo_config(str(tmp_path / "missing.yaml"))
    bomb = tmp_path / "bomb.yaml"  # a billion laughs: refused at once, naming the file
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"{c}: &{c} [{','.join(['*' + p] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(DemoError, match=f"demo config {bomb}: .*aliases"):
        load_demo_config(str(bomb))


def test_shipped_config_is_valid_and_cli_reports_errors(tmp_path, capsys):
    cfg = load_demo_config(str(ROOT / "recipes" / "demo.yaml"))
    tasks = [load_demo_config(str(ROOT / "recipes" / "demo.yaml")).recipe(i)["problems"]["task"]
             for i in range(len(cfg.generate))]  # fmt: skip
    assert tasks == ["arithmetic", "gsm8k", "blocksworld"] and cfg.model == "smollm2-135m-instruct"
    assert set(cfg.eval.models) == {"base", "sft", "cdpo"}
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ngenerate: []\n")
    assert main(["demo", "--config", str(bad)]) == 2
    assert "non-empty list of slices" in capsys.readouterr().err


def test_two_fresh_runs_give_identical_trees_and_figures(tmp_path):
    """Determinism of a shortened demo on a real in-process backend (the tiny model as models A and B,
    seeded sampling): the same trees and evaluation figures twice, apart from wall times and dates."""
    from treecot.pipeline.generate import iter_tree_dicts, tree_files

    def run(out: Path):
        cfg = load_demo_config(short_config(out))
        demo = Demo(cfg, progress=False)  # no scripted generators: the recipe's transformers backend
        demo.generate()
        trees = []
        for d in sorted((out / "trees").iterdir()):
            for t in iter_tree_dicts(tree_files(d)):
                t["stats"].pop("wall_seconds")
                trees.append(t)
        # the base evaluation (the random model answers nothing right, so there is no data to train on)
        rec = demo.evaluate_model("eval-base", cfg.model, out / "eval" / "base", (), system_prompt="task")
        summary = json.loads(Path(rec["summary"]).read_text())
        return trees, summary["tasks"], summary["prompt"]

    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first[0] and sum(len(t["nodes"]) for t in first[0]) > 2  # the search did generate
    assert first[0] == second[0]  # trees, node for node
    assert first[1:] == second[1:]  # evaluation figures and prompts
