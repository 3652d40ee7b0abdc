"""The `tiny` contract: pytrees in and out, leaf kinds, static arguments, the signature cache, output lifetime,
the lazy mode, devices, and errors that name the primitive and the user's line."""
import dataclasses
import functools
import os
import shutil
import weakref

import flax
from hypothesis import given, strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tinygrad import Device, Tensor
from tinygrad.helpers import GlobalCounters
from tinygrad.uop.ops import Ops

from parity import assert_same, check
import tinyjax
from tinyjax import TinyKey, UnsupportedPrimitiveError, tiny


def f_tree(params, x):
  return {"sum": params["w"] * x + params["b"], "parts": [params["w"].sum(), (x.max(),)], "none": None}


def test_pytree_structure_matches_jax():
  params = {"w": np.arange(3, dtype=np.float32), "b": np.float32(1.5)}
  check(f_tree, params, np.ones(3, np.float32))


def test_frozendict_and_registered_dataclass():
  @flax.struct.dataclass
  class State:
    a: jax.Array
    b: jax.Array
  def f(state, d): return State(a=state.a + d["x"], b=state.b * 2)
  got, _ = check(f, State(np.ones(2, np.float32), np.arange(2, dtype=np.int32)), flax.core.FrozenDict(x=np.float32(3)))
  assert isinstance(got, State) and isinstance(got.a, Tensor)


@pytest.mark.parametrize("make", [lambda a: Tensor(a), jnp.asarray, np.asarray], ids=["tinygrad", "jax", "numpy"])
def test_leaf_kinds(make):
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  got = tiny(lambda x: x * 2)(make(a))
  assert isinstance(got, Tensor)
  np.testing.assert_array_equal(got.numpy(), a * 2)


@pytest.mark.parametrize("scalar", [2, 2.5, True])
@pytest.mark.parametrize("dtype", [np.float16, np.int8, np.uint8, jnp.bfloat16])
def test_python_scalars_are_weakly_typed(scalar, dtype):
  check(lambda x, s: x * s, np.arange(4).astype(dtype), scalar)


def test_python_scalar_alone_is_weak_float32():
  check(lambda s: s * 3, 1.5)
  check(lambda s: s * 3, 7)


def test_static_argnums_and_argnames_and_kwargs():
  def f(x, n, *, mode, scale=1.0):
    return (x * n if mode == "mul" else x + n) * scale
  g = tiny(f, static_argnums=1, static_argnames="mode")
  x = np.arange(3, dtype=np.float32)
  np.testing.assert_array_equal(g(x, 3, mode="mul", scale=2.0).numpy(), x * 6)
  np.testing.assert_array_equal(g(x, 3, mode="add", scale=2.0).numpy(), (x + 3) * 2)
  np.testing.assert_array_equal(g(x, 4, mode="add", scale=0.5).numpy(), (x + 4) * 0.5)
  assert g.trace_count == 3


def test_decorator_with_options():
  @tiny(static_argnums=(1,))
  def f(x, n): return x ** n
  np.testing.assert_array_equal(f(np.float32(2), 3).numpy(), 8)


def test_repeated_signature_neither_retraces_nor_relowers():
  f = tiny(lambda x, y: jnp.tanh(x) * y)
  for i in range(4):
    f(np.full((2, 3), i, np.float32), np.ones(3, np.float32))
  assert f.trace_count == 1
  (program,) = f.programs.values()
  assert program.lower_count == 1
  f(np.ones((5, 3), np.float32), np.ones(3, np.float32))     # a new shape is a new signature
  f(np.ones((2, 3), np.float16), np.ones(3, np.float16))     # so is a new dtype
  f(np.ones((2, 3), np.float32), 1.0)                              # and a weak-typed scalar
  assert f.trace_count == 4


def test_outputs_of_call_n_survive_call_n_plus_1():
  f = tiny(lambda x: (x * 2, x.sum()))
  outs = [f(np.full(3, i, np.float32)) for i in range(5)]
  for i, (doubled, total) in enumerate(outs):
    np.testing.assert_array_equal(doubled.numpy(), np.full(3, 2 * i, np.float32))
    assert total.numpy() == 3 * i


