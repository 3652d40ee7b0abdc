"""Parity with jax.jit for the special functions in tinyjax/special.py (and jax.random's gamma family).

Every comparison is parity.assert_same: dtype-exact, NaN positions exact, floats within parity.TOLERANCE unless a test
says why not. Building a program dominates the cost, so each function gets one tiny wrapper per session (tiny_of) and
one shape per dtype: a deterministic array of special values (NaN, ±inf, ±0, poles, huge arguments, subnormals) plus
random ones, then hypothesis examples that replay the captured program with new data.

The primitives whose rules run JAX's while loops (igamma, igammac, igamma_grad_a, random_gamma_grad, betainc,
random_gamma) read a predicate on the host per iteration (~0.1-0.3 s each on a 2-core CPU), so they get a few
well-chosen values that converge in a few dozen iterations, not hypothesis.
"""
import functools
import math

import jax
import jax.numpy as jnp
import jax.scipy.special as jsp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.numpy import arrays as hnp_arrays
from jax import lax
from tinygrad import Tensor, dtypes as tg

from parity import arrays, assert_same
from tinyjax import tiny, to_numpy
from tinyjax.ops import RULES

F16, BF16, F32, F64 = np.dtype(np.float16), np.dtype(jnp.bfloat16), np.dtype(np.float32), np.dtype(np.float64)
LOW = [F32, F16, BF16]
N = 256
SETTINGS = settings(suppress_health_check=[*settings().suppress_health_check, HealthCheck.filter_too_much])


@functools.cache
def tiny_of(fn): return tiny(fn)


def check(fn, *args, rtol=None, atol=None, x64=False):
  """jax.jit vs tiny on the same arguments (under jax.enable_x64 for float64)."""
  with jax.enable_x64(x64):
    want = jax.jit(fn)(*args)
    got = to_numpy(tiny_of(fn)(*args))
  assert_same(got, want, rtol, atol)
  return got, want


def unary_values(dtype, seed=0):
  """N values: special ones (NaN, ±inf, ±0, poles of lgamma/digamma and their neighbours, erf's clamp at 3.8325,
  i1e's switch at 8, Lanczos' reflection at 1/2, huge and tiny magnitudes), then random ones over many binades."""
  fi = jnp.finfo(dtype)
  special = [math.nan, math.inf, -math.inf, 0.0, -0.0, 1, -1, 2, -2, 3, -3, -4, -10, -100, -1e6, 0.5, -0.5, 0.4999, 0.5001,
             1.5, -1.5, -2.5, -2.0001, -1.9999, -0.9999, -1e-4, 1e-3, -1e-3, 1e-7, 1e-20, 3.8325, -3.8325, 3.83, 4, -4.5, 8,
             -8, 8.5, 10, 26, 30, 100, 171.5, 1e4, 1e10, 1e30, -1e30, float(fi.max), -float(fi.max), float(fi.tiny)]
  rng = np.random.default_rng(seed)
  k = (N - len(special)) // 4
  rest = N - len(special) - 3 * k
  with np.errstate(over="ignore"):
    rnd = np.concatenate([rng.normal(size=k) * 3, rng.uniform(-30, 30, k), rng.uniform(0, 10, k),
                          np.exp(rng.uniform(-20, 25, rest)) * rng.choice([-1, 1], rest)])
    return np.concatenate([np.array(special), rnd]).astype(dtype)


def dtype_ids(dtypes): return [pytest.param(d, id=str(d)) for d in dtypes]


# ---- natively implemented unary functions (CHLO decompositions, XLA's erf) ----------------------------------------

UNARY = {"erf": lax.erf, "erfc": lax.erfc, "lgamma": lax.lgamma, "digamma": lax.digamma, "bessel_i1e": lax.bessel_i1e,
         "bessel_i0e": lax.bessel_i0e}


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_special(name, dtype):
  check(UNARY[name], unary_values(dtype))


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_float64(name):
  check(UNARY[name], unary_values(F64), x64=True)


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
@pytest.mark.parametrize("name", list(UNARY))
@SETTINGS
@given(data=st.data())
def test_unary(name, dtype, data):
  check(UNARY[name], data.draw(arrays(dtype, (N,))))


def test_unary_shapes():
  """Scalars and 0-size arrays, all six at once."""
  fn = lambda x: [f(x) for f in UNARY.values()]
  check(fn, np.float32(0.7))
  check(fn, np.zeros((0, 3), np.float32))


# ---- binary: zeta, polygamma -------------------------------------------------------------------------------------

