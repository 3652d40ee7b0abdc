"""Sorting: jnp.sort and jnp.argsort of 65,536 float32, tiny vs jax.jit (and for the sort, tinygrad's own Tensor.sort).

    python -m benchmarks --only sort

tinyjax sorts a float key as an unsigned word (its total order) with the position in the low bits, by tinygrad's
bitonic Tensor.sort (O(n log^2 n), one kernel per stage step), then gathers by the permutation. The first call
(trace, capture and compile of ~150 kernels) is the long one. The values are distinct, so every sort agrees exactly.
argsort has no hand-written row: tinygrad's Tensor.sort finds its indices by an n x n comparison (3.8 s a call at
2^16 on a 2-core CPU), which no tinygrad user would keep.
"""
import jax
import jax.numpy as jnp
from tinygrad import Tensor, TinyJit

from tinyjax import tiny

from .common import Case, rng


def _sort(fn, hand=None):
  n = 1 << 16
  x = rng().permutation(n).astype("float32") * 0.5 - 7.0   # distinct values (exact parity, no ties)
  xt, xj, tiny_f, jax_f = Tensor(x).realize(), jax.device_put(x), tiny(fn), jax.jit(fn)
  return Case(lambda: tiny_f(xt), lambda: jax_f(xj), None if hand is None else lambda: hand(xt))


def sort(quick): return _sort(jnp.sort, TinyJit(lambda x: x.sort()[0].realize()))
def argsort(quick): return _sort(jnp.argsort)
