"""Elementwise rules: arithmetic, transcendental functions, comparison and logic, bit operations, selection and
conversion, with XLA's semantics (integer wrap-around and division, NaN propagation, signed zeros, f16/bf16 rounding).
"""
import math

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg
from tinygrad.uop.ops import Ops

from ..dtypes import HALF_FLOATS, same_width_int, same_width_uint, to_tiny
from ..ops import primitive, register, unsupported
from .numerics import (bf16_in_f32, bits, const, copysign, fabs, full_like, in_f32, int_to_int, is_bool, is_float,
                       is_unsigned, jdtype, nan_where, round_to, signbit, wrap_int, wrapping)


def _no_f64_trig(fn):
  def wrapped(x):
    if x.dtype == tg.float64:   # tinygrad 0.14 reduces float64 arguments >= 30 with 32 bits of the mantissa: sin(1e4) off by 1e-4
      raise NotImplementedError(f"{fn.__name__} on float64: tinygrad's float64 argument reduction is inaccurate for |x| >= 30")
    return fn(x)
  wrapped.__name__ = fn.__name__
  return wrapped



def elementwise(*primitives):
  """Register an n-ary elementwise rule `fn(*xs)`. JAX guarantees equal dtypes; scalars broadcast (tinygrad does that).
  `out_dtype` (mul) converts the inputs first, as XLA's lowering does; `accuracy` is a hint tinygrad cannot take.
  bfloat16 is computed in float32 and rounded back (bf16_in_f32): one rounding per primitive; decompositions inside a
  rule (atanh, asinh, ...) round once at the end instead of after each step."""
  def wrap(fn):
    widened = bf16_in_f32(fn)
    def rule(*xs, out_dtype=None, accuracy=None):
      if out_dtype is not None: xs = [convert_element_type(x, new_dtype=out_dtype) for x in xs]
      return widened(*xs)
    rule.__name__ = rule.__qualname__ = fn.__name__
    register(*primitives)(rule)
    return fn
  return wrap


# ---- arithmetic ------------------------------------------------------------------------------------------------

@elementwise(P.add_p, P.add_jaxvals_p)   # add_jaxvals_p is named add_any in Jaxprs
@wrapping
def add(x, y): return x + y


def _is_positive_zero(x: Tensor) -> bool:
  u = x.uop.base
  while u.op is Ops.CAST: u = u.src[0].base   # a bfloat16 operand arrives cast to float32
  return u.op is Ops.CONST and float(u.arg) == 0 and math.copysign(1, float(u.arg)) > 0


@elementwise(P.sub_p)
@wrapping
def sub(x, y):
  if is_float(x) and _is_positive_zero(x): return (y == 0).where(x, -y)   # tinygrad folds 0 + -y to -y: 0 - 0 is +0
  return x - y


@elementwise(P.mul_p)
@wrapping
def mul(x, y): return x * y


@elementwise(P.neg_p)
@wrapping
def neg(x): return -x if not is_unsigned(x) else full_like(x, 0) - x


@elementwise(P.div_p)
def div(x, y):
  # tinygrad divides as x * (1/y), which in float16 (CUDA's hrcp, OpenCL's half) rounds twice: divide in float32
  if x.dtype == tg.float16: return in_f32(div)(x, y)
  if is_float(x): return x / y
  # XLA: truncate toward zero; x/0 is -1 (all ones), INT_MIN/-1 is INT_MIN.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = ((x == full_like(x, x.dtype.min)) & (y == full_like(y, -1))).where(full_like(y, 1), safe_y)
  q = x.div(safe_y, rounding_mode="trunc")
  return (y == 0).where(full_like(x, -1 if not is_unsigned(x) else x.dtype.max), q)


@elementwise(P.rem_p)
def rem(x, y):
  if is_float(x): return _fmod(x, y)
  # XLA: sign follows the dividend; x%0 is x; INT_MIN % -1 is 0.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = (y == full_like(y, -1)).where(full_like(y, 1), safe_y)
  r = x - x.div(safe_y, rounding_mode="trunc") * safe_y
  return (y == 0).where(x, r)


