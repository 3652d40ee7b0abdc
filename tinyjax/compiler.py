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
