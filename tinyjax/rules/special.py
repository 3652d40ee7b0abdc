"""Special functions with XLA's semantics: erf, erfc, lgamma, digamma, polygamma, zeta, bessel_i0e/i1e, igamma,
igammac, igamma_grad_a, regularized_incomplete_beta, nextafter, and the random_gamma sampler.

Two kinds of rule:
- JAX lowers some primitives with `mlir.lower_fun` of a python implementation in lax ops (jax._src.lax.special:
  igamma, igammac, igamma_grad_a, regularized_incomplete_beta, bessel_i0e; jax._src.random: random_gamma). Those are
  traced and interpreted (tinyjax/traced.py), so XLA's algorithm is followed op for op. Several contain data-dependent
  `while` loops (series / continued fractions run until every element converged; rejection sampling), which tinyjax
  runs as a captured iteration replayed with a host read after each: these primitives are in
  registered with host_sync=True, so the decorator does not capture the program around them whole. (`lax.random_gamma_grad` is no primitive: it is inlined into the
  user's Jaxpr as lax ops and a while.)
- The others XLA implements natively (CHLO decompositions in stablehlo's ChloLegalizeToStablehlo.cpp, erf as XLA's
  own Eigen-derived rational approximation). They are transcribed here with the same polynomials, constants and
  special-value selects. As in XLA, float16/bfloat16 are computed in float32 and rounded once at the end; float64
  uses the float64 coefficient sets where XLA has them (erf, erfc, bessel_i1e).

Measured against jax.jit on CPU (the values of tests/test_special.py, |result| > 1e-3): erf bit-identical in
float32/float16/bfloat16; float32 erfc/digamma/bessel_i0e/i1e/zeta within 4e-6 relative, lgamma 2e-5 and polygamma
5e-5 (next to their zeros, and tinygrad's pow is exp2(y*log2 x): ~|y*log2 x| * 2^-24 relative); float16/bfloat16
bit-identical there; float64 within 2e-13. XLA's CPU code flushes subnormals (FTZ/DAZ): nextafter's equality test
follows it, and so does zeta (CHLO's "the series alone is accurate enough" test multiplies by the smallest subnormal,
which XLA reads as 0, so it never fires); a subnormal result XLA flushes to 0 stays subnormal here (e.g. igamma(2, 1e-20)).
"""
import functools
import importlib
import math

import numpy as np
import jax
from jax import lax
from jax._src.lax import special as lax_special
from tinygrad import Tensor, dtypes as tg

from ..dtypes import HALF_FLOATS, QUIET_NAN, same_width_uint
from ..ops import register
from ..traced import config_key, evaluate, spec, trace
from . import elementwise
from .numerics import const, copysign, fabs, full_like, in_f32, jdtype, nan_where, wrapping


# ---- conventions shared by the native (CHLO) rules ---------------------------------------------------------------

def chlo(f64=None):
  """The rule of a CHLO-decomposed op from `fn(*xs)` written for float32: float16/bfloat16 are computed in float32 and
  rounded back (in_f32: CHLO's materializeWithUpcast), float64 runs `f64` (XLA's float64 coefficients) or fn itself."""
  def wrap(fn):
    def rule(*xs):
      dt = xs[0].dtype
      if not tg.is_float(dt): raise TypeError(f"tinyjax: {fn.__name__} takes float16/bfloat16/float32/float64, got {dt}")
      return (f64 or fn)(*xs) if dt == tg.float64 else in_f32(fn)(*xs)
    rule.__name__ = rule.__qualname__ = fn.__name__
    return rule
  return wrap


def _horner(x: Tensor, coefficients) -> Tensor:
  """c[0]*x^(n-1) + ... + c[n-1] evaluated as CHLO's materializePolynomialApproximation (Horner, constants in x's dtype)."""
  p = full_like(x, coefficients[0])
  for c in coefficients[1:]: p = p * x + full_like(x, c)
  return p


def _chebyshev(x: Tensor, coefficients) -> Tensor:
  """Clenshaw's recurrence, as CHLO's materializeChebyshevPolynomialApproximation (and JAX's i0e)."""
  b0, b1, b2 = full_like(x, 0), full_like(x, 0), full_like(x, 0)
  for c in coefficients:
    b2, b1 = b1, b0
    b0 = x * b1 - b2 + full_like(x, c)
  return (b0 - b2) * full_like(x, 0.5)


