"""The Space's Gradio app: `SpaceApp` (the handlers of the three tabs), `build_app` (one function builds
each tab: `build_trees_tab`, `build_playground_tab`, `build_leaderboard_tab`) and `launch_space` (what
``treecot space`` runs)."""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING, Any

from treecot.space.config import SpaceConfig
from treecot.space.errors import guarded
from treecot.space.leaderboard import LeaderboardHandlers
from treecot.space.playground import LocalModel, PlaygroundHandlers
from treecot.space.render import (
    ANSWER_LABEL,
    ANSWER_LABEL_CORRECT,
    ANSWER_LABEL_WRONG,
    SHARED_PREFIX_COLOR,
    css,
    kind_color,
    known_tags,
)
from treecot.space.sources import LRU
from treecot.space.trees import TreesHandlers

if TYPE_CHECKING:
    import gradio as gr

TABS = ("trees", "playground", "leaderboard")
#: Largest file (bytes) gradio's upload route accepts: no component of the Space takes a file, so none.
MAX_UPLOAD_BYTES = 0
INTRO = (
    "# treecot\n"
    "Tree-structured chain-of-thought data built with Monte Carlo tree search (Marco-o1 v2, "
    "[arXiv 2503.01461](https://arxiv.org/abs/2503.01461)): look at search trees, try models, compare runs."
)


class SpaceApp(TreesHandlers, PlaygroundHandlers, LeaderboardHandlers):
    """The handlers of the three tabs, bound to one `SpaceConfig` (each returns component values).

    Args:
        config (`SpaceConfig`):
            What the app may read and the bounds of a request.
    """

    def __init__(self, config: SpaceConfig) -> None:
        self.config = config
        self._sources = LRU(4)
        self._local_models: list[LocalModel] | None = None
        self._models_scanned = float("-inf")
        self._models_lock = threading.Lock()


def route_from_url(config: SpaceConfig, request: gr.Request | None):
    """Page load: the tab and the Trees tab's dataset from the URL (``?tab=…&dataset=…``) or the config."""
    import gradio as gr

    params = dict(request.query_params) if request is not None else {}
    tab = params.get("tab", "trees")
    if tab not in TABS:
        tab = "trees"
    dataset = params.get("dataset") or config.dataset or ""
    return (
        gr.Tabs(selected=tab),
        dataset,
        params.get("revision") or "main",
        params.get("problem", ""),
        params.get("node", ""),
    )


