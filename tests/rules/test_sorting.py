"""Parity of the sorting rules (tinyjax/rules/sorting.py) with jax.jit: sort with any operands, keys, dimension and
stability; top_k and approx_top_k; the total-order comparisons (through jnp.searchsorted too); and the jnp functions
built on them (sort, argsort, lexsort, unique, median, percentile, quantile, partition). Inputs are full of ties and
special values (NaN of both signs, ±inf, ±0, INT_MIN/MAX). Each example builds one program with many outputs."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax
from jax.extend.core import primitives as P

import tinyjax
from parity import FLOATS, INTS, assert_same, shapes
from test_shapes import check   # parity.check that tells a bf16 compiler crash from a wrong answer
from tinyjax import tiny

ALL = FLOATS + INTS + [np.bool_]
NUMERIC = FLOATS + INTS


def special_values(dtype):
  dtype = np.dtype(dtype)
  if dtype == np.bool_: return [False, True]
  if dtype.kind in "iu":
    info = np.iinfo(dtype)
    return [info.min, info.max, 0, 1, 2, info.max - 1] + ([-1, info.min + 1] if dtype.kind == "i" else [])
  return [math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 1.0, -1.0, 2.5, -2.5]


def values(dtype, shape, ties=True, nan=True):
  """Arrays whose elements are mostly special values (so ties everywhere), some arbitrary ones of the dtype."""
  dtype = np.dtype(dtype)
  if dtype == np.dtype(jnp.bfloat16):   # hypothesis has no bfloat16: draw float32 and round
    return values(np.float32, shape, ties, nan).map(lambda a: a.astype(jnp.bfloat16))
  specials = [v for v in special_values(dtype) if nan or not (isinstance(v, float) and math.isnan(v))]
  if dtype == np.bool_: elements = st.sampled_from(specials)
  elif dtype.kind in "iu": elements = st.integers(np.iinfo(dtype).min, np.iinfo(dtype).max)
  else: elements = st.floats(width=dtype.itemsize * 8, allow_nan=nan, allow_subnormal=False)
  if ties and dtype != np.bool_: elements = st.one_of(st.sampled_from(specials), st.sampled_from(specials), elements)
  return hnp.arrays(dtype, shape, elements=elements)


@st.composite
def operand(draw, dtypes=ALL, shape=None, **kw):
  dtype = draw(st.sampled_from(dtypes))
  return draw(values(dtype, draw(shapes(min_dims=1, max_side=5)) if shape is None else shape, **kw))


# ---- sort ------------------------------------------------------------------------------------------------------

@given(st.data())
def test_sort_one_operand(data):
  """lax.sort along any dimension (0-size and length-1 axes too), jnp.sort/argsort ascending and descending, stable
  and not (XLA CPU's unstable sort keeps ties in order up to 16 elements, so parity is exact here)."""
  x = data.draw(operand())
  d = data.draw(st.integers(0, x.ndim - 1))
  check(lambda x: (lax.sort(x, dimension=d), lax.sort(x, dimension=d, is_stable=False), jnp.sort(x, axis=d, descending=True),
                   jnp.argsort(x, axis=d), jnp.argsort(x, axis=d, stable=False), jnp.argsort(x, axis=d, descending=True)), x)


@given(st.data())
def test_sort_many_operands(data):
  """Several operands of their own dtypes, num_keys of them keys (lexicographic), the rest carried."""
  shape = data.draw(shapes(min_dims=1, max_side=5))
  ops = [data.draw(operand(shape=shape)) for _ in range(data.draw(st.integers(2, 4)))]
  num_keys = data.draw(st.integers(1, len(ops)))
  d = data.draw(st.integers(0, len(shape) - 1))
  stable = data.draw(st.booleans())
  check(lambda *ops: lax.sort(ops, dimension=d, is_stable=stable, num_keys=num_keys), *ops)


@given(st.data())
def test_sort_long_axis(data):
  """Axes past the small sizes (past 16: XLA CPU's sort stops being an insertion sort), with few distinct keys so that
  the stable order of ties is what is tested; one or two keys, packed into one word or sorted in two passes; and
the first operand alone (an integer one sorts its own keys, no permutation)."""
  n = data.draw(st.sampled_from([17, 33, 100]))
  shape = data.draw(st.sampled_from([(n,), (2, n), (n, 3)]))
  ops = [data.draw(operand(shape=shape)) for _ in range(data.draw(st.integers(1, 2)))]
  d = shape.index(n)
  iota = lax.broadcasted_iota(np.int32, shape, d)
  check(lambda *ops: (lax.sort((*ops, iota), dimension=d, num_keys=len(ops)), lax.sort(ops[0], dimension=d)), *ops)


def test_unstable_sort_long_axis_is_a_valid_sort():
  """is_stable=False past 16 elements: XLA CPU reorders ties (introsort) and tinyjax keeps them in order; the keys
  agree exactly and the carried permutation is a valid (here: the stable) one."""
  x = np.random.default_rng(0).integers(0, 3, (2, 200)).astype(np.float32)
  x[0, ::7] = np.nan
  x[1, ::5] = -0.0
  fn = lambda x: lax.sort((x, lax.broadcasted_iota(np.int32, x.shape, 1)), dimension=1, is_stable=False)
  got, want = tiny(fn)(x), jax.jit(fn)(x)
  assert_same(got[0], want[0])
  np.testing.assert_array_equal(got[1].numpy(), np.argsort(np.where(x == 0, 0.0, x), axis=1, kind="stable"))


def test_sort_order_of_special_values():
  """The comparator's order: -inf < ... < -0.0 == +0.0 < ... < +inf < NaN (both signs equal), ties in input order;
  sorted -0.0 and +0.0 and the NaNs keep their own bits."""
  x = np.array([np.nan, -np.nan, 0.0, -0.0, 1.0, -np.inf, np.inf, -1.0, 0.0, -0.0, np.nan, 1.0], np.float32)
  got, want = check(lambda x: lax.sort((x, jnp.arange(x.size)), num_keys=1), x)
  np.testing.assert_array_equal(np.signbit(got[0].numpy()), np.signbit(np.asarray(want[0])))
  np.testing.assert_array_equal(got[1].numpy(), [5, 7, 2, 3, 8, 9, 4, 11, 6, 0, 1, 10])


def test_sort_of_a_large_axis():
  """100,000 elements (not a power of two): the bitonic path, nothing n x n (that would be 10^10 compares)."""
  rng = np.random.default_rng(0)
  x = rng.integers(-1000, 1000, 100_000).astype(np.float32)
  x[::1000] = np.nan
  y = rng.standard_normal(100_000).astype(np.float32)
  check(lambda x, y: (lax.sort((x, y), num_keys=1), jnp.argsort(y)), x, y)


def test_sort_carries_prng_keys():
  """A typed PRNG key array rides along as a carried operand (jax.jit itself cannot lower this; compared against the
  permutation of the key data)."""
  keys = jax.random.split(jax.random.key(0), 6).reshape(2, 3)
  x = np.array([[3.0, 1.0, 2.0], [0.0, 0.0, -1.0]], np.float32)
  for d in (0, 1):
    vals, ks = tiny(lambda x, k: lax.sort((x, k), dimension=d, num_keys=1))(x, keys)
    perm = np.argsort(x, axis=d, kind="stable")
    np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(x, perm, d))
    data = np.asarray(jax.random.key_data(keys))
    np.testing.assert_array_equal(tinyjax.to_numpy(ks), np.take_along_axis(data, perm[..., None], d))


