"""jax.random on tinygrad, bit-exact with jax.jit (tinyjax/rules/random.py): the key primitives (random_seed/bits/split/
fold_in/wrap/unwrap), the threefry2x32 hash they are made of, erf_inv, the samplers built on them, and keys that
go in and out of tiny functions (TinyKey), so a training loop can carry its key from call to call. Also
rng_bit_generator (XLA's RngBitGenerator: THREE_FRY, PHILOX, RNG_DEFAULT) and the rbg/unsafe_rbg impls built on it, and
the philox4x32/philox2x32 impls (JAX's own philox4x32_p/philox2x32_p hashes)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax
import jax._src.random as jax_random_impls   # the modules of JAX's PRNG impls (philox4x32, threefry4x32, ...)
from jax._src.random import prng

import tinyjax
from parity import assert_same, check
from tinyjax import TinyKey, tiny
from tinyjax.ops import RULES, primitive

KEY = jax.random.key(1701)
LEGACY = jax.random.PRNGKey(1701)


def needs(*names):
  """Skip (naming the missing rule) a sampler test whose Jaxpr also needs a primitive another module owns."""
  missing = [n for n in names if primitive(f"{n}_p") not in RULES]
  return pytest.mark.skipif(bool(missing), reason=f"no rule yet for {', '.join(missing)}")


# ---- the key primitives ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [KEY, LEGACY], ids=["typed", "legacy"])
def test_bits_all_widths_and_shapes(key):
  # odd sizes, scalars, 0-size and multi-dim shapes; 8/16-bit fields come from the same 32-bit words
  def f(k):
    return [jax.random.bits(k, shape, dtype) for dtype in (jnp.uint8, jnp.uint16, jnp.uint32)
            for shape in [(), (7,), (3, 5)]] + [jax.random.bits(k, (0, 3)), jax.random.bits(k, (2, 1, 4), jnp.uint8)]
  check(f, key)


def test_bits_64_under_x64():
  with jax.enable_x64(True):
    check(lambda k: [jax.random.bits(k, (5,), jnp.uint64), jax.random.bits(k, (), jnp.uint64),
                     jax.random.uniform(k, (4,), jnp.float64), jax.random.normal(k, (9,), jnp.float64)], KEY)


_BITS_AND_SPLIT = tiny(lambda k: [jax.random.bits(k, (6,)), jax.random.bits(k, (5,), jnp.uint8),
                                   jax.random.split(k, 3), jax.random.fold_in(k, 123)])


@given(hnp.arrays(np.uint32, (2,), elements=st.integers(0, 2 ** 32 - 1)))
@example(np.array([0, 0], np.uint32))
@example(np.array([0xFFFFFFFF, 0xFFFFFFFF], np.uint32))
def test_bits_for_any_key_data(data):
  # one program replayed for every drawn key: wrap-around in every round of the hash, extremes included
  key = jax.random.wrap_key_data(data)
  assert_same(_BITS_AND_SPLIT(key), jax.jit(_BITS_AND_SPLIT.fun)(key))


def test_seed_typed_and_legacy():
  check(lambda s: [jax.random.key(s), jax.random.PRNGKey(s), jax.random.key_data(jax.random.key(s))], np.int32(-5))
  check(lambda s: jax.random.PRNGKey(s), np.uint32(0xFFFFFFFF))   # uint32 seeds: high word 0, no sign extension


def test_seed_64_bit_under_x64():
  with jax.enable_x64(True):   # a 64-bit seed fills both key words
    check(lambda s: [jax.random.key(s), jax.random.PRNGKey(s)], np.int64(-(2 ** 40) - 3))
    check(lambda s: jax.random.key(s), np.uint64(2 ** 63 + 12345))


def test_split_and_fold_in_chains():
  def f(k):
    a, b = jax.random.split(k)
    c = jax.random.fold_in(b, 7)
    d = jax.random.split(c, (2, 3))
    e = jax.random.fold_in(a, jnp.uint32(0xFFFFFFFF))
    return [a, b, c, d, e, jax.random.split(e, 1), jax.random.split(e, 5)]
  check(f, KEY)
  check(f, LEGACY)


def test_fold_in_traced_message():
  check(lambda k, m: [jax.random.fold_in(k, m), jax.random.fold_in(jax.random.fold_in(k, m), m + 1)], KEY, np.int32(-3))


def test_key_arrays():
  # key arrays (batched keys): split/fold_in/bits/wrap/unwrap on keys of shape (4,) and (2, 3)
  def f(k):
    ks = jax.random.split(k, 4)
    grid = jax.random.split(k, (2, 3))
    return [ks, jax.vmap(jax.random.split)(ks), jax.vmap(lambda k: jax.random.bits(k, (3,)))(ks),
            jax.vmap(jax.random.fold_in)(ks, jnp.arange(4)), jax.vmap(lambda k: jax.random.fold_in(k, 9))(ks),
            jax.vmap(jax.vmap(lambda k: jax.random.uniform(k, (2,))))(grid),
            jax.random.key_data(grid), jax.random.wrap_key_data(jax.random.key_data(grid) ^ 1)]
  check(f, KEY)


def test_keys_through_data_movement():
  # slice/squeeze (unpacking a split), dynamic_slice, gather, scatter, select_n, concatenate, stack, transpose, pad
  def f(k, i):
    ks = jax.random.split(k, 4)
    a, b = jax.random.split(k)
    return [a, b, ks[i], ks[1:3], ks[jnp.array([3, 0, 3])], ks.at[1].set(k), jnp.where(i > 1, a, b),
            jnp.where(jnp.arange(4) % 2 == 0, ks, ks[::-1]), jnp.concatenate([ks, jax.random.split(b, 2)]),
            jnp.stack([a, b]), jax.random.split(k, (2, 3)).T, jnp.expand_dims(a, 0), ks.reshape(2, 2)]
  check(f, KEY, np.int32(2))


def test_threefry_partitionable_off():
  # the older derivation of bits and split (counts from one flat iota, 8/16-bit fields unpacked from 32-bit words)
  f = lambda k: [jax.random.bits(k, (5,), jnp.uint8), jax.random.bits(k, (3, 3)), jax.random.split(k, 3),
                 jax.random.fold_in(k, 3), jax.random.normal(k, (4,))]
  with jax.threefry_partitionable(False):
    check(f, KEY)
    g = tiny(f)   # replayed with another key: the odd-count padding constant must be part of the program
    for key in (KEY, jax.random.key(7)): assert_same(g(key), jax.jit(f)(key))


def test_threefry_2x32_direct():
  from jax.extend.random import threefry_2x32
  key = np.array([0x13198A2E, 0x03707344], np.uint32)
  check(lambda k, c: [threefry_2x32(k, c), threefry_2x32(k, c[:5])], key, np.arange(8, dtype=np.uint32) * 0x9E3779B9)
  # the primitive itself, on 2-d operands with wrap-around-sized values (JAX's CPU lowering needs equal shapes)
  p = jax.extend.random.threefry2x32_p
  u = np.uint32
  check(lambda a, b, x, y: p.bind(a, b, x, y), np.full((3, 4), 0xFFFFFFFF, u), np.full((3, 4), 7, u),
        np.arange(12, dtype=u).reshape(3, 4) * u(0x9E3779B9), np.full((3, 4), 0xDEADBEEF, u))


def test_known_answer():
  # the Threefry-2x32 test vector of Salmon et al. (Random123): key and counter all ones
  from jax.extend.random import threefry_2x32
  got = tiny(threefry_2x32)(np.full(2, 0xFFFFFFFF, np.uint32), np.full(2, 0xFFFFFFFF, np.uint32))
  np.testing.assert_array_equal(tinyjax.to_numpy(got), np.array([0x1cb996fc, 0xbb002be7], np.uint32))


def _impl_without_rule():
  """A user's PRNGImpl (never registered) whose hash is a primitive tinyjax has no rule for."""
  from jax._src import core
  hash_p = core.Primitive("mystery_hash")
  hash_p.def_abstract_eval(lambda x: x)
  seed = lambda s: jnp.stack([hash_p.bind(lax.convert_element_type(s, jnp.uint32)), jnp.uint32(0)])
  bits = lambda k, bit_width, shape: jnp.broadcast_to(hash_p.bind(k[0]), shape).astype(prng.UINT_DTYPES[bit_width])
  return prng.PRNGImpl(key_shape=(2,), seed=seed, split=lambda k, shape: jnp.broadcast_to(k, (*shape, 2)),
                       random_bits=bits, fold_in=lambda k, d: k, name="mystery", tag="mys")


