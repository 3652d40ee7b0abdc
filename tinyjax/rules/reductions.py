"""Reductions over axes, the generic `reduce` (any body, any number of operands), arg-reductions, cumulative
reductions, dot_general and reduce_precision.

Conventions written once: `_sum/_prod/_max/_min/_and/_or/_xor/_logsumexp(x, axis)` are XLA's monoids (half floats
accumulate in float32, integers wrap in their own width, max/min propagate NaN), `identity` their identities and
MONOID_REDUCTIONS the table from a body's primitive to them (shared with conv.reduce_window and the scatters);
`_reduce` gives a reduction over no elements the monoid's identity; `_scan` builds every cumulative op from a monoid;
`fold` reduces a trailing axis with a body given as a Jaxpr (shared with conv.reduce_window).
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jcore
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from ..dtypes import accumulator, same_width_uint, to_tiny
from ..ops import RULES, register
from .numerics import bits, computed_once, const, fabs, iota_along, is_bool, is_float, is_unsigned, jdtype, nan_where, signbit, wrap_int


# ---- the monoids -----------------------------------------------------------------------------------------------
# XLA accumulates half-precision floats in float32 on CPU/GPU (dtypes.accumulator); integers wrap in their own width.

def _wrapped(x):
  """An integer sum/product/dot as XLA's, wrapped to its width. tinygrad folds one of constants with unbounded ints
  (wrap_int masks it), and its C code computes int8/int16 arithmetic in int, so a comparison fused into the same
  kernel would see 400 for int8 100+100+100+100: a narrow result ends its kernel, and the store truncates."""
  x = wrap_int(x)
  return x.contiguous() if tg.is_int(x.dtype) and x.dtype.itemsize < 4 else x


def _sum(x, axis):
  if is_bool(x): return x.any(axis)   # JAX never emits a bool sum; kept total
  return _wrapped(x.sum(axis, dtype=accumulator(x.dtype)).cast(x.dtype))


def _prod(x, axis): return _wrapped(x.prod(axis, dtype=accumulator(x.dtype)).cast(x.dtype))


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
  acc = accumulator(x.dtype)
  return ((x - m).exp().sum(axis, dtype=acc).log() + m.squeeze(axis).cast(acc)).cast(x.dtype)


def _bitwise(plane_fn):
  """A bitwise reduction over integers from its reduction of bools: reduce each bit plane (tinygrad has no bitwise
  reductions), then put the bits back together."""
  def fn(x, axes):
    if is_bool(x): return plane_fn(x, axes)
    u = x.bitcast(same_width_uint(x.dtype))
    planes = plane_fn(Tensor.stack(*[((u >> b) & 1).cast(tg.bool) for b in range(bits(x))], dim=-1), axes)
    return functools.reduce(lambda a, b: a | b, [planes[..., b].cast(u.dtype) << b for b in range(bits(x))]).bitcast(x.dtype)
  return fn


_and = _bitwise(lambda p, a: p.all(a))
_or = _bitwise(lambda p, a: p.any(a))
_xor = _bitwise(lambda p, a: (p.cast(tg.int32).sum(a) % 2).cast(tg.bool))

# monoid primitive -> (kind for `identity`, reduction over axes); bodies made of one of these go to the fast reductions
MONOID_REDUCTIONS = {P.add_p: ("sum", _sum), P.mul_p: ("prod", _prod), P.max_p: ("max", _max), P.min_p: ("min", _min),
                     P.and_p: ("and", _and), P.or_p: ("or", _or), P.xor_p: ("xor", _xor)}


def identity(x, kind):
  """The value a reduction of no elements yields (XLA's monoid identity)."""
  if kind in ("sum", "or", "xor"): return 0 if not is_bool(x) else False
  if kind == "prod": return 1
  if kind == "and": return True if is_bool(x) else x.dtype.max if is_unsigned(x) else -1
  if kind == "logsumexp": return -math.inf
  if is_bool(x): return kind == "min"
  if is_float(x): return -math.inf if kind == "max" else math.inf
  return x.dtype.min if kind == "max" else x.dtype.max


def _reduce(x, axes, kind, reduce_fn):
  axes = tuple(axes)
  if not axes: return x
  if any(x.shape[a] == 0 for a in axes):
    return const(identity(x, kind), x.dtype, tuple(d for i, d in enumerate(x.shape) if i not in axes))
  return reduce_fn(x, axes)


# ---- reductions over axes --------------------------------------------------------------------------------------

def signed_zero(x, out, axes, kind):
  """XLA's sign of a zero result, where tinygrad's depends on the order of the elements: max(-0, +0) is +0 and
  min(-0, +0) is -0 whichever comes first; a sum of two or more elements, all -0, is +0 (XLA's CPU reduce adds from
  +0; over one element it is a reshape and keeps -0). `out` is the reduction of x over axes (not kept)."""
  if not is_float(x) or math.prod(x.shape[a] for a in axes) < 2: return out
  if kind == "sum": return out.eq(0).where(fabs(out), out)
  zero = x.eq(0)
  want_neg = (zero & signbit(x)).any(axes) if kind == "min" else ~(zero & ~signbit(x)).any(axes)
  return out.eq(0).where(want_neg.where(-fabs(out), fabs(out)), out)


def _signed(kind, fn): return lambda x, axes: signed_zero(x, fn(x, axes), axes, kind)


@register(P.reduce_sum_p)
def reduce_sum(x, *, axes, out_sharding=None): return _reduce(x, axes, "sum", _signed("sum", _sum))


@register(P.reduce_prod_p)
def reduce_prod(x, *, axes, out_sharding=None): return _reduce(x, axes, "prod", _prod)


@register(P.reduce_max_p)
def reduce_max(x, *, axes, out_sharding=None): return _reduce(x, axes, "max", _signed("max", _max))


@register(P.reduce_min_p)
def reduce_min(x, *, axes, out_sharding=None): return _reduce(x, axes, "min", _signed("min", _min))


@register(P.reduce_and_p)
def reduce_and(x, *, axes): return _reduce(x, axes, "and", _and)


@register(P.reduce_or_p)
def reduce_or(x, *, axes): return _reduce(x, axes, "or", _or)


@register(P.reduce_xor_p)
def reduce_xor(x, *, axes): return _reduce(x, axes, "xor", _xor)


# ---- folds with a body given as a Jaxpr (reduce, reduce_window) ---------------------------------------------------

# XLA's CPU loops fold sequentially, `acc = body(acc, x)` in row-major order, for up to this many elements (measured:
# a reduce over 33 elements starts vectorizing, and a non-identity init then counts more than once). Up to it, `fold`
# does the same, which matches XLA for any body, even one that is not associative; beyond it, a tree (log2 n levels).
SEQUENTIAL_MAX = 32
SEQUENTIAL_KERNEL = 8   # steps of a sequential fold per kernel: tinygrad's scheduler is quadratic in a deeper chain


def monoid_bodies(jaxpr, consts, n):
  """For a body `(acc_1..acc_n, x_1..x_n) -> out_1..out_n`: the monoid primitive of each output when every out_k is
  exactly `op(acc_k, x_k)` (either order) for op in MONOID_REDUCTIONS, else None."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  if consts or len(jaxpr.eqns) != n or len(jaxpr.invars) != 2 * n or len(jaxpr.outvars) != n: return None
  by_out = {id(e.outvars[0]): e for e in jaxpr.eqns if len(e.outvars) == 1}
  prims = []
  for k, out in enumerate(jaxpr.outvars):
    eqn = by_out.get(id(out))
    if eqn is None or eqn.primitive not in MONOID_REDUCTIONS or any(v is not None for v in eqn.params.values()): return None
    if len(eqn.invars) != 2 or {id(v) for v in eqn.invars} != {id(jaxpr.invars[k]), id(jaxpr.invars[n + k])}: return None
    prims.append(eqn.primitive)
  return prims


def monoid_applies(prim, x):
  """Whether a monoid body has its fast reduction for x's dtype (bool add/mul and float bitwise ops do not)."""
  if prim in (P.add_p, P.mul_p): return not is_bool(x)
  if prim in (P.and_p, P.or_p, P.xor_p): return not is_float(x)
  return True


_BATCHED = {}   # (id(jaxpr), id(consts), size) -> (jaxpr, consts, the body vmapped over one axis of that size)


def _batched_body(jaxpr, consts, size):
  """The body (a scalar function) as a Jaxpr over vectors of `size`: every rule then sees the shapes it expects."""
  key = (id(jaxpr), id(consts), size)
  hit = _BATCHED.get(key)
  if hit is not None and hit[0] is jaxpr and hit[1] is consts: return hit[2]
  closed = jaxpr if isinstance(jaxpr, jcore.ClosedJaxpr) else jcore.ClosedJaxpr(jaxpr, list(consts))
  specs = [jax.ShapeDtypeStruct((size,), v.aval.dtype, weak_type=v.aval.weak_type) for v in closed.jaxpr.invars]
  batched = jax.make_jaxpr(jax.vmap(jcore.jaxpr_as_fun(closed)))(*specs)
  if len(_BATCHED) > 1024: _BATCHED.clear()
  _BATCHED[key] = (jaxpr, consts, batched)
  return batched


def apply_body(jaxpr, consts, lhs, rhs):
  """body(*lhs, *rhs) elementwise over tensors of one shape (lists of Tensors; scalars broadcast)."""
  from ..traced import evaluate   # the interpreter imports the rule modules; import late
  shape = next((tuple(t.shape) for t in (*lhs, *rhs) if t.ndim), ())
  size = math.prod(shape)
  args = [(t.reshape((1,) * len(shape)).expand(shape) if t.shape != shape else t).reshape(size) for t in (*lhs, *rhs)]
  return [o.reshape(shape) for o in evaluate(_batched_body(jaxpr, consts, size), *args)]


def fold(jaxpr, consts, values, inits, valid=None, sequential_max=SEQUENTIAL_MAX):
  """Reduce the last axis of every tensor in `values` (one shape (..., n)) with a body, starting from `inits`
  (scalars): XLA's `acc = init; for x in row: acc = body(acc, x)`. `valid` ((..., n) bools, or None for all) marks the
  elements that take part (reduce_window skips padding). An empty row gives the inits. Up to `sequential_max` elements
  the fold is sequential, as XLA's; longer rows are combined in adjacent pairs (order kept), log2(n) levels, and the
  init comes first: the same result for an associative body and an identity init (what XLA requires)."""
  lead, n = tuple(values[0].shape[:-1]), values[0].shape[-1]
  accs = [i.reshape((1,) * len(lead)).expand(lead) if lead else i for i in inits]
  if n == 0 or 0 in lead: return accs
  def pick(mask, a, b): return [mask.where(x, y) for x, y in zip(a, b)]
  if n <= sequential_max:
    for k in range(n):
      new = apply_body(jaxpr, consts, accs, [v[..., k] for v in values])
      accs = new if valid is None else pick(valid[..., k], new, accs)
      if k % SEQUENTIAL_KERNEL == SEQUENTIAL_KERNEL - 1 and k < n - 1: accs = [a.contiguous() for a in accs]
    return accs
  while n > 1:
    h, odd = n // 2, n % 2
    pairs = [v[..., :2 * h].reshape(*lead, h, 2) for v in values]
    out = apply_body(jaxpr, consts, [p[..., 0] for p in pairs], [p[..., 1] for p in pairs])
    if valid is not None:
      ok = valid[..., :2 * h].reshape(*lead, h, 2)
      left, right = ok[..., 0], ok[..., 1]
      out = pick(left & right, out, pick(left, [p[..., 0] for p in pairs], [p[..., 1] for p in pairs]))   # one or none
      valid = left | right if not odd else (left | right).cat(valid[..., -1:], dim=-1)
    values = out if not odd else [o.cat(v[..., -1:], dim=-1) for o, v in zip(out, values)]
    # each level is its own kernel: fused, level L would inline level L-1 twice, 2^L copies of the body in its code
    values, valid, n = [v.contiguous() for v in values], valid.contiguous() if valid is not None else None, h + odd
  out = apply_body(jaxpr, consts, accs, [v[..., 0] for v in values])
  return out if valid is None else pick(valid[..., 0], out, accs)


@register(P.reduce_p)
def reduce(*operands_and_inits, computation=None, jaxpr, dimensions):
  """lax.reduce: any number of operands, any body. A body that is a monoid per operand (add, mul, max, min, and,
  or, xor) goes to the reductions above, with the init folded in once; any other is `fold`ed over the reduced axes,
  moved to the end and flattened in row-major order (the order XLA's loop visits them). As XLA: a reduction over no
  axes, or over axes of one element in all, returns the operands without the init; over no elements, the inits.
  XLA assumes the init is the body's identity: with another init its own result depends on the size (it folds the
  init into each of its vector accumulators), where this folds it in once."""
  k = len(operands_and_inits) // 2
  operands, inits = operands_and_inits[:k], operands_and_inits[k:]
  dims = tuple(sorted(int(d) for d in dimensions))
  shape = operands[0].shape
  kept = tuple(i for i in range(len(shape)) if i not in dims)
  out_shape = tuple(shape[i] for i in kept)
  n = math.prod(shape[d] for d in dims)
  if n == 1: return [x.reshape(out_shape) for x in operands]
  if n == 0: return [i.reshape((1,) * len(out_shape)).expand(out_shape) if out_shape else i for i in inits]
  prims = monoid_bodies(jaxpr, jaxpr.consts, k)
  if prims and all(monoid_applies(p, x) for p, x in zip(prims, operands)):
    return [RULES[p].fn(init, MONOID_REDUCTIONS[p][1](x, dims)) for x, init, p in zip(operands, inits, prims)]
  moved = [x.permute(*kept, *dims).reshape(*out_shape, n) for x in operands]
  return fold(jaxpr.jaxpr, jaxpr.consts, moved, inits)


# ---- argmax / argmin -------------------------------------------------------------------------------------------

def _arg_reduce(x, axis, index_dtype, pick):
  """XLA's argmax/argmin: the first index of the extreme value, where NaN counts as the extreme."""
  if is_bool(x): x = x.cast(tg.int8)
  hit = x == pick(x, axis, keepdim=True)
  if is_float(x): hit = (nan := x.isnan()).any(axis, keepdim=True).where(nan, hit)   # the first NaN, if there is one
  return hit.where(iota_along(x.shape, axis), x.shape[axis]).min(axis).cast(to_tiny(index_dtype))


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
  fill, dtype = identity(x, kind), x.dtype
  def along_last(x):
    n = x.shape[-1]
    if n <= 2 * chunk:
      return fn(const(True, np.bool_, (n, n)).tril().where(x.unsqueeze(-2), fill), -1)
    x = x.pad(((0, 0),) * (x.ndim - 1) + ((-n % chunk, 0),), value=fill)
    local = along_last(x.reshape(*x.shape[:-1], -1, chunk))                      # (..., chunks, chunk)
    totals = along_last(local[..., -1])                                          # running total up to each chunk
    before = totals[..., :-1].pad(((0, 0),) * (totals.ndim - 1) + ((1, 0),), value=fill)
    out = fn(Tensor.stack(before.unsqueeze(-1).expand(local.shape), local, dim=-1), -1)
    return out.reshape(*x.shape)[..., -n:]
  x = x.transpose(axis, -1).cast(accumulator(x.dtype))   # half floats scan in float32 throughout, rounded once at the end
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
  lhs, rhs = computed_once(lhs).cast(compute), computed_once(rhs).cast(compute)
  lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
  rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
  batch = [lhs.shape[d] for d in lb]
  m, k, n = math.prod(lhs.shape[d] for d in lf), math.prod(lhs.shape[d] for d in lc), math.prod(rhs.shape[d] for d in rf)
  out_shape = (*batch, *(lhs.shape[d] for d in lf), *(rhs.shape[d] for d in rf))
  if 0 in out_shape or k == 0: return const(0, out_dtype, out_shape)
  b = math.prod(batch)
  a = lhs.permute((*lb, *lf, *lc)).reshape(b, m, k)
  w = rhs.permute((*rb, *rc, *rf)).reshape(b, k, n)
  return _wrapped(a.matmul(w, dtype=accumulator(a.dtype)).cast(out_dtype).reshape(out_shape))


# ---- reduce_precision ------------------------------------------------------------------------------------------

@register(P.reduce_precision_p)
def reduce_precision(x, *, exponent_bits, mantissa_bits):
  """XLA's rounding to a narrower float format, on the bits of x's own format: round the mantissa to nearest even,
  then exponents above the format's range become ±inf and those at or below its smallest normal ±0 (no subnormals).
  NaN stays NaN, even with no mantissa bits left (XLA CPU's behaviour)."""
  info = jnp.finfo(jdtype(x))
  src_mantissa, src_exponent = info.nmant, info.nexp
  u = x.bitcast(same_width_uint(x.dtype))
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
