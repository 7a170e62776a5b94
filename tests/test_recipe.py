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
    with pytest.raises(RecipeError, match=r"^recipe .*bad\.yaml: not valid YAML"):
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


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"generate": {"problems_in_flight": 10**9}}, r"^generate\.problems_in_flight: 1000000000 is more than the maximum 4,096 \(treecot\.recipe\.MAX_PROBLEMS_IN_FLIGHT\)"),
        ({"generate": {"models": {"A": {"max_batch_size": 10**9}}}}, r"^generate\.models\.A\.max_batch_size: 1000000000 is more than the maximum"),
        ({"generate": {"models": {"A": {"concurrency": 0}}}}, r"^generate\.models\.A\.concurrency: must be >= 1"),
        ({"generate": {"models": {"A": {"concurrency": 10**6}}}}, r"^generate\.models\.A\.concurrency: 1000000 is more than the maximum 1,024"),
        ({"generate": {"search": {"max_rollouts": 10**9}}}, r"^generate\.search: MCTSConfig\.max_rollouts must be <= 10,000 \(treecot\.search\.mcts\.MAX_ROLLOUTS\)"),
        ({"generate": {"search": {"max_depth": 10**6}}}, r"^generate\.search: MCTSConfig\.max_depth must be <= 128"),
        ({"generate": {"search": {"max_node_tokens": 10**12}}}, r"^generate\.search: MCTSConfig\.max_node_tokens must be <= 131,072"),
        ({"generate": {"search": {"stop_at_correct": 10**9}}}, r"^generate\.search: MCTSConfig\.stop_at_correct must be <= 10,000"),
        ({"generate": {"search": {"top_logprobs": 1000}}}, r"^generate\.search: MCTSConfig\.top_logprobs must be <= 20"),
        ({"generate": {"search": {"max_reflections_per_node": 10**9}}}, r"^generate\.search: MCTSConfig\.max_reflections_per_node must be <= 64"),
        ({"problems": {"task": "blocksworld", "limit": 10**12}}, r"^problems\.offset \+ problems\.limit: 1000000000000 is more than the maximum 10,000,000"),
        ({"problems": {"task": "gsm8k", "offset": 10**12}}, r"^problems\.offset: 1000000000000 is more than the maximum"),
        ({"seed": -1}, r"^seed: must be >= 0"),
        ({"seed": 2**63}, r"^seed: 9223372036854775808 is more than the maximum"),
        ({"distill": {"teacher": {"model": "tiny"}, "samples": 10**9}}, r"^distill\.samples: 1000000000 is more than the maximum 1,024"),
        ({"distill": {"teacher": {"model": "tiny"}, "reference_samples": 10**9}}, r"^distill\.reference_samples: .* more than the maximum"),
        ({"distill": {"teacher": {"model": "tiny"}, "max_tokens": 10**9}}, r"^distill\.max_tokens: .* more than the maximum 131,072"),
    ],
)  # fmt: skip
def test_counts_are_capped_and_named(patch, message):
    """Issue #14: counts a real run never needs are refused when the recipe is read, naming the field."""
    with pytest.raises(RecipeError, match=message):
        load_recipe({**GOOD, **patch})


def test_counts_at_the_caps_are_accepted():
    from treecot.recipe import MAX_PROBLEMS_IN_FLIGHT, MAX_SEED
    from treecot.search.mcts import MAX_DEPTH, MAX_ROLLOUTS

    r = load_recipe(
        {
            **GOOD,
            "seed": MAX_SEED,
            "generate": {
                **GOOD["generate"],
                "problems_in_flight": MAX_PROBLEMS_IN_FLIGHT,
                "search": {"max_rollouts": MAX_ROLLOUTS, "max_depth": MAX_DEPTH},
            },
        }
    )
    assert r.generate.search["max_rollouts"] == 10_000 and r.generate.problems_in_flight == 4096


def test_patterns_are_checked_when_the_recipe_is_read(tmp_path):
    """Issue #14: an unknown patterns name or a bad patterns file was a traceback at `generate` time."""
    with pytest.raises(RecipeError, match=r"^generate\.patterns: no patterns named 'maths'; known: .*math"):
        load_recipe({**GOOD, "generate": {**GOOD["generate"], "patterns": "maths"}})
    bad = tmp_path / "wide.yaml"
    bad.write_text("root: {sub_task: 1000000000}\ntransfer: {sub_task: {answer: 1}}\n")
    with pytest.raises(
        RecipeError,
        match=r"^generate\.patterns: root\.sub_task: sample count 1000000000 is more than the maximum 64 "
        r"\(treecot\.search\.patterns\.MAX_CHILD_SAMPLES\) in .*wide\.yaml",
    ):
        load_recipe({**GOOD, "generate": {**GOOD["generate"], "patterns": str(bad)}})
    missing = tmp_path / "absent.yaml"
    with pytest.raises(
        RecipeError, match=r"^generate\.patterns: patterns file '.*absent\.yaml' does not exist"
    ):
        load_recipe({**GOOD, "generate": {**GOOD["generate"], "patterns": str(missing)}})
    # From a recipe file, the message starts with the recipe's path.
    import yaml

    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({**GOOD, "generate": {**GOOD["generate"], "patterns": str(bad)}}))
    with pytest.raises(RecipeError, match=r"^recipe .*r\.yaml: generate\.patterns: root\.sub_task"):
        load_recipe(path)
    for name in ("x" * 5000, "x" * 5000 + ".yaml"):  # longer than the file system allows: no OSError
        with pytest.raises(
            RecipeError, match=r"^generate\.patterns: patterns 'x+\.\.\.x+(\.yaml)?': not a usable"
        ):
            load_recipe({**GOOD, "generate": {**GOOD["generate"], "patterns": name}})
    good = load_recipe({**GOOD, "generate": {**GOOD["generate"], "patterns": "math"}})
    assert good.generate.load_patterns().name == "math"


def test_binary_and_oversized_recipes_name_the_file(tmp_path):
    binary = tmp_path / "model.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(
        RecipeError, match=r"^recipe .*model\.bin: not UTF-8 text \(byte 0x80 at offset 128\)"
    ):
        load_recipe(binary)
    nul = tmp_path / "nul.yaml"
    nul.write_bytes(b"name: a\x00b\n")
    with pytest.raises(RecipeError, match=r"^recipe .*nul\.yaml: holds a NUL byte at offset 7"):
        load_recipe(nul)
    with pytest.raises(
        RecipeError, match=r"^recipe file '.*\.\.\.y+': not a usable path \(File name too long\)"
    ):
        load_recipe(tmp_path / ("y" * 5000))
    big = tmp_path / "big.yaml"
    big.write_text("name: " + "x" * (1 << 20) + "\n")
    with pytest.raises(RecipeError, match=r"^recipe .*big\.yaml: larger than 1,048,576 bytes"):
        load_recipe(big)


def test_messages_quote_huge_values_briefly():
    huge = "y" * 500_000
    for patch in (
        {"generate": {"models": {"A": {"backend": huge}}}},
        {"problems": {"task": huge}},
        {"seed": huge},
        {huge: 1},
        {"generate": {"search": {huge: 1}}},
        {"generate": {"search": {"c": [huge] * 50}}},
        {"build": {"sft_length": huge}},
    ):
        with pytest.raises(RecipeError) as e:
            load_recipe({**GOOD, **patch})
        assert len(str(e.value)) < 500, str(e.value)[:200]
