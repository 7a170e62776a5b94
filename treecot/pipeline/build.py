"""`treecot build RECIPE.yaml` and `treecot distill RECIPE.yaml`: datasets with cards, versioned on the Hub
(or in the local Hub layout).

build:   tree shards → configs `trees`, `sft`, `dpo` (clean paths, Thoughts Length Balance under the student's
         tokenizer, the recipe's pair rule) and, with `build.dpo_all`, `dpo_all` (a pair for every clean
         correct path: the length-balance ablation); length histograms per task, card (with the path-quality
         figures: what the clean-path filter dropped and why, the shared-prefix distribution), pushed to the
         branch of the run's identity (search and build configuration AND the input trees: `_run_hash`) and
         optionally tagged.
distill: teacher samples → config `sft` (`source: "distill"`) and `rejected` (failed traces, for the
         `wrong_answer` perturbation), same versioning.

Without `push_to_hub` the dataset is written in the Hub layout to the section's `output_dir`:
`load_versioned(output_dir, "sft", revision=...)` reads it back, `datasets.load_dataset(f"{output_dir}/main",
"sft")` works too.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from treecot import __version__, backends
from treecot.data.balance import plot_length_histograms
from treecot.data.distill import distill
from treecot.data.extract import build_datasets, tree_paths, tree_system_prompt
from treecot.data.perturb import perturb_rows
from treecot.hub import load_versioned, push_dataset, quiet_datasets, redact
from treecot.models import load_tokenizer
from treecot.pipeline.generate import iter_tree_dicts, tree_files
from treecot.prompts import CONTRACT_FILE, PromptContract
from treecot.recipe import Recipe, RecipeError, load_recipe
from treecot.search.mcts import reflection_summary
from treecot.search.tree import Tree
from treecot.tasks import get_task

logger = logging.getLogger(__name__)

LOCAL_REPO_PREFIX = "local"


def _tree_dataset(tree_dicts: list[dict]):
    """The `trees` config: one row per tree; the full tree as JSON text (its node fields vary by type)."""
    from datasets import Dataset

    rows = []
    for t in tree_dicts:
        nodes = t.get("nodes", [])
        answers = [n for n in nodes if n.get("terminal")]
        rows.append(
            {
                "schema_version": int(t.get("schema_version", 1)),
                "problem_id": str(t["problem"].get("id", "")),
                "task": str(t["problem"].get("task", "")),
                "question": str(t["problem"].get("question", "")),
                "config_hash": str(t.get("config_hash", "")),
                "n_nodes": len(nodes),
                "correct_paths": sum(1 for n in answers if n.get("correct") is True),
                "wrong_paths": sum(1 for n in answers if n.get("correct") is False),
                "tree": json.dumps(t, ensure_ascii=False),
            }
        )
    return Dataset.from_list(rows)


def load_trees(directory: str | Path | list[str | Path]) -> tuple[list[dict], str]:
    """All trees of ONE configuration in `directory` (or a single JSONL file) and that config hash.

    A list of directories/files (e.g. one generation run per task) gives all their trees and a hash of
    their config hashes.
    """

    if isinstance(directory, (list, tuple)):
        if not directory:
            raise RecipeError("build.trees: the list of tree directories is empty")
        parts = [load_trees(d) for d in directory]
        seen: set[str] = set()
        merged = []
        for trees, _ in parts:
            for t in trees:
                if t["problem"]["id"] not in seen:
                    seen.add(t["problem"]["id"])
                    merged.append(t)
        hashes = [h for _, h in parts]
        combined = (
            hashes[0] if len(hashes) == 1 else hashlib.sha256("/".join(hashes).encode()).hexdigest()[:16]
        )
        return merged, combined

    path = Path(directory)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = tree_files(path)
    else:
        raise RecipeError(f"build.trees: {str(path)!r} does not exist (run `treecot generate` first)")
    if not files:
        raise RecipeError(
            f"build.trees: no trees-*.jsonl shards in {str(path)!r} (run `treecot generate` first)"
        )
    trees = list(iter_tree_dicts(files))
    hashes = sorted({t.get("config_hash", "") for t in trees})
    if len(hashes) > 1:
        raise RecipeError(
            f"build.trees: {str(path)!r} holds trees of {len(hashes)} different search configurations "
            f"({', '.join(hashes)}); point build.trees at one shard file or a directory of one configuration"
        )
    seen, unique = set(), []
    for t in trees:  # shards of one config never overlap, but a hand-merged directory might
        pid = t["problem"]["id"]
        if pid not in seen:
            seen.add(pid)
            unique.append(t)
    return unique, hashes[0] if hashes else ""


def _run_hash(search_hash: str, build_hash: str, tree_dicts: list[dict]) -> str:
    """The identity of a build, which names its branch: the search configuration, the build section AND the
    input trees themselves (every field, in order), so a build over grown or regenerated trees is a new run,
    never "already complete", and a tag given to it names the rows built from those trees.

    The branch name (12 characters) starts with 4 of the search hash and 4 of the build hash (runs sharing a
    search configuration are easy to spot); the rest is a hash of all three.
    """
    digest = hashlib.sha256()
    for tree in tree_dicts:
        digest.update(json.dumps(tree, sort_keys=True, ensure_ascii=False).encode())
        digest.update(b"\n")
    full = hashlib.sha256(f"{search_hash}|{build_hash}|{digest.hexdigest()}".encode()).hexdigest()
    return f"{(search_hash or build_hash)[:4]}{build_hash[:4]}{full[:12]}"


def _histograms(sft, dpo, all_lengths: dict[str, list[int]], out_dir: Path) -> dict[str, bytes]:

    by_task: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for task, lengths in all_lengths.items():
        by_task[task]["all correct paths"] = lengths
    for r in sft:
        by_task[r["task"]]["SFT rows"].append(r["n_tokens"])
    for r in dpo:
        by_task[r["task"]]["DPO chosen"].append(r["chosen_tokens"])
    paths = plot_length_histograms({k: dict(v) for k, v in by_task.items()}, out_dir)
    return {f"histograms/{p.name}": p.read_bytes() for p in paths}


def _preference_dataset(rows: list[dict]):
    """Preference rows as a Dataset; `rejected_defects` is a list of strings even when every list is empty
    (inferred, it would be a list of nulls, whose schema differs from a run with defects)."""
    from datasets import Dataset, Sequence, Value

    ds = Dataset.from_list(rows)
    with quiet_datasets():  # a "Casting the dataset" bar for a few hundred rows says nothing
        return ds.cast_column("rejected_defects", Sequence(Value("string")))


def run_build(
    recipe: Recipe | str,
    *,
    push_to_hub: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Build the `trees` / `sft` / `dpo` configs of a recipe's trees and push (or write) them.

    Args:
        recipe (`Recipe` or `str`):
            The recipe (or its YAML path); it needs a `build` section.
        push_to_hub (`str`, *optional*):
            The Hub repo to push to (default: the recipe's `build.push_to_hub`, else the local Hub layout at
            `build.output_dir`).
        tag (`str`, *optional*):
            Tag the pushed branch (default: the recipe's `build.tag`).
        force (`bool`, *optional*, defaults to `False`):
            Rewrite a complete branch.
    """
    from datasets import Dataset

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if recipe.build is None:
        raise RecipeError("build: the recipe has no 'build' section")
    spec = recipe.build
    trees_dir = spec.trees or (recipe.generate.output_dir if recipe.generate else None)
    if not trees_dir:
        raise RecipeError("build.trees: not set and the recipe has no generate.output_dir to read trees from")
    tree_dicts, search_hash = load_trees(trees_dir)
    tokenizer = load_tokenizer(spec.student)
    trees = [Tree.from_dict(t) for t in tree_dicts]
    _check_system_prompt(spec.system_prompt, trees, tree_system_prompt)
    built = build_datasets(
        trees,
        tokenizer,
        system_prompt=spec.system_prompt,
        sft_length=spec.sft_length,
        dpo_length=spec.dpo_length,
        clean_chosen=spec.clean_chosen,
        unclean_rejected=spec.unclean_rejected,
        pair_rule=spec.pair_rule,
        dpo_all=spec.dpo_all,
    )
    sft, dpo, report = built.sft, built.dpo, built.report
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    all_lengths: dict[str, list[int]] = defaultdict(list)
    for t in trees:
        all_lengths[str(t.problem.get("task", ""))].extend(
            p.n_tokens for p in tree_paths(t, count, correct=True)
        )
    print(f"[treecot build] {report.summary()}", flush=True)
    contract = PromptContract.from_rows(sft, dpo)

    configs: dict[str, Any] = {"trees": _tree_dataset(tree_dicts)}
    if sft:
        configs["sft"] = Dataset.from_list(sft)
    if dpo:
        configs["dpo"] = _preference_dataset(dpo)
    if built.dpo_all:
        configs["dpo_all"] = _preference_dataset(built.dpo_all)
    for line in _left_out(sft, dpo):
        print(f"[treecot build] {line}", flush=True)
    run_hash = _run_hash(search_hash, recipe.section_hash("build"), tree_dicts)

    card = _dataset_card(recipe, trees, tree_dicts, trees_dir, search_hash, built, contract)
    if not (push_to_hub or spec.push_to_hub) and spec.output_dir:
        card["local_dir"] = str(spec.output_dir)  # the card's snippet loads the folder, not a Hub id
    with tempfile.TemporaryDirectory() as tmp:
        extra = _histograms(sft, dpo, all_lengths, Path(tmp))
    extra[CONTRACT_FILE] = contract.to_json().encode()
    result = _push_built(
        recipe, configs, card, run_hash, extra, push_to_hub=push_to_hub, tag=tag, force=force
    )
    where = getattr(result, "url_or_path", "")
    done = (
        "skipped (already complete: same recipe and trees; --force rewrites it)"
        if result.skipped
        else "wrote"
    )
    print(f"[treecot build] {done} {where} "
          f"(branch {result.branch}{', tag ' + result.tag if result.tag else ''})", flush=True)  # fmt: skip
    return {
        "report": report.to_dict(),
        "result": result,
        "config_hash": run_hash,
        "card": card,
        "contract": contract,
    }


