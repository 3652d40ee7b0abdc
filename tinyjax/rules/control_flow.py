"""Control flow: cond/switch (`cond`), `while`, `scan` (fori_loop is one of the last two), `platform_index`.

tinygrad graphs are static, so:
- cond evaluates every branch lazily and selects the taken branch's outputs with `where` (a select, never a
  multiply, so a NaN or inf of an untaken branch cannot leak). An index outside [0, n) takes the last branch, as
  XLA's conditional does. A branch that holds a `while` needs host syncs, and so does its cond: the index is read
  on the host and only the taken branch is evaluated (an untaken branch's loop might never end).
- while needs its predicate on the host every iteration (a data-dependent trip count). One iteration — the body,
  then the predicate of the new carry — is captured once (a capture.CapturedStep kept in the program's state) and
  replayed; after each replay one bool is read (by the allocator's copy-out), and the carry ping-pongs between two
  sets of buffers. The program around the loop cannot be captured whole (the captured call's trip count would be
  baked in: a silently wrong answer), so the rule refuses to run while TinyJit is capturing;
  `interpreter.needs_host_sync`, reading the rules' host_sync, lets the program decide that before capturing, and
  such programs are captured in stages around the loop (stages.Stages), the loop itself evaluated on each call.
  A predicate or body that itself reads the host (a nested while, a callback) runs as stages.Stages instead: each
  iteration replays the captured stages between its host reads.
  Costs: the runner's "while_loop of 64x64 matmul + tanh" row (python -m benchmarks).
- scan has a static length. A short one (length <= UNROLL_MAX_LENGTH) is unrolled, one copy of the body per step,
  into the surrounding graph, which the program's capture then replays whole. A longer one runs its body as kernels
  captured once (a capture.CapturedStep kept in the program's state) and replayed once per step, with the step
  index a bound Variable: each replay reads row i of xs and writes row i of the ys buffers by symbolic shrinks, and
  the carry ping-pongs between two sets of buffers. The step loop runs on the host, so a program holding such a
  scan is captured in stages around it, like one holding a while: the scan's host_sync is a predicate of the
  equation (`steps_on_host`: its length), the one rule whose host reads depend on params.
  Costs: the runner's "scan rnn" and "lstm" rows (python -m benchmarks); building a 200-step RNN takes ~1 s where
  unrolling it took 60 s.
  Inside a capture (a stepped scan's body) a nested scan is unrolled.
"""
import numpy as np
from jax.extend.core import primitives as P
from tinygrad import Tensor, Variable, dtypes as tg

from ..capture import CapturedStep, empty_buffer, empty_buffers, layout, tensor_to_numpy, whole_buffers
from ..interpreter import eval_closed_jaxpr, needs_host_sync, program_steps
from ..ops import primitive, register
from ..stages import Stages
from .numerics import DEVICE, const


class HostSyncInJitError(NotImplementedError):
  """A value must be read on the host mid-program (a while_loop's predicate), which a TinyJit capture cannot replay."""


def refuse_inside_jit_capture(what):
  from tinygrad.engine.realize import capturing
  if capturing:
    raise HostSyncInJitError(
      f"{what} needs values on the host during the program (a trip count, a callback's arguments), which a TinyJit "
      f"capture cannot replay; run it with tiny(f, jit=False)")


def _host_int(t: Tensor) -> int:
  refuse_inside_jit_capture("a while_loop (or a cond around one)")
  # (.to: a folded constant has no device, and would go through CPU)
  return int(tensor_to_numpy(t.to(DEVICE.get())).reshape(-1)[0])


# ---- cond / switch ---------------------------------------------------------------------------------------------

@register(P.cond_p)
def cond(index, *operands, branches, branches_platforms=None):   # (branches_platforms: for JAX's lowering)
  n = len(branches)
  if index.dtype == tg.bool: index = index.cast(tg.int32)
  if n == 1: return eval_closed_jaxpr(branches[0], *operands)
  if any(needs_host_sync(b) for b in branches):
    i = _host_int(index)
    return eval_closed_jaxpr(branches[i if 0 <= i < n else n - 1], *operands)
  outs = [eval_closed_jaxpr(b, *operands) for b in branches]
  index = ((index >= 0) & (index < n)).where(index, n - 1)   # XLA: an out-of-range index runs the last branch
  result = list(outs[-1])
  for i in reversed(range(n - 1)):
    taken = index == i
    result = [taken.where(o, r) for o, r in zip(outs[i], result)]
  return result


@register(primitive("platform_index_p"))
def platform_index(*, platforms, has_default=None):
  """The branch `lax.platform_dependent` takes. tinyjax's reference is jax.jit on CPU, so: the branch naming
  'cpu', else the default branch (None)."""
  for i, names in enumerate(platforms):
    if names is not None and "cpu" in names: return const(i, np.int32)
  for i, names in enumerate(platforms):
    if names is None: return const(i, np.int32)
  raise NotImplementedError(f"platform_dependent without a 'cpu' or default branch (platforms={platforms})")


# ---- while -----------------------------------------------------------------------------------------------------

