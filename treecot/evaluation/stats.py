"""Confidence intervals for evaluation rates (accuracy, no-answer rate): what is a difference, what is noise.

Every rate treecot reports is a share of n problems, so its uncertainty is that of a binomial proportion:

    >>> from treecot.evaluation.stats import wilson_interval, difference_interval
    >>> wilson_interval(30, 200)                  # 15% of 200: (0.107, 0.206)
    >>> difference_interval(30, 200, 52, 200)     # the change from 15% to 26%: excludes 0, a real change

- `wilson_interval`: the Wilson score interval of one proportion (well behaved at 0 and 1, unlike the
  normal approximation lighteval's stderr implies).
- `difference_interval`: Newcombe's hybrid score interval (method 10, Newcombe 1998) of the difference of
  two proportions, built from the two Wilson intervals. It treats the two runs as independent samples; two
  models evaluated on the same problems are positively correlated, so for them the interval is
  conservative (wider than a paired interval): a difference it calls real is real.
"""

from __future__ import annotations

import math

__all__ = [
    "Z95",
    "counts",
    "difference_interval",
    "exceeds_noise",
    "format_rate",
    "noise_verdicts",
    "plot_rates",
    "rate_interval",
    "wilson_interval",
]

#: The standard normal quantile of a two-sided 95% interval.
Z95 = 1.959963984540054


def _check(successes: int, n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if isinstance(successes, bool) or not isinstance(successes, int) or not 0 <= successes <= n:
        raise ValueError(f"successes must be an integer in [0, n={n}], got {successes!r}")


def counts(rate: float, n: int) -> int:
    """The number of successes behind a reported `rate` of `n` items (rates are means of 0/1 scores)."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate!r}")
    return int(round(rate * n))


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (default 95%) of the proportion `successes / n`.

    Args:
        successes (`int`):
            The successes, in [0, n].
        n (`int`):
            The items (a positive integer).
        z (`float`, *optional*, defaults to `Z95`):
            The standard normal quantile of the interval.

    Returns:
        `tuple[float, float]`: the lower and upper bounds.
    """
    _check(successes, n)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # exact bounds at the edges (0 successes: lower 0; all: upper 1), free of rounding error
    lower = 0.0 if successes == 0 else max(0.0, centre - half)
    upper = 1.0 if successes == n else min(1.0, centre + half)
    return lower, upper


def difference_interval(k1: int, n1: int, k2: int, n2: int, z: float = Z95) -> tuple[float, float]:
    """Newcombe's hybrid score interval (default 95%) of p2 − p1, with p1 = k1/n1 and p2 = k2/n2.

    Args:
        k1 (`int`):
            The successes of the first run.
        n1 (`int`):
            Its items.
        k2 (`int`):
            The successes of the second run.
        n2 (`int`):
            Its items.
        z (`float`, *optional*, defaults to `Z95`):
            The standard normal quantile of the interval.

    Returns:
        `tuple[float, float]`: the lower and upper bounds.
    """
    p1, p2 = k1 / n1 if n1 else 0.0, k2 / n2 if n2 else 0.0
    l1, u1 = wilson_interval(k1, n1, z)
    l2, u2 = wilson_interval(k2, n2, z)
    d = p2 - p1
    lower = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return max(-1.0, lower), min(1.0, upper)


def exceeds_noise(rate1: float, n1: int, rate2: float, n2: int) -> bool:
    """Whether the change from `rate1` to `rate2` lies outside 95% noise: its `difference_interval`
    excludes 0.

    Args:
        rate1 (`float`):
            The first rate.
        n1 (`int`):
            Its items.
        rate2 (`float`):
            The second rate.
        n2 (`int`):
            Its items.
    """
    lo, hi = difference_interval(counts(rate1, n1), n1, counts(rate2, n2), n2)
    return lo > 0 or hi < 0


# ----------------------------------------------------------------------------------------- tables and plots


def rate_interval(rate: float | None, n: int | None) -> tuple[float, float] | None:
    """The Wilson 95% interval of a reported rate of `n` problems (None when either is missing)."""
    if rate is None or not n:
        return None
    return wilson_interval(counts(float(rate), int(n)), int(n))


def format_rate(rate: float | None, n: int | None) -> str:
    """ "12.5 [8.1, 18.3]": the rate and its 95% interval, in percent."""
    if rate is None:
        return "–"
    ci = rate_interval(rate, n)
    text = f"{100 * float(rate):.1f}"
    return text if ci is None else f"{text} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def noise_verdicts(
    runs: dict[str, dict[str, dict]], reference: str, tasks: list[str], metrics=("accuracy", "no_answer_rate")
) -> list[str]:
    """Plain sentences saying, for every run against `reference` and each task and metric, whether the
    difference exceeds 95% noise (`exceeds_noise`).

    Args:
        runs (`dict[str, dict[str, dict]]`):
            Label -> task -> summary row (rate, `n`).
        reference (`str`):
            The label of the run the others are compared with.
        tasks (`list[str]`):
            The tasks.
        metrics (`tuple[str, ...]`, *optional*, defaults to `("accuracy", "no_answer_rate")`):
            The metrics.
    """
    names = {"accuracy": "accuracy", "no_answer_rate": "no-answer rate"}
    base = runs[reference]
    lines = []
    for label, tasks_rows in runs.items():
        if label == reference:
            continue
        for task in tasks:
            a, b = base.get(task) or {}, tasks_rows.get(task) or {}
            for metric in metrics:
                if a.get(metric) is None or b.get(metric) is None or not a.get("n") or not b.get("n"):
                    continue
                ra, rb, na, nb = float(a[metric]), float(b[metric]), int(a["n"]), int(b["n"])
                lo, hi = difference_interval(counts(ra, na), na, counts(rb, nb), nb)
                real = lo > 0 or hi < 0
                lines.append(
                    f"{reference} → {label}, {task} {names.get(metric, metric)}: {100 * ra:.1f} → {100 * rb:.1f} "
                    f"(difference {100 * (rb - ra):+.1f}, 95% interval [{100 * lo:+.1f}, {100 * hi:+.1f}]): "
                    + ("**exceeds noise**" if real else "within noise")
                )
    return lines


