"""The primitive registry and the elementwise rules.

A rule is `rule(*tensors, **params) -> Tensor | list[Tensor]`: it receives the equation's inputs as lazy
tinygrad Tensors and the Jaxpr's params under their own names. Rules of larger families live in sibling
modules (shapes, reductions, conv) and register into the same table, keyed by the primitive object.
"""
import contextvars
import importlib
import math
import weakref

import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg
from tinygrad.uop.ops import GroupOp, Ops

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
  """A constant of a JAX dtype on the program's device, folded into the kernels that use it.
  NaN is the exception: tinygrad 0.14 folds `NaN != NaN` (its isnan) to False, so a NaN constant gets a buffer."""
  value = np.asarray(value, dtype=np.dtype(dtype)).item() if np.ndim(value) == 0 else value
  if np.ndim(value) == 0:
    if isinstance(value, float) and math.isnan(value): return Tensor.full(shape, value, dtype=to_tiny(dtype), device=DEVICE.get())
    # buffer=False: tinygrad 0.14's Tensor.full otherwise materializes a buffer (one more kernel per constant)
    return Tensor.full(shape, value, dtype=to_tiny(dtype), buffer=False)
  return Tensor(np.array(value, dtype=dtype), device=DEVICE.get())   # a writable copy: some devices' copy-in needs one


def jdtype(x: Tensor) -> np.dtype: return to_jax(x.dtype)
def is_float(x: Tensor) -> bool: return tg.is_float(x.dtype)
def is_unsigned(x: Tensor) -> bool: return tg.is_unsigned(x.dtype)
def is_bool(x: Tensor) -> bool: return x.dtype == tg.bool
def bits(x: Tensor) -> int: return x.dtype.itemsize * 8
def full_like(x: Tensor, value) -> Tensor:
  if isinstance(value, float) and math.isnan(value) and x.dtype in _QUIET_NAN: return nan_like(x)
  return const(value, jdtype(x), x.shape)
def nan_where(mask: Tensor, x: Tensor) -> Tensor: return mask.where(nan_like(x), x)


_QUIET_NAN = {tg.float16: (tg.uint16, 0x7E00), tg.bfloat16: (tg.uint16, 0x7FC0), tg.float32: (tg.uint32, 0x7FC00000),
              tg.float64: (tg.uint64, 0x7FF8000000000000)}


def nan_like(x: Tensor) -> Tensor:
  """NaN in x's shape and float dtype, computed from x's own bits (exponent and quiet bit set, so NaN whatever x is)
  rather than stored: tinygrad cannot fold it into a NaN constant (whose `NaN != NaN` it would fold to False, see
  const), so it needs neither a NaN-filled buffer (one more kernel, and a read) nor anything but an OR in the kernel.
  The sign is x's (XLA's NaN sign is not observable in parity). A graph of constants only would still fold whole, so
  that keeps const's buffer."""
  if x.dtype not in _QUIET_NAN or _constant_expr(x.uop): return const(math.nan, jdtype(x), x.shape)
  unsigned, quiet = _QUIET_NAN[x.dtype]
  return (x.bitcast(unsigned) | quiet).bitcast(x.dtype)


_UNSIGNED = {tg.int8: tg.uint8, tg.int16: tg.uint16, tg.int32: tg.uint32, tg.int64: tg.uint64}
_CONSTANT_EXPR: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # UOp -> a graph of constants only
_CONSTANT_OPS = frozenset({Ops.CONST, Ops.STACK, Ops.CAST, Ops.BITCAST, Ops.REDUCE, Ops.DETACH, *GroupOp.ALU, *GroupOp.Movement})


def _constant_expr(u) -> bool:
  """True when a UOp's graph is made of constants and the ops on them only (no buffer, parameter or variable), so that
  tinygrad folds it whole at compile time. Memoized per UOp: checking each rule's result costs O(new nodes)."""
  stack = [u]
  while stack:
    n = stack[-1]
    if n in _CONSTANT_EXPR: stack.pop(); continue
    pending = [s for s in n.src if s not in _CONSTANT_EXPR]
    if pending: stack.extend(pending); continue
    stack.pop()
    _CONSTANT_EXPR[n] = n.op in _CONSTANT_OPS and all(_CONSTANT_EXPR[s] for s in n.src)
  return _CONSTANT_EXPR[u]


