"""Timing for the demo, the benchmarks and the notebooks: waiting for a result, warm-up and repeats, one summary.

A call of a tiny or a jax.jit function can return before its kernels have run: JAX dispatches asynchronously, and on
some tinygrad devices (the CPU device's worker thread included) `.realize()` returns once the kernels are queued, while
`jax.block_until_ready` on a tinygrad Tensor returns at once. Only reading the data or `Device[d].synchronize()` waits.
`wait` does what each kind of output needs, so a time covers the work and not only its launch.

    t = measure(lambda: f(x), repeat=20)   # one warm-up call (timed as t.first), then 20 timed calls
    u = measure(lambda: jax_f(x), repeat=20)
    print(t, "| tiny / jax.jit", ratio(t.median, u.median))   # 12.31 ms (median of 20, min 11.92 ms) | ... 1.85x
"""
import dataclasses
import statistics
import time

import jax
import numpy as np
from tinygrad import Device, Tensor

from tinyjax import TinyKey
from tinyjax.capture import tensor_to_numpy


def wait(out, read=False):
  """Returns `out` once every array in the pytree is computed. read=True also copies each array to the host, as a
  program that looks at its results would (the benchmarks that say "outputs read back" time that)."""
  leaves = jax.tree_util.tree_leaves(out, is_leaf=lambda x: isinstance(x, TinyKey))
  tensors = [x.data if isinstance(x, TinyKey) else x for x in leaves if isinstance(x, (Tensor, TinyKey))]
  arrays = [x for x in leaves if isinstance(x, jax.Array)]
  if tensors:
    Tensor.realize(*tensors)   # a no-op for a replay's outputs; schedules the graph of a jit=False (lazy) result
    if read:
      for t in tensors: tensor_to_numpy(t)   # (what tinyjax.to_numpy does)
    else:   # one synchronize per device, not per tensor (a sharded tensor's device is a tuple)
      devices = {d for t in tensors for d in (t.device if isinstance(t.device, tuple) else (t.device,))}
      for d in devices: Device[d].synchronize()
  jax.block_until_ready(arrays)
  if read:
    for a in arrays:
      if not jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key): np.asarray(a)   # a typed key has no host form
  return out


def timed(fn, read=False):
  """(seconds, result) of one call `fn()`, up to the moment its result is computed (`wait`)."""
  start = time.perf_counter()
  out = wait(fn(), read)
  return time.perf_counter() - start, out


@dataclasses.dataclass(frozen=True)
class Timing:
  """Seconds: `first` is the first warm-up call (for tiny: trace, capture and compile; for jax.jit: compile), `times`
  the calls after the warm-up."""
  first: float
  times: tuple

  @property
  def median(self): return statistics.median(self.times)

  @property
  def min(self): return min(self.times)

  def __str__(self): return f"{self.median * 1e3:.2f} ms (median of {len(self.times)}, min {self.min * 1e3:.2f} ms)"


def measure(fn, repeat=10, warmup=1, read=False):
  """Calls `fn()` `warmup` times, then `repeat` times, each timed until its result is computed (`wait`). The median
  is the figure to compare; the warm-up keeps tracing and compiling out of it (the first call is kept as `.first`)."""
  first = timed(fn, read)[0] if warmup else float("nan")
  for _ in range(warmup - 1): wait(fn(), read)
  return Timing(first, tuple(timed(fn, read)[0] for _ in range(repeat)))


def ratio(a, b, spec=".2f"):
  """`a / b` as the comparisons here print it: '1.85x' (`spec` is its format, e.g. '5.2f' to line up columns)."""
  return f"{a / b:{spec}}x"