def test_dropped_outputs_are_recycled_and_held_ones_keep_their_values():
  """A call writes into an earlier call's output buffers once nothing holds them (a fresh buffer costs more than
  replaying a small program); an output held directly, through a lazy graph built on it, or through its Buffer keeps
  its value. A weak reference does not hold an output: it sees the recycled tensor."""
  f = tiny(lambda x: x * 2)
  held = f(np.full(4, 2, np.float32))
  lazy = f(np.full(4, 3, np.float32)) + 0
  buffer = f(np.full(4, 4, np.float32)).uop.buffer
  dropped = weakref.ref(f(np.full(4, 1, np.float32)))
  later = [f(np.full(4, 10 + i, np.float32)) for i in range(8)]
  assert any(out is dropped() for out in later)
  np.testing.assert_array_equal(held.numpy(), np.full(4, 4, np.float32))
  np.testing.assert_array_equal(lazy.numpy(), np.full(4, 6, np.float32))
  np.testing.assert_array_equal(buffer.numpy(), np.full(4, 8, np.float32))
  for i, out in enumerate(later): np.testing.assert_array_equal(out.numpy(), np.full(4, 20 + 2 * i, np.float32))


def test_replay_launches_the_captured_kernels_itself():
  """A cached call launches the capture's kernels directly (capture.Replay), counting them as tinygrad does; a
  capture batched into a device graph (CUDA) is replayed by tinygrad as the one graph launch."""
  f = tiny(lambda x, w: jnp.tanh(x @ w).sum(0) + jnp.sort(x, axis=0)[0])
  rng = np.random.default_rng(0)
  x, w = (Tensor(rng.normal(size=(16, 16)).astype(np.float32)).realize() for _ in range(2))
  f(x, w)
  (program,) = f.programs.values()
  (replay,) = program.captured.replays.values()
  graphs = [c for c in replay.captured.linear.src if c.src[0].op is Ops.CUSTOM_FUNCTION and c.src[0].arg == "graph"]
  assert (replay.launches is None) == bool(graphs)
  before = GlobalCounters.kernel_count
  np.testing.assert_allclose(f(x, w).numpy(), np.asarray(jax.jit(f.fun)(x.numpy(), w.numpy())), rtol=1e-5, atol=1e-5)
  if not graphs: assert GlobalCounters.kernel_count - before == replay.kernel_count == len(replay.launches) > 1


def test_training_loop_feeds_outputs_back():
  @tiny
  def step(w, x):
    loss, g = jax.value_and_grad(lambda w: jnp.sum((x @ w - 1.0) ** 2))(w)
    return w - 0.01 * g, loss
  w_tg, w_np = Tensor(np.zeros((3, 1), np.float32)), np.zeros((3, 1), np.float32)
  x = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
  reference = jax.jit(step.fun)
  history = []
  for _ in range(6):
    w_tg, loss = step(w_tg, x)
    w_np, loss_np = reference(w_np, x)
    history.append(loss)
    np.testing.assert_allclose(w_tg.numpy(), np.asarray(w_np), rtol=1e-5, atol=1e-6)
  assert step.trace_count == 1
  assert history[0].numpy() > history[-1].numpy()   # earlier outputs still readable and unchanged


def test_identity_and_constant_outputs_are_fresh_each_call():
  f = tiny(lambda x, y: (x, y, jnp.float32(7), jnp.zeros((0, 2))))
  a = f(np.float32(1), np.arange(2))
  b = f(np.float32(2), np.arange(2) + 5)
  assert a[0].numpy() == 1 and b[0].numpy() == 2
  np.testing.assert_array_equal(a[1].numpy(), [0, 1])
  assert a[2].numpy() == 7 and a[3].shape == (0, 2)


def test_same_tensor_passed_twice():
  t = Tensor(np.arange(3, dtype=np.float32))
  f = tiny(lambda a, b: a * b)
  for _ in range(3): np.testing.assert_array_equal(f(t, t).numpy(), np.arange(3) ** 2)


def test_zero_size_inputs_and_outputs():
  check(lambda x, y: (x * 2, x.sum(), y + 1), np.zeros((0, 3), np.float32), np.ones(2, np.int32))