def wrap_int(x: Tensor) -> Tensor:
  """Two's-complement wrap-around of an integer result that tinygrad will constant-fold, as XLA's.

  tinygrad 0.14 folds integer ops on constants with unbounded Python ints and never truncates them to the dtype
  (tinygrad/uop/symbolic.py: fold_const_alu calls exec_alu(..., truncate_output=False); CAST(CONST) folds to
  const_like(c.val)). So uint32 65536*65536 folds to a uint32 CONST 4294967296, int32 2147483647-(-2147483648) to an
  int32 CONST 4294967295, and whatever is folded from them (comparisons, divisions, widening casts) reads the value
  whole; only the stored value looks right, because C truncates the literal. Masking with the all-ones value of the
  unsigned type of the same width folds to the wrapped bits (a signed value is masked as its unsigned bitcast:
  BITCAST(CONST) folds truncating). Computed values (any buffer or variable in the graph) wrap in the generated code
  already and are returned as they are, so this costs nothing at run time. Identity for floats and bools."""
  if not (tg.is_unsigned(x.dtype) or x.dtype in _UNSIGNED) or not _constant_expr(x.uop): return x
  if tg.is_unsigned(x.dtype): return x & full_like(x, x.dtype.max)
  u = _UNSIGNED[x.dtype]   # (a bare bitcast round trip is not enough: symbolic's bitcast-of-bitcast rule raises on the
  return (x.bitcast(u) & const(u.max, to_jax(u), x.shape)).bitcast(x.dtype)   # weak CONST an x*1 -> x fold can leave)


def wrapping(fn):
  """fn, a composition of integer +, -, * and << on tensors of one dtype, with XLA's two's-complement wrap-around.

  tinygrad assumes integer arithmetic never overflows, and three things break when it does: its range analysis folds
  with unbounded ints ((i+1) > i is True at INT_MAX; uint32 0-b is taken to be <= 0); its C code computes int8/int16
  in int, so uint8 255+1 reads 256 in whatever is fused after it; and int32/int64 overflow is undefined in C, which
  clang -O2 optimizes on. Where the exact result may leave the dtype's range, fn runs in the unsigned type of the same
  width (at least 32 bits), whose arithmetic C defines modulo 2^n, masked with its all-ones value so the range analysis
  sees [0, max]; the low bits come back by a cast and a bitcast, which tinygrad takes as the full range. Arithmetic whose
  range provably fits (iota plus a constant) is returned as it is. Ring arithmetic commutes with the truncation, so
  a whole chain (integer_pow) wraps once at the end. Identity for floats and bools."""
  def wrapped(*xs):
    plain = fn(*xs)
    dt = plain.dtype
    if not tg.is_int(dt): return plain
    # (the range is exact for +, - and *; for other ops tinygrad answers the dtype's range, which proves nothing)
    if plain.uop.op in (Ops.ADD, Ops.SUB, Ops.MUL) and dt.min <= plain.uop.vmin and plain.uop.vmax <= dt.max: return wrap_int(plain)
    wide = _UNSIGNED.get(dt, dt) if dt.itemsize >= 4 else tg.uint32
    out = fn(*[x.bitcast(wide) if x.dtype.itemsize == wide.itemsize else x.cast(wide) for x in xs])
    return _int_to_int(wrap_int(out & const(wide.max, to_jax(wide), out.shape)), dt)
  wrapped.__name__ = fn.__name__
  return wrapped


def _int_to_int(x: Tensor, target) -> Tensor:
  """x cast to the integer dtype target, wrapping as C and XLA do. tinygrad's range analysis assumes a cast to a signed
  type never wraps (int32 200 -> int8 would be taken to be 127 at most), so a signed target goes through the unsigned
  type of its width and a bitcast (a bitcast's range is the whole dtype)."""
  if x.dtype == target: return x
  if target.min <= x.uop.vmin and x.uop.vmax <= target.max: return wrap_int(x.cast(target))
  unsigned = _UNSIGNED.get(target, target)
  out = wrap_int(x.cast(unsigned) if x.dtype != unsigned else x)
  return out.bitcast(target) if unsigned != target else out