@register(P.while_p, host_sync=True)
def while_loop(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
  cond_consts, body_consts = args[:cond_nconsts], args[cond_nconsts:cond_nconsts + body_nconsts]
  # (device buffers: a literal in the carry is a device-less constant, which realizing would put on the CPU device)
  carry = _on_device(args[cond_nconsts + body_nconsts:])
  refuse_inside_jit_capture("while_loop")
  if not (needs_host_sync(cond_jaxpr) or needs_host_sync(body_jaxpr)):
    return _captured_while(cond_jaxpr, body_jaxpr, cond_consts, body_consts, carry)
  # a loop in the loop (or a callback): the predicate and the body run as captured stages around their host reads
  steps = program_steps()
  if (staged := steps.get(key := ("staged while", id(cond_jaxpr), id(body_jaxpr)))) is None:
    staged = steps[key] = (Stages(cond_jaxpr, DEVICE.get()), Stages(body_jaxpr, DEVICE.get()))
  cond_stages, body_stages = staged
  while True:
    pred, = cond_stages.run([*cond_consts, *carry])
    if not _host_int(pred.any() if pred.ndim else pred): return carry
    carry = _on_device(_advance(pred, body_stages.run([*body_consts, *carry]), carry))


def _advance(pred, new, carry):
  """A batched predicate (JAX's vmap of a while whose predicate is batched, e.g. random_gamma's sampler): as JAX's
  lowering, the loop runs while any element's holds, and only the elements whose own predicate holds advance."""
  if not pred.ndim: return list(new)
  return [pred.reshape(pred.shape + (1,) * (n.ndim - pred.ndim)).where(n, c) for n, c in zip(new, carry)]


def _captured_while(cond_jaxpr, body_jaxpr, cond_consts, body_consts, carry):
  """One iteration (body, then the predicate of the new carry) captured once and replayed until the predicate, read
  on the host after each replay, is false. The carry ping-pongs between two sets of buffers."""
  device = DEVICE.get()
  cond_consts, body_consts = _on_device(cond_consts), _on_device(body_consts)
  pred, = eval_closed_jaxpr(cond_jaxpr, *cond_consts, *carry)
  if not _host_int((pred.any() if pred.ndim else pred).realize()): return carry
  ping_pong, go = [empty_buffers(body_jaxpr.out_avals, device) for _ in range(2)], empty_buffer((1,), tg.bool, device)
  steps = program_steps()
  if (step := steps.get(key := ("while", id(cond_jaxpr), id(body_jaxpr)))) is None:
    step = steps[key] = CapturedStep(_while_iteration(cond_jaxpr, body_jaxpr, len(cond_consts), len(body_consts)), device)
  layouts, n = {}, 0
  while True:
    out = ping_pong[n % 2]
    if (which := (n == 0, n % 2)) not in layouts: layouts[which] = layout([*cond_consts, *body_consts, *carry, *out, go])
    step.run(layouts[which])
    carry, n = list(out), n + 1
    if not tensor_to_numpy(go)[0]: return carry


def _while_iteration(cond_jaxpr, body_jaxpr, n_cond, n_body):
  """The function a while's CapturedStep captures (its closure keeps the jaxprs its key names by id alive)."""
  n_carry = len(body_jaxpr.out_avals)
  def iteration(*buffers):
    cc, bc = buffers[:n_cond], buffers[n_cond:n_cond + n_body]
    old, out, go = buffers[n_cond + n_body:-n_carry - 1], buffers[-n_carry - 1:-1], buffers[-1]
    pred, = eval_closed_jaxpr(cond_jaxpr, *cc, *old)
    new = _advance(pred, eval_closed_jaxpr(body_jaxpr, *bc, *old), old)
    pred_new, = eval_closed_jaxpr(cond_jaxpr, *cc, *new)
    return [*(buf.assign(n) for buf, n in zip(out, new) if buf.numel()),
            go.assign((pred_new.any() if pred_new.ndim else pred_new).reshape(1))]
  return iteration


# ---- scan ------------------------------------------------------------------------------------------------------

def _scan_groups(num_consts, num_carry, ft_in):
  """How many scan operands are consts and carries: params in jax 0.10, a FlatTree `ft_in` in jax 0.11."""
  if num_consts is not None: return num_consts, num_carry
  consts, carry, _ = ft_in.unpack()
  return len(consts), len(carry)


# A scan longer than this runs its body as kernels captured once and replayed per step; a shorter one is unrolled
# into the surrounding graph (which a whole-program capture then replays in one go).
UNROLL_MAX_LENGTH = 8


def steps_on_host(eqn) -> bool:
  """The scan's host_sync: whether this scan equation will replay a captured body per step, its step loop on the host
  (so the program around it cannot be captured whole)."""
  return eqn.params["length"] > UNROLL_MAX_LENGTH


@register(P.scan_p, host_sync=steps_on_host)
def scan(*args, jaxpr, length, reverse, num_consts=None, num_carry=None, ft_in=None, ft_out=None, linear=None,
         unroll=None, _split_transpose=None):   # (linear, unroll, _split_transpose: no effect on the values)
  num_consts, num_carry = _scan_groups(num_consts, num_carry, ft_in)
  consts, carry, xs = args[:num_consts], list(args[num_consts:num_consts + num_carry]), args[num_consts + num_carry:]
  y_avals = jaxpr.out_avals[num_carry:]
  if length == 0:
    return carry + [const(0, a.dtype, (0, *a.shape)) for a in y_avals]
  from tinygrad.engine.realize import capturing
  # (inside a capture, e.g. a stepped scan's body, unrolled; a body with host reads (a while) cannot be captured)
  if length > UNROLL_MAX_LENGTH and not capturing and not needs_host_sync(jaxpr):
    return _stepped_scan(jaxpr, length, reverse, consts, carry, xs, num_carry)
  ys_per_step = []
  for step in range(length):
    i = length - 1 - step if reverse else step
    outs = eval_closed_jaxpr(jaxpr, *consts, *carry, *[_row(x, i) for x in xs])
    carry, ys = list(outs[:num_carry]), outs[num_carry:]
    ys_per_step.append(ys)
  if reverse: ys_per_step.reverse()
  return carry + [_stack([ys[j] for ys in ys_per_step]) for j in range(len(y_avals))]


STEPS_PER_REPLAY = 1   # steps unrolled into one replay: more amortizes tinygrad's per-replay cost (~0.2 ms an input) but made slower kernels (LSTM: 8 steps 1.5 s vs 1 step 0.65 s)


def _stepped_scan(jaxpr, length, reverse, consts, carry, xs, num_carry):
  """The scan body's kernels captured once and replayed, STEPS_PER_REPLAY steps per replay (the rest in one last
  replay of its own capture). The chunk's first step is a bound tinygrad Variable: each replay reads its rows of xs
  and writes its rows of the ys buffers in place, by symbolic shrinks. The carry ping-pongs between two sets of
  fresh buffers (a kernel must not read the buffer it writes)."""
  device = DEVICE.get()
  consts, carry, xs = _on_device(consts), _on_device(carry), _on_device(xs)
  carry_avals, y_avals = jaxpr.out_avals[:num_carry], jaxpr.out_avals[num_carry:]
  ping_pong, ys = (empty_buffers(carry_avals, device), empty_buffers(carry_avals, device)), empty_buffers(y_avals, device, (length,))
  steps = min(STEPS_PER_REPLAY, length)
  full, rest = divmod(length, steps)
  chunk, captured = Variable("scan_chunk", 0, full - 1), program_steps()
  layouts = {}
  for n in range(full + (rest > 0)):
    out, count = ping_pong[n % 2], steps if n < full else rest
    variable = n < full and full > 1   # (a Variable of one value would be folded away: then the start is fixed)
    first = None if variable else n * steps
    if (step := captured.get(key := ("scan", id(jaxpr), length, reverse, steps, count, first))) is None:
      step = captured[key] = CapturedStep(_scan_chunk(jaxpr, length, reverse, len(consts), num_carry, steps, count, first), device)
    if (which := (n == 0, n % 2, count)) not in layouts:   # which buffers the chunk gets depends only on these
      layouts[which] = layout([*consts, *carry, *xs, *out, *ys])
    step.run(layouts[which], {chunk: n} if variable else None)
    carry = list(out)
  return carry + ys


def _scan_chunk(jaxpr, length, reverse, n_consts, num_carry, steps, count, first):
  """The function a stepped scan's CapturedStep captures: `count` steps from step `first`, or, where first is None,
  from chunk * steps with the chunk a bound Variable (the last argument). Its closure keeps the jaxpr its key names
  by id alive."""
  n_in = len(jaxpr.in_avals)
  def run_steps(*buffers):
    start = buffers[-1] * steps if first is None else first
    c, carry, x = buffers[:n_consts], buffers[n_consts:n_consts + num_carry], buffers[n_consts + num_carry:n_in]
    targets = buffers[n_in:len(buffers) - (first is None)]
    writes = []
    for j in range(count):
      row = length - 1 - (start + j) if reverse else start + j
      outs = eval_closed_jaxpr(jaxpr, *c, *carry, *[_row(t, row) for t in x])
      # each step's carry is its own buffer: left lazy, step j+1's kernels would recompute step j's
      carry = [o.contiguous() if j < count - 1 else o for o in outs[:num_carry]]
      writes += [buf.shrink(((row, row + 1),) + tuple((0, d) for d in buf.shape[1:])).assign(o.unsqueeze(0))
                 for buf, o in zip(targets[num_carry:], outs[num_carry:]) if buf.numel()]
    return writes + [buf.assign(o) for buf, o in zip(targets[:num_carry], carry) if buf.numel()]
  return run_steps


def _on_device(tensors): return whole_buffers(tensors, DEVICE.get())


def _row(x: Tensor, i: int) -> Tensor:
  return x.shrink(((i, i + 1),) + tuple((0, d) for d in x.shape[1:])).reshape(x.shape[1:])


def _stack(rows):
  rows = [r.unsqueeze(0) for r in rows]
  return rows[0].cat(*rows[1:], dim=0) if len(rows) > 1 else rows[0]

