"""Sequential models as users write them with lax.scan: a Kalman filter (constant-velocity model, state dim 4,
2-d observations, 200 steps) and a bidirectional GRU (hand-written cell, one scan forward, one with reverse=True).
Each step is a handful of small ops, so these measure the per-step cost of a replayed scan."""
import jax
import jax.numpy as jnp
from jax import lax

from tinyjax import tiny, to_tinygrad

from .common import Case, normal, rng


def kalman_filter(params, observations):
  F, H, Q, R = params["F"], params["H"], params["Q"], params["R"]
  def step(carry, z):
    mean, cov = carry
    mean, cov = F @ mean, F @ cov @ F.T + Q                                     # predict
    S = H @ cov @ H.T + R
    gain = jnp.linalg.solve(S, H @ cov).T                                       # cov H^T S^-1 (S and cov symmetric)
    mean, cov = mean + gain @ (z - H @ mean), (jnp.eye(4) - gain @ H) @ cov    # update
    return (mean, cov), (mean, jnp.trace(cov))
  return lax.scan(step, (jnp.zeros(4), jnp.eye(4)), observations)[1]


def kalman(quick):
  dt, steps = 0.1, 100 if quick else 200
  F = jnp.array([[1, 0, dt, 0], [0, 1, 0, dt], [0, 0, 1, 0], [0, 0, 0, 1]], jnp.float32)
  params = {"F": F, "H": jnp.eye(2, 4), "Q": 0.01 * jnp.eye(4), "R": 0.5 * jnp.eye(2)}
  r = rng()
  track = jnp.cumsum(jnp.asarray(normal(r, steps, 2, scale=0.3)), axis=0)   # a random walk, observed with noise
  obs = track + normal(r, steps, 2, scale=0.7)
  tiny_f, jax_f, args_tg = tiny(kalman_filter), jax.jit(kalman_filter), to_tinygrad((params, obs))
  return Case(lambda: tiny_f(*args_tg), lambda: jax_f(params, obs), size=f"{steps} steps")


def gru_cell(p, h, x):
  n = h.shape[-1]
  gx, gh = x @ p["wx"] + p["b"], h @ p["wh"]   # pre-activations of the update gate, reset gate and candidate
  update, reset = jax.nn.sigmoid(gx[:, :n] + gh[:, :n]), jax.nn.sigmoid(gx[:, n:2 * n] + gh[:, n:2 * n])
  candidate = jnp.tanh(gx[:, 2 * n:] + reset * gh[:, 2 * n:])
  return (1 - update) * candidate + update * h


def bigru(params, xs):   # xs: (time, batch, features) -> (time, batch, 2 * hidden)
  def run(p, reverse):
    def step(h, x):
      h = gru_cell(p, h, x)
      return h, h
    return lax.scan(step, jnp.zeros((xs.shape[1], p["wh"].shape[0])), xs, reverse=reverse)[1]
  return jnp.concatenate([run(params["fwd"], False), run(params["bwd"], True)], axis=-1)


def bidirectional_gru(quick):
  steps, batch, features, hidden = (64, 8, 16, 32) if quick else (200, 16, 32, 64)
  r = rng()
  def direction():   # weights of the three gates side by side: update, reset, candidate
    return {"wx": normal(r, features, 3 * hidden, scale=features ** -0.5),
            "wh": normal(r, hidden, 3 * hidden, scale=hidden ** -0.5), "b": normal(r, 3 * hidden, scale=0.1)}
  params, xs = {"fwd": direction(), "bwd": direction()}, normal(r, steps, batch, features)
  tiny_f, jax_f, args_tg, args_jx = tiny(bigru), jax.jit(bigru), to_tinygrad((params, xs)), jax.device_put((params, xs))
  return Case(lambda: tiny_f(*args_tg), lambda: jax_f(*args_jx), size=f"{steps} steps, hidden {hidden}")