def test_lazy_mode_returns_unrealized_graph():
  f = tiny(lambda a, b: a + jnp.sin(b) * 3.0, jit=False)
  out = f(Tensor([1.0, 2.0, 3.0]), Tensor([4.0, 5.0, 6.0]))
  assert not out.uop.is_realized
  np.testing.assert_allclose(out.numpy(), np.array([1, 2, 3]) + np.sin([4.0, 5, 6]) * 3, rtol=1e-6)


@pytest.mark.skipif(shutil.which(os.environ.get("CC", "clang")) is None, reason="the CPU device needs clang")
@pytest.mark.skipif(shutil.which(os.environ.get("CC", "clang")) is None, reason="tinygrad's CPU device needs a C compiler")
def test_explicit_device():
  f = tiny(lambda x: x + 1, device="CPU")
  out = f(Tensor(np.ones(2, np.float32), device=Device.DEFAULT))
  assert out.device == "CPU"
  np.testing.assert_array_equal(out.numpy(), [2, 2])


def test_typed_keys_go_in_and_come_out():
  key = jax.random.key(3)
  got = tiny(lambda k: (k, jax.random.key_data(k)))(key)
  assert isinstance(got[0], TinyKey)
  np.testing.assert_array_equal(got[1].numpy(), np.asarray(jax.random.key_data(key)))
  np.testing.assert_array_equal(np.asarray(jax.random.key_data(got[0].to_jax())), np.asarray(jax.random.key_data(key)))


def test_grad_of_relu_network():
  rng = np.random.default_rng(0)
  params = {"w1": rng.normal(size=(5, 16)).astype(np.float32), "w2": rng.normal(size=(16, 1)).astype(np.float32)}
  x = rng.normal(size=(32, 5)).astype(np.float32)
  def loss(p, x): return jnp.mean(jax.nn.relu(x @ p["w1"]) @ p["w2"]) + jnp.mean(jax.nn.softplus(x))
  check(jax.grad(loss), params, x)
  check(jax.value_and_grad(loss), params, x)


def test_vmap():
  check(jax.vmap(lambda a, b: jnp.dot(a, b) * 2), np.ones((4, 3), np.float32), np.arange(12.0, dtype=np.float32).reshape(4, 3))


def test_float64_under_x64():
  with jax.enable_x64(True):
    check(lambda x, y: x * y + 1, np.linspace(0, 1, 5), np.arange(5))


def test_unsupported_primitive_names_it_and_the_users_line():
  def uses_fft(x): return jnp.fft.fft(x).real   # complex: tinygrad has no complex dtype
  with pytest.raises(TypeError) as err:
    tiny(uses_fft)(np.ones(4, np.float32))
  assert "complex" in str(err.value)


def test_error_points_at_user_source_line():
  from jax.extend.core import primitives as P
  import tinyjax.ops as ops
  saved = ops.RULES.pop(P.cos_p)
  try:
    with pytest.raises(UnsupportedPrimitiveError) as err:
      tiny(lambda x: jnp.cos(x) + 1)(np.ones(2, np.float32))
  finally: ops.RULES[P.cos_p] = saved
  message = str(err.value)
  assert "'cos'" in message and "test_decorator.py" in message and "float32[2]" in message


def test_complex_input_is_a_type_error():
  with pytest.raises(TypeError, match="complex"):
    tiny(lambda x: x * 2)(np.ones(2, np.complex64))


def test_unsupported_leaf_and_unhashable_static():
  with pytest.raises(TypeError, match="str"):
    tiny(lambda x: x)("hello")
  with pytest.raises(TypeError, match="hashable"):
    tiny(lambda x, n: x, static_argnums=1)(np.ones(2), [1, 2])


def test_x64_mode_is_part_of_the_signature():
  f = tiny(lambda x: x + jnp.arange(3))
  a = f(np.ones(3, np.int32))
  with jax.enable_x64(True):
    b = f(np.ones(3, np.int32))
  assert a.dtype != b.dtype and f.trace_count == 2


