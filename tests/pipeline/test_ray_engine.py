"""`treecot generate --engine ray`: a pool of Ray actors on a local cluster (`ray.init(num_cpus=2)`, one
for the session) writes the same resumable shards and stats as the local engine, survives an actor dying
mid-run, and says in one line when Ray is missing."""

import json
import os
import sys

import pytest

from treecot.pipeline import ray_engine
from treecot.pipeline.generate import iter_tree_dicts, run_generate, tree_files
from treecot.recipe import RecipeError, load_recipe
from treecot.tasks import get_task


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster of 2 CPUs for the whole session (the engine uses it and leaves it running)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield ray
    finally:
        ray.shutdown()


def tiny_recipe(out_dir, limit=4, in_flight=2, model=None):
    return {
        "name": "ray-test",
        "seed": 0,
        "problems": {"task": "gsm8k", "split": "test", "limit": limit},
        "generate": {
            "models": {"A": model or {"model": "tiny"}},
            "search": {"max_rollouts": 2, "max_depth": 2, "max_node_tokens": 8},
            "output_dir": str(out_dir),
            "problems_in_flight": in_flight,
        },
    }


def written(out_dir) -> list[dict]:
    return list(iter_tree_dicts(tree_files(out_dir)))


def problem_ids(limit):
    return sorted(p["id"] for p in get_task("gsm8k").load("test", limit=limit))


def fake_generators():
    """Words for every node (no model loads): the local engine's run of the same recipe, for its stats."""
    from tests.fixtures.fake_generator import FakeGenerator

    gen = FakeGenerator(default="a few words", model_id="fake")
    return {"A": gen, "B": gen}


def test_ray_writes_each_tree_once_with_the_local_stats_and_resumes(ray_cluster, tmp_path, capsys):
    out = tmp_path / "ray"
    # An interrupted run (2 of 4 problems, one batch), then the whole set in batches of one problem (the
    # batch size is not part of the run's hash): only the other 2 are searched, by 2 actors.
    first = run_generate(load_recipe(tiny_recipe(out, limit=2)), engine="ray", progress=False)
    assert first["new_trees"] == 2 and first["skipped"] == 0
    summary = run_generate(load_recipe(tiny_recipe(out, limit=4, in_flight=1)), engine="ray", progress=False)
    printed = capsys.readouterr().out
    assert "on 2 actors" in printed and "4 trees (2 new)" in printed
    assert summary["new_trees"] == 2 and summary["skipped"] == 2 and summary["problems"] == 4
    trees = written(out)
    assert sorted(t["problem"]["id"] for t in trees) == problem_ids(4), "each problem once"
    assert {t["config_hash"] for t in trees} == {summary["config_hash"]}
    assert {t["generator"]["models"]["A"] for t in trees} == {"tiny"}
    assert summary["rollouts"] == sum(t["stats"]["rollouts"] for t in trees) > 0
    stats = json.loads(next(out.glob("stats-*.json")).read_text())
    assert stats == summary
    # The local engine over the same recipe: the same run hash, problems and stats keys.
    local = run_generate(
        load_recipe(tiny_recipe(tmp_path / "local")), generators=fake_generators(), progress=False
    )
    assert local["config_hash"] == summary["config_hash"] and sorted(local) == sorted(summary)
    assert sorted(t["problem"]["id"] for t in written(tmp_path / "local")) == problem_ids(4)
    # A rerun finds everything done and starts no actor.
    again = run_generate(load_recipe(tiny_recipe(out, limit=4, in_flight=1)), engine="ray", progress=False)
    assert again["new_trees"] == 0 and again["skipped"] == 4 and len(written(out)) == 4
    assert "actors" not in capsys.readouterr().out


def test_a_dead_actors_problems_go_to_another_actor(ray_cluster, tmp_path, monkeypatch, capsys):
    marker = str(tmp_path / "died")

    class DiesOnce(ray_engine._SearchActor):
        """The first actor started kills its own process (as a crash or the OOM killer would) when it gets
        its batch; it loads no model, the others do."""

        def __init__(self, *args):
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
                self.doomed = True
            except FileExistsError:
                self.doomed = False
                super().__init__(*args)

        def search(self, problems):
            if self.doomed:
                os._exit(1)
            return super().search(problems)

    monkeypatch.setattr(ray_engine, "_SearchActor", DiesOnce)
    out = tmp_path / "trees"
    summary = run_generate(load_recipe(tiny_recipe(out, limit=4)), engine="ray", progress=False)
    assert os.path.exists(marker)
    assert "an actor died" in capsys.readouterr().out
    assert summary["new_trees"] == 4 and summary["problems"] == 4
    assert sorted(t["problem"]["id"] for t in written(out)) == problem_ids(4), "every problem exactly once"


