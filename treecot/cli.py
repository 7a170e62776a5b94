"""The `treecot` command line.

    treecot models                      what models are available offline / online
    treecot sources                     problem sets with their row counts
    treecot verify --task gsm8k --problem-json P.json --completion-file C.txt
    treecot demo                        the end-to-end demo on the embedded default model (offline)
    treecot sft --config RECIPE.yaml    balanced SFT (same as `accelerate launch -m treecot.scripts.sft …`)
    treecot dpo --config RECIPE.yaml    cDPO (same as `accelerate launch -m treecot.scripts.dpo …`)

Each subcommand is a module of `treecot.commands` with `make_parser(subparsers)` and `main(args)`; this module
only registers them and reports errors. Heavy imports happen inside each `main`, so `treecot --help` stays
instant.

An error of the user or of the machine (a bad argument or file, a path that cannot be written, a Hub that
fails or cannot be reached, see `environment_error`) is one line on stderr and exit status 2; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import copy
import errno
import importlib
import os
import re
import sys

from treecot import __version__
from treecot.commands import COMMANDS, train
from treecot.commands.common import CLIError
from treecot.commands.train import TRAINING_COMMANDS

# --------------------------------------------------------------------------- parser


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
    """`treecot`'s parser: each module of `treecot.commands` adds its subcommand."""
    p = argparse.ArgumentParser(
        prog="treecot",
        description="Tree-structured chain-of-thought data (MCTS) and CoT-aware post-training for small models.",
    )
    p.add_argument("--version", action="version", version=f"treecot {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"treecot.commands.{name}").make_parser(sub)
    _use_formatter(p, DefaultsHelpFormatter)
    return p


def split_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[list[str], list[str]]:
    """`(argv for argparse, config overrides)`: for a command that reads a config (`common.accept_overrides`),
    every `--name` that is not one of the command's own options (exactly: no abbreviation), with its value,
    is an override (`--generate.search.max_rollouts 8` or `--generate.search.max_rollouts=8`), wherever it
    stands, so a value is never taken for the command's positional argument."""
    sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
    command = sub.choices.get(argv[0]) if sub is not None and argv else None
    if command is None or not command.get_default("accepts_overrides"):
        return argv, []
    own = set(command._option_string_actions)
    kept, extra = [argv[0]], []
    i = 1
    while i < len(argv):
        token = argv[i]
        if token == "--":
            kept += argv[i:]
            break
        if token.startswith("--") and token.split("=", 1)[0] not in own:
            extra.append(token)
            if "=" not in token and i + 1 < len(argv):
                extra.append(argv[i + 1])
                i += 1
        else:
            kept.append(token)
        i += 1
    return kept, extra


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in TRAINING_COMMANDS:
        command, run = argv[0], lambda: train.main(argv[0], argv[1:])
    else:
        argv, extra = split_overrides(parser, argv)
        args = parser.parse_args(argv)
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