def _sin(x: Tensor) -> Tensor:
  """sin of an argument in [-pi/2, pi/2] (elementwise.sin refuses float64 for its large-argument reduction, not needed here)."""
  return x.sin() if x.dtype == tg.float64 else elementwise.sin(x)


def _cos(x: Tensor) -> Tensor: return x.cos() if x.dtype == tg.float64 else elementwise.cos(x)


def _ge(a: Tensor, b) -> Tensor: return (a > b) | (a == b)   # tinygrad's >= is not(<): true for NaN


def _tiny(x: Tensor) -> float: return float(np.finfo(jdtype(x)).tiny)


def _flush(x: Tensor) -> Tensor:
  """x with subnormals flushed to (signed) zero, as XLA's CPU code computes (FTZ/DAZ) in float32 and float64."""
  return (fabs(x) < _tiny(x)).where(copysign(0.0, x), x)


# ---- erf, erfc -------------------------------------------------------------------------------------------------

_ERF32_ALPHA = (0.00022905065861350646, 0.0034082910107109506, 0.050955695062380861, 0.18520832239976145, 1.128379143519084)
_ERF32_BETA = (-1.1791602954361697e-7, 0.000023547966471313185, 0.0010179625278914885, 0.014070470171167667,
               0.11098505178285362, 0.49746925110067538, 1.0)


def _erf64_le1(x):   # Cephes, |x| <= 1: x T(x^2) / U(x^2)
  x2 = x * x
  t = _horner(x2, (9.60497373987051638749E0, 9.00260197203842689217E1, 2.23200534594684319226E3, 7.00332514112805075473E3,
                   5.55923013010394962768E4))
  u = _horner(x2, (1.0, 3.35617141647503099647E1, 5.21357949780152679795E2, 4.59432382970980127987E3,
                   2.26290000613890934246E4, 4.92673942608635921086E4))
  return x * t / u


def _erfc64_ge1(x):   # Cephes, |x| >= 1
  z = -(x * x)
  ax, ez = x.abs(), z.exp()
  p = _horner(ax, (2.46196981473530512524E-10, 5.64189564831068821977E-1, 7.46321056442269912687E0, 4.86371970985681366614E1,
                   1.96520832956077098242E2, 5.26445194995477358631E2, 9.34528527171957607540E2, 1.02755188689515710272E3,
                   5.57535335369399327526E2))
  q = _horner(ax, (1.0, 1.32281951154744992508E1, 8.67072140885989742329E1, 3.54937778887819891062E2, 9.75708501743205489753E2,
                   1.82390916687909736289E3, 2.24633760818710981792E3, 1.65666309194161350182E3, 5.57535340817727675546E2))
  r = _horner(ax, (5.64189583547755073984E-1, 1.27536670759978104416E0, 5.01905042251180477414E0, 6.16021097993053585195E0,
                   7.40974269950448939160E0, 2.97886665372100240670E0))
  s = _horner(ax, (1.0, 2.26052863220117276590E0, 9.39603524938001434673E0, 1.20489539808096656605E1, 1.70814450747565897222E1,
                   9.60896809063285878198E0, 3.36907645100081516050E0))
  out = (ax < 8).where(ez * p / q, ez * r / s)
  out = (z < -7.09782712893383996843E2).where(full_like(x, 0), out)
  return (x < 0).where(2 - out, out)


def _erf64(x): return (x.abs() < 1).where(_erf64_le1(x), 1 - _erfc64_ge1(x))
def _erfc64(x): return (x.abs() < 1).where(1 - _erf64_le1(x), _erfc64_ge1(x))


@register(lax.erf_p)
@chlo(f64=_erf64)
def erf(x):
  """XLA's float32 erf (xla/codegen/intrinsic/erf.cc, Eigen's rational interpolant): ±1 beyond |x| >= 3.8325."""
  x2 = x * x
  p = x * _horner(x2, _ERF32_ALPHA)
  q = _horner(x2, _ERF32_BETA)
  return _ge(x.abs(), 3.832506856900711).where(copysign(1.0, x), p / q)   # (NaN: p / q is NaN)