def test_impl_without_rule_says_what_is_missing():
  # every impl JAX ships has its hash primitives' rules; a user's impl made of an unknown primitive says which one
  impl = _impl_without_rule()
  with pytest.raises(NotImplementedError, match="mystery_hash"):
    tiny(lambda s: jax.random.key(s, impl=impl))(np.int32(0))
  with pytest.raises(NotImplementedError, match="mystery_hash"):
    tiny(lambda s: jax.random.bits(jax.random.wrap_key_data(jnp.stack([s, s]), impl=impl), (3,)))(np.uint32(1))


# ---- erf_inv ---------------------------------------------------------------------------------------------------

def test_erf_inv_float32():
  x = np.concatenate([np.linspace(-1, 1, 2001, dtype=np.float32), np.float32([-1, 1, 0, -0.0, np.nan, 1.5, -2,
                      np.inf, -np.inf, 1 - 2 ** -24, -1 + 2 ** -24, 1e-30, 0.999, 0.9999999])]).astype(np.float32)
  check(lax.erf_inv, x)


@pytest.mark.parametrize("dtype", [np.float16, jnp.bfloat16])
def test_erf_inv_half(dtype):
  check(lax.erf_inv, np.linspace(-1, 1, 301).astype(dtype))


def test_erf_inv_float64():
  with jax.enable_x64(True):
    x = np.concatenate([np.linspace(-1, 1, 1001), [1 - 2 ** -52, -1 + 2 ** -53, 1e-300, np.nan, 1.0, -1.0, 3.0]])
    check(lax.erf_inv, x)


# ---- samplers --------------------------------------------------------------------------------------------------

def test_uniform_normal_bernoulli():
  def f(k):
    k1, k2, k3 = jax.random.split(k, 3)
    return [jax.random.uniform(k1, (5, 3)), jax.random.uniform(k1, (4,), minval=-2.0, maxval=3.0),
            jax.random.uniform(k1, (6,), jnp.float16), jax.random.uniform(k1, (6,), jnp.bfloat16),
            jax.random.normal(k2, (1000,)), jax.random.normal(k2, (7,), jnp.float16),
            jax.random.normal(k2, (7,), jnp.bfloat16),
            jax.random.bernoulli(k3, 0.3, (50,)), jax.random.bernoulli(k3, jnp.linspace(0, 1, 11))]
  check(f, KEY)


