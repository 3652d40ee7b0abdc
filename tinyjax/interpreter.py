"""Evaluates a ClosedJaxpr on lazy tinygrad Tensors, one equation at a time (Autodidax's eval_jaxpr, plus errors
that point at the user's source line)."""
import contextlib
import contextvars
import dataclasses

import jax
import numpy as np
from jax._src import source_info_util
from jax.extend import core as jcore
from tinygrad import Tensor

from .capture import numpy_to_tensor
from .dtypes import is_key_dtype
from .keys import apply_to_key_components, carries_keys
from .ops import RULES, UNSUPPORTED
from .rules.numerics import DEVICE, const


def eval_jaxpr(jaxpr, consts, *args):
  env = dict(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args, strict=True))
  return eval_equations(jaxpr.eqns, env, jaxpr.outvars)


def eval_equations(eqns, env: dict, outvars) -> list:
  """Evaluates equations on `env` (Var -> value), adding their results to it; returns the values of `outvars`."""
  def read(v): return literal(v) if isinstance(v, jcore.Literal) else env[v]
  for eqn in eqns:
    outs = apply_rule(eqn, [read(v) for v in eqn.invars])
    for v, val in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs], strict=True):
      if not isinstance(v, jcore.DropVar): env[v] = val
  return [read(v) for v in outvars]


def eval_closed_jaxpr(closed, *args): return eval_jaxpr(closed.jaxpr, [const_tensor(c) for c in closed.consts], *args)


def literal(v):
  aval = v.aval
  if is_key_dtype(aval.dtype): raise TypeError("tinyjax: a PRNG key literal in a Jaxpr is not supported")
  return const_tensor(v.val, aval.dtype) if np.ndim(v.val) else const(v.val, aval.dtype, aval.shape)


def const_tensor(value, dtype=None) -> Tensor:
  """A program constant as a device buffer, converted once per program (see ProgramState)."""
  if isinstance(value, Tensor): return value
  cache = state.consts if (state := STATE.get()) is not None else None
  if cache is not None and id(value) in cache: return cache[id(value)][1]
  data = jax.random.key_data(value) if is_key_dtype(getattr(value, "dtype", None)) else value
  t = numpy_to_tensor(np.asarray(data, dtype=dtype), DEVICE.get())
  if cache is not None: cache[id(value)] = (value, t)
  return t


# ---- the program being evaluated, and walks over its Jaxpr -----------------------------------------------------

@dataclasses.dataclass(eq=False)
class ProgramState:
  """What one program keeps between evaluations, freed with it; `building` makes it current while a Jaxpr is
  evaluated. Both dicts key by object ids, so each entry keeps the objects its key names alive (their ids stay
  unique while the program lives)."""
  device: str
  consts: dict = dataclasses.field(default_factory=dict)  # id(value) -> (value, Tensor): constants, converted once
  steps: dict = dataclasses.field(default_factory=dict)   # rule's key -> CapturedStep: loop bodies captured once


STATE = contextvars.ContextVar("tinyjax_program", default=None)


@contextlib.contextmanager
def building(state: ProgramState):
  """The context a program is evaluated in: its device for new tensors, its constants and captured steps."""
  dev_token, state_token = DEVICE.set(state.device), STATE.set(state)
  try: yield
  finally: DEVICE.reset(dev_token); STATE.reset(state_token)


def program_steps() -> dict:
  """Where a rule keeps what it captured (capture.CapturedStep), to be reused on the program's later calls and freed
  with it. Outside a program nothing is kept."""
  state = STATE.get()
  return state.steps if state is not None else {}


def collect_consts(closed):
  """Every constant a program needs — its own, sub-jaxprs', array literals — so they become buffers before capture."""
  found = list(closed.consts)
  for eqn, _ in equations(closed.jaxpr):
    found += [v.val for v in eqn.invars if isinstance(v, jcore.Literal) and np.ndim(v.val)]
    found += [c for sub in subjaxprs(eqn.params) if isinstance(sub, jcore.ClosedJaxpr) for c in sub.consts]
  return found


def needs_host_sync(closed) -> bool:
  """Whether evaluating this (Closed)Jaxpr reads values on the host (a while's trip count, a callback's arguments,
  a long scan's step loop): then a loop body holding it cannot be captured once, and a program holding it is
  captured in stages around those reads (stages.Stages)."""
  return any(reads_host(eqn) for eqn in (closed.jaxpr if isinstance(closed, jcore.ClosedJaxpr) else closed).eqns)