def _in_f32(fn):
  """Evaluate fn in float32 for f16/bf16 arguments and round the result back."""
  def wrapped(*xs):
    low = xs[0].dtype in (tg.float16, tg.bfloat16)
    out = fn(*[x.cast(tg.float32) for x in xs]) if low else fn(*xs)
    return out.cast(xs[0].dtype) if low else out
  wrapped.__name__ = fn.__name__
  return wrapped


def _no_f64_trig(fn):
  def wrapped(x):
    if x.dtype == tg.float64:   # tinygrad 0.14 reduces float64 arguments >= 30 with 32 bits of the mantissa: sin(1e4) off by 1e-4
      raise NotImplementedError(f"{fn.__name__} on float64: tinygrad's float64 argument reduction is inaccurate for |x| >= 30")
    return fn(x)
  wrapped.__name__ = fn.__name__
  return wrapped


def _signbit(x: Tensor) -> Tensor:
  """True where the sign bit is set (so for -0.0 too)."""
  return x.bitcast({2: tg.int16, 4: tg.int32, 8: tg.int64}[x.dtype.itemsize]) < 0


def _fabs(x: Tensor) -> Tensor:
  """|x| by clearing the sign bit: tinygrad's abs keeps -0.0 negative."""
  itype = {2: tg.int16, 4: tg.int32, 8: tg.int64}[x.dtype.itemsize]
  return (x.bitcast(itype) & np.iinfo(to_jax(itype)).max).bitcast(x.dtype)


def _round_to(t: Tensor, dtype) -> Tensor:
  """float32 t rounded to the nearest float16/bfloat16 value (ties to even), kept in float32. XLA rounds f16/bf16 after
  every op; tinygrad keeps f16 arithmetic in f32 (clang's __fp16) and bf16 goes through f32 here (see elementwise)."""
  b = t.bitcast(tg.uint32)
  if dtype == tg.bfloat16: r = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).bitcast(tg.float32)
  else:
    r = ((b + 0xFFF + ((b >> 13) & 1)) & 0xFFFFE000).bitcast(tg.float32)
    v = _fabs(t) * 2.0 ** 24                                                      # f16 subnormals: steps of 2^-24
    f = v.floor()
    up = (v - f > 0.5) | ((v - f == 0.5) & ((f * 0.5).floor() * 2 != f))
    r = (v < 2.0 ** 10).where(_copysign(up.where(f + 1, f) * 2.0 ** -24, t), r)
    r = (_fabs(r) >= 65520).where(_copysign(math.inf, t), r)                    # past 65504: inf
  return t.isnan().where(t, r)


def _copysign(mag: "Tensor | float", sign: Tensor) -> Tensor:
  """|mag| with the sign bit of sign (a float mag stays a constant: tinygrad cannot bitcast a float64 constant)."""
  m = _fabs(mag) if isinstance(mag, Tensor) else full_like(sign, abs(mag))
  return _signbit(sign).where(-m, m)


# bfloat16 arithmetic is computed in float32 and rounded back: clang-19 with -march=native can take minutes (or hang)
# compiling vectorized __bf16 arithmetic, and XLA CPU itself upcasts bf16 elementwise ops to f32. One rounding per
# primitive; decompositions inside a rule (atanh, asinh, ...) round once at the end instead of after each step.


def elementwise(*primitives):
  """Register an n-ary elementwise rule `fn(*xs)`. JAX guarantees equal dtypes; scalars broadcast (tinygrad does that).
  `out_dtype` (mul) converts the inputs first, as XLA's lowering does; `accuracy` is a hint tinygrad cannot take."""
  def wrap(fn):
    def rule(*xs, out_dtype=None, accuracy=None):
      if out_dtype is not None: xs = [convert_element_type(x, new_dtype=out_dtype) for x in xs]
      if any(x.dtype == tg.bfloat16 for x in xs):   # see the comment above
        out = fn(*[x.cast(tg.float32) if x.dtype == tg.bfloat16 else x for x in xs])
        return out.cast(tg.bfloat16) if out.dtype == tg.float32 else out
      return fn(*xs)
    rule.__name__ = rule.__qualname__ = fn.__name__
    register(*primitives)(rule)
    return fn
  return wrap


# ---- arithmetic ------------------------------------------------------------------------------------------------

elementwise(P.add_p, P.add_jaxvals_p)(wrapping(lambda x, y: x + y))
def _is_positive_zero(x: Tensor) -> bool:
  u = x.uop.base
  while u.op is Ops.CAST: u = u.src[0].base   # a bfloat16 operand arrives cast to float32
  return u.op is Ops.CONST and float(u.arg) == 0 and math.copysign(1, float(u.arg)) > 0