def test_randint_and_friends():
  def f(k):
    return [jax.random.randint(k, (20,), 0, 10), jax.random.randint(k, (20,), -(2 ** 31), 2 ** 31 - 1),
            jax.random.randint(k, (9,), 3, 250, jnp.uint8), jax.random.randint(k, (9,), -5, 5, jnp.int8),
            jax.random.randint(k, (4, 3), jnp.array([0, 10, 100]), jnp.array([5, 20, 1000])),
            jax.random.rademacher(k, (8,)), jax.random.gumbel(k, (8,)), jax.random.exponential(k, (8,)),
            jax.random.laplace(k, (8,)), jax.random.logistic(k, (8,)), jax.random.cauchy(k, (8,))]
  check(f, KEY)


def test_categorical():
  logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], np.float32))
  check(lambda k, l: [jax.random.categorical(k, l), jax.random.categorical(k, l, shape=(5, 2)),
                      jax.random.categorical(k, l.T, axis=0)], KEY, logits)


def test_choice_with_replacement():
  check(lambda k: [jax.random.choice(k, 10, (6,)), jax.random.choice(k, jnp.arange(5.0) * 2, (2, 2))], KEY)


@needs("sort")
def test_permutation_and_choice_without_replacement():
  check(lambda k, x: [jax.random.permutation(k, 10), jax.random.permutation(k, x),
                      jax.random.permutation(k, x, independent=True), jax.random.choice(k, 10, (4,), replace=False)],
        KEY, np.arange(12.0, dtype=np.float32).reshape(4, 3))


@needs("cumsum", "gather", "le_to")
def test_choice_with_probabilities():
  p = np.array([0.1, 0.0, 0.6, 0.3], np.float32)
  check(lambda k, p: jax.random.choice(k, 4, (10,), p=p), KEY, p)


@needs("erf", "nextafter")
def test_truncated_normal():
  check(lambda k: [jax.random.truncated_normal(k, -1.0, 2.0, (100,)), jax.random.truncated_normal(k, 0.5, 0.6, (5,))],
        KEY, rtol=1e-5, atol=1e-6)


def test_flax_dropout_masks():
  import flax.linen as nn
  x = np.ones((4, 16), np.float32)
  def f(k, x):
    drop = nn.Dropout(rate=0.5, deterministic=False)
    return [drop.apply({}, x, rngs={"dropout": k}), nn.Dropout(0.1, deterministic=False).apply({}, x, rngs={"dropout": k})]
  check(f, KEY, x)
  check(f, LEGACY, x)


# ---- keys crossing the tiny boundary ---------------------------------------------------------------------------

def test_typed_key_in_and_out():
  split = tiny(lambda k: jax.random.split(k))
  keys = split(KEY)
  assert isinstance(keys, TinyKey) and keys.shape == (2,) and keys.dtype == KEY.dtype
  assert_same(keys, jax.random.split(KEY))
  assert_same(keys.to_jax(), jax.random.split(KEY))


def test_training_loop_carries_its_key():
  # the loop a training script writes: each step splits the key it got from the previous step
  def step(key, w):
    key, sub = jax.random.split(key)
    return key, w + jax.random.normal(sub, w.shape)
  step_jax, step_tiny = jax.jit(step), tiny(step)
  key_j, w_j, key_t, w_t = KEY, np.zeros(3, np.float32), KEY, np.zeros(3, np.float32)
  seen_j, seen_t = [], []
  for _ in range(4):
    key_j, w_j = step_jax(key_j, w_j)
    key_t, w_t = step_tiny(key_t, w_t)
    seen_j.append((key_j, w_j)); seen_t.append((key_t, w_t))
  assert isinstance(key_t, TinyKey)
  assert_same(seen_t, seen_j)   # every step's results, not only the last: replayed outputs must stay valid
  assert step_tiny.trace_count == 1   # a jax key on call 1 and TinyKeys after share one signature


def test_flipping_threefry_partitionable_retraces():
  f = lambda k: jax.random.bits(k, (3,))
  g = tiny(f)
  assert_same(g(KEY), jax.jit(f)(KEY))
  with jax.threefry_partitionable(False):
    assert_same(g(KEY), jax.jit(f)(KEY))


@given(st.integers(0, 2**32 - 1))
def test_permutation_and_choice(seed):
  """They sort random bits (sorting.py): the same permutations and draws as jax.jit, bit for bit."""
  def draws(key):
    return (jax.random.permutation(key, 50), jax.random.permutation(key, jnp.arange(12.0).reshape(4, 3), axis=1,
                                                                       independent=True),
            jax.random.choice(key, 20, (5,), replace=False), jax.random.choice(key, 20, (7,), p=jnp.linspace(0, 1, 20)))
  check(draws, jax.random.key(seed))


# ---- rng_bit_generator (XLA's RngBitGenerator) and the rbg / unsafe_rbg impls built on it ------------------------

ALGORITHMS = list(lax.RandomAlgorithm)
# shapes that exercise prng.cc's SplitShapeIntoHalves: scalar, odd, first even dim, no even dim (largest split),
# size-1 dims, 0-size dims (as the first even dim and behind an odd one)
RBG_SHAPES = [(), (1,), (7,), (3, 5), (4, 6), (3, 1, 5), (5, 3, 2), (1, 1), (0, 3), (3, 0)]


def _rbg_draws(key, algorithm, shapes=RBG_SHAPES, dtypes=(jnp.uint32, jnp.uint8, jnp.uint16)):
  return [lax.rng_bit_generator(key, s, dtype=dtypes[i % len(dtypes)], algorithm=algorithm) for i, s in enumerate(shapes)]


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
def test_rng_bit_generator_shapes_and_dtypes(algorithm):
  # every output with its new key; RNG_DEFAULT is XLA CPU's RNG_PHILOX
  check(lambda k: _rbg_draws(k, algorithm), np.array([1, 2, 3, 4], np.uint32))
  check(lambda k: [lax.rng_bit_generator(k, (2, 3), dtype=d, algorithm=algorithm) for d in (jnp.uint8, jnp.uint16)],
        np.array([0xDEADBEEF, 7, 0xFFFFFFF0, 0x80000000], np.uint32))


