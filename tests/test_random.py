"""jax.random on tinygrad, bit-exact with jax.jit (tinyjax/random.py): the key primitives (random_seed/bits/split/
fold_in/wrap/unwrap), the threefry2x32 hash they are made of, erf_inv, the samplers built on them, and keys that
go in and out of tiny functions (TinyKey), so a training loop can carry its key from call to call."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import example, given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax

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


def test_unsupported_impl_says_what_is_missing():
  with pytest.raises(NotImplementedError, match="philox4x32"):
    tiny(lambda k: jax.random.bits(k, (3,)))(jax.random.key(0, impl="philox4x32"))


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
