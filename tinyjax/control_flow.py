"""Control flow: cond/switch (`cond`), `while`, `scan` (fori_loop is one of the last two), `platform_index`.

tinygrad graphs are static, so:
- cond evaluates every branch lazily and selects the taken branch's outputs with `where` (a select, never a
  multiply, so a NaN or inf of an untaken branch cannot leak). An index outside [0, n) takes the last branch, as
  XLA's conditional does. A branch that holds a `while` needs host syncs, and so does its cond: the index is read
  on the host and only the taken branch is evaluated (an untaken branch's loop might never end).
- while needs its predicate on the host every iteration: the carry is realized and the predicate read with
  `.item()`. That cannot be replayed by a TinyJit capture (the trip count of the captured call would be baked in:
  a silently wrong answer), so the rule refuses to run while TinyJit is capturing and says to use
  `tiny(f, jit=False)`. `needs_host_sync(closed_jaxpr)` lets the decorator decide that before capturing.
- scan has a static length: the body is unrolled, one copy per step, into one graph. A first, correct version; its
  cost grows linearly with `length`: the graph, the scheduling and the captured kernels (a 16-unit tanh RNN on the
  2-core CPU: 2 kernels and ~0.3 s of first-call build per step — length 200 takes 60 s to build, 30 ms to replay).
  Compiled kernels are reused across steps (same source), schedules are not. The fix is the one while needs: the
  body captured once and replayed `length` times (see the report on splitting programs into jitted segments).
"""
import numpy as np
from jax.extend import core as jcore
from jax.extend.core import primitives as P
from tinygrad import Tensor, dtypes as tg

from .dtypes import physical_shape, to_tiny
from .interpreter import _subjaxprs, eval_closed_jaxpr
from .ops import DEVICE, const, primitive, register


class HostSyncInJitError(NotImplementedError):
  """A value must be read on the host mid-program (a while_loop's predicate), which a TinyJit capture cannot replay."""


# Primitives whose rules evaluate a `while` internally (a traced JAX implementation: igamma, betainc, random_gamma, ...);
# rule modules add to it.
HOST_SYNC_PRIMITIVES: set = set()


def needs_host_sync(closed) -> bool:
  """Whether evaluating this (Closed)Jaxpr reads values on the host: it contains a `while` anywhere, or a primitive
  whose rule runs one (HOST_SYNC_PRIMITIVES)."""
  jaxpr = closed.jaxpr if isinstance(closed, jcore.ClosedJaxpr) else closed
  for eqn in jaxpr.eqns:
    if eqn.primitive is P.while_p or eqn.primitive in HOST_SYNC_PRIMITIVES: return True
    if any(needs_host_sync(sub) for sub in _subjaxprs(eqn.params)): return True
  return False


def refuse_inside_jit_capture(what):
  from tinygrad.engine.realize import capturing
  if capturing:
    raise HostSyncInJitError(
      f"{what} needs values on the host during the program (a trip count, a callback's arguments), which a TinyJit "
      f"capture cannot replay; run it with tiny(f, jit=False)")


def _host_int(t: Tensor) -> int:
  refuse_inside_jit_capture("a while_loop (or a cond around one)")
  return int(t.to(DEVICE.get()).item())   # a folded constant has no device; without .to it would go through CPU


# ---- cond / switch ---------------------------------------------------------------------------------------------

@register(P.cond_p)
def cond(index, *operands, branches, **_):   # other params (branches_platforms) only steer JAX's lowering
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
def platform_index(*, platforms, **_):
  """The branch `lax.platform_dependent` takes. tinyjax's reference is jax.jit on CPU, so: the branch naming
  'cpu', else the default branch (None)."""
  for i, names in enumerate(platforms):
    if names is not None and "cpu" in names: return const(i, np.int32)
  for i, names in enumerate(platforms):
    if names is None: return const(i, np.int32)
  raise NotImplementedError(f"platform_dependent without a 'cpu' or default branch (platforms={platforms})")


# ---- while -----------------------------------------------------------------------------------------------------

@register(P.while_p)
def while_loop(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
  cond_consts, body_consts = args[:cond_nconsts], args[cond_nconsts:cond_nconsts + body_nconsts]
  carry = list(args[cond_nconsts + body_nconsts:])
  refuse_inside_jit_capture("while_loop")
  while True:
    pred, = eval_closed_jaxpr(cond_jaxpr, *cond_consts, *carry)
    # realize the carry with the predicate, so the next iteration starts from buffers, not from the whole history
    pending = [t for t in (pred, *carry) if not t.uop.is_realized and t.numel() > 0]
    if pending: Tensor.realize(*pending)
    if not _host_int(pred): return carry
    carry = eval_closed_jaxpr(body_jaxpr, *body_consts, *carry)


# ---- scan ------------------------------------------------------------------------------------------------------

def _scan_groups(params):
  """How many scan operands are consts and carries: params in jax 0.10, a FlatTree `ft_in` in jax 0.11."""
  if "num_consts" in params: return params["num_consts"], params["num_carry"]
  consts, carry, _ = params["ft_in"].unpack()
  return len(consts), len(carry)


@register(P.scan_p)
def scan(*args, jaxpr, length, reverse, **params):   # linear, unroll, _split_transpose, ft_out: no effect here
  num_consts, num_carry = _scan_groups(params)
  consts, carry, xs = args[:num_consts], list(args[num_consts:num_consts + num_carry]), args[num_consts + num_carry:]
  ys_per_step = []
  for step in range(length):
    i = length - 1 - step if reverse else step
    outs = eval_closed_jaxpr(jaxpr, *consts, *carry, *[_row(x, i) for x in xs])
    carry, ys = list(outs[:num_carry]), outs[num_carry:]
    ys_per_step.append(ys)
  if reverse: ys_per_step.reverse()
  y_avals = jaxpr.out_avals[num_carry:]
  if length == 0:
    return carry + [Tensor.zeros(0, *physical_shape(a), dtype=to_tiny(a.dtype), device=DEVICE.get()) for a in y_avals]
  return carry + [_stack([ys[j] for ys in ys_per_step]) for j in range(len(y_avals))]


def _row(x: Tensor, i: int) -> Tensor:
  return x.shrink(((i, i + 1),) + tuple((0, d) for d in x.shape[1:])).reshape(x.shape[1:])


def _stack(rows):
  rows = [r.unsqueeze(0) for r in rows]
  return rows[0].cat(*rows[1:], dim=0) if len(rows) > 1 else rows[0]

