"""Control flow (tinyjax/rules/control_flow.py) against jax.jit: cond/switch, while_loop with data-dependent trip counts,
scan (forward, reverse, consts, length 0, keys) and its gradient, fori_loop, platform_dependent."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import primitives as P

from parity import assert_same, check
from tinyjax import tiny
from tinyjax.rules import control_flow


def check_host_reads(fn, *args, **kw):
  """check() for programs that read the host (while_loop): lazily (jit=False) and captured in stages around the
  reads (stages.Stages), each called twice (the second call replays)."""
  want = jax.jit(fn)(*args)
  for f in (tiny(fn, jit=False), tiny(fn)):
    for _ in range(2):
      got = f(*args)
      assert_same(got, want, **kw)
  return got


# ---- cond / switch ---------------------------------------------------------------------------------------------

def test_cond_both_ways_and_no_nan_leak():
  def f(x):
    # the untaken branch makes NaN and inf; a select keeps them out (a multiply by 0/1 would not)
    a = lax.cond(x[0] > 0, lambda x: jnp.sqrt(x) * 2, lambda x: jnp.log(-x) / 0.0, x)
    b = lax.cond(x[0] < 0, lambda x: (x.astype(jnp.int32), x > 1), lambda x: (-x.astype(jnp.int32), x < 1), x)
    return a, b
  check(f, np.array([4.0, 1.0, 0.0], np.float32))
  check(f, np.array([-4.0, -1.0, 0.0], np.float32))


def test_switch_clamps_and_raw_out_of_range_index():
  branches = [lambda x: x + 1, lambda x: x * 3, lambda x: -x]
  f = lambda i, x: lax.switch(i, branches, x)
  for i in (-7, 0, 1, 2, 9):
    check(f, np.int32(i), np.arange(3, dtype=np.float32))
  # the primitive itself, index unclamped: XLA runs the last branch for any index outside [0, n)
  closed = [jax.make_jaxpr(b)(np.zeros(3, np.float32)) for b in branches]
  raw = lambda i, x: P.cond_p.bind(i, x, branches=tuple(closed))
  for i in (-1, 1, 3, 100):
    check(raw, np.int32(i), np.arange(3, dtype=np.float32))


def test_cond_with_keys_and_closures():
  w = np.arange(4, dtype=np.float32)
  def f(k, flag):
    k2 = lax.cond(flag, lambda k: jax.random.split(k)[0], lambda k: jax.random.fold_in(k, 1), k)
    return k2, lax.cond(flag, lambda: w * 2, lambda: w - 1)
  check(f, jax.random.key(0), True)
  check(f, jax.random.key(0), False)


def test_platform_dependent():
  f = lambda x: lax.platform_dependent(x, cpu=lambda x: x + 1, default=lambda x: x - 1)
  check(f, np.ones(3, np.float32))


# ---- while_loop ------------------------------------------------------------------------------------------------

def _collatz_steps(n):
  def body(c):
    n, steps = c
    return jnp.where(n % 2 == 0, n // 2, 3 * n + 1), steps + 1
  return lax.while_loop(lambda c: c[0] != 1, body, (n, 0))


def test_while_data_dependent_trip_count():
  f = tiny(_collatz_steps, jit=False)
  for n in (1, 6, 27):   # 0, 8 and 111 steps: one program, a different trip count per call
    assert_same(f(np.int32(n)), jax.jit(_collatz_steps)(np.int32(n)))
  assert f.trace_count == 1


def test_while_with_consts_and_arrays():
  w = np.linspace(0.5, 1.5, 4).astype(np.float32)
  def f(x, limit):
    return lax.while_loop(lambda c: jnp.sum(c[0]) < limit, lambda c: (c[0] * w + 1, c[1] + 1), (x, 0))
  check_host_reads(f, np.ones(4, np.float32), np.float32(100))
  check_host_reads(f, np.ones(4, np.float32), np.float32(-1))   # zero iterations


def test_while_rejection_sampling_carries_a_key():
  def f(k):
    def body(c):
      k, _, n = c
      k, sub = jax.random.split(k)
      return k, jax.random.uniform(sub), n + 1
    return lax.while_loop(lambda c: c[1] > 0.1, body, (k, 1.0, 0))
  got = check_host_reads(f, jax.random.key(11))
  assert int(got[2].item()) > 1   # the loop ran a data-dependent number of times


def test_fori_loop_traced_bounds_is_a_while():
  f = lambda lo, hi, x: lax.fori_loop(lo, hi, lambda i, c: c * 2 + i, x)
  check_host_reads(f, np.int32(2), np.int32(7), np.float32(1))


def test_while_runs_uncaptured_with_a_new_trip_count_each_call():
  # a captured program would replay the first call's trip count for every later call: such programs are not captured
  f = tiny(_collatz_steps)
  for n in (6, 7, 27, 1):
    assert_same(f(np.int32(n)), jax.jit(_collatz_steps)(np.int32(n)))
  assert f.trace_count == 1


def test_cond_around_while_reads_index_on_host():
  # the untaken branch's loop would never end (x <= 0 doubles away from the bound): only the taken one may run
  def f(x):
    return lax.cond(x > 0, lambda x: lax.while_loop(lambda v: v < 100, lambda v: v * 2, x), lambda x: x - 1, x)
  check_host_reads(f, np.float32(3))
  check_host_reads(f, np.float32(-3))



def test_program_around_a_while_is_captured_in_stages():
  """Only the while is evaluated per call; the work before and after it is captured and replayed. Outputs that no
  captured stage makes (an input, a constant, a literal, the loop's own result) are copied, so each call's outputs
  are fresh: earlier calls' outputs keep their values."""
  def f(x, n):
    y = jnp.tanh(x) * 2
    k, z = lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, c[1] * 0.5 + 1), (0, y))
    return z.sum() + k, x, jnp.arange(3.0), 7, z, y
  g, reference = tiny(f), jax.jit(f)
  x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  first = g(x, 5)
  for n in (5, 0, 9, 5):
    assert_same(g(x * n, n), reference(x * n, n))
  assert_same(first, reference(x, 5))
  (program,) = g.programs.values()
  assert [s.outputs is None for s in program.stages.stages] == [False, True, False]
  assert program.stages.stages[1].eqns[0].primitive is P.while_p
  assert g(x, 1)[1] is not g(x, 1)[1]


