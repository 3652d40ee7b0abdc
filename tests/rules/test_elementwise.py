"""Parity with jax.jit (XLA's CPU backend) for every elementwise rule in tinyjax/rules/elementwise.py.

Each primitive is called through jax.lax, so the Jaxpr holds the primitive itself (a few jnp functions at the end
check the wrappers users call). Every test compares with tests/parity.py: dtype-exact, NaN positions exact, integers
bit-exact, floats within parity.TOLERANCE unless a test says why not.

Inputs, per primitive and dtype:
- `test_*_special`: one deterministic array of N = 256 values: the special values (NaN, ±inf, ±0, ±max, the smallest
  normal, INT_MIN, -1, ...), for binary primitives all pairs of 16 of them, the rest random values over many binades.
- `test_*` (hypothesis): N-element arrays from parity.arrays (floats include NaN, ±inf and -0.0).
- `test_shapes` (hypothesis, per dtype): parity.shapes() (scalars, 0-size, up to 3 dims) through a few rules of each kind.
Building a program (tracing, tinygrad's graph rewrites, kernel compiles) costs far more than running one, so each
function gets one tiny wrapper for the whole session (tiny_of) and the per-primitive tests keep to one shape: their
hypothesis examples replay the program the special-value test captured, which tests replay with new data as well.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax
from tinygrad import Tensor, dtypes as tg

from parity import FLOATS, INTS, SIGNED, UNSIGNED, arrays, assert_same, shapes
from tinyjax import tiny
from tinyjax.capture import tensor_to_numpy

F32, F16, BF16 = np.dtype(np.float32), np.dtype(np.float16), np.dtype(jnp.bfloat16)
F64, I64, U64 = np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.uint64)
BOOL = np.dtype(np.bool_)
N = 256
# conftest's profile, and: float16 arrays of N elements make hypothesis filter out many draws (it excludes subnormals)
SETTINGS = settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.filter_too_much])


def given_data(test):
  """@given(data=st.data()) under conftest's profile."""
  return SETTINGS(given(data=st.data())(test))


# ---- running and comparing -------------------------------------------------------------------------------------

def host(x):
  """A tiny output as numpy with JAX's dtype (tinygrad's Tensor.numpy() would turn bfloat16 into float32)."""
  return tensor_to_numpy(x) if isinstance(x, Tensor) else x


@functools.cache
def tiny_of(fn):
  """One tiny wrapper per function, so the hypothesis examples of a test replay the programs (one per signature)
  already captured instead of tracing and capturing again: an order of magnitude faster, and it tests replay too."""
  return tiny(fn)


def check(fn, *args, rtol=None, atol=None):
  """parity.check, with bfloat16 outputs read as bfloat16, and the sign of exact zeros compared too."""
  want = jax.jit(fn)(*args)
  got = jax.tree_util.tree_map(host, tiny_of(fn)(*args))
  assert_same(got, want, rtol, atol)
  for i, (g, w) in enumerate(zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want))):
    g, w = np.asarray(g.numpy() if isinstance(g, Tensor) else g), np.asarray(w)
    if is_float(w.dtype):
      zeros = (g == 0) & (w == 0)
      np.testing.assert_array_equal(np.signbit(g[zeros]), np.signbit(w[zeros]), err_msg=f"output[{i}]: sign of zero")


@functools.cache
def compiles(dtype) -> bool:
  """Whether the default tinygrad device can run this dtype: clang < 17 on CPU has no __bf16, which tinygrad's C
  renderer needs for every bfloat16 buffer (the system clang 14 here; CC=clang-19 works)."""
  try:
    with jax.enable_x64(np.dtype(dtype).itemsize == 8):
      tiny(lambda x: x + x)(np.ones(4, dtype))
    return True
  except Exception:
    return False


def dtype_param(dtype):
  """A dtype as a pytest param, skipped (with the reason) where the device cannot compile it."""
  dtype = np.dtype(dtype)
  return pytest.param(dtype, id=str(dtype), marks=pytest.mark.skipif(not compiles(dtype), reason=(
      f"the tinygrad device cannot compile {dtype} kernels (on CPU clang >= 17 is needed for __bf16: e.g. CC=clang-19)")))


# (primitive, dtype) -> why it is skipped
SKIP = {("integer_pow0", BF16): "a kernel that only stores a bfloat16 constant hangs clang-19 -march=native (x86 with "
                                "AVX512-BF16); the rule itself is full_like(x, 1)",
        ("(x/y)/z", F16): "XLA rewrites (x/y)/z to x/(y*z), and that float16 product overflows (60000/0.5/60001 is 2 "
                          "under jax.jit, inf as written); tinyjax divides float16 in float32, one rounding per op"}


