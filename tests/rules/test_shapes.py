"""Parity of the data-movement rules (tinyjax/rules/shapes.py) with jax.jit: generated shapes, dtypes and parameters,
each primitive called through jax.lax so that the Jaxpr carries exactly the params under test."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, strategies as st
from jax import lax

import parity
from parity import FLOATS, INTS, arrays, shapes

ALL = FLOATS + INTS + [np.bool_]


# parity.check itself: bfloat16 no longer crashes the C compiler (tinyjax/tinygrad_patches/renderer.py renders bf16 as a 16-bit
# integer). Kept under this name for the test modules that import it from here.
check = parity.check


@st.composite
def operand(draw, dtypes=ALL, shape=None, **kw):
  """An array of any dtype (floats with NaN/inf/-0.0) and any shape up to rank 3, scalars and 0-size dims included."""
  return draw(arrays(draw(st.sampled_from(dtypes)), draw(shapes()) if shape is None else shape, **kw))


def draw_subset(draw, n): return tuple(sorted(draw(st.sets(st.integers(0, n - 1), max_size=n)))) if n else ()


# ---- broadcasting and reshaping --------------------------------------------------------------------------------

@given(st.data())
def test_broadcast_in_dim(data):
  x = data.draw(operand())
  rank = x.ndim + data.draw(st.integers(0, 2))
  dims = tuple(sorted(data.draw(st.permutations(range(rank)))[:x.ndim]))
  shape = [data.draw(st.integers(0, 3)) for _ in range(rank)]
  for src, dst in enumerate(dims): shape[dst] = x.shape[src] if x.shape[src] != 1 else data.draw(st.integers(0, 3))
  check(lambda x: lax.broadcast_in_dim(x, tuple(shape), dims), x)


@st.composite
def same_size_shape(draw, size):
  """A shape with `size` elements: the prime factors of size grouped at random, with 1s mixed in."""
  if size == 0:
    shape = list(draw(st.lists(st.integers(0, 4), max_size=3)))
    return tuple(shape[:draw(st.integers(0, len(shape)))] + [0] + shape[len(shape):])
  factors, n, p = [], size, 2
  while n > 1:
    while n % p == 0: factors.append(p); n //= p
    p += 1
  rank = draw(st.integers(0 if size == 1 else 1, 4))
  if rank == 0: return ()
  shape = [1] * rank
  for f in factors: shape[draw(st.integers(0, rank - 1))] *= f
  return tuple(shape)


@given(st.data())
def test_reshape(data):
  x = data.draw(operand())
  new = data.draw(same_size_shape(x.size))
  perm = data.draw(st.none() | st.permutations(range(x.ndim)).map(tuple))
  check(lambda x: lax.reshape(x, new, perm), x)


@given(st.data())
def test_squeeze_and_expand_dims(data):
  x = data.draw(operand())
  ones = [i for i, d in enumerate(x.shape) if d == 1]
  drop = tuple(data.draw(st.sets(st.sampled_from(ones))) if ones else ())
  new = data.draw(st.sets(st.integers(0, x.ndim - len(drop)), max_size=2))
  check(lambda x: lax.expand_dims(lax.squeeze(x, drop), tuple(sorted(new))), x)


@given(st.data())
def test_transpose(data):
  x = data.draw(operand())
  perm = tuple(data.draw(st.permutations(range(x.ndim))))
  check(lambda x: lax.transpose(x, perm), x)


@given(st.data())
def test_rev(data):
  x = data.draw(operand())
  dims = draw_subset(data.draw, x.ndim)
  check(lambda x: lax.rev(x, dims), x)


# ---- slicing, padding, concatenation ---------------------------------------------------------------------------

@given(st.data())
def test_slice(data):
  x = data.draw(operand(shape=shapes(max_side=7)))
  start = [data.draw(st.integers(0, d)) for d in x.shape]
  limit = tuple(data.draw(st.integers(s, d)) for s, d in zip(start, x.shape))
  strides = data.draw(st.none() | st.tuples(*[st.integers(1, 3)] * x.ndim))
  check(lambda x: lax.slice(x, tuple(start), limit, strides), x)


@given(st.data())
def test_pad(data):
  """Negative (cropping), positive and interior padding, all at once; the padding value is traced."""
  x = data.draw(operand())
  config = []
  for d in x.shape:
    interior = data.draw(st.integers(0, 2))
    lo, hi = data.draw(st.integers(-4, 3)), data.draw(st.integers(-4, 3))
    dilated = d + max(d - 1, 0) * interior
    hi = max(hi, -(lo + dilated))   # XLA wants a size >= 0
    config.append((lo, hi, interior))
  value = data.draw(arrays(x.dtype, ()))
  check(lambda x, v: lax.pad(x, v, config), x, value)


@given(st.data())
def test_concatenate(data):
  """Pieces of any size along the axis, 0-size pieces included."""
  base = data.draw(shapes(min_dims=1))
  axis = data.draw(st.integers(0, len(base) - 1))
  dtype = data.draw(st.sampled_from(ALL))
  sizes = data.draw(st.lists(st.integers(0, 3), min_size=1, max_size=4))
  pieces = [data.draw(arrays(dtype, base[:axis] + (n,) + base[axis + 1:])) for n in sizes]
  check(lambda *xs: lax.concatenate(xs, axis), *pieces)


@given(st.data())
def test_split(data):
  x = data.draw(operand(shape=shapes(min_dims=1, max_side=6)))
  axis = data.draw(st.integers(0, x.ndim - 1))
  cuts = sorted(data.draw(st.lists(st.integers(0, x.shape[axis]), max_size=3)))
  sizes = [b - a for a, b in zip([0] + cuts, cuts + [x.shape[axis]])]
  check(lambda x: lax.split(x, sizes, axis), x)


# ---- iota --------------------------------------------------------------------------------------------------------

@given(st.sampled_from(FLOATS + INTS), st.integers(0, 600))
def test_iota_long(dtype, n):
  """Long enough that int8 wraps and bf16/f16 round."""
  check(lambda: lax.iota(dtype, n))


@given(st.sampled_from(FLOATS + INTS), shapes(min_dims=1), st.data())
def test_broadcasted_iota(dtype, shape, data):
  dim = data.draw(st.integers(0, len(shape) - 1))
  check(lambda: lax.broadcasted_iota(dtype, shape, dim))


def test_iota_int64():
  with jax.enable_x64(True):
    check(lambda: lax.broadcasted_iota(jnp.int64, (3, 5), 1))
    check(lambda: lax.iota(jnp.uint64, 7))


# ---- dynamic slices ----------------------------------------------------------------------------------------------

INDEX_DTYPES = [np.int32, np.int8, np.uint8, np.int16, np.uint32]


@st.composite
def start_indices(draw, shape, sizes):
  """Traced start indices of one integer dtype, often out of range so that XLA's clamping shows."""
  dtype = draw(st.sampled_from(INDEX_DTYPES))
  lo = 0 if np.dtype(dtype).kind == "u" else -9
  return [np.asarray(draw(st.integers(lo, d - s + 6)), dtype) for d, s in zip(shape, sizes)]


