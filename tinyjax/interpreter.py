"""Evaluates a ClosedJaxpr on lazy tinygrad Tensors, one equation at a time (Autodidax's eval_jaxpr, plus errors
that point at the user's source line)."""
import contextlib
import contextvars

import jax
import jax.numpy as jnp
import numpy as np
from jax._src import source_info_util
from jax.extend import core as jcore
from tinygrad import Tensor

from .dtypes import is_key_dtype, to_tiny
from .keys import apply_to_key_components, carries_keys
from .ops import RULES, UNSUPPORTED
from .rules.numerics import DEVICE, const

# Tensors for a program's constants (closed-over arrays, array literals), made once per program and reused:
# id(value) -> (value, Tensor). The value is kept so that its id stays unique while the program lives. Rules that
# keep per-program state put it here under tuple keys (control_flow's captured scan steps), to be freed with it.
CONSTS = contextvars.ContextVar("tinyjax_consts", default=None)


def eval_jaxpr(jaxpr, consts, *args):
  env = {}
  def read(v): return literal(v) if isinstance(v, jcore.Literal) else env[v]
  def write(v, val):
    if not isinstance(v, jcore.DropVar): env[v] = val
  for v, val in zip(jaxpr.constvars, consts): write(v, val)
  for v, val in zip(jaxpr.invars, args, strict=True): write(v, val)
  for eqn in jaxpr.eqns:
    outs = apply_rule(eqn, [read(v) for v in eqn.invars])
    for v, val in zip(eqn.outvars, outs if eqn.primitive.multiple_results else [outs], strict=True): write(v, val)
  return [read(v) for v in jaxpr.outvars]


def eval_closed_jaxpr(closed, *args): return eval_jaxpr(closed.jaxpr, [const_tensor(c) for c in closed.consts], *args)


def literal(v):
  aval = v.aval
  if is_key_dtype(aval.dtype): raise TypeError("tinyjax: a PRNG key literal in a Jaxpr is not supported")
  return const_tensor(v.val, aval.dtype) if np.ndim(v.val) else const(v.val, aval.dtype, aval.shape)


def const_tensor(value, dtype=None) -> Tensor:
  """A program constant as a device buffer, converted once per program (see CONSTS)."""
  if isinstance(value, Tensor): return value
  cache = CONSTS.get()
  if cache is not None and id(value) in cache: return cache[id(value)][1]
  data = jax.random.key_data(value) if is_key_dtype(getattr(value, "dtype", None)) else value
  t = numpy_to_tensor(np.asarray(data, dtype=dtype), DEVICE.get())
  if cache is not None: cache[id(value)] = (value, t)
  return t


def numpy_to_tensor(a: np.ndarray, device) -> Tensor:
  """A numpy array as a device buffer. bfloat16 travels as its uint16 bits; a scalar as shape (1,) then reshaped,
  since tinygrad folds a 0-d array into a constant, which TinyJit cannot take as an input; read-only memory (a jax
  array's numpy view) is copied, since some devices' copy-in needs a writable host buffer."""
  target = to_tiny(a.dtype)
  raw = np.ascontiguousarray(a.view(np.uint16) if a.dtype == jnp.bfloat16 else a)
  if not raw.flags.writeable: raw = raw.copy()
  t = Tensor(raw.reshape(-1) if raw.size else raw, device=device)
  if t.dtype != target: t = t.bitcast(target)
  return t.reshape(a.shape)


def collect_consts(closed):
  """Every constant a program needs — its own, sub-jaxprs', array literals — so they become buffers before capture."""
  found = list(closed.consts)
  def walk(jaxpr):
    for eqn in jaxpr.eqns:
      found.extend(v.val for v in eqn.invars if isinstance(v, jcore.Literal) and np.ndim(v.val))
      for sub in _subjaxprs(eqn.params):
        if isinstance(sub, jcore.ClosedJaxpr): found.extend(sub.consts); walk(sub.jaxpr)
        else: walk(sub)
  walk(closed.jaxpr)
  return found


def _subjaxprs(params):
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


@contextlib.contextmanager
def building(device, const_cache):
  """The context a program is built in: the device for new tensors and the program's constant cache."""
  dev_token, const_token = DEVICE.set(device), CONSTS.set(const_cache)
  try: yield
  finally: DEVICE.reset(dev_token); CONSTS.reset(const_token)