@in_f32
def _fmod(x, y):
  """C fmod, exact (as XLA's): x - trunc(x/y)*y loses everything once |x/y| > 2^24. With integer mantissas mx, my and
  exponent difference d, |x| mod |y| = (mx * 2^d mod my) in units of y's last place; d <= 253 is taken 39 bits at a time
  in int64 (my < 2^24, so r * 2^39 < 2^63)."""
  if x.dtype != tg.float32: raise NotImplementedError(f"rem (fmod) on {x.dtype}: only float32/float16/bfloat16 are exact")
  def split(v):   # (integer mantissa with the hidden bit, biased exponent >= 1) of |v|
    bits_ = v.bitcast(tg.uint32) & 0x7FFFFFFF
    e = (bits_ >> 23).cast(tg.int32)
    m = (bits_ & 0x7FFFFF) | (e > 0).where(0x800000, 0).cast(tg.uint32)
    return m.cast(tg.int64), e.maximum(1)
  (mx, ex), (my, ey) = split(x), split(y)
  my = (my == 0).where(1, my)                                          # y = 0 gives NaN below; never divide by 0
  d = ex - ey
  r = mx % my
  for i in range(7): r = (r << (d - 39 * i).clip(0, 39).cast(tg.int64)) % my
  two_ey = (ey.cast(tg.uint32) << 23).bitcast(tg.float32)             # 2^(ey - 127), a normal number
  out = copysign(r.cast(tg.float32) * 2.0 ** -23 * two_ey, x)        # exact: a multiple of y's last place below |y|
  out = ((d < 0) | y.isinf()).where(x, out)                            # |x| < |y|: x itself
  return (x.isinf() | (y == 0) | x.isnan() | y.isnan()).where(full_like(x, math.nan), out)


@elementwise(P.max_p)
def max_(x, y):
  if is_bool(x): return x | y
  if not is_float(x): return x.maximum(y)
  out = (x == y).where(signbit(x).where(y, x), x.maximum(y))   # XLA: max(-0, +0) = +0 either way round, NaN wins
  return nan_where(x.isnan() | y.isnan(), out)


@elementwise(P.min_p)
def min_(x, y):
  if is_bool(x): return x & y
  if not is_float(x): return x.minimum(y)
  out = (x == y).where(signbit(x).where(x, y), x.minimum(y))   # XLA: min(-0, +0) = -0
  return nan_where(x.isnan() | y.isnan(), out)


@elementwise(P.abs_p)
def abs_(x): return x if is_unsigned(x) else (x < 0).where(neg(x), x) if not is_float(x) else fabs(x)


@elementwise(P.sign_p)
def sign(x):
  if is_unsigned(x): return (x != 0).cast(x.dtype)
  if not is_float(x): return (x > 0).cast(x.dtype) - (x < 0).cast(x.dtype)
  one = full_like(x, 1)
  return (x > 0).where(one, (x < 0).where(-one, x))   # keeps -0.0, +0.0 and NaN as they are


@elementwise(P.square_p)
@wrapping
def square(x): return x * x


@elementwise(primitive("one_minus_square_p"))   # jax >= 0.11 (tanh's and asin's derivatives)
def one_minus_square(x): return 1 - x * x


@elementwise(P.copy_p, getattr(P, "stop_gradient_p", None))
def copy(x): return x


def _power_chain(x: Tensor, y: int, rnd=lambda t: t) -> Tensor:
  """x**|y| by the square-and-multiply chain JAX lowers integer_pow to, so float results round at the same places."""
  acc, n, base = None, abs(y), x
  while n > 0:
    if n & 1: acc = base if acc is None else rnd(acc * base)
    n >>= 1
    if n > 0: base = rnd(base * base)
  return acc


@register(P.integer_pow_p)
def integer_pow(x, *, y):
  if y == 0: return full_like(x, 1)
  if tg.is_int(x.dtype): return wrapping(lambda x: _power_chain(x, y))(x)
  low = x.dtype in HALF_FLOATS   # XLA rounds each product to f16/bf16; tinygrad would keep f32 in a kernel
  acc = _power_chain(x.cast(tg.float32), y, lambda t: round_to(t, x.dtype)) if low else _power_chain(x, y)
  if y > 0: return acc.cast(x.dtype)
  # XLA's CPU code runs with denormals flushed to zero, so 1/x**3 is inf once x**3 is subnormal (2e-13**-3 in f32);
  # f16 is computed in f32 there, where f16's subnormals are normal numbers.
  if x.dtype != tg.float16: acc = (fabs(acc) < float(jnp.finfo(jdtype(acc)).tiny)).where(copysign(0.0, acc), acc)
  return (1 / acc).cast(x.dtype)


