"""Errors of the machine, not of treecot, are one line naming the path or the repository (exit 2), and an
evaluation never loses its results to a failed write (issue #14: "nothing lost, no one in")."""

from __future__ import annotations

import errno
import http.server
import json
import tempfile
import threading
from pathlib import Path

import pytest

from treecot.cli import environment_error, main


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------------------------------------- output dirs


@pytest.fixture
def no_model_loads(monkeypatch):
    import treecot.models

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded although the output directory cannot be written")

    monkeypatch.setattr(treecot.models, "load_model", refuse)


@pytest.mark.parametrize("where", ["file", "below-a-file"])
def test_eval_refuses_an_unwritable_output_dir_before_loading_the_model(
    tmp_path, capsys, no_model_loads, where
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker if where == "file" else blocker / "eval"
    assert main(["eval", "tiny", "--tasks", "arithmetic", "--limit", "1", "--output-dir", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith(f"treecot eval: error: cannot write the output directory {out} (")
    assert "nothing was evaluated" in err


def test_eval_refuses_an_output_dir_it_may_not_write_into(tmp_path, capsys, monkeypatch, no_model_loads):
    """A folder that exists but refuses new files (a non-root user's read-only folder: simulated, since these
    tests may run as root), and a results folder inside it that does."""
    out = tmp_path / "eval"
    (out / "results").mkdir(parents=True)
    mkstemp = tempfile.mkstemp
    refused = {out / "results"}

    def guarded(*args, dir=None, **kwargs):
        if dir is not None and Path(dir) in refused:
            raise PermissionError(errno.EACCES, "Permission denied", str(Path(dir) / "probe"))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", guarded)
    assert main(["eval", "tiny", "--tasks", "arithmetic", "--limit", "1", "--output-dir", str(out)]) == 2
    err = _one_line(capsys.readouterr().err)
    assert f"cannot write {out / 'results'} in the output directory {out} (Permission denied)" in err
    refused.add(out)
    assert main(["eval", "tiny", "--tasks", "arithmetic", "--limit", "1", "--output-dir", str(out)]) == 2
    assert f"cannot write the output directory {out} (Permission denied)" in capsys.readouterr().err


def test_other_commands_name_the_path_they_cannot_write(tmp_path, capsys, monkeypatch):
    import yaml

    from tests.pipeline.test_generate import fake_generators, recipe_dict
    from treecot.pipeline import generate as runner

    monkeypatch.setattr(runner, "build_generators", lambda recipe: fake_generators())
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tmp_path / "trees", limit=1)))
    assert main(["generate", str(recipe), "--output-dir", str(blocker / "trees"), "--no-progress"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err == f"treecot generate: error: {blocker / 'trees'}: Not a directory\n"
    assert main(["generate", str(recipe), "--output-dir", str(blocker), "--no-progress"]) == 2
    assert _one_line(capsys.readouterr().err) == f"treecot generate: error: {blocker}: File exists\n"


def test_only_errors_of_the_environment_become_messages(monkeypatch):
    assert environment_error(PermissionError(errno.EACCES, "Permission denied", "/srv/out")) == (
        "/srv/out: Permission denied"
    )
    assert environment_error(OSError(errno.EROFS, "Read-only file system", "/mnt/ro")) == (
        "/mnt/ro: Read-only file system"
    )
    # no path, or not a path's errno, or not an OSError: a bug, which keeps its traceback
    assert environment_error(PermissionError(errno.EACCES, "Permission denied")) is None
    assert environment_error(OSError(errno.EBADF, "Bad file descriptor", "/x")) is None
    assert environment_error(KeyError("optimal_length")) is None
    # a Hub error is the environment; a bug raised while handling one (its context, not its cause) is not
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    request = httpx2.Request("GET", "http://127.0.0.1/api/datasets/org/name/refs")
    hub = HfHubHTTPError("500 Server Error", response=httpx2.Response(500, request=request))
    assert environment_error(hub).startswith("org/name: the Hugging Face Hub answered HTTP 500")
    caused = RuntimeError("push failed")
    caused.__cause__ = hub
    assert environment_error(caused).startswith("org/name: the Hugging Face Hub answered HTTP 500")
    during = KeyError("bug in an except block")
    during.__context__ = hub
    assert environment_error(during) is None
    not_found = HfHubHTTPError("404", response=httpx2.Response(404, request=request))
    assert environment_error(not_found) is None

    import treecot.commands.sources

    def buggy(args):
        raise KeyError("optimal_length")

    monkeypatch.setattr(treecot.commands.sources, "main", buggy)
    with pytest.raises(KeyError, match="optimal_length"):
        main(["sources"])


# ---------------------------------------------------------------------------------------------- results


def test_eval_writes_its_results_elsewhere_when_the_final_write_fails(tmp_path, capsys, monkeypatch):
    """The output directory passes the check but fails when lighteval writes the results (it went read-only
    or full during the run): the summary, lighteval's results and details go to a rescue folder, the table
    is printed and the one-line error says where."""
    from lighteval.logging.evaluation_tracker import EvaluationTracker

    from treecot.evaluation import runner

    out = tmp_path / "eval"
    save_results = EvaluationTracker.save_results

    def failing(self, date_id, results_dict):
        if Path(self.output_dir).resolve() == out.resolve():
            raise PermissionError(errno.EACCES, "Permission denied", str(out / "results"))
        return save_results(self, date_id, results_dict)

    monkeypatch.setattr(EvaluationTracker, "save_results", failing)
    monkeypatch.setattr(runner, "rescue_root", lambda: tmp_path / "rescued")
    args = ["eval", "tiny", "--tasks", "arithmetic", "--limit", "1", "--max-new-tokens", "4"]
    assert main([*args, "--output-dir", str(out), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err  # (transformers may warn about generation flags before)
    err = captured.err.splitlines()[-1]
    (rescued,) = (tmp_path / "rescued").iterdir()
    assert rescued.name.startswith("eval-tiny-")
    assert err.startswith(f"treecot eval: error: could not write the results to {out} (PermissionError: ")
    assert f"written to {rescued} instead" in err
    summary = json.loads((rescued / "summary.json").read_text())
    assert summary["tasks"]["arithmetic"]["n"] == 1 and summary["model"] == "tiny"
    results = json.loads((rescued / summary["lighteval_results"]).read_text())
    assert any(k.startswith("treecot_arithmetic") for k in results["results"])
    assert list((rescued / "details").rglob("details_*.parquet"))
    assert (rescued / "summary.md").read_text() in captured.out  # the table is shown too
    assert not (out / "summary.json").exists()


def test_the_eval_module_entry_point_reports_rescued_results_too(tmp_path, capsys, monkeypatch):
    """``python -m treecot.evaluation.runner`` (eval_main) says where the results went, like `treecot eval`."""
    from treecot.evaluation import runner

    summary = {"model": "tiny", "model_revision": "r", "mode": "greedy", "samples": 1, "seed": 0,
               "treecot_version": "0", "tasks": {"arithmetic": {"n": 1, "accuracy": 0.0, "no_answer_rate": 1.0}}}  # fmt: skip
    rescued = tmp_path / "rescued"
    run = runner.EvalRun(
        rescued, rescued / "r.json", rescued / "summary.json", rescued / "summary.md", summary
    )
    error = PermissionError(errno.EACCES, "Permission denied", "/ro/eval/results")

    def fail(args):
        raise runner.ResultsRescued(run, Path("/ro/eval"), error)

    monkeypatch.setattr(runner, "eval_from_args", fail)
    assert runner.eval_main(["tiny", "--tasks", "arithmetic"]) == 2
    captured = capsys.readouterr()
    assert "| arithmetic | 1 | 0.0 (100.0) |" in captured.out
    assert _one_line(captured.err).startswith("treecot eval: error: could not write the results to /ro/eval")
    assert f"written to {rescued} instead" in captured.err


def test_rescued_results_fall_back_to_the_temporary_directory(tmp_path, monkeypatch):
    from treecot.evaluation import runner

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(runner, "rescue_root", lambda: blocker / "rescued")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    rescue = runner._rescue_dir("org/model")
    assert rescue.is_dir() and rescue.parent == tmp_path / "tmp"
    assert rescue.name.startswith("treecot-rescued-eval-org--model-")


# ---------------------------------------------------------------------------------------------- the Hub


@pytest.fixture
def hub_answering_500(monkeypatch):
    """A Hub endpoint that answers every request with HTTP 500; treecot's retries do not sleep."""
    import huggingface_hub.constants

    import treecot.hub.retry

    class Failing(http.server.BaseHTTPRequestHandler):
        def answer(self):
            self.send_response(500)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_HEAD = do_PUT = answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    sleeps = []
    monkeypatch.setattr(treecot.hub.retry, "_sleep", sleeps.append)
    yield sleeps
    server.shutdown()
    server.server_close()


def test_a_hub_answering_500_after_retries_is_one_line_naming_the_repo(tmp_path, capsys, hub_answering_500):
    summary = {
        "schema_version": 1,
        "model": "m",
        "model_revision": "sha256:0123456789abcdef",
        "mode": "greedy",
        "samples": 1,
        "seed": 0,
        "date": "2026-01-01",
        "treecot_version": "0.1.0",
        "tasks": {"gsm8k": {"accuracy": 0.5, "no_answer_rate": 0.1, "n": 10}},
    }
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    assert main(["leaderboard", "push", str(path), "--repo", "someone/board"]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("treecot leaderboard: error: someone/board: the Hugging Face Hub answered HTTP 500")
    assert "HF_HUB_OFFLINE=1" in err and "local path" in err
    from treecot.hub import RetryPolicy

    assert len(hub_answering_500) == RetryPolicy().attempts - 1 > 0  # treecot retried before giving up


def test_a_hub_dataset_offline_and_not_cached_is_one_line_naming_the_repo(tmp_path, capsys, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    args = ["perturb", "someone/no-such-dataset", "--kind", "delete", "--output-dir", str(tmp_path / "p")]
    assert main(args) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("treecot perturb: error: someone/no-such-dataset: not in the local cache")
    assert "HF_HUB_OFFLINE" in err and "local path" in err


def test_an_unknown_hub_model_offline_is_one_line_naming_it(tmp_path, capsys, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    args = ["eval", "nobody-here/no-such-model", "--tasks", "arithmetic", "--limit", "1"]
    assert main([*args, "--output-dir", str(tmp_path / "eval")]) == 2
    err = _one_line(capsys.readouterr().err)
    assert err.startswith("treecot eval: error: model 'nobody-here/no-such-model': it is not in the local")
    assert "HF_HUB_OFFLINE=1" in err and "local model directory" in err
