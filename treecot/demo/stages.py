"""The demo's stages: `Demo` runs them in order, each skipped when its fingerprint is recorded as done."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from treecot.demo.config import (
    AUTO,
    LEADERBOARD_REPO,
    STAGES,
    STATE_FILE,
    DemoConfig,
    DemoError,
    TrainStage,
    eval_budget,
    load_demo_config,
)
from treecot.demo.report import space_command, write_report
from treecot.pipeline import build as build_stage
from treecot.pipeline import generate as generate_stage
from treecot.recipe import load_recipe


def jsonable(obj: Any) -> Any:
    """`obj` as plain JSON data (anything else as its `str`)."""
    return json.loads(json.dumps(obj, default=str))


# ----------------------------------------------------------------------------------------- state


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _State:
    """`demo-state.json`: per stage, its fingerprint, wall seconds and outputs."""

    def __init__(self, out: Path) -> None:
        self.path = out / STATE_FILE
        self.data: dict[str, Any] = {"stages": {}}
        if self.path.is_file():
            try:
                self.data = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                self.data = {"stages": {}}  # a torn write: rerun the stages, their outputs resume anyway

    def done(self, stage: str, fingerprint: str) -> dict[str, Any] | None:
        rec = self.data["stages"].get(stage)
        return rec if rec and rec.get("fingerprint") == fingerprint else None

    def record(self, stage: str, fingerprint: str, seconds: float, outputs: dict[str, Any]) -> None:
        self.data["stages"][stage] = {"fingerprint": fingerprint, "seconds": round(seconds, 1), **outputs}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def fresh_start(out: Path) -> None:
    """Delete a previous demo's output directory (refuses a non-empty directory a demo did not write)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise DemoError(f"--fresh: {str(out)!r} is not a directory; not touching it")
    if any(out.iterdir()) and not (out / STATE_FILE).is_file():
        raise DemoError(
            f"--fresh: {str(out)!r} is not empty and has no {STATE_FILE}, so a demo did not write it; "
            "choose another output_dir or remove it yourself"
        )
    shutil.rmtree(out)


# ----------------------------------------------------------------------------------------- stages


