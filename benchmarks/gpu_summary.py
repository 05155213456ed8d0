"""Summarise a GPU check's outputs: test counts and failures from JUnit XML, figures from bench.json.

    python3 benchmarks/gpu_summary.py OUT_DIR

Reads whichever of OUT_DIR/pytest-gpu.xml, pytest-rest.xml and bench.json exist (written by
benchmarks/gpu_check.sh) and prints counts, every failure's first line, the skip reasons
(in the GPU run a skip means something is missing there) and the benchmark table. Exits 1
if a test failed or errored or a benchmark case failed.
"""
import collections
import json
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

MAX_LISTED = 40


def summarise_tests(path: Path, title: str) -> bool:
    """Print the counts and failures of one JUnit file; True if nothing failed."""
    if not path.is_file():
        print(f"{title}: not run (no {path.name})")
        return True
    root = ElementTree.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    print(
        f"{title}: {passed} passed, {counts['failures']} failed, {counts['errors']} errors, "
        f"{counts['skipped']} skipped in {float(suite.get('time', 0)):.0f}s"
    )
    failed, skips = [], collections.Counter()
    for case in suite.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        for outcome in ("failure", "error"):
            element = case.find(outcome)
            if element is not None:
                message = (element.get("message") or "").splitlines()
                failed.append(f"  {outcome.upper()} {name}: {message[0][:200] if message else ''}")
        skipped = case.find("skipped")
        if skipped is not None:
            skips[(skipped.get("message") or "")[:160]] += 1
    for line in failed[:MAX_LISTED]:
        print(line)
    if len(failed) > MAX_LISTED:
        print(f"  ... and {len(failed) - MAX_LISTED} more (see the log)")
    for reason, count in skips.most_common(10):
        print(f"  skipped x{count}: {reason}")
    return counts["failures"] == 0 and counts["errors"] == 0


def summarise_bench(path: Path) -> bool:
    """Print the benchmark table; True if every case ran."""
    if not path.is_file():
        print("benchmarks: not run (no bench.json)")
        return True
    report = json.loads(path.read_text())
    machine = report.get("machine", {})
    print(f"benchmarks ({report.get('mode')}, {machine.get('device')}, torch {machine.get('torch')}, "
          f"cupy {machine.get('cupy', '-')}, {report.get('elapsed_s')}s, complete: {report.get('complete')}):")
    print(f"  {'case':26s} {'shape':34s} {'composa ms':>11s} {'torch ms':>11s} {'ratio':>7s}")
    for case in report.get("cases", []):
        shape = " ".join(f"{k}={v}" for k, v in case.items() if k not in _NOT_SHAPE and not isinstance(v, (dict, list)))
        print(f"  {case['case']:26s} {shape[:34]:34s} {case['composa_ms']:11.3f} {case['torch_ms']:11.3f} {case['ratio']:7.2f}")
    for error in report.get("errors", []):
        print(f"  ERROR {error['case']}: {error['error'][:200]}")
    for label in report.get("skipped", []):
        print(f"  skipped (time budget): {label}")
    return not report.get("errors")


_NOT_SHAPE = {"case", "composa_ms", "torch_ms", "ratio", "composa", "torch"}


def main(argv: list) -> int:
    if len(argv) != 2:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    out = Path(argv[1])
    ok = summarise_tests(out / "pytest-gpu.xml", "GPU tests (pytest -m gpu)")
    ok = summarise_tests(out / "pytest-rest.xml", "rest of the suite with the GPU present (pytest -m 'not gpu')") and ok
    ok = summarise_bench(out / "bench.json") and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