@register(P.pow_p)
def pow_(x, y, *, accuracy=None):
  # XLA converts an integer exponent to the base's dtype (f16 overflows to inf, bf16 rounds -257 to -256), then takes
  # powf. Registered directly: elementwise would hand this rule bfloat16 already widened to float32.
  # (rounded by hand for those: tinygrad keeps a half/bfloat16 intermediate in float32 inside a kernel)
  if not is_float(y):
    low = x.dtype in HALF_FLOATS
    y = round_to(y.cast(tg.float32), x.dtype) if low else convert_element_type(y, new_dtype=jdtype(x))
  return _pow(x, y)


@in_f32
def _pow(x, y):
  """IEEE pow: exp2(y*log2|x|) (within ~|y*log2 x|*2^-24 relative, near overflow 5e-6 in f32) plus the special cases."""
  y_int = y.trunc() == y                                       # true for ±inf too
  y_odd = y_int & ((y * 0.5).trunc() != y * 0.5)
  mag = (y * x.abs().log2()).exp2()                            # 0**y, inf**y, |x|<1 or >1 with y=±inf all follow from this
  out = (signbit(x) & y_odd).where(-mag, mag)                 # (-0)**-1 = -inf, (-inf)**3 = -inf
  out = ((x < 0) & ~x.isinf() & ~y_int).where(full_like(x, math.nan), out)
  out = ((x.abs() == 1) & y.isinf()).where(full_like(x, 1), out)
  # exact where the result can be the largest float (pow(max, 1) must not round up to inf)
  out = (y == 1).where(x, (y == 2).where(x * x, (y == -1).where(1 / x, out)))
  return ((x == 1) | (y == 0)).where(full_like(x, 1), out)     # even when the other operand is NaN


# ---- transcendental --------------------------------------------------------------------------------------------
# XLA on CPU evaluates a single f16/bf16 transcendental op in float32 and rounds the result (checked against
# jax.jit: bit-identical for exp/log/log1p/sqrt/rsqrt/cbrt/tanh/sin/cos/tan/atan2/pow/rem/sinh/cosh); `in_f32` does
# that. Primitives that JAX/CHLO decompose (exp2, logistic, asin, acos, atan, asinh, acosh, atanh) are written below as
# the same decomposition, op by op in the input dtype, so f16/bf16 round at the same places as XLA's.

def _ln2(x: Tensor) -> Tensor: return full_like(x, math.log(2))   # rounded to x's dtype, as XLA's constant is


@elementwise(P.exp_p)
@in_f32
def exp(x): return x.exp()


@elementwise(P.log_p)
@in_f32
def log(x): return x.log()


@elementwise(P.sqrt_p)
def sqrt(x): return x.sqrt()   # correctly rounded in every dtype


@elementwise(P.rsqrt_p)
@in_f32
def rsqrt(x): return x.rsqrt()


@register(P.exp2_p)
def exp2(x, *, accuracy=None):
  # JAX lowers exp2(x) to exp(x * log(2)) with log(2) and the product rounded to x's dtype, and exp magnifies that
  # rounding (f16 exp2(15.96): 64220, not 64000; bf16 exp2(100): 9.3e29, not 1.3e30). For f16/bf16 the product is exact
  # in f32 and rounded by hand (registered directly: elementwise would hand this rule float32 already).
  if x.dtype not in HALF_FLOATS: return exp(x * _ln2(x))
  arg = x.cast(tg.float32) * float(jnp.asarray(math.log(2), jdtype(x)))
  return exp(round_to(arg, x.dtype)).cast(x.dtype)


@elementwise(P.logistic_p)
def logistic(x): return full_like(x, 1) / (exp(-x) + full_like(x, 1))   # JAX's logistic_impl


