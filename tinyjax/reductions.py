"""Reductions over axes, arg-reductions, cumulative reductions, dot_general and reduce_precision.

Conventions written once: `_sum/_prod/_max/_min/_logsumexp(x, axis)` are XLA's monoids (half floats accumulate in
float32, integers wrap in their own width, max/min propagate NaN); `_reduce` gives a reduction over no elements the
monoid's identity; `_scan` builds every cumulative op from a monoid.
"""
import functools
import math

import jax.numpy as jnp
import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from .dtypes import to_jax, to_tiny
from .ops import bits, const, is_bool, is_float, is_unsigned, jdtype, nan_where, register, wrap_int

UNSIGNED = {1: tg.uint8, 2: tg.uint16, 4: tg.uint32, 8: tg.uint64}   # the same-width unsigned view, for bit work


# ---- the monoids -----------------------------------------------------------------------------------------------

def _accumulator(x):
  """XLA accumulates half-precision floats in float32 on CPU/GPU; integers wrap in their own width."""
  return tg.float32 if x.dtype in (tg.float16, tg.bfloat16) else x.dtype


def _wrapped(x):
  """An integer sum/product/dot as XLA's, wrapped to its width. tinygrad folds one of constants with unbounded ints
  (wrap_int masks it), and its C code computes int8/int16 arithmetic in int, so a comparison fused into the same
  kernel would see 400 for int8 100+100+100+100: a narrow result ends its kernel, and the store truncates."""
  x = wrap_int(x)
  return x.contiguous() if tg.is_int(x.dtype) and x.dtype.itemsize < 4 else x


def _sum(x, axis):
  if is_bool(x): return x.any(axis)   # JAX never emits a bool sum; kept total
  return _wrapped(x.sum(axis, dtype=_accumulator(x)).cast(x.dtype))


def _prod(x, axis): return _wrapped(x.prod(axis, dtype=_accumulator(x)).cast(x.dtype))


def _max(x, axis, keepdim=False):
  if is_bool(x): return x.any(axis, keepdim=keepdim)
  out = x.max(axis, keepdim=keepdim)
  return nan_where(x.isnan().any(axis, keepdim=keepdim), out) if is_float(x) else out


def _min(x, axis, keepdim=False):
  if is_bool(x): return x.all(axis, keepdim=keepdim)
  out = x.min(axis, keepdim=keepdim)
  return nan_where(x.isnan().any(axis, keepdim=keepdim), out) if is_float(x) else out


def _logsumexp(x, axis):
  """XLA's fold of logaddexp: NaN if any NaN, +inf if any +inf, -inf if all are -inf; else stable log-sum-exp."""
  m = _max(x, axis, keepdim=True)
  m = m.isinf().where(0, m)   # all -inf: exp(-inf - 0) sums to 0, log gives -inf; any +inf: exp(inf) gives inf
  return ((x - m).exp().sum(axis, dtype=_accumulator(x)).log() + m.squeeze(axis).cast(_accumulator(x))).cast(x.dtype)


def _identity(x, kind):
  """The value a reduction of no elements yields (XLA's monoid identity)."""
  if kind in ("sum", "or", "xor"): return 0 if not is_bool(x) else False
  if kind == "prod": return 1
  if kind == "and": return True if is_bool(x) else np.iinfo(jdtype(x)).max if is_unsigned(x) else -1
  if kind == "logsumexp": return -math.inf
  if is_bool(x): return kind == "min"
  if is_float(x): return -math.inf if kind == "max" else math.inf
  info = np.iinfo(jdtype(x))
  return info.min if kind == "max" else info.max


def _reduce(x, axes, kind, reduce_fn):
  axes = tuple(axes)
  if not axes: return x
  if any(x.shape[a] == 0 for a in axes):
    return const(_identity(x, kind), jdtype(x), tuple(d for i, d in enumerate(x.shape) if i not in axes))
  return reduce_fn(x, axes)


# ---- reductions over axes --------------------------------------------------------------------------------------