@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5), algorithm=st.sampled_from(ALGORITHMS),
       dtype=st.sampled_from([jnp.uint8, jnp.uint16, jnp.uint32]))
def test_rng_bit_generator_any_shape(shape, algorithm, dtype):
  check(lambda k: lax.rng_bit_generator(k, shape, dtype=dtype, algorithm=algorithm), np.array([3, 1, 4, 1], np.uint32))


_RBG_REPLAYED = {a: tiny(lambda k, a=a: _rbg_draws(k, a, [(), (5,), (3, 4), (2, 3, 3)])) for a in ALGORITHMS}
_U32 = st.integers(0, 2 ** 32 - 1)


@pytest.mark.parametrize("algorithm", ALGORITHMS, ids=str)
@given(data=hnp.arrays(np.uint32, (4,), elements=st.one_of(_U32, st.sampled_from([0, 1, 0xFFFFFFFE, 0xFFFFFFFF]))))
@example(data=np.array([0, 0, 0, 0], np.uint32))
@example(data=np.array([0xFFFFFFFF] * 4, np.uint32))              # the counter wraps; philox's carries reach the key
@example(data=np.array([5, 6, 0xFFFFFFFE, 0xFFFFFFFF], np.uint32))  # the counter wraps inside the draw
@example(data=np.array([0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFC, 7], np.uint32))  # a carry into the counter's high word
def test_rng_bit_generator_any_key(algorithm, data):
  # one program per algorithm replayed for every drawn key: wrap-around in the counters and in every round
  assert_same(_RBG_REPLAYED[algorithm](data), jax.jit(_RBG_REPLAYED[algorithm].fun)(data))


def test_rng_bit_generator_64_bit():
  # uint64 bits (ThreeFryRngBit64 / PhiloxRngBit64) and the uint64[2] key JAX also accepts, under x64
  with jax.enable_x64(True):
    for key in (np.array([1, 2, 0xFFFFFFFF, 0xFFFFFFFF], np.uint32), np.array([2 ** 63 + 5, 2 ** 64 - 2], np.uint64)):
      check(lambda k: [lax.rng_bit_generator(k, s, dtype=d, algorithm=a) for a in ALGORITHMS
                       for s, d in [((), jnp.uint64), ((5,), jnp.uint64), ((2, 3), jnp.uint64), ((0,), jnp.uint64),
                                    ((3,), jnp.uint8), ((4,), jnp.uint32)]], key)


def test_rng_bit_generator_constant_key_and_vmap():
  # a key known at trace time (tinygrad folds the arithmetic: it must wrap as at run time); vmap, whose batching
  # rule draws for the whole batch from the first key
  check(lambda: [lax.rng_bit_generator(jnp.array([0xFFFFFFFF, 3, 0xFFFFFFFE, 0xFFFFFFFF], jnp.uint32), (5,), algorithm=a)
                 for a in ALGORITHMS])
  keys = np.arange(12, dtype=np.uint32).reshape(3, 4) * np.uint32(0x9E3779B9)
  check(jax.vmap(lambda k: lax.rng_bit_generator(k, (2, 3), dtype=jnp.uint8)), keys)


def test_rng_bit_generator_bad_key_is_a_typed_error():
  with pytest.raises(TypeError, match="rng_bit_generator"):
    tiny(lambda k: lax.rng_bit_generator(k, (3,)))(np.zeros(2, np.uint32))


def test_rng_bit_generator_million_is_a_few_kernels():
  from tinygrad import GlobalCounters
  f = lambda k: lax.rng_bit_generator(k, (1000, 1000), dtype=jnp.uint8)
  g, key = tiny(f), np.array([9, 8, 7, 6], np.uint32)
  g(key)
  GlobalCounters.reset()
  got = g(key)
  assert GlobalCounters.kernel_count <= 4, GlobalCounters.kernel_count   # one hash kernel, the key, copies in
  assert_same(got, jax.jit(f)(key))


def _rbg_program(k):
  a, b = jax.random.split(k)
  return [a, b, jax.random.normal(a, (7,)), jax.random.uniform(b, (2, 3)), jax.random.bits(k, (5,), jnp.uint8),
          jax.random.bits(k, (3,), jnp.uint16), jax.random.bits(k, ()), jax.random.split(k, (2, 3)),
          jax.random.fold_in(k, 7), jax.random.randint(k, (4,), 0, 10), jax.random.key_data(k),
          jax.vmap(lambda kk: jax.random.bits(kk, (3,)))(jax.random.split(k, 4)), jax.vmap(jax.random.split)(jax.random.split(k, 2))]


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_rbg_keys(impl):
  # the user-facing path: keys of the rbg impls through random_seed/bits/split/fold_in (JAX's own impl, traced)
  check(_rbg_program, jax.random.key(42, impl=impl))
  check(lambda s, m: [jax.random.key(s, impl=impl), jax.random.fold_in(jax.random.key(s, impl=impl), m)],
        np.int32(-5), np.uint32(0xFFFFFFFF))
  check(lambda: [jax.random.fold_in(jax.random.key(3, impl=impl), 11), jax.random.bits(jax.random.key(3, impl=impl), (4,))])