# XLA's log1p (elemental_ir_emitter.cc, EmitLog1p): Cephes' rational approximation where |x| < sqrt(2)-1, else log(1+x).
# Kahan's log(u) * x/(u-1) with u = 1+x (this rule's earlier form) needs u-1 computed, but tinygrad folds (x+1)-1 to x and
# then x/x to 1: log1p(1e-7) was log(1+1e-7), 2.7e6 ulp off (asinh, acosh, atanh and logaddexp with it). This form has
# no cancellation for a rewrite to undo and matches jax.jit to 1 ulp (XLA fuses the Horner steps into FMAs: bit-identical
# with them); above the threshold tinygrad's log is the limit (~2 ulp).
_LOG1P_P = (4.5270000862445199635215e-5, 4.9854102823193375972212e-1, 6.5787325942061044846969e0, 2.9911919328553073277375e1,
            6.0949667980987787057556e1, 5.7112963590585538103336e1, 2.0039553499201281259648e1)
_LOG1P_Q = (1.0, 1.5062909083469192043167e1, 8.3047565967967209469434e1, 2.2176239823732856465394e2,
            3.0909872225312059774938e2, 2.1642788614495947685003e2, 6.0118660497603843919306e1)


@elementwise(P.log1p_p)
@in_f32
def log1p(x):
  p, q, x2 = full_like(x, _LOG1P_P[0]), full_like(x, _LOG1P_Q[0]), x * x
  for a, b in zip(_LOG1P_P[1:], _LOG1P_Q[1:]): p, q = p * x + a, q * x + b
  small = x + (x2 * -0.5 + (x * x2) * (p / q))
  return (x.abs() < 0.41421356237309504880).where(small, (x + 1).log())


@elementwise(P.expm1_p)
@in_f32
def expm1(x):
  u = x.exp()   # Kahan: (u - 1) * x / log(u) cancels the rounding of exp, but not the error of log near 1 (2.2 ulp at -4e-7)
  kahan = (u - 1 == -1).where(full_like(x, -1), (u == math.inf).where(u, (u - 1) * (x / u.log())))
  # so small |x| takes Taylor's x + x^2/2 + ... + x^5/120 (the next term is below half an ulp under the threshold)
  taylor = x + x * x * (0.5 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120))))
  return (u == 1).where(x, (x.abs() < (0.01 if x.dtype == tg.float32 else 1e-4)).where(taylor, kahan))   # x: -0.0 stays


@elementwise(P.tanh_p)
@in_f32
def tanh(x):
  e = expm1(-2 * x.abs())
  return copysign(-e / (e + 2), x)


@elementwise(P.cbrt_p)
@in_f32
def cbrt(x): return copysign((x.abs().log2() * (1 / 3)).exp2(), x)


@elementwise(P.sinh_p)
@in_f32
def sinh(x):   # CHLO's decomposition (XLA evaluates it in f32 for f16/bf16)
  e = expm1(x)   # e/(e+1) written as 1/(1+1/e): tinygrad rewrites x/(1+x) to 1-1/(1+x), which cancels to 0 for small x
  return (x.abs() < 1).where((e + 1 / (1 + 1 / e)) * 0.5, (x - _ln2(x)).exp() - (-_ln2(x) - x).exp())


@elementwise(P.cosh_p)
@in_f32
def cosh(x): return (x - _ln2(x)).exp() + (-_ln2(x) - x).exp()


# 1/(2pi) in 32-bit words after a zero word (2/pi shifted right by 2 bits), for the Payne-Hanek reduction below
_TWO_OVER_PI_WORDS = (0, 0x28be60db, 0x9391054a, 0x7f09d5f4, 0x7d4d3770, 0x36d8a566, 0x4f10e410, 0x7f9458ea, 0xf7aef158)