def params(prims, dtypes):
  """pytest params (name, function, dtype) for every primitive and dtype; prims maps name -> function."""
  return [pytest.param(name, f, np.dtype(d), id=f"{name}-{np.dtype(d)}", marks=dtype_param(d).marks + (
          (pytest.mark.skip(reason=SKIP[name, np.dtype(d)]),) if (name, np.dtype(d)) in SKIP else ()))
          for name, f in prims.items() for d in dtypes]


def is_float(dtype) -> bool: return jnp.issubdtype(dtype, jnp.floating)


# ---- deterministic inputs: special values plus random ones, N in all -------------------------------------------

def float_specials(dtype):
  """16 values for the pairwise grid: zeros, ones, halves, NaN, infinities, the largest and the smallest normal."""
  fi = jnp.finfo(dtype)
  vals = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, -7.25, 1e-3, 100.0, math.nan, math.inf, -math.inf, fi.max, -fi.max, fi.tiny]
  return np.array(vals, dtype=np.float64).astype(dtype)


def int_specials(dtype):
  info = np.iinfo(dtype)
  if info.min < 0:
    vals = [0, 1, -1, 2, -2, 3, 7, -8, 100, info.min, info.min + 1, info.max, info.max - 1, info.max // 2, info.min // 2, 5]
  else:
    vals = [0, 1, 2, 3, 7, 8, 100, 127, 128, 5, info.max, info.max - 1, info.max // 2, info.max // 2 + 1, 6, 9]
  return np.array([min(max(v, info.min), info.max) for v in vals], dtype=object).astype(dtype)


def specials(dtype):
  dtype = np.dtype(dtype)
  if dtype == BOOL: return np.array([False, True] * 8)
  return float_specials(dtype) if is_float(dtype) else int_specials(dtype)


def random_values(dtype, n, seed=0):
  rng = np.random.default_rng(seed)
  dtype = np.dtype(dtype)
  if dtype == BOOL: return rng.integers(0, 2, n).astype(bool)
  if is_float(dtype):
    k = n // 4
    with np.errstate(over="ignore"):
      return np.concatenate([rng.normal(size=k) * 3, rng.uniform(-1, 1, k), rng.uniform(-100, 100, k),
                             np.exp(rng.uniform(-30, 90, n - 3 * k)) * rng.choice([-1, 1], n - 3 * k)]).astype(dtype)
  info = np.iinfo(dtype)
  wide = rng.integers(info.min, info.max, n, dtype=np.uint64 if dtype == U64 else np.int64, endpoint=True)
  small = rng.integers(-40, 40, n).clip(info.min, info.max)
  return np.where(rng.integers(0, 2, n) == 0, wide, small.astype(wide.dtype)).astype(dtype)


def unary_values(dtype):
  """N values: the specials, more of them for floats (±0.5, ±1.5, 2.5, near pi/2, where exp overflows, ...), random."""
  dtype = np.dtype(dtype)
  extra = [-0.5, 1.5, 2.5, -3.5, 0.1, 0.7, 1.5707964, 3.1415927, 4.712389, 28.274334, 88.0, 89.0, -104.0, 1e4, 65504.0, 65520.0,
           1e-30, 3e38, 255.5, -128.5, 2147483520.0, 2.0 ** 31, -2.0 ** 31 - 1, 2.0 ** 32, 2.0 ** 63, 2.0 ** 64] if is_float(dtype) else []
  with np.errstate(over="ignore"):
    head = np.concatenate([specials(dtype), np.array(extra, dtype=np.float64).astype(dtype)]) if extra else specials(dtype)
  return np.concatenate([head, random_values(dtype, N - len(head))])


def pair_grid(dtype):
  """All N = 16 x 16 pairs of the special values."""
  s = specials(dtype)
  x, y = np.meshgrid(s, s)
  return x.ravel(), y.ravel()


def drawn(data, dtype, shape, **kw):
  if np.dtype(dtype) == BOOL: return data.draw(arrays(BOOL, shape))
  return data.draw(arrays(dtype, shape, **kw))


# ---- float primitives ------------------------------------------------------------------------------------------

UNARY_FLOAT = {
  "neg": lax.neg, "abs": lax.abs, "sign": lax.sign, "square": lax.square, "exp": lax.exp, "exp2": lax.exp2,
  "log": lax.log, "log1p": lax.log1p, "expm1": lax.expm1, "sqrt": lax.sqrt, "rsqrt": lax.rsqrt, "cbrt": lax.cbrt,
  "tanh": lax.tanh, "logistic": lax.logistic, "sin": lax.sin, "cos": lax.cos, "tan": lax.tan, "asin": lax.asin,
  "acos": lax.acos, "atan": lax.atan, "sinh": lax.sinh, "cosh": lax.cosh, "asinh": lax.asinh, "acosh": lax.acosh,
  "atanh": lax.atanh, "floor": lax.floor, "ceil": lax.ceil,
  "round_afz": lambda x: lax.round(x, lax.RoundingMethod.AWAY_FROM_ZERO),
  "round_even": lambda x: lax.round(x, lax.RoundingMethod.TO_NEAREST_EVEN), "is_finite": lax.is_finite,
  "integer_pow": lambda x: [lax.integer_pow(x, y) for y in (1, 2, 3, 5, -1, -2, -3)],
  "integer_pow0": lambda x: lax.integer_pow(x, 0),
}
BINARY_FLOAT = {
  "add": lax.add, "sub": lax.sub, "mul": lax.mul, "div": lax.div, "rem": lax.rem, "max": lax.max, "min": lax.min,
  "pow": lax.pow, "atan2": lax.atan2, "eq": lax.eq, "ne": lax.ne, "lt": lax.lt, "le": lax.le, "gt": lax.gt, "ge": lax.ge,
}
# XLA's float16 expm1 is computed in float16 by its own expansion, up to ~3 ulp from the float32 result rounded (which
# tinyjax computes); parity's f16 tolerance (2e-3) is 2 ulp at the bottom of a binade.
TOLERANCES = {("expm1", F16): dict(rtol=4e-3)}


def tolerance(name, dtype): return TOLERANCES.get((name, np.dtype(dtype)), {})


@pytest.mark.parametrize("name, fn, dtype", params(UNARY_FLOAT, FLOATS))
def test_unary_float_special(name, fn, dtype):
  check(fn, unary_values(dtype), **tolerance(name, dtype))


@pytest.mark.parametrize("name, fn, dtype", params(UNARY_FLOAT, FLOATS))
@given_data
def test_unary_float(name, fn, dtype, data):
  check(fn, drawn(data, dtype, (N,)), **tolerance(name, dtype))


@pytest.mark.parametrize("name, fn, dtype", params(BINARY_FLOAT, FLOATS))
def test_binary_float_special(name, fn, dtype):
  check(fn, *pair_grid(dtype))


@pytest.mark.parametrize("name, fn, dtype", params(BINARY_FLOAT, FLOATS))
@given_data
def test_binary_float(name, fn, dtype, data):
  shape = (N,)
  check(fn, drawn(data, dtype, shape), drawn(data, dtype, shape))


# Expressions that tinygrad's algebraic rewrites (written for index math) changed on floats until tinyjax/tinygrad_patches/float_rules.py made
# them decline: x*0 -> 0 (NaN*0 gave 0), x/x -> 1, (x*y)/y -> x, x/(1+x) -> 1-1/(1+x) (1e-10 gave 0), ...; and some that
# XLA rewrites the same way, so parity needs them kept: (x/y)/z -> x/(y*z), (x+c1)+c2 -> x+(c1+c2).
REWRITTEN = {
  "x*0": lambda x, y: (x * 0.0, 0.0 * x, x * -0.0, (x + y) * 0.0),
  "x/x": lambda x, y: (x / x, (x + y) / (x + y)),
  "(x*y)/y": lambda x, y: ((x * y) / y, (y * x) / x),
  "x/(1+x)": lambda x, y: (x / (1 + x), x * (y / (1 + x)), x / (1 + x) + y),
  "(x/y)/z": lambda x, y: ((x / y) / (x + 1), (y / 3.0) / x),
  "1/(x*c)": lambda x, y: (1 / (x * x), 1 / (x * x * x), 1 / (x * 3.0)),
  "x*c0+x*c1": lambda x, y: (x * 0.1 + x * 0.7, (y + x * 0.1) + x * 0.7, x + x * 0.3, (y + x) + x * 0.3,
                             (y + x * 0.3) + x, (y + x) + x),
  "consts to the end": lambda x, y: ((x + 1.0) + y, (x * 2.0) * y, (x + 1.0) + 1e-8, (x * 2.0) * 0.5),
  "-(x+y)": lambda x, y: (-(x + y), -(x + 1.0), 0.0 - (x + y), 0.0 - x, -0.0 - x, jnp.minimum(x + y, 1.0)),
}


def rewrite_operands(dtype):
  """Zeros, ones, NaN, infinities and magnitudes in [1e-2, 1e2] (plus 1e-10 and 6e4 for x/(1+x) and overflow): these
  expressions then stay clear of subnormals, which XLA CPU flushes to zero (README, known differences)."""
  vals = np.array([0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, -7.25, 1e-2, 100.0, math.nan, math.inf, -math.inf, 60000.0,
                   1e-10, -1e-10])
  rng = np.random.default_rng(1)
  x, y = np.meshgrid(vals, vals)
  spread = np.exp(rng.uniform(math.log(1e-2), math.log(1e2), (2, N))) * rng.choice([-1, 1], (2, N))
  return np.concatenate([x.ravel(), spread[0]]).astype(dtype), np.concatenate([y.ravel(), spread[1]]).astype(dtype)


def moderate_arrays(dtype, shape):
  magnitude = st.floats(float(np.float32(1e-2)), 1e2, width=32)
  elements = st.one_of(st.sampled_from([0.0, -0.0, 1.0, math.nan, math.inf, -math.inf]), magnitude, magnitude.map(lambda v: -v))
  return hnp.arrays(np.float32, shape, elements=elements).map(lambda a: a.astype(dtype))


@pytest.mark.parametrize("name, fn, dtype", params(REWRITTEN, FLOATS))
def test_unsafe_rewrites_special(name, fn, dtype):
  check(fn, *rewrite_operands(dtype))


@pytest.mark.parametrize("name, fn, dtype", params(REWRITTEN, FLOATS))
@given_data
def test_unsafe_rewrites(name, fn, dtype, data):
  check(fn, data.draw(moderate_arrays(dtype, (32,))), data.draw(moderate_arrays(dtype, (32,))))   # the grid is above


def right_nested(x, y, z): return x + (y + z), x * (y * z), x - (y - z), x * (y / z), (y + z) + x


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in FLOATS])
def test_right_nested_operands(dtype):
  """tinygrad's C-style renderers printed x+(y+z) as x+y+z, which C reads as (x+y)+z (1e8+(-1e8+1) gave 1, not 0)."""
  big = float(jnp.finfo(dtype).max) / 2
  x = np.array([1e8, big, 4096.0, 1.0], np.float64).astype(dtype)
  y = np.array([-1e8, 4.0, -4096.0, 3.0], np.float64).astype(dtype)
  z = np.array([1.0, 0.25, 1.0, 7.0], np.float64).astype(dtype)
  check(right_nested, x, y, z)


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in FLOATS])
@given_data
def test_pow_integer_exponent(dtype, data):
  """pow with an int32 exponent: XLA converts it to the base's dtype first (f16: 70000 becomes inf)."""
  shape = (N,)
  check(lax.pow, drawn(data, dtype, shape), drawn(data, np.int32, shape, min_value=-70000, max_value=70000))


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in FLOATS])
def test_trig_reduction(dtype):
  """sin/cos/tan next to their zeros and poles (k*pi/2 as floats), where only an exact argument reduction keeps
  relative accuracy: tan(float32(pi/2)) = -22877332."""
  k = np.arange(-N // 2, N // 2)
  x = np.where(np.abs(k) < 100, k * (np.pi / 2), k.astype(np.float64) ** 5).astype(dtype)
  check(lambda x: (lax.sin(x), lax.cos(x), lax.tan(x)), x)


# ---- integer and bool primitives -------------------------------------------------------------------------------

UNARY_INT = {
  "neg": lax.neg, "sign": lax.sign, "square": lax.square, "not": lax.bitwise_not, "population_count": lax.population_count,
  "clz": lax.clz, "integer_pow": lambda x: [lax.integer_pow(x, y) for y in (0, 1, 2, 3, 5, 7)],
}
BINARY_INT = {
  "add": lax.add, "sub": lax.sub, "mul": lax.mul, "div": lax.div, "rem": lax.rem, "max": lax.max, "min": lax.min,
  "eq": lax.eq, "ne": lax.ne, "lt": lax.lt, "le": lax.le, "gt": lax.gt, "ge": lax.ge,
  "and": lax.bitwise_and, "or": lax.bitwise_or, "xor": lax.bitwise_xor,
}
SHIFTS = {"shift_left": lax.shift_left, "shift_right_logical": lax.shift_right_logical,
          "shift_right_arithmetic": lax.shift_right_arithmetic}
BOOL_OPS = {"and": lax.bitwise_and, "or": lax.bitwise_or, "xor": lax.bitwise_xor, "max": lax.max, "min": lax.min,
            "eq": lax.eq, "ne": lax.ne, "lt": lax.lt, "le": lax.le, "gt": lax.gt, "ge": lax.ge}


@pytest.mark.parametrize("name, fn, dtype", params({**UNARY_INT, "abs": lax.abs}, SIGNED) + params(UNARY_INT, UNSIGNED))
def test_unary_int_special(name, fn, dtype):
  check(fn, unary_values(dtype))


@pytest.mark.parametrize("name, fn, dtype", params({**UNARY_INT, "abs": lax.abs}, SIGNED) + params(UNARY_INT, UNSIGNED))
@given_data
def test_unary_int(name, fn, dtype, data):
  check(fn, drawn(data, dtype, (N,)))


@pytest.mark.parametrize("name, fn, dtype", params(BINARY_INT, INTS))
def test_binary_int_special(name, fn, dtype):
  check(fn, *pair_grid(dtype))   # includes x/0, x%0, INT_MIN/-1, INT_MIN%-1 and wrap-around


@pytest.mark.parametrize("name, fn, dtype", params(BINARY_INT, INTS))
@given_data
def test_binary_int(name, fn, dtype, data):
  shape = (N,)
  check(fn, drawn(data, dtype, shape), drawn(data, dtype, shape))


def shift_amounts(dtype):
  """16 shift amounts: in range, the bit width and beyond, negative (for unsigned: their wrapped values), the maximum."""
  bits = np.dtype(dtype).itemsize * 8
  info = np.iinfo(dtype)
  vals = [0, 1, 2, 3, 7, bits // 2, bits - 1, bits, bits + 1, 2 * bits, 100, -1, -bits, -(bits + 1), info.max, info.min]
  return np.array([v % 2 ** bits if info.min == 0 else v for v in vals], dtype=object).astype(dtype)


@pytest.mark.parametrize("name, fn, dtype", params(SHIFTS, INTS))
def test_shift_special(name, fn, dtype):
  x, y = np.meshgrid(int_specials(dtype), shift_amounts(dtype))
  check(fn, x.ravel(), y.ravel())


@pytest.mark.parametrize("name, fn, dtype", params(SHIFTS, INTS))
@given_data
def test_shift(name, fn, dtype, data):
  shape, bits = (N,), np.dtype(dtype).itemsize * 8
  lo = max(-2 * bits, int(np.iinfo(dtype).min))
  amount = data.draw(st.one_of(arrays(dtype, shape), arrays(dtype, shape, min_value=lo, max_value=2 * bits)))
  check(fn, drawn(data, dtype, shape), amount)


# Wrap-around read back in the same kernel. tinygrad assumes integer arithmetic never overflows (range analysis with
# unbounded ints, int8/int16 computed in C's int, signed overflow undefined in C), so an overflowing result can look
# right when stored and still be wrong for whatever is fused after it. Each result is probed by ops fused with it.
WRAPPING = {
  "add": lax.add, "sub": lax.sub, "mul": lax.mul, "neg": lambda x, y: lax.neg(x), "square": lambda x, y: lax.square(x),
  "abs": lambda x, y: lax.abs(x) if np.iinfo(x.dtype).min < 0 else x, "pow3": lambda x, y: lax.integer_pow(x, 3),
  "add_self": lambda x, y: x + x + x, "shift_left": lambda x, y: lax.shift_left(x, lax.rem(y & 7, jnp.array(8, y.dtype))),
  **{f"to_{np.dtype(d)}": (lambda d: lambda x, y: lax.convert_element_type(x, d))(d) for d in INTS},
}


def probed(r):
  """r with what must see its wrapped value: comparisons, division, remainder, a sum and a float conversion."""
  d = r.dtype
  one, three, seven = (jnp.array(v, d) for v in (1, 3, 7))
  flags = jnp.stack([r < one, r > one, r == r + one - one]).astype(d)
  return jnp.concatenate([r[None], flags, lax.div(r, three)[None], lax.rem(r, seven)[None]]), r.astype(jnp.float32)


def wrapped_ops(x, y): return {name: probed(op(x, y)) for name, op in WRAPPING.items()}


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in INTS + [I64, U64]])
def test_wrap_around(dtype):
  with jax.enable_x64(dtype.itemsize == 8):
    check(wrapped_ops, *pair_grid(dtype))


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in INTS + [I64, U64]])
def test_wrap_around_of_constants(dtype):
  """The same on constants: tinygrad folds them with unbounded Python ints (uint32 65536*65536 would be 2^32)."""
  info = np.iinfo(dtype)
  pairs = [(info.max, 1), (info.min, -1 if info.min else info.max), (info.max, info.max), (info.max // 2 + 1, 2), (200, 100), (0, 1)]
  with jax.enable_x64(dtype.itemsize == 8):
    check(lambda: [wrapped_ops(*(lax.full((2,), np.array(v).astype(dtype), dtype) for v in p)) for p in pairs])


@pytest.mark.parametrize("fn", [pytest.param(f, id=n) for n, f in {**BOOL_OPS, "not": lambda x, y: lax.bitwise_not(x)}.items()])
def test_bool(fn):
  check(fn, *pair_grid(BOOL))


# ---- selection and clamping ------------------------------------------------------------------------------------

ALL_DTYPES = FLOATS + INTS + [BOOL]


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in ALL_DTYPES])
@given_data
def test_select_n(dtype, data):
  shape = (N,)
  cases = [drawn(data, dtype, shape) for _ in range(3)]
  which_bool = data.draw(arrays(BOOL, shape))
  which_int = data.draw(arrays(np.int32, shape, min_value=0, max_value=2))
  check(select_all, which_bool, which_int, *cases)


