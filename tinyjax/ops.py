"""The primitive registry and the elementwise rules.

A rule is `rule(*tensors, **params) -> Tensor | list[Tensor]`: it receives the equation's inputs as lazy
tinygrad Tensors and the Jaxpr's params under their own names. Rules of larger families live in sibling
modules (shapes, reductions, conv) and register into the same table, keyed by the primitive object.
"""
import contextvars
import importlib
import math

import numpy as np
from jax import lax
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from .dtypes import to_jax, to_tiny

RULES: dict = {}                       # jax Primitive -> rule
NOTES: dict = {}                       # jax Primitive -> what is partial about its rule (README coverage table)
DEVICE = contextvars.ContextVar("tinyjax_device", default=None)   # set by the interpreter while a program is built
EQUATION = contextvars.ContextVar("tinyjax_equation", default=None)  # the JaxprEqn whose rule runs (for avals)


def register(*primitives, note: str | None = None):
  """Decorator: `@register(P.add_p)` makes the function the rule for that primitive."""
  def wrap(rule):
    for p in primitives:
      if p is None: continue   # a primitive this JAX version does not have (see primitive())
      RULES[p] = rule
      if note: NOTES[p] = note
    return rule
  return wrap


# Where JAX keeps primitives that jax.extend does not export; their homes move between versions (the one shim).
_PRIMITIVE_HOMES = ("jax.extend.core.primitives", "jax._src.lax.lax", "jax._src.lax.control_flow", "jax._src.lax.slicing",
                    "jax._src.ad_util", "jax._src.pjit", "jax._src.random.prng", "jax._src.prng", "jax._src.ad_checkpoint",
                    "jax._src.callback", "jax._src.debugging", "jax._src.lax.parallel", "jax._src.lax.linalg")


def primitive(name: str):
  """A primitive by its Python name (e.g. "split_p"), wherever this JAX keeps it; None if this JAX lacks it."""
  for home in _PRIMITIVE_HOMES:
    try: module = importlib.import_module(home)
    except ImportError: continue
    if (p := getattr(module, name, None)) is not None: return p
  return None


# ---- helpers shared by all rule modules ----------------------------------------------------------------------

def const(value, dtype, shape=()) -> Tensor:
  """A constant of a JAX dtype on the program's device (folded into kernels, never a buffer)."""
  value = np.asarray(value, dtype=np.dtype(dtype)).item() if np.ndim(value) == 0 else value
  # buffer=False: tinygrad 0.14's Tensor.full otherwise materializes a buffer (one more kernel per constant)
  if np.ndim(value) == 0: return Tensor.full(shape, value, dtype=to_tiny(dtype), buffer=False)
  return Tensor(np.asarray(value, dtype=dtype), device=DEVICE.get())


def jdtype(x: Tensor) -> np.dtype: return to_jax(x.dtype)
def is_float(x: Tensor) -> bool: return tg.is_float(x.dtype)
def is_unsigned(x: Tensor) -> bool: return tg.is_unsigned(x.dtype)
def is_bool(x: Tensor) -> bool: return x.dtype == tg.bool
def bits(x: Tensor) -> int: return x.dtype.itemsize * 8
def full_like(x: Tensor, value) -> Tensor: return const(value, jdtype(x), x.shape)
def nan_where(mask: Tensor, x: Tensor) -> Tensor: return mask.where(full_like(x, math.nan), x)


def elementwise(*primitives):
  """Register an n-ary elementwise rule `fn(*xs)`. JAX guarantees equal dtypes; scalars broadcast (tinygrad does that).
  `out_dtype` (mul) converts the inputs first, as XLA's lowering does; `accuracy` is a hint tinygrad cannot take."""
  def wrap(fn):
    def rule(*xs, out_dtype=None, accuracy=None):
      if out_dtype is not None: xs = [convert_element_type(x, new_dtype=out_dtype) for x in xs]
      return fn(*xs)
    rule.__name__ = rule.__qualname__ = fn.__name__
    register(*primitives)(rule)
    return fn
  return wrap


# ---- arithmetic ------------------------------------------------------------------------------------------------

elementwise(P.add_p, P.add_jaxvals_p)(lambda x, y: x + y)
elementwise(P.sub_p)(lambda x, y: x - y)
elementwise(P.mul_p)(lambda x, y: x * y)
elementwise(P.neg_p)(lambda x: -x if not is_unsigned(x) else full_like(x, 0) - x)


@elementwise(P.div_p)
def div(x, y):
  if is_float(x): return x / y
  # XLA: truncate toward zero; x/0 is -1 (all ones), INT_MIN/-1 is INT_MIN.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = ((x == full_like(x, np.iinfo(jdtype(x)).min)) & (y == full_like(y, -1))).where(full_like(y, 1), safe_y)
  q = x.div(safe_y, rounding_mode="trunc")
  return (y == 0).where(full_like(x, -1 if not is_unsigned(x) else np.iinfo(jdtype(x)).max), q)


