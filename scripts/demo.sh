#!/usr/bin/env bash
# Sets up (clang for tinygrad's CPU device, a .venv with tinyjax) and runs the main demo: the prototype's Flax CNN
# through @tiny against jax.jit. Extra arguments go to the demo (e.g. --device CL --batch 256).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh "clang" ""
exec .venv/bin/python -m tinyjax.demo "$@"
