"""jnp.linalg on one 32x32 float32 matrix: solve (LU), eigh (of its symmetric part), svd and qr, in one program.
Eigen- and singular vectors and QR's factors are unique only up to signs (tinyjax's Jacobi methods and LAPACK may pick
others, both right), so the compared figures are what the factors determine: values and reconstructions."""
import jax
import jax.numpy as jnp

from tinyjax import tiny, to_tinygrad

from .common import Case, normal, rng


def decompositions(a, b):
  sym = (a + a.T) / 2
  return jnp.linalg.solve(a, b), jnp.linalg.eigh(sym), jnp.linalg.svd(a), jnp.linalg.qr(a)


def invariants(out):
  x, (w, v), (u, s, vt), (q, r) = out
  return x, w, (v * w) @ v.T, s, (u * s) @ vt, q @ r, abs(r.diagonal())


def mix(quick):
  r = rng()
  a, b = normal(r, 32, 32) + 4 * jnp.eye(32), normal(r, 32, 4)   # a shifted diagonal keeps solve well conditioned
  tiny_f, jax_f = tiny(decompositions), jax.jit(decompositions)
  args_tg, args_jx = to_tinygrad((a, b)), jax.device_put((a, b))
  return Case(lambda: tiny_f(*args_tg), lambda: jax_f(*args_jx), check=invariants)