@given(st.data())
def test_dynamic_slice(data):
  x = data.draw(operand(shape=shapes(max_side=6)))
  sizes = tuple(data.draw(st.integers(0, d)) for d in x.shape)
  idx = data.draw(start_indices(x.shape, sizes))
  negative = data.draw(st.booleans())   # jnp-style wrapping of negative indices, or the raw primitive (clamp only)
  check(lambda x, *i: lax.dynamic_slice(x, i, sizes, allow_negative_indices=negative), x, *idx)


@given(st.data())
def test_dynamic_update_slice(data):
  x = data.draw(operand(shape=shapes(max_side=6)))
  update = data.draw(arrays(x.dtype, tuple(data.draw(st.integers(0, d)) for d in x.shape)))
  idx = data.draw(start_indices(x.shape, update.shape))
  negative = data.draw(st.booleans())
  check(lambda x, u, *i: lax.dynamic_update_slice(x, u, i, allow_negative_indices=negative), x, update, *idx)


def test_dynamic_slices_int64_indices():
  with jax.enable_x64(True):
    x = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    for i in (np.int64(-7), np.int64(1), np.int64(2 ** 40), np.uint64(2 ** 63 + 5)):
      check(lambda x, i: lax.dynamic_slice(x, (i, i, i), (2, 2, 3), allow_negative_indices=False), x, i)
      check(lambda x, i: lax.dynamic_update_slice(x, -x[:2, 1:3, :2], (i, i, i)), x, i)


def test_dynamic_slice_of_a_large_axis_is_a_gather():
  """One row out of a 50k-row table: the rule must index, not compare the index against every row."""
  table = np.random.default_rng(0).standard_normal((50_000, 8)).astype(np.float32)
  check(lambda t, i: lax.dynamic_slice_in_dim(t, i, 2, axis=0), table, np.int32(49_999))
  check(lambda t, i, u: lax.dynamic_update_slice_in_dim(t, u, i, axis=0), table, np.int32(123), table[:3] * 2)