def select_all(p, q, a, b, c):
  """select_n with a bool predicate and 1 or 2 cases, an int32 predicate and 3 or 2 cases."""
  return lax.select_n(p, a), lax.select_n(p, a, b), lax.select_n(q, a, b, c), lax.select_n(q.clip(0, 1), a, b)


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in FLOATS + INTS])
@given_data
def test_clamp(dtype, data):
  shape = (N,)
  x, lo, hi = (drawn(data, dtype, shape) for _ in range(3))
  lo0, hi0 = np.sort(np.array([drawn(data, dtype, ()), drawn(data, dtype, ())]))   # scalar bounds (NaN sorts last)
  check(clamp_both, x, lo, hi, lo0, hi0)


def clamp_both(x, lo, hi, lo0, hi0): return lax.clamp(lo, x, hi), lax.clamp(lo0, x, hi0)   # array bounds, scalar bounds


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in FLOATS + INTS])
def test_clamp_special(dtype):
  x, lo = pair_grid(dtype)
  check(lambda x, lo, hi: (lax.clamp(lo, x, hi), lax.clamp(specials(dtype)[4], x, specials(dtype)[9])), x, lo, lo[::-1])


# ---- shapes: scalars, 0-size and several dimensions ------------------------------------------------------------

def float_rules(x, y, p, s):
  return (-x, lax.exp(x), lax.integer_pow(x, -2), lax.round(x), lax.is_finite(x), x + y, x / y, lax.max(x, y), x < y,
          lax.select_n(p, x, y), lax.clamp(s, x, s + 1), lax.convert_element_type(x, np.int32))


