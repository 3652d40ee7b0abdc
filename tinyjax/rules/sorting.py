"""Sorting with XLA's semantics: sort (any operands, num_keys, stable), top_k, approx_top_k, and the total-order
comparisons eq_to/le_to/lt_to (jnp.searchsorted emits them).

One idea throughout: each key becomes an unsigned integer whose integer order is the comparator's order (`_order_key`),
and `_stable_order` turns the keys into the permutation that sorts them stably, which every operand is gathered by
(one flat indexed load, so -0.0 and NaN payloads come through bit for bit). Three ways to the permutation:
- axes up to RANK_MAX (32) elements: each element's rank counts the elements that sort before it, comparing all pairs
  (O(n^2) per row, but two kernels, where a bitonic sort of 32 is ~15, each costing a compile);
- longer axes: the position goes in the low bits of a word under the key, and tinygrad's bitonic `Tensor.sort`
  (O(n log^2 n), one kernel per step) sorts those unique words, a stable sort; the low bits are the permutation. Keys
  wider than one 64-bit word (several keys, 64-bit keys) are sorted least significant first, one stable pass per
  word (LSD radix over words). Nothing is n x n. (tinygrad's own sort would do for values, but its indices come from
  an O(n^2) count of equal elements, and it takes min/max of floats, which is not the comparator's order.)
- a top-k with small k (<= 64, and cheaper than the sort): k min-reductions over the words, each past the last.

Orders (JAX 0.10, jax._src.lax.lax._sort_lt_comparator and XLA CPU's TopK, checked against jax.jit):
- sort canonicalizes float keys first (-0.0 -> +0.0, every NaN -> +NaN) and then compares in total order, so
  -inf < ... < -0.0 == +0.0 < ... < +inf < NaN (all NaNs equal, of either sign); equal keys keep input order.
- top_k compares the raw bits in total order, largest first: +NaN > +inf > ... > +0.0 > -0.0 > ... > -inf > -NaN
  (payloads ordered by their bits); equal values by lower index first.
- eq_to/le_to/lt_to are XLA's TOTALORDER comparisons: the raw-bit total order (-0.0 < +0.0, NaN == NaN only bitwise).
"""
import math
import operator

import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from ..dtypes import EXPONENT_MASK, same_width_uint
from ..ops import register
from .numerics import bits, const, full_like, iota_along, is_bool, is_float, is_unsigned, take


# ---- keys ------------------------------------------------------------------------------------------------------

def _order_key(x: Tensor, canonical: bool) -> Tensor:
  """An unsigned tensor whose integer order is x's total order: bool as 0/1, signed ints with the sign bit flipped,
  floats sign-magnitude to biased (negatives: all bits flipped; positives: the sign bit set). canonical (sort's
  comparator): ±0 share +0's key and every NaN one key past +inf."""
  if is_bool(x): return x.cast(tg.uint8)
  if is_unsigned(x): return x
  u = same_width_uint(x.dtype)
  b, top = x.bitcast(u), 1 << (bits(x) - 1)
  if not is_float(x): return b ^ full_like(b, top)
  key = (b >= full_like(b, top)).where(b ^ full_like(b, u.max), b | full_like(b, top))
  if canonical:
    mag = b & full_like(b, top - 1)
    key = (mag == full_like(b, 0)).where(full_like(b, top), key)
    key = (mag > full_like(b, EXPONENT_MASK[x.dtype])).where(full_like(b, u.max), key)
  return key


def _digits(key: Tensor) -> list[tuple[Tensor, int]]:
  """A key as (unsigned digit, bits) words of at most 32 bits, most significant first."""
  if key.dtype.itemsize < 8: return [(key, bits(key))]
  return [((key >> 32).cast(tg.uint32), 32), ((key & 0xFFFFFFFF).cast(tg.uint32), 32)]


def _take(x: Tensor, perm: Tensor) -> Tensor:
  """x[..., perm[..., j], ...] along axis perm.ndim - 1 of x (perm's last axis may be shorter than x's), as one flat
  indexed load; x may have trailing dims past perm's (a PRNG key's data) that ride along. tinygrad's Tensor.gather is
  a one-hot sum, which would turn -0.0 into +0.0 if it were not folded away."""
  batch, n, k = perm.shape[:-1], x.shape[perm.ndim - 1], perm.shape[-1]
  extra, rows = x.shape[perm.ndim:], math.prod(perm.shape[:-1])
  if rows * n >= 2 ** 31: perm = perm.cast(tg.int64)
  flat = perm + iota_along((rows,), 0, perm.dtype).reshape(*batch, 1) * n if rows > 1 else perm
  return take(x.reshape(rows * n, *extra), flat.reshape(-1)).reshape(*batch, k, *extra)