def build_trees_tab(app: SpaceApp) -> tuple[list, list]:
    """Build the Trees tab (inside `build_app`'s tabs) and wire its events.

    Args:
        app (`SpaceApp`):
            The handlers.

    Returns:
        `tuple[list, list]`: the components the page load fills from the URL (dataset, revision, problem, node) and the outputs
        of `SpaceApp.initial_trees`.
    """
    import gradio as gr

    from treecot.search.show import CORRECT_COLOR, WRONG_COLOR

    config = app.config
    kind_colors = {
        k: kind_color(k)
        for k in (*known_tags().values(), ANSWER_LABEL, ANSWER_LABEL_CORRECT, ANSWER_LABEL_WRONG)
    }
    pair_colors = {"shared prefix": SHARED_PREFIX_COLOR, "chosen": CORRECT_COLOR, "rejected": WRONG_COLOR}
    roots = ", ".join(f"`{r}`" for r in config.roots) or "(none)"
    hub = " — or a Hub id" if config.allow_hub else ""
    with gr.Tab("Trees", id="trees"):
        gr.Markdown(
            "**Search trees.** Open a treecot dataset (a folder under the data roots — "
            f"{roots}{hub}) and pick a problem. Nodes are coloured by type (answers green "
            "when correct, red when wrong), their opacity grows with Q and their area with visits; "
            "hover for the text, drag to pan, scroll to zoom."
        )
        with gr.Row():
            dataset = gr.Textbox(
                label="Dataset (folder or Hub id)", scale=4, placeholder="outputs/demo/dataset"
            )
            revision = gr.Dropdown(
                label="Revision", choices=["main"], value="main", allow_custom_value=True, scale=1
            )
            open_btn = gr.Button("Open", variant="primary", scale=1)
        trees_status = gr.Markdown()
        problem = gr.Dropdown(label="Problem", choices=[], allow_custom_value=True)
        problem_md = gr.Markdown()
        tree_plot = gr.Plot(label="MCTS tree")
        with gr.Row():
            node = gr.Dropdown(label="Node", choices=[], allow_custom_value=True, scale=3)
        node_md = gr.Markdown()
        with gr.Row():
            node_text = gr.Textbox(label="Node text", lines=4, interactive=False)
            node_path = gr.Textbox(label="Path from the root", lines=8, interactive=False)
        sft_md = gr.Markdown()
        sft_path = gr.HighlightedText(
            label="SFT path (by node type)", color_map=kind_colors, show_legend=True
        )
        pair_md = gr.Markdown()
        with gr.Row():
            chosen = gr.HighlightedText(label="Chosen", color_map=pair_colors, show_legend=True)
            rejected = gr.HighlightedText(label="Rejected", color_map=pair_colors, show_legend=True)
        hint_problem = gr.Textbox(visible=False)
        hint_node = gr.Textbox(visible=False)

    problem_outputs = [
        problem_md, tree_plot, node, sft_md, sft_path, pair_md, chosen, rejected, node_md, node_text, node_path
    ]  # fmt: skip
    load_outputs = [problem, revision, trees_status]
    open_btn.click(
        guarded(app.load_dataset), [dataset, revision], load_outputs, api_name="load_dataset"
    ).success(
        guarded(app.show_problem),
        [dataset, revision, problem],
        problem_outputs,
        api_name="open_then_show_problem",
        api_visibility="private",
    )
    dataset.submit(
        guarded(app.load_dataset),
        [dataset, revision],
        load_outputs,
        api_name="submit_dataset",
        api_visibility="private",
    ).success(
        guarded(app.show_problem),
        [dataset, revision, problem],
        problem_outputs,
        api_name="submit_then_show_problem",
        api_visibility="private",
    )
    problem.input(
        guarded(app.show_problem), [dataset, revision, problem], problem_outputs, api_name="show_problem"
    )
    node.input(
        guarded(app.show_node),
        [dataset, revision, problem, node],
        [node_md, node_text, node_path, tree_plot],
        api_name="show_node",
    )
    return [dataset, revision, hint_problem, hint_node], [*load_outputs, *problem_outputs]


def build_playground_tab(app: SpaceApp) -> None:
    """Build the Playground tab (inside `build_app`'s tabs) and wire its events.

    Args:
        app (`SpaceApp`):
            The handlers.
    """
    import gradio as gr

    from treecot.tasks import task_names

    config = app.config
    with gr.Tab("Playground", id="playground"):
        gr.Markdown(
            "**Playground.** Ask a model a question, or draw one from a task to get the verifier's "
            "verdict. Reasoning nodes (`<thinking>`, `<double-check>`, …) fold into sections. "
            f"Limits: {config.max_input_chars} characters per question, {config.max_new_tokens} new "
            f"tokens, {config.request_timeout:g} s per request."
        )
        with gr.Row():
            model = gr.Dropdown(
                label="Model (name, Hub id or local folder; trained models under the data roots)",
                choices=app.model_choices(),
                value=config.model,
                allow_custom_value=True,
                scale=3,
            )
            models_btn = gr.Button("↻ Models", scale=0, min_width=80)
            task = gr.Dropdown(label="Task", choices=task_names(), value="gsm8k", scale=2)
            system_prompt = gr.Radio(
                label="System prompt",
                choices=["treecot", "task"],
                value="treecot",
                info="treecot: the prompt a trained model was trained with, else the tag guide",
                scale=2,
            )
        question = gr.Textbox(label="Question", lines=4, max_length=config.max_input_chars)
        with gr.Row():
            seed = gr.Number(label="Draw seed (-1: random)", value=-1, precision=0, scale=1)
            draw_btn = gr.Button("Draw a question from the task", scale=2)
        draw_info = gr.Markdown()
        with gr.Accordion("Problem record (reference answer for the verifier)", open=False):
            problem_json = gr.JSON(label="Problem")
        with gr.Row():
            max_new = gr.Slider(
                1,
                config.max_new_tokens,
                value=min(256, config.max_new_tokens),
                step=1,
                label="Max new tokens",
            )
            temperature = gr.Slider(0.0, 2.0, value=0.7, step=0.05, label="Temperature (0 = greedy)")
            use_mcts = gr.Checkbox(label="MCTS decode (token-confidence value)", value=False)
            rollouts = gr.Slider(
                1,
                config.max_mcts_rollouts,
                value=min(4, config.max_mcts_rollouts),
                step=1,
                label="MCTS rollouts",
            )
        run_btn = gr.Button("Generate", variant="primary")
        gen_status = gr.Markdown()
        answer_html = gr.HTML(label="Answer")
        verdict = gr.Markdown()
        with gr.Accordion("Raw text and diagnostics", open=False):
            raw_text = gr.Textbox(label="Raw model output", lines=6, interactive=False)
            diagnostics = gr.JSON(label="Diagnostics")
        mcts_plot = gr.Plot(label="MCTS decode tree")

    draw_btn.click(
        guarded(app.draw_question),
        [task, seed],
        [question, problem_json, draw_info],
        api_name="draw_question",
    )
    models_btn.click(
        guarded(app.refresh_models), [model], [model], api_name="list_models", api_visibility="private"
    )
    run_btn.click(
        guarded(app.generate),
        [model, task, question, problem_json, system_prompt, max_new, temperature, use_mcts, rollouts],
        [answer_html, raw_text, verdict, diagnostics, gen_status, mcts_plot],
        api_name="generate",
    )


