"""The same MCTS workload three ways: in-process, one vLLM CPU server over HTTP, Ray actors sharing it.

    python -m benchmarks.scale               # ~6 minutes on an idle 2-core box; writes results/scale.json
    python -m benchmarks.scale --problems 2 --no-write   # a smoke run

The workload is `treecot generate` on the first `--problems` (8) GSM8K test problems with the shipped math
patterns, `--rollouts` (4) rollouts per problem, nodes of at most 32 tokens, depth 6, all problems in
flight at once, SmolLM2-135M-Instruct as models A and B, seed 0. It runs

1. `local`: the in-process transformers backend (bfloat16), one process;
2. `server`: the `openai` backend against one vLLM CPU server (`tests/fixtures/servers/vllm_server.py`: vLLM's CPU
   build in its own venv, float32, prefix caching on), one process;
3. `ray`: `--engine ray` with 2 actors, each a client of that same server (batches of half the problems).

Figures per side (`local_`, `server_`, `ray_`): `tokens_per_s` (generated tokens ÷ wall seconds of the
search), `requests_per_s` (LLM calls ÷ wall seconds), `generated_tokens`, `llm_calls`, `rollouts`,
`wall_seconds`; and `local_over_server_tokens_per_s` (the side-by-side figure: the in-process backend ran
this loop at about 2× the server's tokens/s on this machine when the issue was filed; a drop shows a
regression on either side) and `ray_over_server_tokens_per_s` (what the engine costs: on one 2-core machine
the server and both actors share the same cores, so this measures overhead, not a speed-up). The server's
start-up time (`server_start_seconds`) is not part of any side's wall time.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._common import write_results

MODEL = "smollm2-135m-instruct"


def recipe(out: Path, problems: int, rollouts: int, model: dict, in_flight: int) -> dict:
    return {
        "name": "scale",
        "seed": 0,
        "problems": {"task": "gsm8k", "split": "test", "limit": problems},
        "generate": {
            "patterns": "math",
            "models": {"A": model},
            "search": {"max_rollouts": rollouts, "max_depth": 6, "max_node_tokens": 32},
            "output_dir": str(out),
            "problems_in_flight": in_flight,
        },
    }


def side(name: str, summary: dict, wall: float) -> dict:
    return {
        f"{name}_tokens_per_s": round(summary["generated_tokens"] / wall, 1),
        f"{name}_requests_per_s": round(summary["llm_calls"] / wall, 2),
        f"{name}_generated_tokens": summary["generated_tokens"],
        f"{name}_llm_calls": summary["llm_calls"],
        f"{name}_rollouts": summary["rollouts"],
        f"{name}_wall_seconds": round(wall, 1),
    }


def run(rec: dict, **kw) -> tuple[dict, float]:
    from treecot.pipeline.generate import run_generate
    from treecot.recipe import load_recipe

    t0 = time.perf_counter()
    summary = run_generate(load_recipe(rec), progress=False, **kw)
    return summary, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--problems", type=int, default=8)
    p.add_argument("--rollouts", type=int, default=4)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)

    from tests.fixtures.servers.vllm_server import ensure_vllm_venv, serving_model_dir, start_vllm_server

    figures: dict = {"problems": args.problems, "rollouts": args.rollouts, "ray_actors": 2}
    with tempfile.TemporaryDirectory(prefix="treecot-scale-") as tmp:
        root = Path(tmp)
        local = {"model": MODEL, "backend": "transformers", "dtype": "bfloat16"}
        summary, wall = run(recipe(root / "local", args.problems, args.rollouts, local, args.problems))
        figures.update(side("local", summary, wall))
        print(f"[scale] local: {figures['local_tokens_per_s']} tok/s", flush=True)

        t0 = time.perf_counter()
        server = start_vllm_server(
            serving_model_dir(), python=ensure_vllm_venv(), log_path=root / "server.log"
        )
        figures["server_start_seconds"] = round(time.perf_counter() - t0, 1)
        try:
            served = {"model": str(server.model_dir), "backend": "openai", "base_url": server.base_url,
                      "served_model": server.model}  # fmt: skip
            summary, wall = run(recipe(root / "server", args.problems, args.rollouts, served, args.problems))
            figures.update(side("server", summary, wall))
            print(f"[scale] server: {figures['server_tokens_per_s']} tok/s", flush=True)
            half = max(1, args.problems // 2)
            summary, wall = run(
                recipe(root / "ray", args.problems, args.rollouts, served, half), engine="ray", ray_actors=2
            )
            figures.update(side("ray", summary, wall))
            print(f"[scale] ray: {figures['ray_tokens_per_s']} tok/s", flush=True)
        finally:
            server.stop()
            try:
                import ray

                ray.shutdown()
            except ImportError:
                pass
    figures["local_over_server_tokens_per_s"] = round(
        figures["local_tokens_per_s"] / figures["server_tokens_per_s"], 2
    )
    figures["ray_over_server_tokens_per_s"] = round(
        figures["ray_tokens_per_s"] / figures["server_tokens_per_s"], 2
    )
    print({k: v for k, v in figures.items() if k.endswith(("tokens_per_s", "requests_per_s"))})
    if not args.no_write:
        path = write_results("scale", figures, command="python -m benchmarks.scale")
        print(f"[scale] wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
