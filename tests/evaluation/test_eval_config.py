"""`EvalConfig` (issue #18): an evaluation's settings read one way, from a YAML file, the flags of `treecot eval`
and `--dotted.field value` overrides; `run_eval` is `evaluate` with keyword arguments."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from treecot.cli import main
from treecot.evaluation import runner
from treecot.evaluation.config import EvalConfig, EvalConfigError, load_eval_config
from treecot.evaluation.decode import MCTSDecodeConfig


@pytest.fixture
def captured(monkeypatch):
    """`treecot eval` up to the evaluation: the config it would run, nothing loaded."""
    seen = {}

    def fake_evaluate(config, **kw):
        seen.update(config=config, **kw)
        raise ValueError("stopped before the evaluation")

    monkeypatch.setattr(runner, "evaluate", fake_evaluate)
    return seen


def test_the_flags_set_the_config_fields_they_name(captured):
    argv = ["eval", "tiny", "--tasks", "gsm8k,arithmetic", "--limit", "2", "--split", "train", "--offset", "5",
            "--samples", "4", "--seed", "3", "--max-new-tokens", "64", "--batch-size", "2", "--temperature", "0.5",
            "--dtype", "bfloat16", "--device", "cpu", "--mcts", "--max-rollouts", "6", "--dataset-repo", "org/d",
            "--recipe-hash", "abc", "--prompt-from", "org/d", "--prompt-revision", "v1", "--backend", "openai",
            "--base-url", "http://127.0.0.1:1/v1", "--concurrency", "2", "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    c = captured["config"]
    assert (c.model, c.tasks, c.limit, c.split, c.offset, c.samples, c.seed) == (
        "tiny", "gsm8k,arithmetic", 2, "train", 5, 4, 3
    )  # fmt: skip
    assert (c.max_new_tokens, c.batch_size, c.temperature, c.top_p, c.dtype, c.device) == (
        64, 2, 0.5, None, "bfloat16", "cpu"
    )  # fmt: skip
    assert c.mcts and c.mcts_config == MCTSDecodeConfig(max_rollouts=6, seed=3)  # seeded by --seed, as before
    assert c.provenance == {"dataset_repo": "org/d", "recipe_hash": "abc"}
    assert (c.prompt_from, c.prompt_revision, c.system_prompt) == ("org/d", "v1", None)
    assert c.backend == "openai" and c.backend_settings == {
        "base_url": "http://127.0.0.1:1/v1",
        "concurrency": 2,
    }
    assert captured["progress"] is False


def test_unset_flags_leave_the_defaults_of_one_place(captured):
    assert main(["eval", "tiny"]) == 2
    assert captured["config"] == EvalConfig(model="tiny") and captured["progress"] is True


def test_a_config_file_then_flags_then_overrides(tmp_path, captured, capsys):
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({"model": "tiny", "tasks": ["arithmetic"], "limit": 8, "seed": 2,
                                    "mcts_config": {"max_depth": 3}}))  # fmt: skip
    assert main(["eval", "--config", str(path), "--limit", "4", "--mcts_config.top_p", "0.5"]) == 2
    c = captured["config"]
    assert (c.model, c.tasks, c.limit) == ("tiny", ["arithmetic"], 4)
    assert c.mcts_config == MCTSDecodeConfig(max_depth=3, top_p=0.5, seed=2)
    assert main(["eval", "other", "--config", str(path)]) == 2  # the positional model wins over the file's
    assert captured["config"].model == "other"

    path.write_text(yaml.safe_dump({"model": "tiny", "limt": 8}))
    assert main(["eval", "--config", str(path)]) == 2
    assert f"{path}: limt: unknown field; known fields:" in capsys.readouterr().err
    assert main(["eval", "tiny", "--mcts_config.max_rollout", "3"]) == 2
    assert "mcts_config.max_rollout: unknown field" in capsys.readouterr().err
    assert main(["eval", "--tasks", "gsm8k"]) == 2
    assert "model: required" in capsys.readouterr().err


def test_a_config_is_checked_field_by_field():
    with pytest.raises(EvalConfigError, match=r"^eval config: samples: expected int, got 'many'"):
        load_eval_config({"model": "tiny", "samples": "many"})
    with pytest.raises(
        EvalConfigError, match=r"^eval config: mcts_config: MCTSDecodeConfig has no field|unknown"
    ):
        load_eval_config({"model": "tiny", "mcts_config": {"rollouts": 3}})
    with pytest.raises(EvalConfigError, match=r"does not exist"):
        load_eval_config("absent.yaml")
    own = load_eval_config({"model": "tiny", "seed": 4, "mcts_config": {"seed": 9}})
    assert own.mcts_config.seed == 9


def test_run_eval_is_evaluate_with_keyword_arguments(monkeypatch):
    seen = {}
    monkeypatch.setattr(runner, "evaluate", lambda config, **kw: seen.update(config=config, **kw))
    runner.run_eval("tiny", ["gsm8k"], limit=3, seed=1, backend_settings={"base_url": "u"}, progress=False)
    assert seen["config"] == dataclasses.replace(
        EvalConfig(model="tiny", tasks=["gsm8k"]), limit=3, seed=1, backend_settings={"base_url": "u"}
    )
    assert seen["progress"] is False and seen["loaded"] is None and seen["generator"] is None
    # Every setting of run_eval is a field of EvalConfig (the config documents them).
    import inspect

    runtime = {"loaded", "generator", "progress"}
    assert set(inspect.signature(runner.run_eval).parameters) - runtime == {
        f.name for f in dataclasses.fields(EvalConfig)
    }
    # ... with the config's defaults: one set of defaults, however an evaluation is started.
    defaults = {f.name: f.default for f in dataclasses.fields(EvalConfig)}
    for name, parameter in inspect.signature(runner.run_eval).parameters.items():
        if name not in runtime and name != "model":
            assert parameter.default == defaults[name], name


def test_the_shipped_eval_configs_load():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[2] / "recipes").glob("*/eval/*.yaml"))
    assert configs
    for path in configs:
        assert load_eval_config(path).model
