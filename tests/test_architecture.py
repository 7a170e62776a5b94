"""The package's shape (issue #18): stages in one direction, no module or function too long to read, no
module reaching into another's private names. Read from the source with `ast`; nothing is imported."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "treecot"

#: A module longer than this is split by concern.
MAX_MODULE_LINES = 800
#: A function longer than this is split into steps.
MAX_FUNCTION_LINES = 100

#: The layers, lowest first: a part of treecot imports only parts of lower layers (and its own modules).
#: The README's "Architecture" section draws them.
LAYERS = [
    [
        "configs",
        "models",
        "prompts",
    ],  # beneath everything: the config loader, model names, the prompt contract
    ["hub", "tasks"],  # versioned push / load and cards; problems and verifiers
    ["backends"],  # generators
    ["search"],  # MCTS, patterns, trees
    ["data"],  # trees → SFT rows and DPO pairs, distillation, perturbations
    ["recipe"],  # the YAML of a data run, checked with the stages' own configs
    ["pipeline", "trainers"],  # a recipe's stages; the TRL trainers
    ["scripts", "evaluation"],  # the training scripts; lighteval, leaderboard
    ["demo", "space"],  # the end-to-end demo; the Gradio Space
    ["ablate"],  # the Table 5 ablation, built on the demo's stages
    ["commands"],  # one module per `treecot` subcommand
    ["cli"],  # registers the commands
]
RANK = {part: i for i, layer in enumerate(LAYERS) for part in layer}


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8")) for name, path in MODULES.items()}


def part(module: str) -> str | None:
    """The top-level part of treecot a module belongs to (`treecot.search.mcts` → `search`)."""
    pieces = module.split(".")
    return pieces[1] if len(pieces) > 1 else None


def imported(module: str, node: ast.ImportFrom) -> str | None:
    """The absolute module an `from … import …` reads from."""
    if not node.level:
        return node.module
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    skipped = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(ast.walk(node))
    return skipped


def import_edges() -> dict[tuple[str, str], list[str]]:
    """(importing part, imported part) → where; every import counts, function-local ones included."""
    edges = defaultdict(list)
    for module, tree in TREES.items():
        skipped = type_checking_only(tree)
        for node in ast.walk(tree):
            if node in skipped:
                continue
            if isinstance(node, ast.ImportFrom):
                source = imported(module, node) or ""
                targets = [
                    source,
                    *(f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in MODULES),
                ]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                src, dst = part(module), part(target) if target.startswith("treecot.") else None
                if src and dst and src != dst:
                    edges[(src, dst)].append(f"{module}:{node.lineno}")
    return edges


def test_every_part_of_treecot_has_a_layer():
    parts = {part(m) for m in MODULES} - {None}
    assert parts == set(RANK), "add the new part to LAYERS (and the README's drawing)"


def test_stages_import_in_one_direction_only():
    """No import cycles between parts of treecot: a part imports only lower layers, at any depth of code."""
    upward = [
        f"{src} imports {dst} ({', '.join(where[:3])})"
        for (src, dst), where in sorted(import_edges().items())
        if RANK[src] <= RANK[dst]
    ]
    assert upward == []


def test_no_module_is_too_long():
    long = {
        m: n
        for m, p in MODULES.items()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_too_long():
    long = [
        f"{module}.{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for module, tree in TREES.items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_uses_another_modules_private_names(module):
    tree = TREES[module]
    found, aliases = [], {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = imported(module, node) or ""
            if not source.startswith("treecot"):
                continue
            for a in node.names:
                if f"{source}.{a.name}" in MODULES:  # a module imported by name
                    aliases[a.asname or a.name] = f"{source}.{a.name}"
                elif private(a.name) and source != module:
                    found.append(f"line {node.lineno}: from {source} import {a.name}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("treecot") and a.asname:
                    aliases[a.asname] = a.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and private(node.attr):
            owner = ast.unparse(node.value)
            target = aliases.get(owner, owner)
            if target in MODULES and target != module:
                found.append(f"line {node.lineno}: {owner}.{node.attr}")
    assert found == []
