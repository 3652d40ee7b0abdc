"""Parity of gather and the scatter family (tinyjax/rules/indexing.py) with jax.jit.

Generated XLA configurations (every dimension-number field, slice/window sizes, modes, out-of-bounds and duplicate
indices, 0-size operands and index arrays) drive lax.gather / lax.scatter* directly; the jnp front ends (fancy
indexing, .at[], take, take_along_axis, one_hot, vmap, grad, optax) are checked as users write them. Every scatter
case runs through both of the rule's strategies (dense compare and sort + segmented scan)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax
from tinygrad import GlobalCounters, Tensor

import tinyjax
import tinyjax.rules.indexing as indexing
from parity import arrays, check
from tinyjax import tiny

Mode = lax.GatherScatterMode
DTYPES = [np.float32, np.float16, np.int32, np.uint8, np.bool_]
MODES = [Mode.CLIP, Mode.FILL_OR_DROP, Mode.PROMISE_IN_BOUNDS]


@pytest.fixture(params=["dense", "sorted"])
def scatter_path(request, monkeypatch):
  monkeypatch.setattr(indexing, "SCATTER_PATH", request.param)
  return request.param


# ---- generated XLA gathers and scatters ------------------------------------------------------------------------

@st.composite
def gather_config(draw):
  """A valid XLA gather: operand shape, GatherDimensionNumbers, slice sizes and the indices' shape.
  Batching dims are paired with index batch dims at random positions; collapsed dims may or may not be indexed."""
  n = draw(st.integers(1, 3))
  shape = [draw(st.integers(0, 4)) for _ in range(n)]
  nonempty = [d for d in range(n) if shape[d] > 0]
  obatch = sorted(draw(st.lists(st.sampled_from(nonempty), unique=True, max_size=min(2, len(nonempty))))) if nonempty else []
  rest = [d for d in range(n) if d not in obatch]
  start_index_map = draw(st.permutations(rest))[:draw(st.integers(0, len(rest)))]
  collapsed = sorted(d for d in rest if shape[d] > 0 and draw(st.booleans()))
  slice_sizes = [1 if d in obatch or d in collapsed else draw(st.integers(0, shape[d])) for d in range(n)]
  nb = len(obatch) + draw(st.integers(0, 2))
  sib = draw(st.permutations(range(nb)))[:len(obatch)]
  batch_shape = [draw(st.integers(0, 3)) for _ in range(nb)]
  for d, j in zip(obatch, sib): batch_shape[j] = shape[d]
  offset_operand_dims = [d for d in range(n) if d not in obatch and d not in collapsed]
  out_rank = nb + len(offset_operand_dims)
  offset_dims = sorted(draw(st.permutations(range(out_rank)))[:len(offset_operand_dims)])
  return dict(shape=tuple(shape), obatch=tuple(obatch), sib=tuple(sib), start_index_map=tuple(start_index_map),
              collapsed=tuple(collapsed), slice_sizes=tuple(slice_sizes), offset_dims=tuple(offset_dims),
              index_shape=(*batch_shape, len(start_index_map)))


def index_array(shape, dtype=np.int32):
  """Indices around the valid range: negatives and past-the-end values included (uint8 cannot be negative)."""
  lo = 0 if np.dtype(dtype).kind == "u" else -3
  return hnp.arrays(dtype, shape, elements=st.integers(lo, 6))


def gather_dnums(c):
  return lax.GatherDimensionNumbers(offset_dims=c["offset_dims"], collapsed_slice_dims=c["collapsed"],
                                    start_index_map=c["start_index_map"], operand_batching_dims=c["obatch"],
                                    start_indices_batching_dims=c["sib"])


def scatter_dnums(c):
  return lax.ScatterDimensionNumbers(update_window_dims=c["offset_dims"], inserted_window_dims=c["collapsed"],
                                     scatter_dims_to_operand_dims=c["start_index_map"], operand_batching_dims=c["obatch"],
                                     scatter_indices_batching_dims=c["sib"])


def gather_shape(c, dtype=np.float32):
  return jax.eval_shape(lambda x, i: lax.gather(x, i, gather_dnums(c), c["slice_sizes"], mode=Mode.CLIP),
                        jax.ShapeDtypeStruct(c["shape"], dtype), jax.ShapeDtypeStruct(c["index_shape"], np.int32)).shape


@given(st.data())
def test_gather_generated(data):
  c = data.draw(gather_config())
  dtype = data.draw(st.sampled_from(DTYPES))
  x = data.draw(arrays(dtype, c["shape"]))
  idx = data.draw(index_array(c["index_shape"], data.draw(st.sampled_from([np.int32, np.int8, np.uint8]))))
  mode = data.draw(st.sampled_from(MODES))
  fill = data.draw(st.sampled_from([None, 7])) if mode == Mode.FILL_OR_DROP else None
  check(lambda x, i: lax.gather(x, i, gather_dnums(c), c["slice_sizes"], mode=mode, fill_value=fill), x, idx)


SCATTERS = {"set": lax.scatter, "add": lax.scatter_add, "sub": lax.scatter_sub, "mul": lax.scatter_mul,
            "min": lax.scatter_min, "max": lax.scatter_max}


def update_values(kind, dtype, shape):
  """Values whose combination does not depend on the order of accumulation: XLA's CPU scatter adds duplicates one
  by one in the operand's dtype, our strategies in another order, so add/sub use integers and mul powers of two
  (exact in f16 and f32); NaN/inf only where the result is order-free (set, min, max)."""
  if np.dtype(dtype).kind != "f": return arrays(dtype, shape)
  if kind in ("add", "sub"): return hnp.arrays(dtype, shape, elements=st.integers(-100, 100).map(float))
  if kind == "mul": return hnp.arrays(dtype, shape, elements=st.sampled_from([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 4.0]))
  return arrays(dtype, shape)


def is_refused_scatter(c):
  """The one scatter the rule refuses (see indexing._scatter): no index vector and several updates per target."""
  return not c["start_index_map"] and np.prod([n for i, n in enumerate(c["index_shape"][:-1]) if i not in c["sib"]]) > 1


@pytest.mark.parametrize("kind", list(SCATTERS))
def test_scatter_generated(kind, scatter_path):
  @given(st.data())
  def run(data):
    c = data.draw(gather_config())
    dtype = data.draw(st.sampled_from([d for d in DTYPES if d != np.bool_ or kind in ("set", "min", "max")]))
    x = data.draw(update_values(kind, dtype, c["shape"]))
    idx = data.draw(index_array(c["index_shape"]))
    upd = data.draw(update_values(kind, dtype, gather_shape(c)))
    mode = data.draw(st.sampled_from(MODES))
    fn = lambda x, i, u: SCATTERS[kind](x, i, u, scatter_dnums(c), mode=mode)
    if not is_refused_scatter(c): check(fn, x, idx, upd)
    elif x.size and upd.size:
      with pytest.raises(NotImplementedError, match="empty index vector"): tiny(fn)(x, idx, upd)
  run()


@pytest.mark.parametrize("mode", MODES)
def test_scatter_windows_partly_out_of_bounds(mode, scatter_path):
  """A window of 2 starting at the last row is out of bounds as a whole: dropped, or clamped back by CLIP."""
  dn = lax.ScatterDimensionNumbers(update_window_dims=(1, 2), inserted_window_dims=(), scatter_dims_to_operand_dims=(0,))
  x = np.zeros((6, 3), np.float32)
  idx = np.array([[-1], [4], [5], [2], [4]], np.int32)
  upd = np.arange(30, dtype=np.float32).reshape(5, 2, 3)
  check(lambda x, i, u: lax.scatter_add(x, i, u, dn, mode=mode), x, idx, upd)
  check(lambda x, i, u: lax.scatter(x, i, u, dn, mode=mode), x, idx, upd)


def test_scatter_set_duplicates_last_wins(scatter_path):
  """XLA's CPU scatter applies updates in order, so the last of duplicate indices wins; so do both our paths."""
  dn = lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,), scatter_dims_to_operand_dims=(0,))
  idx = np.array([[1], [1], [3], [1], [3], [0]] * 7, np.int32)
  check(lambda x, i, u: lax.scatter(x, i, u, dn), np.zeros(5, np.float32), idx, np.arange(42, dtype=np.float32))


