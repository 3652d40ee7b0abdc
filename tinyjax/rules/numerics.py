"""Helpers shared by the rule families: constants on the program's device, iota and take, XLA's clamped start index,
XLA's integer wrap-around, float bit tricks (sign bit, |x|, copysign, NaN), f16/bf16 evaluated in float32 and rounded
as XLA rounds."""
import contextvars
import functools
import math
import weakref

import numpy as np
from tinygrad import Device, Tensor, dtypes as tg
from tinygrad.dtype import DType
from tinygrad.uop.ops import GroupOp, Ops

from ..capture import numpy_to_tensor
from ..dtypes import HALF_FLOATS, QUIET_NAN, is_key_dtype, same_width_int, same_width_uint, to_jax, to_tiny

DEVICE = contextvars.ContextVar("tinyjax_device", default=None)   # set by the interpreter while a program is built


def const(value, dtype, shape=(), buffer: bool = False) -> Tensor:
  """A constant of a JAX or tinygrad dtype in `shape`, folded into the kernels that use it; a typed key dtype gives
  its key data. buffer=True makes it a buffer on the program's device instead (a loop's state, overwritten by each
  step). NaN always gets a buffer, of one element: tinygrad 0.14 folds `NaN != NaN` (its isnan) to False. That
  buffer is copied in from the host when the program is built (no kernel: a fill would run on every replay)."""
  if not isinstance(dtype, DType) and is_key_dtype(dtype):
    return const(value, np.uint32, tuple(shape) + tuple(dtype._impl.key_shape), buffer)
  dtype = to_jax(dtype) if isinstance(dtype, DType) else np.dtype(dtype)
  if np.ndim(value) > 0: return Tensor(np.array(value, dtype=dtype), device=DEVICE.get())   # a writable copy: some devices' copy-in needs one
  value, tiny = np.asarray(value, dtype=dtype).item(), to_tiny(dtype)
  if buffer: return Tensor.full(shape, value, dtype=tiny, device=DEVICE.get())
  if isinstance(value, float) and math.isnan(value):
    nan = numpy_to_tensor(np.array([value], dtype), DEVICE.get() or Device.DEFAULT)
    return nan.reshape((1,) * len(shape)).expand(shape)
  # buffer=False: tinygrad 0.14's Tensor.full otherwise materializes a buffer (one more kernel per constant)
  return Tensor.full(shape, value, dtype=tiny, buffer=False)


_TRANSCENDENTAL = {Ops.EXP2, Ops.LOG2, Ops.SIN, Ops.SQRT, Ops.RECIPROCAL}
_KERNEL_INPUTS = {Ops.BUFFER, Ops.CONTIGUOUS, Ops.REDUCE}   # where the graph a kernel reads starts


def computed_once(x: Tensor) -> Tensor:
  """An operand of a matmul or convolution as its kernel reads it: a value computed with transcendentals (an
  activation, a softmax, a normalization) is written to a buffer first; anything cheaper (views, casts, a
  concatenation, a scale) stays fused. Left lazy, tinygrad fuses the producer into the contraction's inner loop,
  where it is recomputed for every output column: a GPT's GELU before its 64 x 256 projection ran 256 times per
  element (20 ms of a 44 ms step on CPU)."""
  graph = x.uop.toposort(gate=lambda u: u.op not in _KERNEL_INPUTS)
  return x.contiguous() if any(u.op in _TRANSCENDENTAL for u in graph) else x


def iota_along(shape, axis: int, dtype=tg.int32) -> Tensor:
  """0, 1, 2, ... along `axis` of `shape`, size 1 on the other axes: a device-less constant, which tinygrad folds
  into index arithmetic in the kernels that use it (no kernel, no buffer of its own)."""
  return Tensor.arange(shape[axis], dtype=dtype).reshape([n if i == axis else 1 for i, n in enumerate(shape)])


