"""The model `treecot eval` evaluates: its file-name slug, the revision of its weights, its training
provenance, its tokenizer, the generation backend that decodes it, and loading it.

Used by `treecot.evaluation.runner` (argument and model resolution before lighteval runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from treecot import backends, models

__all__ = [
    "PROVENANCE_FILE",
    "EvalModel",
    "backend_spec",
    "load_eval_model",
    "model_revision",
    "model_slug",
    "read_provenance",
    "tokenizer_source",
]

PROVENANCE_FILE = "treecot_provenance.json"


def model_slug(model: str) -> str:
    """A file-name-safe name for `model` (the default output folder ``outputs/eval/<slug>/``).

    Args:
        model (`str`):
            A model name, a directory (its last component) or a Hub id (``org/name`` becomes ``org--name``).

    Returns:
        `str`: letters, digits, ``.``, ``_`` and ``-`` only ("model" when nothing is left).
    """
    path = Path(str(model).rstrip("/"))
    base = path.name if (str(model).startswith((".", "/", "~")) or path.exists()) else str(model)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", base).strip("-.")
    return slug or "model"


def _local_weights(model: str) -> bool:
    """Whether `model_revision` can name `model`'s weights without loading them (embedded, tiny, a folder)."""
    return model in models.EMBEDDED or model == models.TINY or Path(str(model)).expanduser().is_dir()