@register(lax.erfc_p)
@chlo(f64=_erfc64)
def erfc(x):
  """CHLO's float32 erfc: 1 - x T(x^2) for |x| < 1, else exp(-x^2)/|x| P(1/x^2) (R for |x| >= 2); 2 - erfc(-x) below 0."""
  z = -(x * x)
  ax = x.abs()
  ge1 = z.exp() * (1 / ax) * (ax < 2).where(
    _horner(1 / (x * x), (2.326819970068386E-2, -1.387039388740657E-1, 3.687424674597105E-1, -5.824733027278666E-1,
                          6.210004621745983E-1, -4.944515323274145E-1, 3.404879937665872E-1, -2.741127028184656E-1,
                          5.638259427386472E-1)),
    _horner(1 / (x * x), (-1.047766399936249E+1, 1.297719955372516E+1, -7.495518717768503E+0, 2.921019019210786E+0,
                          -1.015265279202700E+0, 4.218463358204948E-1, -2.820767439740514E-1, 5.641895067754075E-1)))
  ge1 = (z < -88.72283905206835).where(full_like(x, 0), ge1)
  ge1 = (x < 0).where(2 - ge1, ge1)
  le1 = x * _horner(x * x, (7.853861353153693E-5, -8.010193625184903E-4, 5.188327685732524E-3, -2.685381193529856E-2,
                            1.128358514861418E-1, -3.761262582423300E-1, 1.128379165726710E+0))
  return (ax < 1).where(1 - le1, ge1)


# ---- lgamma, digamma, polygamma, zeta --------------------------------------------------------------------------

_LANCZOS_G = 7.0
_LANCZOS_BASE = 0.99999999999980993227684700473478
_LANCZOS = (676.520368121885098567009190444019, -1259.13921672240287047156078755283, 771.3234287776530788486528258894,
            -176.61502916214059906584551354, 12.507343278686904814458936853, -0.13857109526572011689554707,
            9.984369578019570859563e-6, 1.50563273514931155834e-7)


def _lanczos_z(x):
  """Reflection below 1/2: (whether x is reflected, z = -x there, else x - 1)."""
  reflect = x < 0.5
  return reflect, reflect.where(-x, x - 1)


def _log_t(z):   # log(z + g + 1/2) = log(g + 1/2) + log1p(z / (g + 1/2))
  return full_like(z, math.log(_LANCZOS_G + 0.5)) + elementwise.log1p(z / full_like(z, _LANCZOS_G + 0.5))


@register(lax.lgamma_p)
@chlo()
def lgamma(x):
  """CHLO's materializeLgamma: Lanczos (g = 7, n = 9) with Euler's reflection below 1/2; +inf at ±inf and the poles."""
  reflect, z = _lanczos_z(x)
  a = full_like(x, _LANCZOS_BASE)
  for i, c in enumerate(_LANCZOS): a = a + full_like(x, c) / (z + (i + 1))
  t = full_like(x, _LANCZOS_G + 0.5) + z
  log_t = _log_t(z)
  r = (z + 0.5 - t / log_t) * log_t
  lg = full_like(x, (math.log(2) + math.log(math.pi)) / 2) + r + elementwise.log(a)
  ax = x.abs()
  frac = ax - ax.floor()
  frac = (frac > 0.5).where(1 - frac, frac)
  denom = elementwise.log(_sin(full_like(x, math.pi) * frac))
  refl = full_like(x, math.log(math.pi)) - denom - lg
  refl = elementwise.is_finite(denom).where(refl, -denom)
  return x.isinf().where(full_like(x, math.inf), reflect.where(refl, lg))


