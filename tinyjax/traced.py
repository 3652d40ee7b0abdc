"""Rules that trace JAX's own implementation of a primitive into a Jaxpr and interpret that.

Many primitives are lowered by JAX itself with `mlir.lower_fun(some_python_impl)`: the impl is written in lax ops
(threefry's key derivations, igamma's series, random_gamma's rejection sampler, ...). Tracing that same function with
jax.make_jaxpr and evaluating the Jaxpr with our rules gives XLA's algorithm op for op, the trick jax2tf uses.
Shared by random.py and special.py.
"""
import functools

import jax
import numpy as np

from .rules.numerics import const, jdtype


@functools.lru_cache(maxsize=512)
def trace(fn, in_specs, config):
  """make_jaxpr of `fn` on (shape, dtype) specs, cached. `fn` must be a stable object (module-level or memoized) since
  it keys the cache; `config` (the flags JAX reads while tracing, see config_key) only keys the cache, so that flipping
  e.g. jax_threefry_partitionable re-traces."""
  return jax.make_jaxpr(fn)(*[jax.ShapeDtypeStruct(s, d) for s, d in in_specs])


def evaluate(closed, *args):
  """Evaluate a traced ClosedJaxpr on tinygrad Tensors; returns the list of outputs."""
  from .interpreter import eval_jaxpr   # the interpreter imports the rule modules; import late
  return eval_jaxpr(closed.jaxpr, [_const(np.asarray(c)) for c in closed.consts], *args)


def _const(c: np.ndarray):
  """A traced implementation's constant (e.g. the uint32[1] zero that pads an odd count): folded into the kernels
  when it is one repeated value, so that no buffer is created while TinyJit captures."""
  if c.size == 0 or (c == c.flat[0]).all(): return const(c.flat[0] if c.size else 0, c.dtype, c.shape)
  return const(c, c.dtype, c.shape)


def spec(t): return (tuple(t.shape), np.dtype(jdtype(t)))


def config_key():
  """Flags read while tracing JAX's implementations: part of every cache key so a flipped flag re-traces."""
  return (jax.config.jax_threefry_partitionable, jax.config.jax_enable_x64)
