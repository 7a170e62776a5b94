"""`treecot demo`: the whole pipeline on the embedded default model, offline, on a CPU.

    treecot demo                          # recipes/demo.yaml → outputs/demo/ (resumes)
    treecot demo --fresh                  # start over
    treecot demo --config my-demo.yaml    # your own slices, budgets or model

Stages (each prints its wall time; `outputs/demo/demo-state.json` records what is done):

1. ``generate``  one `treecot generate` run per problem slice (MCTS trees, models A and B).
2. ``build``     `treecot build` over all slices: ``trees`` / ``sft`` / ``dpo`` configs with Thoughts
                 Length Balance, written as a versioned dataset in the local Hub layout.
3. ``eval-base`` lighteval on held-out test problems with the untrained model.
4. ``sft``       balanced SFT (`treecot.scripts.sft`, the TRL recipe of ``train.sft``).
5. ``cdpo``      cDPO with the joint loss and shared-prefix masking from the SFT model.
6. ``eval-sft`` / ``eval-cdpo``  the same evaluation of the trained models.
7. ``leaderboard`` the evaluation rows pushed to a local leaderboard dataset and compared.
8. ``report``    ``report/README.md`` with a tree, the length histograms and before/after bars.

Resuming: a stage is skipped when the state file records it as done with the same *fingerprint*, a hash
of its settings and of the fingerprints of the stages it reads from, so changing a setting reruns that
stage and everything downstream of it. Generation also resumes inside a run (finished trees are kept).
`--fresh` deletes the output directory first, and only a directory that a demo wrote (it holds the
state file) or an empty one.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treecot.models import DEFAULT_MODEL
from treecot.recipe import RecipeError, load_recipe

DEFAULT_CONFIG = "recipes/demo.yaml"
STATE_FILE = "demo-state.json"
STAGES = (
    "generate",
    "build",
    "eval-base",
    "eval-base-data-prompt",
    "sft",
    "cdpo",
    "eval-sft",
    "eval-cdpo",
    "leaderboard",
    "report",
)
MODEL_STAGES = {"base": None, "sft": "sft", "cdpo": "cdpo"}
LEADERBOARD_REPO = "treecot/demo-leaderboard"


class DemoError(RuntimeError):
    """A demo stage cannot run (its message says why and what to change)."""


# ----------------------------------------------------------------------------------------- config


@dataclass
class TrainStage:
    """config: a TRL recipe of `treecot.scripts.sft` / `.dpo`; overrides: keys replacing the recipe's;
    accelerate_config: run the stage as `accelerate launch --config_file <it>` in a subprocess (GPUs,
    ZeRO-3 / FSDP) instead of in this process (the CPU default)."""

    config: str
    overrides: dict[str, Any] = field(default_factory=dict)
    accelerate_config: str | None = None


#: `eval.max_new_tokens: auto`: the budget comes from the dataset (`PromptContract.budget`: the longest
#: training response × 1.25, rounded up to a multiple of 16), so the evaluation lets a trained model finish.
AUTO = "auto"


@dataclass
class EvalStage:
    tasks: list[str] = field(default_factory=lambda: ["arithmetic", "gsm8k"])
    limit: int = 24
    max_new_tokens: int | str = AUTO
    batch_size: int = 24
    dtype: str = "bfloat16"
    models: list[str] = field(default_factory=lambda: ["base", "sft", "cdpo"])


@dataclass
class DemoConfig:
    """`recipes/demo.yaml`, validated (see that file for the meaning of each section)."""

    name: str = "demo"
    seed: int = 0
    output_dir: str = "outputs/demo"
    model: str = DEFAULT_MODEL
    generate: list[dict[str, Any]] = field(default_factory=list)
    build: dict[str, Any] = field(default_factory=dict)
    train: dict[str, TrainStage] = field(default_factory=dict)
    eval: EvalStage = field(default_factory=EvalStage)
    path: str | None = None

    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    def recipe(self, i: int) -> dict[str, Any]:
        """The `treecot generate` recipe of slice `i` (models default to `model`)."""
        entry = copy.deepcopy(self.generate[i])
        name = entry.get("name") or f"{self.name}-{i}"
        gen = entry.setdefault("generate", {})
        gen.setdefault("models", {"A": {"model": self.model}, "B": {"model": self.model}})
        gen.setdefault("output_dir", str(self.out / "trees" / name))
        return {"name": name, "seed": self.seed, **{k: v for k, v in entry.items() if k != "name"}}

    def build_recipe(self) -> dict[str, Any]:
        trees = [self.recipe(i)["generate"]["output_dir"] for i in range(len(self.generate))]
        first = self.recipe(0)
        build = {"student": self.model, **self.build, "trees": trees}
        build.setdefault("output_dir", str(self.out / "dataset"))
        return {"name": self.name, "seed": self.seed, "problems": first.get("problems", {}), "build": build}


def read_config(
    source: str | os.PathLike | Mapping[str, Any],
    cls: type,
    what: str,
    overrides: Mapping[str, Any],
    hint: str = "",
) -> tuple[Any, str]:
    """Read a demo or ablation config (a YAML path or a mapping) into dataclass `cls`: `(config, where)`.

    `overrides` (nested fields, e.g. from `treecot.configs.parse_overrides`; None sets a field to null) are laid
    over the file first; every field is checked by `treecot.configs.from_dict`, and an error names the file
    and the field."""
    from treecot.configs import from_dict, merge

    if isinstance(source, Mapping):
        data, path = copy.deepcopy(dict(source)), None
    else:
        path = str(source)
        if not Path(path).is_file():
            raise DemoError(f"{what} {path!r} does not exist{hint}")
        from treecot.configs import load_yaml

        data = load_yaml(path, what, error=DemoError) or {}  # bounded: no alias bombs, a size cap
        if not isinstance(data, dict):
            raise DemoError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    where = path or what
    try:
        data = merge(data, overrides, error=DemoError)
        cfg = from_dict(cls, data, "", DemoError)
    except DemoError as e:
        raise DemoError(f"{where}: {e}") from None
    cfg.path = path
    return cfg, where


def load_demo_config(source: str | os.PathLike | Mapping[str, Any] | None = None, **overrides) -> DemoConfig:
    """Read and validate a demo config (a YAML path or a mapping; default `recipes/demo.yaml`);
    `overrides` are nested fields laid over it (`output_dir=…`, `eval={"limit": 4}`)."""
    if source is None:
        source = default_config_path()
    cfg, where = read_config(
        source, DemoConfig, "demo config", overrides, hint=f" (the default is {DEFAULT_CONFIG})"
    )
    _validate(cfg, where)
    return cfg


def _resolve_file(name: str, config_path: str | None, what: str) -> str:
    """`name` as given if it exists (relative to the working directory), else relative to the demo
    config's folder or the folder above it (`recipes/…` paths of a config inside `recipes/`)."""
    candidates = [Path(name)]
    if config_path and not Path(name).is_absolute():
        here = Path(config_path).resolve().parent
        candidates += [here / name, here.parent / name]
    for c in candidates:
        if c.is_file():
            return str(c)
    raise DemoError(f"{what}: {name!r} does not exist")


