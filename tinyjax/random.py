"""jax.random: typed PRNG keys and the primitives that act on them, bit-exact with JAX.

A key<impl> value is carried as its uint32 key data (threefry: uint32[..., 2]). `random_seed`, `random_bits`,
`random_split` and `random_fold_in` are rules that trace JAX's own implementation of the key's impl
(`jax._src.random.prng.*_impl_base`, the very functions JAX lowers these primitives with) into a Jaxpr of
raw uint32 ops, and interpret that. The traced Jaxpr is cached per shape/params/flags. What it contains is
`threefry2x32` (the hash, a rule below), `iota_2x32_shape`, and ordinary lax ops — so JAX's choice of derivation
(`jax_threefry_partitionable`, on by default in jax 0.10; the 8/16/64-bit field layouts) is followed automatically,
because it is read when we trace. Other impls work as far as their primitives have rules (philox4x32 has none:
it raises UnsupportedPrimitiveError naming it).

Key arrays moved by data-movement primitives (a split key unpacked by slice/squeeze, gathered, selected) are
handled by the interpreter with tinyjax/keys.py.

Knowing the impl: the primitives `random_bits/split/fold_in/unwrap` carry no `impl` param; it lives in the key's
aval (key<fry> vs key<phx4>, which have the same key-data shape), read from the equation being evaluated (EQUATION).

Also here: `erf_inv` (jax.random.normal needs it), traced from JAX's lax-op transcription of XLA's polynomial.
"""
import functools

import jax
import numpy as np
from jax._src.random import prng
from tinygrad import Tensor, dtypes as tg

from .dtypes import is_key_dtype, to_tiny
from .ops import DEVICE, EQUATION, RULES, const, jdtype, nan_where, primitive, register
from .traced import config_key as _config_key, evaluate as _eval, spec as _spec, trace as _trace


# ---- which impl a key belongs to -------------------------------------------------------------------------------

def _key_impl(prim, keys):
  eqn = EQUATION.get()
  if eqn is None or eqn.primitive is not prim:   # called as a helper, not as the rule of an equation: never guess
    raise NotImplementedError(f"tinyjax: '{prim.name}' needs its key's PRNG impl, which only its equation carries")
  dtype = eqn.invars[0].aval.dtype
  if not is_key_dtype(dtype): raise TypeError(f"tinyjax: '{prim.name}' expects a typed key, got {dtype}")
  impl = dtype._impl
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


@register(primitive("random_bits_p"))
def random_bits(keys, *, bit_width, shape):
  impl = _key_impl(primitive("random_bits_p"), keys)
  ndim = len(_logical_shape(keys, impl))
  closed = _trace(_bits_fn(impl, ndim, bit_width, tuple(shape)), (_spec(keys),), _config_key())
  return _eval(closed, keys)[0]


@register(primitive("random_split_p"))
def random_split(keys, *, shape):
  impl = _key_impl(primitive("random_split_p"), keys)
  ndim = len(_logical_shape(keys, impl))
  closed = _trace(_split_fn(impl, ndim, tuple(shape)), (_spec(keys),), _config_key())
  return _eval(closed, keys)[0]


@register(primitive("random_fold_in_p"))
def random_fold_in(keys, msgs):
  impl = _key_impl(primitive("random_fold_in_p"), keys)
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

_threefry2x32_p = primitive("threefry2x32_p")