def _reduce_pio2(d: Tensor) -> tuple[Tensor, Tensor]:
  """float32 d >= 1 (finite) -> (r, q) with d = q*pi/2 + r, |r| <= pi/4, r accurate relative to itself (so next to the
  zeros of sin and cos too). Payne-Hanek in integer arithmetic: the 64 bits of d*2/pi around the binary point are
  mantissa(d) * (96 bits of 2/pi picked by d's exponent). This is tinygrad's payne_hanek_reduction with a centered
  remainder (tinygrad's returns r in [-pi/2, 0), which keeps only absolute accuracy near the zeros); a float
  Cody-Waite reduction is no alternative: tinygrad's symbolic rewrites reassociate float sums."""
  u64 = tg.uint64
  bits_ = d.bitcast(tg.uint32)
  e = ((bits_ >> 23) & 0xFF).cast(tg.int32) - 126                     # d = f * 2^e with f in [0.5, 1), e >= 1
  ia = (((bits_ & 0x7FFFFF) | 0x800000) << 8).cast(u64)               # f * 2^32
  i, sh = e >> 5, (e & 31).cast(u64)
  def word(k):   # _TWO_OVER_PI_WORDS[i + k]
    out = const(0, np.uint64, d.shape)
    for j, w in enumerate(_TWO_OVER_PI_WORDS): out = (i + k == j).where(const(w, np.uint64, d.shape), out)
    return out
  a = [word(k) for k in range(4)]
  w = [((a[k] << sh) | (a[k + 1] >> (32 - sh))) & 0xFFFFFFFF for k in range(3)]   # 96 bits of 2/pi aligned with d
  # d*2/pi * 2^62 mod 2^64: quadrant in the top 2 bits (wrap_int: a constant d would be folded without wrapping)
  p = wrap_int(wrap_int(wrap_int(ia * w[0]) << 32) + wrap_int(ia * w[1]) + (wrap_int(ia * w[2]) >> 32))
  q = wrap_int(p + (1 << 61)) >> 62                                     # round to the nearest quadrant
  rem = wrap_int(p - wrap_int(q << 62)).bitcast(tg.int64)               # in [-2^61, 2^61)
  return rem.cast(tg.float32) * (math.pi / 2 / 2.0 ** 62), q.cast(tg.int32)


def _sin_quadrant(r: Tensor, q: Tensor) -> Tensor:
  """sin(r + q*pi/2) for |r| <= pi/4, from tinygrad's minimax sine polynomial on [-pi/2, pi/2]."""
  from tinygrad.codegen.decomp.transcendental import sin_poly
  v = ((q & 1) == 1).where(sin_poly(math.pi / 2 - r.abs()), sin_poly(r))   # cos(r) = sin(pi/2 - |r|) >= 0.7: no cancellation
  return ((q & 2) == 2).where(-v, v)


def _sincos(x: Tensor, shift: int) -> Tensor:
  """sin(x + shift*pi/2) for float32 x; below |x| = 1 no reduction is needed."""
  ok = ~(x.isinf() | x.isnan())
  d = ok.where(x.abs(), full_like(x, 0))
  neg = signbit(x) & (shift == 0)                                      # sin is odd, cos even
  r, q = _reduce_pio2(d.maximum(1))
  small = x.sin() if shift == 0 else 1 - 2 * (x * 0.5).sin().square()   # |x| < 1: cos >= 0.54, no cancellation
  out = (d < 1).where(small, neg.where(-1, 1) * _sin_quadrant(r, q + shift))
  return ok.where(out, full_like(x, math.nan))


@elementwise(P.sin_p)
@_no_f64_trig
@in_f32
def sin(x): return _sincos(x, 0)   # tinygrad's own sine keeps only absolute accuracy near multiples of pi


@elementwise(P.cos_p)
@_no_f64_trig
@in_f32
def cos(x): return _sincos(x, 1)   # tinygrad's cos is sin(pi/2 - x): loses x's low bits (cos(1e4) off by 1.5e-4)


@elementwise(P.tan_p)
@_no_f64_trig
@in_f32
def tan(x): return sin(x) / cos(x)   # both ~1 ulp with exact reduction, so the quotient is accurate near the poles too


def _atan(t):
  """atan for float32/float64 (Cephes atanf / atan: range reduction to |t| <= tan(pi/8) or 0.66, then a polynomial)."""
  a = t.abs()
  if t.dtype == tg.float64:
    big, mid = a > 2.41421356237309504880, a > 0.66
  else:
    big, mid = a > 2.414213562373095, a > 0.4142135623730950
  base = big.where(full_like(t, math.pi / 2), mid.where(full_like(t, math.pi / 4), full_like(t, 0)))
  u = big.where(-1 / a, mid.where((a - 1) / (a + 1), a))
  z = u * u
  if t.dtype == tg.float64:
    p = (((-8.750608600031904122785e-1 * z - 1.615753718733365076637e1) * z - 7.500855792314704667340e1) * z
         - 1.228866684490136173410e2) * z - 6.485021904942025371773e1
    q = ((((z + 2.485846490142306297962e1) * z + 1.650270098316988542046e2) * z + 4.328810604912902668951e2) * z
         + 4.853903996359136964868e2) * z + 1.945506571482613964425e2
    poly = u * (z * p / q) + u + big.where(full_like(t, 6.123233995736765886130e-17), mid.where(full_like(t, 3.061616997868382943065e-17), full_like(t, 0)))
  else:
    poly = (((8.05374449538e-2 * z - 1.38776856032e-1) * z + 1.99777106478e-1) * z - 3.33329491539e-1) * z * u + u
  return copysign(base + poly, t)


