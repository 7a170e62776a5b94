"""`treecot generate`: shards, resume after SIGKILL, no duplicates, stats, early recipe errors."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from treecot.recipe import RecipeError, load_recipe
from treecot.search.runner import (
    Shard,
    _repair_tail,
    _summarise,
    format_summary,
    iter_tree_dicts,
    run_generate,
    tree_files,
)

ROOT = Path(__file__).resolve().parents[1]


def recipe_dict(out_dir, limit=3):
    return {
        "name": "runner-test",
        "seed": 0,
        "problems": {"task": "gsm8k", "split": "test", "limit": limit},
        "generate": {
            "models": {"A": {"model": "tiny"}, "B": {"model": "tiny"}},
            "search": {"max_rollouts": 6, "stop_at_correct": 2, "early_stop_rollouts": 4, "early_stop_correct": 1,
                       "max_depth": 6, "max_node_tokens": 16},
            "output_dir": str(out_dir),
            "problems_in_flight": 2,
        },
    }  # fmt: skip


def fake_generators(delay=0.0):
    """Answers alternate (in call order) between the gold answer and a wrong one; other nodes say a few
    words."""
    from tests.fake_generator import FakeGenerator
    from treecot.tasks.sources import load_source

    golds = {p["question"]: p["reference"] for p in load_source("gsm8k", "test", limit=10)}
    answers = iter(range(10**9))

    def respond(request, i):
        if delay:
            time.sleep(delay)
        prompt = request.prompt
        if prompt.rstrip().endswith("\\boxed{"):
            gold = next(g for q, g in golds.items() if q in prompt)
            return f"{gold}}}" if next(answers) % 2 == 0 else "-1}"
        return "some careful words"

    gen = FakeGenerator(respond=respond, model_id="fake")
    return {"A": gen, "B": gen}


def test_generate_writes_trees_and_stats(tmp_path):
    recipe = load_recipe(recipe_dict(tmp_path / "trees"))
    summary = run_generate(recipe, generators=fake_generators(), progress=False)
    files = tree_files(tmp_path / "trees")
    assert len(files) == 1 and files[0].name.endswith("shard-00000-of-00001.jsonl")
    trees = list(iter_tree_dicts(files))
    assert len(trees) == 3 and len({t["problem"]["id"] for t in trees}) == 3
    assert all(t["config_hash"] == summary["config_hash"] for t in trees)
    assert summary["problems"] == 3 and summary["new_trees"] == 3
    assert summary["yield_at_least_1"] == 1.0 and summary["correct_paths"] >= 3
    assert summary["tokens_per_correct_path"] > 0 and summary["llm_calls"] > 0
    stats = json.loads(next((tmp_path / "trees").glob("stats-*.json")).read_text())
    assert stats["config_hash"] == summary["config_hash"]
    # Rerun: everything is already done.
    again = run_generate(recipe, generators=fake_generators(), progress=False)
    assert again["skipped"] == 3 and again["new_trees"] == 0 and len(list(iter_tree_dicts(files))) == 3


def test_shards_partition_the_problems(tmp_path):
    recipe = load_recipe(recipe_dict(tmp_path / "trees", limit=5))
    for i in range(2):
        run_generate(recipe, Shard(i, 2), generators=fake_generators(), progress=False)
    files = tree_files(tmp_path / "trees")
    assert len(files) == 2
    per_shard = [[t["problem"]["id"] for t in iter_tree_dicts([f])] for f in files]
    assert [len(x) for x in per_shard] == [3, 2] and not set(per_shard[0]) & set(per_shard[1])


def test_shard_parsing_and_environment(monkeypatch):
    assert Shard.parse("1/4") == Shard(1, 4) and Shard.parse(None) == Shard(0, 1)
    for bad in ("4/4", "a/b", "1"):
        with pytest.raises(ValueError, match="shard"):
            Shard.parse(bad)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert Shard.from_environment() == Shard(1, 2)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert Shard.from_environment() is None


def test_repair_tail(tmp_path):
    p = tmp_path / "t.jsonl"
    p.write_text('{"a": 1}\n{"b": 2}\n{"c": ')
    assert _repair_tail(p) == len('{"c": ')
    assert p.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert _repair_tail(p) == 0


KILLED_RUN = """
import sys
sys.path.insert(0, {root!r})
from tests.test_runner import fake_generators, recipe_dict
from treecot.recipe import load_recipe
from treecot.search.runner import run_generate
run_generate(load_recipe(recipe_dict({out!r}, limit=4)), generators=fake_generators(delay={delay}), progress=False)
"""


def test_sigkill_then_restart_loses_nothing_and_duplicates_nothing(tmp_path):
    out = tmp_path / "trees"
    script = KILLED_RUN.format(root=str(ROOT), out=str(out), delay=0.05)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        files = tree_files(out)
        if files and len(list(iter_tree_dicts(files))) >= 1:
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    files = tree_files(out)
    before = [t["problem"]["id"] for t in iter_tree_dicts(files)]
    assert 1 <= len(before) < 4
    with open(files[0], "a") as f:  # what a kill in the middle of a write leaves behind
        f.write('{"schema_version": 1, "problem": {"id": "half-writ')
    summary = run_generate(
        load_recipe(recipe_dict(out, limit=4)), generators=fake_generators(), progress=False
    )
    after = [t["problem"]["id"] for t in iter_tree_dicts(tree_files(out))]
    assert len(after) == 4 and len(set(after)) == 4, "every problem exactly once"
    assert after[: len(before)] == before, "finished trees are kept as they were"
    assert summary["skipped"] == len(before)


def test_bad_recipe_fails_before_any_model_loads(tmp_path, monkeypatch):
    import treecot.backends

    def boom(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(treecot.backends, "make_generator", boom)
    bad = recipe_dict(tmp_path)
    bad["generate"]["search"]["max_dept"] = 3
    with pytest.raises(RecipeError, match=r"generate\.search\.max_dept: unknown field"):
        run_generate(bad)
    no_gen = {k: v for k, v in recipe_dict(tmp_path).items() if k != "generate"}
    with pytest.raises(RecipeError, match="no 'generate' section"):
        run_generate(load_recipe(no_gen))


def old_tree(problem_id: str, stats: dict, nodes: list[tuple]) -> dict:
    """A tree dict as written before the backtracking stats existed: nodes (parent, type, expanded, correct)."""
    out = [{"id": 0, "parent": None, "type": "root", "expanded": True}]
    for parent, ntype, expanded, correct in nodes:
        node = {"id": len(out), "parent": parent, "type": ntype, "expanded": expanded}
        if ntype == "answer":
            node.update(terminal=True, correct=correct)
        out.append(node)
    return {"schema_version": 1, "problem": {"id": problem_id}, "nodes": out, "stats": stats}


def test_summary_counts_reflections_from_the_nodes_of_old_trees():
    stats = {"rollouts": 5, "correct_paths": 2, "generated_tokens": 100, "reflections": 2}
    t1 = old_tree(
        "p1",
        stats,
        [
            (0, "thinking", True, None),  # 1
            (1, "double_check", True, None),  # 2
            (2, "answer", False, False),  # 3: wrong
            (2, "reflection", True, None),  # 4: placed and expanded
            (4, "thinking_from_scratch", True, None),  # 5
            (5, "answer", False, True),  # 6: correct through the reflection
            (1, "answer", False, True),  # 7: correct without one
            (1, "reflection", False, None),  # 8: placed, never expanded
        ],
    )
    t2 = old_tree("p2", {"rollouts": 1, "correct_paths": 0}, [(0, "answer", False, False)])
    s = _summarise([t1, t2], wall=2.0)
    assert (s["reflections_placed"], s["reflections_expanded"], s["reflections_expanded_share"]) == (
        2,
        1,
        0.5,
    )
    assert (s["correct_via_reflection"], s["correct_via_reflection_share"]) == (1, 0.5)
    assert s["correct_paths"] == 2 and s["problems"] == 2 and s["rollouts"] == 6
    s.update(new_trees=0)
    line = format_summary(s)
    assert (
        "reflections 2 placed, 1 expanded (50%), 1 correct paths through a reflection (50% of correct" in line
    )
    # No reflections and no correct path: counts without undefined shares; old summaries print as before.
    none = _summarise([t2], wall=1.0) | {"new_trees": 1}
    assert none["reflections_expanded_share"] is None and none["correct_via_reflection_share"] is None
    assert "reflections 0 placed, 0 expanded, 0 correct paths through a reflection;" in format_summary(none)
    legacy = {k: v for k, v in none.items() if not k.startswith(("reflections", "correct_via"))}
    assert "reflection" not in format_summary(legacy)


def test_generate_summary_reports_backtracking(tmp_path):
    recipe = load_recipe(recipe_dict(tmp_path / "trees", limit=3))
    summary = run_generate(recipe, generators=fake_generators(), progress=False)
    trees = list(iter_tree_dicts(tree_files(tmp_path / "trees")))
    placed = sum(t["stats"]["reflections"] for t in trees)
    assert summary["reflections_placed"] == placed > 0
    assert summary["reflections_expanded"] == sum(t["stats"]["reflections_expanded"] for t in trees)
    assert summary["correct_via_reflection"] == sum(t["stats"]["correct_via_reflection"] for t in trees)
    assert summary["reflections_expanded_share"] == round(summary["reflections_expanded"] / placed, 4)


# --------------------------------------------------------------------------- issue #14: one writer, no silent damage

TWO_WRITERS = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.test_runner import fake_generators
from treecot.cli import main
from treecot.search import runner

gens = fake_generators()
inner = gens["A"].respond

def respond(request, i):  # the first run holds its lock until the test lets it go on
    while not os.path.exists({release!r}):
        time.sleep(0.02)
    return inner(request, i)

gens["A"].respond = respond
runner.build_generators = lambda recipe: gens
sys.exit(main(["generate", {recipe!r}, "--no-progress"]))
"""


