"""The treecot Gradio Space: a search-tree explorer, a model playground and the leaderboard.

    >>> from treecot.space import SpaceConfig, build_app, launch_space
    >>> demo = build_app(SpaceConfig(data_roots=["outputs"], leaderboard="me/treecot-leaderboard"))
    >>> launch_space(port=7860)                       # what `treecot space` runs (127.0.0.1 only)

The modules:

- `treecot.space.config`: `SpaceConfig`, what the app may read and the bounds of a request, with its
  defaults; `SpaceConfig.from_env` reads the Hugging Face Space's variables (``spaces/app.py``).
- `treecot.space.errors`: `SpaceError` (shown to the visitor as a message) and the time limit per request.
- `treecot.space.sources`: the data-root boundary (`open_checked`, `check_model_dir`) and the datasets of
  trees (`load_tree_source`).
- `treecot.space.render`: the Vega-Lite tree (`tree_plot_spec`), node labels, highlighted paths and pairs,
  a model answer's tags as sections (`render_sections`).
- `treecot.space.trees`, `treecot.space.playground`, `treecot.space.leaderboard`: each tab's data and
  handlers.
- `treecot.space.app`: `SpaceApp` (all handlers), `build_app` (one function per tab), `launch_space`.

Tabs (each reachable directly with ``?tab=trees|playground|leaderboard``):

1. **Trees** — a treecot dataset (a local folder under the data roots, written by ``treecot build``, a
   folder of ``trees-*.jsonl`` shards written by ``treecot generate``, or a Hub id + revision) and one
   of its problems: the MCTS tree as an interactive Vega-Lite chart (nodes coloured by type, answers
   by correctness, opacity = Q, size = visits, tooltips with the text, zoom and pan), a node picker
   showing the node's text and the path from the root, the SFT path and the chosen / rejected pair
   built from this tree with their shared prefix highlighted. ``?dataset=…&revision=…&problem=…&node=…``
   opens a tree directly.
2. **Playground** — a model (default SmolLM2-135M-Instruct; any Hub id or a local directory under the
   data roots; the menu also lists the trained models found under the data roots, `discover_models`)
   and a task; a question typed in or drawn from the task; the answer streams in with
   tagged reasoning nodes shown as collapsible sections; then the verifier's verdict and the
   diagnostics. A trained model is prompted with the system prompt it was trained with (the prompt
   contract of its ``treecot_provenance.json``). Optionally an MCTS decode (token-confidence value, small
   rollout budget) whose tree is drawn like the Trees tab's.
3. **Leaderboard** — the leaderboard dataset as a sortable, filterable table with a bar chart of a
   chosen metric, two runs side by side, and the paper's reference rows on request.

Bounds (`SpaceConfig`): the longest question accepted, the most new tokens, a time limit per request, a
queue with a size limit and a concurrency limit, and the file boundary:

* Data roots: every dataset file the app opens (a tree shard, a revision folder, a card, ``refs.json``, a
  parquet file) goes through `open_checked`, which resolves all symlinks and ``..`` of that very file and
  refuses it unless it lies inside one of the roots, at open time (the opened descriptor is checked
  again); a symlink anywhere in a dataset that leads outside makes the whole load a refusal naming it. A
  local model directory is refused when any file in it leads outside the roots; the trained models the
  playground lists are found by a bounded walk of the roots that resolves every folder and lists none
  that leads outside (`discover_models`).
* The Hub: a Hub id is read only with ``allow_hub=True`` (``treecot space --allow-hub``); off by default,
  because a Hub id reads the network or ``$TREECOT_CACHE/hub``, outside the roots. Hub ids the operator
  configured (`SpaceConfig.dataset`, ``.leaderboard``, ``.models``) are always read.
* Uploads: no component takes a file, so gradio's upload route is limited to `MAX_UPLOAD_BYTES` (0: every
  non-empty file is refused with HTTP 413) by `launch_kwargs` (gradio's ``max_file_size``).

Every handler turns failures into a message (`gradio.Error`); the traceback goes to the server log only.

Programmatic API (each event has an ``api_name``; `gradio_client.Client(url).view_api()` lists them):
``/load_dataset``, ``/show_problem``, ``/show_node``, ``/draw_question``, ``/generate``, ``/leaderboard``,
``/compare_runs``.
"""

import importlib
from typing import Any

#: Where each public name lives; loaded on first use (PEP 562), so that `treecot space --help` and
#: `from treecot.space.config import SpaceConfig` do not import the app, gradio or the model code.
_EXPORTS = {
    "ALLOW_HUB_HINT": "treecot.space.sources",
    "LocalModel": "treecot.space.playground",
    "MAX_LISTED_MODELS": "treecot.space.playground",
    "MAX_UPLOAD_BYTES": "treecot.space.app",
    "MODELS": "treecot.space.playground",
    "SpaceApp": "treecot.space.app",
    "SpaceConfig": "treecot.space.config",
    "SpaceError": "treecot.space.errors",
    "TreeSource": "treecot.space.sources",
    "build_app": "treecot.space.app",
    "check_adapter_base": "treecot.space.playground",
    "check_local_path": "treecot.space.sources",
    "check_model_dir": "treecot.space.sources",
    "compare_runs_frame": "treecot.space.leaderboard",
    "default_data_roots": "treecot.space.config",
    "discover_models": "treecot.space.playground",
    "launch_kwargs": "treecot.space.app",
    "launch_space": "treecot.space.app",
    "leaderboard_rows": "treecot.space.leaderboard",
    "leaderboard_views": "treecot.space.leaderboard",
    "load_tree_source": "treecot.space.sources",
    "open_checked": "treecot.space.sources",
    "read_provenance": "treecot.space.playground",
    "real_path": "treecot.space.sources",
    "render_sections": "treecot.space.render",
    "resolve_model": "treecot.space.playground",
    "split_tagged": "treecot.space.render",
    "tree_plot_spec": "treecot.space.render",
}


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'treecot.space' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "ALLOW_HUB_HINT",
    "MAX_LISTED_MODELS",
    "MAX_UPLOAD_BYTES",
    "MODELS",
    "LocalModel",
    "SpaceApp",
    "SpaceConfig",
    "SpaceError",
    "TreeSource",
    "build_app",
    "check_adapter_base",
    "check_local_path",
    "check_model_dir",
    "compare_runs_frame",
    "default_data_roots",
    "discover_models",
    "launch_kwargs",
    "launch_space",
    "leaderboard_rows",
    "leaderboard_views",
    "load_tree_source",
    "open_checked",
    "read_provenance",
    "real_path",
    "render_sections",
    "resolve_model",
    "split_tagged",
    "tree_plot_spec",
]