@register(lax.digamma_p)
@chlo()
def digamma(x):
  """CHLO's materializeDigamma: the Lanczos sum's logarithmic derivative, reflection pi*cot(pi*x) below 1/2 (computed
  on x shifted into [-1/2, 1/2]); NaN at 0, the negative integers and -inf."""
  reflect, z = _lanczos_z(x)
  a, a_prime = full_like(x, _LANCZOS_BASE), full_like(x, 0)
  for i, c in enumerate(_LANCZOS):
    zt = z + (i + 1)
    a_prime = a_prime - full_like(x, c) / (zt * zt)
    a = a + full_like(x, c) / zt
  t = full_like(x, _LANCZOS_G + 0.5) + z
  dg = _log_t(z) + a_prime / a - full_like(x, _LANCZOS_G) / t
  pi = full_like(x, math.pi)
  reduced = x + (x + 0.5).floor().abs()
  refl = dg - pi * _cos(pi * reduced) / _sin(pi * reduced)
  out = reflect.where(refl, dg)
  return nan_where(((x < 0) | (x == 0)) & (x == x.floor()), out)   # XLA: NaN at 0 too (CHLO's source now says -inf)


_ZETA_COEFFS = (-7.1661652561756670113e18, 1.8152105401943546773e17, -4.5979787224074726105e15, 1.1646782814350067249e14,
                -2.950130727918164224e12, 7.47242496e10, -1.8924375803183791606e9, 47900160.0, -1209600.0, 30240.0, -720.0,
                12.0)


def _is_even_int(x):
  half = x * 0.5
  return (x == x.floor()) & (half == half.floor()) & ~x.isinf()   # fmod(x, 2) == 0: false for ±inf (NaN)


@register(lax.zeta_p)
@chlo()
def zeta(x, q):
  """CHLO's materializeZeta (Hurwitz zeta, Johansson's formula (5)): 10 terms of the series, then a 12-term
  Euler-Maclaurin tail by Horner's rule; NaN for x < 1 or q <= 0 with x not an integer, the poles at q = 0, -1, ...
  give +inf for even x, and x = 1 is +inf."""
  neg_x = -x
  acc = q
  power_sum = elementwise._pow(q, neg_x)
  for _ in range(9):
    acc = acc + 1
    power_sum = power_sum + elementwise._pow(acc, neg_x)
  acc = acc + 1
  q_neg_power = elementwise._pow(acc, neg_x)
  correction = q_neg_power * acc / (x - 1)
  rsqrt_acc = 1 / (acc * acc)
  horner_sum, horner_product = full_like(q, 0), full_like(q, 1)
  for i in range(len(_ZETA_COEFFS) - 1):
    horner_product = (x + (22 - 2 * i)) * (x + (21 - 2 * i))
    horner_sum = horner_product * (rsqrt_acc * (horner_sum + full_like(q, 1 / _ZETA_COEFFS[i])))
  tail = q_neg_power * (0.5 + x / acc * (full_like(q, 1 / _ZETA_COEFFS[-1]) + horner_sum))
  # CHLO then takes power_sum alone where |q^-x| < |power_sum| * (smallest subnormal); XLA's CPU code reads that
  # constant as 0 (DAZ), so the test is never true (inf * 0 is NaN): zeta(1e30, -0.66) is NaN there, as here.
  out = power_sum + correction + tail
  nan = full_like(x, math.nan)
  out = (x < 1).where(nan, out)
  q_le_zero = (q < 0) | (q == 0)
  out = (q_le_zero & (x != x.floor())).where(nan, out)
  at_pole = q_le_zero & (q == q.floor())
  out = at_pole.where(_is_even_int(x).where(full_like(x, math.inf), nan), out)
  return (x == 1).where(full_like(x, math.inf), out)


@register(lax.polygamma_p)
@chlo()
def polygamma(n, x):
  """CHLO's materializePolygamma: (-1)^(n+1) n! zeta(n+1, x) for natural n > 0, digamma for n = 0, NaN otherwise."""
  sign = (n - (n * 0.5).trunc() * 2) * 2 - 1                             # 2*fmod(n, 2) - 1 (NaN for ±inf)
  n1 = n + 1
  out = sign * elementwise.exp(lgamma(n1)) * zeta(n1, x)
  out = (n == 0).where(digamma(x), out)
  return nan_where((n != n.floor()) | (n < 0), out)


# ---- Bessel functions ------------------------------------------------------------------------------------------

