"""Reductions over axes, arg-reductions and dot_general."""
import math

import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from .dtypes import to_jax, to_tiny
from .ops import const, full_like, is_bool, is_float, jdtype, nan_where, register


def _identity(x, kind):
  """The value a reduction of no elements yields (XLA's monoid identity)."""
  dt = jdtype(x)
  if kind == "sum": return 0
  if kind == "prod": return 1
  if is_bool(x): return kind == "min"
  if is_float(x): return -math.inf if kind == "max" else math.inf
  info = np.iinfo(dt)
  return info.min if kind == "max" else info.max


def _reduce(x, axes, kind, reduce_fn):
  axes = tuple(axes)
  if not axes: return x
  if any(x.shape[a] == 0 for a in axes):
    return const(_identity(x, kind), jdtype(x), tuple(d for i, d in enumerate(x.shape) if i not in axes))
  return reduce_fn(x, axes)


@register(P.reduce_sum_p)
def reduce_sum(x, *, axes, out_sharding=None):
  if is_bool(x): return _reduce(x, axes, "max", lambda x, a: x.any(axis=a))   # JAX never emits it; kept total
  return _reduce(x, axes, "sum", lambda x, a: x.sum(axis=a, dtype=_accumulator(x)).cast(x.dtype))


@register(P.reduce_prod_p)
def reduce_prod(x, *, axes, out_sharding=None):
  return _reduce(x, axes, "prod", lambda x, a: x.prod(axis=a, dtype=_accumulator(x)).cast(x.dtype))


def _accumulator(x):
  """XLA accumulates half-precision floats in float32 on CPU/GPU; integers wrap in their own width."""
  return tg.float32 if x.dtype in (tg.float16, tg.bfloat16) else x.dtype


@register(P.reduce_max_p)
def reduce_max(x, *, axes, out_sharding=None):
  def f(x, a):
    if is_bool(x): return x.any(axis=a)
    out = x.max(axis=a)
    return nan_where(x.isnan().any(axis=a), out) if is_float(x) else out
  return _reduce(x, axes, "max", f)


@register(P.reduce_min_p)
def reduce_min(x, *, axes, out_sharding=None):
  def f(x, a):
    if is_bool(x): return x.all(axis=a)
    out = x.min(axis=a)
    return nan_where(x.isnan().any(axis=a), out) if is_float(x) else out
  return _reduce(x, axes, "min", f)


@register(P.reduce_and_p)
def reduce_and(x, *, axes):
  if not is_bool(x): raise NotImplementedError("reduce_and over integers (bitwise) is not supported")
  return _reduce(x, axes, "min", lambda x, a: x.all(axis=a))


@register(P.reduce_or_p)
def reduce_or(x, *, axes):
  if not is_bool(x): raise NotImplementedError("reduce_or over integers (bitwise) is not supported")
  return _reduce(x, axes, "max", lambda x, a: x.any(axis=a))


@register(P.reduce_xor_p)
def reduce_xor(x, *, axes):
  if not is_bool(x): raise NotImplementedError("reduce_xor over integers (bitwise) is not supported")
  return _reduce(x, axes, "sum", lambda x, a: (x.cast(tg.int32).sum(axis=a) % 2).cast(tg.bool))


def _arg_reduce(x, axis, index_dtype, pick):
  """XLA's argmax/argmin: the first index of the extreme value, where NaN counts as the extreme."""
  best = pick(x, axis)
  hit = x == best.unsqueeze(axis)
  if is_float(x): hit = (best.unsqueeze(axis).isnan() & x.isnan()) | hit
  idx = Tensor.arange(x.shape[axis], device=x.device, dtype=tg.int32).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
  first = hit.where(idx.expand(x.shape), x.shape[axis]).min(axis=axis)
  return first.cast(to_tiny(index_dtype))


def _nan_max(x, axis): return nan_where(x.isnan().any(axis=axis), x.max(axis=axis)) if is_float(x) else x.max(axis=axis)
def _nan_min(x, axis): return nan_where(x.isnan().any(axis=axis), x.min(axis=axis)) if is_float(x) else x.min(axis=axis)


@register(P.argmax_p)
def argmax(x, *, axes, index_dtype):
  return _arg_reduce(x.cast(tg.int8) if is_bool(x) else x, axes[0], index_dtype, _nan_max)


@register(P.argmin_p)
def argmin(x, *, axes, index_dtype):
  return _arg_reduce(x.cast(tg.int8) if is_bool(x) else x, axes[0], index_dtype, _nan_min)


@register(P.dot_general_p)
def dot_general(lhs, rhs, *, dimension_numbers, precision=None, preferred_element_type=None, out_sharding=None):
  """Any contraction and batch dims: permute both sides to (batch, free, contract) / (batch, contract, free),
  flatten to one batched matmul, and unflatten to XLA's output order (batch, lhs free, rhs free)."""
  (lc, rc), (lb, rb) = dimension_numbers
  out_dtype = to_tiny(preferred_element_type) if preferred_element_type is not None else lhs.dtype
  compute = out_dtype if out_dtype != tg.bool else tg.int32
  lhs, rhs = lhs.cast(compute), rhs.cast(compute)
  lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
  rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
  batch = [lhs.shape[d] for d in lb]
  m, k, n = math.prod(lhs.shape[d] for d in lf), math.prod(lhs.shape[d] for d in lc), math.prod(rhs.shape[d] for d in rf)
  out_shape = (*batch, *(lhs.shape[d] for d in lf), *(rhs.shape[d] for d in rf))
  if 0 in out_shape: return Tensor.empty(*out_shape, dtype=out_dtype, device=lhs.device) if out_shape else const(0, to_jax(out_dtype))
  if k == 0: return const(0, to_jax(out_dtype), out_shape)
  b = math.prod(batch)
  a = lhs.permute(*lb, *lf, *lc).reshape(b, m, k)
  w = rhs.permute(*rb, *rc, *rf).reshape(b, k, n)
  acc = tg.float32 if compute in (tg.float16, tg.bfloat16) else compute
  return a.matmul(w, dtype=acc).cast(out_dtype).reshape(out_shape)
