"""`treecot generate RECIPE --engine ray`: the MCTS search on a pool of Ray actors.

The driver (the `treecot generate` process) cuts the shard's unfinished problems into batches of
`generate.problems_in_flight` and keeps every actor of the pool busy with one batch. Each actor builds its
own generators from the recipe (it travels as a plain dict, `Recipe.to_dict()`; generator objects never
travel): a vLLM engine on the GPU(s) Ray gives it, an in-process transformers model, or clients of
OpenAI-compatible servers. An actor searches its batch with `treecot.search.mcts.run_search` (so the
problems of a batch still share batched generate calls) and returns the tree dicts; the driver takes the
batches back in completion order (`ray.wait`) and hands each tree to `on_tree`, the runner's single writer,
which appends it to the same resumable shard file as the local engine. A rerun after a crash skips every
problem with a tree; the problems of batches still out when the driver died are searched again.

An actor that dies (its process killed, its node lost) takes no problem with it: its outstanding batch goes
back to the front of the queue and a fresh actor replaces it. A batch that has lost `MAX_BATCH_TRIES`
actors, or a run that has lost `MAX_DEATHS_PER_ACTOR` actors per actor of the pool, stops with a
`RayEngineError`; an actor that fails while loading its models stops the run at once (every actor would).

Ray is an optional extra (`pip install "treecot[ray]"`, Ray core only) and is imported only when the
engine runs. With `RAY_ADDRESS` set the driver connects to that cluster, otherwise `ray.init()` joins a
cluster started on this machine with `ray start` or starts a local one; the driver only disconnects at the
end (a local cluster it started itself stops with it). A cluster over several machines needs treecot (and
the models' files, or access to the servers) on every node; environment variables of the driver do not
reach the actors of a cluster started elsewhere, except the API-key variables the recipe's models name.
"""

from __future__ import annotations

import json
import logging
import os
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from treecot.pipeline.generators import build_generators
from treecot.recipe import Recipe, RecipeError, load_recipe
from treecot.search.mcts import render_chat_prompts, run_search
from treecot.search.tree import Tree
from treecot.tasks import get_task

logger = logging.getLogger(__name__)

RAY_MISSING = 'the ray engine needs Ray (Ray core): pip install "treecot[ray]"'

#: Actors one batch of problems may lose before the run stops (a problem that kills every actor).
MAX_BATCH_TRIES = 3
#: Actor deaths per actor of the pool that a run survives before it stops.
MAX_DEATHS_PER_ACTOR = 2


class RayEngineError(RecipeError):
    """The ray engine cannot run (Ray missing, actors that keep dying or cannot load their models)."""