def test_sort_with_a_prng_key_as_key_is_loud():
  keys = jax.random.split(jax.random.key(0), 4)
  with pytest.raises(NotImplementedError, match="PRNG key"):
    tiny(lambda k, x: lax.sort((k, x), num_keys=1))(keys, np.arange(4, dtype=np.float32))


# ---- top_k and approx_top_k ------------------------------------------------------------------------------------

@given(st.data())
def test_top_k(data):
  """Any k from 0 to the axis, along any axis; raw-bit total order (+NaN first, -NaN last, +0 before -0), ties by
  lower index. k small enough is selected by repeated reductions, the rest by a full sort: both run."""
  x = data.draw(operand(NUMERIC + [np.bool_], shape=shapes(min_dims=1, max_side=6)))
  axis = data.draw(st.integers(0, x.ndim - 1))
  ks = sorted(data.draw(st.sets(st.integers(0, x.shape[axis]), min_size=1, max_size=3)))
  check(lambda x: [lax.top_k(x, k, axis=axis) for k in ks], x)


def test_top_k_long_axis():
  """300 elements: k up to 22 is selected by reductions, larger k takes the bitonic sort."""
  rng = np.random.default_rng(0)
  x = rng.integers(0, 5, (3, 300)).astype(np.float32)
  x[0, :7], x[1, 3:9], x[2, ::11] = np.nan, -0.0, -np.nan
  check(lambda x: ([lax.top_k(x, k) for k in (1, 7, 40, 300)], lax.top_k(x.astype(jnp.bfloat16), 7),
                   lax.top_k(x.astype(np.int8), 40)), x)


