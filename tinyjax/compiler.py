"""A compiler flag tinyjax needs on tinygrad's CPU device.

clang's SLP vectorizer (which packs straight-line scalar code into vector instructions) miscompiles conversions that
tinygrad's C renderer emits: clang 19 turns `(float)(unsigned int)(signed char)x` into a zero extension when 4 to 16
of them sit side by side, so int8 -1 -> uint32 -> float32 gives 255 instead of 4294967295 (at -O2, with or without
-march=native); clang 22 still does it for `(float)(unsigned long)(short)x` with -march=native. tinygrad vectorizes
explicitly (float4 types in the C source), so turning the pass off costs little and makes those kernels correct.

The flag rides in the renderer's target: ClangCompiler turns each feature `f` after the CPU name into `-mf`, so
`llvm=-vectorize-slp=false` becomes `-mllvm=-vectorize-slp=false`. The target is what tinygrad pickles to the worker
processes that compile kernels in parallel (which never import tinyjax), and it is part of the compile cache key, so
kernels compiled without the flag are not reused. Only for clang: tinygrad also runs with CC=gcc, which has no -mllvm
and no SLP vectorizer at -O2.
"""
import os
from dataclasses import replace

from tinygrad.renderer.cstyle import ClangRenderer

FEATURE = "llvm=-vectorize-slp=false"


def _with_feature(init):
  def __init__(self, target):
    is_clang = "clang" in os.path.basename(os.environ.get("CC", "clang"))   # (CC may be gcc, which has no -mllvm)
    if is_clang and target.arch and FEATURE not in target.arch.split(","): target = replace(target, arch=f"{target.arch},{FEATURE}")
    init(self, target)
  __init__.tinyjax_feature = True
  return __init__


if not getattr(ClangRenderer.__init__, "tinyjax_feature", False): ClangRenderer.__init__ = _with_feature(ClangRenderer.__init__)


# ---- bfloat16 as a 16-bit integer in the C source ---------------------------------------------------------------
# tinygrad's C renderer already converts bf16 <-> f32 with bit operations (pm_manual_bf16_cast) and widens bf16 ALU ops
# to f32, so `__bf16` is left only as the storage type of buffers and registers. That is enough to break clang-19 on an
# x86 CPU without AVX512-BF16: its backend promotes a bf16 load to f32 and truncates it back for the store through a
# call of the compiler-rt builtin __truncsfbf2, which tinygrad's ELF loader cannot link (RuntimeError, e.g. cumsum of
# bf16 [0, 0]), and it dies on some bf16 vector shuffles ("Cannot select ... v32bf16", e.g. transposing a bf16
# [2,4,4]). Rendering bf16 as `unsigned short` (as tinygrad's OpenCL renderer does) moves the same bits with integer
# loads, stores and shuffles; constants are rendered as their bit pattern, since `(unsigned short)(1.5f)` would convert.
# The renderer is pickled to tinygrad's compile workers as (class, target), and the workers never import tinyjax, so
# the two overrides are instance attributes carried in the pickle's state (PatternMatcher pickles its lambdas by code;
# tinygrad registers code objects with copyreg).
import struct   # noqa: E402

from tinygrad.dtype import dtypes, float_to_bf16   # noqa: E402
from tinygrad.uop.ops import Ops, PatternMatcher, UPat   # noqa: E402

BF16 = "unsigned short"
_bf16_rewrite = PatternMatcher([
  (UPat.cvar("c").cast(dtypes.bfloat16),   # the bits of the bf16 value (round to nearest even; NaN and inf kept)
   lambda ctx, c: f"((unsigned short){struct.unpack('I', struct.pack('f', float_to_bf16(c.val)))[0] >> 16}u)"),
  # then the class's own rules: tinygrad's base_rewrite does not pickle (its lambdas use dtype.truncate's lambdas)
  (UPat(tuple(Ops), name="x"), lambda ctx, x: type(ctx).string_rewrite.rewrite(x, ctx=ctx)),
])


def _with_bf16_as_ushort(init):
  def __init__(self, target):
    init(self, target)
    if self.type_map.get(dtypes.bfloat16) != BF16:
      self.type_map = {**self.type_map, dtypes.bfloat16: BF16}
      self.string_rewrite = _bf16_rewrite
  __init__.tinyjax_bf16 = True
  return __init__


def _reduce(self): return self.__class__, (self.target,), {k: self.__dict__[k] for k in ("type_map", "string_rewrite") if k in self.__dict__}


if not getattr(ClangRenderer.__init__, "tinyjax_bf16", False):
  ClangRenderer.__init__ = _with_bf16_as_ushort(ClangRenderer.__init__)
  ClangRenderer.__reduce__ = _reduce
