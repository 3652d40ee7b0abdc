"""tinyjax's benchmarks: one table of workloads, tiny vs jax.jit vs hand-written tinygrad. `python -m benchmarks -h`.

A workload is a function `build(quick) -> Case` (benchmarks/common.py): it makes its inputs from fixed seeds and
returns zero-argument calls of the tiny, jax.jit and (where there is one) hand-written tinygrad versions. To add one,
write it in a module here and append a Workload to WORKLOADS; the runner times, checks and tabulates it.
"""
import os

# jax on a GPU would take 75% of its memory up front, leaving too little to tinygrad's CUDA device in the same process
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

from . import (capture_overhead, cnn_forward, elementwise, embedding, equinox_mlp, generate, lbfgs,  # noqa: E402
               linalg, lstm, mlp_train, scans, sort, transformer)
from .common import Case, Skip, Workload  # noqa: E402

WORKLOADS = [
  Workload("dispatch: x*2+1, 1,024 f32, Tensor input", capture_overhead.dispatch),
  Workload("dispatch-numpy: x*2+1, 1,024 f32, numpy input", capture_overhead.dispatch_numpy),
  Workload("elementwise chain, 2^19 f32", elementwise.chain),
  Workload("cnn forward (prototype CNN)", cnn_forward.cnn_forward),
  Workload("transformer LM value_and_grad (2-block GPT)", transformer.lm_value_and_grad),
  Workload("mlp digits train step (adam)", mlp_train.mlp_adam_step),
  Workload("equinox mlp train step (adam)", equinox_mlp.train_step),
  Workload("lstm forward (nn.RNN scan)", lstm.forward),
  Workload("lstm value_and_grad", lstm.value_and_grad),
  Workload("embedding lookup, 2,048 ids", embedding.lookup),
  Workload("embedding gradient, 2,048 rows", embedding.gradient),
  Workload("kv-cache greedy generation, fori_loop 32 steps", generate.kv_cache_greedy),
  Workload("kalman filter scan (dim 4)", scans.kalman),
  Workload("bidirectional gru scan", scans.bidirectional_gru),
  Workload("while_loop of 64x64 matmul + tanh", capture_overhead.while_matmul),
  Workload("scan rnn, 16 units", capture_overhead.scan_rnn),
  Workload("lbfgs logistic regression (optax, while_loop)", lbfgs.logistic_regression),
  Workload("linalg mix 32x32: solve, eigh, svd, qr", linalg.mix),
  Workload("sort 2^16 f32", sort.sort),
  Workload("argsort 2^16 f32", sort.argsort),
]

__all__ = ["WORKLOADS", "Workload", "Case", "Skip"]
