"""The one capture/replay protocol: a function of buffers captured once as a TinyJit, replayed on other buffers after
that. A program (program.py), a while loop's iteration and a long scan's steps (rules/control_flow.py) are each a
`CapturedStep`.

The captured function computes lazily and returns the writes (assigns into buffers among its arguments) that make its
results, so results land in buffers the caller chose: fresh ones for a program's outputs (a plain TinyJit hands back
the same output buffers each replay, overwriting the last call's results), ping-pong buffers for a loop's carry.

A replay calls the capture directly on whole buffers (`captured(buffers, var_vals)`), skipping TinyJit.__call__'s
per-input view rewrite (~0.2 ms an input): every input is first made a whole realized buffer (`whole_buffers`), so
the only thing that differs between calls is which buffers, and each buffer is passed once (`layout`; TinyJit
refuses duplicates), the function getting its argument list rebuilt inside. Which arguments share a buffer changes
the captured kernels, so there is one TinyJit per layout.
"""
import math
import threading
from typing import Callable, NamedTuple

from tinygrad import Tensor, TinyJit
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, UOp, buffers

from .dtypes import physical_shape, to_tiny


tinygrad_lock = threading.RLock()
"""Held by every call of a tiny function (tracing, building, capture, replay) and by to_numpy/to_tinygrad: tinygrad's
state is process-wide (Context flags such as ALLOW_DEVICE_USAGE, which its codegen sets and restores around each
compile; TinyJit's list of captures in progress, which takes every kernel any thread realizes; buffer and kernel
caches), so two threads inside tinygrad at once corrupt it. Re-entrant: a tiny function may call another. Code that
uses tinygrad itself from several threads while tiny functions run should hold it too (`with tinyjax.tinygrad_lock:`)."""


def whole_buffers(tensors, device):
  """Tensors as whole realized buffers on `device`: constants, broadcasts, other views and unrealized graphs are
  copied into a fresh buffer once. (A view would be baked into the captured kernels; a graph whose base is no
  realized buffer is silently left out of TinyJit's inputs, shifting every later one.)"""
  out, copies = list(tensors), []
  for i, t in enumerate(out):
    if math.prod(t.shape) == 0 or (_is_whole_buffer(t.uop) and t.device == device): continue
    # (into a buffer on the device: a folded constant has none, and contiguous() of a view can be the view itself)
    out[i] = Tensor.empty(*t.shape, dtype=t.dtype, device=device).assign(t.to(device) if t.device != device else t)
    copies.append(out[i])
  if copies:
    Tensor.realize(*copies)
    assert all(_is_whole_buffer(t.uop) for t in copies)
  return out


def _is_whole_buffer(u) -> bool:
  while u.op is Ops.RESHAPE: u = u.src[0]
  return u.op is Ops.BUFFER and buffers.get(u) is not None   # (UOp.realized would walk the graph: slow per call)


def empty_buffer(shape, dtype, device) -> Tensor:
  """A fresh buffer to write a result into, allocated (TinyJit takes only allocated buffers as inputs). Made from
  UOp.new_buffer: Tensor.empty's symbolic-shape handling costs ~0.25 ms an output per call."""
  t = Tensor(UOp.new_buffer(device, size := math.prod(shape), dtype).reshape(tuple(shape)))
  if size: t.uop.buffer.ensure_allocated()   # (size, not t.numel(): Tensor methods cost ~5 µs each, per call)
  return t


def empty_buffers(avals, device, lead=()):
  """Fresh buffers for values of these JAX avals, each with leading dimensions `lead` (a scan's stacked outputs)."""
  return [empty_buffer((*lead, *physical_shape(a)), to_tiny(a.dtype), device) for a in avals]


class Layout(NamedTuple):
  """Tensors taken apart for TinyJit, which takes each buffer once."""
  buffers: list       # the distinct buffers, in order of first use
  positions: tuple    # per tensor: the index of its buffer, or (shape, dtype) for a tensor of no elements (no buffer)


def layout(tensors) -> Layout:
  """The layout of whole buffers (see whole_buffers). A caller that passes the same buffers again (a loop's
  ping-pong) may keep it and call `CapturedStep.run` with it, saving the work per replay."""
  unique, index, positions = [], {}, []
  for t in tensors:
    if math.prod(t.shape) == 0: positions.append((tuple(t.shape), t.dtype)); continue
    if id(t.uop.base) not in index: index[id(t.uop.base)] = len(unique); unique.append(t)
    positions.append(index[id(t.uop.base)])
  return Layout(unique, tuple(positions))


class CapturedStep:
  """`fn(*tensors, *bound_variables) -> writes`, captured as a TinyJit on its first call with a layout and replayed
  on later calls with that layout.

  `fn` runs only while capturing, so it runs once per layout: everything it does besides building the lazy writes
  happens once. `var_vals` ({Variable: int}) binds symbolic values that differ per replay (a scan's step index): at
  capture the bound Variables follow the tensors as arguments of `fn`, at replay only their values are passed.
  A capture that raised is not kept (TinyJit would keep `captured=None` and fail every later call with "'NoneType'
  object is not callable"): the next call with that layout captures again.
  """

  def __init__(self, fn: Callable, device):
    self.fn, self.device = fn, device
    self.jits = {}   # layout positions -> TinyJit, captured

  def __call__(self, tensors, var_vals=None): self.run(layout(tensors), var_vals)

  def run(self, layout: Layout, var_vals=None):
    jit = self.jits.get(layout.positions)
    if jit is not None:
      jit.captured([t.uop.base for t in layout.buffers], {v.expr: x for v, x in var_vals.items()} if var_vals else {})
      return
    jit = self._capture(layout, var_vals)
    if jit.captured is not None: self.jits[layout.positions] = jit   # (None under JIT=0: it ran uncaptured)

  def _capture(self, layout: Layout, var_vals):
    """A TinyJit made with cnt=1: capture on this first call, then run the capture.

    A device's graph API can refuse a batch of kernels that runs fine when they are launched one by one (seen on
    CUDA: cuGraphAddKernelNode answered 'invalid argument' for the 102 kernels of an embedding's scatter-add
    gradient, which run correctly with JIT=2). Graph batching only saves launch time, so such a function is
    captured again without it. The writes go to buffers no captured kernel reads, so running the kernels twice is
    harmless."""
    fn, device, positions, n = self.fn, self.device, layout.positions, len(layout.buffers)   # (not self: no cycle)
    def traced(*args):
      writes = fn(*[args[p] if isinstance(p, int) else Tensor.empty(*p[0], dtype=p[1], device=device) for p in positions],
                  *args[n:])
      if writes: Tensor.realize(*writes)
    args = [*layout.buffers, *(v.bind(x) for v, x in (var_vals or {}).items())]
    jit = TinyJit(traced)
    jit.cnt = 1   # capture on the first call: every input is a realized buffer already
    try: jit(*args)
    except RuntimeError:
      if jit.captured is None: raise   # (it failed before the capture was built: not the graph)
      jit.reset()
      jit.cnt = 1
      with Context(JIT=2): jit(*args)
    return jit
