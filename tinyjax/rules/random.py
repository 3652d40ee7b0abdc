"""jax.random: typed PRNG keys and the primitives that act on them, bit-exact with JAX.

A key<impl> value is carried as its uint32 key data (threefry: uint32[..., 2]). `random_seed`, `random_bits`,
`random_split` and `random_fold_in` are rules that trace JAX's own implementation of the key's impl
(`jax._src.random.prng.*_impl_base`, the very functions JAX lowers these primitives with) into a Jaxpr of
raw uint32 ops, and interpret that. The traced Jaxpr is cached per shape/params/flags. What it contains is
`threefry2x32` (the hash, a rule below), `iota_2x32_shape`, and ordinary lax ops — so JAX's choice of derivation
(`jax_threefry_partitionable`, on by default in jax 0.10; the 8/16/64-bit field layouts) is followed automatically,
because it is read when we trace. The 'rbg' and 'unsafe_rbg' impls (key data uint32[..., 4]) are made of threefry
and `rng_bit_generator`, whose rule below transcribes XLA's own expansion of RngBitGenerator (THREE_FRY, PHILOX, and
RNG_DEFAULT resolved as XLA CPU/GPU resolve it, to PHILOX). The 'philox4x32' and 'philox2x32' impls (key data
uint32[..., 2] and [..., 1]) are made of JAX's own `philox4x32`/`philox2x32` primitives, rules below. The 'threefry4x32'
impl (uint32[..., 4]) is made of JAX's `threefry4x32` primitive, a rule below. Other impls (a user's PRNGImpl) work as
far as their primitives have rules; one without raises UnsupportedPrimitiveError naming it.

Key arrays moved by data-movement primitives (a split key unpacked by slice/squeeze, gathered, selected) are
handled by the interpreter with tinyjax/keys.py.

Knowing the impl: the primitives `random_bits/split/fold_in/unwrap` carry no `impl` param; it lives in the key's
aval (key<fry> vs key<phx4>, which have the same key-data shape), which these rules take as `in_avals`.

Also here: `mulhi` (lax.mulhi, the high half of an integer product: the arithmetic of Philox's rounds).
"""
import functools
import importlib

import jax
import numpy as np
from jax._src.random import prng
from tinygrad import Tensor, dtypes as tg

from ..dtypes import is_key_dtype, same_width_uint, to_tiny
from ..ops import primitive, register, unsupported
from ..traced import config_key as _config_key, evaluate as _eval, spec as _spec, trace as _trace
from .numerics import const, iota_along, jdtype, wrap_int


# ---- which impl a key belongs to -------------------------------------------------------------------------------

def _key_impl(name, keys, key_aval):
  """The PRNG impl of a typed key operand (its aval's dtype: key<fry> and key<phx4> share the key-data shape)."""
  if not is_key_dtype(key_aval.dtype): raise TypeError(f"tinyjax: '{name}' expects a typed key, got {key_aval.dtype}")
  impl = key_aval.dtype._impl
  if tuple(keys.shape[len(keys.shape) - len(impl.key_shape):]) != tuple(impl.key_shape):
    raise ValueError(f"tinyjax: key data of shape {keys.shape} does not end in {impl.name}'s key shape {impl.key_shape}")
  return impl


def _logical_shape(keys, impl): return tuple(keys.shape[:len(keys.shape) - len(impl.key_shape)])


# ---- key primitives --------------------------------------------------------------------------------------------

@register(primitive("random_wrap_p"))
def random_wrap(data, *, impl): return data


@register(primitive("random_unwrap_p"))
def random_unwrap(keys): return keys


@register(primitive("random_seed_p"))
def random_seed(seeds, *, impl):
  closed = _trace(_seed_fn(impl, seeds.ndim), (_spec(seeds),), _config_key())
  return _eval(closed, seeds)[0]


@register(primitive("random_bits_p"), with_avals=True)
def random_bits(keys, *, bit_width, shape, in_avals, out_avals):
  impl = _key_impl("random_bits", keys, in_avals[0])
  ndim = len(_logical_shape(keys, impl))
  closed = _trace(_bits_fn(impl, ndim, bit_width, tuple(shape)), (_spec(keys),), _config_key())
  return _eval(closed, keys)[0]