def test_to_tinygrad_puts_a_pytree_on_the_device():
  tree = {"w": jnp.ones((2, 2), jnp.bfloat16), "k": jax.random.key(1), "n": np.arange(3), "s": 2.0}
  on_device = tinyjax.to_tinygrad(tree)
  assert isinstance(on_device["w"], Tensor) and isinstance(on_device["k"], TinyKey)
  assert_same(tiny(lambda t: t)(on_device), jax.jit(lambda t: t)(tree))


def test_capture_refused_by_the_device_graph_is_captured_again_without_graphs(monkeypatch):
  """A device's graph API can refuse a batch of kernels that run fine one by one (CUDA, the embedding gradient):
  the first replay of the capture fails, and the program is captured again with JIT=2 (no graph batching)."""
  from tinygrad.engine import jit as tinygrad_jit
  refused, replay = [], tinygrad_jit.CapturedJit.__call__
  def graph_refuses_once(self, *args, **kwargs):
    if not refused:
      refused.append(True)
      raise RuntimeError("CUDA Error 1, invalid argument")
    return replay(self, *args, **kwargs)
  monkeypatch.setattr(tinygrad_jit.CapturedJit, "__call__", graph_refuses_once)
  f = tiny(lambda x: jnp.tanh(x) * 2 + 1)
  x = np.linspace(-1, 1, 7, dtype=np.float32)
  for _ in range(3): assert_same(f(x), jax.jit(lambda x: jnp.tanh(x) * 2 + 1)(x))
  assert refused == [True] and f.trace_count == 1


def test_a_first_call_that_failed_leaves_the_function_usable(monkeypatch):
  """A rule raising inside the first call's capture: the program keeps no half-made capture (TinyJit would keep
  captured=None and fail every later call with "'NoneType' object is not callable"), so the next call with the
  same signature captures again and runs."""
  from jax.extend.core import primitives as P
  from tinyjax import ops
  rule, failed = ops.RULES[P.tanh_p], []
  def fails_once(*args, **params):
    if not failed: failed.append(True); raise RuntimeError("simulated failure inside the capture")
    return rule.fn(*args, **params)
  monkeypatch.setitem(ops.RULES, P.tanh_p, dataclasses.replace(rule, fn=fails_once))
  fn = lambda x: jnp.tanh(x) * 2 + 1
  f, x = tiny(fn), np.linspace(-1, 1, 7, dtype=np.float32)
  with pytest.raises(RuntimeError, match="simulated failure"): f(x)
  for _ in range(2): assert_same(f(x), jax.jit(fn)(x))
  assert f.trace_count == 1


def test_returning_a_token_is_a_type_error():
  from jax import lax
  with pytest.raises(TypeError, match="token"):
    tiny(lambda x: (x + 1, lax.create_token()))(np.float32(1))


# ---- composition with JAX transformations, jax.jit's calling conventions, AOT methods --------------------------

def loss_fn(w, x): return jnp.sum(jnp.sin(w) * x) + jnp.mean(w ** 2)

W, X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3), np.arange(6, dtype=np.float32).reshape(2, 3)
TRANSFORMS = {   # each applied to tiny(loss_fn) and to loss_fn itself
  "grad": lambda f: jax.grad(f)(W, X),
  "value_and_grad": lambda f: jax.value_and_grad(f, argnums=(0, 1))(W, X),
  "vmap": lambda f: jax.vmap(f)(W, X),
  "jit": lambda f: jax.jit(f)(W, X),
  "jvp": lambda f: jax.jvp(f, (W, X), (np.ones_like(W), np.zeros_like(X))),
  "scan": lambda f: jax.lax.scan(lambda c, wx: (c + f(*wx), c), 0.0, (W, X)),
  "hessian": lambda f: jax.hessian(f)(W[0], X[0]),
}


@pytest.mark.parametrize("transform", TRANSFORMS.values(), ids=TRANSFORMS.keys())
def test_under_a_transformation_tiny_is_the_function_it_wraps(transform):
  g = tiny(loss_fn)
  assert_same(transform(g), transform(loss_fn))
  assert g.trace_count == 0 and not g.programs   # JAX traced through it: nothing built on tinygrad


def test_eval_shape_of_a_tiny_function():
  assert jax.eval_shape(tiny(f_tree), {"w": W, "b": 1.0}, X) == jax.eval_shape(f_tree, {"w": W, "b": 1.0}, X)