def default_config_path() -> str:
    """`recipes/demo.yaml` of the working directory, else of the treecot checkout this module is in."""
    if Path(DEFAULT_CONFIG).is_file():
        return DEFAULT_CONFIG
    repo = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG
    return str(repo) if repo.is_file() else DEFAULT_CONFIG


def _validate(cfg: DemoConfig, where: str) -> None:
    _validate_slices(cfg, where)
    for stage in ("sft", "cdpo"):
        if stage not in cfg.train:
            raise DemoError(f"{where}: train.{stage} is missing (a TRL recipe path and overrides)")
        cfg.train[stage].config = _resolve_file(
            cfg.train[stage].config, cfg.path, f"{where}: train.{stage}.config"
        )
    from treecot.evaluation import EVAL_TASKS

    for t in cfg.eval.tasks:
        if t not in EVAL_TASKS:
            raise DemoError(f"{where}: eval.tasks: unknown task {t!r}; choose from {', '.join(EVAL_TASKS)}")
    for m in cfg.eval.models:
        if m not in MODEL_STAGES:
            raise DemoError(
                f"{where}: eval.models: unknown model {m!r}; choose from {', '.join(MODEL_STAGES)}"
            )
    check_eval_stage(cfg.eval, where)


def _validate_slices(cfg: DemoConfig, where: str) -> None:
    """The generate slices and the build section of a demo or ablation config."""
    if not cfg.generate or not isinstance(cfg.generate, list):
        raise DemoError(f"{where}: 'generate' must be a non-empty list of slices (problems + generate)")
    for i, entry in enumerate(cfg.generate):
        if not isinstance(entry, Mapping):
            raise DemoError(f"{where}: generate[{i}]: expected a mapping (name, problems, generate)")
    if not isinstance(cfg.build, Mapping):
        raise DemoError(f"{where}: build: expected a mapping of build settings")
    names = [cfg.recipe(i)["name"] for i in range(len(cfg.generate))]
    if len(set(names)) != len(names):
        raise DemoError(f"{where}: generate: slice names must be unique, got {names}")
    for i in range(len(cfg.generate)):
        try:
            recipe = load_recipe(cfg.recipe(i))
        except RecipeError as e:
            raise DemoError(f"{where}: generate[{i}]: {e}") from None
        if recipe.generate is None:
            raise DemoError(f"{where}: generate[{i}]: the slice has no 'generate' section")
    try:
        load_recipe(cfg.build_recipe())
    except RecipeError as e:
        raise DemoError(f"{where}: {e}") from None


