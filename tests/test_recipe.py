"""Recipes are validated before any model loads; errors name the field."""

import pytest

from treecot.recipe import Recipe, RecipeError, load_recipe

GOOD = {
    "name": "t",
    "seed": 1,
    "problems": {"task": "gsm8k", "split": "test", "limit": 2},
    "generate": {"models": {"A": {"model": "tiny"}, "B": {"model": "tiny"}}, "search": {"max_rollouts": 4}},
    "build": {"student": "tiny", "sft_length": "all"},
    "distill": {"teacher": {"model": "tiny"}, "samples": 2},
}


def test_good_recipe_round_trip(tmp_path):
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    r = load_recipe(path)
    assert isinstance(r, Recipe) and r.path == str(path)
    assert r.generate.models["A"].model == "tiny" and r.generate.models["A"].backend == "transformers"
    assert r.build.sft_length == "all" and r.distill.samples == 2 and r.problems.limit == 2
    h = r.section_hash("generate")
    assert len(h) == 12 and h == load_recipe(GOOD).section_hash("generate")
    changed = {**GOOD, "generate": {**GOOD["generate"], "search": {"max_rollouts": 5}}}
    assert load_recipe(changed).section_hash("generate") != h
    assert load_recipe(changed).section_hash("build") == load_recipe(GOOD).section_hash("build")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"generat": {}}, r"^generat: unknown field; known fields: build, distill, generate"),
        ({"problems": {"task": "gsm9k"}}, r"problems\.task: unknown task 'gsm9k'"),
        ({"generate": {"search": {"max_dept": 3}}}, r"generate\.search\.max_dept: unknown field"),
        ({"generate": {"search": {"max_rollouts": 0}}}, r"generate\.search: .*max_rollouts"),
        (
            {"generate": {"models": {"A": {"backend": "tgi"}}}},
            r"generate\.models\.A\.backend: 'tgi' is not a backend",
        ),
        ({"generate": {"models": {"A": {"backend": "openai"}}}}, r"generate\.models\.A\.base_url: required"),
        ({"generate": {"models": {"C": {}}}}, r"generate\.models\.C: roles are 'A' and 'B'"),
        (
            {"generate": {"models": {"A": {"max_batch_size": "big"}}}},
            r"generate\.models\.A\.max_batch_size: expected int",
        ),
        ({"build": {"sft_length": "longer"}}, r"build\.sft_length: 'longer' is not one of"),
        ({"build": {"pair_rule": "closest"}}, r"build\.pair_rule: 'closest' is not one of"),
        ({"build": {"dpo_all": "yes"}}, r"build\.dpo_all: expected bool"),
        ({"build": {"clean_chosen": 1}}, r"build\.clean_chosen: expected bool"),
        ({"build": {"pair_rule": 3}}, r"build\.pair_rule: expected str"),
        ({"distill": {"keep": "best"}}, r"distill: keep must be"),
        ({"seed": "zero"}, r"^seed: expected int"),
        ({"problems": [1]}, r"problems: expected a mapping"),
    ],
)
def test_bad_fields_are_named(patch, message):
    with pytest.raises(RecipeError, match=message):
        load_recipe({**GOOD, **patch})


def test_bad_files(tmp_path):
    with pytest.raises(RecipeError, match="does not exist"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [unclosed")
    with pytest.raises(RecipeError, match="is not valid YAML"):
        load_recipe(bad)


def test_build_defaults_are_the_papers_and_options_name_the_run():
    spec = load_recipe(GOOD).build
    assert (spec.clean_chosen, spec.unclean_rejected, spec.pair_rule, spec.dpo_all) == (
        True,
        True,
        "shortest_prefix",
        False,
    )
    base = load_recipe(GOOD).section_hash("build")
    for patch in ({"pair_rule": "latest_branch"}, {"dpo_all": True}, {"clean_chosen": False}):
        other = load_recipe({**GOOD, "build": {**GOOD["build"], **patch}})
        assert other.section_hash("build") != base, patch
