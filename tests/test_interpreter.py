"""The interpreter: literals, constants made once per program, dropped vars, and every sub-jaxpr primitive."""
import functools
import gc
import weakref

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tinyjax.interpreter as interpreter
from parity import check
from tinyjax import tiny

X = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)


def test_closed_over_constants_become_buffers_once(monkeypatch):
  table = jnp.asarray(np.arange(12, dtype=np.float32).reshape(3, 4))
  f = tiny(lambda x: x * table + jnp.asarray(np.ones(4, np.float32)))
  calls = []
  original = interpreter.numpy_to_tensor
  monkeypatch.setattr(interpreter, "numpy_to_tensor", lambda *a: calls.append(a[0].shape) or original(*a))
  for _ in range(3): np.testing.assert_allclose(f(X).numpy(), X * np.asarray(table) + 1)
  assert sorted(calls) == [(3, 4), (4,)]   # each constant once over three calls (inputs convert elsewhere)


def test_program_state_is_freed_with_the_program():
  """A program's constants and captured loop steps live in its ProgramState, which goes when the function goes."""
  table = jnp.asarray(np.arange(4, dtype=np.float32))
  f = tiny(lambda x: jax.lax.while_loop(lambda c: c[0] < 5, lambda c: (c[0] + 1, c[1] * table + 1), (0, x))[1])
  np.testing.assert_allclose(f(X[0]).numpy(), jax.jit(f.fun)(X[0]), rtol=1e-6)
  (program,) = f.programs.values()
  assert program.state.consts and program.state.steps   # the table, the captured iteration
  state, steps = weakref.ref(program.state), [weakref.ref(s) for s in program.state.steps.values()]
  del f, program
  gc.collect()
  assert state() is None and all(s() is None for s in steps)


def test_nested_jit_and_dropped_outputs():
  @jax.jit
  def inner(x): return jnp.sin(x), jnp.cos(x)
  check(lambda x: inner(x)[0] * 2, X)


def test_custom_jvp_relu_gelu_softplus_logsumexp():
  check(lambda x: (jax.nn.relu(x), jax.nn.gelu(x), jax.nn.softplus(x), jax.nn.logsumexp(x, axis=1), jax.nn.silu(x)), X)
  check(jax.grad(lambda x: (jax.nn.relu(x) * jax.nn.softplus(x)).sum()), X)


def test_custom_vjp_evaluates_the_primal():
  @jax.custom_vjp
  def clip_gradient(x): return x * 3
  clip_gradient.defvjp(lambda x: (x * 3, None), lambda _, g: (jnp.clip(g, -1, 1),))
  check(lambda x: clip_gradient(x).sum(), X)
  check(jax.grad(lambda x: clip_gradient(x * x).sum()), X)


def test_checkpoint():
  @functools.partial(jax.checkpoint, policy=jax.checkpoint_policies.nothing_saveable)
  def block(x): return jnp.tanh(x @ x.T)
  check(jax.grad(lambda x: block(x).sum()), X)


def test_literals_of_every_kind():
  check(lambda x: (x + 1, x * 2.5, (x > 0) & True, jnp.int8(3) * jnp.ones(2, jnp.int8), jnp.uint32(7) << 2), X)


@pytest.mark.parametrize("jit", [True, False])
def test_outputs_that_are_inputs_or_literals(jit):
  f = tiny(lambda x, y: (y, 3, x), jit=jit)
  for i in range(2):
    y, three, x = f(np.float32(i), np.arange(2))
    assert x.numpy() == i and three.numpy() == 3


def test_nan_constants_stay_nan_through_isnan():
  # tinygrad 0.14 folds NaN != NaN to False for constants folded into a kernel: NaN constants must not be folded
  x = np.array([0.5, 1.5, 2.5, np.nan], np.float32)
  check(lambda x: (jnp.isnan(jnp.maximum(x, jnp.where(x > 1, jnp.nan, x))), jnp.isnan(jnp.full((3,), jnp.nan)), jnp.nanmax(jnp.where(x > 1, x, jnp.nan))), x)