# ---- jnp front ends --------------------------------------------------------------------------------------------

@given(st.data())
def test_fancy_indexing(data):
  dtype = data.draw(st.sampled_from(DTYPES))
  x = data.draw(arrays(dtype, data.draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=4))))
  n0, n1 = x.shape[0], x.shape[1]
  i = data.draw(hnp.arrays(np.int32, data.draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=3)),
                           elements=st.integers(-n0, n0 - 1)))
  j = data.draw(hnp.arrays(np.int32, i.shape, elements=st.integers(-n1, n1 - 1)))
  check(lambda x, i: x[i], x, i)
  check(lambda x, j: x[:, j], x, j)
  check(lambda x, i, j: x[i, j], x, i, j)
  check(lambda x, i, j: x[i, 1:, None][..., j % n1 if x.ndim == 2 else 0], x, i, j)


def test_static_and_negative_indices():
  x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
  check(lambda x: x[np.array([-1, 0, -2])], x)
  check(lambda x: x[:, [2, -3], ::2], x)
  check(lambda x: x[-1, [[0, 1], [2, 0]], -1], x)
  check(lambda x, i: x[i, :, i], x, np.array([1, -1, 0], np.int32))


@pytest.mark.parametrize("mode", ["clip", "fill", "promise_in_bounds", None])
@pytest.mark.parametrize("dtype", DTYPES)
def test_at_get(mode, dtype):
  x = (np.arange(12) % 5).astype(dtype).reshape(4, 3)
  idx = np.array([0, 3, -1, 4, -5, 100], np.int32) if mode != "promise_in_bounds" else np.array([0, 3, -1, 2], np.int32)
  check(lambda x, i: x.at[i].get(mode=mode), x, idx)
  check(lambda x, i: x.at[i].get(mode=mode, fill_value=2) if mode == "fill" else x.at[:, i % 3].get(mode=mode), x, idx)


