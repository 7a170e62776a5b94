"""`make bench` refreshes the README's benchmarks table from benchmarks/results/*.json."""

import json

from benchmarks import run_all


def test_table_marks_goals_and_missing_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(run_all, "RESULTS", tmp_path)
    (tmp_path / "mcts.json").write_text(json.dumps({"prefill_reduction": 7.5, "throughput_ratio": 0.5,
                                                    "tokens_per_correct_mcts": None,
                                                    "date": "2026-11-22T00:00:00", "command": "python -m benchmarks.mcts"}))  # fmt: skip
    text = run_all.table()
    assert "| mcts | `prefill_reduction` | ≥ 5× fewer prefill tokens than re-encoding | 7.50 | yes |" in text
    assert "| mcts | `throughput_ratio` | ≥ 0.7 × plain batched generate | 0.5 | **no** |" in text
    assert "| mcts | `tokens_per_correct_cot` | report (GSM8K) | missing |" in text
    assert "| mcts | `tokens_per_correct_mcts` | report (GSM8K) | none (0 correct) |" in text, "measured null"
    assert "| eval | – | – | not run yet |" in text
    # a share just under its goal is shown with the digits that show it (0.9765 is not "0.98 met")
    (tmp_path / "planbench.json").write_text(json.dumps({"agreement": 0.9765, "date": "2026-12-06T00:00:00"}))
    assert "| planbench | `agreement` | ≥ 0.98 raw agreement" in run_all.table()
    assert "| 0.9765 | **no** |" in run_all.table()


def test_readme_block_is_replaced_in_place(tmp_path, monkeypatch):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{run_all.START}\nold\n{run_all.END}\noutro\n")
    monkeypatch.setattr(run_all, "README", readme)
    run_all.update_readme("NEW TABLE")
    assert readme.read_text() == f"intro\n{run_all.START}\nNEW TABLE\n{run_all.END}\noutro\n"
