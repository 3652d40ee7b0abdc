"""tiny functions called from several threads: first calls (trace, build, capture, compile) and warm replays, all
matching jax.jit, and tinygrad left usable afterwards (issue 12: tinygrad's disk cache raised sqlite ProgrammingError
outside the thread that opened it, and concurrent captures left ALLOW_DEVICE_USAGE=0 set for the whole process)."""
import threading

import jax
import jax.numpy as jnp
import numpy as np
from tinygrad import Tensor

import tinyjax
from tinyjax import tiny

from parity import assert_same


def run_threads(calls):
  """Each (fn, args) in its own thread, all started together; the results (converted in the thread) in order."""
  results, errors, start = [None] * len(calls), [], threading.Barrier(len(calls))
  def work(i, fn, args):
    try:
      start.wait()
      results[i] = tinyjax.to_numpy(fn(*args))
    except BaseException as e: errors.append(e)
  threads = [threading.Thread(target=work, args=(i, fn, args)) for i, (fn, args) in enumerate(calls)]
  for t in threads: t.start()
  for t in threads: t.join(timeout=600)
  assert not errors, errors
  return results


def fns(salt):
  """Four distinct functions (distinct kernels: constants differ per test, so nothing is compiled already)."""
  return [lambda x, y: jnp.sin(x) * (salt + 1.0) + y,
          lambda x, y: jnp.sum(x * y, axis=0) + salt,
          lambda x, y: (x @ y.T) - salt,
          lambda x, y: jnp.maximum(x, y * salt).cumsum(axis=1)]


def args(seed):
  rng = np.random.default_rng(seed)
  return rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal((4, 8)).astype(np.float32)


def tinygrad_still_works():
  assert (Tensor(1) + 1).item() == 2
  assert Tensor([1.0, 2.0]).sum().item() == 3.0


def test_first_calls_of_distinct_functions_from_4_threads():
  fs, xs = fns(0.25), [args(i) for i in range(4)]
  got = run_threads([(tiny(f), a) for f, a in zip(fs, xs)])
  for g, f, a in zip(got, fs, xs): assert_same(g, jax.jit(f)(*a))
  tinygrad_still_works()


def test_first_calls_of_one_function_from_4_threads_then_warm_replays():
  f, xs = fns(0.5)[0], [args(10 + i) for i in range(4)]
  tf = tiny(f)
  got = run_threads([(tf, a) for a in xs])   # all cold: one traces and captures, the others wait and replay
  for g, a in zip(got, xs): assert_same(g, jax.jit(f)(*a))
  assert tf.trace_count == 1
  xs = [args(20 + i) for i in range(8)]
  got = run_threads([(tf, a) for a in xs])   # warm replays
  for g, a in zip(got, xs): assert_same(g, jax.jit(f)(*a))
  assert tf.trace_count == 1
  tinygrad_still_works()


def test_same_and_distinct_functions_cold_from_8_threads():
  fs, x = fns(0.75), args(30)
  tfs = [tiny(f) for f in fs]
  shared = tiny(fs[0])
  got = run_threads([(tf, x) for tf in tfs] + [(shared, x)] * 4)
  for g, f in zip(got, fs + [fs[0]] * 4): assert_same(g, jax.jit(f)(*x))
  assert shared.trace_count == 1
  tinygrad_still_works()


def test_first_call_in_a_worker_thread():
  """The main thread compiles first (tinygrad's disk cache opens its connection here), then a worker thread's first
  call compiles new kernels: with one connection bound to the main thread this raised sqlite3.ProgrammingError."""
  f0, f1 = fns(1.25)[:2]
  x = args(40)
  assert_same(tiny(f0)(*x), jax.jit(f0)(*x))
  got = run_threads([(tiny(f1), x)])
  assert_same(got[0], jax.jit(f1)(*x))
  tinygrad_still_works()


def test_nested_tiny_call_in_a_thread():
  """The lock is re-entrant: a tiny function called inside another's call (here, at trace time) does not deadlock."""
  inner = tiny(lambda x: x * 2.0)
  def outer(x):
    tinyjax.to_numpy(inner(np.ones(3, np.float32)))   # a host-side call while outer is traced
    return x + 1.0
  x = args(50)[0]
  got = run_threads([(tiny(outer), (x,))])
  assert_same(got[0], jax.jit(outer)(x))