@elementwise(P.sub_p)
@wrapping
def sub(x, y):
  if is_float(x) and _is_positive_zero(x): return (y == 0).where(x, -y)   # tinygrad folds 0 + -y to -y: 0 - 0 is +0
  return x - y


elementwise(P.mul_p)(wrapping(lambda x, y: x * y))
neg = elementwise(P.neg_p)(wrapping(lambda x: -x if not tg.is_unsigned(x.dtype) else full_like(x, 0) - x))


@elementwise(P.div_p)
def div(x, y):
  # tinygrad divides as x * (1/y), which in float16 (CUDA's hrcp, OpenCL's half) rounds twice: divide in float32
  if x.dtype == tg.float16: return _in_f32(div)(x, y)
  if is_float(x): return x / y
  # XLA: truncate toward zero; x/0 is -1 (all ones), INT_MIN/-1 is INT_MIN.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = ((x == full_like(x, np.iinfo(jdtype(x)).min)) & (y == full_like(y, -1))).where(full_like(y, 1), safe_y)
  q = x.div(safe_y, rounding_mode="trunc")
  return (y == 0).where(full_like(x, -1 if not is_unsigned(x) else np.iinfo(jdtype(x)).max), q)


@elementwise(P.rem_p)
def rem(x, y):
  if is_float(x): return _fmod(x, y)
  # XLA: sign follows the dividend; x%0 is x; INT_MIN % -1 is 0.
  safe_y = (y == 0).where(full_like(y, 1), y)
  if not is_unsigned(x): safe_y = (y == full_like(y, -1)).where(full_like(y, 1), safe_y)
  r = x - x.div(safe_y, rounding_mode="trunc") * safe_y
  return (y == 0).where(x, r)


@_in_f32
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
  out = _copysign(r.cast(tg.float32) * 2.0 ** -23 * two_ey, x)        # exact: a multiple of y's last place below |y|
  out = ((d < 0) | y.isinf()).where(x, out)                            # |x| < |y|: x itself
  return (x.isinf() | (y == 0) | x.isnan() | y.isnan()).where(full_like(x, math.nan), out)


@elementwise(P.max_p)
def max_(x, y):
  if is_bool(x): return x | y
  if not is_float(x): return x.maximum(y)
  out = (x == y).where(_signbit(x).where(y, x), x.maximum(y))   # XLA: max(-0, +0) = +0 either way round, NaN wins
  return nan_where(x.isnan() | y.isnan(), out)


@elementwise(P.min_p)
def min_(x, y):
  if is_bool(x): return x & y
  if not is_float(x): return x.minimum(y)
  out = (x == y).where(_signbit(x).where(x, y), x.minimum(y))   # XLA: min(-0, +0) = -0
  return nan_where(x.isnan() | y.isnan(), out)


@elementwise(P.abs_p)
def abs_(x): return x if is_unsigned(x) else (x < 0).where(neg(x), x) if not is_float(x) else _fabs(x)


@elementwise(P.sign_p)
def sign(x):
  if is_unsigned(x): return (x != 0).cast(x.dtype)
  if not is_float(x): return (x > 0).cast(x.dtype) - (x < 0).cast(x.dtype)
  one = full_like(x, 1)
  return (x > 0).where(one, (x < 0).where(-one, x))   # keeps -0.0, +0.0 and NaN as they are


elementwise(P.square_p)(wrapping(lambda x: x * x))
elementwise(primitive("one_minus_square_p"))(lambda x: 1 - x * x)   # jax >= 0.11 (tanh's and asin's derivatives)
elementwise(P.copy_p, P.stop_gradient_p if hasattr(P, "stop_gradient_p") else P.copy_p)(lambda x: x)


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
  low = x.dtype in (tg.float16, tg.bfloat16)   # XLA rounds each product to f16/bf16; tinygrad would keep f32 in a kernel
  acc = _power_chain(x.cast(tg.float32), y, lambda t: _round_to(t, x.dtype)) if low else _power_chain(x, y)
  if y > 0: return acc.cast(x.dtype)
  # XLA's CPU code runs with denormals flushed to zero, so 1/x**3 is inf once x**3 is subnormal (2e-13**-3 in f32);
  # f16 is computed in f32 there, where f16's subnormals are normal numbers.
  if x.dtype != tg.float16: acc = (_fabs(acc) < float(jnp.finfo(jdtype(acc)).tiny)).where(_copysign(0.0, acc), acc)
  return (1 / acc).cast(x.dtype)