def check_approx_top_k(fn, x, axis):
  """Values as jax.jit's; indices valid: distinct, and x at each index is the value (XLA CPU breaks ties in no fixed
  order here, not even for two elements: approx_max_k([5., 5.], 1) answers index 1, and [5.]*4 with k=2 [0, 1])."""
  got, want = tiny(fn)(x), jax.jit(fn)(x)
  for (gv, gi), (wv, wi) in zip(got, want):
    assert_same(gv, wv)
    gv, gi = gv.numpy(), gi.numpy()
    assert gi.dtype == np.asarray(wi).dtype and gi.shape == wi.shape
    np.testing.assert_array_equal(np.take_along_axis(x, gi, axis).astype(np.float64), gv.astype(np.float64))
    assert (np.diff(np.sort(np.moveaxis(gi, axis, -1), axis=-1), axis=-1) != 0).all(), "an index taken twice"


@given(st.data())
def test_approx_top_k(data):
  """Exact results. XLA compares with a plain GT/LT there, so NaN has no defined place (none is drawn) and -0.0 ties
  with +0.0."""
  x = data.draw(operand(FLOATS, shape=shapes(min_dims=1, max_side=6).filter(lambda s: 0 not in s), nan=False))
  axis = data.draw(st.integers(0, x.ndim - 1))
  k = data.draw(st.integers(1, x.shape[axis]))
  recall, agg = data.draw(st.sampled_from([0.95, 0.5, 0.99])), data.draw(st.booleans())
  dim = data.draw(st.sampled_from([axis, axis - x.ndim]))
  approx = data.draw(st.sampled_from([lax.approx_max_k, lax.approx_min_k]))
  check_approx_top_k(lambda x: [approx(x, k, dim, recall, aggregate_to_topk=agg)], x, axis)


def test_approx_top_k_without_aggregation_keeps_xla_size():
  """aggregate_to_topk=False: the output is as long as XLA's reduction output size (here 256 of 2,500), sorted."""
  x = np.random.default_rng(0).permutation(5000).astype(np.float32).reshape(2, 2500)
  check(lambda x: lax.approx_max_k(x, 5, recall_target=0.5, aggregate_to_topk=False), x)


# ---- total-order comparisons -----------------------------------------------------------------------------------

@given(st.data())
def test_total_order_comparisons(data):
  """eq_to/le_to/lt_to (XLA's TOTALORDER compares: -0.0 < +0.0, NaNs by their bits) bound directly, and
  jnp.searchsorted, which emits them, by every method and side."""
  shape = data.draw(shapes(min_dims=0, max_side=5))
  dtype = data.draw(st.sampled_from(ALL))
  x, y = data.draw(values(dtype, shape)), data.draw(values(dtype, shape))
  check(lambda x, y: (P.eq_to_p.bind(x, y), P.le_to_p.bind(x, y), P.lt_to_p.bind(x, y), P.lt_to_p.bind(y, x)), x, y)