def test_rbg_keys_in_and_out():
  key = jax.random.key(1701, impl="rbg")
  keys = tiny(lambda k: jax.random.split(k))(key)
  assert isinstance(keys, TinyKey) and keys.shape == (2,) and keys.dtype == key.dtype
  assert_same(keys, jax.random.split(key))
  draw = lambda ks: [jax.random.normal(ks[1], (4,)), jax.random.split(ks[0])]
  assert_same(tiny(draw)(keys), jax.jit(draw)(jax.random.split(key)))


def test_rbg_as_default_impl():
  with jax.default_prng_impl("rbg"):
    check(lambda s: [jax.random.key(s), jax.random.PRNGKey(s), jax.random.normal(jax.random.PRNGKey(s), (5,))], np.int32(9))
  with jax.default_prng_impl("unsafe_rbg"):
    check(_rbg_program, jax.random.PRNGKey(3))


def test_rbg_64_bit_under_x64():
  with jax.enable_x64(True):
    check(lambda k: [jax.random.bits(k, (5,), jnp.uint64), jax.random.normal(k, (3,), jnp.float64)],
          jax.random.key(1, impl="rbg"))


def test_threefry_on_constant_keys():
  # a key and a message known at trace time: tinygrad folds the whole hash at compile time, with unbounded ints
  check(lambda: [jax.random.fold_in(jax.random.key(3), 11), jax.random.split(jax.random.key(2 ** 31 - 1), 3),
                 jax.random.bits(jax.random.key(0), (3,))])


# ---- the philox4x32 and philox2x32 impls (philox4x32_p / philox2x32_p) ------------------------------------------

PHILOX = [impl for impl in ("philox4x32", "philox2x32") if impl in prng.prngs]
pytestmark_philox = pytest.mark.skipif(not PHILOX, reason="this JAX has no philox impls")
_philox_p = lambda impl: getattr(getattr(jax_random_impls, impl), f"{impl}_p")


def _philox_program(k):
  # every derivation JAX has for a key: bits of each width over odd/scalar/0-size/multi-dim shapes, split, fold_in,
  # key arrays and the samplers built on the bits
  a, b = jax.random.split(k)
  ks = jax.random.split(k, 4)
  return ([jax.random.bits(k, s, d) for d in (jnp.uint8, jnp.uint16, jnp.uint32) for s in [(), (7,), (3, 5)]] +
          [jax.random.bits(k, (0, 3)), jax.random.bits(k, (2, 1, 4), jnp.uint8), a, b, jax.random.split(k, (2, 3)),
           jax.random.split(k, 1), jax.random.fold_in(k, 7), jax.random.fold_in(b, jnp.uint32(0xFFFFFFFF)),
           jax.random.key_data(k), ks, jax.vmap(jax.random.split)(ks), jax.vmap(lambda kk: jax.random.bits(kk, (3,)))(ks),
           jax.vmap(jax.random.fold_in)(ks, jnp.arange(4)), jax.random.wrap_key_data(jax.random.key_data(ks) ^ 1, impl=jax.random.key_impl(k))])


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
def test_philox_keys(impl):
  check(_philox_program, jax.random.key(1701, impl=impl))


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
def test_philox_samplers(impl):
  def f(k):
    k1, k2, k3 = jax.random.split(k, 3)
    return [jax.random.uniform(k1, (5, 3)), jax.random.uniform(k1, (6,), jnp.float16, -2.0, 3.0),
            jax.random.normal(k2, (1000,)), jax.random.normal(k2, (7,), jnp.bfloat16),
            jax.random.bernoulli(k3, 0.3, (50,)), jax.random.randint(k, (20,), 0, 10),
            jax.random.randint(k, (20,), -(2 ** 31), 2 ** 31 - 1), jax.random.randint(k, (9,), 3, 250, jnp.uint8),
            jax.random.gumbel(k, (8,))]
  check(f, jax.random.key(42, impl=impl))


@pytestmark_philox
def test_philox_categorical_and_permutation():
  # argmax and sort over philox bits (the other impl's hash differs only inside the primitive: philox4x32 here)
  logits = np.log(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]], np.float32))
  check(lambda k, l, x: [jax.random.categorical(k, l), jax.random.permutation(k, 10),
                         jax.random.permutation(k, x, independent=True), jax.random.choice(k, 20, (5,), replace=False)],
        jax.random.key(42, impl="philox4x32"), logits, np.arange(12.0, dtype=np.float32).reshape(4, 3))


