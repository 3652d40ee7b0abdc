"""Host callbacks under tiny: the same calls, with the same values, in the same order as under jax.jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, strategies as st
from jax.experimental import io_callback

from parity import FLOATS, INTS, arrays, assert_same, check, shapes
from tinyjax import tiny, to_numpy


def calls_and_output(fn, *args, capsys, log, **kw):
  """(what was printed, what the callbacks logged, the output) of fn under jax.jit and under tiny."""
  runs = {}
  for name, run in (("jax", jax.jit(fn)), ("tiny", tiny(fn, **kw))):
    capsys.readouterr()
    log.clear()
    out = run(*args)
    jax.effects_barrier()
    runs[name] = (capsys.readouterr().out, list(log), out)
  return runs["jax"], runs["tiny"]


def assert_same_calls(got, want):
  """The callbacks' logs: the same calls in the same order, their numbers equal to float tolerance (a sum may add in
  another order)."""
  assert len(got) == len(want), (got, want)
  for g, w in zip(got, want):
    if isinstance(w, tuple): assert g[0] == w[0], (g, w); g, w = g[1], w[1]
    np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64), rtol=1e-5, atol=1e-5, equal_nan=True)


def test_debug_print_and_callback_in_loops_and_branches(capsys):
  log = []

  def fn(x, n):
    jax.debug.print("x={x} n={n}", x=x, n=n)
    jax.debug.callback(lambda v: log.append(("callback", np.asarray(v).tolist())), x * 2)

    def body(i, c):
      jax.debug.print("step {i}: {c}", i=i, c=c)
      return c * 1.5 + i

    c = jax.lax.fori_loop(0, n, body, x)                                                       # a while loop
    c, ys = jax.lax.scan(lambda c, y: (jax.debug.print("scan {y}", y=y) or c + y, c), c, jnp.arange(3.0))
    return jax.lax.cond(n > 2, lambda c: (jax.debug.print("taken {c}", c=c), c)[1],           # only the taken
                        lambda c: (jax.debug.print("not taken {c}", c=c), -c)[1], c), ys       # branch prints

  for x, n in ((jnp.arange(3.0), 3), (jnp.array([np.nan, -0.0, np.inf]), 1)):
    want, got = calls_and_output(fn, x, n, capsys=capsys, log=log)
    assert got[0] == want[0]
    assert_same_calls(got[1], want[1])
    assert_same(got[2], want[2])


def test_pure_and_io_callbacks(capsys):
  log = []

  def fn(x):
    s, m = jax.pure_callback(lambda v: (np.sin(v), v.max()), (jax.ShapeDtypeStruct(x.shape, x.dtype),
                                                              jax.ShapeDtypeStruct((), x.dtype)), x)

    def body(c, _):
      c = c + io_callback(lambda v: (log.append(float(v)), np.float32(v) * 2)[1], jax.ShapeDtypeStruct((), jnp.float32),
                          c.sum(), ordered=True)
      return c, c.sum()
    c, sums = jax.lax.scan(body, s, None, length=3)
    return c * m, sums

  tiny_fn = tiny(fn)
  for x in (jnp.arange(4.0), jnp.linspace(0.5, 2.0, 4)):   # a second call runs the callbacks again, with its values
    want, got = calls_and_output(fn, x, capsys=capsys, log=log)
    assert_same_calls(got[1], want[1])
    assert_same(got[2], want[2])
    assert_same(tiny_fn(x), want[2])


def test_callbacks_without_jit(capsys):
  log = []
  fn = lambda x: jax.pure_callback(lambda v: (log.append(v.sum()), v * 2)[1], jax.ShapeDtypeStruct(x.shape, x.dtype), x)
  want, got = calls_and_output(fn, jnp.arange(5), capsys=capsys, log=log, jit=False)
  assert_same_calls(got[1], want[1])
  assert_same(got[2], want[2])


@pytest.mark.parametrize("vmap_method", ["sequential", "expand_dims", "broadcast_all"])
def test_vmapped_pure_callback(vmap_method):
  def fn(x):
    cb = lambda v: np.cumsum(v, axis=-1).astype(v.dtype)
    return jax.vmap(lambda row: jax.pure_callback(cb, jax.ShapeDtypeStruct(row.shape, row.dtype), row,
                                                  vmap_method=vmap_method))(x)
  check(fn, jnp.arange(12.0).reshape(3, 4))


@given(st.data())
def test_values_round_trip_through_the_host(data):
  """Every dtype and shape (0-d, 0-size) reaches the callback and comes back bit for bit."""
  dtype = data.draw(st.sampled_from(FLOATS + INTS + [np.bool_]))
  x = data.draw(arrays(dtype, data.draw(shapes())))
  check(lambda x: jax.pure_callback(lambda v: v, jax.ShapeDtypeStruct(x.shape, x.dtype), x), x)


def test_a_result_that_does_not_match_its_declaration_raises():
  fn = lambda x: jax.pure_callback(lambda v: v.astype(np.int32), jax.ShapeDtypeStruct(x.shape, x.dtype), x)
  with pytest.raises(TypeError, match="pure_callback"):
    to_numpy(tiny(fn)(jnp.arange(3.0)))