def _while_captures(f):
  """The captured while iterations a tiny function's programs keep (one TinyJit per iteration layout)."""
  return [jit for prog in f.programs.values() for key, step in prog.state.steps.items() if key[0] == "while"
          for jit in step.jits.values()]


def test_while_replays_one_captured_iteration():
  """500 iterations of a matrix recurrence: the iteration (body, then the predicate of the new carry) is captured
  once and replayed on whichever buffers hold the carry, not re-interpreted; trip counts differ per call."""
  def f(x, n):
    return lax.while_loop(lambda c: c[0] < n, lambda c: (c[0] + 1, jnp.tanh(c[1] @ c[1].T * 0.01 + c[1])), (0, x))
  x = np.random.default_rng(0).normal(size=(16, 16)).astype(np.float32)
  g = tiny(f)
  for n in (500, 3, 0, 1, 2, 40):
    assert_same(g(x, n), jax.jit(f)(x, n), rtol=1e-5, atol=1e-6)
  assert g.trace_count == 1
  assert len(_while_captures(g)) == 1   # no buffer is shared between the consts, the carry and its ping-pong


def test_while_batched_predicate_and_empty_carry():
  """vmap of a while whose predicate is batched: every element advances only while its own predicate holds."""
  def f(x, empty):
    i, y, e = lax.while_loop(lambda c: c[1] < 10.0, lambda c: (c[0] + 1, c[1] * 1.7 + 0.1, c[2] + 1), (0, x, empty))
    return i, y, e
  x = np.array([0.5, 3.0, 20.0, -0.05, 9.9], np.float32)
  check(jax.vmap(f, in_axes=(0, None)), x, np.zeros((0, 3), np.float32))


def test_while_inside_while_body_runs_as_stages():
  """The outer body reads the host (the inner loop's predicate): it runs as captured stages around the inner loop,
  built once per program, with trip counts that differ per outer iteration and per call."""
  def f(x, y):
    inner = lambda v: lax.while_loop(lambda w: w < 8 * v[1], lambda w: w * 2 + y, v[0])
    return lax.while_loop(lambda v: v[1] < 4, lambda v: (jnp.tanh(inner(v)) * 9, v[1] + 1), (x, 1.0))
  g = tiny(f)
  for x in (1.5, 0.25, 3.0):
    assert_same(g(np.float32(x), np.float32(0.5)), jax.jit(f)(np.float32(x), np.float32(0.5)))
  (program,) = g.programs.values()
  (staged,) = [v for k, v in program.state.steps.items() if k[0] == "staged while"]
  cond_stages, body_stages = staged
  assert [s.outputs is None for s in body_stages.stages] == [True, False]   # the inner while, then tanh * 9 captured



