"""The paper's Table 5 ablation on this CPU: `python -m benchmarks.ablation` (about 4 hours on 2 cores).

Runs (or resumes: every stage of `treecot ablate` is kept under `--output-dir`) the CPU ablation recipe
`recipes/smollm2-135m-instruct/ablate/config_arithmetic.yaml` and writes `benchmarks/results/ablation.json`:
for every row of the table (base under the task prompt and under the data prompt, SFT, + DPO, + Data
Balance, + cDPO, + Joint Loss, + Masking) and task, the accuracy and no-answer rate with their 95% Wilson
bounds and n; the data counts; the wall time of each stage; the commit.

    python -m benchmarks.ablation                        # the shipped recipe, outputs/ablate/…
    python -m benchmarks.ablation --recipe my.yaml --output-dir /tmp/abl

A resumed run reports the wall time each stage took when it ran (`treecot ablate` records it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks._common import write_results

ROOT = Path(__file__).resolve().parents[1]
RECIPE = "recipes/smollm2-135m-instruct/ablate/config_arithmetic.yaml"


def flatten(record: dict) -> dict:
    """The flat figures of an `ablation.json` written by `treecot ablate` (`treecot.ablate.write_ablation`)."""
    figures: dict = {
        "recipe": record.get("config"),
        "model": record.get("model"),
        "commit": record.get("commit"),
        "epsilon": record.get("epsilon"),
        "alpha": record.get("alpha"),
        "max_new_tokens": record.get("max_new_tokens"),
        "eval_limit": record.get("eval_limit"),
        "wall_seconds_total": record.get("wall_seconds_total"),
    }
    for key, value in (record.get("data") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            figures[f"data_{key}"] = value
    for stage, seconds in (record.get("wall_seconds") or {}).items():
        figures[f"wall_seconds_{stage.replace('-', '_')}"] = seconds
    selection = record.get("selection") or {}
    if selection:
        figures["sft_learning_rate"] = selection.get("learning_rate")
        for key, value in (selection.get("base") or {}).items():
            figures[f"validation_base_{key}"] = value
        for i, c in enumerate(selection.get("candidates") or []):  # figure names are identifiers: no "5e-05"
            for key, value in c.items():
                figures[f"validation_candidate_{i}_{key}"] = value
    for entry in record["rows"]:
        prefix = f"{entry['row'].replace('-', '_')}_{entry['task']}"
        for key in ("n", "accuracy", "accuracy_low", "accuracy_high", "no_answer_rate", "no_answer_low",
                    "no_answer_high", "mean_tokens"):  # fmt: skip
            figures[f"{prefix}_{key}"] = entry.get(key)
    return figures


def main(argv: list[str] | None = None) -> int:
    from treecot.ablate import run_ablation

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--recipe", default=RECIPE)
    p.add_argument("--output-dir", default=None, help="default: the recipe's output_dir")
    p.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/ablation.json")
    args = p.parse_args(argv)
    results = run_ablation(str(ROOT / args.recipe) if not Path(args.recipe).is_file() else args.recipe,
                           output_dir=args.output_dir)  # fmt: skip
    record = json.loads(Path(results["table"]["json"]).read_text())
    figures = flatten(record)
    command = "python -m benchmarks.ablation" + (f" --recipe {args.recipe}" if args.recipe != RECIPE else "")
    if not args.no_write:
        print(f"wrote {write_results('ablation', figures, command)}")
    print(Path(results["table"]["table"]).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
