"""Intervals for evaluation rates (`treecot.evaluation.stats`)."""

import math

import pytest

from treecot.evaluation.stats import (
    counts,
    difference_interval,
    exceeds_noise,
    format_rate,
    noise_verdicts,
    plot_rates,
    wilson_interval,
)


def test_wilson_interval_matches_the_closed_form():
    lo, hi = wilson_interval(30, 200)
    assert (round(lo, 4), round(hi, 4)) == (0.1071, 0.2061)
    assert wilson_interval(0, 50)[0] == 0.0 and 0.0 < wilson_interval(0, 50)[1] < 0.08
    assert wilson_interval(50, 50)[1] == 1.0
    for k, n in ((1, 3), (7, 24), (150, 300)):
        lo, hi = wilson_interval(k, n)
        assert lo < k / n < hi


def test_difference_interval_and_noise():
    lo, hi = difference_interval(30, 200, 52, 200)
    assert 0 < lo < 0.11 < hi  # 15% -> 26% of 200 is a real change
    assert exceeds_noise(0.15, 200, 0.26, 200) and exceeds_noise(0.26, 200, 0.15, 200)
    assert not exceeds_noise(0.15, 200, 0.20, 200)
    # the recipe's promise: at 300 problems a 10-point change in the 10-40% range lies outside the interval
    for p in (0.10, 0.20, 0.30):
        assert exceeds_noise(p, 300, p + 0.10, 300), p
    lo, hi = difference_interval(10, 100, 10, 100)
    assert math.isclose(lo, -hi, abs_tol=1e-12)


@pytest.mark.parametrize("args", [(-1, 10), (11, 10), (1, 0), (True, 2)])
def test_bad_counts_are_named(args):
    with pytest.raises(ValueError):
        wilson_interval(*args)


def test_counts_and_format():
    assert counts(0.125, 24) == 3
    with pytest.raises(ValueError):
        counts(1.5, 10)
    assert format_rate(0.15, 200) == "15.0 [10.7, 20.6]"
    assert format_rate(None, 10) == "–" and format_rate(0.5, None) == "50.0"


def test_noise_verdicts_and_plot(tmp_path):
    runs = {
        "base": {"arithmetic": {"accuracy": 0.10, "no_answer_rate": 0.30, "n": 300}},
        "sft": {"arithmetic": {"accuracy": 0.30, "no_answer_rate": 0.28, "n": 300}},
    }
    lines = noise_verdicts(runs, "base", ["arithmetic"])
    assert len(lines) == 2
    assert (
        lines[0].startswith("base → sft, arithmetic accuracy: 10.0 → 30.0")
        and "**exceeds noise**" in lines[0]
    )
    assert "no-answer rate" in lines[1] and lines[1].endswith("within noise")
    png = plot_rates(
        runs, ["arithmetic"], tmp_path / "p.png", paper={"paper": {"arithmetic": {"accuracy": 0.5}}}
    )
    assert png.read_bytes()[:4] == b"\x89PNG"
