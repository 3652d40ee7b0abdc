"""Rules that move data without arithmetic: broadcasting, reshaping, slicing, padding, concatenation, iota, and the
dynamic slices (traced start indices, clamped as XLA clamps them)."""
import functools

import numpy as np
from jax.extend.core import primitives as P

from ..dtypes import to_tiny
from ..ops import primitive, register
from .numerics import clamped_start, const, iota_along, take


@register(P.broadcast_in_dim_p, moves_keys=True)
def broadcast_in_dim(x, *dyn_shape, shape, broadcast_dimensions, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  kept = [1] * len(shape)
  for src, dst in enumerate(broadcast_dimensions): kept[dst] = x.shape[src]
  return x.reshape(kept).expand(shape)


@register(P.reshape_p, moves_keys=True)
def reshape(x, *dyn_shape, new_sizes, dimensions=None, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  if dimensions is not None: x = x.permute(dimensions)
  return x.reshape(new_sizes)


@register(P.squeeze_p, moves_keys=True)
def squeeze(x, *, dimensions):
  return x.reshape([d for i, d in enumerate(x.shape) if i not in dimensions])


@register(P.transpose_p, moves_keys=True)
def transpose(x, *, permutation): return x.permute(permutation)


@register(P.rev_p, moves_keys=True)
def rev(x, *, dimensions): return x.flip(dimensions) if dimensions else x


@register(P.slice_p, moves_keys=True)
def slice_(x, *, start_indices, limit_indices, strides=None):
  x = x.shrink(tuple(zip(start_indices, limit_indices)))
  if strides is None or all(s == 1 for s in strides): return x
  return x[tuple(slice(None, None, s) for s in strides)]


@register(P.pad_p, moves_keys=True)
def pad(x, padding_value, *, padding_config):
  """XLA pad: per dimension (low, high, interior); negative low/high crop. A boolean mask goes through the same
  moves as x and marks the positions that come from x; the (traced) padding value fills the rest."""
  padding_config = [tuple(int(v) for v in dim) for dim in padding_config]   # may hold numpy ints (flax's pooling)
  out_shape = tuple(lo + hi + d + max(d - 1, 0) * interior for d, (lo, hi, interior) in zip(x.shape, padding_config))
  if 0 in x.shape: return padding_value.reshape((1,) * len(out_shape)).expand(out_shape)
  def move(t):
    for dim, (_, _, interior) in enumerate(padding_config):
      if interior and t.shape[dim] > 1: t = _interleave_zeros(t, dim, interior)
    t = t.pad(tuple((max(lo, 0), max(hi, 0)) for lo, hi, _ in padding_config))
    return t.shrink(tuple((-min(lo, 0), -min(lo, 0) + n) for (lo, _, _), n in zip(padding_config, out_shape)))
  return move(const(True, np.bool_, x.shape)).where(move(x), padding_value)


def _interleave_zeros(x, dim, interior):
  """Insert `interior` zeros between neighbours along `dim` (XLA's interior padding)."""
  n = x.shape[dim]
  x = x.unsqueeze(dim + 1).pad(tuple((0, interior) if i == dim + 1 else (0, 0) for i in range(x.ndim + 1)))
  x = x.reshape(*x.shape[:dim], n * (interior + 1), *x.shape[dim + 2:])
  return x.shrink(tuple((0, n + (n - 1) * interior) if i == dim else (0, d) for i, d in enumerate(x.shape)))


@register(P.concatenate_p, moves_keys=True)
def concatenate(*xs, dimension):
  xs = [x for x in xs if x.shape[dimension] > 0] or xs[:1]
  return xs[0].cat(*xs[1:], dim=dimension) if len(xs) > 1 else xs[0]


@register(primitive("split_p"), moves_keys=True)
def split(x, *, sizes, axis):
  starts = np.cumsum((0,) + tuple(sizes))
  return [x.shrink(tuple((int(starts[i]), int(starts[i + 1])) if d == axis else (0, n) for d, n in enumerate(x.shape)))
          for i in range(len(sizes))]


@register(P.iota_p)
def iota(*dyn_shape, dtype, shape, dimension, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  return iota_along(shape, dimension).cast(to_tiny(dtype)).expand(shape)   # XLA converts an s32 iota, so int8 wraps


# ---- dynamic slices: traced start indices ----------------------------------------------------------------------

# Each axis gets its own index tensor, shaped along that axis (an iota), so that together they broadcast as an outer
# product: one gather that loads directly.

@register(P.dynamic_slice_p, moves_keys=True)
def dynamic_slice(x, *starts, slice_sizes):
  if x.ndim == 0 or 0 in slice_sizes: return x.shrink(tuple((0, s) for s in slice_sizes))
  return take(x, tuple(clamped_start(i, d - s)[0] + iota_along(slice_sizes, dim)
                       for dim, (i, d, s) in enumerate(zip(starts, x.shape, slice_sizes))))


@register(P.dynamic_update_slice_p, moves_keys=True)
def dynamic_update_slice(x, update, *starts):
  if x.ndim == 0: return update
  if 0 in update.shape: return x
  # every output element asks where it sits inside the update window, then takes update there or x outside
  offset = [iota_along(x.shape, dim) - clamped_start(i, d - s)[0] for dim, (i, d, s) in enumerate(zip(starts, x.shape, update.shape))]
  inside = functools.reduce(lambda a, b: a & b, [(o >= 0) & (o < s) for o, s in zip(offset, update.shape)])
  return inside.where(take(update, tuple(o.maximum(0).minimum(s - 1) for o, s in zip(offset, update.shape))), x)


@register(primitive("tile_p"))
def tile(x, *, reps):
  """jnp.tile's primitive: the operand repeated `reps` times along each axis (a typed key's data dims stay as they are)."""
  reps = tuple(int(r) for r in reps) + (1,) * (x.ndim - len(reps))
  out_shape = tuple(d * r for d, r in zip(x.shape, reps))
  if 0 in out_shape: return const(0, x.dtype, out_shape)
  return x.repeat(*reps) if reps else x


@register(primitive("stack_p"), moves_keys=True)
def stack(*xs, axis): return xs[0].stack(*xs[1:], dim=axis)


@register(primitive("unstack_p"), moves_keys=True)
def unstack(x, *, axis):
  return [x.shrink(tuple((i, i + 1) if d == axis else (0, n) for d, n in enumerate(x.shape))).squeeze(axis)
          for i in range(x.shape[axis])]
