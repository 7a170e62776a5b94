"""`treecot build`: trees → trees/sft/dpo configs with a card and histograms, versioned, local layout."""

import json
import sys

import pytest

from tests.pipeline.test_generate import fake_generators, recipe_dict
from treecot.hub import list_versions, load_versioned
from treecot.pipeline.build import load_trees, run_build
from treecot.pipeline.generate import run_generate
from treecot.recipe import RecipeError, load_recipe


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    d = recipe_dict(root / "trees", limit=4)
    d["build"] = {"student": "tiny", "output_dir": str(root / "dataset"), "tag": "v1"}
    recipe = load_recipe(d)
    run_generate(recipe, generators=fake_generators(), progress=False)
    built = run_build(recipe)
    return root, recipe, built


def test_build_writes_versioned_local_dataset(generated):
    root, recipe, out = generated
    report = out["report"]
    assert report["trees"] == 4 and report["sft_rows"] == 4 and report["dpo_rows"] >= 1
    local = root / "dataset"
    versions = list_versions(str(local))
    branch = out["result"].branch
    assert branch.startswith("run-") and "v1" in str(versions)
    sft = load_versioned(str(local), "sft", revision="v1", split="train")
    assert len(sft) == 4 and set(sft[0]) >= {"messages", "problem_id", "n_tokens", "length_rank", "source"}
    assert all(r["length_rank"] == "longest" for r in sft), "paper default: the longest correct path for SFT"
    dpo = load_versioned(str(local), "dpo", revision=branch, split="train")
    from treecot.models import load_tokenizer

    student = load_tokenizer("tiny")
    for row in dpo:
        assert row["chosen"].startswith(row["shared_prefix"]) and row["rejected"].startswith(
            row["shared_prefix"]
        )
        # token level: the prefill of the first sub-task is shared even when no node is
        n = row["shared_prefix_tokens"]
        assert n > 0 and n == len(student(row["shared_prefix"], add_special_tokens=False)["input_ids"])
        assert row["pair_rule"] == "shortest_prefix" and isinstance(row["shared_prefix_nodes"], int)
    assert str(dpo.features["rejected_defects"].feature) == "Value('string')", "typed even when all empty"
    for key in ("correct_path_defects", "dropped_correct_paths", "problems_without_clean_correct_path",
                "shared_prefix_stats", "dpo_all_rows", "rejected_unclean"):  # fmt: skip
        assert key in report, key
    assert set(out) == {"report", "result", "config_hash", "card", "contract"}
    quality = out["card"]["quality"]
    assert quality["pair rule"] == "shortest_prefix"
    assert quality["shared prefix tokens per pair: median"] == report["shared_prefix_stats"]["median"]
    # backtracking figures of the trees (the scripted answers alternate, so some reflections were placed)
    from treecot.pipeline.generate import iter_tree_dicts, tree_files
    from treecot.search.mcts import reflection_summary

    summary = reflection_summary(iter_tree_dicts(tree_files(recipe.generate.output_dir)))
    assert quality["reflections placed"] == summary["reflections_placed"]
    if summary["reflections_placed"]:
        assert quality["reflections expanded"].startswith(f"{summary['reflections_expanded']} (")
    with pytest.raises(Exception):  # noqa: B017 - no dpo_all config unless asked for
        load_versioned(str(local), "dpo_all", revision=branch, split="train")
    trees = load_versioned(str(local), "trees", split="train")
    tree = json.loads(trees[0]["tree"])
    assert tree["problem"]["id"] == trees[0]["problem_id"] and trees[0]["n_nodes"] == len(tree["nodes"])
    main = local / "main"
    card = (main / "README.md").read_text()
    assert "configs:" in card and "sft" in card and "histograms/length_hist_gsm8k.png" in card
    assert "| correct paths dropped from SFT and chosen | 0 |" in card
    assert "| shared prefix tokens per pair: 90th percentile |" in card
    assert (main / "histograms" / "length_hist_gsm8k.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun of the same recipe is skipped: the branch is complete.
    again = run_build(recipe)
    assert again["result"].skipped and again["config_hash"] == out["config_hash"]


def test_build_options_change_the_run(generated):
    root, recipe, _ = generated
    recipe = load_recipe(
        {**recipe.to_dict(), "build": {**recipe.to_dict()["build"], "sft_length": "all", "tag": None}}
    )
    out = run_build(recipe)
    sft = load_versioned(str(root / "dataset"), "sft", revision=out["result"].branch, split="train")
    assert len(sft) >= 4 and not out["result"].skipped


def test_a_build_of_grown_trees_is_a_new_run_and_its_tag_holds_the_new_rows(generated, tmp_path, capsys):
    # issue #14: after `generate --limit` grew the trees, `build --tag v2` said "already complete" and v2
    # named the old rows
    root, recipe, _ = generated
    shards = sorted((root / "trees").glob("trees-*.jsonl"))
    lines = [line for shard in shards for line in shard.read_text().splitlines()]
    grown = tmp_path / "trees" / shards[0].name
    grown.parent.mkdir()
    grown.write_text("\n".join(lines[:2]) + "\n")
    d = recipe.to_dict()
    d["build"] = {
        **d["build"],
        "trees": str(grown.parent),
        "output_dir": str(tmp_path / "dataset"),
        "tag": None,
    }
    first = run_build(load_recipe(d), tag="v1")  # the tag as `treecot build --tag v1` gives it
    assert first["report"]["trees"] == 2
    assert run_build(load_recipe(d), tag="v1")["result"].skipped, (
        "the same recipe and trees: already complete"
    )
    assert "skipped (already complete: same recipe and trees; --force rewrites it)" in capsys.readouterr().out
    grown.write_text("\n".join(lines) + "\n")  # the same search configuration, more trees
    second = run_build(load_recipe(d), tag="v2")
    assert not second["result"].skipped and second["result"].branch != first["result"].branch
    v1 = load_versioned(str(tmp_path / "dataset"), "sft", revision="v1", split="train")
    v2 = load_versioned(str(tmp_path / "dataset"), "sft", revision="v2", split="train")
    assert len(v1) == first["report"]["sft_rows"] < len(v2) == second["report"]["sft_rows"]
    assert set(v1["problem_id"]) < set(v2["problem_id"])


def test_build_errors(tmp_path, generated):
    root, _, _ = generated
    with pytest.raises(RecipeError, match="does not exist"):
        load_trees(tmp_path / "nope")
    with pytest.raises(RecipeError, match="no trees-"):
        load_trees(tmp_path)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    src = next((root / "trees").glob("trees-*.jsonl"))
    lines = src.read_text().splitlines()
    other = json.loads(lines[0])
    other["config_hash"] = "another"
    (mixed / "trees-a-shard-00000-of-00001.jsonl").write_text(lines[0] + "\n")
    (mixed / "trees-b-shard-00000-of-00001.jsonl").write_text(json.dumps(other) + "\n")
    with pytest.raises(RecipeError, match="2 different search configurations"):
        load_trees(mixed)
    with pytest.raises(RecipeError, match="no 'build' section"):
        run_build(load_recipe(recipe_dict(tmp_path)))


def test_distill_writes_sft_and_rejected_configs(tmp_path):
    from tests.data.test_distill import ScriptedTeacher
    from treecot.pipeline.build import run_distill
    from treecot.tasks.sources import load_source

    problems = load_source("gsm8k", "test", limit=2)
    script = {
        p["question"]: [f"Thought: a\n\nb Solution: \\boxed{{{p['reference']}}}", "no answer"]
        for p in problems
    }
    recipe = load_recipe(
        {
            "name": "d",
            "problems": {"task": "gsm8k", "split": "test", "limit": 2},
            "distill": {
                "student": "tiny",
                "samples": 2,
                "output_dir": str(tmp_path / "distill"),
                "tag": "v1",
            },
        }
    )
    out = run_distill(recipe, teacher=ScriptedTeacher(script), progress=False)
    assert out["report"]["accepted"] == 2 and out["report"]["rejected"] == 2
    sft = load_versioned(str(tmp_path / "distill"), "sft", revision="v1", split="train")
    assert len(sft) == 2 and set(sft["source"]) == {"distill"}
    rejected = load_versioned(str(tmp_path / "distill"), "rejected", revision="v1", split="train")
    assert rejected["text"] == ["no answer", "no answer"]
    card = (tmp_path / "distill" / "main" / "README.md").read_text()
    assert 'load_dataset("local/' not in card
    assert f"rejected = load_versioned({str(tmp_path / 'distill')!r}, 'rejected', revision='v1')" in card
    assert "Made by `treecot distill`" in card and "Monte Carlo tree search" not in card, "its own story"


def test_perturb_reads_a_dataset_and_writes_a_new_version(generated, tmp_path):
    from treecot.pipeline.build import run_perturb

    root, _, _ = generated
    out = run_perturb(
        str(root / "dataset"), "shuffle", 1.0, seed=1, revision="v1", output_dir=str(tmp_path / "p")
    )
    assert out["rows"] == 4
    sft = load_versioned(str(tmp_path / "p"), "sft", split="train")
    assert all(r["perturbation"]["kind"] == "shuffle" and r["perturbation"]["seed"] == 1 for r in sft)
    card = (tmp_path / "p" / "main" / "README.md").read_text()
    assert "Built with treecot" not in card and "Monte Carlo tree search" not in card
    assert "Made by `treecot perturb`" in card
    assert f"sft = load_versioned({str(tmp_path / 'p')!r}, 'sft', revision='run-" in card
    wrong = run_perturb(
        str(root / "dataset"), "wrong_answer", 1.0, revision="v1", output_dir=str(tmp_path / "w")
    )
    assert wrong["changed"] >= 1, "wrong paths come from the trees config"


def test_build_merges_several_tree_directories(generated, tmp_path):
    root, recipe, _ = generated
    other = recipe_dict(tmp_path / "trees-b", limit=6)  # problems 0-5: 4 overlap with the first run
    other["generate"]["search"]["max_rollouts"] = 5  # another configuration
    run_generate(load_recipe(other), generators=fake_generators(), progress=False)
    trees, combined = load_trees([root / "trees", tmp_path / "trees-b"])
    (_, first), (_, second) = load_trees(root / "trees"), load_trees(tmp_path / "trees-b")
    assert len(trees) == 6 and len({t["problem"]["id"] for t in trees}) == 6, "deduplicated by problem"
    assert combined not in (first, second) and len(combined) == 16
    assert load_trees([root / "trees"])[1] == first
    d = recipe.to_dict()
    d["build"] = {**d["build"], "trees": [str(root / "trees"), str(tmp_path / "trees-b")], "tag": None}
    d["build"]["output_dir"] = str(tmp_path / "dataset")
    out = run_build(load_recipe(d))
    assert out["report"]["trees"] == 6
    with pytest.raises(RecipeError, match="list of tree directories is empty"):
        load_trees([])
    with pytest.raises(RecipeError, match=r"build\.trees\[0\]: expected str"):
        load_recipe({**d, "build": {**d["build"], "trees": [3]}})


def test_build_writes_dpo_all_with_the_pair_rule(generated, tmp_path):
    root, recipe, first = generated
    d = recipe.to_dict()
    d["build"] = {**d["build"], "dpo_all": True, "pair_rule": "latest_branch", "tag": None}
    d["build"]["output_dir"] = str(tmp_path / "dataset")
    out = run_build(load_recipe(d))
    branch = out["result"].branch
    dpo = load_versioned(str(tmp_path / "dataset"), "dpo", revision=branch, split="train")
    dpo_all = load_versioned(str(tmp_path / "dataset"), "dpo_all", revision=branch, split="train")
    assert len(dpo_all) == out["report"]["dpo_all_rows"] > len(dpo) == first["report"]["dpo_rows"]
    assert set(dpo_all["pair_rule"]) == set(dpo["pair_rule"]) == {"latest_branch"}
    chosen = {(r["problem_id"], tuple(r["chosen_node_ids"])) for r in dpo}
    assert chosen <= {(r["problem_id"], tuple(r["chosen_node_ids"])) for r in dpo_all}
    assert out["card"]["yield"]["dpo_all_pairs"] == len(dpo_all)
    assert out["card"]["quality"]["pair rule"] == "latest_branch"
    assert "`dpo_all`" in (tmp_path / "dataset" / "main" / "README.md").read_text()


def test_build_drops_unclean_paths_and_reports_them_in_the_card(tmp_path):
    from tests.data.test_data_extract import make_dirty_tree

    shard = tmp_path / "trees.jsonl"
    cut = make_dirty_tree("only-cut")
    for n in cut.correct_answers():
        n.finish_reason = "length"
    shard.write_text(make_dirty_tree().to_json() + "\n" + cut.to_json() + "\n")
    d = {
        "name": "dirty",
        "problems": {"task": "gsm8k", "split": "test", "limit": 2},
        "build": {"student": "tiny", "trees": str(shard), "output_dir": str(tmp_path / "dataset")},
    }
    out = run_build(load_recipe(d))
    report, quality = out["report"], out["card"]["quality"]
    assert report["sft_rows"] == 1 and report["n_problems_without_clean_correct_path"] == 1
    assert report["dropped_correct_paths"] == 5 and report["correct_path_defects"]["truncated"] == 4
    assert quality["correct paths dropped from SFT and chosen"] == 5
    assert quality["problems that lost every correct path to the filter"] == 1
    assert quality["preference pairs with a defective rejected path"] == 1
    sft = load_versioned(str(tmp_path / "dataset"), "sft", revision=out["result"].branch, split="train")
    assert sft["node_ids"] == [[1, 2]]
    card = (tmp_path / "dataset" / "main" / "README.md").read_text()
    assert "| problems that lost every correct path to the filter | 1 |" in card


def test_build_says_when_a_config_is_left_out(tmp_path, capsys):
    """Trees with correct paths only give SFT rows and no preference pair: the summary says `dpo` is left out,
    why, and what to change."""
    from tests.data.test_data_extract import make_tree

    tree = make_tree("all-correct")
    for node in tree.nodes:
        if node.type == "answer":
            node.correct = True
    shard = tmp_path / "trees.jsonl"
    shard.write_text(tree.to_json() + "\n")
    d = {
        "name": "no-pairs",
        "problems": {"task": "gsm8k", "split": "test", "limit": 1},
        "build": {"student": "tiny", "trees": str(shard), "output_dir": str(tmp_path / "dataset")},
    }
    out = run_build(load_recipe(d))
    assert out["report"]["dpo_rows"] == 0 and out["report"]["sft_rows"] == 1
    printed = capsys.readouterr().out
    line = next(x for x in printed.splitlines() if "config `dpo` left out" in x)
    assert "no preference pairs (no problem had both a correct and a wrong path)" in line
    assert "more problems" in line and "more rollouts" in line and "easier slice" in line
    assert "config `sft` left out" not in printed


def test_build_card_loads_a_local_dataset_and_reports_the_run_wall_time(generated):
    """A local-layout dataset's card loads it with `load_versioned` (not `load_dataset("local/…")`, which goes
    to the Hub); the wall time is the generate run's (its stats file), the per-tree sum is labelled as
    overlapping, and token counts print as integers."""
    root, recipe, out = generated
    card = (
        root / "dataset" / out["result"].branch / "README.md"
    ).read_text()  # main may hold a later build's
    folder = str(root / "dataset")
    assert 'load_dataset("local/' not in card
    assert "from treecot.hub import load_versioned" in card
    assert f"sft = load_versioned({folder!r}, 'sft', revision='v1')" in card
    (stats,) = (root / "trees").glob(f"stats-{load_trees(root / 'trees')[1]}-*.json")
    wall = json.loads(stats.read_text())["wall_seconds"]
    assert out["card"]["cost"]["wall_seconds"] == round(wall, 2)
    assert "| search time summed over trees (s, overlapping) |" in card
    for key in ("llm_calls", "prefill_tokens", "generated_tokens", "cache_hit_tokens"):
        assert isinstance(out["card"]["cost"][key], int), key
    cost = card.split("## Cost")[1].split("##")[0]
    assert "tokens | " in cost and not any(
        line.rstrip(" |").endswith(".0") for line in cost.splitlines() if "tokens" in line
    )
    # the snippet runs as written
    namespace: dict = {}
    snippet = card.split("## Load it")[1].split("```python\n")[1].split("```")[0]
    exec(snippet, namespace)  # noqa: S102
    assert len(namespace["sft"]["train"]) == out["report"]["sft_rows"]
    # a count that reaches the card as a float still prints as an integer
    from treecot.hub import render_dataset_card

    text = render_dataset_card(
        {
            "repo_id": "me/x",
            "configs": {"sft": {"splits": {"train": 1}}},
            "cost": {"generated_tokens": 1319.0},
        }
    )
    assert "| generated tokens | 1,319 |" in text


def test_build_writes_without_a_bar_per_file(tmp_path, capsys, monkeypatch):
    """`datasets`' "Casting the dataset" and "Creating parquet from Arrow format" bars came once per config
    and file on every build: gone; `datasets`' own setting is restored afterwards."""
    import datasets

    d = recipe_dict(tmp_path / "trees", limit=2)
    d["build"] = {"student": "tiny", "output_dir": str(tmp_path / "dataset")}
    recipe = load_recipe(d)
    run_generate(recipe, generators=fake_generators(), progress=False)
    capsys.readouterr()
    # the suite turns datasets' bars off by environment (tests/conftest.py): on, as for a user
    bars = sys.modules["datasets.utils.tqdm"]  # the module (`datasets.utils.tqdm` names its class)
    monkeypatch.setattr(bars, "HF_DATASETS_DISABLE_PROGRESS_BARS", None)  # as if unset
    monkeypatch.setattr(bars, "_hf_datasets_progress_bars_disabled", False)
    run_build(recipe)
    err = capsys.readouterr().err
    assert "Creating parquet" not in err and "Casting the dataset" not in err, err
    assert not datasets.utils.are_progress_bars_disabled()
