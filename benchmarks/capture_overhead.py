"""What the capture/replay protocol (tinyjax/capture.py) costs per call: the figures issue 9 asked to keep.

    DEV=CPU python3 benchmarks/capture_overhead.py [--calls 2000] [--reps 5]

- a cached call of a one-kernel function (x*2+1 on 1,024 float32): median µs of `--calls` calls (the program's replay);
- a 300-iteration lax.while_loop of a 64x64 matmul + tanh: median ms a call (one captured iteration, replayed 300 times);
- a lax.scan of 200 steps of a 16-unit tanh RNN: median ms a call (one captured step, replayed 200 times).
The first call (trace, capture) is left out of each; the loop results are read back each call.
"""
import argparse
import time

import jax.numpy as jnp
import numpy as np
from jax import lax
from tinygrad import Tensor

from tinyjax import tiny


def median_s(fn, reps):
  fn()   # trace and capture
  times = []
  for _ in range(reps):
    t0 = time.perf_counter(); fn(); times.append(time.perf_counter() - t0)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--calls", type=int, default=2000)
  parser.add_argument("--reps", type=int, default=5)
  args = parser.parse_args()
  rng = np.random.default_rng(0)

  one_kernel, x = tiny(lambda x: x * 2 + 1), Tensor(rng.normal(size=1024).astype(np.float32)).realize()
  print(f"one-kernel cached call: {median_s(lambda: one_kernel(x), args.calls) * 1e6:.1f} µs")

  def loop(m): return lax.while_loop(lambda c: c[0] < 300, lambda c: (c[0] + 1, jnp.tanh(c[1] @ c[1] * 0.01)), (0, m))[1]
  while_fn, m = tiny(loop), rng.normal(size=(64, 64)).astype(np.float32)
  print(f"while 300 x (64x64 matmul + tanh): {median_s(lambda: while_fn(m).numpy(), args.reps) * 1e3:.1f} ms")

  def rnn(w, h0, xs): return lax.scan(lambda h, x: (jnp.tanh(h @ w + x), h.sum()), h0, xs)
  scan_fn = tiny(rnn)
  w, h0, xs = (rng.normal(size=s).astype(np.float32) * 0.3 for s in ((16, 16), (16,), (200, 16)))
  print(f"scan 200 steps (16-unit tanh RNN): {median_s(lambda: scan_fn(w, h0, xs)[0].numpy(), args.reps) * 1e3:.1f} ms")


if __name__ == "__main__":
  main()
