"""The `treecot` subcommands, one module per stage, each with `make_parser(subparsers)` (adds its subcommand to
`treecot`'s parser, as `trl/scripts/*.py` do) and `main(args)` (runs it and returns the exit status).

`treecot.cli` only registers them, in `COMMANDS` order, and turns user errors (`common.CLIError`, a bad file,
an unreachable Hub) into one line on stderr. Heavy imports happen inside each `main`, so `treecot --help`
stays instant.
"""

#: The subcommand modules, in the order `treecot --help` lists them.
COMMANDS = (
    "models",
    "sources",
    "verify",
    "generate",
    "show_tree",
    "build",
    "distill",
    "perturb",
    "eval",
    "leaderboard",
    "space",
    "demo",
    "ablate",
    "train",
)