def build_leaderboard_tab(app: SpaceApp) -> list:
    """Build the Leaderboard tab (inside `build_app`'s tabs) and wire its events.

    Args:
        app (`SpaceApp`):
            The handlers.

    Returns:
        `list`: the outputs of `SpaceApp.leaderboard` (and of `SpaceApp.initial_leaderboard`, on page load).
    """
    import gradio as gr

    with gr.Tab("Leaderboard", id="leaderboard"):
        gr.Markdown(
            "**Leaderboard.** Evaluated runs (`treecot eval` → `treecot leaderboard push`): one row per "
            "run, the chosen metric per task (rates in %), their mean and the no-answer rates. Click a "
            "column header to sort, use the search box or the filters; toggle the paper's reference "
            "rows on to put runs next to Marco-o1 v2's figures."
        )
        with gr.Row():
            lb_source = gr.Textbox(
                label="Leaderboard dataset (Hub id or folder)",
                value=app.config.leaderboard or "",
                scale=4,
            )
            lb_reference = gr.Checkbox(label="Show the paper's reference rows", value=False, scale=1)
            lb_btn = gr.Button("Load", variant="primary", scale=1)
        with gr.Row():
            lb_query = gr.Textbox(label="Filter runs (text)", scale=2)
            lb_task = gr.Dropdown(
                label="Task", choices=["all"], value="all", allow_custom_value=True, scale=1
            )
            lb_metric = gr.Dropdown(
                label="Metric",
                choices=["accuracy"],
                value="accuracy",
                allow_custom_value=True,
                scale=1,
            )
            lb_sort = gr.Dropdown(
                label="Sort by", choices=["mean"], value="mean", allow_custom_value=True, scale=1
            )
            lb_desc = gr.Checkbox(label="Descending", value=True, scale=1)
        lb_status = gr.Markdown()
        lb_table = gr.Dataframe(label="Runs", interactive=False, show_search="filter", wrap=True)
        with gr.Row():
            lb_bars = gr.Plot(label="Metric per task")
            lb_missing = gr.Plot(label="No-answer rate per task")
        gr.Markdown("**Compare two runs**")
        with gr.Row():
            run_a = gr.Dropdown(label="Run A", choices=[], allow_custom_value=True)
            run_b = gr.Dropdown(label="Run B", choices=[], allow_custom_value=True)
            cmp_btn = gr.Button("Compare")
        cmp_md = gr.Markdown()
        cmp_table = gr.Dataframe(
            label="A vs B", headers=["task", "metric", "A", "B", "B − A"], interactive=False
        )

    lb_inputs = [lb_source, lb_reference, lb_query, lb_task, lb_metric, lb_sort, lb_desc]
    lb_outputs = [lb_table, lb_bars, lb_missing, run_a, run_b, lb_task, lb_metric, lb_sort, lb_status]
    lb_btn.click(guarded(app.leaderboard), lb_inputs, lb_outputs, api_name="leaderboard")
    for trigger in (
        lb_reference.input,
        lb_query.submit,
        lb_task.input,
        lb_metric.input,
        lb_sort.input,
        lb_desc.input,
    ):
        trigger(guarded(app.leaderboard), lb_inputs, lb_outputs, api_visibility="private")
    cmp_btn.click(
        guarded(app.compare_runs),
        [lb_source, lb_reference, run_a, run_b],
        [cmp_table, cmp_md],
        api_name="compare_runs",
    )
    return lb_outputs


