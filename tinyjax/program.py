"""A Program: one traced signature of a tiny function, built once and called with flat tensors.

The decorator (decorator.py) flattens arguments and finds the Program for their signature; the Program evaluates its
ClosedJaxpr with the interpreter, under its own state (constants as buffers, captured loop steps), and with jit
captures that evaluation once (capture.CapturedStep) and replays it on every later call. A program that reads the
host mid-way is captured in stages around those reads (stages.Stages).
"""
import math

from tinygrad import Tensor

from .capture import BufferSets, CapturedStep, empty_buffers, layout, whole_buffers
from .dtypes import is_key_dtype, physical_shape
from .interpreter import ProgramState, building, collect_consts, const_tensor, eval_closed_jaxpr, needs_host_sync
from .stages import Stages


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
    self.key_outputs = [is_key_dtype(a.dtype) for a in self.out_avals]   # (outputs the decorator wraps as TinyKeys)
    self.state = ProgramState(device)
    with building(self.state):
      consts = [const_tensor(c) for c in collect_consts(closed_jaxpr)]
    if consts: Tensor.realize(*consts)   # (before any capture: a capture takes only realized buffers)
    self.lower_count = 0
    self.host_sync = needs_host_sync(closed_jaxpr)
    self.stages = Stages(closed_jaxpr, device) if self.host_sync and use_jit else None
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
      with building(self.state): return self.stages.run(inputs)
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
