"""Issue #14, "nothing lost, no one in": hostile inputs end quickly, in little memory, with one short message
naming the file and the field (`treecot.configs.load_yaml`, the caps of recipes, patterns and search)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from treecot.configs import MAX_YAML_DEPTH, MAX_YAML_NODES, RecipeError, load_yaml, parse_yaml
from treecot.recipe import load_recipe
from treecot.search.mcts import MCTSConfig

ROOT = Path(__file__).resolve().parents[1]

#: 9 levels of 9 aliases each: 396 bytes that a plain YAML loader turns into 9**9 = 387,420,489 strings
#: once anything walks the data (the issue's 506-byte recipe took 67 s and 11 GB, then printed 2.1 GB).
BILLION_LAUGHS = "".join(
    f"{a}: &{a} [{', '.join([f'*{p}'] * 9) if p else ', '.join(['lol'] * 9)}]\n"
    for p, a in zip(["", *"abcdefgh"], "abcdefghi")
)


def test_alias_bomb_is_refused_at_once(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text("problems: {task: gsm8k}\n" + BILLION_LAUGHS + "name: *i\n")
    t0 = time.perf_counter()
    with pytest.raises(RecipeError) as e:
        load_recipe(path)
    assert time.perf_counter() - t0 < 1.0
    msg = str(e.value)
    assert msg.startswith(f"recipe {path}: with its aliases (*name) expanded the YAML holds at least ")
    assert f"more than the limit of {MAX_YAML_NODES:,} values (treecot.configs.MAX_YAML_NODES)" in msg
    assert len(msg) < 400


def test_aliases_within_the_limits_still_work():
    """Anchors, aliases and merge keys are ordinary YAML (recipes/demo.yaml shares `search: &small`)."""
    data = parse_yaml(
        "base: &m {model: tiny, backend: transformers}\n"
        "A: *m\n"
        "B: {<<: *m, dtype: float32}\n"
        "rows: &r [1, 2, 3]\n"
        "again: [*r, *r]\n",
        "test",
    )
    assert data["A"] == {"model": "tiny", "backend": "transformers"}
    assert data["B"] == {"model": "tiny", "backend": "transformers", "dtype": "float32"}
    assert data["again"] == [[1, 2, 3], [1, 2, 3]]
    assert load_yaml(ROOT / "recipes" / "demo.yaml", "demo config")["generate"]


def test_a_long_text_repeated_by_aliases_is_refused():
    """Few values, but each alias repeats 500,000 characters: 100 aliases would be 50 MB of text."""
    text = "t: &t " + "x" * 500_000 + "\nmany: [" + ", ".join(["*t"] * 100) + "]\n"
    with pytest.raises(
        RecipeError, match=r"^r\.yaml: .*at least [\d,]+ characters, more than the limit of 4,194,304"
    ):
        parse_yaml(text, "r.yaml")
    assert len(parse_yaml("t: &t " + "x" * 500_000 + "\nmany: [*t, *t, *t]\n", "r.yaml")["many"]) == 3


def test_cyclic_deep_and_unreadable_yaml_get_a_message():
    with pytest.raises(RecipeError, match=r"^r\.yaml: line 2: an alias refers to a value that contains it"):
        parse_yaml("x: 1\na: &a [1, *a]\n", "r.yaml")
    deep = "[" * (MAX_YAML_DEPTH + 1) + "]" * (MAX_YAML_DEPTH + 1)
    with pytest.raises(RecipeError, match=r"^r\.yaml: the YAML is nested more than 64 levels deep"):
        parse_yaml(deep, "r.yaml")
    assert parse_yaml("[" * MAX_YAML_DEPTH + "]" * MAX_YAML_DEPTH, "r.yaml") is not None
    with pytest.raises(RecipeError, match=r"^r\.yaml: not valid YAML"):
        parse_yaml("[" * 100_000, "r.yaml")
    with pytest.raises(RecipeError, match=r"^r\.yaml: a value cannot be read: .*4300 digits"):
        parse_yaml("seed: " + "9" * 5000, "r.yaml")
    with pytest.raises(RecipeError, match=r"^r\.yaml: not valid YAML: .*python/object"):
        parse_yaml("x: !!python/object/apply:os.system ['true']", "r.yaml")
    with pytest.raises(RecipeError, match=r"^r\.yaml: not valid YAML: expected a single document"):
        parse_yaml("a: 1\n---\nb: 2\n", "r.yaml")

    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match=r"^card: not valid YAML"):
        parse_yaml("a: [", "card", error=MyError)


def test_load_yaml_reads_no_more_than_the_cap(tmp_path):
    """A huge (here sparse, 8 GiB) file is refused after reading 1 MiB."""
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as f:
        f.truncate(8 << 30)
    with pytest.raises(RecipeError, match=r"^demo config .*huge\.yaml: larger than 1,048,576 bytes"):
        load_yaml(huge, "demo config")
    with pytest.raises(RecipeError, match=r"^recipe .*nope\.yaml: does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match=r"^recipe .*: cannot be read"):
        load_yaml(tmp_path)  # a directory


def test_search_settings_are_capped_outside_recipes_too():
    from treecot.search.mcts import MAX_DEPTH, MAX_ROLLOUTS, MAX_TOP_LOGPROBS
    from treecot.search.patterns import MAX_NODE_TOKENS

    MCTSConfig(max_rollouts=MAX_ROLLOUTS, max_depth=MAX_DEPTH, max_node_tokens=MAX_NODE_TOKENS)
    MCTSConfig(top_logprobs=MAX_TOP_LOGPROBS, seed=2**63 - 1, early_stop_rollouts=MAX_ROLLOUTS)
    for field, value in (
        ("max_rollouts", MAX_ROLLOUTS + 1),
        ("early_stop_rollouts", 10**9),
        ("early_stop_correct", 10**9),
        ("max_depth", MAX_DEPTH + 1),
        ("max_node_tokens", MAX_NODE_TOKENS + 1),
        ("top_logprobs", MAX_TOP_LOGPROBS + 1),
        ("seed", 2**63),
    ):
        with pytest.raises(
            ValueError, match=rf"^MCTSConfig\.{field} must be <= [\d,]+ \(treecot\.search\.mcts\."
        ):
            MCTSConfig(**{field: value})


# --------------------------------------------------------------------------- peak memory, end to end

#: Runs `treecot generate` on each hostile recipe in a process limited to 1 GiB of address space and
#: reports exit status, message, seconds and the peak resident memory.
CHILD = """
import contextlib, io, json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
sys.path.insert(0, {root!r})
from treecot.cli import main

