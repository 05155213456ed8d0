#!/usr/bin/env bash
# Download, on this machine, the wheels of composa's dependencies that the lent GPU machine lacks,
# into the repo's git-ignored .whl/ folder. The device call then carries them:
#   carry [".whl"], command "bash benchmarks/gpu_check.sh"   (docs/gpu.md)
# That machine runs Python 3.12 on x86-64 and can download nothing. Its image already has numpy,
# msgpack, rich, scikit-learn, matplotlib, torch, cupy, pytest, pytest-xdist and hypothesis; of
# setup.cfg's install_requires only confection and catalogue are missing, and neither needs
# anything else on Python 3.12 (their Requires-Dist lines apply to Python < 3.11 only; printed
# below so that a new version's needs show). Pinned to the versions the test suite runs with here.
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(confection==1.3.4 catalogue==2.0.10)
TARGET=(--python-version 3.12 --implementation cp
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)

rm -rf .whl
mkdir -p .whl
for wheel in "${WHEELS[@]}"; do
    # binary wheels match the platform tags; a pure-python wheel may need the plain form
    python3 -m pip download -q --no-deps --only-binary=:all: "${TARGET[@]}" -d .whl "$wheel" \
        || python3 -m pip download -q --no-deps --only-binary=:all: -d .whl "$wheel"
done

count=$(ls .whl/*.whl | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
    echo "gpu_wheels.sh: expected ${#WHEELS[@]} wheels in .whl/, found $count" >&2
    exit 1
fi
for file in .whl/*.whl; do
    requires=$(python3 -c "import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA')); print('; '.join(l[15:] for l in z.read(meta).decode().splitlines() if l.startswith('Requires-Dist:') and 'extra ==' not in l) or 'nothing')" "$file")
    echo "$(du -k "$file" | cut -f1) KiB  $(basename "$file")  requires: $requires"
done
echo "total $(du -sk .whl | cut -f1) KiB in .whl/ (the device call's working tree may hold 64 MiB)"