@given(st.data())
def test_searchsorted(data):
  a = data.draw(operand(NUMERIC, shape=shapes(min_dims=1, max_dims=1, max_side=8)))
  v = data.draw(values(a.dtype, data.draw(shapes(min_dims=0, max_dims=2, max_side=4))))
  side, method = data.draw(st.sampled_from(["left", "right"])), data.draw(st.sampled_from(["scan", "compare_all", "sort"]))
  check(lambda a, v: jnp.searchsorted(jnp.sort(a), v, side=side, method=method), a, v)


# ---- jnp functions built on sort -------------------------------------------------------------------------------

JNP_FUNCTIONS = {
  "unique": lambda x, axis, kth, q, method: jnp.unique(x, size=x.size, fill_value=0, return_index=True,
                                                       return_inverse=True, return_counts=True),
  "unique_axis": lambda x, axis, kth, q, method: jnp.unique(x, axis=axis, size=x.shape[axis], fill_value=0),
  "lexsort": lambda x, axis, kth, q, method: jnp.lexsort((x, x[::-1]), axis=axis),
  "partition": lambda x, axis, kth, q, method: (jnp.partition(x, kth), jnp.argpartition(x, kth)),
  "median": lambda x, axis, kth, q, method: (jnp.median(x, axis=axis), jnp.nanmedian(x)),
  "percentile": lambda x, axis, kth, q, method: jnp.percentile(x, 100 * q, axis=axis, method=method),
  "quantile": lambda x, axis, kth, q, method: jnp.quantile(x, q, method=method),
}


@given(st.data())
def test_jnp_sorting_functions(data):
  """One of unique (with index, inverse and counts; along an axis), lexsort, partition/argpartition,
  median/nanmedian, percentile, quantile (every interpolation method) per example."""
  name = data.draw(st.sampled_from(sorted(JNP_FUNCTIONS)))
  dtypes = FLOATS if name in ("median", "percentile", "quantile") else FLOATS + [np.int32, np.int8, np.uint16]
  x = data.draw(operand(dtypes, shape=shapes(min_dims=1, max_dims=2, min_side=1, max_side=5)))
  axis = data.draw(st.integers(0, x.ndim - 1))
  kth = data.draw(st.integers(0, x.shape[-1] - 1))
  method = data.draw(st.sampled_from(["linear", "lower", "higher", "midpoint", "nearest"]))
  q = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]), min_size=1, max_size=3)), np.float32)
  check(lambda x: JNP_FUNCTIONS[name](x, axis, kth, q, method), x)


# ---- 64-bit --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.int64, np.uint64])
def test_64_bit_keys_under_x64(dtype):
  """Keys of 64 bits are sorted in two 32-bit passes (a word also holds the position)."""
  with jax.enable_x64(True):
    rng = np.random.default_rng(0)
    n = 33 if dtype == np.float64 else 20   # past 32 elements: bitonic passes; up to it: pairwise ranks
    if dtype == np.float64:
      x = rng.choice(np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1 + 2 ** -40, 1e300, -1e-300]), (3, n))
    else:
      info = np.iinfo(dtype)
      x = rng.choice(np.array([info.min, info.max, 0, 1, 2 ** 33, info.max - 1, 2 ** 32 - 1, 2 ** 32], dtype), (3, n))
    x = x.astype(dtype)
    y = rng.integers(0, 3, (3, n)).astype(np.int64)
    check(lambda x, y: (jnp.sort(x), jnp.argsort(x, axis=0), lax.sort((x, y), num_keys=2), lax.sort((y, x), num_keys=2),
                        lax.top_k(x, 5), lax.top_k(x, n), P.lt_to_p.bind(x, x[::-1]), P.eq_to_p.bind(x, x[::-1])), x, y)
