"""Hub repository ids (``namespace/name``): the one check every stage uses."""

from __future__ import annotations

import os
from typing import Any


def is_repo_id(value: Any, *, local_first: bool = True) -> bool:
    """Whether ``value`` is a Hub repository id ``namespace/name``.

    The name rules are `huggingface_hub.utils.validate_repo_id`'s (letters, digits, ``-``, ``_``, ``.``; at most
    96 characters a part; no ``--`` or ``..``; not starting or ending with ``-`` or ``.``; no ``.git`` ending),
    and, as treecot always required, the namespace is given and both parts start with a letter or digit:
    ``"gpt2"`` and ``"_org/name"`` are not treecot repository ids. (`treecot.models` asks another question:
    whether a model name is to be fetched rather than read locally, which a bare ``"gpt2"`` is.)

    Args:
        value (`Any`):
            The string to check (anything else is not a repository id).
        local_first (`bool`, *optional*, defaults to `True`):
            A string that names an existing local path (a folder ``me/data`` in the working directory)
            is that path, not a repository id. False checks the form only (what a push or a load of ``value``
            needs).

    Returns:
        `bool`: True for a repository id.
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(value, str) or value.count("/") != 1:
        return False
    if not all(part[:1].isascii() and part[:1].isalnum() for part in value.split("/")):
        return False
    try:
        validate_repo_id(value)
    except HFValidationError:
        return False
    return not (local_first and os.path.exists(value))


def check_repo_id(repo_id: Any) -> None:
    """Raise `ValueError` unless ``repo_id`` has the form of a Hub repository id (see `is_repo_id`).

    Args:
        repo_id (`Any`):
            The id to check; an existing local path of that name does not matter here.
    """
    if not is_repo_id(repo_id, local_first=False):
        raise ValueError(f"repo_id must look like 'namespace/name', got {repo_id!r}")
