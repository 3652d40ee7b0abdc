"""gather and the scatter family with XLA's semantics: every dimension number, every mode, duplicate indices.

Both see the operand as rows x columns. The *picked* dims are those an index chooses a start in (start_index_map /
scatter_dims_to_operand_dims) and the batching dims (chosen by the position in the batch); flattened, they are the
row axis. The other dims only ever start at 0, so a window merely slices them: they are the columns.

- gather is one `rows[row_index]` (row_index = clamped starts + window offsets, flattened). tinygrad folds that
  indexing into a direct load: one kernel, no comparison against every row survives codegen.
- scatter has no direct form without atomics. Each operand row combines the updates aimed at it, either densely (a
  compare of every update against every row: fine while updates x rows is small; batching dims stay positional, so
  the gradient of take_along_axis is cheap at any batch size) or by sorting the updates by row (stable: composite keys
  row * M + position), scanning each run of equal rows, and finding each row's run by binary search:
  O(M log^2 M + rows log M) for M updates, the path an embedding's gradient takes.
"""
import math

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from ..ops import primitive, register
from .elementwise import max_, min_
from .numerics import clamped_start, const, iota_along, is_bool, is_float, jdtype, take
from .reductions import MONOID_REDUCTIONS, identity

Mode = lax.GatherScatterMode

# A scatter combines densely when its compare count (updates x rows x columns) is at most this, or at most the
# sorted path's estimated work (a dense kernel is one pass; the sorted path is ~log^2 M small kernels).
DENSE_WORK = 1 << 22
SCATTER_PATH = None   # "dense" or "sorted" forces one strategy (the tests run every case through both)


# ---- shared: index columns, clamped starts, layout bookkeeping ------------------------------------------------

def _index_dtype(limit: int):
  """The narrowest index type that holds values up to `limit` (int32 keeps WebGPU and friends working)."""
  if limit < 2 ** 31: return tg.int32
  if limit < 2 ** 63: return tg.int64
  raise NotImplementedError(f"an index space of {limit} elements does not fit in int64")


def _column(indices: Tensor, k: int) -> Tensor:
  """indices[..., k]: the k-th start of every index vector (the index vector is always the last dim in JAX)."""
  return indices.shrink(tuple((k, k + 1) if i == indices.ndim - 1 else (0, n) for i, n in enumerate(indices.shape))) \
                .reshape(indices.shape[:-1])


def _all(masks):
  out = None
  for m in masks: out = m if out is None else out & m
  return out


def _mode(mode) -> Mode:
  mode = Mode.from_any(mode) if not isinstance(mode, Mode) else mode
  if mode not in (Mode.CLIP, Mode.FILL_OR_DROP, Mode.PROMISE_IN_BOUNDS):
    raise NotImplementedError(f"gather/scatter mode {mode} is not supported")
  return mode


def _default_fill(dtype):
  """jax.lax.gather's fill for FILL_OR_DROP when none is given: NaN, the most negative / largest integer, True."""
  if jnp.issubdtype(dtype, jnp.floating): return math.nan
  if jnp.issubdtype(dtype, jnp.signedinteger): return int(np.iinfo(dtype).min)
  if jnp.issubdtype(dtype, jnp.unsignedinteger): return int(np.iinfo(dtype).max)
  if jnp.issubdtype(dtype, jnp.bool_): return True
  raise NotImplementedError(f"no default gather fill for {dtype}")


def _row_strides(sizes):
  return [math.prod(sizes[i + 1:]) for i in range(len(sizes))]


# ---- gather ----------------------------------------------------------------------------------------------------