def build_app(config: SpaceConfig | None = None) -> gr.Blocks:
    """The Gradio Blocks app of the Space, its queue configured from `config`.

    Args:
        config (`SpaceConfig`, *optional*):
            What the app may read and the bounds of a request (default `SpaceConfig()`).

    Returns:
        `gr.Blocks`: the app (call `.launch()` or use `launch_space`); its handlers are `demo.treecot_app`.
    """
    import gradio as gr

    config = config or SpaceConfig()
    app = SpaceApp(config)
    with gr.Blocks(title="treecot") as demo:
        gr.Markdown(INTRO)
        with gr.Tabs(selected="trees") as tabs:
            from_url, trees_outputs = build_trees_tab(app)
            build_playground_tab(app)
            lb_outputs = build_leaderboard_tab(app)

        def route(request: gr.Request):
            return route_from_url(config, request)

        # A resolvable annotation: gradio injects the request by type hint (this module's are strings).
        route.__annotations__ = {"request": gr.Request}
        demo.load(route, None, [tabs, *from_url], api_visibility="private").then(
            app.initial_trees, from_url, trees_outputs, api_visibility="private"
        ).then(app.initial_leaderboard, None, lb_outputs, api_visibility="private")

    demo.queue(default_concurrency_limit=config.concurrency_limit, max_size=config.max_queue_size)
    demo.treecot_app = app  # type: ignore[attr-defined]  # the handlers, for tests and embedding
    return demo


def launch_kwargs() -> dict[str, Any]:
    """Arguments of `gr.Blocks.launch` shared by `launch_space` and `spaces/app.py`: errors shown as
    messages, the app's CSS, and gradio's upload route limited to `MAX_UPLOAD_BYTES` per file (gradio
    refuses a larger file with HTTP 413 while it streams in, before it is stored)."""
    return {"show_error": True, "css": css(), "max_file_size": MAX_UPLOAD_BYTES}


def launch_space(
    host: str = "127.0.0.1",
    port: int | None = 7860,
    *,
    config: SpaceConfig | None = None,
    block: bool = True,
    share: bool = False,
    **fields: Any,
) -> gr.Blocks:
    """`treecot space`: build the app and serve it on `host:port` (127.0.0.1 by default: local only).

    Args:
        host (`str`, *optional*, defaults to `"127.0.0.1"`):
            The address served.
        port (`int`, *optional*, defaults to `7860`):
            The port (None: a free one).
        config (`SpaceConfig`, *optional*):
            The app's configuration; `fields` override its fields.
        block (`bool`, *optional*, defaults to `True`):
            False runs the server in a background thread and returns the launched app (its URL is
            `demo.local_url`; stop it with `demo.close()`).
        share (`bool`, *optional*, defaults to `False`):
            gradio's `share=True`, a public gradio.live link to this server besides the local one (off by
            default).
        **fields (`Any`):
            `SpaceConfig` fields (``data_roots``, ``model``, ``allow_hub``, …); without `config`, the model
            menu holds only `model` unless ``models`` names more.

    Returns:
        `gr.Blocks`: the launched app.
    """
    if config is None:
        config = SpaceConfig(**{"models": (), **fields})
    elif fields:
        config = dataclasses.replace(config, **fields)
    demo = build_app(config)
    demo.launch(
        server_name=host, server_port=port, prevent_thread_lock=not block, share=share, **launch_kwargs()
    )
    return demo