def _dataset_card(
    recipe: Recipe,
    trees: list[Any],
    tree_dicts: list[dict[str, Any]],
    trees_dir: Any,
    search_hash: str,
    built: Any,
    contract: Any,
) -> dict[str, Any]:
    """The dataset card's fields of a build: description, recipe, models, yield, path quality, search cost."""

    spec, report, sft, dpo = recipe.build, built.report, built.sft, built.dpo
    stats_keys = (
        "llm_calls",
        "prefill_tokens",
        "generated_tokens",
        "cache_hit_tokens",
        "wall_seconds",
        "rollouts",
    )
    cost: dict[str, Any] = {}
    for k in stats_keys:
        total = sum(float(t.stats.get(k, 0) or 0) for t in trees)
        cost[k] = round(total, 2) if k == "wall_seconds" else int(round(total))  # counts print as integers
    # Trees are searched concurrently: their times overlap, so their sum is not the run's wall time. The
    # generate run records that in its stats file(s); without one the card labels the sum for what it is.
    cost["search_seconds_summed"] = cost.pop("wall_seconds")
    run_wall = _generate_wall_seconds(trees_dir, search_hash)
    if run_wall is not None:
        cost["wall_seconds"] = run_wall
    generator = tree_dicts[0].get("generator", {}) if tree_dicts else {}
    tasks = sorted({str(t["problem"].get("task", "")) for t in tree_dicts}) or [recipe.problems.task]
    tasks_text = ", ".join(f"`{t}`" for t in tasks)
    paths_kind = "clean correct path" if spec.clean_chosen else "correct path"
    all_pairs = (
        f" Config `dpo_all` pairs every {paths_kind} (the Thoughts Length Balance ablation)."
        if spec.dpo_all
        else ""
    )
    return {
        "pretty_name": f"treecot: {recipe.name}",
        "description": (
            f"Tree-structured chain-of-thought data for {tasks_text} built by Monte Carlo tree search "
            f"(Marco-o1 v2). SFT rows keep the {spec.sft_length} {paths_kind} per problem, preference pairs the "
            f"{spec.dpo_length} (Thoughts Length Balance, lengths in `{spec.student}` tokens), each against the "
            f"wrong path picked by the `{spec.pair_rule}` rule; `shared_prefix` is the token-level prefix both "
            f"responses start with.{all_pairs}"
        ),
        "recipe": redact(recipe.to_dict()),
        "models": generator.get("models", {}),
        "seeds": {"recipe": recipe.seed},
        "yield": {
            "problems": len(trees),
            "solved": len(trees) - len(report.problems_without_correct_path),
            "paths": report.correct_paths + report.wrong_paths,
            "correct_paths": report.correct_paths,
            "rollouts": int(cost["rollouts"]),
            "sft_rows": len(sft),
            "dpo_pairs": len(dpo),
            **({"dpo_all_pairs": len(built.dpo_all)} if spec.dpo_all else {}),
        },
        "quality": {**report.quality(), **_backtracking(trees)},
        "cost": {k: v for k, v in cost.items() if k != "rollouts"},
        "prompt_contract": contract.to_dict(),
        "treecot_version": __version__,
    }