def test_static_args_under_a_transformation():
  def f(x, n, *, scale): return jnp.sum(x ** n) * scale
  g = tiny(f, static_argnums=1, static_argnames="scale")
  want = jax.grad(f)(W, 3, scale=2.0)
  assert_same(jax.grad(g)(W, 3, scale=2.0), want)
  assert_same(jax.grad(lambda x: g(x, n=3, scale=2.0))(W), want)   # a static_argnums argument by keyword
  with pytest.raises(TypeError, match=r"static argument 'scale' must be hashable"):
    jax.grad(g)(W, 3, scale=[2.0])
  with pytest.raises(TypeError, match="hashable"):   # a tracer in a static position is unhashable, as for jax.jit
    jax.grad(lambda n: g(W, n, scale=1.0))(3.0)


def test_tinygrad_arguments_and_constants_under_a_transformation():
  """Under a transformation the wrapped function gets tinygrad Tensors and TinyKeys as host arrays and jax keys, and a
  tiny function called with constants while JAX traces (inside jax.jit, or nested in another tiny function) is
  traced too: it does not run on tinygrad and hand Tensors to JAX."""
  g, x_tg = tiny(loss_fn), Tensor(X).realize()
  assert_same(jax.grad(lambda w: g(w, x_tg))(W), jax.grad(loss_fn)(W, X))
  noise = tiny(lambda k, x: x + jax.random.normal(k, x.shape))
  key = jax.random.key(0)
  key_tg = tinyjax.to_tinygrad(key)
  assert_same(jax.jit(lambda x: noise(key_tg, x) * 2)(X), jax.jit(lambda x: noise.fun(key, x) * 2)(X))
  assert_same(jax.jit(lambda x: x * g(W, np.ones_like(X)))(X), jax.jit(lambda x: x * loss_fn(W, np.ones_like(X)))(X))
  outer = tiny(lambda w, x: g(w, x) + g(w, np.ones_like(X)))
  assert_same(outer(W, X), jax.jit(lambda w, x: loss_fn(w, x) + loss_fn(w, np.ones_like(X)))(W, X))
  assert g.trace_count == 0 and outer.trace_count == 1


def statics_seen(seen):
  """Functions that record, while traced, which of their arguments arrived as Python values (static, or defaults)."""
  def plain(a, b, c=30, *, d=40):
    seen.append(tuple(not isinstance(v, jax.core.Tracer) for v in (a, b, c, d)))
    return jnp.asarray(a) + b + c + d
  def positional_only_and_var_kwargs(a, /, b, c=30, **kw):
    seen.append(tuple(not isinstance(v, jax.core.Tracer) for v in (a, b, c, *kw.values())))
    return jnp.asarray(a) + b + c + sum(kw.values())
  def var_positional(a, b=20, *rest, d=40):
    seen.append(tuple(not isinstance(v, jax.core.Tracer) for v in (a, b, *rest, d)))
    return jnp.asarray(a) + b + sum(rest) + d
  return plain, positional_only_and_var_kwargs, var_positional

# for each function above: the arguments a call can pass by position (in order), by keyword, and must pass
CALLS = [("abc", "abcd", "ab"), ("abc", "bcz", "ab"), ("abxy", "abd", "a")]


def outcome(jitted, seen, args, kwargs):
  """What a call does: its output and which arguments were static, or the type of the error it raises."""
  try:
    out = jitted()(*args, **kwargs)
    return int(np.asarray(out.numpy() if isinstance(out, Tensor) else out)), seen[-1]
  except (TypeError, ValueError) as e: return type(e)


