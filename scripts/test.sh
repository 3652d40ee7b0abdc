#!/usr/bin/env bash
# Sets up (clang-19 for tinygrad's CPU device, POCL for a real OpenCL device, a .venv with the test extras) and runs
# the whole test suite on DEV=CPU, then a representative subset again on DEV=CL. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "clang-19 pocl-opencl-icd ocl-icd-libopencl1" "test,opencl"
export CC=${CC:-clang-19}   # bfloat16 kernels need clang >= 17; Debian 12's default clang is 14
export TINYJAX_EXAMPLES=${TINYJAX_EXAMPLES:-8}   # hypothesis examples per generated test: CI's time budget; raise locally

# pytest with these arguments. pytest-xdist workers used to die now and then of a segfault inside a freshly captured
# CPU kernel (test_random, test_indexing, test_conv); one cause is found and patched (cpu-far-calls, see README:
# Development), the others were not reproduced: a test whose worker crashed is run once more in a process of its own,
# and the run passes only if every failure was such a crash and each passes then. Any other failure fails the run.
suite() {
  local log; log=$(mktemp)
  if .venv/bin/python -m pytest -q -p no:cacheprovider "$@" 2>&1 | tee "$log"; then return 0; fi
  mapfile -t crashed < <(sed -n "s/^worker '[^']*' crashed while running '\(.*\)'$/\1/p" "$log")
  local failed; failed=$(grep -c '^\(FAILED\|ERROR\) ' "$log" || true)
  if [ ${#crashed[@]} -eq 0 ] || [ "$failed" -ne ${#crashed[@]} ]; then return 1; fi
  echo "== a worker crashed in ${#crashed[@]} test(s); running each again in a process of its own: ${crashed[*]}"
  .venv/bin/python -m pytest -q -p no:cacheprovider "${crashed[@]}"
}

echo "== DEV=CPU: the whole suite"
# tests/rules/test_random.py in a process of its own (where its sampler test first crashed as above)
if [ $# -eq 0 ]; then
  DEV=CPU suite -n 2 --durations=15 --ignore=tests/rules/test_random.py
  DEV=CPU suite -n 2 tests/rules/test_random.py
else
  DEV=CPU suite -n 2 --durations=15 "$@"
fi
echo "== DEV=CL (POCL, a real OpenCL device): the decorator contract, the interpreter and whole models"
DEV=CL suite -n 2 tests/test_decorator.py tests/test_interpreter.py tests/test_models.py "$@"
