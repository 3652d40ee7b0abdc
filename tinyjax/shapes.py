"""Rules that move data without arithmetic: broadcasting, reshaping, slicing, padding, concatenation, iota."""
import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from .dtypes import to_tiny
from .ops import DEVICE, const, primitive, register


@register(P.broadcast_in_dim_p)
def broadcast_in_dim(x, *dyn_shape, shape, broadcast_dimensions, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  kept = [1] * len(shape)
  for src, dst in enumerate(broadcast_dimensions): kept[dst] = x.shape[src]
  return x.reshape(kept).expand(shape)


@register(P.reshape_p)
def reshape(x, *dyn_shape, new_sizes, dimensions=None, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  if dimensions is not None: x = x.permute(dimensions)
  return x.reshape(new_sizes)


@register(P.squeeze_p)
def squeeze(x, *, dimensions):
  return x.reshape([d for i, d in enumerate(x.shape) if i not in dimensions])


@register(P.transpose_p)
def transpose(x, *, permutation): return x.permute(permutation)


@register(P.rev_p)
def rev(x, *, dimensions): return x.flip(dimensions) if dimensions else x


@register(P.slice_p)
def slice_(x, *, start_indices, limit_indices, strides=None):
  x = x.shrink(tuple(zip(start_indices, limit_indices)))
  if strides is None or all(s == 1 for s in strides): return x
  return x[tuple(slice(None, None, s) for s in strides)]


@register(P.pad_p)
def pad(x, padding_value, *, padding_config):
  """XLA pad: per dimension (low, high, interior); negative low/high crop."""
  mask = Tensor.ones(*x.shape, dtype=tg.bool, device=x.device) if 0 not in x.shape else None
  for dim, (_, _, interior) in enumerate(padding_config):
    if interior > 0 and x.shape[dim] > 0:
      x = _interleave_zeros(x, dim, interior)
      mask = _interleave_zeros(mask, dim, interior)
  grow = tuple((max(lo, 0), max(hi, 0)) for lo, hi, _ in padding_config)
  if any(g != (0, 0) for g in grow):
    if 0 in x.shape:   # nothing to keep: the result is all padding
      shape = [d + lo + hi for d, (lo, hi) in zip(x.shape, grow)]
      x, mask = Tensor.zeros(*shape, dtype=x.dtype, device=x.device), Tensor.zeros(*shape, dtype=tg.bool, device=x.device)
    else: x, mask = x.pad(grow), mask.pad(grow)
  crop = tuple((-min(lo, 0), d - (-min(hi, 0)) if d else 0) for d, (lo, hi, _) in zip(x.shape, padding_config))
  x = x.shrink(crop)
  if mask is None: return x
  return mask.shrink(crop).where(x, padding_value.expand(x.shape) if x.shape else padding_value)


def _interleave_zeros(x, dim, interior):
  """Insert `interior` zeros between neighbours along `dim` (XLA's interior padding)."""
  n = x.shape[dim]
  x = x.unsqueeze(dim + 1).pad(tuple((0, interior) if i == dim + 1 else (0, 0) for i in range(x.ndim + 1)))
  x = x.reshape(*x.shape[:dim], n * (interior + 1), *x.shape[dim + 2:])
  return x.shrink(tuple((0, n + (n - 1) * interior) if i == dim else (0, d) for i, d in enumerate(x.shape)))


@register(P.concatenate_p)
def concatenate(*xs, dimension):
  xs = [x for x in xs if x.shape[dimension] > 0] or xs[:1]
  return xs[0].cat(*xs[1:], dim=dimension) if len(xs) > 1 else xs[0]


@register(primitive("split_p"))
def split(x, *, sizes, axis):
  starts = np.cumsum((0,) + tuple(sizes))
  return [x.shrink(tuple((int(starts[i]), int(starts[i + 1])) if d == axis else (0, n) for d, n in enumerate(x.shape)))
          for i in range(len(sizes))]


@register(P.iota_p)
def iota(*dyn_shape, dtype, shape, dimension, sharding=None):
  if dyn_shape: raise NotImplementedError("dynamic shapes")
  if 0 in shape: return const(0, dtype, shape)
  line = Tensor.arange(shape[dimension], device=DEVICE.get(), dtype=tg.int32 if to_tiny(dtype) != tg.int64 else tg.int64)
  line = line.cast(to_tiny(dtype)).reshape([n if i == dimension else 1 for i, n in enumerate(shape)])
  return line.expand(shape)
