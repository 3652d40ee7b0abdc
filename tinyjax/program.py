"""A Program: one traced signature of a tiny function, built once and called with flat tensors.

The decorator (decorator.py) flattens arguments and finds the Program for their signature; the Program evaluates its
ClosedJaxpr with the interpreter, under its own state (constants as buffers, captured loop steps), and with jit
captures that evaluation once (capture.CapturedStep) and replays it on every later call. A program that reads the
host mid-way is captured in stages around those reads (Stages).
"""
import math
from typing import NamedTuple

from jax.extend import core as jcore
from tinygrad import Tensor

from .capture import BufferSets, CapturedStep, empty_buffers, layout, whole_buffers
from .dtypes import physical_shape
from .interpreter import (ProgramState, apply_rule, building, collect_consts, const_tensor, eval_closed_jaxpr,
                          eval_equations, needs_host_sync, reads_host)


class Program:
  """One traced signature: the ClosedJaxpr, its state (interpreter.ProgramState) and, with jit, its capture.

  Each call's outputs are fresh buffers the capture writes into, so outputs of earlier calls stay valid. A program
  that reads the host while it runs (needs_host_sync: a while's trip count, a callback, a long scan's step loop)
  cannot be captured whole: it runs as Stages, the equations between its host reads captured and replayed, the
  equations that read the host evaluated each call (their loops' steps captured in the program's state).
  """

  def __init__(self, closed_jaxpr, out_tree, device, use_jit):
    self.closed_jaxpr, self.out_tree, self.device, self.use_jit = closed_jaxpr, out_tree, device, use_jit
    self.out_avals = closed_jaxpr.out_avals
    if tokens := [str(a) for a in self.out_avals if not hasattr(a, "shape")]:
      raise TypeError(f"tinyjax: the function returns {', '.join(tokens)} (an ordering token from lax.create_token or "
                      f"after_all); tokens work inside a tiny function but cannot be returned from it")
    self.state = ProgramState(device)
    with building(self.state):
      consts = [const_tensor(c) for c in collect_consts(closed_jaxpr)]
    if consts: Tensor.realize(*consts)   # (before any capture: a capture takes only realized buffers)
    self.lower_count = 0
    self.host_sync = needs_host_sync(closed_jaxpr)
    self.stages = Stages(closed_jaxpr.jaxpr, device) if self.host_sync and use_jit else None
    self.captured = CapturedStep(self._write_outputs, device)
    self.outputs = BufferSets(self.out_avals, device)
    self.host_inputs = BufferSets(closed_jaxpr.in_avals, device)   # what numpy/jax/scalar arguments are copied into
    self.computes = any(math.prod(physical_shape(a)) for a in self.out_avals)   # (else every output is empty)

  def evaluate(self, inputs):
    """The interpreter's lazy outputs for these inputs (the graph tinygrad will fuse)."""
    self.lower_count += 1
    with building(self.state):
      return eval_closed_jaxpr(self.closed_jaxpr, *inputs)

  def __call__(self, inputs):
    if not self.use_jit: return self.evaluate(inputs)
    if self.stages is not None:
      with building(self.state):
        return self.stages.run(dict(zip(self.closed_jaxpr.jaxpr.constvars, map(const_tensor, self.closed_jaxpr.consts))), inputs)
    outs = self.outputs.take()
    if self.computes: self.captured(self._buffers(inputs, outs))
    return outs

  def captured_for(self, inputs):
    """The TinyJit a call with these inputs replays (which inputs share a buffer picks it), None before one ran."""
    return self.captured.jits.get(layout(self._buffers(inputs, empty_buffers(self.out_avals, self.device))).positions)

  def _buffers(self, inputs, outs): return [*whole_buffers(inputs, self.device), *outs]

  def _write_outputs(self, *buffers):
    """What the capture runs: the evaluation, written into the output buffers that follow the inputs."""
    inputs, outs = buffers[:len(self.closed_jaxpr.in_avals)], buffers[len(self.closed_jaxpr.in_avals):]
    return [o.assign(r) for o, r in zip(outs, self.evaluate(inputs)) if o.numel()]

  def __getstate__(self): raise TypeError("tinyjax programs cannot be pickled")