def int_rules(x, y, p, s):
  return (-x, ~x, lax.population_count(x), x * y, lax.div(x, y), lax.max(x, y), lax.shift_right_logical(x, y), x == y,
          lax.select_n(p, x, y), lax.clamp(s, x, s + 1), lax.convert_element_type(x, np.float32))


def bool_rules(x, y, p, s):
  return (~x, x & y, x | y, x ^ y, lax.max(x, y), x < y, lax.select_n(p, x, y), lax.convert_element_type(x, np.int8),
          lax.convert_element_type(x, np.float32))


@pytest.mark.parametrize("dtype", [dtype_param(d) for d in ALL_DTYPES])
@given_data
def test_shapes(dtype, data):
  """Scalars, 0-size arrays and up to 3 dimensions (parity.shapes, sides up to 2: each new size compiles new kernels)
  through rules of each kind, with a scalar bound for clamp."""
  shape = data.draw(shapes(max_side=2))
  x, y = drawn(data, dtype, shape), drawn(data, dtype, shape)
  p, s = data.draw(arrays(BOOL, shape)), drawn(data, dtype, ())
  rules = bool_rules if dtype == BOOL else float_rules if is_float(dtype) else int_rules
  check(rules, x, y, p, s)


# ---- conversions -----------------------------------------------------------------------------------------------