def peak_mb():
    # VmHWM: this process's own peak (ru_maxrss can carry the parent's peak across a vfork + exec)
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

out = []
for path in {paths!r}:
    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err):
        rc = main(["generate", path, "--no-progress"])
    out.append({{"path": path, "rc": rc, "err": err.getvalue(), "s": time.perf_counter() - t0,
                "maxrss_mb": peak_mb()}})
print(json.dumps(out))
"""


def hostile_inputs(d: Path) -> dict[str, tuple[Path, str]]:
    """name → (recipe file, what its message must say)."""
    d.mkdir(parents=True, exist_ok=True)
    out = {}

    def recipe(name: str, body: str, expect: str) -> None:
        path = d / f"{name}.yaml"
        path.write_text(body)
        out[name] = (path, expect)

    base = "problems: {task: gsm8k, split: test, limit: 2}\n"
    recipe(
        "alias_bomb",
        base + BILLION_LAUGHS + "generate: {search: {c: *i}}\n",
        "with its aliases (*name) expanded",
    )
    (d / "wide.yaml").write_text("root: {sub_task: 1000000000}\ntransfer: {sub_task: {answer: 1}}\n")
    recipe(
        "patterns_count",
        base + f"generate: {{patterns: {d / 'wide.yaml'}}}\n",
        "generate.patterns: root.sub_task: sample count 1000000000 is more than the maximum 64",
    )
    (d / "bomb-patterns.yaml").write_text(BILLION_LAUGHS + "root: {sub_task: 1}\n")
    recipe(
        "patterns_alias_bomb",
        base + f"generate: {{patterns: {d / 'bomb-patterns.yaml'}}}\n",
        "generate.patterns: patterns file",
    )
    recipe(
        "patterns_unknown",
        base + "generate: {patterns: maths}\n",
        "generate.patterns: no patterns named 'maths'; known: blocksworld, ifeval, math",
    )
    recipe(
        "rollouts",
        base + "generate: {search: {max_rollouts: 1000000000}}\n",
        "MCTSConfig.max_rollouts must be <=",
    )
    recipe(
        "in_flight",
        base + "generate: {problems_in_flight: 1000000000}\n",
        "generate.problems_in_flight: 1000000000",
    )
    recipe(
        "limit",
        "problems: {task: blocksworld, limit: 1000000000000}\ngenerate: {}\n",
        "problems.offset + problems.limit: 1000000000000 is more than the maximum",
    )
    binary = d / "binary.yaml"
    binary.write_bytes(bytes(range(256)) * 64)
    out["binary"] = (binary, "not UTF-8 text")
    return out  # fmt: skip


def test_hostile_recipes_end_quickly_in_little_memory_with_a_message(tmp_path):
    cases = hostile_inputs(tmp_path / "hostile")
    child = CHILD.format(root=str(ROOT), paths=[str(p) for p, _ in cases.values()])
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = {Path(r["path"]).stem: r for r in json.loads(proc.stdout.splitlines()[-1])}
    assert time.perf_counter() - t0 < 60
    for name, (path, expect) in cases.items():
        r = results[path.stem]
        assert r["rc"] == 2, (name, r["err"][-500:])
        message = r["err"].strip()
        assert "Traceback" not in message and len(message) < 1000, (name, message[:300])
        assert str(path) in message and expect in message, (name, message)
        assert r["s"] < 5, (name, r["s"])
        assert r["maxrss_mb"] < 1024, (name, r["maxrss_mb"])