def take(x: Tensor, index) -> Tensor:
  """x[index] with tensor indices: a gather tinygrad 0.14 folds into a direct load. Bool data goes through uint8:
  several index tensors at once give it back as weakint."""
  return x.cast(tg.uint8)[index].cast(tg.bool) if x.dtype == tg.bool else x[index]


def clamped_start(i: Tensor, upper: int, dtype=tg.int32) -> tuple[Tensor, Tensor]:
  """XLA's clamp of a start index into [0, upper] (dynamic_slice, gather, scatter's CLIP), as `dtype`; and whether i
  was there already. Compared in the index's own dtype, so unsigned and narrow indices need no widening that could
  wrap; an upper bound past the dtype's range holds for every index."""
  hi = min(upper, i.dtype.max)
  inside = i <= hi if tg.is_unsigned(i.dtype) else (i >= 0) & (i <= hi)
  clamped = i if tg.is_unsigned(i.dtype) else i.maximum(0)
  return (clamped.minimum(hi) if hi < i.dtype.max else clamped).cast(dtype), inside


def jdtype(x: Tensor) -> np.dtype: return to_jax(x.dtype)
def is_float(x: Tensor) -> bool: return tg.is_float(x.dtype)
def is_unsigned(x: Tensor) -> bool: return tg.is_unsigned(x.dtype)
def is_bool(x: Tensor) -> bool: return x.dtype == tg.bool
def bits(x: Tensor) -> int: return x.dtype.itemsize * 8
def full_like(x: Tensor, value) -> Tensor:
  if isinstance(value, float) and math.isnan(value) and x.dtype in QUIET_NAN: return nan_like(x)
  return const(value, x.dtype, x.shape)
def nan_where(mask: Tensor, x: Tensor) -> Tensor: return mask.where(nan_like(x), x)


def nan_like(x: Tensor) -> Tensor:
  """NaN in x's shape and float dtype, computed from x's own bits (exponent and quiet bit set, so NaN whatever x is)
  rather than stored: tinygrad cannot fold it into a NaN constant (whose `NaN != NaN` it would fold to False, see
  const), so it needs neither a NaN-filled buffer (one more kernel, and a read) nor anything but an OR in the kernel.
  The sign is x's (XLA's NaN sign is not observable in parity). A graph of constants only would still fold whole, so
  that keeps const's buffer."""
  if x.dtype not in QUIET_NAN or constant_expr(x.uop): return const(math.nan, x.dtype, x.shape)
  return (x.bitcast(same_width_uint(x.dtype)) | QUIET_NAN[x.dtype]).bitcast(x.dtype)


_CONSTANT_EXPR: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # UOp -> a graph of constants only
_CONSTANT_OPS = frozenset({Ops.CONST, Ops.STACK, Ops.CAST, Ops.BITCAST, Ops.REDUCE, Ops.DETACH, *GroupOp.ALU, *GroupOp.Movement})


def constant_expr(u) -> bool:
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
  if x.dtype not in tg.ints or not constant_expr(x.uop): return x
  if tg.is_unsigned(x.dtype): return x & full_like(x, x.dtype.max)
  u = same_width_uint(x.dtype)   # (a bare bitcast round trip is not enough: symbolic's bitcast-of-bitcast rule raises
  return (x.bitcast(u) & const(u.max, u, x.shape)).bitcast(x.dtype)   # on the weak CONST an x*1 -> x fold can leave)


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
  @functools.wraps(fn)
  def wrapped(*xs):
    plain = fn(*xs)
    dt = plain.dtype
    if dt not in tg.ints: return plain
    # (the range is exact for +, - and *; for other ops tinygrad answers the dtype's range, which proves nothing)
    if plain.uop.op in (Ops.ADD, Ops.SUB, Ops.MUL) and dt.min <= plain.uop.vmin and plain.uop.vmax <= dt.max: return wrap_int(plain)
    wide = same_width_uint(dt) if dt.itemsize >= 4 else tg.uint32
    out = fn(*[x.bitcast(wide) if x.dtype.itemsize == wide.itemsize else x.cast(wide) for x in xs])
    return int_to_int(wrap_int(out & const(wide.max, wide, out.shape)), dt)
  return wrapped