@register(P.gather_p, moves_keys=True)
def gather(operand, indices, *, dimension_numbers, slice_sizes, mode, fill_value=None, unique_indices=False,
           indices_are_sorted=False):
  dn, mode, n = dimension_numbers, _mode(mode), operand.ndim
  batch_shape, nb = tuple(indices.shape[:-1]), indices.ndim - 1
  sizes = tuple(int(s) for s in slice_sizes)
  dropped = set(dn.collapsed_slice_dims) | set(dn.operand_batching_dims)
  offset_operand_dims = [d for d in range(n) if d not in dropped]          # in order, they fill dn.offset_dims
  out_shape, batch_it = [], iter(batch_shape)
  for p in range(nb + len(dn.offset_dims)):
    out_shape.append(sizes[offset_operand_dims[dn.offset_dims.index(p)]] if p in dn.offset_dims else next(batch_it))
  out_shape = tuple(out_shape)
  if 0 in out_shape: return const(0, operand.dtype, out_shape)

  # starts of the picked dims, each of batch_shape
  rows = math.prod(operand.shape[d] for d in set(dn.start_index_map) | set(dn.operand_batching_dims))
  idx_dtype = _index_dtype(rows)
  starts, inside = {}, []
  for k, d in enumerate(dn.start_index_map):
    raw = _column(indices, k)
    clamped, ok = clamped_start(raw, operand.shape[d] - sizes[d], idx_dtype)
    # in bounds, the raw index is the clamped one; selecting it keeps tinygrad from proving the load in range, so
    # the kernel still reads `indices` when the operand is a broadcast. Otherwise the index buffer drops out of the
    # kernel, and tinygrad 0.14 then misnumbers a threaded CPU kernel's params (a segfault; see _scatter_sorted).
    starts[d] = ok.where(raw.cast(idx_dtype), clamped)
    inside.append(ok)
  for d, j in zip(dn.operand_batching_dims, dn.start_indices_batching_dims):
    starts[d] = iota_along(batch_shape, j, idx_dtype).expand(batch_shape)

  # operand as (rows, columns...): non-picked dims are sliced to their window, which always starts at 0
  picked = sorted(starts)
  cols = [d for d in range(n) if d not in starts]
  window = [d for d in picked if d not in dropped]                          # picked dims that keep a window axis
  x = operand.shrink(tuple((0, sizes[d]) if d in cols else (0, operand.shape[d]) for d in range(n)))
  x = x.permute((*picked, *cols)).reshape(rows, *(sizes[d] for d in cols))

  # row index: sum over picked dims of (start + window offset) * stride, shaped batch_shape + window sizes
  row_shape = batch_shape + tuple(sizes[d] for d in window)
  row = None
  for d, stride in zip(picked, _row_strides([operand.shape[d] for d in picked])):
    term = starts[d].reshape(batch_shape + (1,) * len(window))
    if d in window:
      term = term + iota_along(row_shape, nb + window.index(d), idx_dtype)
    term = term * stride if stride != 1 else term
    row = term if row is None else row + term
  row = const(0, idx_dtype, row_shape) if row is None else row.expand(row_shape)

  g = take(x, row.reshape(-1))                                              # the direct load
  kept_cols = [d for d in cols if d not in dropped]                         # collapsed non-picked dims have size 1
  g = g.reshape((*row_shape, *(sizes[d] for d in kept_cols)))

  # to XLA's output order: batch dims in order, offset dims (in operand order) at dn.offset_dims
  labels = [("batch", i) for i in range(nb)] + [("offset", d) for d in window + kept_cols]
  out_labels, batch_i = [], 0
  for p in range(len(out_shape)):
    if p in dn.offset_dims: out_labels.append(("offset", offset_operand_dims[dn.offset_dims.index(p)]))
    else: out_labels.append(("batch", batch_i)); batch_i += 1
  perm = [labels.index(lbl) for lbl in out_labels]
  g = g.permute(perm)

  if mode == Mode.FILL_OR_DROP and inside:
    ok = _all(inside).reshape(batch_shape + (1,) * (len(labels) - nb)).permute(perm)
    fill = _default_fill(jdtype(operand)) if fill_value is None else fill_value
    g = ok.where(g, const(fill, g.dtype))
  return g


# ---- scatter ---------------------------------------------------------------------------------------------------