CONVERT_PAIRS = [pytest.param(a, b, id=f"{a}->{b}", marks=dtype_param(a).marks + dtype_param(b).marks)
                 for a in ALL_DTYPES for b in ALL_DTYPES if a != b]


@functools.cache
def converter(dst): return lambda x: lax.convert_element_type(x, dst)


@functools.cache
def bitcaster(dst): return lambda x: lax.bitcast_convert_type(x, dst)


@pytest.mark.parametrize("src, dst", CONVERT_PAIRS)
def test_convert_element_type_special(src, dst):
  """Includes float -> int out of range (saturates), NaN (0), ±inf, and values at the integer bounds."""
  check(converter(dst), unary_values(src))


@pytest.mark.parametrize("src, dst", CONVERT_PAIRS)
@given_data
def test_convert_element_type(src, dst, data):
  check(converter(dst), drawn(data, src, (N,)))


SAME_WIDTH = [[F32, np.dtype(np.int32), np.dtype(np.uint32)], [F16, BF16, np.dtype(np.int16), np.dtype(np.uint16)],
              [np.dtype(np.int8), np.dtype(np.uint8)]]
BITCAST_PAIRS = [pytest.param(a, b, id=f"{a}->{b}", marks=dtype_param(a).marks + dtype_param(b).marks)
                 for group in SAME_WIDTH for a in group for b in group if a != b]


