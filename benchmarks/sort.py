"""Sorting: jnp.sort of 1M float32 and jnp.argsort of 65,536 float32, tiny vs jax.jit (median wall time).

    DEV=CPU CC=clang-19 python3 benchmarks/sort.py [--sort-n 1048576] [--argsort-n 65536] [--reps 10] [--extra]

tinyjax sorts a float key as an unsigned word (its total order) with the position in the low bits, by tinygrad's
bitonic Tensor.sort (O(n log^2 n), one kernel per stage step), then gathers by the permutation. `--extra` adds a
lax.top_k and a two-key lexsort. The first call (trace, capture and compile of ~200 kernels) is reported apart.
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from tinygrad import Device, GlobalCounters, Tensor

from tinyjax import tiny, timing


def compare(name, fn, *args_np, reps):
  args_tg = [Tensor(a).realize() for a in args_np]
  args_jx = [jax.device_put(a) for a in args_np]
  tiny_fn, jax_fn = tiny(fn), jax.jit(fn)
  first, got = timing.timed(lambda: tiny_fn(*args_tg))
  want = jax_fn(*args_jx)
  for g, w in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
    np.testing.assert_array_equal(g.numpy(), np.asarray(w))   # the same answer, bit for bit (no ties in these inputs)
  GlobalCounters.reset()
  timing.wait(tiny_fn(*args_tg))
  kernels = GlobalCounters.kernel_count
  t_tiny = timing.measure(lambda: tiny_fn(*args_tg), reps, warmup=2).median
  t_jax = timing.measure(lambda: jax_fn(*args_jx), reps, warmup=2).median
  print(f"  {name:<32} tiny {t_tiny * 1e3:9.2f} ms ({kernels} kernels; first call {first:.1f} s)   "
        f"jax.jit {t_jax * 1e3:9.2f} ms   tiny / jax.jit = {timing.ratio(t_tiny, t_jax, '5.2f')}")


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--sort-n", type=int, default=1 << 20)
  ap.add_argument("--argsort-n", type=int, default=1 << 16)
  ap.add_argument("--reps", type=int, default=10)
  ap.add_argument("--extra", action="store_true")
  args = ap.parse_args()
  rng = np.random.default_rng(0)
  big = rng.permutation(args.sort_n).astype(np.float32) - args.sort_n / 2   # distinct values (exact parity)
  small = rng.permutation(args.argsort_n).astype(np.float32) * 0.5 - 7.0
  print(f"sorting on device {Device.DEFAULT}, median of {args.reps}")
  compare(f"jnp.sort({args.sort_n} f32)", jnp.sort, big, reps=args.reps)
  compare(f"jnp.argsort({args.argsort_n} f32)", jnp.argsort, small, reps=args.reps)
  if args.extra:
    compare(f"lax.top_k({args.argsort_n} f32, 10)", lambda x: lax.top_k(x, 10), small, reps=args.reps)
    keys = rng.integers(0, 100, args.argsort_n).astype(np.int32)
    compare(f"jnp.lexsort(2 x {args.argsort_n})", lambda a, b: jnp.lexsort((a, b)), small, keys, reps=args.reps)


if __name__ == "__main__":
  main()