def int_to_int(x: Tensor, target) -> Tensor:
  """x cast to the integer dtype target, wrapping as C and XLA do. tinygrad's range analysis assumes a cast to a signed
  type never wraps (int32 200 -> int8 would be taken to be 127 at most), so a signed target goes through the unsigned
  type of its width and a bitcast (a bitcast's range is the whole dtype)."""
  if x.dtype == target: return x
  if target.min <= x.uop.vmin and x.uop.vmax <= target.max: return wrap_int(x.cast(target))
  unsigned = same_width_uint(target)
  out = wrap_int(x.cast(unsigned) if x.dtype != unsigned else x)
  return out.bitcast(target) if unsigned != target else out


def in_f32(fn, widen=HALF_FLOATS):
  """fn evaluated in float32 where its tensor arguments are of the half-precision dtypes in `widen`, a float32 result
  rounded back once (a comparison's bools stay as they are): XLA's CPU code computes f16/bf16 ops this way."""
  @functools.wraps(fn)
  def wrapped(*xs):
    low = next((x.dtype for x in xs if isinstance(x, Tensor) and x.dtype in widen), None)
    if low is None: return fn(*xs)
    out = fn(*[x.cast(tg.float32) if isinstance(x, Tensor) and x.dtype in widen else x for x in xs])
    return out.cast(low) if out.dtype == tg.float32 else out
  return wrapped


def bf16_in_f32(fn):
  """fn evaluated in float32 for bfloat16 arguments (float16 stays: tinygrad computes it as clang's __fp16). clang-19
  with -march=native can take minutes (or hang) compiling vectorized __bf16 arithmetic, and XLA CPU itself upcasts
  bf16 elementwise ops to f32."""
  return in_f32(fn, widen=(tg.bfloat16,))


def signbit(x: Tensor) -> Tensor:
  """True where the sign bit is set (so for -0.0 too)."""
  return x.bitcast(same_width_int(x.dtype)) < 0


def fabs(x: Tensor) -> Tensor:
  """|x| by clearing the sign bit: tinygrad's abs keeps -0.0 negative."""
  itype = same_width_int(x.dtype)
  return (x.bitcast(itype) & itype.max).bitcast(x.dtype)


def round_to(t: Tensor, dtype) -> Tensor:
  """float32 t rounded to the nearest float16/bfloat16 value (ties to even), kept in float32. XLA rounds f16/bf16 after
  every op; tinygrad keeps f16 arithmetic in f32 (clang's __fp16) and bf16 goes through f32 here (see elementwise)."""
  b = t.bitcast(tg.uint32)
  if dtype == tg.bfloat16: r = ((b + 0x7FFF + ((b >> 16) & 1)) & 0xFFFF0000).bitcast(tg.float32)
  else:
    r = ((b + 0xFFF + ((b >> 13) & 1)) & 0xFFFFE000).bitcast(tg.float32)
    v = fabs(t) * 2.0 ** 24                                                      # f16 subnormals: steps of 2^-24
    f = v.floor()
    up = (v - f > 0.5) | ((v - f == 0.5) & ((f * 0.5).floor() * 2 != f))
    r = (v < 2.0 ** 10).where(copysign(up.where(f + 1, f) * 2.0 ** -24, t), r)
    r = (fabs(r) >= 65520).where(copysign(math.inf, t), r)                    # past 65504: inf
  return t.isnan().where(t, r)


def copysign(mag: "Tensor | float", sign: Tensor) -> Tensor:
  """|mag| with the sign bit of sign (a float mag stays a constant: tinygrad cannot bitcast a float64 constant)."""
  m = fabs(mag) if isinstance(mag, Tensor) else full_like(sign, abs(mag))
  return signbit(sign).where(-m, m)