@pytest.mark.parametrize("method", ["set", "add", "multiply", "min", "max"])
@pytest.mark.parametrize("mode", ["clip", "drop", "promise_in_bounds"])   # None is "drop"
def test_at_update(method, mode, scatter_path):
  x = np.linspace(-3, 3, 15, dtype=np.float32).reshape(5, 3)
  idx = np.array([0, 4, 4, -1, 6, -7, 2], np.int32) if method != "set" else np.array([0, 4, -1, 6, -7, 2], np.int32)
  if mode == "promise_in_bounds": idx = idx[(idx >= -5) & (idx < 5)]
  vals = np.arange(idx.size * 3, dtype=np.float32).reshape(idx.size, 3) * 0.5 - 2
  check(lambda x, i, v: getattr(x.at[i], method)(v, mode=mode), x, idx, vals)
  check(lambda x, i: getattr(x.at[i, 1], method)(2.5, mode=mode), x, idx)


@pytest.mark.parametrize("dtype", DTYPES)
def test_at_update_dtypes(dtype, scatter_path):
  x = (np.arange(20) % 7).astype(dtype).reshape(4, 5)
  i, v = np.array([3, 0, 3, 1], np.int32), (np.arange(4) % 3).astype(dtype)
  check(lambda x, i, v: x.at[i, 2].set(v), x, np.array([3, 0, 1], np.int32), v[:3])
  check(lambda x, i, v: x.at[i, i].max(v), x, i, v)
  check(lambda x, i, v: x.at[i, :].min(v[:, None]), x, i, v)
  if dtype != np.bool_:
    check(lambda x, i, v: x.at[i, 1:3].add(v[:, None]), x, i, v)
    check(lambda x, i, v: x.at[:, i].multiply(v), x, i, v)


def test_at_update_nan_propagates(scatter_path):
  x = np.array([1.0, np.nan, 3.0, -0.0, 5.0], np.float32)
  v = np.array([np.nan, 2.0, -np.inf, 7.0], np.float32)
  i = np.array([0, 1, 2, 0], np.int32)
  for method in ("min", "max", "add", "multiply"):
    check(lambda x, i, v: getattr(x.at[i], method)(v), x, i, v)


def test_nan_results_stay_nan_downstream(scatter_path):
  """A NaN the rules produce (gather's fill, a NaN-propagating scatter-max) must still test as NaN in later ops:
  tinygrad 0.14 folds `NaN != NaN` to False for a NaN constant folded into a kernel."""
  x = np.array([1.0, np.nan, 3.0, 4.0], np.float32)
  i = np.array([0, 9, 2, -1], np.int32)
  check(lambda x, i: jnp.isnan(x.at[i].get(mode="fill")), x, i)
  v = np.array([0.0, np.nan, np.nan, 0.0], np.float32)
  check(lambda x, i, v: jnp.isnan(x.at[i % 4].max(v)), x, i, v)
  check(lambda x, i: jnp.isnan(x.at[i % 4].min(x[::-1])), x, i)