@register(P.reduce_sum_p)
def reduce_sum(x, *, axes, out_sharding=None): return _reduce(x, axes, "sum", _sum)


@register(P.reduce_prod_p)
def reduce_prod(x, *, axes, out_sharding=None): return _reduce(x, axes, "prod", _prod)


@register(P.reduce_max_p)
def reduce_max(x, *, axes, out_sharding=None): return _reduce(x, axes, "max", _max)


@register(P.reduce_min_p)
def reduce_min(x, *, axes, out_sharding=None): return _reduce(x, axes, "min", _min)


def _bitwise(plane_fn):
  """A bitwise reduction over integers from its reduction of bools: reduce each bit plane (tinygrad has no bitwise
  reductions), then put the bits back together."""
  def fn(x, axes):
    if is_bool(x): return plane_fn(x, axes)
    u = x.bitcast(UNSIGNED[x.dtype.itemsize])
    planes = plane_fn(Tensor.stack(*[((u >> b) & 1).cast(tg.bool) for b in range(bits(x))], dim=-1), axes)
    return functools.reduce(lambda a, b: a | b, [planes[..., b].cast(u.dtype) << b for b in range(bits(x))]).bitcast(x.dtype)
  return fn


@register(P.reduce_and_p)
def reduce_and(x, *, axes): return _reduce(x, axes, "and", _bitwise(lambda p, a: p.all(a)))


@register(P.reduce_or_p)
def reduce_or(x, *, axes): return _reduce(x, axes, "or", _bitwise(lambda p, a: p.any(a)))


@register(P.reduce_xor_p)
def reduce_xor(x, *, axes): return _reduce(x, axes, "xor", _bitwise(lambda p, a: (p.cast(tg.int32).sum(a) % 2).cast(tg.bool)))


# ---- argmax / argmin -------------------------------------------------------------------------------------------

def _arg_reduce(x, axis, index_dtype, pick):
  """XLA's argmax/argmin: the first index of the extreme value, where NaN counts as the extreme."""
  if is_bool(x): x = x.cast(tg.int8)
  hit = x == pick(x, axis, keepdim=True)
  if is_float(x): hit = (nan := x.isnan()).any(axis, keepdim=True).where(nan, hit)   # the first NaN, if there is one
  idx = Tensor.arange(x.shape[axis], dtype=tg.int32).reshape([-1 if i == axis else 1 for i in range(x.ndim)])
  return hit.where(idx, x.shape[axis]).min(axis).cast(to_tiny(index_dtype))


@register(P.argmax_p)
def argmax(x, *, axes, index_dtype): return _arg_reduce(x, axes[0], index_dtype, _max)


@register(P.argmin_p)
def argmin(x, *, axes, index_dtype): return _arg_reduce(x, axes[0], index_dtype, _min)


# ---- cumulative reductions -------------------------------------------------------------------------------------

def _scan(x, axis, reverse, kind, fn, chunk=256):
  """XLA's cumulative op (a reduce_window over each prefix): output i reduces inputs 0..i of the axis, the others
  masked to the identity. Axes longer than 2*chunk go in two stages (inside chunks, then across chunk totals), so
  the work is O(n * chunk), not O(n^2)."""
  if x.shape[axis] == 0: return x
  identity, dtype = _identity(x, kind), x.dtype
  def along_last(x):
    n = x.shape[-1]
    if n <= 2 * chunk:
      return fn(Tensor.ones(n, n, dtype=tg.bool, buffer=False).tril().where(x.unsqueeze(-2), identity), -1)
    x = x.pad(((0, 0),) * (x.ndim - 1) + ((-n % chunk, 0),), value=identity)
    local = along_last(x.reshape(*x.shape[:-1], -1, chunk))                      # (..., chunks, chunk)
    totals = along_last(local[..., -1])                                          # running total up to each chunk
    before = totals[..., :-1].pad(((0, 0),) * (totals.ndim - 1) + ((1, 0),), value=identity)
    out = fn(Tensor.stack(before.unsqueeze(-1).expand(local.shape), local, dim=-1), -1)
    return out.reshape(*x.shape)[..., -n:]
  x = x.transpose(axis, -1).cast(_accumulator(x))   # half floats scan in float32 throughout, rounded once at the end
  out = along_last(x.flip(-1)).flip(-1) if reverse else along_last(x)
  return out.transpose(axis, -1).cast(dtype)