class Demo:
    """Runs the stages of a `DemoConfig`; see the module docstring.

    Args:
        cfg (`DemoConfig`):
            The demo's config.
        generators (`Mapping[str, Any]`, *optional*):
            Prebuilt {"A": …, "B": …} for the generate stage (tests); default: from the recipes.
        progress (`bool`, *optional*, defaults to `True`):
            Show progress.
    """

    stages: tuple[str, ...] = STAGES
    command = "demo"

    def __init__(
        self, cfg: DemoConfig, *, generators: Mapping[str, Any] | None = None, progress: bool = True
    ):
        self.cfg = cfg
        self.out = cfg.out
        self.generators = generators
        self.progress = progress
        self.out.mkdir(parents=True, exist_ok=True)
        self.state = _State(self.out)
        if not self.state.path.is_file():  # marks the directory as a demo's at once (for --fresh)
            self.state.save()
        self.fingerprints: dict[str, str] = {}
        self.timings: dict[str, tuple[float, bool]] = {}  # stage -> (seconds, reused)

    def _stage(self, stage: str, settings: Any, upstream: tuple[str, ...], fn: Callable[[], dict[str, Any]]):
        fp = _hash({"settings": settings, "upstream": [self.fingerprints[u] for u in upstream]})
        self.fingerprints[stage] = fp
        i = self.stages.index(stage) + 1 if stage in self.stages else 0
        n, tag = len(self.stages), f"[treecot {self.command}]"
        done = self.state.done(stage, fp)
        if done is not None:
            print(f"{tag} {i}/{n} {stage}: done earlier ({done['seconds']}s), reused", flush=True)
            self.timings[stage] = (float(done["seconds"]), True)
            return done
        print(f"\n{tag} {i}/{n} {stage} …", flush=True)
        t0 = time.perf_counter()
        outputs = fn()
        seconds = time.perf_counter() - t0
        self.state.record(stage, fp, seconds, outputs)
        self.timings[stage] = (seconds, False)
        print(f"{tag} {stage} finished in {seconds:.0f}s", flush=True)
        return self.state.data["stages"][stage]

    # -- 1. generate
    def generate(self) -> dict[str, Any]:
        recipes = [load_recipe(self.cfg.recipe(i)) for i in range(len(self.cfg.generate))]

        def run() -> dict[str, Any]:
            made: dict[str, Any] = {}
            summaries = {}
            for recipe in recipes:
                gens = self.generators
                if gens is None:  # slices with the same models share the loaded generators
                    key = json.dumps(
                        {k: v.to_dict() for k, v in recipe.generate.models.items()}, sort_keys=True
                    )
                    if key not in made:
                        made[key] = generate_stage.build_generators(recipe)
                    gens = made[key]
                s = generate_stage.run_generate(recipe, generators=gens, progress=self.progress)
                summaries[recipe.name] = {"task": recipe.problems.task, **jsonable(s)}
            return {"slices": summaries}

        return self._stage("generate", [r.to_dict() for r in recipes], (), run)

    # -- 2. build
    def build(self) -> dict[str, Any]:
        recipe = load_recipe(self.cfg.build_recipe())

        def run() -> dict[str, Any]:
            built = build_stage.run_build(recipe)
            report = built["report"]
            if not report.get("sft_rows") or not report.get("dpo_rows") or not self.enough_data(report):
                raise DemoError(
                    f"build: {report.get('trees')} trees gave {report.get('sft_rows', 0)} SFT rows and "
                    f"{report.get('dpo_rows', 0)} preference pairs: nothing to train on. The model found no "
                    "correct path (or no wrong one) on any problem; give the search more problems or rollouts "
                    "(generate[*].problems.limit, search.max_rollouts) or an easier slice"
                )
            result = built["result"]
            return {
                "dataset": recipe.build.output_dir,
                "revision": result.branch,
                "report": report,
                "card": jsonable(built["card"]),
                "contract": built["contract"].to_dict(),
            }

        return self._stage("build", recipe.to_dict(), ("generate",), run)

    def enough_data(self, report: Mapping[str, Any]) -> bool:
        """Whether the build gave what the training stages need (rows and pairs: checked by `build`)."""
        return True

    # -- 4/5. training
    def train(self, stage: str, dataset: Mapping[str, Any]) -> dict[str, Any]:
        base = self.cfg.model if stage == "sft" else str(self.out / "models" / "sft")
        upstream = ("build",) if stage == "sft" else ("build", "sft")
        return self.train_model(stage, self.cfg.train[stage], base, dataset, {}, upstream)

    def train_model(
        self,
        stage: str,
        spec: TrainStage,
        base: str,
        dataset: Mapping[str, Any],
        extra: Mapping[str, Any],
        upstream: tuple[str, ...],
        *,
        module: str | None = None,
    ) -> dict[str, Any]:
        """Train `base` with the TRL recipe `spec` on the built dataset into `models/<stage>`.

        Args:
            stage (`str`):
                The stage's name.
            spec (`TrainStage`):
                The TRL recipe and its overrides.
            base (`str`):
                The model to train.
            dataset (`Mapping[str, Any]`):
                The build stage's outputs (`dataset`, `revision`).
            extra (`Mapping[str, Any]`):
                Overrides recipe and `spec.overrides` keys.
            upstream (`tuple[str, ...]`):
                The stages whose fingerprints are part of this one's.
            module (`str`, *optional*):
                "sft" or "dpo" (default: "sft" for the stage named "sft", else "dpo").
        """
        model_dir = self.out / "models" / stage
        args = {
            **spec.overrides,
            **extra,
            "model_name_or_path": base,
            "dataset_name": dataset["dataset"],
            "dataset_revision": dataset["revision"],
            "output_dir": str(model_dir),
            "seed": self.cfg.seed,
        }
        recipe_text = Path(spec.config).read_text(encoding="utf-8")
        module = module or ("sft" if stage == "sft" else "dpo")
        if module not in ("sft", "dpo"):
            raise ValueError(f"{stage}: module must be 'sft' or 'dpo', got {module!r}")

        def run() -> dict[str, Any]:
            from treecot.scripts import dpo, sft

            script = sft if module == "sft" else dpo
            argv = ["--config", spec.config]
            for k, v in args.items():
                argv += [f"--{k}", json.dumps(v) if isinstance(v, (list, dict)) else str(v)]
            launcher = spec.accelerate_config or "recipes/accelerate_configs/cpu.yaml --num_processes 1"
            command = f"accelerate launch --config_file {launcher} -m treecot.scripts.{module} " + " ".join(
                argv
            )
            if spec.accelerate_config:
                import shlex
                import subprocess

                print(f"[treecot {self.command}] running: {command}", flush=True)
                launch = ["accelerate", "launch", "--config_file", spec.accelerate_config]
                code = subprocess.call([*launch, "-m", f"treecot.scripts.{module}", *argv])
                if code != 0:
                    raise DemoError(f"{stage}: `{shlex.join([*launch, '-m', 'treecot.scripts.' + module])} …` "
                                    f"exited with status {code}")  # fmt: skip
                state = model_dir / "trainer_state.json"
                logs = json.loads(state.read_text())["log_history"] if state.is_file() else []
                return {"model": str(model_dir), "log_history": logs, "command": command}
            print(f"[treecot {self.command}] same as: {command}", flush=True)
            trainer = script.main(argv)
            logs = [dict(x) for x in trainer.state.log_history]
            del trainer
            import gc

            gc.collect()
            return {"model": str(model_dir), "log_history": logs, "command": command}

        return self._stage(stage, {"config": recipe_text, "args": args}, upstream, run)

    # -- 3/6. evaluation
    def evaluate(self, which: str) -> dict[str, Any]:
        """Evaluate `which` (base, sft or cdpo). The base model runs twice: under each task's own prompt
        ("base") and under the data's prompt ("base-data-prompt"), so that base vs trained is not a prompt
        artefact; trained models run under the prompt of their data."""
        if which == "base":
            return self.evaluate_model("eval-base", self.cfg.model, self.out / "eval" / "base", ("build",),
                                       system_prompt="task")  # fmt: skip
        if which == "base-data-prompt":
            dataset = self.state.data["stages"]["build"]["dataset"]
            return self.evaluate_model(
                "eval-base-data-prompt",
                self.cfg.model,
                self.out / "eval" / which,
                ("build",),
                prompt_from=dataset,
            )
        return self.evaluate_model(f"eval-{which}", str(self.out / "models" / which), self.out / "eval" / which,
                                   ("build", which))  # fmt: skip

    def evaluate_model(
        self,
        stage: str,
        model: str,
        out_dir: Path,
        upstream: tuple[str, ...],
        *,
        system_prompt: str | None = None,
        prompt_from: str | None = None,
        split: str | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """Evaluate `model` on the config's held-out problems under the prompt contract (trained models:
        the prompt of their data; `system_prompt` / `prompt_from` choose another) and the data's budget.

        Args:
            stage (`str`):
                The stage's name.
            model (`str`):
                The model to evaluate.
            out_dir (`Path`):
                Where the evaluation writes.
            upstream (`tuple[str, ...]`):
                The stages whose fingerprints are part of this one's.
            system_prompt (`str`, *optional*):
                Every task's system prompt (see `treecot.evaluation.run_eval`).
            prompt_from (`str`, *optional*):
                Read the system prompts from this dataset (at the build stage's revision).
            split (`str`, *optional*):
                Score these problems instead (a validation slice; default the config's `eval.limit` test
                problems), with `offset` and `limit`.
            offset (`int`, *optional*, defaults to `0`):
                See `split`.
            limit (`int`, *optional*):
                See `split`.
        """
        from treecot.evaluation import run_eval

        ev = self.cfg.eval
        build = self.state.data["stages"].get("build") or {}
        if (ev.max_new_tokens == AUTO or prompt_from) and not build:
            raise DemoError(f"{stage}: the build stage has not run (the evaluation reads the data's prompt)")
        budget = eval_budget(ev, build)
        settings = {
            **dataclasses.asdict(ev),
            "model": model,
            "max_new_tokens": budget,
            "system_prompt": system_prompt,
            "prompt_from": prompt_from,
        }
        if split is not None:  # only then: the fingerprints of test evaluations stay as they were
            settings.update(split=split, offset=offset, limit=limit or ev.limit)

        def run() -> dict[str, Any]:
            result = run_eval(
                model,
                ev.tasks,
                limit=limit or ev.limit,
                split=split,
                offset=offset,
                max_new_tokens=budget,
                batch_size=ev.batch_size,
                dtype=ev.dtype,
                seed=self.cfg.seed,
                output_dir=out_dir,
                progress=self.progress,
                system_prompt=system_prompt,
                prompt_from=prompt_from,
                prompt_revision=build["revision"] if prompt_from else None,
            )
            return {
                "summary": str(result.summary_path),
                "tasks": result.summary["tasks"],
                "prompt": result.summary["prompt"],
                "max_new_tokens": budget,
                "warnings": result.summary["warnings"],
            }

        return self._stage(stage, settings, upstream, run)

    # -- 7. leaderboard
    def leaderboard(self, evals: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        from treecot.evaluation import leaderboard

        local = self.out / "leaderboard"
        report_dir = self.out / "report"

        def run() -> dict[str, Any]:
            for rec in evals.values():
                leaderboard.push(rec["summary"], LEADERBOARD_REPO, local_dir=local)
            table, png = leaderboard.compare(
                [rec["summary"] for rec in evals.values()], output=report_dir / "before_after.png"
            )
            table.index = list(evals)  # base / sft / cdpo instead of model paths
            tasks = [c for c in table.columns if not c.endswith(" no-answer")]
            leaderboard.plot_comparison(table, tasks, "accuracy", png)
            return {
                "leaderboard": str(local),
                "plot": str(png),
                "table": json.loads(table.to_json(orient="index")),
            }

        return self._stage("leaderboard", sorted(evals), tuple(f"eval-{w}" for w in evals), run)

    # -- 8. report
    def report(self, results: Mapping[str, Any]) -> dict[str, Any]:
        def run() -> dict[str, Any]:
            path = write_report(self.cfg, results, self.timings, self.out / "report")
            return {"report": str(path)}

        # Always rewritten (it holds the wall times of this run): the time makes its fingerprint new.
        return self._stage("report", {"written_at": time.time()}, (), run)

    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        results: dict[str, Any] = {"generate": self.generate()}
        results["build"] = self.build()
        evals: dict[str, Any] = {}
        if "base" in self.cfg.eval.models:
            evals["base"] = self.evaluate("base")
            evals["base-data-prompt"] = self.evaluate("base-data-prompt")
        results["sft"] = self.train("sft", results["build"])
        results["cdpo"] = self.train("cdpo", results["build"])
        for which in ("sft", "cdpo"):
            if which in self.cfg.eval.models:
                evals[which] = self.evaluate(which)
        results["eval"] = evals
        results["leaderboard"] = self.leaderboard(evals) if evals else {}
        results["report"] = self.report(results)
        total = time.perf_counter() - t0
        print(f"\n[treecot demo] done in {total:.0f}s; report: {results['report']['report']}", flush=True)
        print(space_command(self.cfg), flush=True)
        return results


# ----------------------------------------------------------------------------------------- entry


def run_demo(
    config: str | os.PathLike | Mapping[str, Any] | None = None,
    *,
    output_dir: str | None = None,
    fresh: bool = False,
    generators: Mapping[str, Any] | None = None,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the demo of `config`; returns each stage's recorded outputs.

    Args:
        config (`str`, `os.PathLike` or `Mapping[str, Any]`, *optional*):
            The demo config (default `recipes/demo.yaml`).
        output_dir (`str`, *optional*):
            Replaces the config's `output_dir`.
        fresh (`bool`, *optional*, defaults to `False`):
            Delete a previous demo's output directory first (`fresh_start`).
        generators (`Mapping[str, Any]`, *optional*):
            Prebuilt generators for the generate stage (see `Demo`).
        progress (`bool`, *optional*, defaults to `True`):
            Show progress.
        overrides (`Mapping[str, Any]`, *optional*):
            Nested fields laid over the config (`treecot demo --eval.limit 4`: `{"eval": {"limit": 4}}`).
    """
    given = {**(overrides or {}), **({"output_dir": output_dir} if output_dir is not None else {})}
    cfg = load_demo_config(config, **given)
    if fresh:
        fresh_start(cfg.out)
    print(
        f"[treecot demo] {cfg.path or 'inline config'} → {cfg.out}/ (rerun to resume, --fresh to start over)",
        flush=True,
    )
    return Demo(cfg, generators=generators, progress=progress).run()