@register(P.pow_p)
def pow_(x, y, accuracy=None):
  # XLA converts an integer exponent to the base's dtype (f16 overflows to inf, bf16 rounds -257 to -256), then takes
  # powf. Registered directly: elementwise would hand this rule bfloat16 already widened to float32.
  # (rounded by hand for those: tinygrad keeps a half/bfloat16 intermediate in float32 inside a kernel)
  if not is_float(y):
    low = x.dtype in (tg.float16, tg.bfloat16)
    y = _round_to(y.cast(tg.float32), x.dtype) if low else convert_element_type(y, new_dtype=jdtype(x))
  return _pow(x, y)


@_in_f32
def _pow(x, y):
  """IEEE pow: exp2(y*log2|x|) (within ~|y*log2 x|*2^-24 relative, near overflow 5e-6 in f32) plus the special cases."""
  y_int = y.trunc() == y                                       # true for ±inf too
  y_odd = y_int & ((y * 0.5).trunc() != y * 0.5)
  mag = (y * x.abs().log2()).exp2()                            # 0**y, inf**y, |x|<1 or >1 with y=±inf all follow from this
  out = (_signbit(x) & y_odd).where(-mag, mag)                 # (-0)**-1 = -inf, (-inf)**3 = -inf
  out = ((x < 0) & ~x.isinf() & ~y_int).where(full_like(x, math.nan), out)
  out = ((x.abs() == 1) & y.isinf()).where(full_like(x, 1), out)
  # exact where the result can be the largest float (pow(max, 1) must not round up to inf)
  out = (y == 1).where(x, (y == 2).where(x * x, (y == -1).where(1 / x, out)))
  return ((x == 1) | (y == 0)).where(full_like(x, 1), out)     # even when the other operand is NaN


# ---- transcendental --------------------------------------------------------------------------------------------
# XLA on CPU evaluates a single f16/bf16 transcendental op in float32 and rounds the result (checked against
# jax.jit: bit-identical for exp/log/log1p/sqrt/rsqrt/cbrt/tanh/sin/cos/tan/atan2/pow/rem/sinh/cosh); `_in_f32` does
# that. Primitives that JAX/CHLO decompose (exp2, logistic, asin, acos, atan, asinh, acosh, atanh) are written below as
# the same decomposition, op by op in the input dtype, so f16/bf16 round at the same places as XLA's.

def _ln2(x: Tensor) -> Tensor: return full_like(x, math.log(2))   # rounded to x's dtype, as XLA's constant is


exp = elementwise(P.exp_p)(_in_f32(lambda x: x.exp()))
log = elementwise(P.log_p)(_in_f32(lambda x: x.log()))
sqrt = elementwise(P.sqrt_p)(lambda x: x.sqrt())                  # correctly rounded in every dtype
elementwise(P.rsqrt_p)(_in_f32(lambda x: x.rsqrt()))
@register(P.exp2_p)
def exp2(x, accuracy=None):
  # JAX lowers exp2(x) to exp(x * log(2)) with log(2) and the product rounded to x's dtype, and exp magnifies that
  # rounding (f16 exp2(15.96): 64220, not 64000; bf16 exp2(100): 9.3e29, not 1.3e30). For f16/bf16 the product is exact
  # in f32 and rounded by hand (registered directly: elementwise would hand this rule float32 already).
  if x.dtype not in (tg.float16, tg.bfloat16): return exp(x * _ln2(x))
  arg = x.cast(tg.float32) * float(jnp.asarray(math.log(2), jdtype(x)))
  return exp(_round_to(arg, x.dtype)).cast(x.dtype)
elementwise(P.logistic_p)(lambda x: full_like(x, 1) / (exp(-x) + full_like(x, 1)))   # JAX's logistic_impl


@elementwise(P.log1p_p)
@_in_f32
def log1p(x):
  u = x + 1   # log(u) * x / (u - 1) cancels the rounding of 1 + x
  return (u == 1).where(x, (u == math.inf).where(u, u.log() * (x / (u - 1))))


