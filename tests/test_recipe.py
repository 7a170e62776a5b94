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
    assert r.generate.search.max_rollouts == 10_000 and r.generate.problems_in_flight == 4096


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


# --------------------------------------------------------------------------- typed stage configs (issue #18)


def test_the_search_section_is_a_typed_mcts_config_checked_field_by_field():
    import dataclasses

    from treecot.search.mcts import MCTSConfig

    r = load_recipe({**GOOD, "generate": {**GOOD["generate"], "search": {"max_rollouts": 4, "c": 2}}})
    assert isinstance(r.generate.search, MCTSConfig)
    assert r.generate.search.max_rollouts == 4 and r.generate.search.max_depth == MCTSConfig().max_depth
    for bad, message in [
        ({"max_depth": "deep"}, r"^generate\.search\.max_depth: expected int, got 'deep'"),
        ({"expand_truncated": "yes"}, r"^generate\.search\.expand_truncated: expected bool, got 'yes'"),
        ({"top_p": 0}, r"^generate\.search: MCTSConfig\.top_p must be in \(0, 1\], got 0"),
    ]:
        with pytest.raises(RecipeError, match=message):
            load_recipe({**GOOD, "generate": {**GOOD["generate"], "search": bad}})
    # A search changed in code after loading is checked as one read from a file, and names the recipe.
    r.generate.search.max_rollouts = 0
    with pytest.raises(RecipeError, match=r"^generate\.search: MCTSConfig\.max_rollouts must be > 0"):
        r.validate()
    r.generate.search = dataclasses.replace(MCTSConfig(), max_rollouts=7)
    assert r.to_dict()["generate"]["search"] == {"max_rollouts": 7}
    r.generate.search = {"max_rollouts": 7, "expand_truncated": False}  # plain data, as the file's
    assert r.to_dict()["generate"]["search"] == {
        "max_rollouts": 7,
        "expand_truncated": False,
    }  # before validate
    assert r.validate().generate.search == MCTSConfig(max_rollouts=7)
    assert r.to_dict()["generate"]["search"] == {"max_rollouts": 7, "expand_truncated": False}
    r.generate.search = 7
    with pytest.raises(RecipeError, match=r"^generate\.search: expected the search settings .*got int"):
        r.validate()


def test_the_search_names_the_recipe_by_the_settings_it_sets_as_before():
    """`search` was a plain mapping: its hash covered the keys a recipe wrote. Typed, it still does, so the
    hashes that name existing runs stay (see also tests/test_gpu_settings.py's pinned hashes)."""
    import hashlib
    import json

    spelled = {
        **GOOD,
        "generate": {**GOOD["generate"], "search": {"max_rollouts": 4, "expand_truncated": False}},
    }
    r = load_recipe(spelled)
    assert r.to_dict()["generate"]["search"] == {"max_rollouts": 4, "expand_truncated": False}
    old = load_recipe(GOOD).to_dict()  # the section as the mapping-typed recipe wrote it
    old["generate"]["search"] = spelled["generate"]["search"]
    payload = {k: old[k] for k in ("seed", "problems", "generate")}
    expected = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert r.section_hash("generate") == expected
    assert load_recipe(GOOD).section_hash("generate") != expected  # spelling a default out is another run


def test_the_recipe_seed_seeds_the_search_unless_the_search_sets_its_own():
    r = load_recipe({**GOOD, "seed": 5})
    assert r.generate.search_config(r.seed).seed == 5
    own = load_recipe({**GOOD, "seed": 5, "generate": {**GOOD["generate"], "search": {"seed": 0}}})
    assert own.generate.search_config(own.seed).seed == 0  # set, even to the default: it wins, as before


def test_distillation_settings_are_declared_once():
    import dataclasses

    from treecot.data.distill import DistillConfig, DistillSampling
    from treecot.recipe import DistillSpec

    shared = [f.name for f in dataclasses.fields(DistillSampling)]
    assert issubclass(DistillSpec, DistillSampling) and issubclass(DistillConfig, DistillSampling)
    r = load_recipe(
        {**GOOD, "distill": {"teacher": {"model": "tiny"}, "samples": 3, "pass_rate_range": [0.1, 0.9]}}
    )
    cfg = r.distill.distill_config(seed=r.seed)
    assert {n: getattr(cfg, n) for n in shared} == {
        **{n: getattr(r.distill, n) for n in shared},
        "pass_rate_range": (0.1, 0.9),
    }
    assert cfg.seed == 1
    with pytest.raises(RecipeError, match=r"^distill: pass_rate_range must satisfy 0 <= lo <= hi <= 1"):
        load_recipe({**GOOD, "distill": {"teacher": {"model": "tiny"}, "pass_rate_range": [0.9, 0.1]}})


def test_search_numbers_written_as_integers_keep_the_hashes_of_their_runs():
    """A recipe that writes `temperature: 1` named its tree files and sections with the integer 1 when `search`
    was a plain mapping; typed, it still does (hashes computed with treecot at commit 16bbe0f)."""
    from treecot.search.mcts import config_hash
    from treecot.search.patterns import load_patterns

    r = load_recipe({"problems": {"task": "gsm8k"}, "generate": {"search": {"temperature": 1, "top_p": 1, "c": 2,
                                                                           "max_rollouts": 4}}})  # fmt: skip
    assert r.to_dict()["generate"]["search"] == {"c": 2, "temperature": 1, "top_p": 1, "max_rollouts": 4}
    assert isinstance(r.generate.search.temperature, int)
    assert r.section_hash("generate") == "e110fa969b05"
    assert config_hash(r.generate.search_config(0), load_patterns("math"), {"x": 1}) == "e8316952c9e030a7"
    with pytest.raises(RecipeError, match=r"^generate\.search\.temperature: expected float, got True"):
        load_recipe({"problems": {"task": "gsm8k"}, "generate": {"search": {"temperature": True}}})
