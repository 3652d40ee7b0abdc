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
import collections
import math
import sys
import threading
from typing import Callable

import jax.numpy as jnp
import numpy as np
from tinygrad import Tensor, TinyJit, dtypes as tg
from tinygrad.dtype import _to_np_dtype
from tinygrad.device import Buffer
from tinygrad.engine.realize import estimate_uop, get_call_arg_uops, get_runtime
from tinygrad.helpers import DEBUG, PROFILE, Context, GlobalCounters
from tinygrad.uop.ops import Ops, UOp, buffers, sym_infer

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
    if (_is_whole_buffer(t.uop) and t.device == device) or 0 in t.shape: continue
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


def numpy_to_tensor(a: np.ndarray, device, into: Tensor | None = None) -> Tensor:
  """A numpy array as a device buffer (`into`, an allocated buffer of its shape and dtype, or a fresh one), copied in
  once by the device's allocator: no kernel, nothing scheduled (Tensor(a) makes a host buffer and schedules a copy,
  ~2 ms a call; Buffer.copy_from runs a one-copy program, ~0.5 ms). Devices order a copy-in after the kernels already
  queued, so `into` may be a buffer an earlier call's kernels read. bfloat16 travels as its uint16 bits; read-only
  memory (a jax array's numpy view) is copied first, since copy-in takes a writable host buffer (ctypes from_buffer)."""
  raw = np.ascontiguousarray(a.view(np.uint16) if a.dtype == jnp.bfloat16 else a).reshape(-1)
  if not raw.flags.writeable: raw = raw.copy()
  t = into if into is not None else empty_buffer(a.shape, to_tiny(a.dtype), device)
  if raw.size:
    buffer = t.uop.buffer
    buffer.allocator._copyin(buffer._buf, memoryview(raw).cast("B"))
  return t


def tensor_to_numpy(t: Tensor) -> np.ndarray:
  """A tensor's value as numpy with JAX's dtype. A whole realized buffer (every output, a loop's flag) is copied out
  by the device's allocator, ~10 µs; Tensor.numpy runs a one-copy program, ~1 ms. bfloat16 comes as its uint16
  bits (tinygrad's .numpy() widens it to float32)."""
  if not (_is_whole_buffer(t.uop) and math.prod(t.shape)):
    return t.bitcast(tg.uint16).numpy().view(jnp.bfloat16) if t.dtype == tg.bfloat16 else t.numpy()
  buffer = buffers[t.uop.base]
  out = np.empty(t.shape, np.uint16 if t.dtype == tg.bfloat16 else _to_np_dtype(t.dtype))
  buffer.allocator._copyout(memoryview(out.reshape(-1)).cast("B"), buffer._buf)
  return out.view(jnp.bfloat16) if t.dtype == tg.bfloat16 else out


def empty_buffers(avals, device, lead=()):
  """Fresh buffers for values of these JAX avals, each with leading dimensions `lead` (a scan's stacked outputs)."""
  return [empty_buffer((*lead, *physical_shape(a)), to_tiny(a.dtype), device) for a in avals]


class BufferSets:
  """Buffers for values of these avals, a fresh set per call: a program's outputs (earlier calls' outputs stay
  valid), the buffers its host inputs (numpy, jax arrays, scalars) are copied into.

  A fresh buffer costs ~60 µs of tinygrad object creation (UOp, reshape, Tensor, allocation) per output, more than
  replaying a small program, so a set handed out before is written again once its caller holds none of it: a
  training loop drops step N-1's parameters while step N+1 runs, a loop of `f(x)` drops each result. "Holds none"
  is counted: sys.getrefcount of each tensor, its UOp and its Buffer is back at the count it had while only this pool
  held the set (a lazy graph built on an output holds its UOp; a Buffer taken out of it holds the Buffer), and the
  tensor was not reassigned. A weak reference to an output does not hold it. The pool keeps the last KEEP sets, and
  only sets of at most MAX_BYTES: large outputs are not kept alive past their use."""
  KEEP, MAX_BYTES = 3, 1 << 26

  def __init__(self, avals, device):
    self.avals, self.device = avals, device
    self.sets = collections.deque()   # (entries, counts): entries (tensor, uop, buffer) per aval
    self.recyclable = sum(math.prod(physical_shape(a)) * to_tiny(a.dtype).itemsize for a in avals) <= self.MAX_BYTES

  def take(self) -> list:
    if not self.recyclable: return empty_buffers(self.avals, self.device)
    for i, (entries, counts) in enumerate(self.sets):
      if all(e[0].uop is e[1] for e in entries) and [_refcounts(e) for e in entries] == counts:
        del self.sets[i]
        break
    else:
      entries = [(t, t.uop, t.uop.buffer) for t in empty_buffers(self.avals, self.device)]
      counts = [_refcounts(e) for e in entries]
    self.sets.append((entries, counts))
    if len(self.sets) > self.KEEP: self.sets.popleft()
    return [e[0] for e in entries]


def _refcounts(entry) -> tuple: return tuple(sys.getrefcount(x) for x in entry)


