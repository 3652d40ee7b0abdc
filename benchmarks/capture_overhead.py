"""What the capture/replay protocol (tinyjax/capture.py) costs per call: the figures issue 9 asked to keep.

    python -m benchmarks --only dispatch,while_loop,"scan rnn"

- dispatch: a cached call of a one-kernel function (x*2+1 on 1,024 float32) on a tinygrad Tensor (the program's
  replay alone); dispatch-numpy: the same on a numpy array (the copy to the device included); the hand-written
  tinygrad is a TinyJit of the same;
- a 300-iteration lax.while_loop of a 64x64 matmul + tanh (one captured iteration, replayed 300 times);
- a lax.scan of 200 steps of a 16-unit tanh RNN (one captured step, replayed 200 times).
"""
import jax
import jax.numpy as jnp
from jax import lax
from tinygrad import Tensor, TinyJit

from tinyjax import tiny

from .common import Case, normal, rng


def _dispatch(numpy_input):
  def f(x): return x * 2 + 1
  x = normal(rng(), 1024)
  xt = Tensor(x).realize()
  tiny_f, jax_f, hand = tiny(f), jax.jit(f), TinyJit(lambda x: (x * 2 + 1).realize())
  if numpy_input: return Case(lambda: tiny_f(x), lambda: jax_f(x), lambda: hand(Tensor(x)))
  xj = jax.device_put(x)
  return Case(lambda: tiny_f(xt), lambda: jax_f(xj), lambda: hand(xt))


def dispatch(quick): return _dispatch(numpy_input=False)
def dispatch_numpy(quick): return _dispatch(numpy_input=True)


def while_matmul(quick):
  n = 100 if quick else 300
  def loop(m): return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, jnp.tanh(c[1] @ c[1] * 0.01)), (0, m))[1]
  m = normal(rng(), 64, 64)
  tiny_f, jax_f = tiny(loop), jax.jit(loop)
  return Case(lambda: tiny_f(m), lambda: jax_f(m), size=f"{n} iterations")


def scan_rnn(quick):
  def rnn(w, h0, xs): return lax.scan(lambda h, x: (jnp.tanh(h @ w + x), h.sum()), h0, xs)
  r = rng()
  w, h0, xs = (normal(r, *s, scale=0.3) for s in ((16, 16), (16,), (100 if quick else 200, 16)))
  tiny_f, jax_f = tiny(rnn), jax.jit(rnn)
  return Case(lambda: tiny_f(w, h0, xs), lambda: jax_f(w, h0, xs), size=f"{len(xs)} steps")