# kind -> (combine(operand value, combined updates), combine two updates, the monoid primitive that combines them:
# its reduction and identity are reductions.MONOID_REDUCTIONS'). JAX refuses booleans for add/sub/mul; min/max of
# booleans are and/or (elementwise's min_/max_ handle them, and NaN).
_KINDS = {
  "set": (lambda old, new: new, None, None),
  "add": (lambda old, new: old + new, lambda a, b: a + b, P.add_p),
  "sub": (lambda old, new: old - new, lambda a, b: a + b, P.add_p),     # old - u1 - u2 - ... = old - (u1 + u2 + ...)
  "mul": (lambda old, new: old * new, lambda a, b: a * b, P.mul_p),
  "min": (min_, min_, P.min_p),
  "max": (max_, max_, P.max_p),
}


def _is_plain_update(update_jaxpr) -> bool:
  """scatter's update_jaxpr is None or `lambda old, new: new` for .set; anything else is `.at[].apply(f)`."""
  if update_jaxpr is None: return True
  jaxpr = getattr(update_jaxpr, "jaxpr", update_jaxpr)
  return not jaxpr.eqns and len(jaxpr.outvars) == 1 and len(jaxpr.invars) == 2 and jaxpr.outvars[0] is jaxpr.invars[1]


def _scatter(kind, operand, indices, updates, *, dimension_numbers, mode, update_jaxpr, update_consts):
  if kind == "set" and not _is_plain_update(update_jaxpr):
    raise NotImplementedError("scatter with a custom update computation (jnp's .at[].apply) is not supported")
  if kind in ("add", "sub", "mul") and is_bool(operand): raise NotImplementedError(f"scatter {kind} of booleans")
  dn, mode, n = dimension_numbers, _mode(mode), operand.ndim
  batch_shape, nb = tuple(indices.shape[:-1]), indices.ndim - 1
  if operand.numel() == 0 or updates.numel() == 0: return operand

  if not dn.scatter_dims_to_operand_dims and math.prod(n for i, n in enumerate(batch_shape) if i not in dn.scatter_indices_batching_dims) > 1:
    # XLA rewrites a scatter whose indices have no elements into an elementwise combine; with several updates per
    # target its CPU results follow neither the spec nor one rule we could copy (seen with inserted window dims)
    raise NotImplementedError("scatter with an empty index vector and several updates per target")
  inserted, obatch = set(dn.inserted_window_dims), list(dn.operand_batching_dims)
  window_dims = [d for d in range(n) if d not in inserted and d not in obatch]   # in order, they fill update_window_dims
  w = [1] * n
  for d, u in zip(window_dims, dn.update_window_dims): w[d] = updates.shape[u]
  # updates as (batch..., w_0, ..., w_{n-1}): one window axis per operand dim
  update_scatter_dims = [i for i in range(updates.ndim) if i not in dn.update_window_dims]
  upd = updates.permute((*update_scatter_dims, *dn.update_window_dims)).reshape((*batch_shape, *w))

  # operand as (batch B, rows R, columns...): batching dims, then the scattered dims, then the rest
  bdims, sdims = sorted(obatch), sorted(dn.scatter_dims_to_operand_dims)
  cols = [d for d in range(n) if d not in bdims and d not in sdims]
  B, R = math.prod(operand.shape[d] for d in bdims), math.prod(operand.shape[d] for d in sdims)
  M = updates.numel() // math.prod(w[d] for d in cols)                  # update rows: one per (scatter index, window offset in a scattered dim)
  idx_dtype = _index_dtype((B * R + 1) * M)                               # the sorted path's composite keys

  # each update element's row key over the scattered dims (start + its window offset), and whether it is kept;
  # both are shaped like the updates but with 1 for every window axis that is not a scattered dim's
  key_shape = (*batch_shape, *(w[d] if d in sdims else 1 for d in range(n)))
  key, inside = const(0, idx_dtype, key_shape), []
  for d, stride in zip(sdims, _row_strides([operand.shape[d] for d in sdims])):
    start, ok = clamped_start(_column(indices, list(dn.scatter_dims_to_operand_dims).index(d)), operand.shape[d] - w[d], idx_dtype)
    inside.append(ok)
    term = start.reshape((*batch_shape, *([1] * n)))
    if w[d] > 1: term = term + iota_along(key_shape, nb + d, idx_dtype)
    key = key + (term * stride if stride != 1 else term)
  # CLIP clamps; FILL_OR_DROP and PROMISE_IN_BOUNDS both lower to XLA's scatter, which skips out-of-bounds windows
  valid = _all(inside) if mode != Mode.CLIP and inside else const(True, tg.bool, batch_shape)
  valid = valid.reshape((*batch_shape, *([1] * n))).expand(key_shape)

  # (B, M_b, ...): the batch axes paired with operand batching dims first, in the operand's order
  pair = dict(zip(dn.operand_batching_dims, dn.scatter_indices_batching_dims))
  lead = [pair[d] for d in bdims]
  order = lead + [i for i in range(nb) if i not in lead] + [nb + d for d in sdims] + [nb + d for d in cols] + [nb + d for d in bdims]
  Mb = M // B
  upd = upd.permute(order).reshape(B, Mb, *(w[d] for d in cols))
  key, valid = key.permute(order).reshape(B, Mb), valid.permute(order).reshape(B, Mb)

  base = operand.permute((*bdims, *sdims, *cols)).reshape(B, R, *(operand.shape[d] for d in cols))
  sub = base.shrink(((0, B), (0, R), *((0, w[d]) for d in cols)))        # the columns a window covers (from 0)
  ncols = math.prod(w[d] for d in cols)
  dense_work = B * Mb * R * ncols
  lg = max(1, (M - 1).bit_length())
  sorted_work = M * lg * lg // 2 + M * ncols * lg + B * R * (lg + 1) + B * R * ncols
  dense = dense_work <= max(DENSE_WORK, sorted_work) if SCATTER_PATH is None else SCATTER_PATH == "dense"
  if dense: new = _scatter_dense(kind, sub, key, valid, upd)
  else: new = _scatter_sorted(kind, sub.reshape(B * R, *sub.shape[2:]), key, valid, upd, R).reshape(sub.shape)

  if any(w[d] != operand.shape[d] for d in cols):      # put the window's columns back among the untouched ones
    grow = ((0, 0), (0, 0), *((0, operand.shape[d] - w[d]) for d in cols))
    covered = const(True, tg.bool, new.shape).pad(grow)
    new = covered.where(new.pad(grow), base)
  inverse = np.argsort([*bdims, *sdims, *cols]).tolist()
  return new.reshape(tuple(operand.shape[d] for d in (*bdims, *sdims, *cols))).permute(inverse)