def _stable_order(keys: list[Tensor], first: int | None = None) -> Tensor:
  """The permutation (int32) that sorts the rows of keys (unsigned, last axis) lexicographically, ties in input order;
  with `first`, only its first `first` entries. Digits are packed with the position into words of <= 64 bits; one
  bitonic pass per word, least significant word first, each pass stable because the position makes every word unique.
  A short prefix of a one-word order is selected instead: `first` min-reductions over the axis, each past the last."""
  n = keys[0].shape[-1]
  if n <= RANK_MAX: return _rank_order(keys, first)
  ib = max(1, (n - 1).bit_length())
  if ib > 31: raise NotImplementedError(f"sort of an axis of {n} elements (more than 2^31)")
  digits = [d for k in keys for d in _digits(k)]
  groups, cur, cur_bits = [], [], 0                       # groups[0]: the least significant word
  for d in reversed(digits):
    if cur and cur_bits + d[1] + ib > 64: groups.append(cur); cur, cur_bits = [], 0
    cur.insert(0, d); cur_bits += d[1]
  groups.append(cur)
  position = iota_along((n,), 0)
  mask = (1 << ib) - 1
  perm = None
  for group in groups:
    wide = tg.uint32 if sum(b for _, b in group) + ib <= 32 else tg.uint64
    word = None
    for d, b in group: word = d.cast(wide) if word is None else (word << b) | d.cast(wide)
    if perm is not None: word = _take(word, perm)
    word = (word << ib) | position.cast(wide)
    if len(groups) == 1 and first is not None and first <= _SELECT_MAX and first * 2 <= ib * (ib + 1) // 2:
      picked, last = [], None                             # the k smallest words, one reduction each
      for _ in range(first):
        last = (word if last is None else (word > last.unsqueeze(-1)).where(word, full_like(word, wide.max))).min(-1)
        picked.append(last)
      return (Tensor.stack(*picked, dim=-1) & mask).cast(tg.int32).contiguous()
    ordered = word.sort(-1)[0]
    # contiguous: tinygrad 0.14 fails to compile ("UOp verification failed ... CMOD dtypes.float") an indexed load from
    # a transposed view whose index is this expression fused in; a materialized permutation is what we want anyway
    idx = (ordered & mask).cast(tg.int32).contiguous()
    perm = idx if perm is None else _take(perm, idx).contiguous()
  return perm if first is None else perm.shrink_to((*perm.shape[:-1], first))


_SELECT_MAX = 64   # the most entries of a top-k selected by repeated reductions (beyond: a full bitonic sort)
RANK_MAX = 32      # axes up to this long are ranked by comparing all pairs (two kernels; a bitonic sort is ~20)


def _rank_order(keys: list[Tensor], first: int | None = None) -> Tensor:
  """_stable_order by comparisons of every pair, O(n^2) per row: i's rank counts the j that sort before it
  (lexicographically smaller keys, or equal keys and j < i); entry r of the permutation is the i of rank r."""
  n = keys[0].shape[-1]
  i = iota_along((n,), 0)
  before = i.unsqueeze(-1) < i                            # [j, i]: j < i, the tie-break
  for k in reversed(keys):
    kj, ki = k.unsqueeze(-1), k.unsqueeze(-2)
    before = (kj < ki) | ((kj == ki) & before)
  rank = before.cast(tg.int32).sum(-2)                    # (..., n): over j
  r = iota_along((n if first is None else first,), 0)
  return ((rank.unsqueeze(-1) == r).where(i.unsqueeze(-1), 0)).sum(-2).cast(tg.int32).contiguous()


def _to_last(x: Tensor, axis: int, ndim: int | None = None) -> Tensor:
  """x with its axis `axis` swapped with its last (of the first `ndim`, the logical ones: a PRNG key's data has more)."""
  last = (x.ndim if ndim is None else ndim) - 1
  return x if axis == last else x.transpose(axis, last)


# ---- sort ------------------------------------------------------------------------------------------------------

