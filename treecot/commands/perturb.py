"""`treecot perturb`: structure / content perturbations of a dataset's `sft` config (SkyThought)."""

from __future__ import annotations

import argparse

from treecot.commands.common import CLIError, push_args


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot perturb` to `subparsers` (`treecot.cli.build_parser`)."""
    from treecot.data.perturb import KINDS

    s = subparsers.add_parser(
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
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot perturb` with its parsed `args`; returns the exit status."""
    from treecot.pipeline.build import run_perturb

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
