"""The README's user journeys, walked in order, shortened: each step runs the command the README documents
(read from the README itself where it can be) and checks what the README says about its result.

One module-scoped working directory is the current directory for the whole walk, so the README's relative
paths (`outputs/gsm8k-mcts/trees`, `outputs/eval/…`) are used as written; `recipes` in it links to the
repository's `recipes/`. The CLI runs in-process (`treecot.cli.main`), the training scripts too
(`treecot sft` / `treecot dpo` through `treecot.cli.main`). Each test is one journey of the README's "User journeys" table;
a later journey reads what an earlier one wrote (`STATE`) and is skipped when that is missing.

Walked (README order):

1. look at what is available: `treecot models`, `treecot sources`, `treecot verify`, the Python snippet
   (`get_task("gsm8k")`, `task.load`, `task.verify`; `load_model("tiny")` instead of SmolLM2);
2. build a dataset: the README's recipe YAML (problems cut to 2, then 3, GSM8K test problems, a small
   search, `build.student: tiny`), `treecot generate` (then `--limit 3`, which resumes), `treecot show-tree
   … --problem <prefix> --png tree.png`, `treecot build` (and its rerun, which is skipped), the local layout,
   the card and the prompt contract. The search runs on the scripted generators of `tests/search/test_runner.py`
   (`fake_generators`, which know the first GSM8K *test* problems): the tiny random model never answers
   correctly, so its trees would give no SFT row and no pair;
3. load it at a version: the Python snippet's local calls (`load_versioned`, `list_versions`, `load_dataset`
   on `<dir>/v1`) and the row schemas the README lists;
4. train SFT, then cDPO: the README's CPU commands with `--model_name_or_path tiny --max_steps 1` added;
5. evaluate: `treecot eval` of the base `tiny` model and of both trained folders (2 problems, 8 new tokens)
   into the default `outputs/eval/<slug>/`; the trained models are evaluated under their training prompt,
   with the documented budget warning;
6. compare on the leaderboard: `treecot leaderboard push` (to a local folder under `outputs/`, one run twice),
   `compare` by eval folder, by trailing name part and with paper rows, an ambiguous name, and
   `reference --table table5`;
7. browse in the Space: `treecot space` with the README's options, its server launch replaced by a no-op;
   the app lists the trained models, opens the dataset at v1 (a tree, its SFT path and pair) and shows the
   leaderboard;
8. distil and perturb: the README's distill recipe (10 MATH problems, `min_difficulty: 3` kept; the teacher
   replaced by a scripted one, since no teacher server runs here) and both documented `treecot perturb`
   commands, as written.

Not walked: the demo (`make demo` / `treecot demo`: minutes on SmolLM2; `tests/test_demo.py` runs a
shortened one), the Table 5 ablation (`tests/test_ablate.py` covers `treecot ablate`), `accelerate launch`
and scale-out (GPUs, servers, many nodes: `tests/scripts/test_scripts.py` runs a 2-process CPU launch,
`tests/backends/` the backends), Hub pushes and Hub ids (no network in the suite), and the
`load_model("smollm2-135m-instruct")` line (`slow` tests load the real model).

`pytest -s tests/test_journeys.py` prints a table of the steps with their wall times at the end.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import yaml

from treecot.cli import main

pytestmark = pytest.mark.journey

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

#: (step, works: "yes" / "**no**" / "skipped", wall time in s), filled by `step` and `need`, printed when the
#: module's tests end.
WALK: list[tuple[str, str, float | None]] = []
#: what one journey leaves for the next ones.
STATE: dict = {}


# ---------------------------------------------------------------------------------------------- helpers
def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def documented(prefix: str) -> list[str]:
    """The argv (after the program) of the README command line in a ```bash block that starts with
    `prefix`; backslash continuations joined, comments dropped. Fails when the README no longer has it."""
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if line.startswith(prefix):
                return shlex.split(line, comments=True)[1:]
    raise AssertionError(f"the README no longer documents a command starting with {prefix!r}")


def documented_yaml(first_line: str) -> dict:
    """The README's ```yaml block that starts with `first_line`, parsed."""
    for block in _blocks("yaml"):
        if block.startswith(first_line):
            return yaml.safe_load(block)
    raise AssertionError(f"the README no longer has a YAML block starting with {first_line!r}")


def need(*keys: str) -> None:
    """Skip the calling journey (one row "skipped" in the table) when an earlier one left no `keys`."""
    missing = [k for k in keys if k not in STATE]
    if missing:
        journey = os.environ.get("PYTEST_CURRENT_TEST", "?").split("::")[-1].split(" ")[0]
        WALK.append((journey, "skipped", None))
        pytest.skip(f"needs {', '.join(missing)} from an earlier journey")


@contextmanager
def step(name: str):
    start = time.perf_counter()
    ok = False
    try:
        yield
        ok = True
    finally:
        WALK.append((name, "yes" if ok else "**no**", time.perf_counter() - start))


def cli(capsys, *argv: str) -> str:
    """`treecot ARGV…` in-process; its stdout (stderr shown on failure)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert code == 0, f"treecot {' '.join(argv)} exited {code}: {err[-2000:]}"
    return out