def zeta_grid(dtype):
  """x against q: x < 1, x = 1, integer and non-integer x; q at the poles 0, -1, -2, negative non-integer q, tiny q."""
  xs = np.array([math.nan, 0.5, 1, 1.5, 2, 3, 4, 5.5, 10, 30, 1e30, math.inf, -2, 7.3, 2.0001, 16])
  qs = np.array([math.nan, -2, -1, 0, -0.0, -2.4, -0.3, 1e-3, 0.5, 1, 2.25, 10, 100, 1e6, math.inf, -11.25])
  x, q = np.meshgrid(xs, qs)
  with np.errstate(over="ignore"): return x.ravel().astype(dtype), q.ravel().astype(dtype)   # 1e30: inf in float16


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
def test_zeta_special(dtype):
  check(lax.zeta, *zeta_grid(dtype))


def test_zeta_float64():
  check(lax.zeta, *zeta_grid(F64), x64=True)


@SETTINGS
@given(data=st.data())
def test_zeta(data):
  x = data.draw(arrays(F32, (N,), special=False, min_value=-2, max_value=60))
  check(lax.zeta, x, data.draw(arrays(F32, (N,), special=False, min_value=-20, max_value=1e4)))


def polygamma_args(dtype, seed=0):
  """n in {-1, 0, ..., 5} and non-integers, against special and random x (negative x included: reflection, poles)."""
  rng = np.random.default_rng(seed)
  x = unary_values(dtype, seed)
  with np.errstate(over="ignore"):
    n = np.concatenate([[math.nan, 0.5, -1, 1e30, math.inf], rng.integers(-1, 6, N - 5)]).astype(dtype)
  return n, x


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
def test_polygamma_special(dtype):
  check(lax.polygamma, *polygamma_args(dtype))


@SETTINGS
@given(data=st.data())
def test_polygamma(data):
  n = data.draw(hnp_arrays(np.int32, (N,), elements=st.integers(-1, 6))).astype(np.float32)
  check(lax.polygamma, n, data.draw(arrays(F32, (N,))))


def test_polygamma_float64():
  check(lax.polygamma, *polygamma_args(F64), x64=True)


# ---- nextafter: exact bits ---------------------------------------------------------------------------------------

def nextafter_grid(dtype):
  fi = jnp.finfo(dtype)
  sub = float(fi.smallest_subnormal)
  vals = [0.0, -0.0, sub, -sub, 2 * sub, float(fi.tiny), -float(fi.tiny), 1.0, -1.0, 1.5, float(fi.max), -float(fi.max),
          math.inf, -math.inf, math.nan, float(fi.eps)]
  x, y = np.meshgrid(np.array(vals, np.float64).astype(dtype), np.array(vals, np.float64).astype(dtype))
  return x.ravel(), y.ravel()


def bits(a): return np.asarray(a).view({2: np.uint16, 4: np.uint32, 8: np.uint64}[np.asarray(a).dtype.itemsize])


def check_bits(fn, *args, x64=False):
  """Bit-exact, NaNs compared as NaN (their payload is XLA's business)."""
  got, want = check(fn, *args, rtol=0, atol=0, x64=x64)
  want = np.asarray(want)
  nan = np.isnan(want.astype(np.float64))
  np.testing.assert_array_equal(bits(got)[~nan], bits(want)[~nan])


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
def test_nextafter_special(dtype):
  """All pairs of 16 values: ±0, subnormals (XLA compares with them flushed: nextafter(-min_subnormal, 0) is +0 in
  float32/bfloat16, -0 in float16), the smallest normal, ±max, ±inf, NaN."""
  check_bits(lax.nextafter, *nextafter_grid(dtype))


def test_nextafter_float64():
  check_bits(lax.nextafter, *nextafter_grid(F64), x64=True)


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
@SETTINGS
@given(data=st.data())
def test_nextafter(dtype, data):
  check_bits(lax.nextafter, data.draw(arrays(dtype, (64,))), data.draw(arrays(dtype, (64,))))


# ---- traced JAX implementations with while loops ----------------------------------------------------------------

A = np.array([math.nan, 1, 0, -1, 0.5, 2, 3, 10, 1e-3, 5, 1, 1, 20, 0.5, 2, math.inf, 1, 0.1, 3, 2.5], np.float32)
X = np.array([1, math.nan, 0, 1, 0.5, 0, 3.5, 9, 0.1, 12, math.inf, -1, 18, 30, 1e-20, 1, 1e-3, 4, 0.2, 2.5], np.float32)

# (jax.scipy.special's gammainc/gammaincc are lax.igamma/igammac: the wrappers are what is called)
IGAMMA = {"gammainc": jsp.gammainc, "gammaincc": jsp.gammaincc, "igamma_grad_a": lax.igamma_grad_a,
          "random_gamma_grad": lax.random_gamma_grad}


@pytest.mark.parametrize("name", list(IGAMMA))
def test_igamma_family(name):
  """Series (x < a or x < 1) and continued fraction branches, the domain errors (NaN), x = 0, x = inf, a = 0.
  The tolerance: ax = a*log(x) - x - lgamma(a) cancels, so an ulp of lgamma at a = 20 moves the result ~1e-5 relative."""
  check(IGAMMA[name], A, X, rtol=1e-4)