def require_ray():
    """The `ray` module, or a `RayEngineError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayEngineError(RAY_MISSING) from None
    return ray


class _SearchActor:
    """One worker of the pool: the recipe's generators, and `search(problems)` over them.

    Wrapped with `ray.remote` when the run starts (importing this module needs no Ray)."""

    def __init__(self, recipe: dict, task: str, patterns, config, system_prompt: str, cwd: str) -> None:
        # A local cluster starts its workers in the driver's directory already; on a shared file system,
        # relative model paths of the recipe resolve on every node.
        if cwd and os.path.isdir(cwd):
            os.chdir(cwd)
        self.task = get_task(task)
        self.patterns = patterns
        self.config = config
        self.system_prompt = system_prompt
        self.gens = build_generators(load_recipe(recipe))

    def search(self, problems: list[dict]) -> list[dict]:
        """The trees (dicts) of `problems`, searched together; caches of finished problems are released."""
        trees: list[dict] = []

        def finished(n_done: int, n_total: int, tree) -> None:
            trees.append(tree.to_dict())
            prompts = render_chat_prompts(self.task, tree.problem, self.gens, self.system_prompt)
            for role, prompt in prompts.items():
                release = getattr(self.gens[role], "release", None)
                if callable(release):  # evict the finished problem's prefix caches
                    release(prompt)
                end = getattr(self.gens[role], "end_affinity", None)
                if callable(end):  # several servers: the tree no longer counts on its server
                    end(str(tree.problem.get("id", "")))

        run_search(
            problems,
            self.task,
            self.patterns,
            self.gens,
            self.config,
            progress=finished,
            max_in_flight=max(1, len(problems)),
            system_prompt=self.system_prompt,
        )
        return trees


def _role_specs(recipe: Recipe) -> list:
    """The distinct model specs of roles A and B (roles with the same spec share one generator)."""
    gen = recipe.generate
    assert gen is not None
    distinct = {}
    for role in ("A", "B"):
        spec = gen.models.get(role) or gen.models["A"]
        distinct.setdefault(json.dumps(spec.to_dict(), sort_keys=True, default=str), spec)
    return list(distinct.values())


def default_actor_options(recipe: Recipe, cluster_gpus: float = 0.0) -> dict[str, Any]:
    """Ray resources and environment of one actor: the GPUs of its vLLM engines (tensor_parallel_size
    each), one GPU for in-process transformers models when the cluster has GPUs, none for server clients;
    and the API-key variables of the models that the driver has set.

    Args:
        recipe (`Recipe`):
            The recipe whose models the actor holds.
        cluster_gpus (`float`, *optional*, defaults to `0.0`):
            The GPUs of the Ray cluster.
    """
    specs = _role_specs(recipe)
    on_gpu = [s for s in specs if s.backend == "vllm" or (s.backend == "transformers" and cluster_gpus >= 1)]
    if len(on_gpu) > 1:
        # Inside one actor every engine would start on the first GPU Ray gives it (nothing splits them).
        raise RayEngineError(
            f"engine ray: roles A and B name {len(on_gpu)} different models that each need a GPU "
            f"({', '.join(s.model for s in on_gpu)}); one actor holds one GPU model: give A and B the same "
            "model, or serve one of them (backend openai)"
        )
    gpus = sum(spec.tensor_parallel_size or 1 for spec in specs if spec.backend == "vllm")
    if not gpus and cluster_gpus >= 1 and any(spec.backend == "transformers" for spec in specs):
        gpus = 1
    options: dict[str, Any] = {"num_gpus": gpus} if gpus else {}
    keys = {
        spec.api_key_env: os.environ[spec.api_key_env]
        for spec in specs
        if spec.backend == "openai" and os.environ.get(spec.api_key_env)
    }
    if keys:
        options["runtime_env"] = {"env_vars": keys}
    return options


def _kill(ray, actor) -> None:
    try:
        ray.kill(actor, no_restart=True)
    except Exception as e:  # already gone, or the cluster is
        logger.debug("ray engine: killing an actor: %s", e)


def _last_line(error: BaseException, limit: int = 240) -> str:
    """The last line of a Ray error (the cause: the exception of a failed creation task, or why the actor's
    process ended), clipped."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    line = lines[-1] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _death(error: BaseException) -> str:
    """Why an actor died, in one sentence ("The actor is dead because its worker process has died.")."""
    for line in str(error).splitlines():
        line = line.strip()
        if line.startswith("The actor is dead because"):
            return line.split(". ")[0].rstrip(".") + "."
    return _last_line(error)


def _ids(problems: Sequence[dict], shown: int = 5) -> str:
    ids = [str(p.get("id", "?")) for p in problems]
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def _actor_options(ray, recipe: Recipe, actor_options: dict[str, Any] | None) -> dict[str, Any]:
    """The Ray options of each actor (`actor_options`, else `default_actor_options`); warns when the cluster
    has fewer GPUs now than an actor asks for (the actors wait until it has them)."""
    if actor_options is not None:
        options = dict(actor_options)
    else:
        options = default_actor_options(recipe, float(ray.cluster_resources().get("GPU", 0)))
    have = ray.cluster_resources().get("GPU", 0)
    if options.get("num_gpus", 0) > have:
        logger.warning("ray engine: each actor asks for %s GPU(s) but the cluster has %s now; the actors "
                       "wait until the cluster has them", options["num_gpus"], have)  # fmt: skip
    return options