@register(_threefry2x32_p)
def threefry2x32(k1, k2, x1, x2):
  """The Threefry-2x32 hash, 20 rounds: a transcription of JAX's own lax-op lowering
  (jax._src.random.threefry2x32._threefry2x32_lowering, unrolled). Written with Python-int rotation amounts rather
  than traced from that function: tinygrad compiles shifts by constant ints ~10x faster than shifts by tensors (which
  the generic shift rules produce), and this hash sits inside every jax.random call. uint32 arithmetic wraps in
  tinygrad as in XLA (C unsigned arithmetic; << and >> by an int are a multiply and a divide by 2**r, exact mod
  2**32); the tests check the bits against jax.jit and Random123's known-answer vector."""
  shape = tuple(np.broadcast_shapes(k1.shape, k2.shape, x1.shape, x2.shape))
  if 0 in shape: return [const(0, np.uint32, shape), const(0, np.uint32, shape)]
  k1, k2, x1, x2 = [a if tuple(a.shape) == shape else a.reshape((1,) * (len(shape) - a.ndim) + tuple(a.shape)).expand(shape)
                    for a in (k1, k2, x1, x2)]
  if any(a.dtype != tg.uint32 for a in (k1, k2, x1, x2)): raise TypeError("threefry2x32 takes uint32 operands")
  rotl = lambda v, r: (v << r) | (v >> (32 - r))
  ks = [k1, k2, k1 ^ k2 ^ 0x1BD11BDA]
  x1, x2 = x1 + ks[0], x2 + ks[1]
  for i in range(5):
    for r in _ROTATIONS[i % 2]:
      x1 = x1 + x2
      x2 = rotl(x2, r) ^ x1
    x1 = x1 + ks[(i + 1) % 3]
    x2 = x2 + ks[(i + 2) % 3] + (i + 1)
  return [x1, x2]


_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


@register(primitive("iota_2x32_shape_p"))
def iota_2x32_shape(*, shape):
  """The row-major index of each element as a 64-bit count split in (hi, lo) uint32 halves."""
  size = int(np.prod(shape))
  if size == 0: return [const(0, np.uint32, shape)] * 2
  if size > 2 ** 32:   # hi would be nonzero somewhere; tinygrad's arange would need uint64 indices
    raise NotImplementedError(f"iota_2x32_shape of {size} elements (more than 2**32)")
  counter = tg.int64 if size > 2 ** 31 - 1 else tg.int32   # (Tensor.arange takes no device in tinygrad 0.14)
  lo = (Tensor.ones(size, dtype=counter, device=DEVICE.get()).cumsum(0) - 1).cast(tg.uint32).reshape(shape)
  return [const(0, np.uint32, shape), lo]


# ---- stopgap: shape primitives JAX's threefry split emits (jnp.stack) that shapes.py has no rule for yet ----------
# Registered only while no other module has a rule for them; they belong in shapes.py.

if primitive("stack_p") is not None and primitive("stack_p") not in RULES:
  @register(primitive("stack_p"))
  def stack(*xs, axis): return xs[0].stack(*xs[1:], dim=axis)

if primitive("unstack_p") is not None and primitive("unstack_p") not in RULES:
  @register(primitive("unstack_p"))
  def unstack(x, *, axis):
    return [x.shrink(tuple((i, i + 1) if d == axis else (0, n) for d, n in enumerate(x.shape))).squeeze(axis)
            for i in range(x.shape[axis])]


# ---- erf_inv ---------------------------------------------------------------------------------------------------

@register(jax.lax.erf_inv_p)
def erf_inv(x):
  """XLA's erf_inv (chlo legalization: Giles' single-precision polynomial for f32, the double one for f64), traced
  from JAX's lax-op transcription of it (jax._src.pallas.utils). f16/bf16 are computed in f32 and rounded, as XLA
  does for types narrower than f32."""
  from jax._src.pallas import utils as pallas_utils
  dt = np.dtype(jdtype(x))
  wide = np.dtype(np.float64) if dt == np.float64 else np.dtype(np.float32)
  xw = x if dt == wide else x.cast(to_tiny(wide))
  closed = _trace(pallas_utils.erf_inv_lowering_helper, ((tuple(x.shape), wide),), _config_key())
  out = _eval(closed, xw)[0]
  out = nan_where(xw.abs() > 1, out)   # NaN outside [-1, 1]; the helper gets there via log1p(-inf) = NaN, which
  return out if dt == wide else out.cast(x.dtype)   # ops._log1p returns as -inf (reported to its owner)