@register(primitive("random_split_p"), with_avals=True)
def random_split(keys, *, shape, in_avals, out_avals):
  impl = _key_impl("random_split", keys, in_avals[0])
  ndim = len(_logical_shape(keys, impl))
  closed = _trace(_split_fn(impl, ndim, tuple(shape)), (_spec(keys),), _config_key())
  return _eval(closed, keys)[0]


@register(primitive("random_fold_in_p"), with_avals=True)
def random_fold_in(keys, msgs, *, in_avals, out_avals):
  impl = _key_impl("random_fold_in", keys, in_avals[0])
  keys_shape = _logical_shape(keys, impl)
  closed = _trace(_fold_in_fn(impl, keys_shape, tuple(msgs.shape)), (_spec(keys), _spec(msgs)), _config_key())
  return _eval(closed, keys, msgs)[0]


# The traced functions: exactly what JAX's lowerings of these primitives call (jax/_src/random/prng.py). Each is
# memoized so that its identity is a stable cache key for _trace.

@functools.lru_cache(maxsize=None)
def _seed_fn(impl, ndim):
  return lambda seeds: prng.random_seed_impl_base(seeds, impl=impl)


@functools.lru_cache(maxsize=None)
def _bits_fn(impl, ndim, bit_width, shape):
  return lambda keys: prng.random_bits_impl_base(impl, keys, ndim, bit_width=bit_width, shape=shape)


@functools.lru_cache(maxsize=None)
def _split_fn(impl, ndim, shape):
  return lambda keys: prng.random_split_impl_base(impl, keys, ndim, shape=shape)


@functools.lru_cache(maxsize=None)
def _fold_in_fn(impl, keys_shape, msgs_shape):
  return lambda keys, msgs: prng.random_fold_in_impl_base(impl, keys, msgs, keys_shape)


# ---- the primitives JAX's threefry implementation is made of ---------------------------------------------------

@register(primitive("threefry2x32_p"))
def threefry2x32(k1, k2, x1, x2):
  """The Threefry-2x32 hash, 20 rounds: a transcription of JAX's own lax-op lowering
  (jax._src.random.threefry2x32._threefry2x32_lowering, unrolled). Written with Python-int rotation amounts rather
  than traced from that function: tinygrad compiles shifts by constant ints ~10x faster than shifts by tensors (which
  the generic shift rules produce), and this hash sits inside every jax.random call. uint32 arithmetic wraps in
  tinygrad as in XLA (C unsigned arithmetic; << and >> by an int are a multiply and a divide by 2**r, exact mod
  2**32), except where tinygrad folds constants at compile time, with unbounded ints: wrap_int covers that (a key
  made from a literal seed, folded in with a literal message). The tests check the bits against jax.jit and
  Random123's known-answer vector."""
  shape, (k1, k2, x1, x2) = _broadcast_uint32("threefry2x32", k1, k2, x1, x2)
  if 0 in shape: return [const(0, np.uint32, shape), const(0, np.uint32, shape)]
  w = wrap_int   # free at run time; exact where tinygrad folds the hash at compile time (constant key and counter)
  rotl = lambda v, r: w(v << r) | (v >> (32 - r))
  ks = [k1, k2, k1 ^ k2 ^ 0x1BD11BDA]
  x1, x2 = w(x1 + ks[0]), w(x2 + ks[1])
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x1 = w(x1 + x2)
      x2 = rotl(x2, r) ^ x1
    x1 = w(x1 + ks[(i + 1) % 3])
    x2 = w(x2 + ks[(i + 2) % 3] + (i + 1))
  return [x1, x2]


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def _broadcast_uint32(name, *operands):
  """The operands of a hash primitive broadcast to their common shape (JAX's rule: equal ranks or scalars, which is
  numpy's broadcasting restricted). Returns (shape, operands)."""
  if any(a.dtype != tg.uint32 for a in operands): raise TypeError(f"tinyjax: {name} takes uint32 operands")
  shape = tuple(np.broadcast_shapes(*(tuple(a.shape) for a in operands)))
  return shape, [a if tuple(a.shape) == shape else a.reshape((1,) * (len(shape) - a.ndim) + tuple(a.shape)).expand(shape)
                 for a in operands]