_I1E_A32 = (9.38153738649577178388E-9, -4.44505912879632808065E-8, 2.00329475355213526229E-7, -8.56872026469545474066E-7,
            3.47025130813767847674E-6, -1.32731636560394358279E-5, 4.78156510755005422638E-5, -1.61760815825896745588E-4,
            5.12285956168575772895E-4, -1.51357245063125314899E-3, 4.15642294431288815669E-3, -1.05640848946261981558E-2,
            2.47264490306265168283E-2, -5.29459812080949914269E-2, 1.02643658689847095384E-1, -1.76416518357834055153E-1,
            2.52587186443633654823E-1)
_I1E_B32 = (-3.83538038596423702205E-9, -2.63146884688951950684E-8, -2.51223623787020892529E-7, -3.88256480887769039346E-6,
            -1.10588938762623716291E-4, -9.76109749136146840777E-3, 7.78576235018280120474E-1)
_I1E_A64 = (2.77791411276104639959E-18, -2.11142121435816608115E-17, 1.55363195773620046921E-16, -1.10559694773538630805E-15,
            7.60068429473540693410E-15, -5.04218550472791168711E-14, 3.22379336594557470981E-13, -1.98397439776494371520E-12,
            1.17361862988909016308E-11, -6.66348972350202774223E-11, 3.62559028155211703701E-10, -1.88724975172282928790E-9,
            *_I1E_A32)
_I1E_B64 = (7.51729631084210481353E-18, 4.41434832307170791151E-18, -4.65030536848935832153E-17, -3.20952592199342395980E-17,
            2.96262899764595013876E-16, 3.30820231092092828324E-16, -1.88035477551078244854E-15, -3.81440307243700780478E-15,
            1.04202769841288027642E-14, 4.27244001671195135429E-14, -2.10154184277266431302E-14, -4.08355111109219731823E-13,
            -7.19855177624590851209E-13, 2.03562854414708950722E-12, 1.41258074366137813316E-11, 3.25260358301548823856E-11,
            -1.89749581235054123450E-11, -5.58974346219658380687E-10, *_I1E_B32)


def _i1e(x, a, b):
  """CHLO's materializeBesselI1eApproximation (Cephes): Chebyshev series on [0, 8] and in 32/|x| beyond, times sign(x)."""
  z = x.abs()
  le8 = z * _chebyshev(z * 0.5 - 2, a)
  gt8 = _chebyshev(32 / z - 2, b) / z.sqrt()
  return elementwise.sign(x) * ((z < 8) | (z == 8)).where(le8, gt8)


@register(lax.bessel_i1e_p)
@chlo(f64=lambda x: _i1e(x, _I1E_A64, _I1E_B64))
def bessel_i1e(x): return _i1e(x, _I1E_A32, _I1E_B32)


# ---- nextafter -------------------------------------------------------------------------------------------------

@register(lax.nextafter_p)
def nextafter(x, y):
  """CHLO's materializeNextAfter on the bits: step the integer representation toward y by one. Exact in every float
  dtype. XLA's CPU code compares with subnormals flushed (DAZ) in float32/float64/bfloat16 (bfloat16 is compared in
  float32), so nextafter(-1e-45, 0) is +0 there, as here; float16 is compared in float32, where its subnormals are normal."""
  if x.dtype not in QUIET_NAN: raise TypeError(f"tinyjax: nextafter takes float16/bfloat16/float32/float64, got {x.dtype}")
  u = same_width_uint(x.dtype)
  nbits = x.dtype.itemsize * 8
  xi, yi = x.bitcast(u), y.bitcast(u)
  sign_bit, mag_mask = 1 << (nbits - 1), (1 << (nbits - 1)) - 1
  x_abs, y_abs = xi & mag_mask, yi & mag_mask
  x_sign, y_sign = xi & sign_bit, yi & sign_bit
  smaller = (x_abs > y_abs) | (x_sign != y_sign)
  step = smaller.where(const(u.max, u, x.shape), const(1, u, x.shape))   # -1 or +1, modulo 2^bits
  out = wrapping(lambda a, b: a + b)(xi, step)
  out = (x_abs == 0).where((y_abs == 0).where(yi, y_sign | 1), out)
  xf, yf = (x.cast(tg.float32), y.cast(tg.float32)) if x.dtype in HALF_FLOATS else (x, y)
  if x.dtype != tg.float16: xf, yf = _flush(xf), _flush(yf)
  out = (xf == yf).where(yi, out)
  out = (xf.isnan() | yf.isnan()).where(const(QUIET_NAN[x.dtype], u, x.shape), out)
  if x.dtype == tg.bfloat16:   # via float32, exactly: clang-19 crashes selecting vectorized bits stored as __bf16
    return (out.cast(tg.uint32) << 16).bitcast(tg.float32).cast(tg.bfloat16)
  return out.bitcast(x.dtype)