@given(st.data())
def test_take_along_axis(data):
  dtype = data.draw(st.sampled_from(DTYPES))
  x = data.draw(arrays(dtype, data.draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))))
  axis = data.draw(st.integers(-x.ndim, x.ndim - 1))
  shape = list(x.shape)
  shape[axis] = data.draw(st.integers(0, 5))
  idx = data.draw(hnp.arrays(np.int32, tuple(shape), elements=st.integers(-x.shape[axis], x.shape[axis] - 1)))
  check(lambda x, i: jnp.take_along_axis(x, i, axis=axis), x, idx)


@pytest.mark.parametrize("mode", ["fill", "clip", "wrap", None])
def test_take(mode):
  x = np.arange(30, dtype=np.float32).reshape(5, 6)
  idx = np.array([[0, 5, -1], [7, -8, 2]], np.int32)
  check(lambda x, i: jnp.take(x, i, axis=1, mode=mode), x, idx)
  check(lambda x, i: jnp.take(x, i, mode=mode), x, idx)
  check(lambda x, i: jnp.take(x, i, axis=0, mode=mode, fill_value=-1.0) if mode == "fill" else jnp.take(x, i, axis=0, mode=mode), x, idx)


def test_one_hot():
  labels = np.array([0, 3, 9, -1, 10, 2], np.int32)
  check(lambda l: jax.nn.one_hot(l, 10), labels)
  check(lambda l: jax.nn.one_hot(l, 4, dtype=jnp.int32, axis=0), labels)


def test_optax_cross_entropy_with_integer_labels():
  logits = np.random.default_rng(0).standard_normal((8, 10)).astype(np.float32)
  labels = np.array([0, 9, 3, 3, 1, 7, 2, 5], np.int32)
  f = lambda lg, lb: optax.softmax_cross_entropy_with_integer_labels(lg, lb).mean()
  check(f, logits, labels, rtol=1e-5, atol=1e-6)
  check(jax.value_and_grad(f), logits, labels, rtol=1e-5, atol=1e-6)


@given(st.data())
def test_grad_of_gather(data):
  """jax.grad of a gather is a scatter-add (duplicates must sum); both scatter strategies."""
  x = data.draw(arrays(np.float32, (5, 3), special=False, min_value=-10, max_value=10))
  idx = data.draw(hnp.arrays(np.int32, data.draw(st.integers(0, 12)), elements=st.integers(-5, 4)))
  path = data.draw(st.sampled_from(["dense", "sorted"]))
  old, indexing.SCATTER_PATH = indexing.SCATTER_PATH, path
  try:
    check(jax.grad(lambda x, i: (x[i] * jnp.arange(1.0, 4.0)).sum()), x, idx)
    check(jax.grad(lambda x, i: jnp.take_along_axis(x, jnp.abs(i[:5, None]) % 3, axis=1).sum()), x,
          np.resize(idx, 5) if idx.size else np.zeros(5, np.int32))
  finally: indexing.SCATTER_PATH = old


