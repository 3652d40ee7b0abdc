"""An LSTM (flax nn.RNN over nn.OptimizedLSTMCell, 256 steps, hidden 128; --quick: 64 steps, hidden 64): forward
and value_and_grad, tiny vs jax.jit.

    python -m benchmarks --only lstm

flax's nn.RNN is a lax.scan. tinyjax runs a scan longer than rules.control_flow.UNROLL_MAX_LENGTH as its body's kernels,
captured once and replayed per step with the step index as a bound Variable; the surrounding program is
re-interpreted per call (the step loop runs on the host). control_flow.STEPS_PER_REPLAY sets how many steps one
replay unrolls.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from tinyjax import tiny, to_tinygrad

from .common import Case, normal, rng


class Model(nn.Module):
  hidden: int

  @nn.compact
  def __call__(self, x):
    h = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(x)
    return nn.Dense(1)(h[:, -1])


def _lstm(quick, grad):
  steps, hidden, batch, features = (64, 64, 8, 32) if quick else (256, 128, 8, 32)
  r = rng()
  x, y = normal(r, batch, steps, features), normal(r, batch, 1)
  model = Model(hidden)
  params = jax.jit(model.init)(jax.random.key(0), x)
  if grad:
    fn, args = jax.value_and_grad(lambda p, x, y: jnp.mean((model.apply(p, x) - y) ** 2)), (params, x, y)
  else:
    fn, args = model.apply, (params, x)
  tiny_f, jax_f, args_tg, args_jx = tiny(fn), jax.jit(fn), to_tinygrad(args), jax.device_put(args)
  return Case(lambda: tiny_f(*args_tg), lambda: jax_f(*args_jx), size=f"{steps} steps, hidden {hidden}")


def forward(quick): return _lstm(quick, grad=False)
def value_and_grad(quick): return _lstm(quick, grad=True)