@register(primitive("iota_2x32_shape_p"))
def iota_2x32_shape(*, shape):
  """The row-major index of each element as a 64-bit count split in (hi, lo) uint32 halves."""
  size = int(np.prod(shape))
  if size == 0: return [const(0, np.uint32, shape)] * 2
  if size > 2 ** 32:   # hi would be nonzero somewhere; tinygrad's arange would need uint64 indices
    raise NotImplementedError(f"iota_2x32_shape of {size} elements (more than 2**32)")
  # (an iota fuses into its consumer: a cumsum of a device buffer would cost a two-stage O(n * 256) reduce)
  lo = iota_along((size,), 0, tg.uint32).reshape(shape)
  return [const(0, np.uint32, shape), lo]


# ---- rng_bit_generator: XLA's RngBitGenerator ------------------------------------------------------------------
# jax.lax.rng_bit_generator, and so every key of the 'rbg' and 'unsafe_rbg' impls, lowers to the RngBitGenerator HLO,
# which XLA expands into ordinary HLO before compiling. This is a transcription of that expansion:
#   - jax._src.lax.lax._rng_bit_generator_lowering: the u32[4] key is bitcast to the u64[2] state XLA takes,
#     state[i] = key[2i] | key[2i+1] << 32 (a u64[2] key is passed as it is); the new state is bitcast back.
#   - xla/service/rng_bit_generator_expander.cc: RNG_DEFAULT becomes the algorithm the backend's compiler passes to
#     the expander, RNG_PHILOX on CPU and GPU (cpu_compiler.cc, gpu_compiler.cc). key = state[0]. THREE_FRY counts
#     from state[1]; PHILOX (state of fewer than 3 words: GetPhiloxStateOp) counts from the 128-bit Rev(state), i.e.
#     low word state[1], high word state[0], and keeps only the low word of the advanced counter
#     (GetPhiloxOutputStateOp). The new state is [key, advanced counter].
#   - xla/hlo/builder/lib/prng.cc: ThreeFryBitGenerator and PhiloxBitGenerator generate the bits.
# prng.cc computes in u64 (and u128 as two u64); here every u64/u128 is a little-endian list of uint32 words with
# explicit carries, so no device needs 64-bit integers unless it asks for uint64 bits.

_RNG = jax.lax.RandomAlgorithm
_XLA_DEFAULT_RNG = _RNG.RNG_PHILOX   # what RngBitGeneratorExpander is built with on XLA CPU and GPU


@register(jax.lax.rng_bit_generator_p)
def rng_bit_generator(key, *, shape, dtype, algorithm, out_sharding=None):
  """(new_key, bits): bits of `shape` and `dtype` (uint8/16/32/64) from `key` (uint32[4], or uint64[2] under x64)."""
  shape, dtype = tuple(shape), np.dtype(dtype)
  if dtype not in (np.uint8, np.uint16, np.uint32, np.uint64):
    raise TypeError(f"tinyjax: rng_bit_generator produces uint8/16/32/64 bits, not {dtype}")
  if int(np.prod(shape)) >= 2 ** 32:   # counters are offset by a uint32 element index
    raise NotImplementedError(f"tinyjax: rng_bit_generator of {int(np.prod(shape))} elements (2**32 or more)")
  state = _rbg_state_words(key)        # [key lo, key hi, counter lo, counter hi]
  if algorithm == _RNG.RNG_DEFAULT: algorithm = _XLA_DEFAULT_RNG
  if algorithm == _RNG.RNG_THREE_FRY: bits, counter = _threefry_bit_generator(state[:2], state[2:], shape, dtype)
  elif algorithm == _RNG.RNG_PHILOX: bits, counter = _philox_bit_generator(state[:2], state[2:], shape, dtype)
  else: raise NotImplementedError(f"tinyjax: rng_bit_generator with algorithm {algorithm}")
  return [_rbg_state_tensor(state[:2] + counter, key.dtype), bits]


