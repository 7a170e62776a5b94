"""`treecot generate RECIPE.yaml`: sharded, resumable MCTS runs over a problem set.

One Tree JSON per problem goes to append-only JSONL shards, flushed (and fsynced) as each tree finishes:

    <output_dir>/trees-<config_hash>-shard-<i>-of-<n>.jsonl
    <output_dir>/stats-<config_hash>-shard-<i>-of-<n>.json

On restart, problems whose tree is already in any shard of the same configuration are skipped, so a run
killed with SIGKILL and restarted loses no finished tree and writes no duplicate (a half-written last line
is cut off before appending). `--shard i/n` runs the i-th of n disjoint slices; under `accelerate launch`
(or torchrun, or mpirun) each process takes its own shard automatically (`Shard.from_environment`), and
each rank's models run on its own GPUs (`treecot.models.rank_gpus`). A launch that asked for several
processes but started one (`accelerate launch --num_processes N` without `--multi_gpu` or a config starts a
single process when it sees fewer than two GPUs) is refused (`LaunchError`) instead of running one shard's
worth of work as if it were the whole job.

A run holds an exclusive lock on its shard (`<output_dir>/trees-<config_hash>-shard-<i>-of-<n>.lock`, an
`fcntl.flock` that the kernel drops when the process ends, however it ends) from before it reads the shard
until it has written its stats: a second `treecot generate` of the same shard refuses to start
(`OutputBusyError`) instead of searching the same problems again and writing every tree twice. A line in
the middle of a shard that is not a JSON object stops the run with the file and line number
(`ShardError`): it is not a killed writer's tail, so it is not cut silently.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from treecot.pipeline.generators import build_generators
from treecot.pipeline.ray_engine import require_ray, run_search_ray
from treecot.prompts import contract_system_prompt
from treecot.recipe import Recipe, RecipeError, load_recipe
from treecot.search.mcts import MCTSConfig, config_hash, reflection_summary, render_chat_prompts, run_search
from treecot.search.patterns import patterns_for_task
from treecot.tasks import get_task

logger = logging.getLogger(__name__)


class ShardError(RecipeError):
    """A tree shard in the output directory is corrupt; the message names the file and line."""


class OutputBusyError(RecipeError):
    """Another process is writing the same shard of the same run."""


class LaunchError(RecipeError):
    """The launcher's environment is not what the run needs (e.g. one process where several were asked for)."""


#: (world size, rank) variables of the launchers, in the order Accelerate reads them: torchrun /
#: accelerate launch, then MPI (Intel MPI / MPICH, Open MPI, MVAPICH), which accelerate's MULTI_CPU uses.
WORLD_VARIABLES = (
    ("WORLD_SIZE", "RANK"),
    ("PMI_SIZE", "PMI_RANK"),
    ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
    ("MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"),
)

SINGLE_PROCESS_LAUNCH = (
    "accelerate launch started a single process (it set MASTER_ADDR but no WORLD_SIZE or RANK): without "
    "--multi_gpu or a config file, `accelerate launch --num_processes N` runs one process when it sees fewer "
    "than two GPUs, so this run would do all the work in one process. Start N processes with `accelerate "
    "launch --multi_gpu --num_processes N -m treecot.cli generate RECIPE` (it works without GPUs) or "
    "`--config_file recipes/accelerate_configs/cpu.yaml`, or run `treecot generate RECIPE --shard i/N` once "
    "per i; for one process, run `treecot generate` without accelerate launch (or unset MASTER_ADDR)"
)