def test_a_second_generate_of_the_same_shard_refuses_and_nothing_is_written_twice(tmp_path):
    """Issue #14: two `generate` runs on one shard wrote every tree twice (16 lines for 8 ids, stats 16)."""
    import yaml

    out = tmp_path / "trees"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(out, limit=4)))
    release = tmp_path / "go"
    script = TWO_WRITERS.format(root=str(ROOT), release=str(release), recipe=str(recipe))
    first = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while not any(p.read_text().strip() for p in out.glob("*.lock")):  # locked, pid written
            assert first.poll() is None, first.communicate()[1].decode()[-2000:]
            assert time.time() < deadline, "the first run never took its lock"
            time.sleep(0.05)
        (lock,) = out.glob("trees-*-shard-00000-of-00001.lock")
        second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
        assert second.returncode == 2, second.stderr[-2000:]
        assert "Traceback" not in second.stderr
        assert (
            f"generate.output_dir: another treecot generate is writing {out} (pid {first.pid}, lock {lock.name}); "
            "wait for it or use another output_dir"
        ) in second.stderr
    finally:
        release.touch()
        first.wait(timeout=120)
    assert first.returncode == 0, first.stderr.read().decode()[-2000:]
    lines = [json.loads(x) for x in next(out.glob("trees-*.jsonl")).read_text().splitlines()]
    assert len(lines) == 4 and len({t["problem"]["id"] for t in lines}) == 4
    stats = json.loads(next(out.glob("stats-*.json")).read_text())
    assert stats["problems"] == 4 and stats["new_trees"] == 4
    assert not list(out.glob("*.lock")), "the lock file is removed when the run ends"


