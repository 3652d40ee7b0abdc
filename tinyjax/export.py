"""Export the kernels a tiny function runs: "compile JAX to C".

`kernels(f, *args)` builds the Program for that call (`f.lower`, which runs the call once if it was not built yet) and
returns the kernels its TinyJit capture replays, in launch order: name, device, source code as the device's renderer
wrote it (C for CPU, OpenCL C for CL, CUDA C for CUDA, Metal for METAL, WGSL for WEBGPU), global and local sizes.
`.source()` is all of them as one source file, `.save(path)` writes it, `.listing()` is a table like DEBUG=2 prints.
Copies between buffers are not kernels: skipped. tinygrad names a kernel by its loop sizes, so two different kernels
can share a name: the later one is renamed `<name>n<k>`, in its source too.
"""
import dataclasses
import pathlib
import re

from tinygrad import Device
from tinygrad.helpers import to_tuple
from tinygrad.uop.ops import Ops

from .decorator import leaf_to_tensor


@dataclasses.dataclass(frozen=True)
class Kernel:
  name: str             # the function's name in `src`
  device: str
  src: str
  global_size: tuple    # on CPU, global_size[0] threads each call the function with their core_id
  local_size: tuple | None
  buffers: int          # how many buffer arguments come first
  vars: tuple           # the names of the int arguments after them (symbolic sizes, core_id)

  def __str__(self): return f"/* {self.name} on {self.device}: global {self.global_size}, local {self.local_size} */\n{self.src}"


class Kernels(list):
  """The kernels of one program in launch order (a kernel launched twice is listed twice)."""

  def source(self) -> str:
    """Every distinct kernel once, as one source file, headed by the flags tinygrad compiles them with (C on CPU)."""
    distinct = {k.src: k for k in self}.values()
    if not distinct: return ""
    flags = getattr(Device[self[0].device].renderer.compiler, "args", None)
    head = f"/* {len(distinct)} kernels tinygrad rendered for {self[0].device}" + (f"; compiled there with $CC -O2 -ffreestanding "
           f"-fno-math-errno {' '.join(flags)}" if flags is not None else "") + " */\n"
    return head + "\n".join(str(k) for k in distinct)

  def save(self, path) -> pathlib.Path:
    (path := pathlib.Path(path)).write_text(self.source())
    return path

  def listing(self) -> str:
    width = max([len(k.name) for k in self] + [4])
    rows = [f"{i:4d} {k.device:7s} {k.name:{width}s} global {str(k.global_size):14s} local {str(k.local_size):14s} bufs {k.buffers}"
            for i, k in enumerate(self)]
    return "\n".join(rows + [f"{len(self)} launches of {len({k.src for k in self})} distinct kernels"])


def kernels(fn, *args, **kwargs) -> Kernels:
  """The kernels `fn(*args, **kwargs)` runs, for a `tiny` function with jit=True (the program is built if needed)."""
  program = fn.lower(*args, **kwargs)
  if not program.use_jit: raise ValueError("tinyjax.kernels: tiny(f, jit=False) captures no kernels; use jit=True")
  if program.host_sync:
    raise NotImplementedError("tinyjax.kernels: this program reads values on the host while it runs (a while_loop, a scan "
                              "longer than 8 steps, or a host callback), so it runs in captured stages around those reads and has no single "
                              "kernel capture to export")
  _, leaves, sigs, _ = fn._signature_of(args, kwargs, program.device)
  jit = program.captured_for([leaf_to_tensor(x, s, program.device) for x, s in zip(leaves, sigs)])
  if jit is None: return Kernels()   # every output is empty: nothing ran
  out, names = Kernels(), {}   # tinygrad names kernels by shape: two different kernels can share a name
  for prg, call in _programs(jit.captured.linear):
    src, name = next(s.arg for s in prg.src if s.op is Ops.SOURCE), prg.arg.function_name
    if (unique := names.setdefault(src, name if name not in names.values() else f"{name}n{len(names)}")) != name:
      src = re.sub(rf"\b{name}\b", unique, src)
    for device in to_tuple(call.src[1].device):
      local = None if prg.arg.local_size is None else tuple(prg.arg.local_size)
      out.append(Kernel(unique, device, src, tuple(prg.arg.global_size), local, len(prg.arg.globals), tuple(v.expr for v in prg.arg.vars)))
  return out


def _programs(linear):
  """(PROGRAM, CALL) for each kernel launch in a captured linear, graph batches (CUDA graphs, ...) opened up."""
  for call in linear.src:
    ast = call.src[0]
    if ast.op is Ops.PROGRAM: yield ast, call
    elif ast.op is Ops.CUSTOM_FUNCTION and ast.arg == "graph": yield from _programs(ast.src[0])
    elif ast.op is Ops.CUSTOM_FUNCTION and ast.arg == "hcq": yield ast.src[0], call