#: Search engines of `run_generate`: this process, or a pool of Ray actors (`treecot.pipeline.ray_engine`).
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Shard:
    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str | None) -> Shard:
        if not text:
            return cls()
        try:
            i, n = (int(x) for x in str(text).split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {text!r}: need 0 <= i < n")
        return cls(i, n)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Shard | None:
        """The shard of this process under `accelerate launch`, torchrun or mpirun: RANK of WORLD_SIZE (or
        the MPI equivalents, `WORLD_VARIABLES`); None when not distributed.

        Args:
            environ (`Mapping[str, str]`, *optional*):
                The environment variables (default: `os.environ`).

        Raises:
            LaunchError: `accelerate launch` asked for several processes but started one (its simple
                launcher sets MASTER_ADDR only when --num_processes is above 1, and never WORLD_SIZE or RANK),
                or the variables do not make a shard.
        """
        env = os.environ if environ is None else environ
        for size_var, rank_var in WORLD_VARIABLES:
            raw = env.get(size_var, "")
            if raw == "":
                continue
            world = _launch_int(raw, size_var)
            if world <= 1:
                return None
            rank = _launch_int(env.get(rank_var, "") or "0", rank_var)
            if not 0 <= rank < world:
                raise LaunchError(
                    f"{rank_var}={rank} is not a rank of {size_var}={world} (need 0 <= rank < size)"
                )
            return cls(rank, world)
        if "ACCELERATE_USE_CPU" in env and env.get("MASTER_ADDR"):
            raise LaunchError(SINGLE_PROCESS_LAUNCH)
        return None

    def select(self, n_items: int) -> list[int]:
        return list(range(self.index, n_items, self.count))

    @property
    def suffix(self) -> str:
        return f"shard-{self.index:05d}-of-{self.count:05d}"


def _launch_int(raw: str, name: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise LaunchError(f"{name}={raw!r} is not an integer (it is set by the launcher)") from None


# --------------------------------------------------------------------------- shard files


def _repair_tail(path: Path) -> int:
    """Cut a half-written last line (a killed writer) and return the number of bytes removed."""
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with open(path, "rb+") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 1))
        if f.read(1) == b"\n":
            return 0
        # Find the last newline and truncate after it.
        block = 1 << 16
        pos = size
        while pos > 0:
            start = max(0, pos - block)
            f.seek(start)
            chunk = f.read(pos - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                f.truncate(keep)
                return size - keep
            pos = start
        f.truncate(0)
        return size


def _records(paths) -> Iterator[tuple[Path, int, dict]]:
    """(path, line number, tree dict) of JSONL shard files, skipping a half-written last line; a complete
    line that is not a JSON object raises `ShardError` naming the file and line."""
    for path in paths:
        with open(path, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                if not raw.endswith(b"\n"):
                    break  # a killed writer's partial line
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    why = f"not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1})"
                    raise ShardError(_corrupt(path, lineno, why)) from None
                except json.JSONDecodeError as e:
                    why = f"not valid JSON ({e.msg} at column {e.pos + 1})"
                    raise ShardError(_corrupt(path, lineno, why)) from None
                if not isinstance(record, dict):
                    raise ShardError(
                        _corrupt(path, lineno, f"a JSON {type(record).__name__}, not a tree object")
                    )
                yield Path(path), lineno, record


def _corrupt(path, lineno: int, what: str) -> str:
    return (
        f"{path}:{lineno}: {what}; the shard is damaged in the middle (a killed run only ever leaves a "
        f"half-written last line, which is cut automatically). Move the file aside, or delete that line "
        f"(sed -i '{lineno}d' {shlex.quote(str(path))}) and rerun `treecot generate` to search that problem again"
    )


def iter_tree_dicts(paths) -> Iterator[dict]:
    """Tree dicts from JSONL shard files (skipping a half-written last line; `ShardError` naming the file
    and line for a damaged line anywhere else)."""
    for _, _, record in _records(paths):
        yield record


def tree_files(directory: str | Path, config_hash: str | None = None) -> list[Path]:
    """Tree shard files in `directory` (of one configuration when `config_hash` is given), sorted."""
    d = Path(directory)
    pattern = f"trees-{config_hash}-*.jsonl" if config_hash else "trees-*.jsonl"
    return sorted(d.glob(pattern))


def finished_ids(directory: str | Path, config_hash: str) -> set[str]:
    """Ids of the problems with a tree in any shard of this configuration in `directory`."""
    out = set()
    for path, lineno, tree in _records(tree_files(directory, config_hash)):
        problem = tree.get("problem")
        if not isinstance(problem, dict) or "id" not in problem:
            raise ShardError(_corrupt(path, lineno, "a record without problem.id"))
        out.add(problem["id"])
    return out


class ShardLock:
    """An exclusive `flock` on `<shard>.lock` while a run writes that shard (the kernel drops it when the
    process dies). The file holds the holder's pid and is removed on release."""

    def __init__(self, path: Path, output_dir: Path) -> None:
        self.path = path
        self.output_dir = output_dir
        self._fd: int | None = None

    def acquire(self) -> ShardLock:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "?"
                os.close(fd)
                raise OutputBusyError(
                    f"generate.output_dir: another treecot generate is writing {self.output_dir} "
                    f"(pid {holder}, lock {self.path.name}); wait for it or use another output_dir"
                ) from None
            # The holder before us may have removed the file after we opened it: lock the current file.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # still locked: nobody else can hold this file now
        finally:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ShardLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


# --------------------------------------------------------------------------- generators


def _load_generators(recipe: Recipe) -> dict[str, Any]:
    """`build_generators`, saying what loads and how long it took (a first load can take half a minute)."""
    gen = recipe.generate
    assert gen is not None
    specs = {role: gen.models.get(role) or gen.models["A"] for role in ("A", "B")}
    named = {}
    for role, spec in specs.items():
        named.setdefault(f"{spec.model} ({spec.backend})", []).append(role)
    what = ", ".join(f"{'/'.join(roles)}: {name}" for name, roles in named.items())
    print(f"[treecot generate] loading models {what} …", flush=True)
    t0 = time.perf_counter()
    gens = build_generators(recipe)
    print(f"[treecot generate] models ready in {time.perf_counter() - t0:.0f}s; the bar below counts finished "
          "trees, its rollouts/correct/tok_s move after every search step", flush=True)  # fmt: skip
    return gens


# --------------------------------------------------------------------------- the run


def _summarise(trees: list[dict], wall: float, new_trees: list[dict] | None = None) -> dict:
    """Totals over the trees, each problem counted once (its first tree), as `treecot build` reads them.
    `wall` is this run's time: the token rate counts the tokens of the trees it wrote (`new_trees`; default
    all), and is None when it wrote none (a resumed run over finished trees has no rate)."""
    seen: set[str] = set()
    unique = []
    for t in trees:
        pid = str((t.get("problem") or {}).get("id", ""))
        if pid not in seen:
            seen.add(pid)
            unique.append(t)
    trees = unique

    keys = (
        "llm_calls",
        "prefill_tokens",
        "generated_tokens",
        "cache_hit_tokens",
        "rollouts",
        "correct_paths",
    )
    total = {k: sum(int(t.get("stats", {}).get(k, 0) or 0) for t in trees) for k in keys}
    n = len(trees)
    fresh = trees if new_trees is None else new_trees
    new_tokens = sum(int(t.get("stats", {}).get("generated_tokens", 0) or 0) for t in fresh)
    correct = [int(t.get("stats", {}).get("correct_paths", 0) or 0) for t in trees]
    total.update(
        problems=n,
        wall_seconds=round(wall, 2),
        yield_at_least_1=round(sum(c >= 1 for c in correct) / n, 4) if n else 0.0,
        yield_at_least_4=round(sum(c >= 4 for c in correct) / n, 4) if n else 0.0,
        tokens_per_correct_path=round(total["generated_tokens"] / total["correct_paths"], 1)
        if total["correct_paths"]
        else None,
        generated_tokens_per_s=round(new_tokens / wall, 2) if wall > 0 and new_tokens else None,
    )
    # Backtracking, read from the nodes (so trees written before these stats existed count too).
    refl = reflection_summary(trees)
    total.update(
        reflections_placed=refl["reflections_placed"],
        reflections_expanded=refl["reflections_expanded"],
        reflections_expanded_share=refl["reflections_expanded_share"],
        correct_via_reflection=refl["correct_via_reflection"],
        correct_via_reflection_share=refl["correct_via_reflection_share"],
    )
    return total


def _check_engine(engine: str, generators: dict[str, Any] | None, ray_actors: int) -> None:
    """Refuse an unknown engine, and for Ray pre-built generators or a bad actor count; Ray must be
    installed (before anything is read or written)."""
    if engine not in ENGINES:
        raise RecipeError(f"engine: {engine!r} is not an engine; choose one of {', '.join(ENGINES)}")
    if engine == "ray":
        if generators is not None:
            raise RecipeError("engine ray: pre-built generators cannot be sent to Ray actors; each actor "
                              "builds its own from the recipe's models (leave generators out)")  # fmt: skip
        if isinstance(ray_actors, bool) or not isinstance(ray_actors, int) or ray_actors < 1:
            raise RecipeError(
                f"engine ray: the number of actors must be a positive integer, got {ray_actors!r}"
            )
        require_ray()


def _shard_problems(recipe: Recipe, task, shard: Shard) -> tuple[Any, list[int]]:
    """The recipe's problem set and the indices of this shard's problems in it."""
    limit = recipe.problems.limit
    # Generated problem sets (blocksworld, arithmetic) make only what the slice needs.
    problems = task.load(
        recipe.problems.split, limit=None if limit is None else recipe.problems.offset + limit
    )
    end = len(problems) if limit is None else recipe.problems.offset + limit
    indices = list(range(recipe.problems.offset, min(end, len(problems))))
    return problems, [indices[i] for i in shard.select(len(indices))]


class _TreeWriter:
    """Appends each finished tree to the shard (flushed and fsynced), releases its caches, and moves the
    progress bar: `on_tree` after each tree, `on_step` (live counts) after each search step."""

    def __init__(
        self,
        out,
        run_hash: str,
        task,
        gens: dict[str, Any],
        system_prompt: str,
        *,
        total: int,
        progress: bool,
        t0: float,
    ):
        self.out, self.run_hash, self.task, self.gens = out, run_hash, task, gens
        self.system_prompt = system_prompt
        self.written: list[dict] = []
        self.counters = {"rollouts": 0, "correct": 0, "tokens": 0}
        self.t0 = t0  # the run's start: the token rate counts the models' loading, as the wall time does
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="MCTS trees", unit="problem", dynamic_ncols=True)

    def on_tree(self, n_done: int, n_total: int, tree) -> None:
        tree.config_hash = self.run_hash
        d = tree.to_dict()
        self.out.write(json.dumps(d, ensure_ascii=False) + "\n")
        self.out.flush()
        os.fsync(self.out.fileno())
        self.written.append(d)
        gens = self.gens
        for role, prompt in render_chat_prompts(self.task, tree.problem, gens, self.system_prompt).items():
            release = getattr(gens[role], "release", None)
            if callable(release):  # evict the finished problem's prefix caches
                release(prompt)
            end = getattr(gens[role], "end_affinity", None)
            if callable(end):  # several servers: the tree no longer counts on its server
                end(str(tree.problem.get("id", "")))
        st = tree.stats
        self.counters["rollouts"] += int(st.get("rollouts", 0))
        self.counters["correct"] += int(st.get("correct_paths", 0))
        self.counters["tokens"] += int(st.get("generated_tokens", 0))
        if self.bar is not None:
            self.bar.update(1)

    def on_step(self, in_flight) -> None:
        """Live counts after every search step (finished trees + those still being searched)."""
        if self.bar is None:
            return
        live = {"rollouts": 0, "correct": 0, "tokens": 0}
        for t in in_flight:
            live["rollouts"] += int(t.stats.get("rollouts", 0))
            live["correct"] += int(t.stats.get("correct_paths", 0))
            live["tokens"] += int(t.stats.get("generated_tokens", 0))
        el = time.perf_counter() - self.t0
        tokens = self.counters["tokens"] + live["tokens"]
        self.bar.set_postfix(
            rollouts=self.counters["rollouts"] + live["rollouts"],
            correct=self.counters["correct"] + live["correct"],
            tok_s=f"{tokens / el:.1f}" if el else "-",
            refresh=True,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _search_into(
    shard_path: Path,
    todo: list[dict],
    recipe: Recipe,
    *,
    task,
    patterns,
    config: MCTSConfig,
    system_prompt: str,
    run_hash: str,
    t0: float,
    generators: dict[str, Any] | None,
    progress: bool,
    engine: str,
    ray_actors: int,
) -> list[dict]:
    """Search `todo` with `engine`, appending each tree to `shard_path`; returns the trees written."""
    spec = recipe.generate
    # The ray engine's actors hold the generators (and release their caches): none here.
    gens = {} if engine == "ray" else generators or _load_generators(recipe)
    with open(shard_path, "a", encoding="utf-8") as out:
        writer = _TreeWriter(
            out,
            run_hash,
            task,
            gens,
            system_prompt,
            total=len(todo),
            progress=progress,
            t0=t0,
        )
        try:
            if engine == "ray":
                run_search_ray(
                    todo,
                    recipe,
                    task=task.name,
                    patterns=patterns,
                    config=config,
                    on_tree=writer.on_tree,
                    num_actors=ray_actors,
                    problems_per_actor=spec.problems_in_flight,
                    system_prompt=system_prompt,
                    on_batch=lambda: writer.on_step([]),  # the live counts move per finished batch
                )
            else:
                run_search(
                    todo,
                    task,
                    patterns,
                    gens,
                    config,
                    progress=writer.on_tree,
                    max_in_flight=spec.problems_in_flight,
                    on_step=writer.on_step,
                    system_prompt=system_prompt,
                )
        finally:
            writer.close()
    return writer.written


def run_generate(
    recipe: Recipe | str | os.PathLike,
    shard: Shard | None = None,
    *,
    generators: dict[str, Any] | None = None,
    progress: bool = True,
    engine: str = "local",
    ray_actors: int = 2,
) -> dict:
    """Run (or resume) the recipe's MCTS generation for one shard.

    Args:
        recipe (`Recipe`, `str` or `os.PathLike`):
            The recipe, or the path of its YAML file; a `Recipe` object is validated again (callers such as
            the CLI's `--limit` and `--output-dir` may have changed it).
        shard (`Shard`, *optional*):
            The slice of problems this process searches (default: from the launcher's environment, else all).
        generators (`dict[str, Generator]`, *optional*):
            Pre-built `{"A": …, "B": …}` (tests, notebooks); default: built from the recipe.
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar.
        engine (`str`, *optional*, defaults to `"local"`):
            `"local"` (this process searches) or `"ray"` (`ray_actors` Ray actors search, each with its own
            generators built from the recipe; `treecot.pipeline.ray_engine`); the shard file and stats are the
            same.
        ray_actors (`int`, *optional*, defaults to `2`):
            The number of Ray actors.

    Returns:
        `dict`: the shard's stats summary (also written to `stats-<config_hash>-<shard>.json`).
    """
    recipe = load_recipe(recipe) if not isinstance(recipe, Recipe) else recipe.validate()
    if recipe.generate is None:
        raise RecipeError("generate: the recipe has no 'generate' section")
    spec = recipe.generate
    _check_engine(engine, generators, ray_actors)
    shard = shard or Shard.from_environment() or Shard()
    task = get_task(recipe.problems.task)
    patterns = spec.load_patterns() if spec.patterns else patterns_for_task(task)
    config = spec.search_config(recipe.seed)
    system_prompt = spec.system_prompt if spec.system_prompt is not None else contract_system_prompt(task)
    problems, mine = _shard_problems(recipe, task, shard)

    # The config hash names the run: it depends on the recipe's models, not on loaded objects. Unset vLLM
    # engine settings are left out, so runs named before those fields existed keep their hash.
    described = {role: m.to_dict() for role, m in sorted(spec.models.items())}
    run_hash = config_hash(config, patterns, {"models": described, "system_prompt": system_prompt})
    out_dir = Path(spec.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard_path = out_dir / f"trees-{run_hash}-{shard.suffix}.jsonl"
    # Held from before the shard is repaired and read until the stats are written: a second run of the
    # same shard refuses to start instead of searching the same problems and writing their trees again.
    with ShardLock(out_dir / f"trees-{run_hash}-{shard.suffix}.lock", out_dir):
        cut = _repair_tail(shard_path)
        if cut:
            logger.warning(
                "%s: removed a half-written last record (%d bytes) from a killed run", shard_path, cut
            )
        done = finished_ids(out_dir, run_hash)
        todo = [problems[i] for i in mine if problems[i]["id"] not in done]
        skipped = len(mine) - len(todo)
        print(
            f"[treecot generate] {recipe.name}: task {task.name}, {len(mine)} problems in shard "
            f"{shard.index}/{shard.count} ({skipped} already done), config {run_hash} → {shard_path}",
            flush=True,
        )
        t0 = time.perf_counter()
        written = (
            _search_into(
                shard_path,
                todo,
                recipe,
                task=task,
                patterns=patterns,
                config=config,
                system_prompt=system_prompt,
                run_hash=run_hash,
                t0=t0,
                generators=generators,
                progress=progress,
                engine=engine,
                ray_actors=ray_actors,
            )
            if todo
            else []
        )
        wall = time.perf_counter() - t0
        all_trees = list(iter_tree_dicts([shard_path])) if shard_path.exists() else []
        summary = _summarise(all_trees, wall, written)
        summary.update(config_hash=run_hash, shard=shard.suffix, new_trees=len(written), skipped=skipped)
        (out_dir / f"stats-{run_hash}-{shard.suffix}.json").write_text(json.dumps(summary, indent=2) + "\n")
        print("[treecot generate] " + format_summary(summary), flush=True)
        return summary


def format_summary(s: dict) -> str:
    def pct(x):
        return f"{100 * x:.0f}%"

    tpc = s.get("tokens_per_correct_path")
    placed = s.get("reflections_placed")
    reflections = ""
    if placed is not None:  # summaries written before the backtracking figures existed have none
        exp_share, via_share = s.get("reflections_expanded_share"), s.get("correct_via_reflection_share")
        reflections = (
            f"; reflections {placed} placed, {s.get('reflections_expanded', 0)} expanded"
            + (f" ({pct(exp_share)})" if exp_share is not None else "")
            + f", {s.get('correct_via_reflection', 0)} correct paths through a reflection"
            + (f" ({pct(via_share)} of correct paths)" if via_share is not None else "")
        )
    return (
        f"{s['problems']} trees ({s['new_trees']} new); yield ≥1 correct {pct(s['yield_at_least_1'])}, "
        f"≥4 correct {pct(s['yield_at_least_4'])}; {s['correct_paths']} correct paths, {s['rollouts']} rollouts; "
        f"LLM calls {s['llm_calls']}, prefill tokens {s['prefill_tokens']}, cache-hit tokens "
        f"{s['cache_hit_tokens']}, generated tokens {s['generated_tokens']}"
        + (f", {tpc} tokens per correct path" if tpc else "")
        + reflections
        + f"; {s['wall_seconds']}s"
    )
