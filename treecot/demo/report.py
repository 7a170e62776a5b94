"""The demo's report: `report/README.md` with the stage times, an example tree, the dataset, the training
and the evaluation with intervals."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from treecot.demo.config import AUTO, DemoConfig
from treecot.pipeline.generate import iter_tree_dicts, tree_files
from treecot.search.show import plot_tree
from treecot.search.tree import Tree


def space_command(cfg: DemoConfig) -> str:
    out = cfg.out
    return (
        "[treecot demo] browse the trees, try the models and compare the runs in the Space:\n"
        f"    treecot space --data-root {out} --dataset {out / 'dataset'} --leaderboard {out / 'leaderboard'}"
    )


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _example_tree(cfg: DemoConfig):
    """The smallest tree with both a correct and a wrong answer (else the first tree) of the first slice
    that has one."""
    best = None
    for i in range(len(cfg.generate)):
        files = tree_files(Path(cfg.recipe(i)["generate"]["output_dir"]))
        for d in iter_tree_dicts(files):
            rewards = [n.get("reward") for n in d["nodes"] if n.get("type") == "answer"]
            mixed = 1.0 in rewards and 0.0 in rewards
            key = (not mixed, len(d["nodes"]))
            if best is None or key < best[0]:
                best = (key, d)
        if best is not None and not best[0][0]:
            break
    return Tree.from_dict(best[1]) if best else None


def _report_stages(cfg: DemoConfig, timings: Mapping[str, tuple[float, bool]]) -> list[str]:
    """The report's title, run line and stage wall times."""
    lines = [f"# treecot demo report: {cfg.name}", ""]
    lines += [
        f"Model `{cfg.model}` (generation roles A and B, and the student), seed {cfg.seed}, config "
        f"`{cfg.path or 'inline'}`. Every stage ran offline on this machine.",
        "",
        "## Stages",
        "",
        "| stage | wall time | |",
        "|---|---:|---|",
    ]
    for stage, (seconds, reused) in timings.items():
        if stage != "report":
            lines.append(f"| {stage} | {seconds:.0f} s | {'reused from an earlier run' if reused else ''} |")
    lines.append(f"| **total** | **{sum(s for s, _ in timings.values()):.0f} s** | |")

    return lines