@elementwise(P.expm1_p)
@_in_f32
def expm1(x):
  u = x.exp()   # Kahan: (u - 1) * x / log(u) cancels the rounding of exp
  return (u == 1).where(x, (u - 1 == -1).where(full_like(x, -1), (u == math.inf).where(u, (u - 1) * (x / u.log()))))


@elementwise(P.tanh_p)
@_in_f32
def tanh(x):
  e = expm1(-2 * x.abs())
  return _copysign(-e / (e + 2), x)


@elementwise(P.cbrt_p)
@_in_f32
def cbrt(x): return _copysign((x.abs().log2() * (1 / 3)).exp2(), x)


@elementwise(P.sinh_p)
@_in_f32
def sinh(x):   # CHLO's decomposition (XLA evaluates it in f32 for f16/bf16)
  e = expm1(x)   # e/(e+1) written as 1/(1+1/e): tinygrad rewrites x/(1+x) to 1-1/(1+x), which cancels to 0 for small x
  return (x.abs() < 1).where((e + 1 / (1 + 1 / e)) * 0.5, (x - _ln2(x)).exp() - (-_ln2(x) - x).exp())


@elementwise(P.cosh_p)
@_in_f32
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
  neg = _signbit(x) & (shift == 0)                                      # sin is odd, cos even
  r, q = _reduce_pio2(d.maximum(1))
  small = x.sin() if shift == 0 else 1 - 2 * (x * 0.5).sin().square()   # |x| < 1: cos >= 0.54, no cancellation
  out = (d < 1).where(small, neg.where(-1, 1) * _sin_quadrant(r, q + shift))
  return ok.where(out, full_like(x, math.nan))


@elementwise(P.sin_p)
@_no_f64_trig
@_in_f32
def sin(x): return _sincos(x, 0)   # tinygrad's own sine keeps only absolute accuracy near multiples of pi


@elementwise(P.cos_p)
@_no_f64_trig
@_in_f32
def cos(x): return _sincos(x, 1)   # tinygrad's cos is sin(pi/2 - x): loses x's low bits (cos(1e4) off by 1.5e-4)


@elementwise(P.tan_p)
@_no_f64_trig
@_in_f32
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
  return _copysign(base + poly, t)


@elementwise(P.atan2_p)
@_in_f32
def atan2(y, x):
  ax, ay = _fabs(x), _fabs(y)
  both_inf, both_zero = ax.isinf() & ay.isinf(), (ax == 0) & (ay == 0)
  t = both_inf.where(full_like(x, 1), both_zero.where(full_like(x, 0), ay / ax))   # |y|/|x|: inf/0 give pi/2 and 0
  r = _atan(t)
  r = _signbit(x).where(full_like(x, math.pi) - r, r)        # x < 0 or x = -0: the left half-plane
  return _copysign(r, y)                                      # NaN in, NaN out (t is NaN)


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
def round_(x, *, rounding_method):
  if x.dtype == tg.bfloat16: return round_(x.cast(tg.float32), rounding_method=rounding_method).cast(x.dtype)   # exact
  t = x.trunc()
  frac = (x - t).abs()                                           # exact
  if int(rounding_method) == int(lax.RoundingMethod.TO_NEAREST_EVEN):
    odd = (t * 0.5).trunc() * 2 != t
    up = (frac > 0.5) | ((frac == 0.5) & odd)
  else:
    up = frac >= 0.5
  r = up.where(t + _copysign(1.0, x), t)
  return (r == 0).where(_copysign(0.0, x), r)                    # the sign of zero follows x: round(-0.3) = -0.0


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
  return ok.where(wrapping(lambda x, y: x << y)(x, ok.where(y, full_like(y, 0))), full_like(x, 0))


@elementwise(P.shift_right_logical_p)
def shift_right_logical(x, y):
  ok = _shift_in_range(y, x)
  unsigned = _UNSIGNED.get(x.dtype, x.dtype)
  shifted = (x.bitcast(unsigned) >> ok.where(y, full_like(y, 0)).cast(unsigned)).bitcast(x.dtype)
  return ok.where(shifted, full_like(x, 0))