def test_vmapped_gather_and_scatter(scatter_path):
  """vmap adds operand_batching_dims / start_indices_batching_dims to both primitives."""
  x = np.arange(4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
  idx = np.array([[0, 5], [1, 1], [5, 2], [3, 3]], np.int32)
  check(jax.vmap(lambda x, i: x[i]), x, idx)
  check(jax.vmap(lambda x, i: x[:, i % 3], in_axes=(0, 0)), x, idx)
  check(jax.vmap(lambda x, i: x[i], in_axes=(2, None), out_axes=1), x, idx[0])
  check(jax.vmap(lambda x, i: x.at[i].add(1.0)), x, idx)
  check(jax.vmap(jax.grad(lambda x, i: x[i].sum())), x, idx)


def test_zero_size_index_arrays(scatter_path):
  x = np.arange(12, dtype=np.float32).reshape(4, 3)
  empty = np.zeros((0,), np.int32)
  check(lambda x, i: x[i], x, empty)
  check(lambda x, i: x[:, i], x, empty)
  check(lambda x, i: x.at[i].add(1.0), x, empty)
  check(lambda x, i: x.at[i].set(np.zeros((0, 3), np.float32)), x, empty)
  check(lambda x, i: jnp.take_along_axis(x, i.reshape(0, 1) * jnp.ones((1, 3), jnp.int32), axis=0), x, empty)
  check(lambda x, i: x[i], np.zeros((0, 3), np.float32), empty)


# ---- what is refused, and what must stay cheap -----------------------------------------------------------------

def test_apply_is_refused():
  with pytest.raises(NotImplementedError, match="apply"):
    tiny(lambda x, i: x.at[i].apply(jnp.sin))(np.ones(4, np.float32), np.array([1, 1], np.int32))


def test_one_hot_mode_is_refused():
  dn = lax.GatherDimensionNumbers(offset_dims=(), collapsed_slice_dims=(0,), start_index_map=(0,))
  with pytest.raises(NotImplementedError):
    tiny(lambda x, i: lax.gather(x, i, dn, (1,), mode=Mode.ONE_HOT))(np.ones(4, np.float32), np.array([[1]], np.int32))


def test_embedding_lookup_is_a_direct_load():
  """tinygrad must fold `rows[row_index]` into a load: the bytes moved are about output + ids, not the table."""
  table = Tensor(np.random.default_rng(0).standard_normal((20_000, 64), dtype=np.float32)).realize()
  ids = Tensor(np.random.default_rng(1).integers(0, 20_000, 256, dtype=np.int32)).realize()
  lookup = tiny(lambda t, i: jnp.take(t, i, axis=0))
  np.testing.assert_array_equal(lookup(table, ids).numpy(), table.numpy()[ids.numpy()])
  GlobalCounters.reset()
  lookup(table, ids).realize()
  assert GlobalCounters.global_mem < 4 * (256 * 64 * 4 + 256 * 4), f"{GlobalCounters.global_mem} bytes moved"
  assert GlobalCounters.global_ops < 100 * 256 * 64, f"{GlobalCounters.global_ops} ops"


def test_broadcast_operands_and_updates_on_threaded_kernels():
  """Gathering from a broadcast (jnp.ones) and scatter-adding a broadcast cotangent, big enough for tinygrad's
  threaded CPU kernels: an input buffer that drops out of such a kernel got its params misnumbered (segfault)."""
  ids = np.random.default_rng(2).integers(0, 1000, 1024, dtype=np.int32)
  got = tiny(lambda i: jnp.ones((1000, 256), jnp.float32)[i])(ids).numpy()
  np.testing.assert_array_equal(got, np.ones((1024, 256), np.float32))
  old, indexing.SCATTER_PATH = indexing.SCATTER_PATH, "sorted"
  try: grad = tiny(jax.grad(lambda t, i: t[i].sum()))(np.zeros((1000, 256), np.float32), ids).numpy()
  finally: indexing.SCATTER_PATH = old
  np.testing.assert_array_equal(grad, np.bincount(ids, minlength=1000).astype(np.float32)[:, None] * np.ones(256, np.float32))


def test_embedding_gradient_takes_the_sorted_path():
  """The gradient of a large lookup must not compare every id against every row (that is ids x vocab x dim)."""
  table = np.zeros((20_000, 64), np.float32)
  ids = np.random.default_rng(1).integers(0, 20_000, 256, dtype=np.int32)
  ids[:8] = 7                                                                # duplicates must sum
  grad = tiny(jax.grad(lambda t, i: jnp.take(t, i, axis=0).sum()))
  want = np.zeros_like(table)
  np.add.at(want, ids, 1.0)
  np.testing.assert_array_equal(grad(table, ids).numpy(), want)
  GlobalCounters.reset()
  grad(table, ids).realize()
  assert GlobalCounters.global_ops < 20_000 * 256, f"{GlobalCounters.global_ops} ops: looks like the dense path"


def test_nan_fill_launches_no_kernel_of_its_own():
  """jnp.take's default mode fills out-of-bounds rows with NaN. The NaN is a one-element buffer (tinygrad would fold
  NaN != NaN to False) copied in when the program is built, not filled by a kernel on every call."""
  fn = lambda table, ids: jnp.take(table, ids, axis=0)
  table, ids = np.arange(12, dtype=np.float32).reshape(4, 3), np.array([0, 3, 7, -9], np.int32)
  check(fn, table, ids)
  assert len(tinyjax.kernels(tiny(fn), table, ids)) == 1
