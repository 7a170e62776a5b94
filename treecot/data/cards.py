"""Figures for dataset cards: length histograms, pushed next to the card (``histograms/*.png``).

The card itself is rendered by `treecot.hub.dataset_card` when `treecot.hub.push_dataset` writes a dataset.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence


def length_histogram_png(
    lengths: Iterable[float],
    *,
    title: str,
    xlabel: str = "tokens",
    bins: int = 30,
    labels: Sequence[str] = (),
) -> bytes:
    """A PNG histogram of lengths (one series, or several when ``lengths`` is a list of lists + ``labels``).

    Used for the card's length histograms (e.g. SFT path tokens, chosen vs rejected tokens).
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    series = list(lengths)
    if labels:
        if len(labels) != len(series):
            raise ValueError(f"length_histogram_png: {len(labels)} labels for {len(series)} series")
        groups = [list(map(float, s)) for s in series]
    else:
        groups = [list(map(float, series))]
    if not any(groups):
        raise ValueError(f"length_histogram_png: no lengths to plot for {title!r}")
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    try:
        for i, values in enumerate(groups):
            ax.hist(
                values, bins=bins, alpha=0.6 if len(groups) > 1 else 0.9, label=labels[i] if labels else None
            )
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
        if labels:
            ax.legend()
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return buffer.getvalue()
