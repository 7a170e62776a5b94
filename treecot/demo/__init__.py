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

from treecot.demo.config import (
    AUTO,
    DEFAULT_CONFIG,
    LEADERBOARD_REPO,
    MODEL_STAGES,
    STAGES,
    STATE_FILE,
    DemoConfig,
    DemoError,
    EvalStage,
    TrainStage,
    check_eval_stage,
    default_config_path,
    eval_budget,
    load_demo_config,
    resolve_file,
    validate_slices,
)
from treecot.demo.report import space_command, write_report
from treecot.demo.stages import Demo, fresh_start, jsonable, run_demo

__all__ = [
    "AUTO",
    "DEFAULT_CONFIG",
    "LEADERBOARD_REPO",
    "MODEL_STAGES",
    "STAGES",
    "STATE_FILE",
    "Demo",
    "DemoConfig",
    "DemoError",
    "EvalStage",
    "TrainStage",
    "check_eval_stage",
    "default_config_path",
    "eval_budget",
    "fresh_start",
    "jsonable",
    "load_demo_config",
    "resolve_file",
    "run_demo",
    "space_command",
    "validate_slices",
    "write_report",
]