def _scatter_dense(kind, base, key, valid, upd):
  """Every update compared against every row of its batch: hit[b, m, r]; rows reduce their hits."""
  B, Mb, R, ncol_dims = base.shape[0], key.shape[1], base.shape[1], base.ndim - 2
  rows = iota_along((1, 1, R), 2, key.dtype)
  hit = valid.reshape(B, Mb, 1) & (key.reshape(B, Mb, 1) == rows)               # (B, Mb, R)
  found = hit.any(axis=1).reshape(B, R, *([1] * ncol_dims))
  hit = hit.reshape(B, Mb, R, *([1] * ncol_dims))
  if kind == "set":   # XLA applies updates in order, so the last hit wins
    pos = iota_along((1, Mb, 1), 1, key.dtype)
    last = hit.reshape(B, Mb, R).where(pos, -1).max(axis=1).maximum(0)        # (B, R)
    flat = iota_along((B, R), 0, key.dtype) * Mb + last
    new = upd.reshape(B * Mb, *upd.shape[2:])[flat.reshape(-1)].reshape(base.shape)
    return found.where(new, base)
  combine, _, monoid = _KINDS[kind]
  monoid_kind, reduce = MONOID_REDUCTIONS[monoid]
  upd = upd.reshape(B, Mb, 1, *upd.shape[2:])
  spread = hit.where(upd, const(identity(upd, monoid_kind), upd.dtype))   # non-hits hold the update that changes nothing
  if kind in ("min", "max") and is_float(upd):
    # NaN wins: flagged from the inputs, not by isnan() of reduce_max's NaN-select (see numerics.const: tinygrad folds
    # `NaN != NaN` to False, so max_(base, reduce_max(...)) would lose the NaN)
    nan = (hit & upd.isnan()).any(axis=1) | base.isnan()
    best = base.maximum(spread.max(axis=1)) if kind == "max" else base.minimum(spread.min(axis=1))
    return found.where(nan.where(const(math.nan, base.dtype), best), base)
  return found.where(combine(base, reduce(spread, (1,))), base)


