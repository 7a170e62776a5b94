"""`treecot demo` at this stage: load a model offline, answer GSM8K test problems, print verdicts."""

from treecot.cli import main


def test_demo_answers_and_prints_verdicts(capsys):
    assert main(["demo", "--model", "tiny", "--problems", "2", "--max-new-tokens", "8"]) == 0
    out = capsys.readouterr().out
    assert out.count("gold=") == 2 and "extracted=" in out
    assert "GSM8K test, 2 problems: accuracy 0/2, no answer" in out
