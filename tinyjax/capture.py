"""TinyJit captures replayed on new buffers: the program's (decorator.py) and the loops' (control_flow.py).

A capture is made on the first call (cnt=1) and later replayed directly with `captured(buffers, var_vals)`, skipping
TinyJit.__call__'s per-input view rewrite (~0.2 ms an input): every input is first made a whole realized buffer
(`whole_buffers`), so the only thing that differs between calls is which buffers, and each buffer is passed once
(`dedupe`; TinyJit refuses duplicates), the function rebuilding the argument list from `positions`.
"""
import math

from tinygrad import Tensor
from tinygrad.helpers import Context
from tinygrad.uop.ops import Ops, buffers


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


def dedupe(tensors):
  """The distinct buffers, and for each tensor the position of its buffer (or, for a tensor of no elements, which
  has no buffer, its shape and dtype)."""
  unique, index, positions = [], {}, []
  for t in tensors:
    if math.prod(t.shape) == 0: positions.append((tuple(t.shape), t.dtype)); continue
    if id(t.uop.base) not in index: index[id(t.uop.base)] = len(unique); unique.append(t)
    positions.append(index[id(t.uop.base)])
  return unique, tuple(positions)


def rebuild(args, positions, device):
  """The argument list `dedupe` took apart, inside the captured function."""
  return [args[p] if isinstance(p, int) else Tensor.empty(*p[0], dtype=p[1], device=device) for p in positions]


def capture(jit, *args):
  """The first call of a TinyJit made with cnt=1: capture, then run the capture.

  A device's graph API can refuse a batch of kernels that runs fine when they are launched one by one (seen on CUDA:
  cuGraphAddKernelNode answered 'invalid argument' for the 102 kernels of an embedding's scatter-add gradient, which
  run correctly with JIT=2). Graph batching only saves launch time, so such a function is captured again without it.
  Outputs are fresh buffers and no captured kernel writes its inputs, so running the kernels twice is harmless."""
  try: return jit(*args)
  except RuntimeError:
    if jit.captured is None: raise   # (it failed before the capture was built: not the graph)
    jit.reset()
    jit.cnt = 1
    with Context(JIT=2): return jit(*args)


def replay(jit, buffers, var_vals=None):
  """Run a capture on whole buffers laid out as at capture time (same shapes, dtypes and sharing)."""
  jit.captured([t.uop.base for t in buffers], var_vals or {})