def _scatter_sorted(kind, base, key, valid, upd, R):
  """Updates sorted by row (stably), runs of equal rows scanned, each row's run found by binary search.
  base: (B*R, cols...); key, valid: (B, Mb); upd: (B, Mb, cols...)."""
  B, Mb = key.shape
  M, rows, dt = B * Mb, base.shape[0], key.dtype
  pos = iota_along((M,), 0, dt)
  row = (iota_along((B, Mb), 0, dt) * R + key).reshape(M)
  row = valid.reshape(M).where(row, rows)                                      # dropped updates sort past every row
  ordered = (row * M + pos).sort()[0] if M > 1 else row * M + pos              # unique keys: a stable sort by row
  srow, src = ordered // M, ordered % M
  # upd is materialized first: updates are often a broadcast (the gradient of a sum), and a gather from a broadcast
  # whose index tinygrad proves in range drops the index buffer from the kernel, which tinygrad 0.14 then numbers
  # wrongly on threaded CPU kernels (codegen's pm_number_params counts params instead of taking max slot + 1: segfault)
  supd = upd.reshape(M, *upd.shape[2:]).contiguous()[src].contiguous()
  if kind != "set":   # inclusive scan within runs of equal rows (Hillis-Steele): each run's last element holds its total
    _, merge, _ = _KINDS[kind]
    step = 1
    while step < M:
      prev = supd.pad(((step, 0),) + ((0, 0),) * (supd.ndim - 1)).shrink(((0, M),) + tuple((0, s) for s in supd.shape[1:]))
      same = (srow.pad(((step, 0),), value=-1).shrink(((0, M),)) == srow).reshape(M, *([1] * (supd.ndim - 1)))
      supd = same.where(merge(prev, supd), supd).contiguous()
      step *= 2
  # count of sorted rows <= r, by binary search; the run of row r ends just before it
  target = iota_along((rows,), 0, dt)
  count = const(0, dt, (rows,))
  for bit in reversed(range(M.bit_length())):
    cand = count + (1 << bit)
    probe = srow[(cand.minimum(M) - 1)]
    count = ((cand <= M) & (probe <= target)).where(cand, count).contiguous()
  last = (count - 1).maximum(0)
  found = ((count > 0) & (srow[last] == target)).reshape(rows, *([1] * (base.ndim - 1)))
  new = supd[last]
  combine = _KINDS[kind][0]
  return found.where(combine(base, new), base)


def _scatter_rule(kind):
  def rule(operand, indices, updates, *, dimension_numbers, mode, update_jaxpr=None, update_consts=(),
           indices_are_sorted=False, unique_indices=False):
    return _scatter(kind, operand, indices, updates, dimension_numbers=dimension_numbers, mode=mode,
                    update_jaxpr=update_jaxpr, update_consts=update_consts)
  rule.__name__ = rule.__qualname__ = f"scatter_{kind}" if kind != "set" else "scatter"
  return rule


register(P.scatter_p, moves_keys=True)(_scatter_rule("set"))
register(P.scatter_add_p)(_scatter_rule("add"))
register(primitive("scatter_sub_p"))(_scatter_rule("sub"))
register(P.scatter_mul_p)(_scatter_rule("mul"))
register(P.scatter_min_p)(_scatter_rule("min"))
register(P.scatter_max_p)(_scatter_rule("max"))