def test_the_shard_lock_is_taken_before_the_shard_is_touched(tmp_path):
    """In one process too: a held lock stops a run before it cuts the tail, reads or writes the shard."""
    from treecot.search.runner import OutputBusyError, ShardLock

    recipe = load_recipe(recipe_dict(tmp_path / "trees", limit=2))
    first = run_generate(recipe, generators=fake_generators(), progress=False)
    (shard,) = tree_files(tmp_path / "trees")
    with open(shard, "a") as f:
        f.write('{"half": ')  # a torn tail that a second writer must not cut under a live one
    before = shard.read_bytes()
    lock_path = shard.with_suffix(".lock")
    with ShardLock(lock_path, tmp_path / "trees"):
        assert lock_path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(
            OutputBusyError, match=rf"another treecot generate is writing .* \(pid {os.getpid()}, "
        ):
            run_generate(recipe, generators=fake_generators(), progress=False)
        assert shard.read_bytes() == before
    assert not lock_path.exists()
    again = run_generate(recipe, generators=fake_generators(), progress=False)
    assert again["skipped"] == 2 and again["problems"] == first["problems"] == 2
    assert not shard.read_text().endswith(
        '{"half": '
    )  # the torn tail is still cut once nobody holds the shard


def test_stats_count_each_tree_once():
    """Shards written twice by older versions: the stats count a problem once, as build reads them."""
    t1 = old_tree(
        "p1", {"rollouts": 3, "correct_paths": 1, "generated_tokens": 10}, [(0, "answer", False, True)]
    )
    t2 = old_tree(
        "p2", {"rollouts": 2, "correct_paths": 0, "generated_tokens": 5}, [(0, "answer", False, False)]
    )
    s = _summarise([t1, t2, t1, t2], wall=1.0)
    assert (s["problems"], s["rollouts"], s["correct_paths"], s["generated_tokens"]) == (2, 5, 1, 15)
    assert s["yield_at_least_1"] == 0.5 and s["reflections_placed"] == 0


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (b'{"schema_version": 1, "problem": {"id": "x"\n', r"not valid JSON \(Expecting ',' delimiter at column 45\)"),
        (b"\xff\xfe garbage\n", r"not UTF-8 text \(byte 0xff at column 1\)"),
        (b"[1, 2]\n", "a JSON list, not a tree object"),
        (b'{"schema_version": 1, "nodes": []}\n', "a record without problem.id"),
    ],
)  # fmt: skip
def test_a_damaged_line_in_the_middle_of_a_shard_is_named(tmp_path, capsys, monkeypatch, damage, what):
    """Issue #14: a corrupt line in the middle of a shard was a bare JSONDecodeError (no file, no line)."""
    import yaml

    from treecot.cli import main
    from treecot.search import runner
    from treecot.search.runner import ShardError, finished_ids

    out = tmp_path / "trees"
    recipe = load_recipe(recipe_dict(out, limit=3))
    summary = run_generate(recipe, generators=fake_generators(), progress=False)
    (shard,) = tree_files(out)
    lines = shard.read_bytes().splitlines(keepends=True)
    shard.write_bytes(lines[0] + damage + b"".join(lines[1:]))
    message = rf"^{re.escape(str(shard))}:2: {what}; the shard is damaged in the middle .*\(sed -i '2d' "
    if "problem.id" in what:  # a JSON object: readers get it, the runner needs its id
        assert len(list(iter_tree_dicts([shard]))) == 4
    else:
        with pytest.raises(ShardError, match=message):
            list(iter_tree_dicts([shard]))
    with pytest.raises(ShardError, match=message):
        finished_ids(out, summary["config_hash"])
    with pytest.raises(ShardError, match=message):
        run_generate(recipe, generators=fake_generators(), progress=False)
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(out, limit=3)))
    monkeypatch.setattr(runner, "build_generators", lambda recipe: fake_generators())
    assert main(["generate", str(path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"{shard}:2: " in err and "Traceback" not in err
    # What the message says to do works: delete the line and rerun.
    shard.write_bytes(b"".join(lines))
    assert run_generate(recipe, generators=fake_generators(), progress=False)["problems"] == 3


def test_a_changed_recipe_object_is_validated_again(tmp_path):
    """The CLI sets --limit / --output-dir on a loaded recipe: run_generate checks the caps again."""
    recipe = load_recipe(recipe_dict(tmp_path / "trees"))
    recipe.problems.limit = 10**12
    with pytest.raises(RecipeError, match=r"problems\.offset \+ problems\.limit: 1000000000000 is more than"):
        run_generate(recipe, generators=fake_generators(), progress=False)