def _report_trees(cfg: DemoConfig, results: Mapping[str, Any], report_dir: Path) -> list[str]:
    """The report's search section: yield per slice and an example tree (written as a PNG)."""
    gen = results["generate"]["slices"]
    lines = [
        "",
        "## Trees (MCTS)",
        "",
        "| slice | task | problems | ≥1 correct path | correct paths | rollouts | generated tokens | tokens per correct path |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in gen.items():
        lines.append(
            f"| {name} | {s['task']} | {s['problems']} | {_pct(s.get('yield_at_least_1'))} | "
            f"{s.get('correct_paths', 0)} | {s.get('rollouts', 0)} | {s.get('generated_tokens', 0)} | "
            f"{s.get('tokens_per_correct_path') or '–'} |"
        )
    tree = _example_tree(cfg)
    if tree is not None:
        png = plot_tree(
            tree,
            report_dir / "tree_example.png",
            title=f"{tree.problem.get('task')}: {tree.problem.get('id')}",
        )
        lines += [
            "",
            f"An example tree ({tree.problem.get('task')}, problem `{tree.problem.get('id')}`): nodes coloured "
            "by type, answers green if correct and red if wrong. Browse all trees with the Space (below) or "
            f"`treecot show-tree`.",
            "",
            f"![example tree]({png.name})",
        ]

    return lines


def _report_dataset(results: Mapping[str, Any], report_dir: Path) -> list[str]:
    """The report's dataset section: counts, the loading snippet and the length histograms (copied)."""
    b = results["build"]
    rep = b["report"]
    lines = [
        "",
        "## Dataset",
        "",
        f"Local Hub layout `{b['dataset']}`, version (branch) `{b['revision']}`: configs `trees`, `sft`, `dpo`. "
        f"{rep.get('trees')} trees → {rep.get('sft_rows')} SFT rows (longest correct path per problem) and "
        f"{rep.get('dpo_rows')} preference pairs (shortest correct path vs the wrong path sharing the "
        "shortest prefix with it).",
        "",
        "```python",
        "from treecot.hub import load_versioned",
        f"sft = load_versioned({b['dataset']!r}, 'sft', revision={b['revision']!r}, split='train')",
        "```",
    ]
    hist_dir = Path(b["dataset"]) / "main" / "histograms"
    for png in sorted(hist_dir.glob("*.png")) if hist_dir.is_dir() else []:
        shutil.copy(png, report_dir / png.name)
        lines += ["", f"![{png.stem}]({png.name})"]

    return lines


def _report_training(results: Mapping[str, Any]) -> list[str]:
    """The report's training section: loss and time of each trained stage, with its command."""
    lines = ["", "## Training", ""]
    for stage in ("sft", "cdpo"):
        rec = results.get(stage) or {}
        losses = [x["loss"] for x in rec.get("log_history", []) if "loss" in x]
        final = next((x for x in reversed(rec.get("log_history", [])) if "train_runtime" in x), {})
        if len(losses) > 1:
            loss_text = f"loss {losses[0]:.3f} → {losses[-1]:.3f} (first → last logged step)"
        elif "train_loss" in final:
            loss_text = f"mean training loss {final['train_loss']:.3f}"
        else:
            loss_text = "no loss logged"
        lines.append(
            f"- **{stage}** → `{rec.get('model')}`: {loss_text}, {final.get('train_runtime', 0):.0f} s "
            f"of training. Same as `{rec.get('command', '')}`"
        )

    return lines


def _report_evaluation(cfg: DemoConfig, results: Mapping[str, Any], report_dir: Path) -> list[str]:
    """The report's evaluation section: rates with intervals, the noise verdicts and the before/after plot."""
    lines: list[str] = []
    evals = results.get("eval") or {}
    if evals:
        from treecot.evaluation.stats import format_rate, noise_verdicts, plot_rates

        tasks = cfg.eval.tasks
        budget = next(iter(evals.values())).get("max_new_tokens", cfg.eval.max_new_tokens)
        lines += [
            "",
            "## Evaluation (held-out test problems, greedy, lighteval)",
            "",
            f"First {cfg.eval.limit} test problems per task, {budget} new tokens at most"
            + (
                " (from the data: the longest training response × 1.25)"
                if cfg.eval.max_new_tokens == AUTO
                else ""
            )
            + ". Accuracy and no-answer rate (share of outputs without a final answer, the paper's second metric) "
            "in percent, each with its 95% Wilson interval. `base` is evaluated under each task's own prompt and "
            "`base-data-prompt` under the data's prompt (the one the trained models were trained and evaluated "
            "with), so that base vs trained is not a prompt artefact.",
            "",
            "| model | " + " | ".join(f"{t} accuracy | {t} no answer" for t in tasks) + " |",
            "|---|" + "---:|---:|" * len(tasks),
        ]
        runs = {which: rec["tasks"] for which, rec in evals.items()}
        for which, rows in runs.items():
            cells = []
            for t in tasks:
                row = rows.get(t, {})
                cells += [
                    format_rate(row.get("accuracy"), row.get("n")),
                    format_rate(row.get("no_answer_rate"), row.get("n")),
                ]
            lines.append(f"| {which} | " + " | ".join(cells) + " |")
        reference = "base-data-prompt" if "base-data-prompt" in runs else next(iter(runs))
        verdicts = noise_verdicts(runs, reference, tasks)
        if verdicts:
            real = [v for v in verdicts if "exceeds noise" in v]
            lines += [
                "",
                f"Differences against `{reference}` (Newcombe 95% interval of the difference; conservative for "
                f"runs on the same problems): {len(real)} of {len(verdicts)} exceed noise.",
                "",
                *[f"- {v}" for v in verdicts],
            ]
        png = plot_rates(runs, tasks, report_dir / "before_after_intervals.png", title=f"demo: {cfg.model}")
        lines += ["", f"![before and after, with intervals]({png.name})", ""]
        lb = results.get("leaderboard") or {}
        if lb.get("leaderboard"):
            lines.append(f"Leaderboard rows: `{lb['leaderboard']}` (`treecot leaderboard compare` reads it).")
    return lines


def write_report(
    cfg: DemoConfig, results: Mapping[str, Any], timings: Mapping[str, tuple[float, bool]], report_dir: Path
) -> Path:
    """Write `report_dir/README.md` (and its PNGs) from the stages' results; returns its path.

    Args:
        cfg (`DemoConfig`):
            The demo's config.
        results (`Mapping[str, Any]`):
            Each stage's recorded outputs.
        timings (`Mapping[str, tuple[float, bool]]`):
            Per stage, its wall seconds and whether it was reused.
        report_dir (`Path`):
            Where the report is written.
    """
    report_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        *_report_stages(cfg, timings),
        *_report_trees(cfg, results, report_dir),
        *_report_dataset(results, report_dir),
        *_report_training(results),
        *_report_evaluation(cfg, results, report_dir),
        *["", "## Open the Space", "", "```bash", space_command(cfg).split("\n", 1)[1].strip(), "```", ""],
    ]
    path = report_dir / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