def _push_built(
    recipe: Recipe,
    configs: dict[str, Any],
    card: dict[str, Any],
    run_hash: str,
    extra: dict[str, Any],
    *,
    push_to_hub: str | None,
    tag: str | None,
    force: bool,
) -> Any:
    """Push the built configs with their card and extra files to the Hub repo (the command's or the recipe's
    `push_to_hub`), else write them in the local Hub layout at `build.output_dir`; returns the push result."""

    spec = recipe.build
    repo = push_to_hub or spec.push_to_hub
    if repo:
        return push_dataset(
            repo,
            configs,
            card=card,
            config_hash=run_hash,
            tag=tag or spec.tag,
            force=force,
            extra_files=extra,
        )
    else:
        return push_dataset(
            f"{LOCAL_REPO_PREFIX}/{recipe.name}",
            configs,
            card=card,
            config_hash=run_hash,
            tag=tag or spec.tag,
            force=force,
            local_dir=spec.output_dir,
            extra_files=extra,
        )


def _generate_wall_seconds(trees_dir: Any, search_hash: str) -> float | None:
    """The wall time of the generate run that wrote the trees, from its `stats-<hash>-<shard>.json` files
    (`treecot.pipeline.generate`); shards run side by side, so the longest one. None when none is found (trees
    given as a file, or searched by another configuration)."""
    import json

    dirs = trees_dir if isinstance(trees_dir, list | tuple) else [trees_dir]
    walls = []
    for d in dirs:
        folder = Path(d)
        if not folder.is_dir():
            continue
        for path in folder.glob(f"stats-{search_hash}-*.json"):
            try:
                walls.append(float(json.loads(path.read_text())["wall_seconds"]))
            except (OSError, ValueError, KeyError, TypeError):
                continue
    return round(max(walls), 2) if walls else None