def layout_files(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory):
    """The walk's current directory, with `recipes` linked to the repository's; prints the table after."""
    work = tmp_path_factory.mktemp("journeys")
    (work / "recipes").symlink_to(ROOT / "recipes", target_is_directory=True)
    before = os.getcwd()
    os.chdir(work)
    try:
        yield work
    finally:
        os.chdir(before)
        rows = "\n".join(
            f"| {name} | {works} | {'–' if wall is None else f'{wall:.1f}'} |" for name, works, wall in WALK
        )
        print(f"\n\n| step | works | wall time (s) |\n|---|---|---:|\n{rows}\n")


# --------------------------------------------------------------------------------------------- journeys
def test_look_at_what_is_available(capsys):
    table = README.split("## User journeys", 1)[1]
    assert "`treecot models`, `treecot sources`, `treecot verify`" in table
    with step("treecot models"):
        assert documented("treecot models") == ["models"]
        out = cli(capsys, "models")
        assert "smollm2-135m-instruct" in out and "tiny" in out
    with step("treecot sources"):
        assert documented("treecot sources") == ["sources"]
        out = cli(capsys, "sources")
        assert all(name in out for name in ("gsm8k", "math500", "blocksworld", "arithmetic"))
    with step("python: get_task / load / verify"):
        from treecot.models import load_model
        from treecot.tasks import get_task

        assert 'task = get_task("gsm8k")' in README and 'problems = task.load("test")' in README
        snippet = 'verdict = task.verify(r"… The answer is: \\boxed{18}", problems[0])'
        assert snippet in README and "Verdict(correct=True, answered=True, extracted='18'" in README
        task = get_task("gsm8k")
        problems = task.load("test")
        verdict = task.verify(r"… The answer is: \boxed{18}", problems[0])
        assert (verdict.correct, verdict.answered, verdict.extracted) == (True, True, "18")
        assert '`load_model("smollm2-135m-instruct")` offline' in README and "`tiny` for tests" in README
        model, tokenizer = load_model("tiny")
        assert model is not None and tokenizer is not None
    with step("treecot verify"):
        doc = "treecot verify --task gsm8k --problem-json problem.json --completion-file answer.txt"
        assert doc in README
        Path("problem.json").write_text(json.dumps(dict(problems[0])))
        Path("answer.txt").write_text(r"… The answer is: \boxed{18}")
        out = cli(capsys, *shlex.split(doc)[1:])
        printed = json.loads(out)
        assert printed["correct"] is True and printed["extracted"] == "18"