def test_igamma_replay():
  """A captured-looking call is never replayed with a baked-in trip count: tiny evaluates programs holding igamma
  without TinyJit (registered with host_sync=True), so new data takes its own number of iterations."""
  f = tiny_of(lax.igamma)
  for a, x in [(A, X), (A[::-1].copy(), X[::-1].copy()), (np.full(20, 50, np.float32), np.full(20, 49, np.float32))]:
    assert_same(to_numpy(f(a, x)), jax.jit(lax.igamma)(a, x), rtol=1e-4)


@pytest.mark.parametrize("dtype", dtype_ids([F16, BF16]))
def test_igamma_low_precision(dtype):
  """_up_and_broadcast computes float16/bfloat16 in float32 and rounds once."""
  check(lax.igamma, A.astype(dtype), X.astype(dtype))


def test_igamma_float64():
  a, x = A[:10].astype(F64), X[:10].astype(F64)   # (fewer: float64's series need ~2x the float32 iterations)
  check(lambda a, x: (lax.igamma(a, x), lax.igammac(a, x)), a, x, rtol=1e-9, x64=True)


def test_betainc():
  """The continued fraction (both sides of the symmetry switch), a or b = 0 or inf, x = 0 or 1, domain errors."""
  a = np.array([math.nan, 1, 0.5, 2, 3, 0, 1, 2, 5, math.inf, 1, 2, 0.5, 1, 2, 1], np.float32)
  b = np.array([1, 1, 0.5, 3, 2, 1, 0, math.inf, 5, 1, -1, 2, 2.5, 1, 1, 4], np.float32)
  x = np.array([0.5, 0.3, 0.9, 0.2, 0.7, 0.5, 0.5, 0.4, 0.5, 0.5, 0.5, 1.1, 0.01, 0, 1, 0.6], np.float32)
  check(jsp.betainc, a, b, x, rtol=1e-4)   # (jax.scipy.special.betainc is lax.betainc)


# ---- the wrappers users call ------------------------------------------------------------------------------------

def test_scipy_special_unary():
  fn = lambda x: (jsp.erf(x), jsp.erfc(x), jsp.gammaln(x), jsp.digamma(x), jsp.i0e(x), jsp.i1e(x), jsp.erfinv(x / 40))
  check(fn, unary_values(F32, seed=1)[:64])


def test_scipy_special_binary():
  """(gammainc, gammaincc and betainc are tested above through their jax.scipy.special wrappers.)"""
  a, x = np.array([0.5, 1, 2.5, 4, 0.1, 3], np.float32), np.array([0.3, 2, 1.5, 6, 0.5, 2.5], np.float32)
  fn = lambda a, x: (jsp.polygamma(jnp.arange(6) % 4, x), jsp.zeta(a + 1, x))
  check(fn, a, x, rtol=1e-4)


@pytest.mark.parametrize("dtype", dtype_ids(LOW))
def test_gelu_exact(dtype):
  """(±max excluded: x/2 * erfc(-x/sqrt2) is max there, but tinygrad reassociates (0.5*a)*e into (a*e)*0.5: inf.)"""
  x = unary_values(dtype, seed=2)[:128]
  check(lambda x: jax.nn.gelu(x, approximate=False), x[np.abs(x) != jnp.finfo(dtype).max])


# ---- jax.random's gamma family: same key, same samples ----------------------------------------------------------

KEY_DATA = np.array([0, 42], np.uint32)


def test_random_gamma():
  key = jax.random.wrap_key_data(KEY_DATA)
  alphas = np.array([0.05, 0.3, 1.0, 2.5, 7.0, 100.0], np.float32)
  check(lambda k, a: jax.random.gamma(k, a, (3, 6)), key, alphas)


def test_random_gamma_family():
  key = jax.random.key(7)
  fn = lambda k: (jax.random.beta(k, 0.5, 2.0, (6,)), jax.random.dirichlet(k, jnp.array([0.5, 1.0, 3.0]), (3,)),
                  jax.random.loggamma(k, jnp.array([0.01, 0.1, 2.0])))
  check(fn, key)


def test_random_gamma_grad():
  """jax.grad through jax.random.gamma: random_gamma's JVP is lax.map of random_gamma_grad (a scan holding whiles)."""
  fn = jax.grad(lambda a, k: jax.random.gamma(k, a).sum())
  check(fn, np.array([0.5, 9.0], np.float32), jax.random.key(3), rtol=1e-4)


# ---- loud failures ----------------------------------------------------------------------------------------------

def test_unsupported_dtype_raises():
  with pytest.raises(TypeError, match="lgamma"):
    RULES[lax.lgamma_p].fn(Tensor([1, 2, 3], dtype=tg.int32))
  with pytest.raises(TypeError, match="nextafter"):
    RULES[lax.nextafter_p].fn(Tensor([1, 2], dtype=tg.int32), Tensor([1, 2], dtype=tg.int32))