def _rbg_state_words(key):
  """The u64[2] state as four uint32 scalars, low word first (the lowering's u32[2,2] -> u64[2] bitcast)."""
  if key.dtype == tg.uint32 and tuple(key.shape) == (4,): return [key[i] for i in range(4)]
  if key.dtype == tg.uint64 and tuple(key.shape) == (2,):
    return [w for i in range(2) for w in ((key[i] & 0xFFFFFFFF).cast(tg.uint32), (key[i] >> 32).cast(tg.uint32))]
  raise TypeError(f"tinyjax: rng_bit_generator takes a uint32[4] or uint64[2] key, got {jdtype(key)}{list(key.shape)}")


def _rbg_state_tensor(words, dtype):
  if dtype == tg.uint32: return Tensor.stack(*words)
  return Tensor.stack(_uint64(words[0], words[1]), _uint64(words[2], words[3]))


def _uint64(lo, hi):
  """prng.cc Uint32sToUint64."""
  return lo.cast(tg.uint64) | (hi.cast(tg.uint64) << 32)


def _add_words(words, b):
  """The little-endian multi-word unsigned integer `words` (uint32 tensors) plus b (a uint32 tensor or an int in
  [0, 2**32)), wrapping as XLA's u64/u128 adds do. The carry out of each word is the top bit of
  (w >> 1) + (b >> 1) + (w & b & 1), which cannot overflow (so no comparison on a wrapped value is needed, which
  tinygrad's range analysis could fold)."""
  out = []
  for w in words:
    out.append(wrap_int(w + b))   # (wrap_int: exact if tinygrad folds it, when key and counter are constants)
    b = ((w >> 1) + (b >> 1) + (w & (b & 1))) >> 31
  return out


def _row_major_index(shape):
  """Each element's row-major position, as uint32 (prng.cc builds it from one Iota per dimension; same numbers)."""
  return iota_2x32_shape(shape=shape)[1]


def _narrow(bits32, dtype):
  """prng.cc ThreeFryRngBitNarrow / PhiloxRngBitNarrow: 8/16-bit outputs are the u32 bits converted down, i.e. their
  low bits (the upper bits are thrown away)."""
  if dtype == np.uint32: return bits32
  return (bits32 & (2 ** (dtype.itemsize * 8) - 1)).cast(to_tiny(dtype))


def _threefry_bit_generator(key, counter, shape, dtype):
  """prng.cc ThreeFryBitGenerator. ThreeFry2x32 (the rule above: the same 20 rounds, key words (low, high) of
  state[0]) hashes the counter words (low, high) of state[1] + a row-major index.
  64-bit (ThreeFryRngBit64): one counter per element, the two output words are its low and high halves.
  32-bit (ThreeFryRngBit32; 8/16-bit via ThreeFryRngBitNarrow): one counter per pair of elements, over the shape
  halved along one dimension (SplitShapeIntoHalves); the two output words fill the two halves of each pair
  (CombineShapePair). The counter advances by the number of counters used (GetThreeFryInputsAndUpdatedState)."""
  if dtype == np.uint64:
    x0, x1 = _add_words(counter, _row_major_index(shape))
    y0, y1 = threefry2x32(*key, x0, x1)
    return _uint64(y0, y1), _add_words(counter, int(np.prod(shape)))
  half, split = _split_shape_into_halves(shape)
  x0, x1 = _add_words(counter, _row_major_index(half))
  y0, y1 = threefry2x32(*key, x0, x1)
  return _narrow(_combine_shape_pair(y0, y1, split, shape), dtype), _add_words(counter, int(np.prod(half)))


