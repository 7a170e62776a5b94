"""The `treecot` command line: help, listings, verify and its error messages."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from treecot.cli import main


def test_help_lists_subcommands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for cmd in ("models", "sources", "verify", "demo"):
        assert cmd in out


def _help(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_every_help_shows_the_defaults(capsys):
    space = _help(capsys, ["space"])
    assert "--host HOST (default: 127.0.0.1)" in space and "--port PORT (default: 7860)" in space
    assert "the playground's model at start (default: smollm2-135m-instruct)" in space
    assert "time limit per request (s) (default: 120.0)" in space
    assert "(default: None)" not in space and "(default: False)" not in space, "nothing to say: not shown"
    perturb = _help(capsys, ["perturb"])
    assert "(default: 1.0)" in perturb and "--seed SEED (default: 0)" in perturb
    assert "(default main) (default" not in perturb, "a help text that states its default keeps it"
    assert "(default: gsm8k)" in _help(capsys, ["eval"]) and "(default: 1024)" in _help(capsys, ["eval"])
    assert "--metric METRIC (default: accuracy)" in _help(capsys, ["leaderboard", "compare"]), "nested too"
    assert "words of node text to show (default: 12)" in _help(capsys, ["show-tree"])


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "treecot.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("treecot ")


def test_models_lists_offline_and_online(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m-instruct" in out and "HuggingFaceTB/SmolLM2-135M-Instruct" in out and "tiny" in out
    assert "98 MB GGUF" in out


def test_sources_lists_row_counts(capsys):
    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    for name, rows in [("gsm8k", "7,473"), ("gsm8k", "1,319"), ("math", "7,500"), ("math", "5,000"),
                       ("math500", "500"), ("aime24", "30"), ("aime25", "15"), ("ifbench", "294")]:  # fmt: skip
        assert any(line.split()[:1] == [name] and rows in line.split() for line in out.splitlines()), (
            name,
            rows,
        )
    assert "openai/gsm8k" in out
    generated = next(line for line in out.splitlines() if line.startswith("Generated on the fly"))
    assert "arithmetic" in generated and "Multi-IF itself is not offline and not an eval task" in generated


def test_sources_lists_planbench_and_how_to_get_it(capsys, monkeypatch, tmp_path):
    fixture = Path(__file__).parent / "fixtures" / "data" / "planbench"

    def planbench_row() -> str:
        assert main(["sources"]) == 0
        out = capsys.readouterr().out
        assert "planbench_zeroshot" in out and "$TREECOT_PLANBENCH" in out  # the note under the table
        (line,) = [row for row in out.splitlines() if row.split()[:1] == ["planbench"]]
        assert line.split()[1:3] == ["test", "500"] and line.split()[-1] == "tasksource/planbench"
        return line

    monkeypatch.setenv("TREECOT_PLANBENCH", str(fixture))
    assert f"TREECOT_PLANBENCH={fixture} " in planbench_row()  # offline: the checkout it reads
    monkeypatch.delenv("TREECOT_PLANBENCH")
    assert "no (git clone https://github.com/karthikv792/LLMs-Planning, set TREECOT_PLANBENCH to it)" in (
        planbench_row()
    )
    monkeypatch.setenv("TREECOT_PLANBENCH", str(tmp_path))
    line = planbench_row()
    assert f"no (TREECOT_PLANBENCH={tmp_path} holds no plan-bench/prompts/blocksworld/" in line


@pytest.fixture
def problem_file(tmp_path):
    p = tmp_path / "problem.json"
    p.write_text(json.dumps({"task": "gsm8k", "question": "2+2?", "reference": "4", "meta": {}}))
    return p


def test_verify_errors_name_the_bad_input(tmp_path, problem_file, capsys):
    completion = tmp_path / "c.txt"
    completion.write_text("The answer is 4")
    assert main(["verify", "--task", "gsm8k", "--problem-json", str(tmp_path / "nope.json"),
                 "--completion-file", str(completion)]) == 2  # fmt: skip
    assert "--problem-json: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert (
        main(["verify", "--task", "gsm8k", "--problem-json", str(bad), "--completion-file", str(completion)])
        == 2
    )
    assert "is not valid JSON" in capsys.readouterr().err
    bad.write_text(json.dumps(["a list"]))
    assert (
        main(["verify", "--task", "gsm8k", "--problem-json", str(bad), "--completion-file", str(completion)])
        == 2
    )
    assert "must hold one Problem object" in capsys.readouterr().err
    assert main(["verify", "--task", "gsm8k", "--problem-json", str(problem_file),
                 "--completion-file", str(tmp_path / "none.txt")]) == 2  # fmt: skip
    assert "--completion-file: no such file" in capsys.readouterr().err
    assert main(["verify", "--task", "nosuchtask", "--problem-json", str(problem_file),
                 "--completion-file", str(completion)]) == 2  # fmt: skip
    assert "unknown task 'nosuchtask'; known tasks: gsm8k" in capsys.readouterr().err


@pytest.mark.parametrize(
    "task, record, field",
    [
        ("gsm8k", {"question": "2+2?", "reference": ""}, "reference: empty 'reference'"),
        ("arithmetic", {"question": "2+2?", "reference": "  "}, "reference: empty 'reference'"),
        ("blocksworld", {"id": "bw-1", "question": "q", "reference": "(pick-up red)"}, "meta.init: missing"),
        (
            "blocksworld",
            {"question": "q", "reference": "x", "meta": {"init": [], "goal": []}},
            "meta.optimal_length",
        ),
        ("ifeval", {"question": "q", "reference": "18"}, "reference: must be a JSON object"),
        (
            "ifbench",
            {"question": "q", "reference": "[" * 5000 + "]" * 5000},
            "reference: no valid instruction",
        ),
        ("multi_if", {"question": "q", "reference": "[]", "meta": None}, "reference: a multi-turn reference"),
    ],
)
def test_verify_malformed_problems_are_one_line_errors(tmp_path, capsys, task, record, field):
    problem = tmp_path / "p.json"
    problem.write_text(json.dumps(record))
    completion = tmp_path / "c.txt"
    completion.write_text("The answer is \\boxed{4}")
    assert (
        main(["verify", "--task", task, "--problem-json", str(problem), "--completion-file", str(completion)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"treecot verify: error: --problem-json {str(problem)!r}: problem "
    )
    assert field in err and (record.get("id", "(without id)") in err)


def test_verify_deeply_nested_problem_json_is_a_message(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text('{"question": "q", "reference": ' + "[" * 100_000 + "]" * 100_000 + "}")
    completion = tmp_path / "c.txt"
    completion.write_text("4")
    assert (
        main(["verify", "--task", "gsm8k", "--problem-json", str(deep), "--completion-file", str(completion)])
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(deep) in err and "nested too deeply" in err


def test_generate_refuses_a_negative_limit_like_the_recipe(tmp_path, capsys, monkeypatch):
    import yaml

    from tests.pipeline.test_generate import recipe_dict
    from treecot.pipeline import generate as runner

    def never(recipe):
        raise AssertionError("no generator may be built for a refused run")

    monkeypatch.setattr(runner, "build_generators", never)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=5)))
    assert main(["generate", str(recipe), "--limit", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == "treecot generate: error: --limit -1: problems.offset/limit: must be >= 0\n"
    assert not (tmp_path / "trees").exists()


def _distill_recipe(tmp_path, limit):
    import yaml

    recipe = tmp_path / "d.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "d",
        "problems": {"task": "gsm8k", "split": "test", "limit": limit},
        "distill": {"student": "tiny", "samples": 2, "output_dir": str(tmp_path / "distill")},
    }))  # fmt: skip
    return recipe


def test_distill_limit_overrides_the_recipe(tmp_path, capsys, monkeypatch):
    import treecot.backends
    from tests.data.test_distill import ScriptedTeacher
    from treecot.hub import load_versioned
    from treecot.tasks.sources import load_source

    script = {p["question"]: [f"Solution: \\boxed{{{p['reference']}}}", "no answer"]
              for p in load_source("gsm8k", "test", limit=3)}  # fmt: skip
    teacher = ScriptedTeacher(script)
    monkeypatch.setattr(treecot.backends, "make_generator", lambda spec, seed=0: teacher)
    assert main(["distill", str(_distill_recipe(tmp_path, 3)), "--limit", "1"]) == 0
    assert "[treecot distill] 1 problems, 2 samples: 1 accepted" in capsys.readouterr().out
    assert len({r.prompt for r in teacher.requests}) == 1, "the teacher saw one problem, not the recipe's 3"
    assert len(load_versioned(str(tmp_path / "distill"), "sft", split="train")) == 1


def test_distill_refuses_a_negative_limit_like_the_recipe(tmp_path, capsys, monkeypatch):
    import treecot.backends

    def never(spec, seed=0):
        raise AssertionError("no teacher may be built for a refused run")

    monkeypatch.setattr(treecot.backends, "make_generator", never)
    assert main(["distill", str(_distill_recipe(tmp_path, 3)), "--limit", "-1"]) == 2
    err = capsys.readouterr().err
    assert err == "treecot distill: error: --limit -1: problems.offset/limit: must be >= 0\n"
    assert not (tmp_path / "distill").exists()


def test_generate_and_show_tree_commands(tmp_path, capsys, monkeypatch):
    import yaml

    from tests.pipeline.test_generate import fake_generators, recipe_dict
    from treecot.pipeline import generate as runner

    monkeypatch.setattr(runner, "build_generators", lambda recipe: fake_generators())
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=5)))
    assert main(["generate", str(recipe), "--limit", "2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "2 trees (2 new)" in out
    shard = next((tmp_path / "trees").glob("trees-*.jsonl"))
    png = tmp_path / "tree.png"
    first = json.loads(shard.read_text().splitlines()[0])["problem"]["id"]
    assert main(["show-tree", str(shard), "--png", str(png)]) == 2
    assert "choose one with --problem" in capsys.readouterr().err
    assert main(["show-tree", str(shard), "--problem", first, "--png", str(png)]) == 0
    view = capsys.readouterr().out
    assert "sub_task" in view and "answer" in view and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["show-tree", str(shard), "--problem", "nope"]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["generate", str(recipe), "--shard", "3/2"]) == 2
    assert "--shard '3/2'" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"problems": {"task": "gsm8k"}, "generate": {"search": {"c": -1}}}))
    assert main(["generate", str(bad)]) == 2
    assert "generate.search" in capsys.readouterr().err


def test_build_and_perturb_commands(tmp_path, capsys, monkeypatch):
    import yaml

    from tests.pipeline.test_generate import fake_generators, recipe_dict
    from treecot.pipeline import generate as runner

    monkeypatch.setattr(runner, "build_generators", lambda recipe: fake_generators())
    d = recipe_dict(tmp_path / "trees", limit=2)
    d["build"] = {"student": "tiny", "output_dir": str(tmp_path / "ds")}
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(d))
    assert main(["generate", str(recipe), "--no-progress"]) == 0
    assert main(["build", str(recipe), "--tag", "v1"]) == 0
    assert "2 trees → 2 SFT rows" in capsys.readouterr().out
    assert main(["perturb", str(tmp_path / "ds"), "--kind", "delete", "--rate", "0.5", "--revision", "v1",
                 "--output-dir", str(tmp_path / "p")]) == 0  # fmt: skip
    assert "rows changed" in capsys.readouterr().out
    assert main(["perturb", str(tmp_path / "ds"), "--kind", "delete", "--rate", "2"]) == 2
    assert "rate must be between 0 and 1" in capsys.readouterr().err
    assert main(["build", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_space_command_passes_its_options(monkeypatch):
    import treecot.space

    seen = {}
    monkeypatch.setattr(treecot.space, "launch_space", lambda **kw: seen.update(kw))
    assert main(["space", "--port", "7999", "--data-root", "a", "--data-root", "b", "--max-new-tokens", "64",
                 "--concurrency", "2", "--timeout", "30"]) == 0  # fmt: skip
    assert seen["port"] == 7999 and seen["host"] == "127.0.0.1" and seen["data_roots"] == ["a", "b"]
    assert seen["max_new_tokens"] == 64 and seen["concurrency_limit"] == 2 and seen["request_timeout"] == 30.0
    assert seen["allow_hub"] is False
    assert main(["space", "--allow-hub"]) == 0 and seen["allow_hub"] is True
    assert seen["share"] is False
    assert main(["space", "--share"]) == 0 and seen["share"] is True


def test_leaderboard_and_eval_commands_are_wired(capsys):
    assert main(["leaderboard", "reference"]) == 0
    out = capsys.readouterr().out
    assert "reported in the paper (arXiv 2503.01461)" in out and "| 85.5 |" in out
    assert main(["eval", "tiny", "--tasks", "gsm9k"]) == 2
    assert "gsm9k" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "planbench_zeroshot: its zero-shot prompt" in help_text and "$TREECOT_PLANBENCH" in help_text


@pytest.mark.parametrize("command", ["sft", "dpo"])
def test_training_subcommands_hand_their_flags_to_the_trl_script(command, monkeypatch, capsys):
    import importlib

    script = importlib.import_module(f"treecot.scripts.{command}")
    seen = {}
    monkeypatch.setattr(script, "main", lambda argv, prog=None: seen.update(argv=argv, prog=prog))
    flags = ["--config", "recipe.yaml", "--learning_rate", "1e-5", "--help-me-not"]
    assert main([command, *flags]) == 0
    assert seen == {"argv": flags, "prog": f"treecot {command}"}, "every flag reaches the script's TrlParser"
    with pytest.raises(SystemExit):
        main(["--help"])
    assert f"    {command}  " in capsys.readouterr().out


def test_training_subcommand_help_is_the_scripts_trl_parser(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["dpo", "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: treecot dpo") and "--cdpo_epsilon" in out and "--config YAML" in out
