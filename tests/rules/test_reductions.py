"""Parity of the reduction rules (tinyjax/rules/reductions.py) with jax.jit: reductions over any axes (empty ones included),
arg-reductions with ties and NaN, dot_general with generated dimension numbers, cumulative ops, reduce_precision."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax

from parity import FLOATS, INTS, arrays, check, shapes
import test_shapes
import tinyjax
from tinyjax import tiny


check = test_shapes.check   # parity.check (bf16 kernels no longer hit clang-19 bugs: see tinyjax/tinygrad_patches/renderer.py)

NUMERIC = FLOATS + INTS
SPECIAL = [math.nan, math.inf, -math.inf, -0.0, 0.0]


def tame(dtype, shape, bound=4.0, least=0.0):
  """Floats with |x| in [least, bound], NaN, ±inf and ±0 mixed in, so that sums and products in a different order stay
  within tolerance (no overflow that depends on the order) while NaN and inf still propagate; integers of any size.
  Nothing subnormal, in or out: XLA CPU flushes subnormals to zero (DAZ/FTZ), tinygrad's C code does not, so a
  product that underflows and then meets inf is NaN there and inf here. Products use least=0.5 to stay clear."""
  dtype = np.dtype(dtype)
  if dtype.kind != "f": return arrays(dtype, shape)
  size = st.floats(least, bound, width=32, allow_subnormal=False)
  small = st.tuples(size, st.sampled_from([1.0, -1.0])).map(lambda p: float(np.asarray(p[0] * p[1], dtype)))
  return hnp.arrays(dtype, shape, elements=st.one_of(small, small, small, st.sampled_from(SPECIAL)))


@st.composite
def operand(draw, dtypes, shape=None, elements=tame):
  dtype = draw(st.sampled_from(dtypes))
  return draw(elements(dtype, draw(shapes()) if shape is None else shape))


def axes_of(draw, ndim): return tuple(sorted(draw(st.sets(st.integers(0, ndim - 1), max_size=ndim)))) if ndim else ()


# ---- reductions over axes -------------------------------------------------------------------------------------

REDUCTIONS = {"sum": (lax.reduce_sum, NUMERIC), "prod": (lax.reduce_prod, NUMERIC),
              "max": (lax.reduce_max, NUMERIC + [np.bool_]), "min": (lax.reduce_min, NUMERIC + [np.bool_]),
              "and": (lax.reduce_and, INTS + [np.bool_]), "or": (lax.reduce_or, INTS + [np.bool_]),
              "xor": (lax.reduce_xor, INTS + [np.bool_])}


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reduce(name, data):
  """Any subset of axes, () and 0-size axes (the monoid's identity) included; factors of products have |x| in
  [0.5, 2] so that no order-dependent overflow or underflow happens."""
  reduce, dtypes = REDUCTIONS[name]
  x = data.draw(operand(dtypes, elements=lambda d, s: tame(d, s, 2.0, 0.5) if name == "prod" else tame(d, s)))
  axes = axes_of(data.draw, x.ndim)
  check(lambda x: reduce(x, axes), x)


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16])
def test_sum_of_half_floats_accumulates_wide(dtype):
  """4096 ones and a long tail: a half-precision accumulator would stall at 2048 (f16) or 256 (bf16)."""
  x = np.ones((3, 4096), dtype)
  check(lambda x: (lax.reduce_sum(x, (1,)), lax.reduce_sum(x, (0, 1))), x)


@given(st.sampled_from(NUMERIC), st.sampled_from(["max", "min"]))
def test_reduce_max_min_identity_of_empty_axes(dtype, name):
  x = np.zeros((2, 0, 3), dtype)
  check(lambda x: REDUCTIONS[name][0](x, (1,)), x)


# ---- argmax / argmin ------------------------------------------------------------------------------------------

def few_values(dtype, shape):
  """Few distinct values, so that ties are everywhere; floats add NaN, ±inf and ±0."""
  dtype = np.dtype(dtype)
  values = [0, 1, 2] + ([-1] if dtype.kind != "u" else []) + ([True, False] if dtype.kind == "b" else [])
  if dtype.kind == "b": values = [False, True]
  if dtype.kind == "f": values += SPECIAL
  return hnp.arrays(dtype, shape, elements=st.sampled_from(values).map(lambda v: np.asarray(v).astype(dtype)))


@pytest.mark.parametrize("arg_reduce", [lax.argmax, lax.argmin], ids=["argmax", "argmin"])
@given(data=st.data())
def test_arg_reduce(arg_reduce, data):
  x = data.draw(operand(NUMERIC + [np.bool_], shape=shapes(min_dims=1, max_side=6), elements=few_values))
  axis = data.draw(st.sampled_from([i for i, d in enumerate(x.shape) if d > 0] or [None]))
  if axis is None: return   # JAX refuses an arg-reduction over an empty axis
  index_dtype = data.draw(st.sampled_from([np.int32, np.int8, np.uint8, np.int16]))
  check(lambda x: arg_reduce(x, axis, index_dtype), x)


@pytest.mark.parametrize("arg_reduce", [lax.argmax, lax.argmin], ids=["argmax", "argmin"])
def test_arg_reduce_int64_under_x64(arg_reduce):
  x = np.array([[1.0, np.nan, 3.0, np.nan], [2.0, 2.0, -np.inf, -np.inf], [0.0, -0.0, 0.0, 5.0]], np.float32)
  with jax.enable_x64(True):
    for axis in (0, 1):
      check(lambda x: arg_reduce(x, axis, np.int64), x)
      check(lambda x: arg_reduce(x.astype(np.int64), axis, np.int64), np.nan_to_num(x))


# ---- dot_general ------------------------------------------------------------------------------------------------

# input dtype -> the preferred_element_type values to try with it (None: the input's own)
PREFERRED = {np.dtype(np.float32): [None, np.float32], np.dtype(np.float16): [None, np.float32, np.float16],
             np.dtype(jnp.bfloat16): [None, np.float32], np.dtype(np.int8): [None, np.int32, np.int16, np.float32],
             np.dtype(np.int16): [None, np.int32], np.dtype(np.int32): [None, np.int32],
             np.dtype(np.uint8): [None, np.uint32, np.int32], np.dtype(np.uint32): [None],
             np.dtype(np.uint16): [None, np.uint32], np.dtype(np.bool_): [None]}


@st.composite
def dot_problem(draw):
  """Operands and dimension numbers: batch, contracting and free dims of random sizes (0 included), each operand's
  dims in a random order."""
  sizes = st.integers(0, 4)
  batch = draw(st.lists(sizes, max_size=2))
  contract = draw(st.lists(sizes, max_size=2))
  lfree, rfree = draw(st.lists(sizes, max_size=2)), draw(st.lists(sizes, max_size=2))
  def layout(free):
    dims = [("b", i) for i in range(len(batch))] + [("c", i) for i in range(len(contract))] + [("f", i) for i in range(len(free))]
    return draw(st.permutations(dims))
  lhs_dims, rhs_dims = layout(lfree), layout(rfree)
  def shape(dims, free): return tuple({"b": batch, "c": contract, "f": free}[k][i] for k, i in dims)
  def where(dims, kind, n): return tuple(dims.index((kind, i)) for i in range(n))
  dimension_numbers = ((where(lhs_dims, "c", len(contract)), where(rhs_dims, "c", len(contract))),
                       (where(lhs_dims, "b", len(batch)), where(rhs_dims, "b", len(batch))))
  dtype = np.dtype(draw(st.sampled_from(list(PREFERRED))))
  preferred = draw(st.sampled_from(PREFERRED[dtype]))
  return (draw(arrays(dtype, shape(lhs_dims, lfree), special=False, min_value=-8 if dtype.kind in "fi" else None,
                      max_value=8 if dtype.kind == "f" else None)),
          draw(arrays(dtype, shape(rhs_dims, rfree), special=False, min_value=-8 if dtype.kind in "fi" else None,
                      max_value=8 if dtype.kind == "f" else None)),
          dimension_numbers, preferred)


@given(dot_problem())
def test_dot_general(problem):
  lhs, rhs, dimension_numbers, preferred = problem
  out = np.dtype(preferred or lhs.dtype)
  # the tolerance of the result's dtype, loosened for an input rounded to half precision before a long sum
  tol = {"rtol": 2e-2, "atol": 2e-1} if lhs.dtype in (np.float16, jnp.bfloat16) or out in (np.float16, jnp.bfloat16) else {}
  check(lambda a, b: lax.dot_general(a, b, dimension_numbers, preferred_element_type=preferred), lhs, rhs, **tol)


def test_dot_general_with_nan_and_inf():
  a = np.array([[1.0, np.inf, 0.0], [np.nan, 1.0, 2.0], [-np.inf, np.inf, 1.0]], np.float32)
  check(lambda a, b: a @ b, a, a.T.copy())


@pytest.mark.parametrize("shapes_", [((0, 3), (3, 2)), ((2, 0), (0, 3)), ((2, 3), (3, 0)), ((0, 0), (0, 0)),
                                     ((4, 2, 0), (4, 0, 5))])
def test_matmul_of_zero_size(shapes_):
  a, b = (np.ones(s, np.float32) for s in shapes_)
  check(lambda a, b: jnp.matmul(a, b), a, b)


def test_int8_matmul_accumulates_in_int32():
  a = np.full((2, 300), -128, np.int8)
  check(lambda a, b: lax.dot(a, b, preferred_element_type=jnp.int32), a, a.T.copy())
  check(lambda a, b: lax.dot(a, b), a, a.T.copy())   # wraps in int8


# ---- cumulative reductions --------------------------------------------------------------------------------------

CUMULATIVE = {"cumsum": (lax.cumsum, NUMERIC), "cumprod": (lax.cumprod, NUMERIC),
              "cummax": (lax.cummax, NUMERIC), "cummin": (lax.cummin, NUMERIC),
              "cumlogsumexp": (lax.cumlogsumexp, FLOATS)}


@pytest.mark.parametrize("name", CUMULATIVE)
@given(data=st.data())
def test_cumulative(name, data):
  cumulative, dtypes = CUMULATIVE[name]
  shape = data.draw(shapes(min_dims=1, max_side=9))
  x = data.draw(operand(dtypes, shape=shape, elements=lambda d, s: tame(d, s, 1.25, 0.5) if name == "cumprod" else tame(d, s)))
  axis, reverse = data.draw(st.integers(0, x.ndim - 1)), data.draw(st.booleans())
  check(lambda x: cumulative(x, axis, reverse), x)


@pytest.mark.parametrize("name", CUMULATIVE)
@pytest.mark.parametrize("dtype", FLOATS)
def test_cumulative_long_axis(name, dtype):
  """A longer axis than the generated ones (tinygrad splits scans over more than 512 elements in two stages)."""
  x = np.random.default_rng(0).uniform(-1, 1, (2, 1100)).astype(dtype)
  if name == "cumprod": x = (1 + x / 1000).astype(dtype)
  tol = {"rtol": 2e-2, "atol": 5e-2} if dtype != np.float32 else {"rtol": 1e-4, "atol": 1e-4}
  if name == "cumsum" and dtype == jnp.bfloat16:   # XLA CPU rounds to bf16 after every add of its blocked scan;
    tol["atol"] = 0.5                              # we accumulate in f32: both within a few bf16 ulps of |sum| <= 45
  check(lambda x: CUMULATIVE[name][0](x, 1), x, **tol)


def test_cumulative_through_jnp():
  x = np.arange(12, dtype=np.int32).reshape(3, 4)
  check(lambda x: (jnp.cumsum(x, 1), jnp.cumprod(x, 0), lax.cummax(x, 1, reverse=True)), x)


# ---- reduce_precision ---------------------------------------------------------------------------------------------

def any_float(dtype, shape):
  """Floats over the whole range, subnormals included."""
  dtype = np.dtype(dtype)
  width = {np.dtype(np.float16): 16, np.dtype(np.float32): 32}.get(dtype, 32)
  return hnp.arrays(dtype, shape, elements=st.floats(width=width).map(lambda v: np.asarray(v, np.float32).astype(dtype)))


@given(data=st.data())
def test_reduce_precision(data):
  x = data.draw(operand(FLOATS, shape=shapes(min_dims=1, max_side=6), elements=any_float))
  exponent_bits, mantissa_bits = data.draw(st.integers(1, 10)), data.draw(st.integers(0, 25))
  check(lambda x: lax.reduce_precision(x, exponent_bits, mantissa_bits), x, rtol=0, atol=0)


@pytest.mark.parametrize("fmt", [(5, 10), (8, 7), (4, 3), (5, 2), (8, 23), (11, 52), (1, 0), (2, 1)])
def test_reduce_precision_formats(fmt):
  """The common formats over every float16 bit pattern and a sweep of float32 values (NaN, inf, subnormals)."""
  halves = np.arange(2 ** 16, dtype=np.uint16).view(np.float16)
  singles = np.concatenate([halves.astype(np.float32) * np.float32(3.1), np.float32([3.4e38, 1e-45, 1.2e-38, -1e-40])])
  check(lambda h, s, b: (lax.reduce_precision(h, *fmt), lax.reduce_precision(s, *fmt), lax.reduce_precision(b, *fmt)),
        halves, singles, halves.view(jnp.bfloat16), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.uint8])
def test_narrow_integer_results_wrap_before_use(dtype):
  """tinygrad's C code adds int8/int16 in int: a comparison fused after the sum must still see the wrapped value."""
  x = np.full((2, 4), np.iinfo(dtype).max - 27, dtype)
  check(lambda x: (lax.reduce_sum(x, (1,)) < 9, lax.cumsum(x, 1) < 9, lax.reduce_prod(x, (1,)) < 9,
                   lax.dot(x, x.T) < 9, lax.cummax(x, 1) < 9), x)


def test_integer_results_of_constants_wrap():
  """tinygrad folds a reduction of constants at compile time with unbounded integers; the result must still wrap
  as XLA's does before anything compares it."""
  c8, c32 = jnp.full((4,), 100, jnp.int8), jnp.full((3,), 65536, jnp.uint32)
  check(lambda x: (x, lax.reduce_sum(c8, (0,)) < 0, lax.cumsum(c8) < 0, lax.cumprod(c8) < 0, lax.reduce_prod(c32, (0,)) > 0,
                   lax.cumprod(c32) > 0, jnp.dot(c8, c8, preferred_element_type=jnp.int8) < 0), np.int8(0))


# ---- the generic reduce (lax.reduce_p: any body, any number of operands) -----------------------------------------

def _identity_of(name, dtype):
  dt = np.dtype(dtype)
  if name in ("add", "or", "xor"): return np.zeros((), dt)
  if name == "mul": return np.ones((), dt)
  if name == "and": return np.array(True if dt == np.bool_ else -1).astype(dt)
  if dt == np.bool_: return np.array(name == "min")
  if jnp.issubdtype(dt, jnp.floating): return np.array(-np.inf if name == "max" else np.inf, dt)
  return np.array(np.iinfo(dt).min if name == "max" else np.iinfo(dt).max, dt)


GENERIC_MONOIDS = {"add": (lax.add, NUMERIC), "mul": (lax.mul, NUMERIC), "max": (lax.max, NUMERIC + [np.bool_]),
                   "min": (lax.min, NUMERIC + [np.bool_]), "and": (lax.bitwise_and, INTS + [np.bool_]),
                   "or": (lax.bitwise_or, INTS + [np.bool_]), "xor": (lax.bitwise_xor, INTS + [np.bool_])}


@pytest.mark.parametrize("name", GENERIC_MONOIDS)
@given(data=st.data())
def test_generic_reduce_monoid_bodies(name, data):
  """lax.reduce with a traced identity init emits `reduce` (not reduce_sum & co.): the monoid fast path."""
  op, dtypes = GENERIC_MONOIDS[name]
  x = data.draw(operand(dtypes, elements=lambda d, s: tame(d, s, 2.0, 0.5) if name == "mul" else tame(d, s)))
  axes = axes_of(data.draw, x.ndim)
  f = lambda x, init: lax.reduce(x, init, op, axes)
  init = _identity_of(name, x.dtype)
  assert "reduce[" in str(jax.make_jaxpr(f)(x, init))
  check(f, x, init)


def argmax_body(a, b):
  """jnp.argmax's comparator as a reduction body: the larger value, NaN counting as the largest, the smaller index
  on ties (associative and commutative, so any fold order gives one answer)."""
  (av, ai), (bv, bi) = a, b
  a_nan, b_nan = av != av, bv != bv
  pick_a = (av > bv) | (a_nan & ~b_nan) | (((av == bv) | (a_nan & b_nan)) & (ai < bi))
  return lax.select(pick_a, av, bv), lax.select(pick_a, ai, bi)


def variadic_argmax(x, axes):
  index = jnp.arange(x.size, dtype=jnp.int32).reshape(x.shape)   # row-major position: ties go to the first
  low = -np.inf if jnp.issubdtype(x.dtype, jnp.floating) else np.iinfo(x.dtype).min
  return lax.reduce((x, index), (np.array(low, x.dtype), np.int32(2 ** 30)), argmax_body, axes)


@given(data=st.data())
def test_generic_reduce_variadic_argmax(data):
  """(value, index) pairs with ties everywhere and NaN; rows of up to 64 elements, past SEQUENTIAL_MAX (the tree
  fold); 0-size axes give the inits."""
  x = data.draw(operand(NUMERIC, shape=shapes(max_side=4) if data.draw(st.booleans()) else shapes(1, 2, 0, 40),
                        elements=few_values))
  axes = axes_of(data.draw, x.ndim)
  check(lambda x: variadic_argmax(x, axes), x)


@pytest.mark.parametrize("n", [5, 31, 32, 33, 100, 1000])
def test_generic_reduce_variadic_argmax_lengths(n):
  x = np.random.default_rng(n).integers(0, 3, (2, n)).astype(np.float32)
  x[1, ::7] = np.nan
  check(lambda x: (variadic_argmax(x, (1,)), variadic_argmax(x, (0, 1))), x)


def test_generic_reduce_through_jnp_argmax_style():
  """lax.reduce over several axes: the position of the maximum of each image."""
  x = np.random.default_rng(0).integers(-3, 3, (3, 4, 5)).astype(np.float32)
  check(lambda x: variadic_argmax(x, (1, 2)), x)


def lexicographic_max(a, b):
  """The larger (key, value) pair in lexicographic order: associative and commutative for non-NaN values."""
  (ak, av), (bk, bv) = a, b
  pick_a = (ak > bk) | ((ak == bk) & (av >= bv))
  return lax.select(pick_a, ak, bk), lax.select(pick_a, av, bv)


@given(st.sampled_from([np.int8, np.uint8, np.int32]), st.sampled_from(FLOATS), st.data())
def test_generic_reduce_operands_of_different_dtypes(key_dtype, value_dtype, data):
  shape = data.draw(shapes(max_side=5))
  k = data.draw(few_values(key_dtype, shape))
  v = data.draw(tame(value_dtype, shape).map(lambda a: np.where(np.isnan(a), 0, a).astype(value_dtype)))
  axes = axes_of(data.draw, len(shape))
  low_k = np.array(np.iinfo(key_dtype).min, key_dtype)
  check(lambda k, v: lax.reduce((k, v), (low_k, np.array(-np.inf, value_dtype)), lexicographic_max, axes), k, v)


@given(data=st.data())
def test_generic_reduce_per_operand_monoids_of_mixed_dtypes(data):
  """A tuple body that is a monoid per operand (sum of halves, max of ints, or of bools): each takes the fast path."""
  shape = data.draw(shapes(max_side=5))
  a, b, c = data.draw(tame(np.float16, shape)), data.draw(arrays(np.int16, shape)), data.draw(arrays(np.bool_, shape))
  axes = axes_of(data.draw, len(shape))
  body = lambda x, y: (x[0] + y[0], lax.max(y[1], x[1]), x[2] | y[2])
  inits = (np.float16(0), np.int16(np.iinfo(np.int16).min), np.False_)
  check(lambda a, b, c: lax.reduce((a, b, c), inits, body, axes), a, b, c)


@pytest.mark.parametrize("n", [1, 2, 7, 32])
def test_generic_reduce_non_associative_body_in_xla_order(n):
  """Up to SEQUENTIAL_MAX elements XLA's CPU loop is `acc = body(acc, x)` in row-major order, and so is the fold:
  even a body that is not associative (2*acc + x, wrapping in int32) matches. Over one element XLA drops the
  reduction, init included."""
  x = np.random.default_rng(n).integers(-4, 5, (3, n, 2)).astype(np.int32)
  body = lambda a, b: 2 * a + b
  check(lambda x: (lax.reduce(x, np.int32(3), body, (1,)), lax.reduce(x, np.int32(5), body, ())), x)
  if 3 * n <= 32: check(lambda x: lax.reduce(x, np.int32(0), body, (0, 1)), x)


def test_generic_reduce_of_empty_axes_gives_inits():
  x = np.zeros((2, 0, 3), np.float32)
  i = np.zeros((2, 0, 3), np.int32)
  check(lambda x, i: lax.reduce((x, i), (np.float32(7), np.int32(-1)), argmax_body, (1,)), x, i)
  check(lambda x, i: lax.reduce((x, i), (np.float32(7), np.int32(-1)), argmax_body, (0, 2)), x, i)


SIGNED_ZERO = {
  "max": lambda x: jnp.max(x, axis=-1), "min": lambda x: jnp.min(x, axis=-1), "sum": lambda x: jnp.sum(x, axis=-1),
  "sum_all": jnp.sum, "sum_one": lambda x: jnp.sum(x[..., :1], axis=-1),   # over one element XLA keeps -0
  "window_max": lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 2), (1, 1), "VALID"),
  "window_min": lambda x: lax.reduce_window(x, jnp.inf, lax.min, (1, 2), (1, 1), "VALID"),
  "window_sum": lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 2), (1, 1), "VALID"),
}


@pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", SIGNED_ZERO)
def test_signed_zero_as_xla(name, dtype):
  """XLA (CPU): max(-0, +0) = +0 and min(-0, +0) = -0 in either order; a sum of several -0 is +0 (issue 12: tinygrad's
  order-dependent max/min and its sum gave the other sign). Rows: [-0, +0], [+0, -0], [-0, -0], [+0, +0]."""
  x = np.array([[-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0], [0.0, 0.0]], dtype=dtype)
  fn = SIGNED_ZERO[name]
  want, got = np.asarray(jax.jit(fn)(x)), tinyjax.to_numpy(tiny(fn)(x))
  assert got.dtype == want.dtype and got.shape == want.shape
  np.testing.assert_array_equal(np.signbit(got.astype(np.float32)), np.signbit(want.astype(np.float32)))
  np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("operand, kernels", [(jnp.tanh, 2), (jax.nn.gelu, 2), (lambda x: x * 2 + 1, 1), (lambda x: x, 1)])
def test_matmul_operand_with_transcendentals_is_computed_once(operand, kernels):
  """tinygrad would fuse an operand's producer into the matmul's inner loop, recomputing it for every output column:
  one computed with transcendentals gets a kernel of its own; a cheaper one stays fused."""
  fn = lambda x, w: operand(x) @ w
  x, w = (np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32) for _ in range(2))
  check(fn, x, w)
  assert len(tinyjax.kernels(tiny(fn), x, w)) == kernels   # (launches per call, a device graph's opened up)