@pytest.mark.parametrize("src, dst", BITCAST_PAIRS)
@given_data
def test_bitcast_convert_type(src, dst, data):
  x = np.concatenate([unary_values(src), drawn(data, src, (N,))])
  check(bitcaster(dst), x)


def test_bitcast_convert_type_between_widths_raises():
  with pytest.raises(NotImplementedError):
    tiny(lambda x: lax.bitcast_convert_type(x, jnp.uint16))(np.ones(4, np.float32))


# ---- 64-bit types (jax.enable_x64; a subset) -------------------------------------------------------------------

UNARY_F64 = {n: UNARY_FLOAT[n] for n in ["neg", "abs", "sign", "exp", "exp2", "log", "log1p", "expm1", "sqrt", "rsqrt",
             "cbrt", "tanh", "logistic", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh", "floor",
             "ceil", "round_afz", "round_even", "is_finite", "integer_pow"]}
BINARY_F64 = {n: BINARY_FLOAT[n] for n in ["add", "sub", "mul", "div", "max", "min", "pow", "atan2", "lt", "le", "ne"]}
CONVERT_64 = [pytest.param(a, b, id=f"{a}->{b}", marks=dtype_param(a).marks + dtype_param(b).marks)
              for a in [F64, I64, U64] + ALL_DTYPES for b in [F64, I64, U64] + ALL_DTYPES
              if a != b and (a in (F64, I64, U64) or b in (F64, I64, U64))]