@pytest.mark.timeout(300)   # (the bug this guards against made the loop run forever)
def test_loops_whose_carry_starts_as_views_of_one_input():
  """A while inside lax.map (unrolled), its carry rows of the map's slice: shrink views of one buffer, which must be
  copied into whole buffers before the capture (TinyJit silently drops an unrealized input, shifting every later
  one: the replays read the wrong buffers). Seen as an endless loop in jax.grad of jax.random.gamma."""
  def body(c):
    i, a, b, s = c
    return i + 1, a * 0.5 + b, b + s, s
  f = lambda xs: lax.map(lambda x: lax.while_loop(lambda c: c[0] < 5, body, (0, x[0], x[1], x[2])), xs)
  check(f, np.arange(6, dtype=np.float32).reshape(2, 3) + 1)


@pytest.mark.usefixtures("scan_strategy")
def test_scan_whose_carry_and_consts_are_views():
  def f(m):
    w, h0, xs = m[0, :3], m[1, 1:4], m[2:, :3]
    return lax.scan(lambda h, x: (jnp.tanh(h * w + x + m[1, 0]), h.sum()), h0, xs)
  check(f, np.random.default_rng(4).normal(size=(14, 4)).astype(np.float32), rtol=1e-5, atol=1e-6)

def test_map_and_associative_scan():
  xs = np.random.default_rng(1).normal(size=(12, 3)).astype(np.float32)
  check(lambda xs: lax.map(lambda r: jnp.sort(r) * jnp.sum(r), xs), xs)
  check(lambda xs: lax.map(lambda r: r * 2, xs, batch_size=4), xs)
  check(lambda xs: lax.associative_scan(jnp.add, xs, axis=0), xs, rtol=1e-5, atol=1e-6)
  check(lambda xs: lax.associative_scan(jnp.maximum, xs, reverse=True, axis=1), xs)
  # an associative operator on a pair (affine maps composed): the linear recurrence h = a*h + b
  compose = lambda f, g: (g[0] * f[0], g[0] * f[1] + g[1])
  check(lambda a, b: lax.associative_scan(compose, (a, b)), xs[:, 0] * 0.5, xs[:, 1], rtol=1e-5, atol=1e-6)


# ---- scan ------------------------------------------------------------------------------------------------------
# Every scan test runs both ways a scan executes: unrolled into the graph (short scans) and stepped (the body
# captured once and replayed per step with the step index as a bound Variable; long scans).

@pytest.fixture(params=["unrolled", "stepped"], autouse=False)
def scan_strategy(request, monkeypatch):
  monkeypatch.setattr(control_flow, "UNROLL_MAX_LENGTH", 10_000 if request.param == "unrolled" else 0)
  return request.param


@pytest.mark.usefixtures("scan_strategy")
def test_scan_forward_reverse_multi():
  def f(c0, xs, ys):
    step = lambda c, xy: ((c[0] + xy[0], c[1] * 2), (c[0] * xy[1], xy[0] > 2))
    fwd = lax.scan(step, (c0, jnp.int32(1)), (xs, ys))
    rev = lax.scan(step, (c0, jnp.int32(1)), (xs, ys), reverse=True)
    return fwd, rev
  check(f, np.float32(0.5), np.arange(5, dtype=np.float32), np.linspace(-1, 1, 5).astype(np.float32))


@pytest.mark.usefixtures("scan_strategy")
def test_scan_consts_matrices_and_length_zero():
  w = np.random.default_rng(0).normal(size=(3, 3)).astype(np.float32)
  def f(h, xs):
    rnn = lambda h, x: (jnp.tanh(w @ h + x), h.sum())
    return lax.scan(rnn, h, xs), lax.scan(rnn, h, xs[:0]), lax.scan(lambda c, _: (c + 1, c), 0, None, length=4)
  check(f, np.ones(3, np.float32), np.random.default_rng(1).normal(size=(6, 3)).astype(np.float32))


@pytest.mark.usefixtures("scan_strategy")
def test_scan_over_keys():
  def f(k):
    keys = jax.random.split(k, 4)
    return lax.scan(lambda c, k: (c + jax.random.uniform(k), jax.random.split(k)), 0.0, keys)
  check(f, jax.random.key(3))


@pytest.mark.usefixtures("scan_strategy")
def test_fori_loop_static_bounds_is_a_scan():
  check(lambda x: lax.fori_loop(0, 6, lambda i, c: c * 1.5 + i, x), np.float32(1))