class Stage(NamedTuple):
  """A run of equations without host reads, captured once and replayed (`step`, writing `outvars` into buffers from
  `outputs`; no step where every output is empty), or one equation that reads the host (`outputs` None: the
  interpreter evaluates it each call)."""
  eqns: list
  invars: list     # the values it takes from earlier stages, the program's inputs and constants
  outvars: list    # the values later stages or the program's outputs take from it
  step: CapturedStep | None
  outputs: BufferSets | None


class Stages:
  """A program that reads the host mid-way (a while's predicate, a long scan's step loop, a callback) as stages:
  each run of equations between host reads is captured once and replayed; each equation that reads the host is
  evaluated by the interpreter on every call, around the replays, its own loop steps captured in the program's
  state. So only those equations are interpreted per call, not the whole program. Program outputs that no captured
  stage makes (inputs, constants, a host equation's results) are copied by a last captured stage, so that every
  call's outputs are fresh buffers, as a whole program's capture gives."""

  def __init__(self, jaxpr, device):
    self.jaxpr, self.device = jaxpr, device
    runs = []   # (captured, equations)
    for eqn in jaxpr.eqns:
      captured = not reads_host(eqn)
      if captured and runs and runs[-1][0]: runs[-1][1].append(eqn)
      else: runs.append((captured, [eqn]))
    made = {v for captured, eqns in runs if captured for e in eqns for v in e.outvars}
    self.copied = [isinstance(v, jcore.Literal) or v not in made for v in jaxpr.outvars]   # per program output
    if any(self.copied) and not (runs and runs[-1][0]): runs.append((True, []))
    self.stages = []
    for i, (captured, eqns) in enumerate(runs):
      defined = {v for e in eqns for v in e.outvars}
      later = {v for _, eqns_after in runs[i + 1:] for e in eqns_after for v in e.invars if isinstance(v, jcore.Var)}
      later |= {v for v in jaxpr.outvars if isinstance(v, jcore.Var)}
      invars = list(dict.fromkeys(v for e in eqns for v in e.invars if isinstance(v, jcore.Var) and v not in defined))
      outvars = list(dict.fromkeys(v for e in eqns for v in e.outvars if v in later and not isinstance(v, jcore.DropVar)))
      if not captured: self.stages.append(Stage(eqns, invars, outvars, None, None)); continue
      if i == len(runs) - 1:   # the last captured stage also copies the outputs no captured stage makes
        copies = [v for v, c in zip(jaxpr.outvars, self.copied) if c]
        invars += [v for v in dict.fromkeys(v for v in copies if isinstance(v, jcore.Var)) if v not in invars and v not in defined]
        outvars = [v for v in outvars if v not in copies] + copies
      if outvars:   # (a run nothing after it reads is dead: no host reads, so nothing to run)
        # (outputs that all have no elements need no kernel: TinyJit refuses a capture of nothing)
        computes = any(math.prod(physical_shape(v.aval)) for v in outvars)
        step = CapturedStep(_stage_function(eqns, invars, outvars), device) if computes else None
        self.stages.append(Stage(eqns, invars, outvars, step, BufferSets([v.aval for v in outvars], device)))

  def run(self, env: dict, inputs) -> list:
    """The program's outputs for these inputs; `env` holds the constants' values (Var -> Tensor)."""
    env.update(zip(self.jaxpr.invars, inputs, strict=True))
    copies = []
    for stage in self.stages:
      if stage.outputs is None:
        eval_equations(stage.eqns, env, ())
        continue
      ins = [env[v] for v in stage.invars]
      outs = stage.outputs.take()
      if stage.step is not None: stage.step([*whole_buffers(ins, self.device), *outs])
      n_copies = sum(self.copied) if stage is self.stages[-1] else 0
      env.update(zip(stage.outvars[:len(outs) - n_copies], outs))
      copies = outs[len(outs) - n_copies:]
    copies = iter(copies)
    return [next(copies) if c else env[v] for v, c in zip(self.jaxpr.outvars, self.copied)]


def _stage_function(eqns, invars, outvars):
  """What a stage's CapturedStep captures: its equations on the input buffers, written into the output buffers."""
  def write_outputs(*buffers):
    env = dict(zip(invars, buffers[:len(invars)]))
    return [o.assign(r) for o, r in zip(buffers[len(invars):], eval_equations(eqns, env, outvars)) if o.numel()]
  return write_outputs