def _retry_or_stop(error: BaseException, batch: Sequence[dict], tries: int, deaths: int, n_actors: int,
                   n_done: int) -> None:  # fmt: skip
    """After an actor died searching `batch`: stop (`RayEngineError`) when the batch or the pool has failed
    too often, else say that the batch goes to a fresh actor."""
    ids = _ids(batch)
    if tries >= MAX_BATCH_TRIES or deaths > MAX_DEATHS_PER_ACTOR * n_actors:
        raise RayEngineError(
            f"ray engine: {deaths} actors died ({tries} of them searching problems {ids}); the "
            f"last: {_death(error)} The {n_done} trees written are kept: rerun to resume"
        ) from None
    print(f"[treecot generate] ray engine: an actor died ({_death(error)}); its problems {ids} go "
          "to a fresh actor", flush=True)  # fmt: skip


def run_search_ray(
    todo: Sequence[dict],
    recipe: Recipe,
    *,
    task: str,
    patterns,
    config,
    on_tree: Callable[[int, int, Any], None],
    num_actors: int = 2,
    problems_per_actor: int = 8,
    system_prompt: str,
    actor_options: dict[str, Any] | None = None,
    on_batch: Callable[[], None] | None = None,
) -> int:
    """Search `todo` on `num_actors` Ray actors, calling `on_tree(n_done, n_total, Tree)` in the driver for
    every finished tree, in completion order (each problem once); returns the number of trees.

    task: the task's name; patterns, config: the `Patterns` and `MCTSConfig` the run's hash was made of;
    problems_per_actor: the batch an actor searches at once; actor_options: Ray actor options (resources,
    runtime_env) instead of `default_actor_options`; on_batch: called after each batch's trees.
    """
    ray = require_ray()
    from ray.exceptions import RayActorError

    if num_actors < 1 or problems_per_actor < 1:
        raise RayEngineError(f"ray engine: need at least one actor and one problem per batch, got "
                             f"{num_actors} actors, {problems_per_actor} problems per batch")  # fmt: skip
    todo = list(todo)
    batches = [todo[i : i + problems_per_actor] for i in range(0, len(todo), problems_per_actor)]
    if not batches:
        return 0
    started = not ray.is_initialized()
    if started:
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address) if address else ray.init()
    actors: list = []
    try:
        options = _actor_options(ray, recipe, actor_options)
        remote = ray.remote(_SearchActor).options(max_restarts=0, **options)
        args = (recipe.to_dict(), task, patterns, config, system_prompt, os.getcwd())

        def new_actor():
            actor = remote.remote(*args)
            actors.append(actor)
            return actor

        n_actors = min(num_actors, len(batches))
        print(f"[treecot generate] ray engine: {len(todo)} problems in {len(batches)} batches of up to "
              f"{problems_per_actor} on {n_actors} actors ({options.get('num_gpus', 0)} GPU(s) each); each "
              "actor loads its models first", flush=True)  # fmt: skip
        idle = [new_actor() for _ in range(n_actors)]
        pending = deque(range(len(batches)))
        running: dict[Any, tuple[Any, int]] = {}  # ObjectRef → (actor, batch index)
        tries = [0] * len(batches)
        deaths = 0
        n_done = 0
        while pending or running:
            while idle and pending:
                actor, b = idle.pop(0), pending.popleft()
                running[actor.search.remote(batches[b])] = (actor, b)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            actor, b = running.pop(ref)
            try:
                trees = ray.get(ref)
            except RayActorError as e:
                actors.remove(actor)
                _kill(ray, actor)  # it may only be unreachable: make sure it is gone
                if getattr(e, "actor_init_failed", False):
                    raise RayEngineError(
                        f"ray engine: an actor could not load its models: {_last_line(e)}"
                    ) from None
                deaths += 1
                tries[b] += 1
                _retry_or_stop(e, batches[b], tries[b], deaths, n_actors, n_done)
                pending.appendleft(b)
                idle.append(new_actor())
                continue
            for d in trees:
                n_done += 1
                on_tree(n_done, len(todo), Tree.from_dict(d))
            idle.append(actor)
            if on_batch is not None:
                on_batch()
        return n_done
    finally:
        for actor in actors:
            _kill(ray, actor)
        if started:
            ray.shutdown()
