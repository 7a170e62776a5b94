"""`treecot verify`: score one completion with a task's verifier."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from treecot.commands.common import CLIError


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot verify` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser(
        "verify", help="score one completion with a task's verifier; prints the Verdict as JSON"
    )
    s.add_argument("--task", required=True, help="task name, e.g. gsm8k, math500, blocksworld, ifeval")
    s.add_argument("--problem-json", required=True, help="a JSON file with one Problem record")
    s.add_argument("--completion-file", required=True, help="a text file with the model's completion")
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot verify` with its parsed `args`; returns the exit status."""
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