@pytest.fixture
def x64():
  with jax.enable_x64(True):
    yield


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("fn", [pytest.param(f, id=n) for n, f in UNARY_F64.items()])
def test_unary_f64_special(fn):
  check(fn, unary_values(F64))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("fn", [pytest.param(f, id=n) for n, f in BINARY_F64.items()])
def test_binary_f64_special(fn):
  check(fn, *pair_grid(F64))


@pytest.mark.parametrize("name, fn, dtype", params({**BINARY_INT, **SHIFTS}, [I64, U64]))
def test_binary_int64_special(name, fn, dtype):
  with jax.enable_x64(True):
    x, y = pair_grid(dtype) if fn not in SHIFTS.values() else [a.ravel() for a in np.meshgrid(int_specials(dtype), shift_amounts(dtype))]
    check(fn, x, y)


@pytest.mark.parametrize("name, fn, dtype", params(UNARY_INT, [I64, U64]))
def test_unary_int64_special(name, fn, dtype):
  with jax.enable_x64(True):
    check(fn, unary_values(dtype))


@pytest.mark.parametrize("src, dst", CONVERT_64)
def test_convert_element_type_64_special(src, dst):
  with jax.enable_x64(True):
    check(converter(dst), unary_values(src))


@pytest.mark.parametrize("src, dst", [(F64, I64), (F64, U64), (I64, F64), (I64, U64), (U64, F64)])
def test_bitcast_convert_type_64(src, dst):
  with jax.enable_x64(True):
    check(bitcaster(dst), unary_values(src))


@given_data
def test_x64(data):
  """Hypothesis inputs for a few 64-bit primitives at once."""
  with jax.enable_x64(True):
    shape = (N,)
    f, g, i, u = (drawn(data, d, shape) for d in (F64, F64, I64, U64))
    check(some_x64, f, g, i, u)


def some_x64(f, g, i, u):
  return (f + g, f * g, f / g, lax.pow(f, g), lax.exp(f), lax.log1p(f), lax.atan2(f, g), lax.max(f, g),
          lax.convert_element_type(f, np.int64), lax.convert_element_type(f, np.uint64), lax.convert_element_type(i, np.float64),
          lax.convert_element_type(u, np.float32), i * i, lax.div(i, i[::-1] if i.ndim else i), lax.rem(u, u),
          lax.shift_right_arithmetic(i, i), lax.shift_right_logical(u, u), lax.population_count(i), lax.clz(u))