@elementwise(P.atan2_p)
@in_f32
def atan2(y, x):
  ax, ay = fabs(x), fabs(y)
  both_inf, both_zero = ax.isinf() & ay.isinf(), (ax == 0) & (ay == 0)
  t = both_inf.where(full_like(x, 1), both_zero.where(full_like(x, 0), ay / ax))   # |y|/|x|: inf/0 give pi/2 and 0
  r = _atan(t)
  r = signbit(x).where(full_like(x, math.pi) - r, r)        # x < 0 or x = -0: the left half-plane
  return copysign(r, y)                                      # NaN in, NaN out (t is NaN)


# CHLO's decompositions of the inverse functions, op by op in the input dtype (each op rounds, as in XLA)
@elementwise(P.asin_p)
def asin(x):
  one = full_like(x, 1)
  a = atan2(x, sqrt((one - x) * (x + one)) + one)
  return a + a


@elementwise(P.acos_p)
def acos(x):
  one = full_like(x, 1)
  return atan2(sqrt((one - x) * (x + one)), x)


@elementwise(P.atan_p)
def atan(x): return atan2(x, full_like(x, 1))


@elementwise(P.asinh_p)
def asinh(x):
  one, ax, x2 = full_like(x, 1), x.abs(), x * x
  big = log(ax) + _ln2(x)
  small = log1p(ax + x2 / (sqrt(x2 + one) + one))
  return sign(x) * (ax >= full_like(x, math.sqrt(float(jnp.finfo(jdtype(x)).max)))).where(big, small)


@elementwise(P.acosh_p)
def acosh(x):
  one = full_like(x, 1)
  s = sqrt(x - one)
  big = log(x) + _ln2(x)
  return (x >= full_like(x, float(jnp.finfo(jdtype(x)).max) / 2)).where(big, log1p(s * (sqrt(x + one) + s)))


@elementwise(P.atanh_p)
def atanh(x):
  half = (log1p(x) - log1p(-x)) * full_like(x, 0.5)
  return (x.abs() > full_like(x, 1)).where(full_like(x, math.nan), half)


@elementwise(P.floor_p)
def floor(x): return x.floor()


@elementwise(P.ceil_p)
def ceil(x): return x.ceil()


@register(P.round_p)
def round_(x, *, rounding_method): return _round(x, int(rounding_method) == int(lax.RoundingMethod.TO_NEAREST_EVEN))


@bf16_in_f32   # exact
def _round(x, to_even: bool):
  t = x.trunc()
  frac = (x - t).abs()                                           # exact
  if to_even:
    odd = (t * 0.5).trunc() * 2 != t
    up = (frac > 0.5) | ((frac == 0.5) & odd)
  else:
    up = frac >= 0.5
  r = up.where(t + copysign(1.0, x), t)
  return (r == 0).where(copysign(0.0, x), r)                    # the sign of zero follows x: round(-0.3) = -0.0


@elementwise(P.is_finite_p)
def is_finite(x): return ~(x.isinf() | x.isnan())


# ---- comparison and logic --------------------------------------------------------------------------------------

@elementwise(P.eq_p)
def eq(x, y): return x == y


@elementwise(P.ne_p)
def ne(x, y): return x != y


@elementwise(P.lt_p)
def lt(x, y): return x < y


@elementwise(P.le_p)
def le(x, y): return (x < y) | (x == y)   # tinygrad's <= is not(>), true for NaN


@elementwise(P.gt_p)
def gt(x, y): return x > y


@elementwise(P.ge_p)
def ge(x, y): return (x > y) | (x == y)


@elementwise(P.and_p)
def and_(x, y): return x & y


@elementwise(P.or_p)
def or_(x, y): return x | y


@elementwise(P.xor_p)
def xor(x, y): return x ^ y


@elementwise(P.not_p)
def not_(x): return x.logical_not() if is_bool(x) else x ^ full_like(x, -1 if not is_unsigned(x) else x.dtype.max)