def plot_rates(
    runs: dict[str, dict[str, dict]], tasks: list[str], output, title: str = "", paper: dict | None = None
):
    """Grouped bars with 95% Wilson error bars: accuracy per task above, no-answer rate below, one bar per
    run.

    Args:
        runs (`dict[str, dict[str, dict]]`):
            Label -> task -> summary row.
        tasks (`list[str]`):
            The tasks.
        output (`str` or `os.PathLike`):
            The PNG file to write.
        title (`str`, *optional*, defaults to `""`):
            The plot's title (default "accuracy and no-answer rate").
        paper (`dict`, *optional*):
            Label -> task -> {accuracy, no_answer_rate} figures drawn hatched, without error bars (the paper
            reports none).

    Returns:
        `Path`: the PNG path.
    """
    import textwrap
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    series = [(label, rows, False) for label, rows in runs.items()]
    series += [(label, rows, True) for label, rows in (paper or {}).items()]
    x = np.arange(len(tasks))
    width = 0.8 / max(1, len(series))
    fig, axes = plt.subplots(2, 1, figsize=(max(7, 2.2 * len(tasks) + 4), 7.5), sharex=True)
    for ax, metric, ylabel in zip(axes, ("accuracy", "no_answer_rate"), ("accuracy (%)", "no answer (%)")):
        for i, (label, rows, reported) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * width
            values, low, high = [], [], []
            for task in tasks:
                row = rows.get(task) or {}
                v = row.get(metric)
                values.append(100 * float(v) if v is not None else 0.0)
                ci = None if reported else rate_interval(v, row.get("n"))
                low.append(100 * (float(v) - ci[0]) if ci else 0.0)
                high.append(100 * (ci[1] - float(v)) if ci else 0.0)
            ax.bar(
                x + offset,
                values,
                width,
                label=label,
                hatch="//" if reported else None,
                yerr=None if reported else [low, high],
                capsize=2,
                error_kw={"elinewidth": 0.8},
            )
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 100)
    axes[1].set_xticks(x, list(tasks))
    axes[0].legend(fontsize=7, loc="upper right", ncol=2)
    text = title or "accuracy and no-answer rate"
    axes[0].set_title("\n".join(textwrap.wrap(text + " (error bars: 95% Wilson intervals)", 90)), fontsize=9)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
