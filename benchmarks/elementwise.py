"""A chain of elementwise ops on 2^19 float32: tinygrad fuses it into one kernel, as XLA does; what's left is the
kernel's own speed (tinygrad's exp/sin/tanh are its own polynomial code, XLA's are vectorized libm-like routines)."""
import jax
import jax.numpy as jnp
from tinygrad import Tensor, TinyJit

from tinyjax import tiny

from .common import Case, normal, rng


def chain(quick):
  def f(x): return jnp.tanh(jnp.sin(jnp.exp(x * 0.5))) * jnp.cos(x) + jnp.log1p(x * x) - jnp.sqrt(jnp.abs(x))
  @TinyJit
  def hand(x): return ((x * 0.5).exp().sin().tanh() * x.cos() + (x * x + 1).log() - x.abs().sqrt()).realize()
  x = normal(rng(), 1 << 19)
  xt, xj, tiny_f, jax_f = Tensor(x).realize(), jax.device_put(x), tiny(f), jax.jit(f)
  return Case(lambda: tiny_f(xt), lambda: jax_f(xj), lambda: hand(xt))
