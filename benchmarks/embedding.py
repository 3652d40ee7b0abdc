"""Embedding lookup (table 50,000 x 512, 2,048 ids; --quick: 8,192 x 128) and its gradient: tiny vs jax.jit vs
hand-written tinygrad, one run.

    python -m benchmarks --only embedding

`jnp.take(table, ids, axis=0)` is what flax's nn.Embed emits: one gather (PROMISE_IN_BOUNDS after jnp normalises
negative ids). tinyjax maps it onto tinygrad's `table[row]` indexing, which tinygrad folds into a direct load; the
lookup row checks that it stays within a small factor of the hand-written indexing, with the kernels' count. The
gradient of the lookup is a scatter-add of 2,048 rows into the table (hand-written: tinygrad's own autograd of
`table[ids].sum()`).
"""
import jax
import jax.numpy as jnp
from tinygrad import Tensor, TinyJit

from tinyjax import tiny

from .common import Case, rng


def _inputs(quick):
  vocab, dim = (8_192, 128) if quick else (50_000, 512)
  r = rng()
  table, ids = r.standard_normal((vocab, dim), dtype="float32"), r.integers(0, vocab, 2_048, dtype="int32")
  tinygrad, jax_ = (Tensor(table).realize(), Tensor(ids).realize()), (jax.device_put(table), jax.device_put(ids))
  return tinygrad, jax_, f"table {vocab:,} x {dim}"


def lookup(quick):
  def f(table, ids): return jnp.take(table, ids, axis=0)
  tg, jx, size = _inputs(quick)
  tiny_f, jax_f, hand = tiny(f), jax.jit(f), TinyJit(lambda table, ids: table[ids].realize())
  return Case(lambda: tiny_f(*tg), lambda: jax_f(*jx), lambda: hand(*tg), size=size)


def gradient(quick):
  def loss(table, ids): return jnp.take(table, ids, axis=0).sum()
  tg, jx, size = _inputs(quick)
  tiny_f, jax_f = tiny(jax.grad(loss)), jax.jit(jax.grad(loss))
  hand = TinyJit(lambda table, ids: table[ids].sum().gradient(table)[0].realize())
  return Case(lambda: tiny_f(*tg), lambda: jax_f(*jx), lambda: hand(*tg), size=size)
