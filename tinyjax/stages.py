"""A (Closed)Jaxpr that reads the host mid-way (a while's predicate, a long scan's step loop, a callback) run as
stages: the runs of equations between host reads captured once and replayed (capture.CapturedStep), the equations
that read the host evaluated by the interpreter each time. A program (program.py) and a while loop whose body reads
the host (rules/control_flow.py) run this way."""
import math
from typing import NamedTuple

from jax.extend import core as jcore

from .capture import BufferSets, CapturedStep, whole_buffers
from .dtypes import physical_shape
from .interpreter import const_tensor, eval_equations, reads_host


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
  """A ClosedJaxpr that reads the host mid-way as stages: each run of equations between host reads is captured once
  and replayed; each equation that reads the host is evaluated by the interpreter on every run, around the replays,
  its own loop steps captured in the program's state. So only those equations are interpreted per run, not the whole
  Jaxpr. Outputs that no captured stage makes (inputs, constants, a host equation's results) are copied by a last
  captured stage, so that every run's outputs are fresh buffers, as a whole program's capture gives."""

  def __init__(self, closed, device):
    self.closed, self.jaxpr, self.device = closed, closed.jaxpr, device
    jaxpr = closed.jaxpr
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

  def run(self, inputs) -> list:
    """The outputs for these inputs (evaluated in the current program's state: interpreter.building)."""
    env = dict(zip(self.jaxpr.constvars, map(const_tensor, self.closed.consts)))
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