def test_actors_that_keep_dying_stop_the_run_with_a_clear_error(ray_cluster, tmp_path, monkeypatch):
    class AlwaysDies(ray_engine._SearchActor):
        def __init__(self, *args):  # loads nothing
            pass

        def search(self, problems):
            os._exit(1)

    monkeypatch.setattr(ray_engine, "_SearchActor", AlwaysDies)
    with pytest.raises(
        ray_engine.RayEngineError, match=r"3 actors died \(3 of them searching problems .*rerun to resume"
    ):
        run_generate(load_recipe(tiny_recipe(tmp_path / "trees", limit=2)), engine="ray", progress=False)
    assert written(tmp_path / "trees") == []

    class CannotLoad(ray_engine._SearchActor):
        def __init__(self, *args):
            raise OSError("no model at ./missing")

    monkeypatch.setattr(ray_engine, "_SearchActor", CannotLoad)
    with pytest.raises(
        ray_engine.RayEngineError, match=r"could not load its models: OSError: no model at ./missing$"
    ):
        run_generate(load_recipe(tiny_recipe(tmp_path / "trees", limit=2)), engine="ray", progress=False)


def test_generate_command_with_the_ray_engine(ray_cluster, tmp_path, capsys):
    import yaml

    from treecot.cli import main

    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(tiny_recipe(tmp_path / "trees", limit=4)))
    args = ["generate", str(recipe), "--engine", "ray", "--actors", "2", "--no-progress"]
    assert main([*args, "--shard", "1/2"]) == 0
    assert "2 trees (2 new)" in capsys.readouterr().out
    ids = [p["id"] for p in get_task("gsm8k").load("test", limit=4)]
    assert sorted(t["problem"]["id"] for t in written(tmp_path / "trees")) == sorted([ids[1], ids[3]])
    assert main([*args[:-3], "--actors", "0"]) == 2
    assert "--actors 0: need at least one actor" in capsys.readouterr().err


def test_without_ray_the_engine_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    import yaml

    from treecot.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    recipe = tiny_recipe(tmp_path / "trees")
    with pytest.raises(ray_engine.RayEngineError) as e:
        run_generate(load_recipe(recipe), engine="ray", progress=False)
    assert (
        str(e.value)
        == ray_engine.RAY_MISSING
        == 'the ray engine needs Ray (Ray core): pip install "treecot[ray]"'
    )
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe))
    assert main(["generate", str(path), "--engine", "ray", "--no-progress"]) == 2
    assert capsys.readouterr().err == f"treecot generate: error: {ray_engine.RAY_MISSING}\n"
    assert not (tmp_path / "trees").exists(), "nothing is written"
    with pytest.raises(RecipeError, match="pre-built generators cannot be sent to Ray actors"):
        run_generate(load_recipe(recipe), engine="ray", generators=fake_generators(), progress=False)
    with pytest.raises(RecipeError, match="'spark' is not an engine"):
        run_generate(load_recipe(recipe), engine="spark", progress=False)


def test_actor_resources_follow_the_models(monkeypatch):
    def options(models, gpus=0.0):
        d = tiny_recipe("unused")
        d["generate"]["models"] = models
        return ray_engine.default_actor_options(load_recipe(d), gpus)

    vllm = {"model": "m", "backend": "vllm", "tensor_parallel_size": 2}
    assert options({"A": vllm}) == {"num_gpus": 2}, "roles sharing one engine share its GPUs"
    with pytest.raises(ray_engine.RayEngineError, match="2 different models that each need a GPU"):
        options({"A": vllm, "B": {**vllm, "model": "other"}})  # both engines would start on one GPU
    with pytest.raises(ray_engine.RayEngineError, match="one actor holds one GPU model"):
        options({"A": vllm, "B": {"model": "tiny"}}, 8)
    assert options({"A": vllm, "B": {"model": "tiny"}}) == {"num_gpus": 2}, (
        "no GPU in the cluster: tiny on CPU"
    )
    assert options({"A": {"model": "tiny"}}) == {} and options({"A": {"model": "tiny"}}, 8) == {"num_gpus": 1}
    server = {
        "model": "m",
        "backend": "openai",
        "base_url": "http://127.0.0.1:1/v1",
        "api_key_env": "TREECOT_TEST_KEY",
    }
    assert options({"A": server}, 8) == {}
    monkeypatch.setenv("TREECOT_TEST_KEY", "k")
    assert options({"A": server}) == {"runtime_env": {"env_vars": {"TREECOT_TEST_KEY": "k"}}}


@pytest.mark.slow
def test_ray_actors_share_a_real_vllm_server(ray_cluster, vllm_server, tmp_path):
    model = {"model": str(vllm_server.model_dir), "backend": "openai", "base_url": vllm_server.base_url,
             "served_model": vllm_server.model}  # fmt: skip
    out = tmp_path / "trees"
    summary = run_generate(load_recipe(tiny_recipe(out, limit=3, model=model)), engine="ray", progress=False)
    trees = written(out)
    assert summary["new_trees"] == 3 and sorted(t["problem"]["id"] for t in trees) == problem_ids(3)
    assert all(t["generator"]["backend"]["A"] for t in trees) and summary["generated_tokens"] > 0
    assert summary["llm_calls"] == sum(t["stats"]["llm_calls"] for t in trees) > 0