def _left_out(sft: list, dpo: list) -> list[str]:
    """One line per config the build leaves out (a config is written only when it has rows): which, why, and
    what to change; the training scripts cannot train on it."""
    fix = "build with more problems (problems.limit), more rollouts (generate.search.max_rollouts) or an easier slice"
    lines = []
    if not sft:
        lines.append(
            "config `sft` left out: no SFT rows (no problem had a correct path); "
            f"`treecot.scripts.sft` cannot train on this dataset; {fix}"
        )
    if not dpo:
        lines.append(
            "config `dpo` left out: no preference pairs (no problem had both a correct and a wrong path); "
            f"`treecot.scripts.dpo` cannot train on this dataset; {fix}"
        )
    return lines


def _backtracking(trees: list) -> dict[str, Any]:
    """The card's backtracking figures: reflections placed after wrong answers, the share explored, and the
    share of correct paths that pass through one (`treecot.search.mcts.reflection_summary`)."""

    r = reflection_summary(trees)
    out: dict[str, Any] = {"reflections placed": r["reflections_placed"]}
    if r["reflections_expanded_share"] is not None:
        out["reflections expanded"] = f"{r['reflections_expanded']} ({r['reflections_expanded_share']:.0%})"
    if r["correct_via_reflection_share"] is not None:
        out["correct paths through a reflection"] = (
            f"{r['correct_via_reflection']} ({r['correct_via_reflection_share']:.0%})"
        )
    return out


def _check_system_prompt(given: str | None, trees: list, recorded) -> None:
    """`build.system_prompt` may only restate the prompt the trees were searched with (the contract)."""
    if given is None:
        return
    for tree in trees:
        if (tree.generator or {}).get("system_prompt") is None:
            continue  # old trees: the build's prompt is all there is
        searched = recorded(tree)
        if searched != given:
            raise RecipeError(
                f"build.system_prompt differs from the prompt problem {tree.problem.get('id')!r} was searched "
                f"with ({searched[:80]!r}…): a dataset's rows carry the search prompt. Set "
                "generate.system_prompt and regenerate, or drop build.system_prompt"
            )


