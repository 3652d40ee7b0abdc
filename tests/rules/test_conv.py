"""Parity of the windowed rules (tinyjax/rules/conv.py) with jax.jit: conv_general_dilated, reduce_window_{sum,max,min},
the generic reduce_window, select_and_scatter_add (max-pool VJP) and select_and_gather_add (max-pool JVP).

Generated values are small integers (plus NaN/±inf/-0.0 where the result does not depend on summation order), so
that sums are exact in every float dtype and a wrong index, window or group shows up as a hard mismatch rather than
hiding in a tolerance. Kernels stay finite: XLA's own conv paths disagree on whether padding zeros meet inf weights.
"""
import math

import flax.linen as nn
from flax.linen.pooling import min_pool
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax
from jax._src.lax.windowed_reductions import _select_and_scatter, _select_and_scatter_add

from test_reductions import check   # parity.check; a bf16 case the toolchain cannot compile or link is rejected, not failed
from tinygrad import Tensor
import tinyjax
from tinyjax import tiny

FLOATS = [np.float32, np.float16, jnp.bfloat16]
SPECIALS = [math.nan, math.inf, -math.inf, -0.0]


def small(dtype, shape, lo=-4, hi=4, specials=False):
  """Integer-valued arrays (exact in every dtype); with specials, about one float in eight is NaN/±inf/-0.0."""
  elements = st.integers(lo, hi).map(float)
  if specials: elements = st.integers(0, 7).flatmap(lambda i: st.sampled_from(SPECIALS) if i == 0 else st.integers(lo, hi).map(float))
  if np.dtype(dtype).kind in "iub":
    return hnp.arrays(np.int64, shape, elements=st.integers(lo, hi)).map(lambda a: a.astype(dtype))
  return hnp.arrays(np.float32, shape, elements=elements).map(lambda a: a.astype(dtype))


def valid(fn, *args):
  """Whether JAX accepts this configuration at all (hypothesis draws some it rejects, e.g. too much negative padding)."""
  try: jax.eval_shape(fn, *args)
  except (ValueError, TypeError): return False
  return True


def place(canonical_shape, spec):
  """The array shape whose axis spec[k] has the size of canonical axis k."""
  shape = [0] * len(spec)
  for k, axis in enumerate(spec): shape[axis] = canonical_shape[k]
  return tuple(shape)


# ---- conv_general_dilated --------------------------------------------------------------------------------------