def _split_shape_into_halves(shape):
  """prng.cc SplitShapeIntoHalves: split the first even dimension (else the first largest) d into ceil(d/2) and a new
  dimension of 1 after it; a scalar becomes (1,). Returns (half shape, split dimension)."""
  if not shape: return (1,), None
  even = [i for i, d in enumerate(shape) if d % 2 == 0]
  s = even[0] if even else max(range(len(shape)), key=lambda i: (shape[i], -i))
  return shape[:s] + (-(-shape[s] // 2), 1) + shape[s + 1:], s


def _combine_shape_pair(y0, y1, split, shape):
  """prng.cc CombineShapePair: concatenate the halves on the new dimension, merge it into the split one (element
  2a + b of that dimension is half b's element a) and drop the padding element of an odd dimension."""
  if split is None: return y0.reshape(())
  pairs = y0.cat(y1, dim=split + 1)
  merged = pairs.reshape(shape[:split] + (2 * pairs.shape[split],) + shape[split + 1:])
  return merged if merged.shape[split] == shape[split] else merged.shrink(tuple((0, d) for d in shape))


_PHILOX_M = (0xD2511F53, 0xCD9E8D57)   # kPhiloxM4x32A, kPhiloxM4x32B: the round multipliers
_PHILOX_W = (0x9E3779B9, 0xBB67AE85)   # kPhiloxW32A, kPhiloxW32B: the key schedule's increments


def _philox_bit_generator(key, counter, shape, dtype):
  """prng.cc PhiloxBitGenerator. Philox4x32 (10 rounds) with key words (low, high) of state[0] hashes 128-bit
  counters, each giving four u32 words (GeneratePhiloxBits: ceil(words needed / 4) counters). The counters are
  (state[1], state[0]) + i as a u128 (GetPhiloxInputsAndUpdatedState, Uint128AddUint64: the carry out of the low u64
  reaches the high one); the new state keeps the low u64 of (state[1], state[0]) + the number of counters.
  32-bit (PhiloxRngBit32; 8/16-bit via PhiloxRngBitNarrow): element 4i + j is word j of counter i.
  64-bit (PhiloxRngBit64): two words per element; element 2i + j is words (2j, 2j + 1) of counter i as (low, high)."""
  n = int(np.prod(shape))
  per_block = 2 if dtype == np.uint64 else 4
  blocks = -(-n // per_block)
  x = _add_words(counter + key, _row_major_index((blocks,)))   # the u128 counter words, least significant first
  y = _philox4x32(x, key)
  if dtype == np.uint64: y = [_uint64(y[0], y[1]), _uint64(y[2], y[3])]
  if n == 0: out = const(0, np.uint64 if dtype == np.uint64 else np.uint32, shape)
  else: out = Tensor.stack(*y, dim=1).reshape(blocks * per_block)[:n].reshape(shape)   # round-robin, then the first n
  return (out if dtype == np.uint64 else _narrow(out, dtype)), _add_words(counter, blocks)


def _philox4x32(x, key):
  """prng.cc Philox4x32: ten rounds, the key raised by the Weyl increments after each."""
  x0, x1, x2, x3 = x
  k0, k1 = key
  for _ in range(10):
    hi0, lo0 = _mul_hi_lo(x0, _PHILOX_M[0])
    hi1, lo1 = _mul_hi_lo(x2, _PHILOX_M[1])
    x0, x1, x2, x3 = hi1 ^ x1 ^ k0, lo1, hi0 ^ x3 ^ k1, lo0
    k0, k1 = wrap_int(k0 + _PHILOX_W[0]), wrap_int(k1 + _PHILOX_W[1])
  return [x0, x1, x2, x3]


def _mul_hi_lo(x, k, half=16):
  """prng.cc Philox4x32's mul_hi_low: the high and low words of the double-width product of the unsigned x and k (a
  tensor of x's dtype or a Python int), each of 2 * `half` bits. prng.cc multiplies in u64; here in half-width pieces
  (Hacker's Delight's mulhu), so no intermediate overflows and none wraps (tinygrad's range analysis would take a
  wrapped product's bounds at face value, and folds constants with unbounded ints):
  x * k = (xh*kh + (t >> h)) * 2**2h + u * 2**h + (ll & m), t = xh*kl + (ll >> h), u = xl*kh + (t & m), m = 2**h - 1."""
  m = 2 ** half - 1
  xl, xh, kl, kh = x & m, x >> half, k & m, k >> half
  ll = xl * kl
  t = xh * kl + (ll >> half)                                   # <= m**2 + m < 2**2h
  u = xl * kh + (t & m)                                        # likewise
  lo = ((u & m) << half) | (ll & m)
  hi = xh * kh + (t >> half) + (u >> half)                     # < 2**2h: the product is < 2**4h
  return hi, lo


# ---- mulhi: the high half of an integer product ----------------------------------------------------------------

@register(primitive("mulhi_p"))
def mulhi(x, y):
  """lax.mulhi (XLA's chlo.mulhi): the upper N bits of the 2N-bit product of N-bit integers; for signed ones, of the
  signed product. The unsigned high half of the bit patterns, computed without overflow (8/16-bit: the product in
  uint32; 32/64-bit: _mul_hi_lo in 16/32-bit halves, so 32-bit needs no 64-bit integers), then for signed operands
  the identity mulhi_s(x, y) = mulhi_u(x, y) - (x < 0 ? y : 0) - (y < 0 ? x : 0) (mod 2**N)."""
  dt = np.dtype(jdtype(x))
  if x.dtype not in tg.ints or y.dtype != x.dtype:
    raise TypeError(f"tinyjax: mulhi takes two integer operands of one dtype, got {dt} and {jdtype(y)}")
  n, u = dt.itemsize * 8, same_width_uint(x.dtype)
  ux, uy = (x, y) if dt.kind == "u" else (x.bitcast(u), y.bitcast(u))
  if n <= 16: hi = ((ux.cast(tg.uint32) * uy.cast(tg.uint32)) >> n).cast(u)   # < 2**32: exact
  else: hi = _mul_hi_lo(ux, uy, n // 2)[0]
  if dt.kind == "u": return hi
  wide = hi.dtype if n >= 32 else tg.uint32   # hi, ux, uy widened so that 8/16-bit sums do not wrap at all
  mask = const(2 ** n - 1, wide, ())
  out, zero = hi.cast(wide), const(0, wide, ())
  for neg, other in ((x < 0, uy), (y < 0, ux)):
    # out - c (mod 2**N) as out + (2**N - 1 - c) + 1, masked: no negative intermediate; for N = 32/64 the sum wraps
    # in C's unsigned arithmetic and the mask gives tinygrad's range analysis (and constant folding) the wrapped value
    out = (out + (mask - neg.where(other.cast(wide), zero)) + 1) & mask
  return out.cast(u).bitcast(x.dtype)


# ---- the philox4x32 and philox2x32 impls (jax._src.random.philox4x32 / philox2x32, new in jax 0.10) ---------------
# Keys of impl 'philox4x32' (key<phx4>, uint32[..., 2]) and 'philox2x32' (key<phx2>, uint32[..., 1]). Their seed/split/
# fold_in/random_bits are jitted lax code around one primitive each, traced by the key-primitive rules above like
# any impl's. The primitives are JAX's own (not XLA's): philox4x32_p(k0, k1, x0, x1, x2, x3) -> 4 words and
# philox2x32_p(k0, x0, x1) -> 2 words, elementwise over operands that broadcast (equal ranks or scalars). JAX lowers
# them with mlir.lower_fun of a Python loop of lax ops: `lax.mul` and `lax.mulhi` by the Random123 multipliers, xor,
# and the key bumped by the Weyl constants before every round but the first. That is Random123's Philox, round for
# round the same as XLA's Philox4x32 above (prng.cc), so the 4x32 rule is that helper. Written by hand rather than
# traced from JAX's loop: its `mulhi` would need a rule of its own, and a constant multiplier split in 16-bit halves
# needs no 64-bit integers and never overflows (exact also where tinygrad folds a constant key at compile time).

def _jax_primitive(module, name):
  try: return getattr(importlib.import_module(module), name, None)
  except ImportError: return None


_PHILOX2x32_M = 0xD256D193   # Random123's PHILOX_M2x32_0; the key is bumped by kPhiloxW32A (_PHILOX_W[0])


@register(_jax_primitive("jax._src.random.philox4x32", "philox4x32_p"))   # (None, and so no rule, in a JAX without it)
def philox4x32(k0, k1, x0, x1, x2, x3):
  """Philox-4x32-10 of the counter (x0, x1, x2, x3) under the key (k0, k1)."""
  shape, ops = _broadcast_uint32("philox4x32", k0, k1, x0, x1, x2, x3)
  if 0 in shape: return [const(0, np.uint32, shape)] * 4
  return _philox4x32(ops[2:], ops[:2])


@register(_jax_primitive("jax._src.random.philox2x32", "philox2x32_p"))
def philox2x32(k0, x0, x1):
  """Philox-2x32-10 of the counter (x0, x1) under the key k0: per round (hi, lo) = M * x0, then
  (x0, x1) = (hi ^ x1 ^ k0, lo)."""
  shape, (k0, x0, x1) = _broadcast_uint32("philox2x32", k0, x0, x1)
  if 0 in shape: return [const(0, np.uint32, shape)] * 2
  for rnd in range(10):
    if rnd: k0 = wrap_int(k0 + _PHILOX_W[0])
    hi, lo = _mul_hi_lo(x0, _PHILOX2x32_M)
    x0, x1 = hi ^ x1 ^ k0, lo
  return [x0, x1]



# ---- the threefry4x32 impl (jax._src.random.threefry4x32, new in jax 0.10) ---------------------------------------
# Keys of impl 'threefry4x32' (key<fry4>, uint32[..., 4]). Like the philox impls, its seed/split/fold_in/random_bits are
# jitted lax code around one primitive, threefry4x32_p(k0, k1, k2, k3, x0, x1, x2, x3) -> 4 words, elementwise over
# operands that broadcast, traced by the key-primitive rules above. JAX lowers it with mlir.lower_fun of
# _threefry4x32_lowering, a Python loop of lax ops; the rule is that loop, unrolled with Python-int rotation amounts
# (as threefry2x32's: shifts by constant ints compile much faster than the generic shift rules' shifts by tensors).

_ROTATIONS_4x32 = ((10, 26), (11, 21), (13, 27), (23, 5), (6, 20), (17, 11), (25, 10), (18, 20))   # Random123 R_32x4


@register(_jax_primitive("jax._src.random.threefry4x32", "threefry4x32_p"))   # (None, and so no rule, in a JAX without it)
def threefry4x32(k0, k1, k2, k3, x0, x1, x2, x3):
  """Threefry-4x32-20 of the counter (x0, x1, x2, x3) under the key (k0, k1, k2, k3): the Skein key schedule with
  parity 0x1BD11BDA, injected every 4 rounds with the injection count added to the last word; even rounds mix
  (0, 1) and (2, 3), odd rounds (0, 3) and (2, 1). uint32 adds wrap; wrap_int makes them exact where tinygrad folds
  the hash at compile time (a constant key and counter)."""
  shape, ops = _broadcast_uint32("threefry4x32", k0, k1, k2, k3, x0, x1, x2, x3)
  if 0 in shape: return [const(0, np.uint32, shape)] * 4
  w = wrap_int
  rotl = lambda v, r: w(v << r) | (v >> (32 - r))
  k0, k1, k2, k3, x0, x1, x2, x3 = ops
  ks = [k0, k1, k2, k3, k0 ^ k1 ^ k2 ^ k3 ^ 0x1BD11BDA]
  x0, x1, x2, x3 = w(x0 + ks[0]), w(x1 + ks[1]), w(x2 + ks[2]), w(x3 + ks[3])
  for rnd in range(20):
    r0, r1 = _ROTATIONS_4x32[rnd % 8]
    if rnd % 2 == 0:
      x0 = w(x0 + x1); x1 = x0 ^ rotl(x1, r0)
      x2 = w(x2 + x3); x3 = x2 ^ rotl(x3, r1)
    else:
      x0 = w(x0 + x3); x3 = x0 ^ rotl(x3, r0)
      x2 = w(x2 + x1); x1 = x2 ^ rotl(x1, r1)
    if rnd % 4 == 3:
      j = rnd // 4
      x0, x1, x2 = w(x0 + ks[(1 + j) % 5]), w(x1 + ks[(2 + j) % 5]), w(x2 + ks[(3 + j) % 5])
      x3 = w(x3 + ks[(4 + j) % 5] + (1 + j))
  return [x0, x1, x2, x3]


@register(primitive("random_clone_p"))
def random_clone(key): return key   # jax.random.clone: the same key data (keys are values here, never consumed)


unsupported("rng_uniform", why="XLA's stateful RngUniform: jax.jit itself returns new values on every call (XLA's hidden "
            "generator state), so there is nothing to match; jax.random is bit-exact")
