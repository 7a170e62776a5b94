"""`treecot space`: the Gradio Space (trees, playground, leaderboard), launched locally (`treecot.space`)."""

from __future__ import annotations

import argparse


def make_parser(subparsers) -> argparse.ArgumentParser:
    """Add `treecot space` to `subparsers` (`treecot.cli.build_parser`)."""
    from treecot.space.config import SpaceConfig  # the Space's defaults

    s = subparsers.add_parser(
        "space", help="launch the Gradio Space (trees, playground, leaderboard) locally"
    )
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
    s.set_defaults(func=main)
    return s


def main(args: argparse.Namespace) -> int:
    """Run `treecot space` with its parsed `args`; returns the exit status."""
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
