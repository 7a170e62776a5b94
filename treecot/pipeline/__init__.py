"""A recipe's stages, run from its YAML: `generate` (sharded, resumable MCTS over a problem set, locally or on
Ray actors), `build` (trees → the `trees` / `sft` / `dpo` datasets, card, push), `distill` and `perturb`.

The pipeline sits above the libraries it drives (`treecot.search`, `treecot.data`, `treecot.backends`,
`treecot.hub`) and above `treecot.recipe`, which configures them; `treecot.commands`, the demo and the
ablation call it.
"""
