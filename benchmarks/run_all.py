"""`make bench`: run every benchmark, then refresh the benchmarks table in the README.

    python -m benchmarks.run_all                  # run all, then update README.md
    python -m benchmarks.run_all --only mcts eval # run some
    python -m benchmarks.run_all --table-only     # just rebuild the README table from benchmarks/results/

The table lists each headline figure with its goal, the measured value, the date and the command that
reproduces it. It sits between the markers `<!-- bench:start -->` and `<!-- bench:end -->`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"

#: benchmark → [(figure, goal text, check)]: check(value) says whether the goal is met (None: report only).
HEADLINES: dict[str, list[tuple[str, str, object]]] = {
    "verifiers": [
        ("math_checks_per_s", "report", None),
        ("blocksworld_checks_per_s", "report", None),
        ("ifeval_checks_per_s", "report", None),
        ("hostile_max_s", "≤ 6 s (5 s timeout + slack)", lambda v: v <= 6.0),
    ],
    "mcts": [
        ("prefill_reduction", "≥ 5× fewer prefill tokens than re-encoding", lambda v: v >= 5.0),
        ("throughput_ratio", "≥ 0.7 × plain batched generate", lambda v: v >= 0.7),
        ("tokens_per_correct_mcts", "report (GSM8K)", None),
        ("tokens_per_correct_cot", "report (GSM8K)", None),
        ("tokens_per_correct_mcts_arithmetic", "report (arithmetic)", None),
        ("tokens_per_correct_cot_arithmetic", "report (arithmetic)", None),
    ],
    "trainers": [
        ("step_time_ratio", "≤ 1.05 × TRL DPOTrainer (sigmoid+sft)", lambda v: v <= 1.05),
        ("peak_mem_ratio", "≤ 1.05 × TRL DPOTrainer (sigmoid+sft)", lambda v: v <= 1.05),
    ],
    "eval": [
        ("throughput_ratio", "≥ 0.8 × plain batched generate", lambda v: v >= 0.8),
    ],
    "reflection": [
        ("arithmetic_before_reflections_expanded_share", "report (reflection_first off)", None),
        ("arithmetic_after_reflections_expanded_share", "≥ 0.9 with reflection_first", lambda v: v >= 0.9),
        ("arithmetic_after_correct_via_reflection_share", "report", None),
        ("gsm8k_after_reflections_expanded_share", "report", None),
    ],
    "math_verify": [
        (
            "agreement",
            "≥ 0.97 on math-verify's regression cases (marker or bare answer)",
            lambda v: v >= 0.97,
        ),
        ("false_positives", "0 (a wrong answer judged correct)", lambda v: v == 0),
    ],
    "planbench": [
        (
            "agreement",
            "≥ 0.98 raw agreement with PlanBench's VAL labels (12,000 responses)",
            lambda v: v >= 0.98,
        ),
        ("agreement_min_model", "≥ 0.95 raw for every one of 14 models", lambda v: v >= 0.95),
        ("agreement_heldout", "report: models held out while the plan reader was written", None),
        ("agreement_corrected", "report: with PlanBench's classified extraction errors set right", None),
        ("disagreements_unreviewed", "0 disagreements left unclassified", lambda v: v == 0),
    ],
    "scale": [
        ("local_tokens_per_s", "report: in-process backend", None),
        ("server_tokens_per_s", "report: one vLLM CPU server over HTTP", None),
        ("ray_tokens_per_s", "report: Ray, 2 actors sharing that server", None),
        ("local_over_server_tokens_per_s", "report (about 2 when the issue was filed)", None),
    ],
    "ablation": [
        ("base_data_prompt_arithmetic_accuracy", "report (base, data prompt)", None),
        ("sft_arithmetic_accuracy", "report (SFT on the MCTS data)", None),
        ("masking_arithmetic_accuracy", "report (full recipe)", None),
        ("wall_seconds_total", "≤ 7,200 s on 2 cores", lambda v: v <= 7200),
    ],
}


def run(names: list[str]) -> int:
    failed = 0
    for name in names:
        print(f"== benchmarks.{name}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{name}"], cwd=ROOT)
        if rc:
            print(f"benchmarks.{name} failed with exit status {rc}", file=sys.stderr)
            failed += 1
    return failed


def _fmt(value) -> str:
    if isinstance(value, float):
        if abs(value) < 1:  # shares: enough digits that 0.9765 is not shown as a goal of 0.98 met
            return f"{value:.4g}"
        return f"{value:,.2f}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table() -> str:
    lines = [
        "| benchmark | figure | goal | measured | met | date | command |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, figures in HEADLINES.items():
        path = RESULTS / f"{name}.json"
        if not path.exists():
            lines.append(f"| {name} | – | – | not run yet | – | – | `python -m benchmarks.{name}` |")
            continue
        data = json.loads(path.read_text())
        for figure, goal, check in figures:
            value = data.get(figure)
            met = "–" if check is None or value is None else ("yes" if check(value) else "**no**")
            if figure not in data:
                shown = "missing"
            elif value is None:  # measured, but undefined (e.g. tokens per correct path with 0 correct)
                shown = "none (0 correct)" if figure.startswith("tokens_per_correct") else "none"
            else:
                shown = _fmt(value)
            date = str(data.get("date", ""))[:10]
            lines.append(
                f"| {name} | `{figure}` | {goal} | {shown} | {met} | {date} | `{data.get('command', '')}` |"
            )
    return "\n".join(lines)


def update_readme(text: str | None = None) -> None:
    readme = README.read_text(encoding="utf-8")
    block = f"{START}\n{text or table()}\n{END}"
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        readme = head + block + rest.split(END, 1)[1]
    else:
        readme = readme.rstrip() + "\n\n## Benchmarks\n\n" + block + "\n"
    README.write_text(readme, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", choices=list(HEADLINES), help="run only these benchmarks")
    p.add_argument("--table-only", action="store_true", help="do not run anything; rebuild the README table")
    args = p.parse_args(argv)
    failed = 0 if args.table_only else run(args.only or list(HEADLINES))
    update_readme()
    print(table())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