@st.composite
def conv_case(draw):
  nsp = draw(st.integers(1, 3))
  grouping = draw(st.sampled_from(["none", "feature", "batch"]))
  g = draw(st.integers(2, 3)) if grouping != "none" else 1
  fgc, bgc = (g, 1) if grouping == "feature" else (1, g) if grouping == "batch" else (1, 1)
  n = draw(st.integers(1, 2)) * bgc   # empty batches: test_conv_degenerate_shapes
  cin = draw(st.integers(1, 2)) * fgc
  cout = draw(st.integers(1, 2)) * g
  side = 5 if nsp < 3 else 3
  spatial = [draw(st.integers(1, side)) for _ in range(nsp)]
  window = [draw(st.integers(1, 3)) for _ in range(nsp)]
  params = dict(window_strides=tuple(draw(st.integers(1, 3)) for _ in range(nsp)),
                padding=tuple((draw(st.integers(-1, 2)), draw(st.integers(-1, 2))) for _ in range(nsp)),
                lhs_dilation=tuple(draw(st.integers(1, 3)) for _ in range(nsp)),
                rhs_dilation=tuple(draw(st.integers(1, 2)) for _ in range(nsp)),
                feature_group_count=fgc, batch_group_count=bgc)
  specs = [tuple(draw(st.permutations(range(nsp + 2)))) for _ in range(3)]
  params["dimension_numbers"] = lax.ConvDimensionNumbers(*specs)
  dtype = draw(st.sampled_from(FLOATS))
  lhs = draw(small(dtype, place((n, cin, *spatial), specs[0]), specials=True))
  rhs = draw(small(dtype, place((cout, cin // fgc, *window), specs[1])))
  return lhs, rhs, params


@given(conv_case())
def test_conv_general_dilated(case):
  lhs, rhs, params = case
  f = lambda lhs, rhs: lax.conv_general_dilated(lhs, rhs, **params)
  assume(valid(f, lhs, rhs))
  check(f, lhs, rhs)


def test_conv_random_floats_with_tolerance():
  rng = np.random.default_rng(0)
  x, w = rng.standard_normal((2, 9, 8, 6), np.float32), rng.standard_normal((3, 3, 3, 8), np.float32)
  check(lambda x, w: lax.conv_general_dilated(x, w, (2, 1), [(1, -1), (2, 0)], (1, 2), (2, 1), ("NHWC", "HWIO", "NCHW"),
                                              feature_group_count=2), x, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype,preferred", [(np.float16, np.float32), (jnp.bfloat16, np.float32), (np.int8, np.int32),
                                             (np.int8, None), (np.int32, None), (np.uint8, np.uint32), (np.bool_, None)])
def test_conv_dtypes_and_preferred_element_type(dtype, preferred):
  """Integers wrap in their own width (int8 sums of products up to 99*99 go mod 256), halves accumulate in float32,
  bool is an OR of ANDs."""
  rng = np.random.default_rng(1)
  hi = 2 if dtype == np.bool_ else 100
  x, w = rng.integers(0, hi, (2, 3, 6, 5)).astype(dtype), rng.integers(0, hi, (4, 3, 3, 2)).astype(dtype)
  check(lambda x, w: lax.conv_general_dilated(x, w, (1, 2), "SAME", preferred_element_type=preferred), x, w)


def test_conv_half_accumulates_in_float32():
  # 1 + 3 * 2**-11 rounds to 1 step by step in float16; XLA (and tinyjax) accumulate in float32 and round once
  x = np.array([1, 2 ** -11, 2 ** -11, 2 ** -11], np.float16).reshape(1, 1, 4)
  got, want = check(lambda x, w: lax.conv_general_dilated(x, w, (1,), "VALID"), x, np.ones((1, 1, 4), np.float16))
  assert float(want.ravel()[0]) != 1.0


@pytest.mark.parametrize("lhs_shape,rhs_shape,padding", [
  ((0, 3, 5, 5), (4, 3, 2, 2), "VALID"),       # empty batch
  ((2, 3, 5, 5), (0, 3, 2, 2), "VALID"),       # no output features
  ((2, 0, 5, 5), (4, 0, 2, 2), "VALID"),       # nothing to contract: zeros
  ((2, 3, 0, 5), (4, 3, 2, 2), ((2, 1), (0, 0))),   # only padding under the window: zeros
  ((2, 3, 2, 5), (4, 3, 3, 2), "VALID"),       # window wider than the input: no outputs
  ((1, 1, 3, 3), (1, 1, 1, 1), ((-5, 4), (0, 0))),  # cropping past the input into the high padding
])
def test_conv_degenerate_shapes(lhs_shape, rhs_shape, padding):
  rng = np.random.default_rng(2)
  x, w = rng.standard_normal(lhs_shape).astype(np.float32), rng.standard_normal(rhs_shape).astype(np.float32)
  check(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), padding), x, w)


def test_conv_transpose_and_3d():
  rng = np.random.default_rng(3)
  x, w = rng.integers(-3, 4, (2, 5, 4, 3)).astype(np.float32), rng.integers(-3, 4, (3, 3, 3, 2)).astype(np.float32)
  check(lambda x, w: lax.conv_transpose(x, w, (2, 3), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")), x, w)
  x3, w3 = rng.integers(-3, 4, (1, 2, 4, 5, 3)).astype(np.float32), rng.integers(-3, 4, (3, 2, 2, 3, 2)).astype(np.float32)
  check(lambda x, w: lax.conv_general_dilated(x, w, (1, 2, 1), "SAME", rhs_dilation=(1, 1, 2)), x3, w3)


class ConvNet(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.Conv(8, (3, 3), strides=(2, 2), padding="SAME")(x)
    x = nn.relu(x)
    x = nn.Conv(8, (3, 3), feature_group_count=4, kernel_dilation=(2, 1), padding=((1, 2), (0, 1)))(x)
    x = nn.max_pool(x, (2, 2), strides=(1, 1), padding="SAME")
    x = nn.ConvTranspose(4, (3, 3), strides=(2, 2))(x)
    return nn.Conv(2, (1,), padding="VALID")(x.reshape(x.shape[0], -1, x.shape[-1]))


def test_flax_convnet_forward_and_grads():
  """jax.grad through grouped, strided, dilated and transposed convs emits batch_group_count and lhs_dilation convs,
  and max_pool's gradient emits select_and_scatter_add."""
  model, rng = ConvNet(), np.random.default_rng(4)
  x = rng.standard_normal((2, 9, 8, 4)).astype(np.float32)
  params = model.init(jax.random.key(0), x)
  jaxpr = str(jax.make_jaxpr(jax.grad(lambda p, x: model.apply(p, x).sum(), argnums=(0, 1)))(params, x))
  assert "batch_group_count=4" in jaxpr and "lhs_dilation=(2, 2)" in jaxpr and "select_and_scatter_add" in jaxpr
  check(model.apply, params, x, rtol=1e-4, atol=1e-5)
  loss = lambda p, x: jnp.sum(model.apply(p, x) ** 2)
  check(jax.grad(loss, argnums=(0, 1)), params, x, rtol=1e-3, atol=1e-4)


# ---- reduce_window ---------------------------------------------------------------------------------------------

@st.composite
def window_case(draw, max_rank=4, dilate_window=True, min_pad=-1, min_side=1):
  rank = draw(st.integers(1, max_rank))
  shape = tuple(draw(st.integers(min_side, 5 if rank < 3 else 3)) for _ in range(rank))
  params = dict(window_dimensions=tuple(draw(st.integers(1, 3)) for _ in range(rank)),
                window_strides=tuple(draw(st.integers(1, 3)) for _ in range(rank)),
                padding=tuple((draw(st.integers(min_pad, 2)), draw(st.integers(min_pad, 2))) for _ in range(rank)),
                base_dilation=tuple(draw(st.integers(1, 2)) for _ in range(rank)),
                window_dilation=tuple(draw(st.integers(1, 2)) if dilate_window else 1 for _ in range(rank)))
  return shape, params


MONOIDS = {"sum": (lax.add, lambda dt: 0), "max": (lax.max, lambda dt: -np.inf if dt.kind == "f" else (False if dt.kind == "b" else np.iinfo(dt).min)),
           "min": (lax.min, lambda dt: np.inf if dt.kind == "f" else (True if dt.kind == "b" else np.iinfo(dt).max))}


@given(window_case(), st.sampled_from(list(MONOIDS)), st.sampled_from(FLOATS + [np.int32, np.int8, np.uint8, np.bool_]), st.data())
def test_reduce_window_monoids(case, kind, dtype, data):
  """lax.reduce_window with the monoid identity as init emits reduce_window_{sum,max,min}."""
  shape, params = case
  assume(not (kind == "sum" and dtype == np.bool_))
  dt = np.dtype(dtype)
  full_range = dt.kind in "iu" and data.draw(st.booleans())   # integer sums wrap
  lo, hi = (np.iinfo(dt).min, np.iinfo(dt).max) if full_range else (0, 1) if dt.kind == "b" else (-4, 4) if dt.kind != "u" else (0, 8)
  x = data.draw(small(dtype, shape, lo, hi, specials=True))
  op, identity = MONOIDS[kind]
  f = lambda x: lax.reduce_window(x, np.array(identity(dt), dt), op, **params)
  assume(valid(f, x))
  assert f"reduce_window_{kind}" in str(jax.make_jaxpr(f)(x))
  check(f, x)


@given(window_case(max_rank=3), st.sampled_from([(lax.add, 3.0), (lax.mul, 2.0), (lax.max, 0.5), (lax.min, -1.0)]),
       st.sampled_from(FLOATS + [np.int32]), st.data())
def test_reduce_window_generic(case, op_init, dtype, data):
  """A traced init value forces the generic reduce_window primitive: XLA folds the init in once per window."""
  shape, params = case
  op, init = op_init
  lo, hi = (-1, 2) if op is lax.mul else (-4, 4)   # products stay far from overflow in every dtype
  x = data.draw(small(dtype, shape, lo, hi, specials=op is not lax.mul))
  init = np.array(init, dtype)
  f = lambda x, init: lax.reduce_window(x, init, op, **params)
  assume(valid(f, x, init))
  assert "reduce_window[" in str(jax.make_jaxpr(f)(x, init))
  check(f, x, init)


def test_reduce_window_generic_bool_and_or():
  x = np.array([[True, False, True], [True, True, False]])
  for op, init in [(lax.bitwise_and, True), (lax.bitwise_or, False)]:
    check(lambda x, i: lax.reduce_window(x, i, op, (1, 2), (1, 1), ((0, 0), (1, 1))), x, np.array(init))


def test_rank_0_windows():
  x = np.float32(3)
  check(lambda x: lax.reduce_window(x, np.float32(0), lax.add, (), (), ()), x)
  check(lambda x, i: (lax.reduce_window(x, i, lax.mul, (), (), ()), lax.reduce_window(x, i, lax.max, (), (), ())), x, np.float32(5))
  for x in (np.float32(3), np.float32(-np.inf), np.float32(np.nan)):   # (XLA aborts compiling the rank-0 VJP)
    check(lambda x, t: jax.jvp(lambda x: lax.reduce_window(x, -np.inf, lax.max, (), (), ()), (x,), (t,)), x, np.float32(2))


def argmax_body(a, b):
  """The larger value, NaN counting as the largest, the smaller index on ties (associative and commutative)."""
  (av, ai), (bv, bi) = a, b
  a_nan, b_nan = av != av, bv != bv
  pick_a = (av > bv) | (a_nan & ~b_nan) | (((av == bv) | (a_nan & b_nan)) & (ai < bi))
  return lax.select(pick_a, av, bv), lax.select(pick_a, ai, bi)


@given(window_case(max_rank=3), st.sampled_from(FLOATS + [np.int32, np.int8, np.uint8]), st.data())
def test_reduce_window_variadic_argmax(case, dtype, data):
  """(value, index) pairs: the argmax of every window, ties (small integers) to the first index, NaN the largest;
  padding and base-dilation holes are skipped, so a window of only padding gives the inits."""
  shape, params = case
  dt = np.dtype(dtype)
  x = data.draw(small(dtype, shape, 0 if dt.kind == "u" else -2, 2, specials=True))
  low = np.array(-np.inf if jnp.issubdtype(dt, jnp.floating) else np.iinfo(dt).min, dt)
  def f(x):
    index = jnp.arange(x.size, dtype=jnp.int32).reshape(x.shape)
    return lax.reduce_window((x, index), (low, np.int32(-1)), argmax_body, **params)
  assume(valid(f, x))
  check(f, x)


@given(window_case(max_rank=3), st.sampled_from([np.int32, np.float32]), st.data())
def test_reduce_window_any_body_in_xla_order(case, dtype, data):
  """XLA's CPU loop is `acc = body(acc, x)` over each window's real taps in row-major order, and so is the fold: a
  body that is not associative (2*acc - x, a + x*x) or commutative matches exactly. int32 wraps."""
  shape, params = case
  x = data.draw(small(dtype, shape, -3, 3))
  init = np.array(data.draw(st.integers(-2, 2)), dtype)
  body = data.draw(st.sampled_from([lambda a, b: 2 * a - b, lambda a, b: a + b * b]))
  f = lambda x, init: lax.reduce_window(x, init, body, **params)
  assume(valid(f, x, init))
  check(f, x, init)


@given(window_case(max_rank=3), st.data())
def test_reduce_window_operands_of_different_dtypes(case, data):
  """Three operands of three dtypes: per-operand monoids (sum of bf16, max of int16, or of bools: the fast path) and
  one body mixing them (a count of the taps whose key is odd, the generic fold)."""
  shape, params = case
  a = data.draw(small(jnp.bfloat16, shape))
  b = data.draw(small(np.int16, shape, -100, 100))
  c = data.draw(small(np.bool_, shape, 0, 1))
  monoids = lambda x, y: (x[0] + y[0], lax.max(x[1], y[1]), x[2] | y[2])
  mixed = lambda x, y: (x[0] + y[0], x[1] + (y[1] & 1).astype(jnp.int16), x[2] ^ y[2])
  inits = (jnp.bfloat16(0), np.int16(np.iinfo(np.int16).min), np.False_)
  f = lambda a, b, c: (lax.reduce_window((a, b, c), inits, monoids, **params),
                       lax.reduce_window((a, b, c), (jnp.bfloat16(0), np.int16(0), np.False_), mixed, **params))
  assume(valid(f, a, b, c))
  check(f, a, b, c)


@pytest.mark.parametrize("op,init", [(lax.bitwise_and, -1), (lax.bitwise_or, 0), (lax.bitwise_xor, 0)])
def test_reduce_window_generic_bitwise_integers(op, init):
  x = np.random.default_rng(0).integers(-1000, 1000, (4, 5)).astype(np.int32)
  check(lambda x, i: lax.reduce_window(x, i, op, (2, 2), (1, 2), ((1, 0), (0, 1)), (1, 2), (2, 1)), x, np.int32(init))


@pytest.mark.parametrize("taps", [33, 256, 300])
def test_reduce_window_long_windows(taps):
  """Up to WINDOW_SEQUENTIAL_MAX taps the fold is sequential (any body matches XLA); beyond it a tree, which
  matches for an associative body."""
  x = np.random.default_rng(taps).integers(-3, 4, (2, taps + 4)).astype(np.float32)
  body = (lambda a, b: a + b * b) if taps <= 256 else (lambda a, b: lax.max(a, b) + 0 * b)
  check(lambda x: lax.reduce_window(x, np.float32(0), body, (1, taps), (1, 3), ((0, 0), (1, 2))), x)


def test_reduce_window_half_sum_accumulates_in_float32():
  """Documented difference: XLA's CPU loop rounds float16 after every addition, tinyjax once at the end."""
  x = np.array([1, 2 ** -11, 2 ** -11, 2 ** -11], np.float16)
  got = tiny(lambda x: lax.reduce_window(x, np.float16(0), lax.add, (4,), (1,), "VALID"))(x)
  assert got.numpy()[0] == np.float16(1 + 3 * 2 ** -11)


def pools(x, count_include_pad=True):
  return (nn.max_pool(x, (3, 3), strides=(2, 2), padding="SAME"),
          nn.avg_pool(x, (2, 3), strides=(1, 2), padding=((1, 0), (1, 1)), count_include_pad=count_include_pad),
          min_pool(x, (2, 2), padding="VALID"))


def test_flax_pools_forward_and_max_min_grad():
  rng = np.random.default_rng(5)
  x = rng.integers(-3, 4, (2, 7, 6, 3)).astype(np.float32)   # ties inside windows: the first max gets the gradient
  check(pools, x)
  check(lambda x: pools(x, count_include_pad=False), x)
  ct = [rng.standard_normal(o.shape).astype(np.float32) for o in jax.eval_shape(pools, x)]
  check(jax.grad(lambda x, ct: jnp.vdot(pools(x)[0], ct[0]) + jnp.vdot(pools(x)[2], ct[2])), x, ct)


def test_flax_avg_pool_grad():   # its VJP emits `pad` with numpy-int padding_config
  rng = np.random.default_rng(6)
  x = rng.integers(-3, 4, (2, 7, 6, 3)).astype(np.float32)
  ct = rng.standard_normal(jax.eval_shape(pools, x)[1].shape).astype(np.float32)
  for include in (True, False):
    check(jax.grad(lambda x, ct: jnp.vdot(pools(x, include)[1], ct)), x, ct)


# ---- select_and_scatter_add / select_and_gather_add ------------------------------------------------------------

@given(window_case(dilate_window=False, min_pad=0), st.sampled_from([(lax.max, -np.inf), (lax.min, np.inf)]), st.sampled_from(FLOATS), st.data())
def test_select_and_scatter_add(case, op_init, dtype, data):
  """The VJP of reduce_window max/min: ties (small integers) go to the first extreme in window order, NaN follows
  XLA's select loop, padding (the select identity) can win and then drops its value; base dilation comes through
  pad/slice around it. (JAX's CPU lowering cannot take negative padding here.)"""
  shape, params = case
  op, init = op_init
  x = data.draw(small(dtype, shape, -2, 2, specials=True))
  pool = lambda x: lax.reduce_window(x, np.array(init, dtype), op, **params)
  assume(valid(pool, x))
  ct = data.draw(small(dtype, jax.eval_shape(pool, x).shape, 1, 4))
  f = jax.grad(lambda x, ct: jnp.vdot(pool(x), ct).astype(jnp.float32))
  assert "select_and_scatter_add" in str(jax.make_jaxpr(f)(x, ct))
  check(f, x, ct)


@given(window_case(), st.sampled_from([(lax.max, -np.inf), (lax.min, np.inf)]), st.sampled_from(FLOATS), st.data())
def test_select_and_gather_add(case, op_init, dtype, data):
  """The JVP of reduce_window max/min: the tangent of the selected tap; windows of only -inf (max) give 0."""
  shape, params = case
  op, init = op_init
  x = data.draw(small(dtype, shape, -2, 2, specials=True))
  t = data.draw(small(dtype, shape, 1, 4))
  pool = lambda x: lax.reduce_window(x, np.array(init, dtype), op, **params)
  assume(valid(pool, x))
  f = lambda x, t: jax.jvp(pool, (x,), (t,))
  assert "select_and_gather_add" in str(jax.make_jaxpr(f)(x, t))
  check(f, x, t)


@given(window_case(dilate_window=False, min_pad=0), st.sampled_from(["ge", "gt", "le", "lt", "ge_or_nan"]),
       st.sampled_from(FLOATS), st.data())
def test_select_and_scatter(case, select, dtype, data):
  """The generic select_and_scatter (JAX emits it only inside its lowering of select_and_scatter_add; reached here
  through the internal _select_and_scatter): XLA's select loop with any select body (ties, NaN), then an add of
  each window's source value into init at the selected tap. No padding (XLA CPU cannot take it either)."""
  shape, params = case
  window = dict(window_dimensions=params["window_dimensions"], window_strides=params["window_strides"],
                padding=tuple((0, 0) for _ in shape))
  x = data.draw(small(dtype, shape, -2, 2, specials=True))
  bodies = {"ge": lax.ge, "gt": lax.gt, "le": lax.le, "lt": lax.lt, "ge_or_nan": lambda a, b: (a >= b) | (a != a)}
  pool = lambda x: lax.reduce_window(x, np.array(-np.inf, dtype), lax.max, **window)
  assume(valid(pool, x))
  source = data.draw(small(dtype, jax.eval_shape(pool, x).shape, 1, 4))
  init = np.array(data.draw(st.integers(-2, 2)), dtype)
  f = lambda x, s, i: _select_and_scatter(x, bodies[select], window["window_dimensions"], window["window_strides"],
                                          window["padding"], s, i, lax.add)
  check(f, x, source, init)


def test_select_and_scatter_add_nan_and_padding_by_hand():
  # XLA's loop: cur=first valid tap; `if not cur >= e: cur = e`. NaN is taken and left at the next tap.
  x = np.array([[3, np.nan, 1, 3], [np.nan, 2, 2, np.nan], [-np.inf, -np.inf, 5, np.nan]], np.float32)
  f = jax.grad(lambda x: lax.reduce_window(x, -np.inf, lax.max, (1, 3), (1, 1), ((0, 0), (1, 1))).sum())
  got, want = check(f, x)


def test_select_and_scatter_add_positions_no_window_covers():
  """Base dilation 2 with stride 2 puts every window on holes and padding: the gradient is exactly 0 there. Fused with
  the slice that follows, tinygrad emitted that reduction with an uninitialized accumulator, so dirty the allocator
  first to make stale memory show up."""
  stale = [Tensor.full((n,), np.nan).contiguous().realize() for n in (4, 6, 8, 9, 12, 16)]
  del stale
  x = np.full((1, 2, 2), np.nan, np.float32)
  pool = lambda x: lax.reduce_window(x, -np.inf, lax.max, (1, 2, 1), (1, 1, 2), ((0, 0), (0, 0), (1, 1)), (1, 1, 2))
  check(jax.grad(lambda x, ct: jnp.vdot(pool(x), ct)), x, np.ones((1, 1, 3), np.float32))


def test_nan_made_upstream_by_max():
  """NaN that an earlier rule wrote as a constant (lax.max's NaN propagation) must still count as NaN in windows:
  tinygrad folds `isnan` of a NaN constant to False, so the rules test NaN by bit pattern."""
  a = np.array([[np.nan, 1, 2, np.nan], [3, 0, np.nan, 1]], np.float32)
  b = np.array([[0, 2, 1, -1], [1, np.nan, 0, 0]], np.float32)
  for padding in (((0, 0), (0, 0)), ((0, 0), (1, 0))):   # without padding the windows view lax.max's graph directly
    window = dict(window_dimensions=(1, 2), window_strides=(1, 1), padding=padding)
    pool_max = lambda x: lax.reduce_window(x, -np.inf, lax.max, **window)
    check(lambda a, b: pool_max(lax.max(a, b)), a, b)
    check(lambda a, b, i: lax.reduce_window(lax.max(a, b), i, lax.max, **window), a, b, np.float32(5))
    check(jax.grad(lambda a, b: pool_max(lax.max(a, b)).sum(), argnums=(0, 1)), a, b)
    check(lambda a, b, t: jax.jvp(lambda a: pool_max(lax.max(a, b)), (a,), (t,)), a, b, np.ones_like(a))


def test_select_and_scatter_add_unsupported_raise():
  """jax.grad never emits these; JAX's own CPU lowering cannot slice negative padding back either."""
  f = lambda s, o: _select_and_scatter_add(s, o, lax.ge_p, (2,), (1,), ((0, 0),))
  with pytest.raises(NotImplementedError, match="non-float"):
    tiny(f)(np.ones(2, np.int32), np.arange(3, dtype=np.int32))
  g = lambda s, o: _select_and_scatter_add(s, o, lax.ge_p, (2,), (1,), ((-1, 1),))
  with pytest.raises(NotImplementedError, match="negative padding"):
    tiny(g)(np.ones(3, np.float32), np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("operand, padding, kernels", [(jnp.tanh, "VALID", 2), (lambda x: x * 2 + 1, "VALID", 1),
                                                      (jnp.tanh, "SAME", 2), (lambda x: x * 2 + 1, "SAME", 2)])
def test_conv_operand_with_transcendentals_is_computed_once(operand, padding, kernels):
  """As for matmuls (test_reductions): an input computed with transcendentals gets a kernel of its own rather than
  being recomputed for every output channel inside the convolution's loop; a padded input's copy is that kernel."""
  fn = lambda x, w: lax.conv_general_dilated(operand(x), w, (1, 1), padding)
  rng = np.random.default_rng(0)
  x, w = rng.normal(size=(2, 3, 8, 8)).astype(np.float32), rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
  check(fn, x, w, rtol=1e-5, atol=1e-5)
  assert len(tinyjax.kernels(tiny(fn), x, w)) == kernels   # (launches per call, a device graph's opened up)
