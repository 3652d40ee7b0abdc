"""Embedding lookup (table 50,000 x 512, 2,048 ids): tiny vs jax.jit vs hand-written tinygrad `table[ids]`, one run.

    DEV=CPU python3 benchmarks/embedding.py [--vocab 50000] [--dim 512] [--ids 2048] [--reps 50] [--grad]

`jnp.take(table, ids, axis=0)` is what flax's nn.Embed emits: one gather (PROMISE_IN_BOUNDS after jnp normalises
negative ids). tinyjax maps it onto tinygrad's `table[row]` indexing, which tinygrad folds into a direct load; this
script checks that it stays within a small factor of the hand-written indexing and reports the kernels' count.
`--grad` also times the gradient of the lookup (a scatter-add of 2,048 rows into the table).
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np
from tinygrad import Device, GlobalCounters, Tensor, TinyJit

from tinyjax import tiny, timing


def median_s(fn, reps):
  """Median seconds of `fn()` over `reps` calls, each until computed on the device, after two warm-up calls (TinyJit
  captures on its second call)."""
  return timing.measure(fn, reps, warmup=2).median


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--vocab", type=int, default=50_000)
  ap.add_argument("--dim", type=int, default=512)
  ap.add_argument("--ids", type=int, default=2_048)
  ap.add_argument("--reps", type=int, default=50)
  ap.add_argument("--grad", action="store_true", help="also time the gradient (scatter-add into the table)")
  args = ap.parse_args()

  rng = np.random.default_rng(0)
  table_np = rng.standard_normal((args.vocab, args.dim), dtype=np.float32)
  ids_np = rng.integers(0, args.vocab, args.ids, dtype=np.int32)
  table_tg, ids_tg = Tensor(table_np).realize(), Tensor(ids_np).realize()
  table_jx, ids_jx = jax.device_put(table_np), jax.device_put(ids_np)

  def lookup(table, ids): return jnp.take(table, ids, axis=0)
  tiny_lookup, jax_lookup = tiny(lookup), jax.jit(lookup)
  hand_lookup = TinyJit(lambda table, ids: table[ids].realize())

  # same answers first
  want = table_np[ids_np]
  np.testing.assert_array_equal(tiny_lookup(table_tg, ids_tg).numpy(), want)
  np.testing.assert_array_equal(np.asarray(jax_lookup(table_jx, ids_jx)), want)

  GlobalCounters.reset()
  timing.wait(tiny_lookup(table_tg, ids_tg))
  kernels, moved = GlobalCounters.kernel_count, GlobalCounters.global_mem

  results = {
    "tiny": median_s(lambda: tiny_lookup(table_tg, ids_tg), args.reps),
    "jax.jit": median_s(lambda: jax_lookup(table_jx, ids_jx), args.reps),
    "tinygrad table[ids]": median_s(lambda: hand_lookup(table_tg, ids_tg), args.reps),
  }
  print(f"embedding lookup: table {args.vocab}x{args.dim} f32, {args.ids} ids, device {Device.DEFAULT}, median of {args.reps}")
  print(f"  tiny: {kernels} kernel(s), {moved / 1e6:.1f} MB moved per call")
  for name, t in results.items():
    print(f"  {name:>20}: {t * 1e3:8.3f} ms   tiny / this = {timing.ratio(results['tiny'], t, '5.2f')}")

  if args.grad:
    def loss(table, ids): return jnp.take(table, ids, axis=0).sum()
    tiny_grad, jax_grad = tiny(jax.grad(loss)), jax.jit(jax.grad(loss))
    want = np.zeros_like(table_np)
    np.add.at(want, ids_np, 1.0)
    np.testing.assert_allclose(tiny_grad(table_tg, ids_tg).numpy(), want)
    GlobalCounters.reset()
    timing.wait(tiny_grad(table_tg, ids_tg))
    kernels = GlobalCounters.kernel_count
    tg_t = median_s(lambda: tiny_grad(table_tg, ids_tg), max(3, args.reps // 5))
    jx_t = median_s(lambda: jax_grad(table_jx, ids_jx), max(3, args.reps // 5))
    print(f"gradient (scatter-add of {args.ids} rows): tiny {tg_t * 1e3:.3f} ms ({kernels} kernels), "
          f"jax.jit {jx_t * 1e3:.3f} ms, tiny / jax.jit = {timing.ratio(tg_t, jx_t)}")


if __name__ == "__main__":
  main()