def reads_host(eqn) -> bool:
  """Whether this equation, or one inside it, reads values on the host. Each rule says so for its own equations
  (Rule.host_sync: a flag, or a predicate of the equation where it depends on the params)."""
  def flagged(e):
    flag = rule.host_sync if (rule := RULES.get(e.primitive)) is not None else False
    return flag(e) if callable(flag) else flag
  return flagged(eqn) or any(flagged(e) for sub in subjaxprs(eqn.params)
                             for e, _ in equations(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub))


def equations(jaxpr, enclosing=()):
  """Every equation of a Jaxpr and of its sub-jaxprs, depth first, each with the equations enclosing it (outermost
  first): the one walk for constants, host reads and the coverage report."""
  for eqn in jaxpr.eqns:
    yield eqn, enclosing
    for sub in subjaxprs(eqn.params):
      yield from equations(sub.jaxpr if isinstance(sub, jcore.ClosedJaxpr) else sub, (*enclosing, eqn))


def subjaxprs(params):
  """The (Closed)Jaxprs among an equation's params (a cond's branches come as a tuple)."""
  for p in params.values():
    for item in (p if isinstance(p, (tuple, list)) else (p,)):
      if isinstance(item, (jcore.ClosedJaxpr, jcore.Jaxpr)): yield item


# ---- errors that name the primitive and the user's line --------------------------------------------------------

class LocatedError(Exception):
  """An error that already names its primitive and the user's line; enclosing equations only add their own line."""


class UnsupportedPrimitiveError(NotImplementedError, LocatedError):
  """A primitive tinyjax has no rule for."""


class TinyjaxNotImplementedError(NotImplementedError, LocatedError):
  """A rule met a case it does not support (a dtype, a parameter, a combination)."""


class TinyjaxTypeError(TypeError, LocatedError):
  """A rule was given a dtype or value kind that has no meaning for it (or no tinygrad equivalent)."""


class TinyjaxValueError(ValueError, LocatedError):
  """A rule was given a value it refuses."""


class TinyjaxInternalError(RuntimeError, LocatedError):
  """A rule failed in a way it did not anticipate: a bug in tinyjax or tinygrad, not an unsupported feature."""


_LOCATED = {NotImplementedError: TinyjaxNotImplementedError, TypeError: TinyjaxTypeError, ValueError: TinyjaxValueError}


def apply_rule(eqn, invals):
  rule = RULES.get(eqn.primitive)
  if rule is None:
    why = UNSUPPORTED.get(eqn.primitive.name, "no rule yet")
    raise UnsupportedPrimitiveError(f"tinyjax has no rule for primitive '{eqn.primitive.name}' ({why}){describe(eqn)}")
  params = dict(eqn.params, in_avals=[v.aval for v in eqn.invars], out_avals=[v.aval for v in eqn.outvars]) \
    if rule.with_avals else eqn.params
  try:
    if carries_keys(eqn, rule): return apply_to_key_components(eqn, rule.fn, invals, params)
    return rule.fn(*invals, **params)
  except LocatedError as e:   # raised inside a sub-jaxpr: add the enclosing equation, up to the user's own line
    e.args = (f"{e.args[0]}\n  inside '{eqn.primitive.name}' at {source_info_util.summarize(eqn.source_info)}",)
    raise
  except MemoryError: raise
  except Exception as e:
    kind = next((located for base, located in _LOCATED.items() if isinstance(e, base)), None)
    if kind is None:
      raise TinyjaxInternalError(f"tinyjax: primitive '{eqn.primitive.name}' failed with an internal error "
                                 f"({type(e).__name__}: {e}); please report it{describe(eqn)}") from e
    raise kind(f"tinyjax: primitive '{eqn.primitive.name}' failed: {e}{describe(eqn)}") from e


def describe(eqn) -> str:
  shapes = ", ".join(str(v.aval) for v in eqn.invars)
  params = ", ".join(f"{k}={_short(v)}" for k, v in eqn.params.items())
  return f"\n  inputs: ({shapes})\n  params: {{{params}}}\n  at {source_info_util.summarize(eqn.source_info)}"


def _short(v) -> str:
  s = "<jaxpr>" if isinstance(v, (jcore.ClosedJaxpr, jcore.Jaxpr)) else repr(v)
  return s if len(s) < 80 else s[:77] + "..."