@given(st.data())
def test_static_argnums_and_argnames_resolve_as_jax_jit(data):
  """Generated static_argnums/static_argnames (negative, out of range, unknown names) and calls mixing positions and
  keywords: tiny sees the same static arguments and returns the same value, or raises the same kind of error."""
  which = data.draw(st.integers(0, 2), "function")
  positional, keywords, required = CALLS[which]
  n_positional = data.draw(st.integers(1 if which == 1 else 0, len(positional)), "positional")   # (a is positional-only)
  optional = [k for k in keywords if k not in positional[:n_positional] and k not in required]
  by_keyword = [k for k in required if k not in positional[:n_positional]] + data.draw(st.lists(st.sampled_from(optional), unique=True) if optional else st.just([]), "keywords")
  args, kwargs = tuple(range(1, n_positional + 1)), {k: 100 * (i + 1) for i, k in enumerate(by_keyword)}
  options = dict(static_argnums=data.draw(st.none() | st.lists(st.integers(-4, 3), max_size=3), "static_argnums"),
                 static_argnames=data.draw(st.none() | st.lists(st.sampled_from("abcdz"), max_size=3), "static_argnames"))
  seen_jax, seen_tiny = [], []
  want = outcome(lambda: jax.jit(statics_seen(seen_jax)[which], **options), seen_jax, args, kwargs)
  got = outcome(lambda: tiny(statics_seen(seen_tiny)[which], **options), seen_tiny, args, kwargs)
  assert got == want


def test_static_argnums_by_keyword_argnames_by_position_and_negative():
  def f(x, n, mode="add"): return x * n if mode == "mul" else x + n
  for options, args, kwargs in [(dict(static_argnums=(1, 2)), (X,), dict(n=3, mode="mul")),
                                (dict(static_argnames=("n", "mode")), (X, 3, "mul"), {}),
                                (dict(static_argnums=-1), (X, 3, "mul"), {}),
                                (dict(static_argnums=(-2, 2)), (X, 3, "mul"), {})]:
    g = tiny(f, **options)
    assert_same(g(*args, **kwargs), jax.jit(f, **options)(*args, **kwargs))
    assert_same(g(*args, **kwargs), jax.jit(f, **options)(*args, **kwargs))
    assert g.trace_count == 1
  with pytest.raises(ValueError, match="positional"):
    tiny(f, static_argnums=5)
  with pytest.raises(ValueError, match="len"):
    tiny(f, static_argnums=-3)(X, 3)


def test_unhashable_static_names_the_argument():
  g = tiny(lambda x, n, *, mode: x, static_argnums=1, static_argnames="mode")
  with pytest.raises(TypeError, match=r"static argument 1 \('n'\) must be hashable, got list"):
    g(X, [1], mode="a")
  with pytest.raises(TypeError, match=r"static argument 'mode' must be hashable, got dict"):
    g(X, 1, mode={})


def test_static_values_of_equal_value_and_different_type_are_different_signatures():
  """1, 1.0 and True are equal and hash alike, but trace differently (int * float is float): keyed with their types,
  as jax.jit keys them."""
  g, reference = tiny(lambda x, n: x * n, static_argnums=1), jax.jit(lambda x, n: x * n, static_argnums=1)
  for n in (1, 1.0, True, 1):
    assert_same(g(np.arange(3, dtype=np.int32), n), reference(np.arange(3, dtype=np.int32), n))
  assert g.trace_count == 3


def test_trace_and_eval_shape_run_nothing():
  def f(params, x, n): return (f_tree(params, x * n), jnp.arange(n))
  g = tiny(f, static_argnames="n")
  params, spec = {"w": W, "b": 1.0}, jax.ShapeDtypeStruct(X.shape, X.dtype)
  kernels = GlobalCounters.kernel_count
  for x in (X, spec, Tensor(X)):
    assert str(g.trace(params, x, n=3)) == str(jax.jit(f, static_argnames="n").trace(params, X, n=3).jaxpr)
    assert g.eval_shape(params, x, n=3) == jax.eval_shape(functools.partial(f, n=3), params, X)
  assert GlobalCounters.kernel_count == kernels and g.trace_count == 0 and not g.programs
  with pytest.raises(TypeError, match="ShapeDtypeStruct"):
    g(params, spec, n=3)


def test_clear_cache_drops_the_programs():
  g = tiny(lambda x: jnp.tanh(x) * 2)
  first = g(X)
  assert len(g.programs) == 1 and g.trace_count == 1
  g.clear_cache()
  assert not g.programs
  assert_same(g(X), jax.jit(g.fun)(X))
  assert g.trace_count == 2 and len(g.programs) == 1
  assert_same(first, jax.jit(g.fun)(X))   # an earlier output outlives its program