_PHILOX_REPLAYED = {impl: tiny(_philox_program) for impl in PHILOX}


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
@given(data=st.data())
def test_philox_any_key_data(impl, data):
  # one program per impl replayed for every drawn key: wrap-around in the key schedule and in every round
  words = st.one_of(_U32, st.sampled_from([0, 1, 0x9E3779B9, 0xFFFFFFFE, 0xFFFFFFFF]))
  key_data = data.draw(hnp.arrays(np.uint32, prng.prngs[impl].key_shape, elements=words))
  key = jax.random.wrap_key_data(key_data, impl=impl)
  assert_same(_PHILOX_REPLAYED[impl](key), jax.jit(_PHILOX_REPLAYED[impl].fun)(key))


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
@given(seed=st.integers(-(2 ** 31), 2 ** 31 - 1), msg=_U32)
@example(seed=0, msg=0)
@example(seed=-1, msg=0xFFFFFFFF)
def test_philox_seed_and_fold_in(impl, seed, msg):
  check(lambda s, m: [jax.random.key(s, impl=impl), jax.random.fold_in(jax.random.key(s, impl=impl), m),
                      jax.random.key_data(jax.random.key(s, impl=impl)),
                      jax.vmap(lambda s: jax.random.key(s, impl=impl))(s + jnp.arange(3))], np.int32(seed), np.uint32(msg))


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
def test_philox_64_bit_under_x64(impl):
  with jax.enable_x64(True):   # uint64 bits are out0 << 32 | out1; a 64-bit seed fills both counter words
    check(lambda k: [jax.random.bits(k, (5,), jnp.uint64), jax.random.bits(k, (), jnp.uint64),
                     jax.random.bits(k, (2, 3), jnp.uint64), jax.random.uniform(k, (4,), jnp.float64),
                     jax.random.normal(k, (9,), jnp.float64)], jax.random.key(3, impl=impl))
    check(lambda s: jax.random.key(s, impl=impl), np.int64(-(2 ** 40) - 3))
    check(lambda s: jax.random.key(s, impl=impl), np.uint64(2 ** 63 + 12345))


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
def test_philox_on_constant_keys(impl):
  # key and message known at trace time: tinygrad folds the whole hash at compile time, with unbounded ints
  check(lambda: [jax.random.key(0, impl=impl), jax.random.fold_in(jax.random.key(3, impl=impl), 11),
                 jax.random.split(jax.random.key(2 ** 31 - 1, impl=impl), 3), jax.random.bits(jax.random.key(-1, impl=impl), (3,)),
                 jax.random.bits(jax.random.wrap_key_data(jnp.full(prng.prngs[impl].key_shape, 0xFFFFFFFF, jnp.uint32),
                                                          impl=impl), (5,), jnp.uint16)])


def keys_round_trip(key):
  """Typed keys in and out of a tiny function, and a training loop that carries its key from step to step."""
  keys = tiny(lambda k: jax.random.split(k))(key)
  assert isinstance(keys, TinyKey) and keys.shape == (2,) and keys.dtype == key.dtype
  assert_same(keys, jax.random.split(key))
  assert_same(keys.to_jax(), jax.random.split(key))
  # the training loop: each step splits the key the previous step returned
  def step(key, w):
    key, sub = jax.random.split(key)
    return key, w + jax.random.normal(sub, w.shape)
  step_jax, step_tiny = jax.jit(step), tiny(step)
  key_j, w_j, key_t, w_t, seen_j, seen_t = key, np.zeros(3, np.float32), key, np.zeros(3, np.float32), [], []
  for _ in range(3):
    key_j, w_j = step_jax(key_j, w_j)
    key_t, w_t = step_tiny(key_t, w_t)
    seen_j.append((key_j, w_j)); seen_t.append((key_t, w_t))
  assert isinstance(key_t, TinyKey) and step_tiny.trace_count == 1
  assert_same(seen_t, seen_j)


@pytestmark_philox
@pytest.mark.parametrize("impl", PHILOX)
def test_philox_keys_in_and_out(impl):
  keys_round_trip(jax.random.key(1701, impl=impl))


def default_impl_switched(impl):
  """A tiny function of a seed under `impl` as jax's default PRNG (keys, legacy keys) and back to threefry2x32: each
  flip of the default re-traces. Returns the function."""
  f = lambda s: [jax.random.key(s), jax.random.PRNGKey(s), jax.random.normal(jax.random.PRNGKey(s), (5,)),
                 jax.random.split(jax.random.PRNGKey(s), 3), jax.random.bits(jax.random.key(s), (4,), jnp.uint8)]
  g = tiny(f)
  with jax.default_prng_impl(impl):
    assert_same(g(np.int32(9)), jax.jit(f)(np.int32(9)))
    check(lambda k: [jax.random.uniform(k, (3,)), jax.random.fold_in(k, 2)], jax.random.PRNGKey(5))   # a legacy key
  assert_same(g(np.int32(9)), jax.jit(f)(np.int32(9)))
  return f


@pytestmark_philox
def test_philox_as_default_impl():
  f = default_impl_switched("philox4x32")
  before = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "philox4x32")
  try:
    check(f, np.int32(-4))
    check(lambda k: [jax.random.uniform(k, (3,)), jax.random.fold_in(k, 2)], jax.random.PRNGKey(5))   # a legacy key
  finally:
    jax.config.update("jax_default_prng_impl", before)


@pytestmark_philox
def test_philox_hash_primitives_direct():
  # the primitives on 2-d operands with wrap-around-sized values, scalars broadcast against arrays, 0-size operands
  u = np.uint32
  big = np.arange(12, dtype=u).reshape(3, 4) * u(0x9E3779B9)
  p4 = _philox_p("philox4x32")
  check(lambda a, b, x: [p4.bind(a, b, x, x ^ u(0xFFFFFFFF), u(1), b), p4.bind(*[np.zeros((0, 2), u)] * 6)],
        big, np.full((3, 4), 0xFFFFFFFF, u), big[::-1] * u(3))
  if "philox2x32" in PHILOX:
    p2 = _philox_p("philox2x32")
    check(lambda a, x: [p2.bind(a, x, x ^ a), p2.bind(u(0xFFFFFFFF), x, u(5)), p2.bind(*[np.zeros((2, 0), u)] * 3)],
          big, big[::-1] * u(3))


