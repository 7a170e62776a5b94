"""`treecot sft` / `treecot dpo`: the TRL training scripts (`treecot.scripts.sft` / `.dpo`) as subcommands.

`treecot sft …` hands the rest of the command line to `treecot.scripts.sft.main`, parsed by the script's own
`TrlParser` (as `trl sft …` does), so every recipe key is a `--key value` flag; the same script runs under
`accelerate launch -m treecot.scripts.sft …`.
"""

from __future__ import annotations

import importlib

#: The training subcommands and their one-line help.
TRAINING_COMMANDS = {
    "sft": "balanced SFT on a treecot dataset's `sft` config (TRL recipe; `treecot sft --help` lists every key)",
    "dpo": "cDPO / DPO on a treecot dataset's `dpo` config (TRL recipe; `treecot dpo --help` lists every key)",
}


def make_parser(subparsers) -> None:
    """List `treecot sft` and `treecot dpo` in `subparsers`; `treecot.cli.main` hands their flags to `main`."""
    for command, summary in TRAINING_COMMANDS.items():
        subparsers.add_parser(command, help=summary, add_help=False)


def main(command: str, argv: list[str]) -> int:
    """Run training script `command` (`sft` or `dpo`) on `argv` (its flags, `--config` included)."""
    importlib.import_module(f"treecot.scripts.{command}").main(argv, prog=f"treecot {command}")
    return 0
