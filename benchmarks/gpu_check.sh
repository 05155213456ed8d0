#!/usr/bin/env bash
# The whole GPU check in one call on a bare NVIDIA machine (docs/gpu.md says how to run it):
#   here:    bash benchmarks/gpu_wheels.sh
#   device:  carry [".whl"], command "bash benchmarks/gpu_check.sh", timeout_s 600
# Installs the carried wheels, prints the machine and versions, stops at once without cupy or a
# usable GPU, then runs, each phase under its own time limit so that the whole ends within
# GPU_CHECK_BUDGET_S (default 420 s) and a phase cut short still leaves its log:
#   1. every GPU test, pytest -m gpu          -> $OUT/pytest.log, $OUT/pytest-gpu.xml
#   2. the GPU benchmarks next to torch CUDA  -> $OUT/bench.json, $OUT/bench.log
#   3. the rest of the suite, GPU present     -> $OUT/pytest-rest.log, $OUT/pytest-rest.xml
# and ends with $OUT/summary.txt (machine, counts, failures, figures, timings). Exit status 0 only
# if every phase passed. GPU_CHECK_DRY_RUN=1 checks this plumbing without a GPU: the wheels, the
# imports, the GPU test selection (phase 1 runs; without a GPU every selected test skips) and
# `gpu.py --cpu-smoke`; the rest of the suite is only collected (run too with GPU_CHECK_REST=1).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DRY=${GPU_CHECK_DRY_RUN:-0}
BUDGET=${GPU_CHECK_BUDGET_S:-420}
TESTS_S=${GPU_CHECK_TESTS_S:-240}
BENCH_S=${GPU_CHECK_BENCH_S:-110}
WORKERS=${GPU_CHECK_WORKERS:-4}
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/gpu-check-out.XXXXXX)}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg
START=$(date +%s)
# phase 1 runs the end-to-end tests first, so that a run cut short has the most telling ones
# (a dry run checks that these paths hold every gpu-marked test)
GPU_TEST_PATHS=(tests/test_model_on_gpu.py tests/test_cli_on_gpu.py tests/shims tests/layers tests/backends)

note() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(($(date +%s) - START)); }
left() { echo $((BUDGET - $(elapsed))); }
fail() {
    note "GPU CHECK STOPPED: $*"
    note "elapsed $(elapsed)s"
    exit 1
}
phase() { note "== $1 (at $(elapsed)s)"; }
limit() { local left_s; left_s=$(left); echo $((left_s < $1 ? left_s : $1)); }  # seconds a phase may take
has_module() { "$PY" -c "import $1" 2>/dev/null; }
FAILED=()
check_status() {  # name, exit status (124: cut by its time limit)
    note "$1 exit status $2 after $(elapsed)s"
    [ "$2" = 0 ] || FAILED+=("$1 ($2)")
}

if [ "$DRY" != 1 ] && ! has_module cupy; then
    fail "cupy cannot be imported by $PY: this is not a CUDA image (GPU_CHECK_DRY_RUN=1 checks the script without one)"
fi

# Setup: the carried wheels (composa's own dependencies) into a private site dir; composa
# itself comes from this checkout.
phase "wheels"
if compgen -G ".whl/*.whl" >/dev/null; then
    SITE=${GPU_CHECK_SITE:-/tmp/site}
    if [ "$DRY" = 1 ]; then
        SITE=$(mktemp -d /tmp/gpu-check-site.XXXXXX)
        trap 'rm -rf "$SITE"' EXIT
    fi
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        || fail "could not install the wheels in .whl/"
    export PYTHONPATH="$SITE:$PWD"
    note "installed: $(cd .whl && ls *.whl | tr '\n' ' ')"
elif [ "$DRY" = 1 ]; then
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
    note "no .whl/: using this environment's packages"
else
    fail "no wheels in .whl/: run 'bash benchmarks/gpu_wheels.sh' here and pass carry [\".whl\"]"
fi

# Setup: the machine, and the fast failures.
phase "machine"
{
    uname -srm
    echo "cpus: $(nproc)"
    nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm --format=csv 2>&1 || echo "nvidia-smi: not available"
    "$PY" -c "import sys, numpy, torch; print('python', sys.version.split()[0], sys.executable, '| numpy', numpy.__version__, '| torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" 2>&1
    "$PY" -c "import cupy; print('cupy', cupy.__version__)" 2>&1 | tail -1
    "$PY" -c "import composa, composa.backends as b; print('composa', composa.__version__, 'from', composa.__file__, '| has_cupy_gpu', b.has_cupy_gpu)" 2>&1 | tail -3
} | tee -a "$SUMMARY"
"$PY" -c "import composa" 2>/dev/null || fail "python3 -c 'import composa' failed: a dependency missing from .whl/?"
if [ "$DRY" != 1 ]; then
    "$PY" - <<'EOF' 2>&1 | tee -a "$SUMMARY"
