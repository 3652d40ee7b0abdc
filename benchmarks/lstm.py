"""An LSTM (flax nn.RNN over nn.OptimizedLSTMCell, 256 steps, hidden 128): forward and value_and_grad, tiny vs jax.jit.

    DEV=CPU python3 benchmarks/lstm.py [--steps 256] [--hidden 128] [--batch 8] [--reps 5]

flax's nn.RNN is a lax.scan. tinyjax runs a scan longer than rules.control_flow.UNROLL_MAX_LENGTH as its body's kernels,
captured once and replayed per step with the step index as a bound Variable; the surrounding program is
re-interpreted per call (the step loop runs on the host). Prints first-call and steady-state times and parity.
"""
import argparse

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from tinyjax import tiny, timing, to_numpy
from tinyjax.rules import control_flow


class Model(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, x):
    h = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(x)
    return nn.Dense(1)(h[:, -1])


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--steps", type=int, default=256)
  ap.add_argument("--hidden", type=int, default=128)
  ap.add_argument("--batch", type=int, default=8)
  ap.add_argument("--features", type=int, default=32)
  ap.add_argument("--reps", type=int, default=5)
  ap.add_argument("--steps-per-replay", type=int, default=control_flow.STEPS_PER_REPLAY,
                  help="scan steps unrolled into one captured replay (control_flow.STEPS_PER_REPLAY)")
  args = ap.parse_args()
  control_flow.STEPS_PER_REPLAY = args.steps_per_replay
  rng = np.random.default_rng(0)
  x = rng.normal(size=(args.batch, args.steps, args.features)).astype(np.float32)
  y = rng.normal(size=(args.batch, 1)).astype(np.float32)
  model = Model(args.hidden)
  params = jax.jit(model.init)(jax.random.key(0), x)
  forward = lambda p, x: model.apply(p, x)
  loss_and_grad = jax.value_and_grad(lambda p, x, y: jnp.mean((model.apply(p, x) - y) ** 2))
  print(f"LSTM: {args.steps} steps, hidden {args.hidden}, batch {args.batch}, {args.features} features, "
        f"{args.steps_per_replay} step(s) per replay")
  for name, fn, fargs in (("forward", forward, (params, x)), ("value_and_grad", loss_and_grad, (params, x, y))):
    jitted, tinied = jax.jit(fn), tiny(fn)
    with jax.default_matmul_precision("highest"):   # float32 as tinygrad computes it (jax on GPU defaults to TF32)
      want = jax.jit(fn)(*fargs)
    tiny_first, got = timing.timed(lambda: tinied(*fargs))   # trace, capture, compile
    got = to_numpy(got)
    err = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b)) / (np.abs(np.asarray(b)) + 1e-3)))
              for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)))
    # outputs read back to the host each time; jitted's first call is its compile
    t_jax = timing.measure(lambda: jitted(*fargs), args.reps, read=True)
    t_tiny = timing.measure(lambda: tinied(*fargs), args.reps, warmup=0, read=True)
    print(f"  {name:15s} tiny {t_tiny.median * 1e3:8.1f} ms (first call {tiny_first:5.1f} s)   "
          f"jax.jit {t_jax.median * 1e3:7.1f} ms (first {t_jax.first:4.1f} s)   "
          f"tiny/jax {timing.ratio(t_tiny.median, t_jax.median, '5.1f')}   max rel diff {err:.1e}")


if __name__ == "__main__":
  main()