def check_eval_stage(ev: Any, where: str) -> None:
    """`eval.limit` and `eval.max_new_tokens` (a positive integer, or "auto")."""
    if isinstance(ev.limit, bool) or not isinstance(ev.limit, int) or ev.limit < 1:
        raise DemoError(f"{where}: eval.limit must be a positive integer, got {ev.limit!r}")
    budget = ev.max_new_tokens
    if budget != AUTO and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 1):
        raise DemoError(f"{where}: eval.max_new_tokens must be a positive integer or 'auto', got {budget!r}")


def eval_budget(ev: Any, build: Mapping[str, Any]) -> int:
    """The evaluation budget: `eval.max_new_tokens`, or with "auto" the dataset's (`PromptContract.budget`)."""
    if ev.max_new_tokens != AUTO:
        return int(ev.max_new_tokens)
    from treecot.prompts import PromptContract

    budget = PromptContract.from_dict(build["contract"]).budget()
    if budget is None:
        raise DemoError("eval.max_new_tokens is 'auto' but the dataset records no training-response lengths")
    return budget


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

    generators: prebuilt {"A": …, "B": …} for the generate stage (tests); default: from the recipes.
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
        from treecot.pipeline.generate import build_generators, run_generate

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
                        made[key] = build_generators(recipe)
                    gens = made[key]
                s = run_generate(recipe, generators=gens, progress=self.progress)
                summaries[recipe.name] = {"task": recipe.problems.task, **_jsonable(s)}
            return {"slices": summaries}

        return self._stage("generate", [r.to_dict() for r in recipes], (), run)

    # -- 2. build
    def build(self) -> dict[str, Any]:
        from treecot.pipeline.build import run_build

        recipe = load_recipe(self.cfg.build_recipe())

        def run() -> dict[str, Any]:
            built = run_build(recipe)
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
                "card": _jsonable(built["card"]),
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
        """Train `base` with the TRL recipe `spec` on the built dataset into `models/<stage>`; `extra`
        overrides recipe and `spec.overrides` keys. module: "sft" or "dpo" (default: "sft" for the stage
        named "sft", else "dpo")."""
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
        split / offset / limit: score these problems instead (a validation slice; default the config's
        `eval.limit` test problems)."""
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


def space_command(cfg: DemoConfig) -> str:
    out = cfg.out
    return (
        "[treecot demo] browse the trees, try the models and compare the runs in the Space:\n"
        f"    treecot space --data-root {out} --dataset {out / 'dataset'} --leaderboard {out / 'leaderboard'}"
    )


# ----------------------------------------------------------------------------------------- report


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def _pct(v: Any) -> str:
    return "–" if v is None else f"{100 * float(v):.1f}%"


def _example_tree(cfg: DemoConfig):
    """The smallest tree with both a correct and a wrong answer (else the first tree) of the first slice
    that has one."""
    from treecot.pipeline.generate import iter_tree_dicts, tree_files
    from treecot.search.tree import Tree

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
    from treecot.search.show import plot_tree

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
    """Write `report_dir/README.md` (and its PNGs) from the stages' results; returns its path."""
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
    """Run (or resume) the demo of `config`; returns each stage's recorded outputs. `overrides`: nested
    fields laid over the config (`treecot demo --eval.limit 4`: `{"eval": {"limit": 4}}`)."""
    given = {**(overrides or {}), **({"output_dir": output_dir} if output_dir is not None else {})}
    cfg = load_demo_config(config, **given)
    if fresh:
        fresh_start(cfg.out)
    print(
        f"[treecot demo] {cfg.path or 'inline config'} → {cfg.out}/ (rerun to resume, --fresh to start over)",
        flush=True,
    )
    return Demo(cfg, generators=generators, progress=progress).run()