def model_revision(model: str, loaded: Any = None) -> str:
    """What identifies the evaluated weights.

    Embedded models: ``gguf-sha256:<12 hex>`` of their GGUF; ``tiny``: ``tiny-seed0``; Hub ids: the commit
    transformers resolved (``config._commit_hash``); local directories: ``sha256:<16 hex>``, a fingerprint
    of the weight, config and tokenizer files (name, size, and the first and last MiB of each file).

    Args:
        model (`str`):
            An embedded model's name, "tiny", a local model directory or a Hub id.
        loaded (`Any`, *optional*):
            The loaded transformers model of a Hub id (its ``config._commit_hash``).

    Returns:
        `str`: the revision ("unknown" for a Hub id whose commit is not known).
    """
    if model in models.EMBEDDED:
        return f"gguf-sha256:{models.EMBEDDED[model].sha256[:12]}"
    if model == models.TINY:
        return "tiny-seed0"
    path = Path(str(model)).expanduser()
    if path.is_dir():
        h = hashlib.sha256()
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            if f.suffix not in {".safetensors", ".bin", ".json", ".model", ".txt", ".gguf", ".pt"}:
                continue
            size = f.stat().st_size
            h.update(f"{f.relative_to(path).as_posix()}\0{size}\0".encode())
            with open(f, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
        return f"sha256:{h.hexdigest()[:16]}"
    commit = getattr(getattr(loaded, "config", None), "_commit_hash", None)
    return str(commit) if commit else "unknown"


def read_provenance(model: str, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the evaluated model was trained on: `given`, else the model directory's provenance file.

    Args:
        model (`str`):
            The evaluated model; a directory may hold a ``treecot_provenance.json`` (`PROVENANCE_FILE`).
        given (`Mapping[str, Any]` or `None`):
            ``dataset_repo``, ``dataset_revision`` and ``recipe_hash`` given by the caller; a value that is
            not None wins over the file's.

    Returns:
        `dict[str, Any]`: ``dataset_repo``, ``dataset_revision`` and ``recipe_hash`` (None where unknown).

    Raises:
        ValueError: the provenance file is not valid JSON, or `given` holds another field.
    """
    out: dict[str, Any] = {"dataset_repo": None, "dataset_revision": None, "recipe_hash": None}
    path = Path(str(model)).expanduser() / PROVENANCE_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        out.update({k: data.get(k) for k in out if data.get(k) is not None})
    for key, value in (given or {}).items():
        if key not in out:
            raise ValueError(f"unknown provenance field {key!r}; known: {sorted(out)}")
        if value is not None:
            out[key] = value
    return out


def tokenizer_source(model: str) -> str:
    """Where lighteval loads `model`'s tokenizer from.

    Args:
        model (`str`):
            "tiny" (the embedded tokenizer's folder), a local model directory (itself) or a name that
            `treecot.models.resolve_model_path` resolves.

    Returns:
        `str`: a local path or a Hub id.
    """
    if model == models.TINY:
        return str(models.embedded_tokenizer_dir())
    path = Path(str(model)).expanduser()
    return str(path) if path.is_dir() else models.resolve_model_path(model)


def backend_spec(
    model: str, backend: str, settings: Mapping[str, Any] | None, dtype: str | None, batch_size: int
):
    """The `ModelSpec` of the generation backend that decodes an evaluation.

    A bad setting raises a `ValueError` naming it before anything loads.

    Args:
        model (`str`):
            The evaluated model (the spec's ``model``).
        backend (`str`):
            "transformers" (in-process, through lighteval's own transformers model), "openai" (an
            OpenAI-compatible server) or "vllm" (vLLM's offline engine).
        settings (`Mapping[str, Any]` or `None`):
            Other `treecot.recipe.ModelSpec` fields (``base_url``, ``served_model``, …); none for
            "transformers".
        dtype (`str` or `None`):
            The evaluation's dtype: the spec's default ``dtype`` when it is "float32", "bfloat16" or
            "float16" (else "bfloat16").
        batch_size (`int`):
            The spec's default ``max_batch_size``.

    Returns:
        `treecot.recipe.ModelSpec` or `None`: None for the default in-process lighteval model.
    """
    # Imported here: treecot.recipe loads the data, search and tasks packages, which `treecot --help` skips.
    from treecot.recipe import BACKENDS, ModelSpec, RecipeError

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    settings = dict(settings or {})
    if backend == "transformers":
        if settings:
            raise ValueError(
                f"backend settings ({', '.join(sorted(settings))}) need backend 'openai' or 'vllm'; the "
                "default decodes in-process"
            )
        return None
    known = {f.name for f in fields(ModelSpec)} - {"model", "backend"}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"unknown backend setting {unknown[0]!r}; choose from {', '.join(sorted(known))}")
    settings.setdefault("dtype", dtype if dtype in ("float32", "bfloat16", "float16") else "bfloat16")
    settings.setdefault("max_batch_size", batch_size)
    spec = ModelSpec(model=model, backend=backend, **settings)
    try:
        spec.validate("eval")
    except RecipeError as err:
        raise ValueError(str(err)) from None
    return spec


@dataclass
class EvalModel:
    """The model of an evaluation, loaded.

    Args:
        hf_model (`Any`):
            The transformers model decoding in-process; None when a backend decodes.
        tokenizer (`Any`):
            The model's tokenizer (chat template, token counts).
        generator (`Any`):
            The backend's `Generator` when a backend decodes, else None.
        owned (`bool`):
            Whether `generator` was built here, so that `close` closes it.
        revision (`str`):
            What identifies the weights (`model_revision`, or ``served:<name>`` for a server's model).
    """

    hf_model: Any
    tokenizer: Any
    generator: Any
    owned: bool
    revision: str

    def close(self) -> None:
        """Close `generator` (thread pools, HTTP sessions, an engine) when it was built here."""
        close = getattr(self.generator, "close", None)
        if self.owned and callable(close):
            close()


def load_eval_model(
    model: str,
    spec: Any,
    generator: Any,
    loaded: tuple[Any, Any] | None,
    *,
    dtype: str | None,
    device: str,
    seed: int,
) -> EvalModel:
    """Load what decodes an evaluation: the model in-process, or only the tokenizer when a backend decodes.

    Args:
        model (`str`):
            The evaluated model.
        spec (`treecot.recipe.ModelSpec` or `None`):
            The backend's spec (`backend_spec`); None to decode in-process.
        generator (`Generator` or `None`):
            An already built generator for `spec` (else one is built here, and closed by `EvalModel.close`).
        loaded (`tuple[Any, Any]` or `None`):
            An already loaded ``(model, tokenizer)`` to decode in-process with.
        dtype (`str` or `None`):
            Weights dtype of a model loaded here.
        device (`str`):
            Device of a model loaded here.
        seed (`int`):
            Seed of a generator built here.

    Returns:
        `EvalModel`: the model, tokenizer, generator and weights revision.
    """
    if spec is not None:  # a server or vLLM decodes: only the tokenizer is needed here
        tokenizer = models.load_tokenizer(spec.tokenizer or model)
        owned = generator is None  # built here: closed here (thread pools, HTTP sessions, an engine)
        generator = generator or backends.make_generator(spec, seed=seed)
        revision = model_revision(model) if _local_weights(model) else f"served:{spec.served_model or model}"
        return EvalModel(None, tokenizer, generator, owned, revision)
    if loaded is None:
        hf_model, tokenizer = models.load_model(model, dtype=dtype, device=device)
    else:
        hf_model, tokenizer = loaded
    return EvalModel(hf_model, tokenizer, generator, False, model_revision(model, hf_model))