def _shift_in_range(y, x):
  """XLA: a shift amount outside [0, bit width) — read as unsigned — is out of range."""
  return (y >= 0) & (y < bits(x)) if not is_unsigned(y) else y < bits(x)


@elementwise(P.shift_left_p)
def shift_left(x, y):
  ok = _shift_in_range(y, x)
  return ok.where(wrapping(lambda x, y: x << y)(x, ok.where(y, full_like(y, 0))), full_like(x, 0))


@elementwise(P.shift_right_logical_p)
def shift_right_logical(x, y):
  ok = _shift_in_range(y, x)
  unsigned = same_width_uint(x.dtype)
  shifted = (x.bitcast(unsigned) >> ok.where(y, full_like(y, 0)).cast(unsigned)).bitcast(x.dtype)
  return ok.where(shifted, full_like(x, 0))


@elementwise(P.shift_right_arithmetic_p)
def shift_right_arithmetic(x, y):
  ok = _shift_in_range(y, x)
  signed = same_width_int(x.dtype)
  xs = x.bitcast(signed)
  amount = ok.where(y, full_like(y, bits(x) - 1)).cast(signed)
  return (xs >> amount).bitcast(x.dtype)


@elementwise(P.population_count_p)
def population_count(x):
  u, count = x.bitcast(same_width_uint(x.dtype)), full_like(x, 0)
  for i in range(bits(x)): count = count + ((u >> i) & 1).cast(x.dtype)
  return count


@elementwise(P.clz_p)
def clz(x):
  u, n, seen = x.bitcast(same_width_uint(x.dtype)), full_like(x, 0), None
  for i in reversed(range(bits(x))):
    bit = ((u >> i) & 1).cast(tg.bool)
    seen = bit if seen is None else seen | bit
    n = n + (~seen).cast(x.dtype)
  return n


# ---- selection and conversion ----------------------------------------------------------------------------------

@register(P.select_n_p, moves_keys=True)
def select_n(which, *cases):
  if len(cases) == 1: return cases[0]
  if is_bool(which): return which.where(cases[1], cases[0])
  out = cases[-1]
  for i in reversed(range(len(cases) - 1)): out = (which == i).where(cases[i], out)
  return out


@register(P.clamp_p)
@bf16_in_f32   # exact
def clamp(lo, x, hi):
  return min_(max_(x, lo.expand(x.shape) if lo.shape != x.shape else lo), hi.expand(x.shape) if hi.shape != x.shape else hi)


@register(P.convert_element_type_p)
def convert_element_type(x, *, new_dtype, weak_type=False, sharding=None):
  target = to_tiny(new_dtype)
  if x.dtype == target: return x
  if target == tg.bool: return x != 0
  if is_float(x) and tg.is_int(target): return _float_to_int(x, new_dtype)
  return int_to_int(x, target) if tg.is_int(x.dtype) else wrap_int(x.cast(target))   # int -> narrower or other signedness wraps


def _float_to_int(x, new_dtype):
  """XLA: NaN becomes 0 and out-of-range values saturate at the integer type's bounds. The bounds are powers of two
  (exact in every float type, or inf where it overflows: f16 has no 2^31) and out-of-range values never reach the cast,
  whose result C leaves undefined."""
  info = np.iinfo(new_dtype)
  t = x.trunc()
  high = t >= 2.0 ** (info.bits - (info.min < 0))                      # the first value above info.max
  low = (t < -(2.0 ** (info.bits - 1))) | (t == -math.inf) if info.min < 0 else t < 0
  safe = (high | low | x.isnan()).where(full_like(t, 0), t).cast(to_tiny(new_dtype))
  out = high.where(const(info.max, new_dtype, x.shape), low.where(const(info.min, new_dtype, x.shape), safe))
  return x.isnan().where(const(0, new_dtype, x.shape), out)


@register(P.bitcast_convert_type_p)
def bitcast_convert_type(x, *, new_dtype):
  target = to_tiny(new_dtype)
  if target.itemsize != x.dtype.itemsize:
    raise NotImplementedError(f"bitcast_convert_type between widths ({x.dtype.itemsize} -> {target.itemsize} bytes)")
  return x.bitcast(target)


# ---- complex numbers -------------------------------------------------------------------------------------------

unsupported("complex", "conj", "real", "imag", "fft", why="tinygrad has no complex dtype (see README: complex numbers)")
