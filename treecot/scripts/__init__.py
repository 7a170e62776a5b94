"""Training entry points, one module per stage as in `trl.scripts`: `treecot.scripts.sft` and `treecot.scripts.dpo`.

Run them as `treecot sft --config recipes/…/config_demo.yaml` (or `treecot dpo`), or under accelerate as
`accelerate launch -m treecot.scripts.sft --config …`. What both share lives in `treecot.scripts.utils`.
"""