class Layout:
  """Tensors taken apart for TinyJit, which takes each buffer once: `buffers`, the distinct buffers in order of first
  use, and `positions`, per tensor the index of its buffer or (shape, dtype) for a tensor of no elements."""
  __slots__ = ("buffers", "positions", "_memory")

  def __init__(self, buffers: list, positions: tuple):
    self.buffers, self.positions, self._memory = buffers, positions, None

  def memory(self) -> list:
    """Each buffer's device memory (what a kernel launch takes), looked up once: a loop replays one layout per step.
    It stays valid while the layout lives, since the layout keeps the tensors, and so their Buffers, alive."""
    if self._memory is None: self._memory = [buffers[t.uop.base]._buf for t in self.buffers]
    return self._memory


def layout(tensors) -> Layout:
  """The layout of whole buffers (see whole_buffers). A caller that passes the same buffers again (a loop's
  ping-pong) may keep it and call `CapturedStep.run` with it, saving the work per replay."""
  unique, index, positions = [], {}, []
  for t in tensors:
    if 0 in (shape := t.shape): positions.append((tuple(shape), t.dtype)); continue
    if (i := index.get(base := id(t.uop.base))) is None: i = index[base] = len(unique); unique.append(t)
    positions.append(i)
  return Layout(unique, tuple(positions))


class Replay:
  """A TinyJit capture's kernels, launched on other input buffers with the least Python per kernel.

  CapturedJit.__call__ rewrites its linear program on every call (a pattern match per kernel, then resolving each
  kernel's buffers and launch sizes): ~20 µs of Python a kernel on CPU, more than a small kernel runs. A capture of
  plain kernels on one device is prepared once instead: each kernel's runtime, which arguments are the call's inputs
  (by position) and which are the capture's own buffers, and its launch sizes where no bound Variable changes them.
  A capture with anything else (a device graph, copies, several devices), or a run under DEBUG >= 2 or PROFILE
  (tinygrad prints and records per launch), is replayed by CapturedJit itself."""

  def __init__(self, captured, device):
    self.captured, self.launches = captured, None
    self.kernel_count, self.ops, self.mem = 0, 0, 0
    try: self.launches = [self._launch(call, device) for call in captured.linear.src]
    except _NotPlain: return
    estimates = [estimate_uop(call) for call in captured.linear.src]
    self.kernel_count, self.ops, self.mem = len(estimates), sum(e.ops for e in estimates), sum(e.mem for e in estimates)

  @staticmethod
  def _launch(call, device):
    program = call.src[0]
    if program.op is not Ops.PROGRAM or call.src[1].device != device: raise _NotPlain
    args = get_call_arg_uops(call)
    sources = []   # per kernel argument: the index of a call input, or a Buffer of the capture's own
    for i in program.arg.globals:
      if args[i].op is Ops.PARAM: sources.append(args[i].arg.slot); continue
      if any(u.op is Ops.PARAM for u in args[i].toposort()) or not isinstance(buffer := args[i].buffer, Buffer): raise _NotPlain
      sources.append(buffer.ensure_allocated())
    info = program.arg
    # (launch sizes and Variable values: computed here where no bound Variable changes them, else per launch)
    static = all(isinstance(x, int) for x in (*info.global_size, *(info.local_size or ())))
    sizes = info.launch_dims({}) if static else None
    names = tuple(None if k.expr in info.runtimevars else k.expr for k in info.vars)
    return get_runtime(device, program), tuple(sources), info, sizes, names

  def __call__(self, layout: Layout, var_vals: dict):
    if self.launches is None or DEBUG >= 2 or PROFILE:
      self.captured([t.uop.base for t in layout.buffers], var_vals)
      return
    inputs = layout.memory()
    for runtime, sources, info, sizes, names in self.launches:
      global_size, local_size = sizes or info.launch_dims(var_vals)
      runtime(*[inputs[s] if isinstance(s, int) else s._buf for s in sources], global_size=global_size, local_size=local_size,
              vals=tuple(None if n is None else var_vals[n] for n in names))
    GlobalCounters.kernel_count += self.kernel_count
    GlobalCounters.global_ops += sym_infer(self.ops, var_vals)
    GlobalCounters.global_mem += sym_infer(self.mem, var_vals)


class _NotPlain(Exception):
  """A capture that Replay leaves to CapturedJit."""


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
    self.jits = {}       # layout positions -> TinyJit, captured
    self.replays = {}    # layout positions -> Replay of that TinyJit's kernels

  def __call__(self, tensors, var_vals=None): self.run(layout(tensors), var_vals)

  def run(self, layout: Layout, var_vals=None):
    replay = self.replays.get(layout.positions)
    if replay is not None: return replay(layout, {v.expr: x for v, x in var_vals.items()} if var_vals else {})
    jit = self._capture(layout, var_vals)
    if jit.captured is not None:   # (None under JIT=0: it ran uncaptured)
      self.jits[layout.positions], self.replays[layout.positions] = jit, Replay(jit.captured, self.device)

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
