#!/usr/bin/env bash
# A long randomized run of the generated parity tests: fresh hypothesis examples on every run (the suite's are fixed),
# TINYJAX_EXAMPLES of them per test (default 200). Failures are kept in .hypothesis/ and replayed first next time.
# Usage: bash scripts/fuzz.sh [pytest arguments, default tests/rules]
set -euo pipefail
cd "$(dirname "$0")/.."
export CC=${CC:-clang-19} DEV=${DEV:-CPU} TINYJAX_FUZZ=1 TINYJAX_EXAMPLES=${TINYJAX_EXAMPLES:-200}
exec .venv/bin/python -m pytest -q -n "${JOBS:-2}" "${@:-tests/rules}"
