"""What the `treecot` subcommands share: the user-error type, config overrides, push options, tables."""

from __future__ import annotations

import argparse

#: How a config's fields are set on the command line (the start of the epilog of the commands that read one).
OVERRIDES_HELP = (
    "Any field of the config can be set after the command as --dotted.field value (read as YAML, checked like "
    "the file's; a number indexes a list; null unsets), e.g. "
)


class CLIError(Exception):
    """A user error: printed as one line, exit status 2, no traceback."""


def accept_overrides(parser: argparse.ArgumentParser, example: str) -> None:
    """Let `parser`'s command take its config's fields as `--dotted.field value` (see `overrides`); `example`:
    overrides that work for this command's config, shown in its `--help`."""
    parser.set_defaults(accepts_overrides=True)
    parser.epilog = OVERRIDES_HELP + example + "."


def overrides(args: argparse.Namespace, error: type[Exception]) -> dict:
    """The command line's `--dotted.field value` overrides of a config (`treecot.configs.parse_overrides`)."""
    from treecot.configs import parse_overrides

    return parse_overrides(getattr(args, "overrides", None) or [], error)


def override_limit(recipe, limit: int | None):
    """`recipe` with `problems.limit` set to `--limit` (when given), checked by the recipe's own rules."""
    from treecot.recipe import RecipeError

    if limit is not None:
        recipe.problems.limit = limit
        try:
            recipe.problems.validate("problems")  # the recipe's own check of the overridden value
        except RecipeError as e:
            raise CLIError(f"--limit {limit}: {e}") from None
    return recipe


def push_args(parser: argparse.ArgumentParser) -> None:
    """The options of a command that pushes a dataset: `--push-to-hub`, `--tag`, `--force`."""
    parser.add_argument(
        "--push-to-hub", metavar="REPO", help="push to this Hub dataset repo (else the local layout)"
    )
    parser.add_argument("--tag", help="tag the run (e.g. v1) once the push is complete")
    parser.add_argument("--force", action="store_true", help="overwrite a complete run branch / move a tag")


def print_table(header: list[str], rows: list[tuple]) -> None:
    """Print `rows` under `header` as aligned plain-text columns."""
    cols = list(zip(header, *rows))
    widths = [max(len(str(c)) for c in col) for col in cols]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