import cupy, torch
from composa.backends import has_cupy_gpu
assert cupy.cuda.runtime.getDeviceCount() > 0, "cupy sees no CUDA device"
assert int(cupy.arange(4).sum()) == 6, "a cupy kernel gave a wrong answer"
assert torch.cuda.is_available(), "torch sees no CUDA device"
assert has_cupy_gpu, "composa.backends.has_cupy_gpu is False"
print("GPU ok: cupy and torch both see", torch.cuda.get_device_name(0))
EOF
    [ "${PIPESTATUS[0]}" = 0 ] || fail "no usable CUDA GPU (see the lines above)"
    if [ -n "${SITE:-}" ]; then
        # on the lent machine only: tests that start python with their own PYTHONPATH
        # (tests/test_docs.py) must find the wheels too; removed again at exit
        PTH=$("$PY" -c "import site; print(site.getsitepackages()[0])")/composa_gpu_check.pth
        echo "$SITE" >"$PTH" && trap 'rm -f "$PTH"' EXIT || note "could not write $PTH: docs examples will miss the wheels"
    fi
fi

PYTEST=("$PY" -m pytest -p no:cacheprovider -q --tb=short)
has_module pytest_timeout && PYTEST+=(--timeout=180)
XDIST=()
has_module xdist && [ "$WORKERS" -gt 1 ] && XDIST=(-n "$WORKERS" --dist loadfile)

# 1. Every GPU test.
phase "GPU tests: pytest -m gpu ${XDIST[*]}"
if [ "$DRY" = 1 ]; then
    selected=$("$PY" -m pytest -p no:cacheprovider -q --collect-only -m gpu "${GPU_TEST_PATHS[@]}" 2>&1 | grep -c "::")
    everywhere=$("$PY" -m pytest -p no:cacheprovider -q --collect-only -m gpu tests 2>&1 | grep -c "::")
    note "selected $selected GPU tests in phase order, $everywhere marked gpu under tests/"
    [ "$selected" -gt 0 ] && [ "$selected" = "$everywhere" ] || fail "the GPU test selection misses tests"
fi
timeout -s INT -k 30 "$(limit "$TESTS_S")" \
    "${PYTEST[@]}" "${XDIST[@]}" -m gpu -rfEs --junitxml="$OUT/pytest-gpu.xml" "${GPU_TEST_PATHS[@]}" 2>&1 | tee "$OUT/pytest.log" | tail -n 40
check_status "pytest -m gpu" "${PIPESTATUS[0]}"

# 2. The benchmarks (gpu.py stops starting cases 40 s before its limit: the last one may be slow).
phase "benchmarks"
BENCH_ARGS=(--cpu-smoke)
[ "$DRY" = 1 ] || BENCH_ARGS=(--budget-s $(($(limit "$BENCH_S") - 40)))
if [ "$(limit "$BENCH_S")" -ge 45 ] || [ "$DRY" = 1 ]; then
    timeout -s INT -k 20 "$(limit "$BENCH_S")" "$PY" benchmarks/gpu.py "${BENCH_ARGS[@]}" --out "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
    check_status "gpu.py" "${PIPESTATUS[0]}"
else
    check_status "gpu.py skipped, $(left)s left" 1
fi

# 3. The rest of the suite, now that has_cupy_gpu is true (the CPU-only paths beside the GPU).
if [ "$DRY" = 1 ] && [ "${GPU_CHECK_REST:-0}" != 1 ]; then
    rest=$("$PY" -m pytest -p no:cacheprovider -q --collect-only -m "not gpu" tests 2>&1 | grep -c "::")
    note "== rest of the suite: would run $rest tests (pytest -m 'not gpu' -n 8)"
elif [ "$(left)" -gt 30 ]; then
    phase "rest of the suite: pytest -m 'not gpu'"
    REST_XDIST=()
    has_module xdist && REST_XDIST=(-n 8)
    timeout -s INT -k 20 $(($(left) - 15)) \
        "${PYTEST[@]}" "${REST_XDIST[@]}" -m "not gpu" -rfE --junitxml="$OUT/pytest-rest.xml" tests >"$OUT/pytest-rest.log" 2>&1
    check_status "pytest -m 'not gpu'" "$?"
else
    note "== rest of the suite: skipped, $(left)s left"
fi

phase "summary"
"$PY" benchmarks/gpu_summary.py "$OUT" | tee -a "$SUMMARY"
status=${PIPESTATUS[0]}
[ ${#FAILED[@]} = 0 ] || { note "phases that did not pass: ${FAILED[*]}"; status=1; }
note "GPU check finished in $(elapsed)s (dry run: $DRY), status $status; files in $OUT: $(cd "$OUT" && ls | tr '\n' ' ')"
exit "$status"