@elementwise(P.shift_right_arithmetic_p)
def shift_right_arithmetic(x, y):
  ok = _shift_in_range(y, x)
  signed = {u: s for s, u in _UNSIGNED.items()}.get(x.dtype, x.dtype)
  xs = x.bitcast(signed)
  amount = ok.where(y, full_like(y, bits(x) - 1)).cast(signed)
  return (xs >> amount).bitcast(x.dtype)


@elementwise(P.population_count_p)
def population_count(x):
  unsigned = _UNSIGNED.get(x.dtype, x.dtype)
  u, count = x.bitcast(unsigned), full_like(x, 0)
  for i in range(bits(x)): count = count + ((u >> i) & 1).cast(x.dtype)
  return count


@elementwise(P.clz_p)
def clz(x):
  unsigned = _UNSIGNED.get(x.dtype, x.dtype)
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
def clamp(lo, x, hi):
  if x.dtype == tg.bfloat16:   # exact in float32; clang-19 can hang on this vectorized __bf16 code (see elementwise)
    return clamp(lo.cast(tg.float32), x.cast(tg.float32), hi.cast(tg.float32)).cast(tg.bfloat16)
  return min_(max_(x, lo.expand(x.shape) if lo.shape != x.shape else lo), hi.expand(x.shape) if hi.shape != x.shape else hi)


@register(P.convert_element_type_p)
def convert_element_type(x, *, new_dtype, weak_type=False, sharding=None):
  target = to_tiny(new_dtype)
  if x.dtype == target: return x
  if target == tg.bool: return x != 0
  if is_float(x) and tg.is_int(target): return _float_to_int(x, new_dtype)
  return _int_to_int(x, target) if tg.is_int(x.dtype) else wrap_int(x.cast(target))   # int -> narrower or other signedness wraps


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


# ---- identities and placeholders: placement, names, barriers, tokens ------------------------------------------
# One device per program, so placement and sharding annotations change nothing; neither do checkpoint names or
# optimization barriers (tinygrad schedules the lazy graph as a whole).

@register(P.device_put_p)
def device_put(*xs, devices=None, srcs=None, copy_semantics=None): return list(xs)


@register(P.sharding_constraint_p)
def sharding_constraint(x, **_): return x


@register(primitive("reshard_p"), primitive("layout_constraint_p"))
def reshard(x, **_): return x   # jax.sharding.reshard, a layout constraint: one device, one layout


@register(getattr(importlib.import_module("jax._src.random"), "random_clone_p", None))
def random_clone(key): return key   # jax.random.clone: the same key data (keys are values here, never consumed)


@register(P.name_p)
def name(x, *, name): return x   # jax.ad_checkpoint.checkpoint_name: only steers what remat saves


@register(primitive("optimization_barrier_p"))
def optimization_barrier(*xs): return list(xs)


@register(primitive("tie_p"))
def tie(x, y): return y   # orders effects in JAX's own transforms; its value is y


@register(P.empty2_p)
def empty2(*, dtype, memory_space=None):
  """An uninitialized scalar (what scan's and autodiff's `empty_like` broadcast); XLA lowers it as zeros."""
  return _zeros((), dtype)


@register(primitive("empty_p"))
def empty(*, shape, dtype, out_sharding=None):
  """lax.empty: uninitialized values; XLA CPU lowers it as zeros, and so does this."""
  return _zeros(tuple(shape), dtype)


def _zeros(shape, dtype):
  """Zeros of a value's carrier: a typed key is its uint32 key data (a zero key, as XLA's zeros of its bits)."""
  from .dtypes import is_key_dtype
  if is_key_dtype(dtype): return const(0, np.uint32, tuple(shape) + tuple(dtype._impl.key_shape))
  return const(0, np.dtype(dtype), shape)


@register(P.create_token_p)
def create_token(*_): return const(False, np.bool_, (0,))   # a placeholder: tokens carry no data


@register(P.after_all_p)
def after_all(*_): return const(False, np.bool_, (0,))


@register(primitive("tile_p"))
def tile(x, *, reps):
  """jnp.tile's primitive: the operand repeated `reps` times along each axis (a typed key's data dims stay as they are)."""
  reps = tuple(int(r) for r in reps) + (1,) * (x.ndim - len(reps))
  out_shape = tuple(d * r for d, r in zip(x.shape, reps))
  if 0 in out_shape: return const(0, jdtype(x), out_shape)
  return x.repeat(*reps) if reps else x
