"""Mutation check: seed one small bug at a time into a module and see whether its tests notice.

Each mutant is one operator change in the module's syntax tree (``+`` for ``-``, ``<`` for ``<=``,
``=`` for ``+=``, ``and`` for ``or``, a constant changed, ``not`` dropped, ``True`` for ``False``,
a ``raise`` turned into ``pass``). The mutated module is written into a scratch copy of the
repository and only the tests mapped to that module run (``pytest -x``); a failing or timed-out
run kills the mutant, a passing one lets it survive. Survivors are printed with their line so
that each can be judged (a real gap gets a test; an equivalent mutant gets a line in
docs/testing.md).

A well-kept tool (mutmut, cosmic-ray) mutates the whole package and maps tests by coverage;
this script maps modules to test files by hand so that a sampled run over the core modules
finishes in well under an hour on 2 cores, which is what the issue asks for.

    python tools/mutation.py --per-module 40            # a sampled run over every target
    python tools/mutation.py composa/loss.py --all     # every mutant of one module
    python tools/mutation.py --survivors before.json   # only an earlier run's survivors, after new tests
"""

import argparse
import ast
import copy
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
GUARDS = ["tests/test_guarded_behaviours.py"]
# the loader-safety tests but their two slow ones (a 100,000-deep input in a child process, a huge torch state)
LOADER_SAFETY = [
    "tests/test_loader_safety.py",
    "--deselect=tests/test_loader_safety.py::test_deeply_nested_tuples_are_refused_instead_of_overflowing_the_stack",
    "--deselect=tests/test_loader_safety.py::test_a_torch_state_entry_with_a_huge_shape_is_refused",
]

# module -> the tests that exercise it (paths relative to the repository root)
TARGETS: Dict[str, List[str]] = {
    "composa/model.py": ["tests/test_model.py", "tests/test_model_io.py", "tests/test_model_serialization.py", *GUARDS],
    "composa/model_io.py": ["tests/test_model_io.py", "tests/test_model_serialization.py", *LOADER_SAFETY, *GUARDS],
    "composa/serialize.py": [
        "tests/test_msgpack_reader.py", "tests/test_model_serialization.py", "tests/test_model_io.py", *LOADER_SAFETY,
    ],
    "composa/optimizers.py": ["tests/test_optimizers.py", *LOADER_SAFETY],
    "composa/loss.py": ["tests/test_loss.py", *GUARDS],
    "composa/backends/ops.py": ["tests/backends/test_ops.py", "tests/backends/test_ops_parity.py"],
    "composa/backends/numpy_ops.py": ["tests/backends/test_ops.py", "tests/backends/test_ops_parity.py"],
    "composa/backends/_lstm.py": ["tests/layers/test_lstm.py", "tests/backends/test_ops.py"],
    "composa/shims/pytorch.py": ["tests/shims/test_pytorch_shim.py", "tests/layers/test_pytorchwrapper.py", *GUARDS],
    "composa/layers/_affine.py": [
        "tests/layers/test_linear.py", "tests/layers/test_dense.py", "tests/layers/test_softmax.py",
        "tests/layers/test_sigmoid.py",
    ],
    "composa/layers/_combine.py": [
        "tests/layers/test_chain.py", "tests/layers/test_add.py", "tests/layers/test_concatenate.py",
        "tests/test_error_paths.py",
    ],
    "composa/layers/with_padded.py": ["tests/layers/test_with_padded.py", *GUARDS],
    "composa/layers/dropout.py": ["tests/layers/test_dropout.py", *GUARDS],
    "composa/layers/hashembed.py": ["tests/layers/test_hashembed.py"],
    "composa/layers/layernorm.py": ["tests/layers/test_layernorm.py"],
    "composa/layers/maxout.py": ["tests/layers/test_maxout.py"],
    "composa/layers/reduce.py": ["tests/layers/test_reduce.py"],
}

SWAPS = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Mult,
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.And: ast.Or, ast.Or: ast.And,
}


@dataclass
class Mutant:
    """One seeded bug: which node of the tree changes, how, and the source line it came from."""

    module: str
    index: int
    line: int
    operator: str
    source_line: str


def sites(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that an operator can change, in a stable order (docstrings skipped)."""
    docstrings = {id(node.body[0].value) for node in ast.walk(tree) if _has_docstring(node)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.BinOp, ast.BoolOp, ast.AugAssign, ast.Raise)) or (
            isinstance(node, ast.Compare) and type(node.ops[0]) in SWAPS
        ):
            yield node
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            yield node
        elif isinstance(node, ast.Constant) and id(node) not in docstrings and _is_mutable_constant(node.value):
            yield node


def _has_docstring(node: ast.AST) -> bool:
    body = getattr(node, "body", None)
    return (
        isinstance(body, list) and bool(body) and isinstance(body[0], ast.Expr)
        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)
    )


def _is_mutable_constant(value: object) -> bool:
    return isinstance(value, bool) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def mutate(node: ast.AST) -> Optional[str]:
    """Change `node` in place; the operator's name, or None when nothing applies."""
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in SWAPS:
        name = f"{type(node.op).__name__} -> {SWAPS[type(node.op)].__name__}"
        node.op = SWAPS[type(node.op)]()
        return name
    if isinstance(node, ast.BoolOp):
        node.op = SWAPS[type(node.op)]()
        return "and <-> or"
    if isinstance(node, ast.Compare):
        name = f"{type(node.ops[0]).__name__} -> {SWAPS[type(node.ops[0])].__name__}"
        node.ops[0] = SWAPS[type(node.ops[0])]()
        return name
    if isinstance(node, ast.UnaryOp):
        return "drop not"  # applied by mutated_source: the node is replaced by its operand
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool):
            node.value = not node.value
            return "flip bool"
        node.value = node.value + 1 if isinstance(node.value, int) else node.value * 2 + 1
        return "change constant"
    if isinstance(node, ast.Raise):
        return "raise -> pass"
    return None