@elementwise(P.rem_p)
def rem(x, y):
  if is_float(x): return x.fmod(y)
  # XLA: sign follows the dividend; x%0 is x; INT_MIN % -1 is 0.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = (y == full_like(y, -1)).where(full_like(y, 1), safe_y)
  r = x - x.div(safe_y, rounding_mode="trunc") * safe_y
  return (y == 0).where(x, r)


@elementwise(P.max_p)
def max_(x, y):
  if is_bool(x): return x | y
  out = x.maximum(y)
  return nan_where(x.isnan() | y.isnan(), out) if is_float(x) else out


@elementwise(P.min_p)
def min_(x, y):
  if is_bool(x): return x & y
  out = x.minimum(y)
  return nan_where(x.isnan() | y.isnan(), out) if is_float(x) else out


@elementwise(P.abs_p)
def abs_(x): return x if is_unsigned(x) else (x < 0).where(-x, x) if not is_float(x) else x.abs()


@elementwise(P.sign_p)
def sign(x):
  if is_unsigned(x): return (x != 0).cast(x.dtype)
  if not is_float(x): return (x > 0).cast(x.dtype) - (x < 0).cast(x.dtype)
  one = full_like(x, 1)
  return (x > 0).where(one, (x < 0).where(-one, x))   # keeps -0.0, +0.0 and NaN as they are


elementwise(P.square_p)(lambda x: x * x)
elementwise(P.copy_p, P.stop_gradient_p if hasattr(P, "stop_gradient_p") else P.copy_p)(lambda x: x)


@register(P.integer_pow_p)
def integer_pow(x, *, y):
  # the same square-and-multiply chain JAX lowers to, so float results round identically
  if y == 0: return full_like(x, 1)
  acc, n, base = None, abs(y), x
  while n > 0:
    if n & 1: acc = base if acc is None else acc * base
    n >>= 1
    if n > 0: base = base * base
  return full_like(acc, 1) / acc if y < 0 else acc


@elementwise(P.pow_p)
def pow_(x, y):
  if not is_float(y):   # integer exponent: XLA's exact repeated multiplication for each element
    return _pow_int_exponent(x, y)
  return _pow_float(x, y)


def _pow_float(x, y):
  # IEEE pow special cases that exp(y*log(x)) gets wrong
  ax = x.abs()
  y_int = y.trunc() == y
  y_odd = y_int & ((y * 0.5).trunc() != y * 0.5)
  mag = (y * ax.log2()).exp2()
  neg = x < 0
  out = neg.where(y_int.where(y_odd.where(-mag, mag), full_like(x, math.nan)), mag)
  out = (x == 0).where((y < 0).where(y_odd.where(full_like(x, math.inf) * _sign_bit_one(x), full_like(x, math.inf)),
                                     (y == 0).where(full_like(x, 1), y_odd.where(x, full_like(x, 0)))), out)
  out = (y == 0).where(full_like(x, 1), out)
  out = ((x == 1)).where(full_like(x, 1), out)
  out = ((x == -1) & y.isinf()).where(full_like(x, 1), out)
  return out


def _sign_bit_one(x):
  """+1 or -1 by the sign bit, so that -0.0 counts as negative."""
  itype = {2: tg.int16, 4: tg.int32, 8: tg.int64}[x.dtype.itemsize]
  return (x.bitcast(itype) < 0).where(full_like(x, -1), full_like(x, 1))


def _pow_int_exponent(x, y):
  n_bits = bits(y)
  y_abs = (y < 0).where(-y, y) if not is_unsigned(y) else y
  acc, base = full_like(x, 1), x
  for i in range(n_bits):
    acc = ((y_abs >> i) & 1).cast(tg.bool).where(acc * base, acc)
    base = base * base
  return (y < 0).where(full_like(x, 1) / acc, acc) if not is_unsigned(y) else acc


# ---- transcendental --------------------------------------------------------------------------------------------