@register(P.sort_p, with_avals=True)
def sort(*operands, dimension, is_stable, num_keys, in_avals, out_avals):
  """XLA's sort: lexicographic over the first num_keys operands, the rest (PRNG keys too) carried by the same
  permutation. Always stable (is_stable=False allows any order of ties; XLA CPU's unstable sort reorders ties past 16
  elements, so carried operands of an unstable sort can differ from jax.jit's while still being a valid sort)."""
  ndims = [len(a.shape) for a in in_avals]   # as JAX sees them: a typed PRNG key's data has more dims
  if any(x.ndim != nd for x, nd in zip(operands[:num_keys], ndims)):
    raise NotImplementedError("sort with a PRNG key array as a sort key (num_keys covers it)")
  nd, x0 = ndims[0], operands[0]
  if nd == 0 or x0.shape[dimension] <= 1 or 0 in x0.shape: return list(operands)
  xs = [_to_last(x, dimension, d) for x, d in zip(operands, ndims)]
  if len(xs) == 1 and not is_float(xs[0]) and xs[0].shape[-1] > RANK_MAX:   # equal keys are equal values: sort keys
    s, x = _order_key(xs[0], True).sort(-1)[0], xs[0]
    out = s.cast(tg.bool) if is_bool(x) else s if is_unsigned(x) else (s ^ full_like(s, 1 << (bits(x) - 1))).bitcast(x.dtype)
    return [_to_last(out, dimension)]
  perm = _stable_order([_order_key(k, True) for k in xs[:num_keys]])
  return [_to_last(_take(x, perm), dimension, d) for x, d in zip(xs, ndims)]


# ---- top_k -----------------------------------------------------------------------------------------------------

def _top_k_last(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
  """The k largest along the last axis in raw-bit total order, ties by lower index first: a stable ascending sort of
  the complemented key, cut to k."""
  out_shape = (*x.shape[:-1], k)
  if k == 0 or 0 in x.shape or x.shape[-1] == 1: return x.shrink_to(out_shape), const(0, np.int32, out_shape)
  key = _order_key(x, False)
  perm = _stable_order([key ^ full_like(key, key.dtype.max)], k)
  return _take(x, perm), perm


@register(P.top_k_p)
def top_k(x, *, k, axis=None, is_stable=None):   # (is_stable: jax >= 0.11; this top_k is always stable)
  axis = x.ndim - 1 if axis is None else axis
  values, indices = _top_k_last(_to_last(x, axis), k)
  return [_to_last(values, axis), _to_last(indices, axis)]


@register(P.approx_top_k_p, with_avals=True)
def approx_top_k(x, *, k, reduction_dimension, recall_target, is_max_k, reduction_input_size_override,
                 aggregate_to_topk, in_avals, out_avals):
  """Exact results (XLA CPU's fallback is an exact sort too): the top k (is_max_k) or bottom k along
  reduction_dimension; aggregate_to_topk=False returns as many as the Jaxpr's output has (XLA's reduction output
  size), still sorted. XLA compares with a plain GT/LT here, so -0.0 and +0.0 tie (as here) and NaN has no defined
  place (here: larger than +inf, as in sort); ties go to the lower index (XLA CPU's unstable sort keeps that only
  up to 16 elements)."""
  axis = reduction_dimension % x.ndim
  size = out_avals[0].shape[axis]
  x = _to_last(x, axis)
  out_shape = (*x.shape[:-1], size)
  if x.shape[-1] == 1 or 0 in x.shape: return [_to_last(x.shrink_to(out_shape), axis), _to_last(const(0, np.int32, out_shape), axis)]
  key = _order_key(x, True)
  perm = _stable_order([key ^ full_like(key, key.dtype.max) if is_max_k else key], size)
  return [_to_last(_take(x, perm), axis), _to_last(perm, axis)]


# ---- total-order comparisons -----------------------------------------------------------------------------------

def _total_order(x, y):
  """The operands of a TOTALORDER comparison as what compares them: floats by their raw-bit total-order keys, bools as
  uint8, integers as they are."""
  if is_float(x): return _order_key(x, False), _order_key(y, False)
  return (x.cast(tg.uint8), y.cast(tg.uint8)) if is_bool(x) else (x, y)


@register(P.eq_to_p)
def eq_to(x, y): return operator.eq(*_total_order(x, y))


@register(P.le_to_p)
def le_to(x, y): return operator.le(*_total_order(x, y))


@register(P.lt_to_p)
def lt_to(x, y): return operator.lt(*_total_order(x, y))