def _distill_card(recipe: Recipe, report, sft_rows: int, teacher) -> dict[str, Any]:
    """The dataset card's fields of a distillation."""
    spec = recipe.distill
    card = {
        "pretty_name": f"treecot distillation: {recipe.name}",
        "description": (
            f"SkyThought-style long-CoT distillation for `{recipe.problems.task}`: {spec.samples} teacher samples "
            "per problem, rejection-sampled with treecot's verifier (config `sft`); the failed traces are in "
            "config `rejected`."
        ),
        "built_with": (
            f"Made by `treecot distill` (treecot {__version__}) after SkyThought ([arXiv 2502.07374]"
            "(https://arxiv.org/abs/2502.07374)): a teacher model samples long chain-of-thought traces, the task's "
            "verifier keeps the correct ones (rejection sampling), optionally only for problems in a difficulty "
            "range, and duplicates are dropped. No tree search was run."
        ),
        "recipe": redact(recipe.to_dict()),
        "models": {"teacher": getattr(teacher, "model_id", spec.teacher.model)},
        "seeds": {"recipe": recipe.seed},
        "yield": {"problems": report.problems, "sft_rows": sft_rows},
        "cost": {"generated_tokens": report.generated_tokens},
        "treecot_version": __version__,
    }
    return card


def run_distill(
    recipe: Recipe | str,
    *,
    teacher=None,
    reference=None,
    push_to_hub: str | None = None,
    tag: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """SkyThought-style distillation of the recipe's problems, written as a versioned dataset like `run_build`'s.

    Args:
        recipe (`Recipe` or `str`):
            The recipe (or its YAML path); its `distill` section says how.
        teacher (`Generator`, *optional*):
            A pre-built teacher (tests, notebooks); default: built from the recipe.
        reference (`Generator`, *optional*):
            A pre-built reference model for `pass_rate_range`; default: built from the recipe.
        push_to_hub (`str`, *optional*):
            A Hub repo id to push to (default: the recipe's `distill.push_to_hub`, else the local layout).
        tag (`str`, *optional*):
            Tag the run (default: the recipe's `distill.tag`).
        force (`bool`, *optional*, defaults to `False`):
            Overwrite a complete run branch / move a tag.
        progress (`bool`, *optional*, defaults to `True`):
            Show a progress bar.

    Returns:
        `dict[str, Any]`: the `report`, the push `result` and the `config_hash` that names the run. Configs:
        `sft` (accepted traces, `source: distill`) and `rejected` (failed traces).
    """
    from datasets import Dataset

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe)
    if recipe.distill is None:
        raise RecipeError("distill: the recipe has no 'distill' section")
    spec = recipe.distill
    task = get_task(recipe.problems.task)
    problems = task.load(recipe.problems.split)
    end = len(problems) if recipe.problems.limit is None else recipe.problems.offset + recipe.problems.limit
    problems = [problems[i] for i in range(recipe.problems.offset, min(end, len(problems)))]
    tokenizer = load_tokenizer(spec.student)
    teacher = teacher or backends.make_generator(spec.teacher, seed=recipe.seed)
    if reference is None and spec.reference is not None:
        reference = backends.make_generator(spec.reference, seed=recipe.seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(problems), desc="distilling", unit="problem")
    try:
        rows, wrong, report = distill(
            problems,
            task,
            teacher,
            tokenizer,
            spec.distill_config(recipe.seed),
            reference=reference,
            progress=bar.update if bar is not None else None,
        )
    finally:
        if bar is not None:
            bar.close()
    print(
        f"[treecot distill] {report.problems} problems, {report.samples} samples: {report.accepted} accepted, "
        f"{report.rejected} rejected ({report.no_answer} without an answer), "
        f"{len(report.problems_without_accepted)} problems with no accepted trace, "
        f"{report.duplicates_dropped} duplicates dropped",
        flush=True,
    )
    configs: dict[str, Any] = {}
    if rows:
        configs["sft"] = Dataset.from_list(rows)
    rejected = [{"problem_id": pid, "text": t} for pid, texts in wrong.items() for t in texts]
    if rejected:
        configs["rejected"] = Dataset.from_list(rejected)
    if not configs:
        raise RuntimeError("distillation produced no rows at all (no accepted and no rejected traces)")
    run_hash = recipe.section_hash("distill")
    card = _distill_card(recipe, report, len(rows), teacher)
    repo = push_to_hub or spec.push_to_hub
    kwargs = dict(card=card, config_hash=run_hash, tag=tag or spec.tag, force=force)
    if repo:
        result = push_dataset(repo, configs, **kwargs)
    else:
        if spec.output_dir:
            card["local_dir"] = str(spec.output_dir)  # the card's snippet loads the folder, not a Hub id
        result = push_dataset(
            f"{LOCAL_REPO_PREFIX}/{recipe.name}-distill", configs, local_dir=spec.output_dir, **kwargs
        )
    print(f"[treecot distill] wrote {result.url_or_path} (branch {result.branch})", flush=True)
    return {"report": report.to_dict(), "result": result, "config_hash": run_hash}


