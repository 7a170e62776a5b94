"""CDPOTrainer overhead: step time and peak memory ÷ TRL's DPOTrainer with the same joint loss.

    python -m benchmarks.trainers            # tiny + SmolLM2-135M, about 5 minutes on 2 cores
    python -m benchmarks.trainers --models tiny --no-write   # quick check

The baseline is TRL 1.16's `DPOTrainer` with `loss_type=["sigmoid", "sft"]`, `loss_weights=[1, α]` (the joint
loss TRL offers); the candidates are treecot's `CDPOTrainer` with everything on (ε = 0.1, shared-prefix
masking, α = 1) and the same with masking off (`cdpo_nomask`): masked tokens get label -100, which TRL's fused
LM head skips, so masking by itself saves LM-head work, and the unmasked run shows the subclass's own
overhead. All train on identical batches: the same preference rows (conversational, with a long shared
prefix), seed, batch size, maximum length, fp32 master weights and bf16 autocast on CPU. The reference is a
separate model for `tiny` and precomputed log-probs for `smollm2` (what treecot's full-fine-tuning recipes
use), so both reference paths of `CDPOTrainer.compute_loss` are measured.

How. Each configuration trains in its own fresh process, so peak RSS (`ru_maxrss`) never mixes between
configurations. The processes of one model run side by side but in lockstep: the parent hands a token from
process to process, and a process holding it runs exactly one optimizer step (fetching and collating the
batch, including treecot's masking, forward, backward, optimizer step), then passes it on; the order
alternates every round (A B C, C B A, …). Only one process computes at any time, and a burst of load from
other jobs on a shared machine hits all configurations alike. A step time ratio is the median, over the timed
steps, of the ratio of the same step (the same batch) of the two configurations, run next to each other; the
step times reported are the medians over the steps after the warm-up. Each process uses one torch thread by
default (`--threads`): on a shared 2-core machine a multi-threaded step stalls whenever one of its threads is
preempted, which made identical steps vary 3x in our runs, while single-threaded steps vary by a few percent.
With `--repeats` the whole group is rerun; step times and peaks are averaged and the step ratios pooled.

Figures: `step_time_ratio` and `peak_mem_ratio` are the worst (largest) ratio over the models and both
candidates; the per-model ratios (`*_nomask_*` for the unmasked candidate), step times (s), process CPU time
per step and peak RSS (MB) are reported too, with the mean 1-minute load average during the runs.
Goal: <= 1.05.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: name: (treecot model name, pairs per batch, max length, rows, timed steps, precomputed reference)
MODELS = {
    "tiny": ("tiny", 2, 512, 16, 6, False),
    "smollm2": ("smollm2-135m-instruct", 1, 512, 16, 6, True),
}
TRAINERS = ("cdpo", "dpo", "cdpo_nomask")
WARMUP_STEPS = 2
STEP_TIMEOUT_S = 600.0
SYSTEM = "Answer with tagged steps: <sub-task>, <thinking>, <double-check>, <answer>."


def preference_rows(n: int) -> list[dict]:
    """`n` treecot preference rows: a long shared prefix of reasoning nodes, then diverging endings."""
    rows = []
    for i in range(n):
        a, b = 17 + 3 * i, 25 + 7 * i
        steps = "".join(
            f"<thinking>Step {k}: I add the digits of {a} and {b} column by column, carrying when the sum of a "
            f"column reaches ten, and keep the partial result {a + k * b} for the next step.</thinking>\n"
            for k in range(4)
        )
        prefix = f"<sub-task>Firstly, I need to break down this task: add {a} and {b}.</sub-task>\n{steps}"
        good, bad = a + b, a + b + 10
        check = (
            "<double-check>Let's check the result by subtracting {b} from {s}: it gives {r}.</double-check>\n"
        )
        chosen = (
            prefix + check.format(b=b, s=good, r=a) + f"<answer>The answer is: \\boxed{{{good}}}</answer>"
        )
        rejected = (
            prefix
            + f"<thinking>I forgot the carry, so the sum is {bad}.</thinking>\n"
            + f"<answer>The answer is: \\boxed{{{bad}}}</answer>"
        )
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": f"What is {a} + {b}? Show your reasoning."},
                ],
                "chosen": chosen,
                "rejected": rejected,
                "shared_prefix": prefix,
                "problem_id": f"p{i}",
                "task": "gsm8k",
            }
        )
    return rows


class _Token:
    """The worker's end of the lockstep: wait for the parent's go byte, report each finished step."""

    def __init__(self, go_fd: int, done_fd: int):
        self.go_fd, self.done_fd = go_fd, done_fd

    def wait(self) -> None:
        if os.read(self.go_fd, 1) != b"g":
            raise RuntimeError("the benchmark's parent process went away")

    def done(self) -> None:
        os.write(self.done_fd, b"d")


def worker(model_key: str, trainer_kind: str, token: _Token) -> dict:
    """Train one configuration in this process, one step per token, and return its figures."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import DPOConfig, DPOTrainer

    from treecot.models import load_model
    from treecot.trainers.cdpo import CDPOConfig, CDPOTrainer, to_conversational_preference

    name, batch_size, max_length, n_rows, steps, precompute = MODELS[model_key]
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    model, tokenizer = load_model(name, dtype="float32")
    ref_model = None if precompute else load_model(name, dtype="float32")[0]
    rows = preference_rows(n_rows)
    common = dict(
        output_dir=os.path.join(tempfile.gettempdir(), f"treecot-bench-{model_key}-{trainer_kind}"),
        max_steps=WARMUP_STEPS + steps,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        learning_rate=1e-6,
        use_cpu=True,
        bf16=True,
        activation_checkpointing=False,
        precompute_ref_log_probs=precompute,
        report_to="none",
        save_strategy="no",
        logging_steps=1000,
        disable_tqdm=True,
        seed=42,
        beta=0.1,
        dataloader_num_workers=0,
    )
    if trainer_kind.startswith("cdpo"):
        mask = trainer_kind == "cdpo"
        args = CDPOConfig(**common, cdpo_epsilon=0.1, sft_alpha=1.0, mask_shared_prefix=mask)
        dataset = Dataset.from_list(rows)
        trainer_cls = CDPOTrainer
    else:
        args = DPOConfig(**common, loss_type=["sigmoid", "sft"], loss_weights=[1.0, 1.0])
        dataset = Dataset.from_list(rows).map(to_conversational_preference)
        trainer_cls = DPOTrainer

    class Lockstep(TrainerCallback):
        """Holds the token for exactly one optimizer step (batch fetch and collation included)."""

        def __init__(self):
            self.wall: list[float] = []
            self.cpu: list[float] = []
            self.loads: list[float] = []

        def _start(self):
            token.wait()
            self.t0, self.c0 = time.perf_counter(), time.process_time()

        def on_train_begin(self, args, state, control, **kwargs):
            self._start()

        def on_step_end(self, args, state, control, **kwargs):
            self.wall.append(time.perf_counter() - self.t0)
            self.cpu.append(time.process_time() - self.c0)
            self.loads.append(os.getloadavg()[0])
            token.done()
            self._start()  # the parent's last token releases the final wait

    timer = Lockstep()
    trainer = trainer_cls(
        model,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        callbacks=[timer],
    )
    trainer.train()
    if len(timer.wall) != WARMUP_STEPS + steps:
        raise RuntimeError(f"expected {WARMUP_STEPS + steps} steps, got {len(timer.wall)}")
    return {
        "step_s": statistics.median(timer.wall[WARMUP_STEPS:]),
        "steps_s": timer.wall[WARMUP_STEPS:],
        "step_cpu_s": statistics.median(timer.cpu[WARMUP_STEPS:]),
        "load_avg": statistics.mean(timer.loads),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_group(model_key: str, threads: int = 1, log=print) -> dict[str, dict]:
    """Train every configuration of `model_key` in its own process, in lockstep; return their figures."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    total_steps = WARMUP_STEPS + MODELS[model_key][4]
    procs = {}
    with tempfile.TemporaryDirectory(prefix="treecot-bench-") as tmp:
        try:
            for kind in TRAINERS:
                go_r, go_w = os.pipe()
                done_r, done_w = os.pipe()
                out = open(Path(tmp) / f"{kind}.out", "w+")  # noqa: SIM115 - closed below
                err = open(Path(tmp) / f"{kind}.err", "w+")  # noqa: SIM115 - closed below
                cmd = [sys.executable, "-m", "benchmarks.trainers", "--worker", model_key, kind]
                cmd += ["--fds", str(go_r), str(done_w)]
                proc = subprocess.Popen(
                    cmd, env=env, cwd=ROOT, stdout=out, stderr=err, pass_fds=(go_r, done_w)
                )
                os.close(go_r)
                os.close(done_w)
                procs[kind] = {"proc": proc, "go": go_w, "done": done_r, "out": out, "err": err}
            for step in range(total_steps):
                for kind in TRAINERS if step % 2 == 0 else TRAINERS[::-1]:
                    p = procs[kind]
                    os.write(p["go"], b"g")
                    ready, _, _ = select.select([p["done"]], [], [], STEP_TIMEOUT_S)
                    if not ready or os.read(p["done"], 1) != b"d":
                        p["proc"].kill()
                        p["proc"].wait()
                        p["err"].seek(0)
                        raise RuntimeError(
                            f"{model_key}/{kind} failed at step {step}:\n{p['err'].read()[-4000:]}"
                        )
            results = {}
            for kind, p in procs.items():
                os.write(p["go"], b"g")  # release the wait after the last step
                if p["proc"].wait(timeout=STEP_TIMEOUT_S) != 0:
                    p["err"].seek(0)
                    raise RuntimeError(f"{model_key}/{kind} failed:\n{p['err'].read()[-4000:]}")
                p["out"].seek(0)
                line = next(x for x in reversed(p["out"].read().splitlines()) if x.startswith("RESULT "))
                results[kind] = json.loads(line[len("RESULT ") :])
                r = results[kind]
                log(
                    f"{model_key:8s} {kind:12s} step {r['step_s']:.3f} s (CPU {r['step_cpu_s']:.3f} s)  "
                    f"peak RSS {r['peak_rss_mb']:.0f} MB  load {r['load_avg']:.1f}"
                )
            return results
        finally:
            for p in procs.values():
                if p["proc"].poll() is None:
                    p["proc"].kill()
                    p["proc"].wait()
                for key in ("go", "done"):
                    try:
                        os.close(p[key])
                    except OSError:
                        pass
                p["out"].close()
                p["err"].close()


def _paired_ratio(runs: list[dict[str, dict]], kind: str) -> float:
    """Median over the timed steps of (step of `kind`) / (the same step of `dpo`, run right next to it)."""
    ratios = [a / b for run in runs for a, b in zip(run[kind]["steps_s"], run["dpo"]["steps_s"], strict=True)]
    return statistics.median(ratios)


def measure(models: list[str], repeats: int, threads: int = 1, log=print) -> dict:
    figures: dict = {}
    step_ratios, mem_ratios, loads = [], [], []
    for model_key in models:
        runs = [run_group(model_key, threads, log) for _ in range(repeats)]

        def mean(kind: str, key: str) -> float:
            return statistics.mean(run[kind][key] for run in runs)  # noqa: B023 - used inside the loop

        step = {kind: mean(kind, "step_s") for kind in TRAINERS}
        cpu = {kind: mean(kind, "step_cpu_s") for kind in TRAINERS}
        peak = {kind: mean(kind, "peak_rss_mb") for kind in TRAINERS}
        loads += [run[kind]["load_avg"] for run in runs for kind in TRAINERS]
        ratios = {
            "step_time_ratio": _paired_ratio(runs, "cdpo"),
            "peak_mem_ratio": peak["cdpo"] / peak["dpo"],
            "step_cpu_time_ratio": cpu["cdpo"] / cpu["dpo"],
            "nomask_step_time_ratio": _paired_ratio(runs, "cdpo_nomask"),
            "nomask_peak_mem_ratio": peak["cdpo_nomask"] / peak["dpo"],
            "nomask_step_cpu_time_ratio": cpu["cdpo_nomask"] / cpu["dpo"],
        }
        step_ratios += [ratios["step_time_ratio"], ratios["nomask_step_time_ratio"]]
        mem_ratios += [ratios["peak_mem_ratio"], ratios["nomask_peak_mem_ratio"]]
        name, batch, max_length, _, timed, precompute = MODELS[model_key]
        figures.update({f"{model_key}_{key}": round(value, 3) for key, value in ratios.items()})
        for kind in TRAINERS:
            figures[f"{model_key}_{kind}_step_s"] = round(step[kind], 4)
            figures[f"{model_key}_{kind}_peak_rss_mb"] = round(peak[kind], 1)
        figures[f"{model_key}_setup"] = (
            f"{batch} pair(s) x <= {max_length} tokens, {timed} timed steps, reference "
            + ("precomputed" if precompute else "model")
        )
    return {
        "step_time_ratio": round(max(step_ratios), 3),
        "peak_mem_ratio": round(max(mem_ratios), 3),
        **figures,
        "repeats": repeats,
        "threads_per_process": threads,
        "load_avg_1m": round(statistics.mean(loads), 2),
        "goal": "<= 1.05",
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--repeats", type=int, default=1, help="runs of each lockstep group")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per training process (1: robust to other jobs)"
    )
    parser.add_argument("--no-write", action="store_true", help="print the figures, do not write results")
    parser.add_argument("--worker", nargs=2, metavar=("MODEL", "TRAINER"), help=argparse.SUPPRESS)
    parser.add_argument("--fds", nargs=2, type=int, metavar=("GO", "DONE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        model_key, kind = args.worker
        if model_key not in MODELS or kind not in TRAINERS or not args.fds:
            parser.error(f"--worker needs one of {list(MODELS)}, one of {list(TRAINERS)} and --fds")
        print("RESULT " + json.dumps(worker(model_key, kind, _Token(*args.fds))), flush=True)
        return
    if args.repeats < 1 or args.threads < 1:
        parser.error("--repeats and --threads must be >= 1")
    start = time.perf_counter()
    figures = measure(args.models, args.repeats, args.threads)
    figures["wall_s"] = round(time.perf_counter() - start, 1)
    print(json.dumps(figures, indent=2))
    if not args.no_write:
        from benchmarks._common import write_results

        command = "python -m benchmarks.trainers"
        if args.models != list(MODELS):
            command += f" --models {' '.join(args.models)}"
        if args.repeats != 1:
            command += f" --repeats {args.repeats}"
        if args.threads != 1:
            command += f" --threads {args.threads}"
        print(write_results("trainers", figures, command=command))


if __name__ == "__main__":
    main()