def mutants_of(module: str) -> List[Mutant]:
    """Every mutant of `module`, numbered by its site."""
    source = (ROOT / module).read_text()
    lines = source.splitlines()
    found = []
    for index, node in enumerate(sites(ast.parse(source))):
        operator = mutate(copy.deepcopy(node))
        if operator is not None:
            found.append(Mutant(module, index, node.lineno, operator, lines[node.lineno - 1].strip()))
    return found


def mutated_source(mutant: Mutant) -> str:
    """The module's source with `mutant` applied (re-printed from the tree, comments dropped)."""
    tree = ast.parse((ROOT / mutant.module).read_text())
    node = list(sites(tree))[mutant.index]
    if isinstance(node, ast.Raise):
        _replace_child(tree, node, ast.Pass())
    elif isinstance(node, ast.UnaryOp):
        _replace_child(tree, node, node.operand)
    else:
        mutate(node)
    return ast.unparse(ast.fix_missing_locations(tree))


def _replace_child(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    """Put `new` where `old` sits in its parent (a statement list or a single field)."""
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, ast.copy_location(new, old))
                return
            if isinstance(value, list) and any(item is old for item in value):
                value[[id(item) for item in value].index(id(old))] = ast.copy_location(new, old)
                return


def run_tests(workdir: Path, tests: Sequence[str], timeout: float) -> str:
    """'passed', 'failed' or 'timeout' for the mapped tests in the scratch copy."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(command, cwd=workdir, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "passed" if result.returncode == 0 else "failed"


def check_module(
    workdir: Path, module: str, sample: Optional[int], seed: int, only: Optional[Sequence[int]] = None
) -> Dict[str, object]:
    """Run the sampled mutants of one module (or those numbered `only`); the kill count and the survivors."""
    tests = TARGETS[module]
    started = time.perf_counter()
    if run_tests(workdir, tests, timeout=600) != "passed":
        raise SystemExit(f"the tests for {module} fail without any mutant: fix them first")
    timeout = 3 * (time.perf_counter() - started) + 10
    chosen = mutants_of(module)
    if only is not None:
        chosen = [mutant for mutant in chosen if mutant.index in set(only)]
    elif sample is not None and sample < len(chosen):
        chosen = sorted(random.Random(seed).sample(chosen, sample), key=lambda m: m.index)
    target = workdir / module
    original = target.read_text()
    survivors = []
    try:
        for mutant in chosen:
            target.write_text(mutated_source(mutant))
            if run_tests(workdir, tests, timeout) == "passed":
                survivors.append(mutant.__dict__)
                print(f"  survived {module}:{mutant.line} {mutant.operator}: {mutant.source_line}", flush=True)
    finally:
        target.write_text(original)
    return {"module": module, "mutants": len(chosen), "killed": len(chosen) - len(survivors), "survivors": survivors}


def scratch_copy() -> Path:
    """The package and its tests copied to a temporary folder (the checkout itself is never mutated)."""
    workdir = Path(tempfile.mkdtemp(prefix="composa-mutation-"))
    for name in ("composa", "tests", "docs", "README.md", "setup.cfg", "pyproject.toml", "examples"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif source.exists():
            shutil.copy2(source, workdir / name)
    return workdir


def _survivor_indices(path: Path) -> Dict[str, List[int]]:
    """module -> the mutant numbers that survived in an earlier run's JSON (the module must be unchanged)."""
    return {result["module"]: [m["index"] for m in result["survivors"]] for result in json.loads(path.read_text())}


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("modules", nargs="*", help="modules to mutate (default: every target)")
    parser.add_argument("--per-module", type=int, default=40, help="mutants sampled per module")
    parser.add_argument("--all", action="store_true", help="every mutant, no sampling")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--survivors", type=Path, help="re-run only the survivors in this earlier --json file (after adding tests)"
    )
    args = parser.parse_args(argv)
    earlier = _survivor_indices(args.survivors) if args.survivors else None
    modules = args.modules or (list(earlier) if earlier else list(TARGETS))
    workdir = scratch_copy()
    results = []
    try:
        for module in modules:
            print(f"{module}: mutating", flush=True)
            only = earlier.get(module, []) if earlier else None
            results.append(check_module(workdir, module, None if args.all else args.per_module, args.seed, only))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print("\n| module | mutants | killed | kill rate |\n|---|---|---|---|")
    for result in results:
        rate = result["killed"] / result["mutants"] if result["mutants"] else 1.0
        print(f"| `{result['module']}` | {result['mutants']} | {result['killed']} | {rate:.0%} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