def test_build_a_tree_cot_dataset(capsys, monkeypatch):
    from tests.pipeline.test_generate import fake_generators
    from treecot.pipeline import generate as runner

    monkeypatch.setattr(runner, "build_generators", lambda recipe: fake_generators())
    with step("recipe.yaml (the README's, shortened)"):
        recipe = documented_yaml("name: gsm8k-mcts")
        assert recipe["generate"]["output_dir"] == "outputs/gsm8k-mcts/trees"
        assert recipe["build"]["output_dir"] == "outputs/gsm8k-mcts/dataset"
        assert recipe["build"]["tag"] == "v1"
        # the scripted generators know the first GSM8K test problems; the tiny model stands in for the student
        recipe["problems"] = {"task": "gsm8k", "split": "test", "offset": 0, "limit": 2}
        recipe["generate"]["models"] = {"A": {"model": "tiny"}, "B": {"model": "tiny"}}
        search = {"stop_at_correct": 2, "max_rollouts": 6, "max_depth": 6, "max_node_tokens": 16}
        recipe["generate"]["search"] = search
        recipe["build"]["student"] = "tiny"
        Path("recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    with step("treecot generate recipe.yaml"):
        assert documented("treecot generate recipe.yaml") == ["generate", "recipe.yaml"]
        out = cli(capsys, "generate", "recipe.yaml", "--no-progress")
        assert "2 trees (2 new)" in out
        # the yield, the cost and how often backtracking happened
        for bit in ("yield ≥1 correct", "≥4 correct", "LLM calls", "prefill tokens", "cache-hit tokens",
                    "generated tokens", "reflections", "placed", "expanded", "through a reflection"):  # fmt: skip
            assert bit in out, (bit, out)
        trees_dir = Path("outputs/gsm8k-mcts/trees")
        shards = sorted(trees_dir.glob("trees-*.jsonl"))
        assert len(shards) == 1 and re.fullmatch(
            r"trees-[0-9a-f]+-shard-00000-of-00001\.jsonl", shards[0].name
        )
        config_hash = shards[0].name.split("-")[1]
        assert [p.name for p in trees_dir.glob("stats-*.json")] == [
            f"stats-{config_hash}-shard-00000-of-00001.json"
        ]
    with step("treecot generate recipe.yaml --limit 3 (resume)"):
        assert documented("treecot generate recipe.yaml --limit")[1:3] == ["recipe.yaml", "--limit"]
        out = cli(capsys, "generate", "recipe.yaml", "--limit", "3", "--no-progress")
        assert "3 trees (1 new)" in out, out
        shards = sorted(trees_dir.glob("trees-*.jsonl"))
        assert len(shards) == 1, "finished trees are kept: the --limit rerun extends the same shard"
        trees = [json.loads(line) for line in shards[0].read_text().splitlines()]
        assert len(trees) == 3
    with step("treecot show-tree SHARD --problem PREFIX --png tree.png"):
        doc = documented("treecot show-tree")
        assert doc[1].replace("<hash>", config_hash) == str(shards[0])
        assert doc[2:] == ["--problem", "gsm8k-18ab", "--png", "tree.png"]
        problem_id = trees[0]["problem"]["id"]
        assert problem_id.startswith("gsm8k-")
        out = cli(capsys, "show-tree", str(shards[0]), "--problem", problem_id[:10], "--png", "tree.png")
        assert f"problem {problem_id} (gsm8k)" in out and "answer" in out
        assert Path("tree.png").read_bytes()[:4] == b"\x89PNG"
    with step("treecot build recipe.yaml"):
        assert documented("treecot build recipe.yaml") == ["build", "recipe.yaml"]
        out = cli(capsys, "build", "recipe.yaml")
        assert "left out" not in out, out
        dataset = Path("outputs/gsm8k-mcts/dataset")
        # the local layout: refs.json, branches main and run-<12-char hash>, tag v1, one folder each
        refs = json.loads((dataset / "refs.json").read_text())
        runs = [p.name for p in dataset.iterdir() if p.name.startswith("run-")]
        assert len(runs) == 1 and re.fullmatch(r"run-[0-9a-f]{12}", runs[0]), runs
        assert set(refs["branches"]) == {"main", runs[0]} and refs["tags"]["v1"]["branch"] == runs[0]
        assert refs["branches"]["main"]["content"] == refs["branches"][runs[0]]["content"]
        for folder in ("main", "v1", *runs):
            files = layout_files(dataset / folder)
            for config in ("trees", "sft", "dpo"):
                assert f"data/{config}/train-00000-of-00001.parquet" in files, (folder, files)
            assert {"README.md", "treecot_push.json", "treecot_prompt.json"} <= files, (folder, files)
        assert (dataset / ".treecot.lock").exists()
        v1 = dataset / "v1"
        card = (v1 / "README.md").read_text()
        assert "load_versioned('outputs/gsm8k-mcts/dataset', 'sft', revision='v1')" in card
        sections = (
            "Prompt",
            "Recipe",
            "Models",
            "Seeds",
            "Yield",
            "Path quality",
            "Cost",
            "Length histograms",
        )
        assert all(f"\n## {section}\n" in card for section in sections), card
        # one prompt contract: the prompt the generators saw is the one written beside the data
        contract = json.loads((v1 / "treecot_prompt.json").read_text())
        STATE["system_prompt"] = contract["system_prompts"]["gsm8k"]
        assert all(t["generator"]["system_prompt"] == STATE["system_prompt"] for t in trees)
    with step("treecot build recipe.yaml (rerun: skipped)"):
        mtime = (v1 / "treecot_push.json").stat().st_mtime_ns
        out = cli(capsys, "build", "recipe.yaml")
        assert "skipped (already complete" in out, out
        assert (v1 / "treecot_push.json").stat().st_mtime_ns == mtime
    STATE["dataset"] = "outputs/gsm8k-mcts/dataset"


def test_load_a_dataset_at_a_version():
    need("dataset")
    from datasets import load_dataset

    from treecot.hub import list_versions, load_versioned

    with step("load_versioned / list_versions / load_dataset(<dir>/v1)"):
        assert 'load_versioned("outputs/gsm8k-mcts/dataset", "sft", revision="v1", split="train")' in README
        assert 'list_versions("outputs/gsm8k-mcts/dataset")' in README
        assert 'load_dataset("outputs/gsm8k-mcts/dataset/v1", "trees", split="train")' in README
        sft = load_versioned("outputs/gsm8k-mcts/dataset", "sft", revision="v1", split="train")
        versions = list_versions("outputs/gsm8k-mcts/dataset")
        trees = load_dataset("outputs/gsm8k-mcts/dataset/v1", "trees", split="train")
        dpo = load_versioned("outputs/gsm8k-mcts/dataset", "dpo", revision="v1", split="train")
        assert "main" in versions.branches and "v1" in versions.tags
        assert any(b.startswith("run-") for b in versions.branches)
        assert len(sft) >= 1 and len(dpo) >= 1 and len(trees) == 3
        for column in ("messages", "problem_id", "task", "node_ids", "n_tokens", "length_rank", "source"):
            assert column in sft.column_names, (column, sft.column_names)
        assert [m["role"] for m in sft[0]["messages"]] == ["system", "user", "assistant"]
        assert {row["messages"][0]["content"] for row in sft} == {STATE["system_prompt"]}
        for column in ("prompt", "chosen", "rejected", "shared_prefix", "shared_prefix_nodes", "pair_rule",
                       "rejected_defects"):  # fmt: skip
            assert column in dpo.column_names, (column, dpo.column_names)
        assert "tree" in trees.column_names and isinstance(json.loads(trees[0]["tree"]), dict)
    STATE["pair_problem"] = dpo[0]["problem_id"]
    with step("load_dataset(<dir>, 'sft') on the root fails as documented"):
        assert "BuilderConfig 'sft' not found" in README
        with pytest.raises(ValueError, match="BuilderConfig 'sft' not found"):
            load_dataset("outputs/gsm8k-mcts/dataset", "sft")


def test_train_balanced_sft_then_cdpo(capsys):
    need("dataset")
    pytest.importorskip("trl")
    from treecot.scripts import dpo, sft

    shorten = ["--max_steps", "1", "--logging_steps", "1", "--disable_tqdm", "true"]
    with step("treecot sft --help (and dpo)"):
        assert "`treecot sft --help` (and `dpo`) lists\n`--config YAML`" in README
        for script, option in ((sft, "--length_ranks"), (dpo, "--cdpo_epsilon")):
            capsys.readouterr()
            with pytest.raises(SystemExit):
                script.main(["--help"])
            text = capsys.readouterr().out
            assert "--config" in text and "--learning_rate" in text and option in text
    with step("treecot sft (CPU command, tiny, 1 step)"):
        argv = documented("treecot sft --config recipes/smollm2-135m-instruct/sft")
        assert argv[0] == "sft"
        argv = argv[1:]
        assert argv == ["--config", "recipes/smollm2-135m-instruct/sft/config_demo.yaml",
                        "--dataset_name", "outputs/gsm8k-mcts/dataset", "--dataset_revision", "v1",
                        "--output_dir", "outputs/smollm2-135m-instruct/sft-gsm8k-mcts"]  # fmt: skip
        assert main(["sft", *argv, "--model_name_or_path", "tiny", *shorten]) == 0
        out = Path("outputs/smollm2-135m-instruct/sft-gsm8k-mcts")
        assert (out / "config.json").exists()
        card = (out / "README.md").read_text()  # data, recipe, hyperparameters
        assert "`outputs/gsm8k-mcts/dataset`" in card
        assert "recipes/smollm2-135m-instruct/sft/config_demo.yaml" in card
        provenance = json.loads((out / "treecot_provenance.json").read_text())
        assert provenance["prompt_contract"]["system_prompts"]["gsm8k"] == STATE["system_prompt"]
    with step("treecot dpo (CPU command, from the SFT folder, 1 step)"):
        argv = documented("treecot dpo --config recipes/smollm2-135m-instruct/cdpo")[1:]
        assert argv[argv.index("--model_name_or_path") + 1] == str(out)
        assert main(["dpo", *argv, *shorten]) == 0
        cdpo = Path(argv[argv.index("--output_dir") + 1])
        assert cdpo == Path("outputs/smollm2-135m-instruct/cdpo-gsm8k-mcts")
        assert (cdpo / "config.json").exists()
        card = (cdpo / "README.md").read_text()
        assert f"`{out}`" in card and "recipes/smollm2-135m-instruct/cdpo/config_demo.yaml" in card
        provenance = json.loads((cdpo / "treecot_provenance.json").read_text())
        assert provenance["prompt_contract"]["system_prompts"]["gsm8k"] == STATE["system_prompt"]
    STATE["sft"], STATE["cdpo"] = str(out), str(cdpo)


def test_evaluate_with_lighteval(capsys):
    need("sft", "cdpo")
    from treecot.prompts import BudgetWarning

    short = ["--tasks", "gsm8k", "--limit", "2", "--max-new-tokens", "8", "--no-progress"]
    # a model name, and a trained model's folder
    assert documented("treecot eval smollm2-135m-instruct --tasks")[:2] == ["eval", "smollm2-135m-instruct"]
    assert documented("treecot eval outputs/smollm2-135m-instruct/cdpo-demo --tasks")[0] == "eval"
    assert "default `outputs/eval/<model slug>/`" in README
    assert "the slug of a directory is its last component" in README
    with step("treecot eval tiny (base model, task prompt)"):
        cli(capsys, "eval", "tiny", *short)
        base = Path("outputs/eval/tiny")
        assert {"summary.json", "summary.md"} <= {p.name for p in base.iterdir()}
        assert list(base.glob("results/results_*.json")) and (base / "details").is_dir()
        summary = json.loads((base / "summary.json").read_text())
        assert summary["prompt"]["sources"] == {"gsm8k": "task"}, summary["prompt"]
    evals = [str(base)]
    for kind in ("sft", "cdpo"):
        with step(f"treecot eval <{kind} folder> (trained: its training prompt)"):
            provenance = json.loads(Path(STATE[kind], "treecot_provenance.json").read_text())
            p95 = provenance["prompt_contract"]["response_tokens"]["gsm8k"]["p95"]
            # a budget below the 95th percentile of the training responses warns, naming both numbers
            warns = pytest.warns(BudgetWarning, match=rf"max_new_tokens=8 .*\({p95} tokens\)")
            with warns if p95 > 8 else nullcontext():
                cli(capsys, "eval", STATE[kind], *short)
            trained = Path("outputs/eval", Path(STATE[kind]).name)  # the slug of a directory: its last part
            assert (trained / "summary.md").exists()
            summary = json.loads((trained / "summary.json").read_text())
            assert summary["prompt"]["sources"] == {"gsm8k": "model"}, summary["prompt"]
            assert summary["prompt"]["system_prompts"]["gsm8k"] == STATE["system_prompt"]
            evals.append(str(trained))
    STATE["evals"] = evals


def test_compare_on_the_leaderboard(capsys):
    need("evals")
    from treecot.hub import load_versioned

    lb = "outputs/leaderboard"  # under the Space's data root
    base, sft, cdpo = STATE["evals"]
    with step("treecot leaderboard push (3 runs, one pushed twice)"):
        doc = documented("treecot leaderboard push")
        assert doc[:3] == ["leaderboard", "push", "outputs/eval/smollm2-135m-instruct"]
        assert "`--local-dir DIR` uses a local folder" in README
        for folder in (base, sft, cdpo, cdpo):  # pushing the same run twice does not duplicate it
            assert "wrote the local leaderboard" in cli(
                capsys, "leaderboard", "push", folder, "--local-dir", lb
            )
        rows = load_versioned(lb, "results", split="train").to_pandas()
        per_model = rows.groupby("model").size()
        assert len(per_model) == 3 and per_model.nunique() == 1, per_model
    with step("treecot leaderboard compare (eval folder, trailing name part, paper row)"):
        doc = documented("treecot leaderboard compare outputs/eval/")
        assert doc[2:5] == ["outputs/eval/smollm2-135m-instruct", "outputs/eval/cdpo-demo",
                            "paper:Llama-3.1-8B-Instruct"] and "--output" in doc  # fmt: skip
        assert "by the eval folder that was pushed" in README
        assert "by an unambiguous trailing part of its name" in README
        out = cli(capsys, "leaderboard", "compare", base, "cdpo-gsm8k-mcts", "paper:Llama-3.1-8B-Instruct",
                  "--local-dir", lb, "--output", "compare.png")  # fmt: skip
        table = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| task")]
        assert table[0].startswith("| gsm8k | tiny | 2 |"), out  # tasks every run has first, with n
        trained = "| gsm8k | outputs/smollm2-135m-instruct/cdpo-gsm8k-mcts | 2 |"
        assert any(line.startswith(trained) for line in table), out
        assert any("Llama-3.1-8B-Instruct (paper)" in line for line in table) and "n/a" in out
        assert re.search(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", out), out  # 95% intervals
        assert Path("compare.png").read_bytes()[:4] == b"\x89PNG"
    with step("treecot leaderboard compare NAME 'paper:…' --metric accuracy --tasks gsm8k,math500"):
        doc = documented("treecot leaderboard compare smollm2-135m-instruct")
        assert doc[3] == "paper:Llama-3.2-1B-Instruct + Our Data"
        assert doc[-4:] == ["--metric", "accuracy", "--tasks", "gsm8k,math500"]
        out = cli(capsys, "leaderboard", "compare", "tiny", doc[3], "--local-dir", lb,
                  "--metric", "accuracy", "--tasks", "gsm8k,math500", "--output", "compare2.png")  # fmt: skip
        assert "| gsm8k | tiny |" in out and "| math500 | Llama-3.2-1B-Instruct + Our Data (paper) |" in out
    with step("treecot leaderboard compare: an ambiguous name fails in one line"):
        capsys.readouterr()
        assert main(["leaderboard", "compare", "gsm8k-mcts", "--local-dir", lb]) == 2  # sft-… and cdpo-…
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert "cdpo-gsm8k-mcts" in err and "sft-gsm8k-mcts" in err, err  # the candidates
    with step("treecot leaderboard reference --table table5"):
        assert documented("treecot leaderboard reference")[1:] == ["reference", "--table", "table5"]
        out = cli(capsys, "leaderboard", "reference", "--table", "table5")
        for row in ("SFT on our data", "+ DPO", "+ Data Balance", "+ cDPO", "+ Joint Loss", "+ Masking"):
            assert f"table5: Llama-3.1-8B-Instruct {row}" in out, (row, out)
    STATE["leaderboard"] = lb


def test_browse_trees_and_try_models_in_the_space(capsys, monkeypatch):
    need("dataset", "sft", "cdpo", "leaderboard", "pair_problem")
    import gradio as gr

    launched = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launched.append((self, kw)))
    with step("treecot space --data-root outputs --leaderboard … --dataset … (no server)"):
        doc = documented("treecot space --data-root outputs --leaderboard")
        assert doc == ["space", "--data-root", "outputs", "--leaderboard", "<you>/treecot-leaderboard",
                       "--dataset", "outputs/gsm8k-mcts/dataset"]  # fmt: skip
        doc[4] = STATE["leaderboard"]  # the local leaderboard, under the data root
        cli(capsys, *doc)
        ((demo, kwargs),) = launched
        assert "treecot space                                              # http://127.0.0.1:7860" in README
        assert kwargs["server_name"] == "127.0.0.1" and kwargs["server_port"] == 7860 and not kwargs["share"]
        app = demo.treecot_app
        assert app.config.roots == [Path("outputs").resolve()]
    with step("Space playground: the trained models are in the model menu"):
        choices = {path: label for label, path in app.model_choices()}
        assert next(iter(choices)) == "smollm2-135m-instruct"  # the default model first
        for kind in ("sft", "cdpo"):
            label = choices.get(str(Path(STATE[kind]).resolve()))
            assert label and "(trained" in label and "outputs/gsm8k-mcts/dataset@v1" in label, choices
    with step("Space trees: the dataset at v1, a tree with its SFT path and pair"):
        src = app.source(STATE["dataset"], "v1")
        assert (src.kind, src.revision, len(src.trees)) == ("layout", "v1", 3) and "v1" in src.revisions
        assert src.sft is not None and src.dpo is not None
        shown = app.show_problem(STATE["dataset"], "v1", STATE["pair_problem"][:10])
        assert shown[3].startswith("**SFT path**") and "row(s)" in shown[3], shown[3]
        assert shown[5].startswith("**Preference pair** ("), shown[5]
    with step("Space leaderboard: the pushed runs"):
        status = app.leaderboard(STATE["leaderboard"])[-1]
        assert status.startswith("3 of 3 runs"), status


class ScriptedTeacher:
    """The teacher of the distill journey (no teacher server runs here): per problem, a four-step trace with
    the reference answer, then one with a wrong answer."""

    model_id = "scripted-teacher"

    def __init__(self, problems: list[dict]):
        self.problems = problems

    def apply_chat_template(self, messages, add_generation_prompt=True):
        return "\n".join(m["content"] for m in messages)

    def generate(self, requests):
        from treecot.backends import Completion, GenerationResult

        steps = "First, read the problem.\n\nThen compute carefully.\n\nCheck it.\n\nSo the answer is "
        out = []
        for request in requests:
            ref = next(p["reference"] for p in self.problems if p["question"] in request.prompt)
            texts = [f"{steps}$\\boxed{{{answer}}}$." for answer in (ref, "123456789")][: request.n]
            out.append(GenerationResult([Completion(t, len(t.split())) for t in texts]))
        return out


def test_distil_long_cot_and_perturb_it(capsys, monkeypatch):
    need("dataset")
    import treecot.backends
    from treecot.hub import load_versioned
    from treecot.tasks import get_task

    with step("distill recipe (the README's, shortened; scripted teacher)"):
        recipe = documented_yaml("name: math-distill")
        distill = recipe["distill"]
        assert distill["teacher"]["backend"] == "openai" and distill["min_difficulty"] == 3
        assert distill["output_dir"] == "outputs/math-distill" and "offset" not in recipe["problems"]
        recipe["problems"]["limit"] = 10  # MATH train 0-9: levels 5 5 3 3 3 4 5 1 2 5
        distill.update({"student": "tiny", "samples": 2, "max_tokens": 64})
        Path("distill.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
        task = get_task(recipe["problems"]["task"])
        problems = list(task.load(recipe["problems"]["split"]).select(range(10)))
        hard = {p["id"] for p in problems if int(p["meta"]["level"].split()[-1]) >= 3}
        assert 0 < len(hard) < len(problems)
        monkeypatch.setattr(
            treecot.backends, "make_generator", lambda spec, seed=0: ScriptedTeacher(problems)
        )
    with step("treecot distill recipe.yaml"):
        assert documented("treecot distill recipe.yaml") == ["distill", "recipe.yaml"]
        out = cli(capsys, "distill", "distill.yaml")
        n = len(hard)
        assert f"samples: {n} accepted, {n} rejected" in out, out
        rows = load_versioned("outputs/math-distill", "sft", split="train")
        assert set(rows["problem_id"]) == hard and set(rows["source"]) == {"distill"}  # min_difficulty: 3
        assert len(load_versioned("outputs/math-distill", "rejected", split="train")) == n
    with step("treecot perturb outputs/math-distill --kind shuffle --rate 0.67 --seed 0"):
        doc = documented("treecot perturb outputs/math-distill")
        assert doc == ["perturb", "outputs/math-distill", "--kind", "shuffle", "--rate", "0.67", "--seed", "0",
                       "--output-dir", "outputs/perturb/shuffle-0.67"]  # fmt: skip
        out = cli(capsys, *doc)
        changed = re.search(r"(\d+)/(\d+) rows changed", out)
        assert changed and int(changed[1]) > 0 and int(changed[2]) == n, out
        shuffled = {r["problem_id"]: r for r in load_versioned(doc[-1], "sft", split="train")}
        for row in rows:  # the same problems; steps moved, the final answer untouched
            before = row["messages"][-1]["content"].split("\n\n")
            after = shuffled[row["problem_id"]]["messages"][-1]["content"].split("\n\n")
            assert sorted(after) == sorted(before) and after[-1] == before[-1]
            assert shuffled[row["problem_id"]]["perturbation"]["kind"] == "shuffle"
    with step("treecot perturb outputs/gsm8k-mcts/dataset --revision v1 --kind wrong_answer"):
        doc = documented("treecot perturb outputs/gsm8k-mcts/dataset")
        assert doc == ["perturb", "outputs/gsm8k-mcts/dataset", "--revision", "v1", "--kind", "wrong_answer",
                       "--output-dir", "outputs/perturb/wrong"]  # fmt: skip
        out = cli(capsys, *doc)
        original = load_versioned(STATE["dataset"], "sft", revision="v1", split="train")
        wrong = load_versioned(doc[-1], "sft", split="train")
        n_changed = sum(r["perturbation"]["n_changed"] > 0 for r in wrong)
        assert f"{n_changed}/{len(original)} rows changed" in out and n_changed > 0, out
        assert sorted(wrong["problem_id"]) == sorted(original["problem_id"])  # the original's problems kept
        task = get_task("gsm8k")
        records = {p["id"]: p for p in task.load("test").select(range(3))}
        for row in wrong:  # the whole trace swapped for a failed one, wrong final answer included
            verdict = task.verify(row["messages"][-1]["content"], records[row["problem_id"]])
            assert verdict.correct == (row["perturbation"]["n_changed"] == 0), row["perturbation"]