@pytest.mark.usefixtures("scan_strategy")
def test_grad_of_scan():
  rng = np.random.default_rng(2)
  w, xs = rng.normal(size=(4, 4)).astype(np.float32) * 0.5, rng.normal(size=(7, 4)).astype(np.float32)
  def loss(w, xs):
    h, hs = lax.scan(lambda h, x: (jnp.tanh(w @ h + x),) * 2, jnp.zeros(4), xs)
    return jnp.sum(hs ** 2) + jnp.sum(h)
  check(jax.grad(loss, argnums=(0, 1)), w, xs, rtol=1e-5, atol=1e-5)
  check(jax.value_and_grad(lambda w: loss(w, xs)), w, rtol=1e-5, atol=1e-5)


def test_long_scan_steps_a_captured_body():
  """A 300-step RNN and its gradient: the body is captured once and replayed per step (the program is not captured
  whole, since the step loop runs on the host), and later calls give that call's values."""
  rng = np.random.default_rng(3)
  w, xs = rng.normal(size=(8, 8)).astype(np.float32) * 0.4, rng.normal(size=(300, 2, 8)).astype(np.float32)
  def loss(w, h, xs):
    h, hs = lax.scan(lambda h, x: (jnp.tanh(h @ w + x),) * 2, h, xs)
    return jnp.mean(hs ** 2) + jnp.mean(h), hs[::50]
  f = tiny(jax.value_and_grad(loss, has_aux=True))
  for h in (np.zeros((2, 8), np.float32), np.ones((2, 8), np.float32)):
    assert_same(f(w, h, xs), jax.jit(jax.value_and_grad(loss, has_aux=True))(w, h, xs), rtol=1e-4, atol=1e-5)
  assert f.trace_count == 1


@pytest.mark.usefixtures("scan_strategy")
def test_nested_scans_and_a_scan_in_a_while():
  def f(x):
    inner = lambda c, y: lax.scan(lambda a, z: (a * 0.5 + z, a), c, y + jnp.arange(3.0))
    c, ys = lax.scan(inner, x, jnp.arange(12.0))
    w = lax.while_loop(lambda v: v[0] < 50, lambda v: lax.scan(lambda a, _: (a + 1, a), v, None, length=12)[0], c)
    return c, ys, w
  check_host_reads(f, jnp.ones(3))


# ---- what the loops keep -----------------------------------------------------------------------------------------

def _fails_once(monkeypatch, prim):
  """Make `prim`'s rule raise on its first use only (inside the first call's capture)."""
  from tinyjax import ops
  rule, failed = ops.RULES[prim], []
  def fn(*args, **params):
    if not failed: failed.append(True); raise RuntimeError("simulated failure inside the capture")
    return rule.fn(*args, **params)
  monkeypatch.setitem(ops.RULES, prim, dataclasses.replace(rule, fn=fn))


@pytest.mark.parametrize("loop", ["while", "scan"])
def test_a_loop_whose_capture_failed_captures_again(monkeypatch, loop):
  """A rule raising while a loop's step is captured: no half-made capture is kept, the next call captures again."""
  _fails_once(monkeypatch, P.tanh_p)
  if loop == "while": f = lambda x: lax.while_loop(lambda c: c[0] < 20, lambda c: (c[0] + 1, jnp.tanh(c[1]) + 0.5), (0, x))
  else: f = lambda x: lax.scan(lambda c, _: (jnp.tanh(c) + 0.5, c.sum()), x, None, length=20)
  g, x = tiny(f), np.linspace(-1, 1, 5, dtype=np.float32)
  with pytest.raises(RuntimeError, match="simulated failure"): g(x)
  for _ in range(2): assert_same(g(x), jax.jit(f)(x), rtol=1e-6, atol=1e-6)
  assert g.trace_count == 1


def test_needs_host_sync_asks_each_rule():
  """A while or a callback reads the host always, a scan only when it is long enough to be stepped; nested in
  jit and cond alike."""
  from tinyjax.interpreter import needs_host_sync
  def nested(n):
    body = lambda c, x: (c + x, c)
    return jax.make_jaxpr(lambda p, xs: jax.jit(lambda xs: lax.cond(p, lambda: lax.scan(body, 0.0, xs)[0], lambda: 0.0))(xs))(
      True, np.zeros(n, np.float32))
  assert not needs_host_sync(nested(control_flow.UNROLL_MAX_LENGTH))
  assert needs_host_sync(nested(control_flow.UNROLL_MAX_LENGTH + 1))
  assert needs_host_sync(jax.make_jaxpr(lambda x: lax.while_loop(lambda v: v < 3, lambda v: v + 1, x))(0))
  assert needs_host_sync(jax.make_jaxpr(lambda x: jax.debug.callback(print, x) or x)(0))