# ---- primitives JAX lowers with its own lax-op implementations ---------------------------------------------------

def traced(prim, fn, *, host_sync: bool):
  """Register the rule `prim(*xs)` = evaluate the Jaxpr of `fn` (what `mlir.lower_fun` lowers prim with)."""
  def rule(*xs):
    return evaluate(trace(fn, tuple(spec(x) for x in xs), config_key()), *xs)[0]
  rule.__name__ = rule.__qualname__ = prim.name
  register(prim, note=_HOST_SYNC_NOTE if host_sync else None, host_sync=host_sync)(rule)
  return rule


_HOST_SYNC_NOTE = ("JAX's while loops: each iteration a replayed capture plus one host read; the program around them "
                   "is captured in stages")


_up = lax_special._up_and_broadcast   # JAX's own wrapper: broadcasts, computes f16/bf16 in f32
traced(lax_special.igamma_p, _up(lax_special.igamma_impl), host_sync=True)
traced(lax_special.igammac_p, _up(lax_special.igammac_impl), host_sync=True)
traced(lax_special.igamma_grad_a_p, _up(lax_special.igamma_grad_a_impl), host_sync=True)
traced(lax_special.regularized_incomplete_beta_p, _up(lax_special.regularized_incomplete_beta_impl), host_sync=True)
traced(lax_special.bessel_i0e_p, lax_special.bessel_i0e_impl, host_sync=False)


# ---- random_gamma ----------------------------------------------------------------------------------------------

def _random_module():
  """The module holding random_gamma_p and _gamma_impl (jax._src.random.core in jax 0.10, jax._src.random before)."""
  for home in ("jax._src.random.core", "jax._src.random"):
    try: module = importlib.import_module(home)
    except ImportError: continue
    if hasattr(module, "random_gamma_p") and hasattr(module, "_gamma_impl"): return module
  return None


_RANDOM = _random_module()
random_gamma_p = _RANDOM.random_gamma_p if _RANDOM else None


@functools.lru_cache(maxsize=None)
def _gamma_fn(log_space: bool):
  """What JAX lowers random_gamma with (on CPU too): _gamma_impl with use_vmap=True, i.e. Marsaglia and Tsang's
  rejection sampler vmapped over the elements (a while loop with a batched predicate per rejection round); for key
  impls other than threefry, JAX's own fallback inside it (lax.map)."""
  return functools.partial(_RANDOM._gamma_impl, log_space=log_space, use_vmap=True)


@register(random_gamma_p, note=_HOST_SYNC_NOTE, host_sync=True, with_avals=True)
def random_gamma(keys, a, *, log_space, in_avals, out_avals):
  key_aval = in_avals[0]   # its dtype names the key's PRNG impl
  closed = trace(_gamma_fn(bool(log_space)), ((tuple(key_aval.shape), key_aval.dtype), spec(a)), config_key())
  return evaluate(closed, keys, a)[0]


# ---- erf_inv ---------------------------------------------------------------------------------------------------

@register(jax.lax.erf_inv_p)
@in_f32
def erf_inv(x):
  """XLA's erf_inv (chlo legalization: Giles' single-precision polynomial for f32, the double one for f64), traced
  from JAX's lax-op transcription of it (jax._src.pallas.utils). f16/bf16 are computed in f32 and rounded, as XLA
  does for types narrower than f32."""
  from jax._src.pallas import utils as pallas_utils
  out = evaluate(trace(pallas_utils.erf_inv_lowering_helper, (spec(x),), config_key()), x)[0]
  return nan_where(x.abs() > 1, out)   # NaN outside [-1, 1]; the helper gets there via log1p(-inf) = NaN, which
                                       # elementwise.log1p returns as -inf (reported to its owner)