elementwise(P.exp_p)(lambda x: x.exp())
elementwise(P.exp2_p)(lambda x: x.exp2())
elementwise(P.log_p)(lambda x: x.log())
elementwise(P.log1p_p)(lambda x: _log1p(x))
elementwise(P.expm1_p)(lambda x: _expm1(x))
elementwise(P.sqrt_p)(lambda x: x.sqrt())
elementwise(P.rsqrt_p)(lambda x: x.rsqrt())
elementwise(P.cbrt_p)(lambda x: _sign_preserving(x, (x.abs().log2() / 3).exp2()))
elementwise(P.tanh_p)(lambda x: _tanh(x))
elementwise(P.logistic_p)(lambda x: _logistic(x))
elementwise(P.sin_p)(lambda x: x.sin())
elementwise(P.cos_p)(lambda x: x.cos())
elementwise(P.tan_p)(lambda x: x.sin() / x.cos())
elementwise(P.asin_p)(lambda x: x.asin())
elementwise(P.acos_p)(lambda x: x.acos())
elementwise(P.atan_p)(lambda x: x.atan())
elementwise(P.sinh_p)(lambda x: _sinh(x))
elementwise(P.cosh_p)(lambda x: (x.abs().exp() + (-x.abs()).exp()) * 0.5)
elementwise(P.asinh_p)(lambda x: _sign_preserving(x, _log1p(x.abs() + x * x / (1 + (1 + x * x).sqrt()))))
elementwise(P.acosh_p)(lambda x: (x + (x * x - 1).sqrt()).log())
elementwise(P.atanh_p)(lambda x: _log1p(2 * x / (1 - x)) * 0.5)


@elementwise(P.atan2_p)
def atan2(y, x):
  pi = full_like(x, math.pi)
  base = (y / x).atan()
  out = (x < 0).where((_sign_bit_one(y) > 0).where(base + pi, base - pi), base)
  # x == 0 (either sign of zero), and the zero/inf corner cases of IEEE atan2
  out = (x == 0).where((y == 0).where(_atan2_zero(y, x), _sign_bit_one(y) * pi * 0.5), out)
  both_inf = x.isinf() & y.isinf()
  out = both_inf.where(_sign_bit_one(y) * (x > 0).where(pi * 0.25, pi * 0.75), out)
  return nan_where(x.isnan() | y.isnan(), out)


def _atan2_zero(y, x):
  """atan2(±0, ±0): ±0 when x is +0, ±pi when x is -0."""
  return (_sign_bit_one(x) > 0).where(y, _sign_bit_one(y) * full_like(x, math.pi))


def _sign_preserving(x, magnitude): return (x < 0).where(-magnitude, (x == 0).where(x, magnitude))


def _log1p(x):
  # log(1+x) with the cancellation fix: log(u) * x / (u - 1) where u = 1 + x
  u = x + 1
  return u.isinf().where(u, (u == 1).where(x, u.log() * x / (u - 1)))


def _expm1(x):
  u = x.exp()
  return u.isinf().where(u, (u == 1).where(x, (u == 0).where(full_like(x, -1), (u - 1) * x / u.log())))


def _tanh(x):
  # 1 - 2/(exp(2x)+1) loses everything near 0; use expm1 form and saturate
  ax = x.abs()
  e = _expm1(-2 * ax)
  t = -e / (e + 2)
  return x.isnan().where(x, _sign_preserving(x, t))


def _sinh(x):
  ax = x.abs()
  e = _expm1(ax)
  return _sign_preserving(x, 0.5 * (e + e / (e + 1)))


def _logistic(x):
  # 1/(1+exp(-x)) overflows harmlessly to 0 for very negative x, as XLA's
  return 1 / (1 + (-x).exp())


@elementwise(P.floor_p)
def floor(x): return x.floor()


@elementwise(P.ceil_p)
def ceil(x): return x.ceil()


@register(P.round_p)
def round_(x, *, rounding_method):
  if int(rounding_method) == int(lax.RoundingMethod.TO_NEAREST_EVEN): return _round_half_even(x)
  r = (x.abs() + 0.5).floor()
  r = (r - x.abs() > 0.5).where(r - 1, r)  # x.abs()+0.5 may round up in float; undo that
  return _sign_preserving(x, r).where(~x.isinf() & ~x.isnan(), x)


def _round_half_even(x):
  f = x.floor()
  diff = x - f
  up = (diff > 0.5) | ((diff == 0.5) & ((f * 0.5).floor() * 2 != f))
  r = up.where(f + 1, f)
  return (r == 0).where(x * 0, r).where(~x.isinf() & ~x.isnan(), x)   # keep the sign of zero


@elementwise(P.is_finite_p)
def is_finite(x): return ~(x.isinf() | x.isnan())


# ---- comparison and logic --------------------------------------------------------------------------------------

elementwise(P.eq_p)(lambda x, y: x == y)
elementwise(P.ne_p)(lambda x, y: x != y)
elementwise(P.lt_p)(lambda x, y: x < y)
elementwise(P.le_p)(lambda x, y: (x < y) | (x == y))   # tinygrad's <= is not(>), true for NaN
elementwise(P.gt_p)(lambda x, y: x > y)
elementwise(P.ge_p)(lambda x, y: (x > y) | (x == y))
elementwise(P.and_p)(lambda x, y: x & y)
elementwise(P.or_p)(lambda x, y: x | y)
elementwise(P.xor_p)(lambda x, y: x ^ y)
elementwise(P.not_p)(lambda x: x.logical_not() if is_bool(x) else x ^ full_like(x, -1 if not is_unsigned(x) else np.iinfo(jdtype(x)).max))