def run_perturb(
    source: str,
    kind: str,
    rate: float,
    *,
    seed: int = 0,
    revision: str | None = None,
    output_dir: str | None = None,
    push_to_hub: str | None = None,
    tag: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Perturb the `sft` config of a treecot dataset (Hub repo or local layout) and write/push the result.

    `wrong_answer` reads the failed traces from the same dataset's `rejected` config (distillation) or,
    for MCTS datasets, from the wrong paths of its `trees` config.

    Args:
        source (`str`):
            The dataset (Hub repo or local layout).
        kind (`str`):
            The perturbation (`treecot.data.perturb.perturb_rows`).
        rate (`float`):
            Its rate, between 0 and 1.
        seed (`int`, *optional*, defaults to `0`):
            The random seed.
        revision (`str`, *optional*):
            The revision of `source` to read.
        output_dir (`str`, *optional*):
            Where to write the result when not pushed (default ``outputs/perturb/<kind>-<rate>``).
        push_to_hub (`str`, *optional*):
            The Hub repo to push the result to.
        tag (`str`, *optional*):
            Tag the pushed branch.
        force (`bool`, *optional*, defaults to `False`):
            Rewrite a complete branch.
    """
    from datasets import Dataset

    rows = [dict(r) for r in load_versioned(source, "sft", revision=revision, split="train")]
    wrong = None
    if kind == "wrong_answer":
        wrong = defaultdict(list)
        try:
            for r in load_versioned(source, "rejected", revision=revision, split="train"):
                wrong[r["problem_id"]].append(r["text"])
        except Exception:  # noqa: BLE001 — no `rejected` config: an MCTS dataset, read its trees
            for r in load_versioned(source, "trees", revision=revision, split="train"):
                tree = Tree.from_dict(json.loads(r["tree"]))
                wrong[r["problem_id"]].extend(tree.serialize_path(n.id) for n in tree.wrong_answers())
    out = perturb_rows(rows, kind, rate, seed, wrong_traces=wrong)
    changed = sum(1 for r in out if r["perturbation"]["n_changed"])
    print(f"[treecot perturb] {kind} at {rate}: {changed}/{len(out)} rows changed", flush=True)
    import hashlib

    run_hash = hashlib.sha256(f"{source}|{revision}|{kind}|{rate}|{seed}".encode()).hexdigest()[:12]
    card = {
        "pretty_name": f"treecot perturbation: {kind} {rate}",
        "description": (
            f"SkyThought-style `{kind}` perturbation at rate {rate} (seed {seed}) of the `sft` config of "
            f"`{source}`{' at ' + revision if revision else ''}. Each row's `perturbation` field logs what changed."
        ),
        "built_with": (
            f"Made by `treecot perturb` (treecot {__version__}) from the source dataset named above, for "
            "SkyThought's perturbation study: no search was run; the rows are the source's `sft` rows, some changed."
        ),
        "seeds": {"perturbation": seed},
        "yield": {"sft_rows": len(out)},
        "treecot_version": __version__,
    }
    configs = {"sft": Dataset.from_list(out)}
    kwargs = dict(card=card, config_hash=run_hash, tag=tag, force=force)
    if push_to_hub:
        result = push_dataset(push_to_hub, configs, **kwargs)
    else:
        target = output_dir or f"outputs/perturb/{kind}-{rate}"
        card["local_dir"] = str(target)
        result = push_dataset(f"{LOCAL_REPO_PREFIX}/perturb-{kind}", configs, local_dir=target, **kwargs)
    print(f"[treecot perturb] wrote {result.url_or_path} (branch {result.branch})", flush=True)
    return {"changed": changed, "rows": len(out), "result": result}