@pytestmark_philox
def test_philox_known_answers():
  # Random123's kat_vectors for philox4x32-10 and philox2x32-10 (counter words, key words -> output words)
  h = lambda *ws: np.array(ws, np.uint32)
  p4 = tiny(lambda k, x: _philox_p("philox4x32").bind(k[0], k[1], x[0], x[1], x[2], x[3]))
  for ctr, key, want in [(h(0, 0, 0, 0), h(0, 0), h(0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8)),
                         (h(*[0xFFFFFFFF] * 4), h(0xFFFFFFFF, 0xFFFFFFFF), h(0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd)),
                         (h(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), h(0xa4093822, 0x299f31d0),
                          h(0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1))]:
    np.testing.assert_array_equal(np.array([tinyjax.to_numpy(w) for w in p4(key, ctr)]), want)
  if "philox2x32" in PHILOX:
    p2 = tiny(lambda k, x: _philox_p("philox2x32").bind(k, x[0], x[1]))
    for ctr, key, want in [(h(0, 0), 0, h(0xff1dae59, 0x6cd10df2)), (h(0xFFFFFFFF, 0xFFFFFFFF), 0xFFFFFFFF, h(0x2c3f628b, 0xab4fd7ad)),
                           (h(0x243f6a88, 0x85a308d3), 0x13198a2e, h(0xdd7ce038, 0xf62a4c12))]:
      np.testing.assert_array_equal(np.array([tinyjax.to_numpy(w) for w in p2(np.uint32(key), ctr)]), want)


def assert_million_draws_are_a_few_kernels(key):
  """A million bits or uniforms from this key replay in at most 4 kernels (the hash fused with its consumer, copies)."""
  from tinygrad import GlobalCounters
  for f in (lambda k: jax.random.bits(k, (1000, 1000), jnp.uint8), lambda k: jax.random.uniform(k, (1000, 1000))):
    g = tiny(f)
    g(key)
    GlobalCounters.reset()
    got = g(key)
    assert GlobalCounters.kernel_count <= 4, GlobalCounters.kernel_count
    assert_same(got, jax.jit(f)(key))


@pytestmark_philox
def test_philox_million_is_a_few_kernels(): assert_million_draws_are_a_few_kernels(jax.random.key(9, impl="philox4x32"))


# ---- the threefry4x32 impl (threefry4x32_p) ---------------------------------------------------------------------

HAS_FRY4 = "threefry4x32" in prng.prngs
pytestmark_fry4 = pytest.mark.skipif(not HAS_FRY4, reason="this JAX has no threefry4x32 impl")
FRY4 = jax.random.key(1701, impl="threefry4x32") if HAS_FRY4 else None


@pytestmark_fry4
def test_threefry4x32_keys():
  # bits of each width over odd/scalar/0-size/multi-dim shapes, split, fold_in, key arrays and vmap over keys
  check(_philox_program, FRY4)


@pytestmark_fry4
def test_threefry4x32_samplers():
  # the samplers differ between impls only in the bits they are fed; the rest is covered on threefry2x32/philox keys
  def f(k):
    k1, k2 = jax.random.split(k)
    return [jax.random.uniform(k1, (5, 3)), jax.random.normal(k2, (1000,)), jax.random.randint(k, (20,), 0, 10),
            jax.random.randint(k, (9,), -(2 ** 31), 2 ** 31 - 1), jax.random.permutation(k, 10)]
  check(f, FRY4)


_FRY4_REPLAYED = tiny(_philox_program)


@pytestmark_fry4
@given(hnp.arrays(np.uint32, (4,), elements=st.one_of(_U32, st.sampled_from([0, 1, 0x1BD11BDA, 0xFFFFFFFE, 0xFFFFFFFF]))))
@example(np.zeros(4, np.uint32))
@example(np.full(4, 0xFFFFFFFF, np.uint32))
def test_threefry4x32_any_key_data(data):
  # one program replayed for every drawn key: wrap-around in the key schedule and in every round
  key = jax.random.wrap_key_data(data, impl="threefry4x32")
  assert_same(_FRY4_REPLAYED(key), jax.jit(_FRY4_REPLAYED.fun)(key))


@pytestmark_fry4
@given(seed=st.integers(-(2 ** 31), 2 ** 31 - 1), msg=_U32)
@example(seed=0, msg=0)
@example(seed=-1, msg=0xFFFFFFFF)
def test_threefry4x32_seed_and_fold_in(seed, msg):
  impl = "threefry4x32"
  check(lambda s, m: [jax.random.key(s, impl=impl), jax.random.fold_in(jax.random.key(s, impl=impl), m),
                      jax.random.key_data(jax.random.key(s, impl=impl)),
                      jax.vmap(lambda s: jax.random.key(s, impl=impl))(s + jnp.arange(3))], np.int32(seed), np.uint32(msg))


@pytestmark_fry4
def test_threefry4x32_64_bit_under_x64():
  with jax.enable_x64(True):   # uint64 bits are (out0 ^ out2) << 32 | (out1 ^ out3); a 64-bit seed fills k0 and k1
    check(lambda k: [jax.random.bits(k, (5,), jnp.uint64), jax.random.bits(k, (), jnp.uint64),
                     jax.random.bits(k, (2, 3), jnp.uint64), jax.random.uniform(k, (4,), jnp.float64),
                     jax.random.normal(k, (9,), jnp.float64)], jax.random.key(3, impl="threefry4x32"))
    check(lambda s: jax.random.key(s, impl="threefry4x32"), np.int64(-(2 ** 40) - 3))
    check(lambda s: jax.random.key(s, impl="threefry4x32"), np.uint64(2 ** 63 + 12345))


@pytestmark_fry4
def test_threefry4x32_on_constant_keys():
  # key and message known at trace time: tinygrad folds the whole hash at compile time, with unbounded ints
  impl = "threefry4x32"
  check(lambda: [jax.random.key(0, impl=impl), jax.random.fold_in(jax.random.key(3, impl=impl), 11),
                 jax.random.split(jax.random.key(2 ** 31 - 1, impl=impl), 3), jax.random.bits(jax.random.key(-1, impl=impl), (3,)),
                 jax.random.bits(jax.random.wrap_key_data(jnp.full((4,), 0xFFFFFFFF, jnp.uint32), impl=impl), (5,), jnp.uint16)])


