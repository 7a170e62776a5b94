"""Secrets: redact known secret values and Hugging Face tokens from whatever treecot writes.

:func:`redact` is applied to every card, push marker and logged Hub message; :func:`scrub_dataset` redacts
the secret values found in a dataset before it is uploaded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from datasets import Dataset

logger = logging.getLogger(__name__)

REDACTED = "<redacted>"
#: Keys whose string values are always redacted, whatever they hold.
_SECRET_KEY = re.compile(
    r"(^|[_\-.])(token|secret|password|passwd|api[_\-]?key|authorization|credentials?)$", re.I
)
#: Hugging Face user access tokens.
_HF_TOKEN_PATTERN = re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")
#: Environment variables whose values are secrets.
_SECRET_ENV_VARS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN", "OPENAI_API_KEY", "TREECOT_API_KEY")


def known_secrets(extra: Iterable[str | None] = ()) -> set[str]:
    """Secret values in scope: ``extra`` plus the tokens in the environment and the stored HF login."""
    values = {v for v in extra if v}
    values.update(os.environ[name] for name in _SECRET_ENV_VARS if os.environ.get(name))
    try:
        from huggingface_hub import get_token

        stored = get_token()
    except Exception:  # noqa: BLE001 - a broken token store must not break redaction
        stored = None
    if stored:
        values.add(stored)
    return {v for v in values if isinstance(v, str) and len(v) >= 8}


def redact(obj: Any, secrets: Iterable[str | None] | None = None) -> Any:
    """A copy of ``obj`` (dicts, lists, tuples, strings, scalars) with secrets replaced by ``<redacted>``.

    Redacted: the string value of any key named like a secret (``token``, ``hf_token``, ``api_key``,
    ``password``, ``authorization``, …), every occurrence of a known secret value (``secrets`` plus
    :func:`known_secrets`: ``HF_TOKEN`` and friends, the stored Hugging Face login) and anything
    shaped like a Hugging Face token (``hf_…``). Use it whenever a config, card, tree or log message
    is written.

    Args:
        obj (`Any`):
            The value to redact (dicts, lists, tuples, strings, scalars).
        secrets (`Iterable[str | None]`, *optional*):
            Known secret values to redact, in addition to :func:`known_secrets`.
    """
    values = sorted(known_secrets(secrets or ()), key=len, reverse=True)

    def scrub_text(text: str) -> str:
        for value in values:
            if value in text:
                text = text.replace(value, REDACTED)
        return _HF_TOKEN_PATTERN.sub(REDACTED, text)

    def walk(value: Any) -> Any:
        if isinstance(value, str):
            return scrub_text(value)
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if isinstance(key, str) and _SECRET_KEY.search(key) and isinstance(item, str) and item:
                    out[key] = REDACTED
                else:
                    out[key] = walk(item)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, tuple):
            return tuple(walk(v) for v in value)
        if isinstance(value, (set, frozenset)):
            return type(value)(walk(v) for v in value)
        return value

    return walk(obj)


def scrub_dataset(ds: Dataset, secrets: set[str], where: str) -> Dataset:
    """Redact secret values found anywhere in ``ds`` (scanned column-wise in Arrow first: cheap).

    Args:
        ds (`Dataset`):
            The dataset to upload.
        secrets (`set[str]`):
            The values to redact (e.g. :func:`known_secrets`).
        where (`str`):
            Names ``ds`` in the warning logged when a secret is found (e.g. ``"sft/train"``).

    Returns:
        `Dataset`: ``ds`` itself when it holds none of ``secrets``, else a redacted copy.
    """
    if not secrets or not any(_arrow_contains(column, secrets) for column in ds.data.columns):
        return ds
    logger.warning("%s: a secret value (token) was found in the data; redacting it before upload", where)
    return ds.map(lambda batch: redact(batch, secrets), batched=True, desc=f"redacting {where}")


def _arrow_contains(array: Any, secrets: set[str]) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(array, pa.ChunkedArray):
        return any(_arrow_contains(chunk, secrets) for chunk in array.chunks)
    kind = array.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return any(pc.any(pc.match_substring(array, s)).as_py() for s in secrets)
    if pa.types.is_struct(kind):
        return any(_arrow_contains(array.field(i), secrets) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _arrow_contains(array.flatten(), secrets)
    if pa.types.is_map(kind):
        return _arrow_contains(array.keys, secrets) or _arrow_contains(array.items, secrets)
    return False
