"""What dataset cards (`treecot.hub.dataset_card`) and model cards (`treecot.trainers.cards`) share.

Both are Jinja templates under ``hub_cards/`` (found by :func:`find_template`), rendered by
:func:`render_card` as `huggingface_hub`'s ``RepoCard.from_template`` does (the card's metadata as
``DatasetCardData`` / ``ModelCardData``, the text parsed as a ``DatasetCard`` / ``ModelCard``), but in a
strict Jinja environment. A template receives its fields as variables, plus ``metadata_yaml`` (the YAML
front matter, in the card's own key order) and ``pyrepr`` (``pyrepr(value)`` or ``value | pyrepr``: a Python
string literal of ``value``, for code snippets). Table cells go through :func:`format_value`
(built by :func:`card_rows`), and versions through :func:`package_version`.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huggingface_hub import RepoCard


def template_dirs() -> list[Path]:
    """Where card templates are looked up, in order.

    1. ``$TREECOT_HUB_CARDS`` (a folder), 2. ``treecot/resources/hub_cards`` (package data in a wheel),
    3. ``hub_cards/`` at the root of a source checkout.

    Returns:
        `list[Path]`: The folders, first match wins.
    """
    package_dir = Path(__file__).resolve().parents[1]
    candidates = [package_dir / "resources" / "hub_cards", package_dir.parent / "hub_cards"]
    if os.environ.get("TREECOT_HUB_CARDS"):
        candidates.insert(0, Path(os.environ["TREECOT_HUB_CARDS"]))
    return candidates


def find_template(name: str) -> Path:
    """The path of card template ``name``.

    Args:
        name (`str`):
            The template's file name, e.g. ``"dataset_card.md"`` or ``"model_card.md"``.

    Returns:
        `Path`: Its path in the first of :func:`template_dirs` that holds it; `FileNotFoundError` names every
        place searched.
    """
    for folder in template_dirs():
        if (folder / name).is_file():
            return folder / name
    searched = ", ".join(str(folder) for folder in template_dirs())
    raise FileNotFoundError(f"card template {name!r} not found; searched: {searched} (set TREECOT_HUB_CARDS)")


def format_value(value: Any, *, metric: bool = False) -> str:
    """A card's table cell for ``value``.

    Args:
        value (`Any`):
            A count, measure or setting: integers get thousands separators, lists and mappings are joined
            (``"a, b"``, ``"k: v"``; ``"none"`` when empty), anything else prints as `str` does.
        metric (`bool`, *optional*, defaults to `False`):
            How floats print. False (dataset cards' counts and costs): a whole float as the integer it is
            (``1,319``), one decimal from 100 on, else 3 significant digits. True (model cards' settings and
            metrics): 4 significant digits, in scientific notation with 3 below 1e-3 and from 1e6 on.

    Returns:
        `str`: The cell's text.
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if metric:
            if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
                return f"{value:.3g}"
            return f"{value:.4g}"
        if value.is_integer():
            return f"{int(value):,}"  # a count summed as floats (1319.0): print it as the integer it is
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.3g}"
    if isinstance(value, list | tuple):
        return ", ".join(format_value(v, metric=metric) for v in value) or "none"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {format_value(v, metric=metric)}" for k, v in value.items()) or "none"
    return str(value)


def card_rows(
    values: Mapping[str, Any], labels: Mapping[str, str], *, metric: bool = False, spaced_keys: bool = False
) -> list[dict[str, str]]:
    """The rows (``{"label", "value"}``) of a card's table: labelled keys first, in ``labels``' order.

    Args:
        values (`Mapping[str, Any]`):
            ``{key: value}`` to show.
        labels (`Mapping[str, str]`):
            ``{key: label}`` for the keys a card knows.
        metric (`bool`, *optional*, defaults to `False`):
            Passed to :func:`format_value`.
        spaced_keys (`bool`, *optional*, defaults to `False`):
            An unlabelled key shows with ``_`` as spaces (dataset cards); else as it is (model cards).

    Returns:
        `list[dict[str, str]]`: One row per key of ``values``.
    """
    ordered = [k for k in labels if k in values] + [k for k in values if k not in labels]
    return [
        {
            "label": labels.get(k, k.replace("_", " ") if spaced_keys else k),
            "value": format_value(values[k], metric=metric),
        }
        for k in ordered
    ]


def package_version(dist: str, given: Any = None) -> str:
    """The version a card records for ``dist``.

    Args:
        dist (`str`):
            A distribution name: ``"treecot"`` (the running package's ``__version__``), ``"trl"``, ``"transformers"``.
        given (`Any`, *optional*):
            A version recorded elsewhere (e.g. ``info["treecot_version"]``); it wins when set.

    Returns:
        `str`: The version, or ``"unknown"`` when ``dist`` is not installed.
    """
    if given:
        return str(given)
    if dist == "treecot":
        import treecot

        return treecot.__version__
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _pyrepr(value: Any) -> str:
    return repr(str(value))


def render_card(
    card_class: type[RepoCard], metadata: Mapping[str, Any], template: str | os.PathLike, **fields: Any
) -> str:
    """Render a card's README.md text as ``card_class`` (`huggingface_hub`) holds it.

    The same steps as ``card_class.from_template``: the metadata becomes the card's ``DatasetCardData`` /
    ``ModelCardData``, the template is rendered with its fields, and the text is parsed as ``card_class``
    (which validates the front matter). Unlike ``from_template``'s plain ``jinja2.Template``, the Jinja
    environment is strict: a variable the template names but the card does not give is an error (a misspelt
    name must not publish an empty card section), and ``pyrepr`` is both a filter and a function.

    Args:
        card_class (`type[RepoCard]`):
            `huggingface_hub.DatasetCard` or `huggingface_hub.ModelCard`.
        metadata (`Mapping[str, Any]`):
            The YAML front matter; it becomes the card's ``DatasetCardData`` / ``ModelCardData``.
        template (`str | os.PathLike`):
            Path of the Jinja template; its text is kept as written, final line break included.
        fields (`Any`):
            The template's variables (``metadata_yaml``, ``card_data`` and ``pyrepr`` are added, and
            the metadata's keys, as ``from_template`` adds them).

    Returns:
        `str`: The card's text: the front matter as `huggingface_hub` writes it, then the rendered body.

    Raises:
        `jinja2.UndefinedError`: The template names a variable the card does not give.
    """
    import jinja2
    from huggingface_hub.utils import yaml_dump

    card_data = card_class.card_data_class(**metadata)
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["pyrepr"] = env.globals["pyrepr"] = _pyrepr
    variables = {**card_data.to_dict(), **fields, "metadata_yaml": yaml_dump(dict(metadata), sort_keys=False)}
    text = env.from_string(Path(template).read_text(encoding="utf-8")).render(
        card_data=card_data.to_yaml(), **variables
    )
    return str(card_class(text))
