"""One config idiom (`treecot.configs`): dataclasses filled from YAML by one checked loader, every field
settable from the command line as `--dotted.field value`, for recipes, the demo and the ablation."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import yaml

from treecot.cli import main
from treecot.configs import from_dict, merge, parse_overrides
from treecot.recipe import RecipeError, load_recipe


@dataclass
class Inner:
    rate: float = 0.1
    names: list[str] = field(default_factory=list)


@dataclass
class Outer:
    needed: str
    inner: Inner = field(default_factory=Inner)
    slices: list[dict] = field(default_factory=list)
    path: str | None = None


def test_from_dict_checks_every_key_and_type_and_names_it():
    got = from_dict(Outer, {"needed": "x", "inner": {"rate": 1, "names": ["a"]}})
    assert got == Outer("x", Inner(1.0, ["a"])) and isinstance(got.inner.rate, float)
    with pytest.raises(ValueError, match=r"^inner\.rat: unknown field; known fields: names, rate$"):
        from_dict(Outer, {"needed": "x", "inner": {"rat": 1}})
    with pytest.raises(ValueError, match=r"^inner\.names\[1\]: expected str, got 2$"):
        from_dict(Outer, {"needed": "x", "inner": {"names": ["a", 2]}})
    with pytest.raises(ValueError, match=r"^top level: missing field 'needed'$"):
        from_dict(Outer, {})
    with pytest.raises(ValueError, match=r"^path: unknown field"):
        from_dict(Outer, {"needed": "x", "path": "p"})  # set by the reader, never by the data
    with pytest.raises(RecipeError, match="expected a mapping"):
        from_dict(Outer, ["x"], error=RecipeError)


def test_overrides_read_as_yaml_and_merge_by_path():
    over = parse_overrides(
        ["--generate.search.max_rollouts", "8", "--build.dpo-all=true", "--eval.tasks", "[gsm8k, math]",
         "--generate.0.problems.limit", "4", "--name", "run 2"]
    )  # fmt: skip
    assert over == {
        "generate": {"search": {"max_rollouts": 8}, "0": {"problems": {"limit": 4}}},
        "build": {"dpo_all": True},
        "eval": {"tasks": ["gsm8k", "math"]},
        "name": "run 2",
    }
    data = {"generate": [{"problems": {"task": "a", "limit": 1}}], "eval": {"tasks": ["x"], "limit": 3}}
    merged = merge(data, {"generate": {"0": {"problems": {"limit": 4}}}, "eval": {"tasks": ["y"]}})
    assert merged == {
        "generate": [{"problems": {"task": "a", "limit": 4}}],
        "eval": {"tasks": ["y"], "limit": 3},
    }
    assert data["generate"][0]["problems"]["limit"] == 1, "the file's data is not changed"
    with pytest.raises(ValueError, match=r"generate\.3: not an index of the list at generate \(1 items\)"):
        merge(data, {"generate": {"3": {"name": "x"}}})
    for bad, message in (
        (["limit", "3"], "expected an override --field value"),
        (["--eval.limit"], "--eval.limit: needs a value"),
        (["--eval..limit", "3"], "not a field path"),
        (["--a", "1", "--a.b", "2"], "a is given both as a value and as a section"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_overrides(bad)


def test_recipe_overrides_are_checked_like_the_file(tmp_path):
    from tests.pipeline.test_generate import recipe_dict

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=5)))
    recipe = load_recipe(path, {"generate": {"search": {"max_rollouts": 3}}, "problems": {"limit": 2}})
    assert recipe.generate.search.max_rollouts == 3 and recipe.problems.limit == 2
    with pytest.raises(RecipeError, match=rf"^recipe {path}: generate\.search\.max_dept: unknown field"):
        load_recipe(path, {"generate": {"search": {"max_dept": 3}}})
    with pytest.raises(RecipeError, match=r"problems\.limit: expected int, got 'many'"):
        load_recipe(path, {"problems": {"limit": "many"}})


def test_cli_sets_any_recipe_field_and_names_a_wrong_one(tmp_path, monkeypatch, capsys):
    from tests.pipeline.test_generate import recipe_dict
    from treecot.pipeline import generate as runner

    seen = {}
    monkeypatch.setattr(runner, "run_generate", lambda recipe, shard, **kw: seen.update(recipe=recipe))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=5)))
    argv = [
        "generate",
        str(path),
        "--no-progress",
        "--generate.search.max_rollouts",
        "3",
        "--problems.offset=2",
    ]
    assert main(argv) == 0
    assert seen["recipe"].generate.search.max_rollouts == 3 and seen["recipe"].problems.offset == 2
    assert main(["generate", str(path), "--generate.search.max_dept", "3"]) == 2
    assert "generate.search.max_dept: unknown field; known fields:" in capsys.readouterr().err
    # a command without a config still refuses what it does not know
    with pytest.raises(SystemExit):
        main(["models", "--generate.search.max_rollouts", "3"])
    assert "unrecognized arguments: --generate.search.max_rollouts 3" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["demo", "ablate"])
def test_cli_overrides_reach_the_demo_and_the_ablation(command, tmp_path, monkeypatch, capsys):
    import treecot.ablate
    import treecot.demo

    module, runner = (treecot.demo, "run_demo") if command == "demo" else (treecot.ablate, "run_ablation")
    seen = {}
    monkeypatch.setattr(module, runner, lambda config, **kw: seen.update(config=config, **kw))
    argv = [command] + (["--config", "c.yaml"] if command == "demo" else ["c.yaml"])
    assert main([*argv, "--eval.limit", "4", "--generate.0.problems.limit", "8"]) == 0
    assert seen["config"] == "c.yaml"
    assert seen["overrides"] == {"eval": {"limit": 4}, "generate": {"0": {"problems": {"limit": 8}}}}


def test_demo_config_takes_nested_overrides(tmp_path):
    from tests.test_demo import short_config
    from treecot.demo import DemoError, load_demo_config

    good = short_config(tmp_path / "out")
    cfg = load_demo_config(good, eval={"limit": 3}, generate={"0": {"problems": {"limit": 2}}})
    assert cfg.eval.limit == 3 and cfg.generate[0]["problems"]["limit"] == 2
    assert cfg.eval.tasks == good["eval"]["tasks"], "fields not overridden keep the file's values"
    with pytest.raises(DemoError, match=r"demo config: eval\.limit: expected int, got 'all'"):
        load_demo_config(good, eval={"limit": "all"})


def test_an_override_may_stand_before_the_positional_and_never_takes_its_place(tmp_path, monkeypatch, capsys):
    from tests.pipeline.test_generate import recipe_dict
    from treecot.pipeline import generate as runner

    seen = {}
    monkeypatch.setattr(runner, "run_generate", lambda recipe, shard, **kw: seen.update(recipe=recipe))
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=5)))
    assert main(["generate", "--generate.search.max_rollouts", "3", str(path), "--no-progress"]) == 0
    assert seen["recipe"].path == str(path) and seen["recipe"].generate.search.max_rollouts == 3
    # an abbreviation of the command's own option is not taken for it: it is a (wrong) config field
    assert main(["generate", str(path), "--no", "3"]) == 2
    assert "no: unknown field; known fields:" in capsys.readouterr().err


def test_a_field_given_as_a_section_and_as_a_value_is_refused_in_either_order():
    with pytest.raises(ValueError, match="a is given both as a value and as a section"):
        parse_overrides(["--a", "1", "--a.b", "2"])
    with pytest.raises(ValueError, match="a is given both as a section and as a value"):
        parse_overrides(["--a.b", "1", "--a", "2"])


def test_a_null_override_reaches_the_demo_config(tmp_path):
    from tests.test_demo import short_config
    from treecot.demo import DemoError, load_demo_config

    with pytest.raises(DemoError, match=r"demo config: name: expected str, got None"):
        load_demo_config(short_config(tmp_path / "out"), name=None)


@dataclass
class _Settings:
    a: int = 1
    b: list = field(default_factory=list)
    c: str = "x"

    def __post_init__(self):
        if self.a < 0:
            raise ValueError(f"a must be >= 0, got {self.a}")


@dataclass
class _Outer:
    sub: _Settings = field(default_factory=_Settings)


def test_fields_set_are_those_the_data_gave_or_code_changed():
    from treecot.configs import fields_set

    s = from_dict(_Settings, {"a": 1})
    assert fields_set(s) == {"a"}  # given, though at its default
    s.c = "y"
    assert fields_set(s) == {"a", "c"}
    assert fields_set(_Settings()) == set() and fields_set(_Settings(b=[1])) == {"b"}


def test_a_class_check_names_where_it_failed():
    with pytest.raises(RecipeError, match=r"^sub: a must be >= 0, got -1$"):
        from_dict(_Outer, {"sub": {"a": -1}}, error=RecipeError)