@register(P.cumsum_p)
def cumsum(x, *, axis, reverse): return _scan(x, axis, reverse, "sum", _sum)


@register(P.cumprod_p)
def cumprod(x, *, axis, reverse): return _scan(x, axis, reverse, "prod", _prod)


@register(P.cummax_p)
def cummax(x, *, axis, reverse): return _scan(x, axis, reverse, "max", _max)


@register(P.cummin_p)
def cummin(x, *, axis, reverse): return _scan(x, axis, reverse, "min", _min)


@register(P.cumlogsumexp_p)
def cumlogsumexp(x, *, axis, reverse): return _scan(x, axis, reverse, "logsumexp", _logsumexp)


# ---- dot_general -----------------------------------------------------------------------------------------------

@register(P.dot_general_p)
def dot_general(lhs, rhs, *, dimension_numbers, precision=None, preferred_element_type=None, out_sharding=None):
  """Any contraction and batch dims: permute both sides to (batch, free, contract) / (batch, contract, free),
  flatten to one batched matmul, and unflatten to XLA's output order (batch, lhs free, rhs free)."""
  (lc, rc), (lb, rb) = dimension_numbers
  out_dtype = to_tiny(preferred_element_type) if preferred_element_type is not None else lhs.dtype
  compute = out_dtype if out_dtype != tg.bool else tg.int32   # bool: any(and) as a count of pairs that are both True
  lhs, rhs = lhs.cast(compute), rhs.cast(compute)
  lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
  rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
  batch = [lhs.shape[d] for d in lb]
  m, k, n = math.prod(lhs.shape[d] for d in lf), math.prod(lhs.shape[d] for d in lc), math.prod(rhs.shape[d] for d in rf)
  out_shape = (*batch, *(lhs.shape[d] for d in lf), *(rhs.shape[d] for d in rf))
  if 0 in out_shape or k == 0: return const(0, to_jax(out_dtype), out_shape)
  b = math.prod(batch)
  a = lhs.permute((*lb, *lf, *lc)).reshape(b, m, k)
  w = rhs.permute((*rb, *rc, *rf)).reshape(b, k, n)
  return _wrapped(a.matmul(w, dtype=_accumulator(a)).cast(out_dtype).reshape(out_shape))


# ---- reduce_precision ------------------------------------------------------------------------------------------

@register(P.reduce_precision_p)
def reduce_precision(x, *, exponent_bits, mantissa_bits):
  """XLA's rounding to a narrower float format, on the bits of x's own format: round the mantissa to nearest even,
  then exponents above the format's range become ±inf and those at or below its smallest normal ±0 (no subnormals).
  NaN stays NaN, even with no mantissa bits left (XLA CPU's behaviour)."""
  info = jnp.finfo(jdtype(x))
  src_mantissa, src_exponent = info.nmant, info.nexp
  u = x.bitcast(UNSIGNED[x.dtype.itemsize])
  if mantissa_bits < src_mantissa:
    drop = src_mantissa - mantissa_bits
    last_kept = (u >> drop) & 1
    u = (u + last_kept + ((1 << (drop - 1)) - 1)) & (((1 << bits(x)) - 1) ^ ((1 << drop) - 1))
  if exponent_bits < src_exponent:
    bias, reduced_bias = (1 << (src_exponent - 1)) - 1, (1 << (exponent_bits - 1)) - 1
    exponent, sign = u & (((1 << src_exponent) - 1) << src_mantissa), u & (1 << (bits(x) - 1))
    u = (exponent > (bias + reduced_bias) << src_mantissa).where(sign | (((1 << src_exponent) - 1) << src_mantissa), u)
    u = (exponent <= (bias - reduced_bias) << src_mantissa).where(sign, u)
  return x.isnan().where(x, u.bitcast(x.dtype))