def _shift_in_range(y, x):
  """XLA: a shift amount outside [0, bit width) — read as unsigned — is out of range."""
  return (y >= 0) & (y < bits(x)) if not is_unsigned(y) else y < bits(x)


@elementwise(P.shift_left_p)
def shift_left(x, y):
  ok = _shift_in_range(y, x)
  return ok.where(x << ok.where(y, full_like(y, 0)), full_like(x, 0))


@elementwise(P.shift_right_logical_p)
def shift_right_logical(x, y):
  ok = _shift_in_range(y, x)
  unsigned = {tg.int8: tg.uint8, tg.int16: tg.uint16, tg.int32: tg.uint32, tg.int64: tg.uint64}.get(x.dtype, x.dtype)
  shifted = (x.bitcast(unsigned) >> ok.where(y, full_like(y, 0)).cast(unsigned)).bitcast(x.dtype)
  return ok.where(shifted, full_like(x, 0))


@elementwise(P.shift_right_arithmetic_p)
def shift_right_arithmetic(x, y):
  ok = _shift_in_range(y, x)
  signed = {tg.uint8: tg.int8, tg.uint16: tg.int16, tg.uint32: tg.int32, tg.uint64: tg.int64}.get(x.dtype, x.dtype)
  xs = x.bitcast(signed)
  amount = ok.where(y, full_like(y, bits(x) - 1)).cast(signed)
  return (xs >> amount).bitcast(x.dtype)


@elementwise(P.population_count_p)
def population_count(x):
  unsigned = {tg.int8: tg.uint8, tg.int16: tg.uint16, tg.int32: tg.uint32, tg.int64: tg.uint64}.get(x.dtype, x.dtype)
  u, count = x.bitcast(unsigned), full_like(x, 0)
  for i in range(bits(x)): count = count + ((u >> i) & 1).cast(x.dtype)
  return count


@elementwise(P.clz_p)
def clz(x):
  unsigned = {tg.int8: tg.uint8, tg.int16: tg.uint16, tg.int32: tg.uint32, tg.int64: tg.uint64}.get(x.dtype, x.dtype)
  u, n, seen = x.bitcast(unsigned), full_like(x, 0), None
  for i in reversed(range(bits(x))):
    bit = ((u >> i) & 1).cast(tg.bool)
    seen = bit if seen is None else seen | bit
    n = n + (~seen).cast(x.dtype)
  return n


# ---- selection and conversion ----------------------------------------------------------------------------------

@register(P.select_n_p)
def select_n(which, *cases):
  if len(cases) == 1: return cases[0]
  if is_bool(which): return which.where(cases[1], cases[0])
  out = cases[-1]
  for i in reversed(range(len(cases) - 1)): out = (which == i).where(cases[i], out)
  return out


@register(P.clamp_p)
def clamp(lo, x, hi): return min_(max_(x, lo.expand(x.shape) if lo.shape != x.shape else lo), hi.expand(x.shape) if hi.shape != x.shape else hi)


@register(P.convert_element_type_p)
def convert_element_type(x, *, new_dtype, weak_type=False, sharding=None):
  target = to_tiny(new_dtype)
  if x.dtype == target: return x
  if target == tg.bool: return x != 0
  if is_float(x) and tg.is_int(target): return _float_to_int(x, new_dtype)
  return x.cast(target)


def _float_to_int(x, new_dtype):
  """XLA: NaN becomes 0 and out-of-range values saturate at the integer type's bounds."""
  info = np.iinfo(new_dtype)
  t = x.trunc()
  lo_ok, hi_ok = t >= float(info.min), t < float(info.max) + 1.0 if info.max < 2 ** 24 else t < 2.0 ** (info.bits - (0 if info.min == 0 else 1))
  safe = (lo_ok & hi_ok).where(t, full_like(t, 0)).cast(to_tiny(new_dtype))
  out = hi_ok.where(safe, const(info.max, new_dtype, x.shape))
  out = lo_ok.where(out, const(info.min, new_dtype, x.shape))
  return x.isnan().where(const(0, new_dtype, x.shape), out)


@register(P.bitcast_convert_type_p)
def bitcast_convert_type(x, *, new_dtype):
  target = to_tiny(new_dtype)
  if target.itemsize != x.dtype.itemsize:
    raise NotImplementedError(f"bitcast_convert_type between widths ({x.dtype.itemsize} -> {target.itemsize} bytes)")
  return x.bitcast(target)