@pytestmark_fry4
def test_threefry4x32_keys_in_and_out():
  keys_round_trip(FRY4)


@pytestmark_fry4
def test_threefry4x32_as_default_impl():
  default_impl_switched("threefry4x32")


@pytestmark_fry4
def test_threefry4x32_primitive_direct_and_known_answers():
  # the primitive on 2-d operands with wrap-around-sized values, scalars broadcast against arrays, 0-size operands
  p = jax_random_impls.threefry4x32.threefry4x32_p
  u = np.uint32
  big = np.arange(12, dtype=u).reshape(3, 4) * u(0x9E3779B9)
  check(lambda a, b, x: [p.bind(a, b, x, u(7), x ^ u(0xFFFFFFFF), u(1), b, a), p.bind(*[np.zeros((0, 2), u)] * 8)],
        big, np.full((3, 4), 0xFFFFFFFF, u), big[::-1] * u(3))
  # Random123's kat_vectors for threefry4x32-20 (counter words, key words -> output words)
  h = lambda *ws: np.array(ws, np.uint32)
  f = tiny(lambda k, x: p.bind(*[k[i] for i in range(4)], *[x[i] for i in range(4)]))
  for ctr, key, want in [(h(0, 0, 0, 0), h(0, 0, 0, 0), h(0x9c6ca96a, 0xe17eae66, 0xfc10ecd4, 0x5256a7d8)),
                         (h(*[0xFFFFFFFF] * 4), h(*[0xFFFFFFFF] * 4), h(0x2a881696, 0x57012287, 0xf6c7446e, 0xa16a6732)),
                         (h(0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344), h(0xa4093822, 0x299f31d0, 0x082efa98, 0xec4e6c89),
                          h(0x59cd1dbb, 0xb8879579, 0x86b5d00c, 0xac8b6d84))]:
    np.testing.assert_array_equal(np.array([tinyjax.to_numpy(w) for w in f(key, ctr)]), want)


@pytestmark_fry4
def test_threefry4x32_million_is_a_few_kernels(): assert_million_draws_are_a_few_kernels(FRY4)


# ---- mulhi (lax.mulhi: the high half of an integer product) ------------------------------------------------------

MULHI_DTYPES = [np.uint8, np.uint16, np.uint32, np.int8, np.int16, np.int32]


def _ints(dtype):
  info = np.iinfo(dtype)   # extremes and small values often: the sign corrections and the carries between halves
  return st.one_of(st.integers(int(info.min), int(info.max)),
                   st.sampled_from(sorted({int(info.min), int(info.min) + 1, -1 if info.min else 0, 0, 1, int(info.max)})))


@st.composite
def _mulhi_operands(draw, dtypes):
  dtype = draw(st.sampled_from(dtypes))
  shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
  x = draw(hnp.arrays(dtype, shape, elements=_ints(dtype)))
  form = draw(st.sampled_from(["same", "scalar_y", "scalar_x"]))   # a rank-0 operand broadcasts against the other
  y = draw(hnp.arrays(dtype, shape if form == "same" else (), elements=_ints(dtype)))
  return (y, x) if form == "scalar_x" else (x, y)


def _check_mulhi(x, y):
  try: check(lax.mulhi, x, y)
  except jax.errors.JaxRuntimeError as e:
    # XLA CPU cannot compile a signed mulhi of a size-1 array and a scalar ("Unsupported elementwise operation
    # mulhi"): the reference is then that of the operands broadcast beforehand
    if "Unsupported elementwise operation" not in str(e): raise
    shape = np.broadcast_shapes(x.shape, y.shape)
    assert_same(tiny(lax.mulhi)(x, y), jax.jit(lax.mulhi)(np.broadcast_to(x, shape), np.broadcast_to(y, shape)))


@given(_mulhi_operands(MULHI_DTYPES))
@example((np.array([-3], np.int8), np.array(-128, np.int8)))
@example((np.array(7, np.int32), np.array([-2 ** 31], np.int32)))
def test_mulhi(operands):
  _check_mulhi(*operands)


@given(_mulhi_operands([np.uint64, np.int64]))
@example((np.array([-5], np.int64), np.array(2 ** 62 + 3, np.int64)))
def test_mulhi_64_under_x64(operands):
  with jax.enable_x64(True):
    _check_mulhi(*operands)


@pytest.mark.parametrize("dtype", MULHI_DTYPES + [np.uint64, np.int64], ids=lambda d: np.dtype(d).name)
def test_mulhi_extremes_and_constants(dtype):
  # every pair of extremes, as run-time operands and as trace-time constants (which tinygrad folds with unbounded ints)
  with jax.enable_x64(np.dtype(dtype).itemsize == 8):
    info = np.iinfo(dtype)
    vals = np.array(sorted({int(info.min), int(info.min) + 1, int(info.min) // 2, 0, 1, 3, int(info.max) // 2,
                            int(info.max) - 1, int(info.max)} | ({-1, -3} if info.min else set())), dtype)
    x, y = np.repeat(vals, len(vals)), np.tile(vals, len(vals))
    check(lax.mulhi, x, y)
    check(lambda: [lax.mulhi(jnp.asarray(x), jnp.asarray(y)), lax.mulhi(jnp.asarray(x), dtype(info.max))])
    ends = [dtype(v) for v in (info.min, info.min + 1, -1 if info.min else 2, info.max)]   # scalar literals only
    check(lambda: [lax.mulhi(a, b) for a in ends for b in ends])
