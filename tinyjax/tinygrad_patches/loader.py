"""tinygrad's CPU device loads each kernel's object file itself (tinygrad.runtime.support.elf.jit_loader) into an mmap of
its own. On x86-64 a kernel's call of a library function (clang emits `call fmaxf` / `call fminf` for float max/min,
e.g. scatter-max: x.at[i].max(v)) is an R_X86_64_PLT32 relocation: a signed 32-bit displacement from the call to the
function. tinygrad writes tgt-ploc-base with no range check (and no PLT), while the kernel's mmap lands wherever the
kernel finds room: once a process holds a few GiB of mappings (a long pytest-xdist worker: tinygrad's LRU allocator
never unmaps a freed buffer), a new kernel's page lies more than 2 GiB below libm and the displacement wraps. The call
then jumps to a wild address: a segfault inside a freshly captured kernel, only in processes that have grown (more than
4 GiB away, struct.pack raises instead). On AArch64 tinygrad already builds a trampoline for an out-of-range CALL26.

The patch does the same on x86-64: where a PLT32 displacement does not fit, the call goes to a stub appended to the
image (`jmp *0(%rip)` and the callee's 64-bit address). Kernels whose calls all fit load exactly as before.
"""
import struct

JMP_RIP = b"\xff\x25\x00\x00\x00\x00"   # jmp *0(%rip): jumps to the 8-byte address that follows
STUB = len(JMP_RIP) + 8


def find():
  from tinygrad.runtime import ops_cpu
  from tinygrad.runtime.autogen import libc
  from tinygrad.runtime.support import elf
  if getattr(ops_cpu, "jit_loader", None) is None or "jit_loader" not in ops_cpu.CPUProgram._load.__code__.co_names:
    raise LookupError("tinygrad.runtime.ops_cpu: CPUProgram._load no longer calls the module's jit_loader")
  return [ops_cpu, elf.elf_loader, elf.jit_loader, libc.R_X86_64_PLT32, libc.R_X86_64_PC32]


def fits(d: int) -> bool: return -2**31 <= d < 2**31


def make_loader(elf_loader, jit_loader, plt32, pc32):
  def far_call_loader(obj: bytes, base: int = 0, link_libs=None) -> bytes:
    """jit_loader, with a stub for each PLT32 call whose callee is out of a rel32's reach."""
    image, _, relocs = elf_loader(obj, link_libs=link_libs)
    if all(t != plt32 or fits(tgt + a - ploc - base) for ploc, tgt, t, a in relocs):
      return jit_loader(obj, base=base, link_libs=link_libs)   # tinygrad's own result
    if any(t not in (plt32, pc32) for _, _, t, _ in relocs):
      raise RuntimeError(f"kernel calls a function out of rel32 reach and has relocations besides PLT32/PC32: {relocs}")
    image = bytearray(image)
    stubs: dict[int, int] = {}   # callee -> offset of its stub in the image
    for ploc, tgt, t, a in relocs:
      if t == plt32 and not fits(tgt + a - ploc - base) and tgt not in stubs:
        image += b"\0" * (-len(image) % 8)
        stubs[tgt] = len(image)
        image += JMP_RIP + struct.pack("<Q", tgt)
    for ploc, tgt, t, a in relocs:
      if t == pc32: d = tgt + a - ploc                              # image-relative target (as tinygrad computes it)
      elif tgt in stubs: d = stubs[tgt] + a - ploc                  # the call goes to its stub, in the image
      else: d = tgt + a - ploc - base                               # absolute target within reach
      assert fits(d), f"relocation at {ploc:#x} out of rel32 reach: {d:#x}"
      image[ploc:ploc + 4] = struct.pack("<i", d)
    # CPUProgram maps len(obj) bytes: the image and its stubs are smaller than the object file, which also holds the
    # symbol table and a 24-byte relocation entry per call
    assert len(image) <= len(obj), f"kernel image with call stubs ({len(image)} bytes) exceeds its object file ({len(obj)})"
    return bytes(image)
  far_call_loader.original = jit_loader
  return far_call_loader


def apply(targets, active):
  ops_cpu, elf_loader, jit_loader, plt32, pc32 = targets
  if getattr(ops_cpu.jit_loader, "original", None) is None:
    ops_cpu.jit_loader = make_loader(elf_loader, jit_loader, plt32, pc32)
