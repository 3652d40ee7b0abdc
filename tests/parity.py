"""Parity with jax.jit: the one comparison every test uses (dtype-exact, NaN-exact, integers exact)."""
import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from tinygrad import Tensor

import tinyjax
from tinyjax import TinyKey, tiny

# default tolerances by dtype, for results of floating-point arithmetic
TOLERANCE = {np.dtype(np.float16): (2e-3, 1e-3), np.dtype(jnp.bfloat16): (1.6e-2, 1e-2),
             np.dtype(np.float32): (2e-5, 1e-6), np.dtype(np.float64): (1e-12, 1e-14)}


def to_numpy(x):
  if isinstance(x, (TinyKey, Tensor)): return tinyjax.to_numpy(x)
  if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key): return np.asarray(jax.random.key_data(x))
  return np.asarray(x)


def assert_same(got, want, rtol=None, atol=None, what="output"):
  got_leaves, got_tree = jax.tree_util.tree_flatten(got, is_leaf=lambda x: isinstance(x, TinyKey))
  want_leaves, want_tree = jax.tree_util.tree_flatten(want)
  assert got_tree == want_tree, f"{what}: tree {got_tree} != jax's {want_tree}"
  for i, (g, w) in enumerate(zip(got_leaves, want_leaves)):
    g, w = to_numpy(g), to_numpy(w)
    assert g.shape == w.shape, f"{what}[{i}]: shape {g.shape} != jax's {w.shape}"
    assert g.dtype == w.dtype, f"{what}[{i}]: dtype {g.dtype} != jax's {w.dtype}"
    if w.dtype.kind in "biu" or w.dtype == bool:
      np.testing.assert_array_equal(g, w, err_msg=f"{what}[{i}]")
      continue
    r, a = TOLERANCE[w.dtype]
    g64, w64 = g.astype(np.float64), w.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g64), np.isnan(w64), err_msg=f"{what}[{i}]: NaN positions differ")
    np.testing.assert_allclose(g64, w64, rtol=rtol if rtol is not None else r, atol=atol if atol is not None else a,
                               equal_nan=True, err_msg=f"{what}[{i}]")


def check(fn, *args, rtol=None, atol=None, static_argnums=(), **kwargs):
  """Run `fn` under jax.jit and under tiny on the same arguments and compare every output leaf."""
  want = jax.jit(fn, static_argnums=static_argnums)(*args, **kwargs)
  got = tiny(fn, static_argnums=static_argnums)(*args, **kwargs)
  assert_same(got, want, rtol, atol)
  return got, want


# ---- generated inputs ------------------------------------------------------------------------------------------

FLOATS = [np.float32, np.float16, jnp.bfloat16]
SIGNED = [np.int8, np.int16, np.int32]
UNSIGNED = [np.uint8, np.uint16, np.uint32]
INTS = SIGNED + UNSIGNED


def shapes(min_dims=0, max_dims=3, min_side=0, max_side=4):
  """Shapes including scalars and 0-size dims."""
  return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def arrays(dtype, shape, special=True, min_value=None, max_value=None):
  """Arrays of a dtype; floats include NaN, ±inf and -0.0 unless special=False."""
  dtype = np.dtype(dtype)
  if dtype == np.dtype(jnp.bfloat16):   # hypothesis has no bfloat16: draw float32 and round
    return arrays(np.float32, shape, special, min_value, max_value).map(lambda a: a.astype(jnp.bfloat16))
  if dtype.kind == "f":
    elements = st.floats(min_value=min_value, max_value=max_value, allow_nan=special, allow_infinity=special,
                         width=dtype.itemsize * 8, allow_subnormal=False)
    return hnp.arrays(dtype, shape, elements=elements)
  if dtype.kind in "iu":
    info = np.iinfo(dtype)
    return hnp.arrays(dtype, shape, elements=st.integers(info.min if min_value is None else min_value,
                                                         info.max if max_value is None else max_value))
  return hnp.arrays(dtype, shape)