@pytest.mark.parametrize("fn", [pytest.param(lax.sin, id="sin"), pytest.param(lax.cos, id="cos"),
                                pytest.param(lax.tan, id="tan"), pytest.param(lambda x: lax.rem(x, x), id="rem")])
def test_float64_unsupported_raises(fn):
  """tinygrad's float64 sine reduces |x| >= 30 with 32 bits of the mantissa (sin(1e4) off by 1e-4) and an exact float64
  fmod is not implemented: these raise instead of answering wrongly."""
  with jax.enable_x64(True), pytest.raises(NotImplementedError):
    tiny(fn)(np.ones(4, np.float64))


# ---- jnp functions and other ways the primitives show up --------------------------------------------------------

JNP = {
  "round": jnp.round, "floor_divide": lambda x: jnp.floor_divide(x, x[::-1]), "remainder": lambda x: jnp.remainder(x, x[::-1]),
  "power_int": lambda x: jnp.power(x, 3), "sigmoid": jax.nn.sigmoid, "clip": lambda x: jnp.clip(x, -2.5, 3.0),
  "where": lambda x: jnp.where(x > 0, x, -x), "arctan2": lambda x: jnp.arctan2(x, x[::-1]), "exp2": jnp.exp2,
  "copy": jnp.copy, "stop_gradient": lax.stop_gradient, "astype_int8": lambda x: x.astype(jnp.int8),
  "grad": jax.grad(lambda x: jnp.sum(jnp.sin(x) * x)),   # add_any, mul, cos, neg
}


@pytest.mark.parametrize("name, fn, dtype", params(JNP, FLOATS))
@given_data
def test_jnp(name, fn, dtype, data):
  x = drawn(data, dtype, (N,))
  if name in ("floor_divide", "remainder") and np.dtype(dtype) != np.float16:
    # XLA CPU flushes subnormal intermediates to zero (FTZ): fmod of two tiny normals can be subnormal there and
    # exact here, and floor_divide then rounds differently (1.85e-38 // 1.18e-38: XLA 2, IEEE 1)
    x = np.where(np.abs(x.astype(np.float32)) < 1e-30, 0, x).astype(x.dtype)
  check(fn, x)


@pytest.mark.parametrize("name, fn, dtype", params({"shifts": lambda x: (jnp.left_shift(x, 3), jnp.right_shift(x, x[::-1] % 9)),
                                              "floor_divide": lambda x: jnp.floor_divide(x, x[::-1]),
                                              "remainder": lambda x: jnp.remainder(x, x[::-1]), "abs": jnp.abs}, INTS))
def test_jnp_int(name, fn, dtype):
  check(fn, unary_values(dtype))


@pytest.mark.parametrize("n", [4, 8, 16, 33])
def test_sign_extended_unsigned_to_float_side_by_side(n):
  """clang's SLP vectorizer turned a sign extension feeding an unsigned -> float conversion into a zero extension when
  4-16 of them sit side by side (int8 -1 -> uint32 -> float32 gave 255); tinyjax's C renderer writes those
  conversions without uitofp (tinyjax/tinygrad_patches/renderer.py)."""
  x8 = np.full(n, -1, np.int8); x8[::3] = -128; x8[1::5] = 5
  check(lambda x: x.astype(jnp.uint32).astype(jnp.float32), x8)
  check(lambda x: x.astype(jnp.uint32).astype(jnp.float32) + x.astype(jnp.uint16).astype(jnp.float32), x8)
  u32 = np.array([0, 1, 2**24 + 1, 2**31, 2**32 - 1, 2**32 - 129, 16777217 * 3, 123456789] * 5, np.uint32)[:n]
  check(lambda x: x.astype(jnp.float32), u32)


def test_sign_extended_uint64_to_float_under_x64():
  with jax.enable_x64(True):
    x16 = np.array([-1, -32768, 7, 0, -2, 300, -300, 1] * 2, np.int16)
    for dtype in (jnp.float32, jnp.float64):
      check(lambda x: x.astype(jnp.uint64).astype(dtype), x16)
    u64 = np.array([0, 1, 2**63, 2**64 - 1, 2**63 + 2**40 + 1, 12345678901234567890, 2**24 + 1, 2**53 + 1], np.uint64)
    for dtype in (jnp.float32, jnp.float64):
      check(lambda x: x.astype(dtype), u64)
