"""What tinyjax changes in tinygrad's C renderer (the CPU device's kernels), and why.

1. Unsigned -> float conversions. clang's SLP vectorizer (which packs straight-line scalar code into vector
   instructions) miscompiles them when their operand was sign-extended: clang 19 turns `(float)(unsigned int)(signed
   char)x` into a zero extension when 4 to 16 of them sit side by side, so int8 -1 -> uint32 -> float32 gives 255
   instead of 4294967295 (at -O2, with or without -march=native); clang 22 does it for `(float)(unsigned long)(short)x`
   with -march=native. Turning the pass off (-mllvm -vectorize-slp=false, an earlier fix) halved the speed of float
   kernels (the prototype CNN: 525 -> 1,114 ms on the 2-core CPU), so instead such conversions are written without
   `uitofp`: uint32 as two exact 16-bit halves summed once (one rounding: the correctly rounded result), uint64 as
   compiler-rt does (a signed conversion, or half the value with a sticky low bit, doubled, past 2**63).
2. bfloat16 as a 16-bit integer, and float16 rounded after every op, below.
3. Every renderer's pickle (any device) also carries ieee.py's patch of tinygrad's float-unsafe rewrite rules.

The overrides live on the renderer instance and travel in its pickle: tinygrad compiles kernels in worker processes
that never import tinyjax, rebuilding the renderer from its target (PatternMatcher pickles its lambdas by code;
tinygrad registers code objects with copyreg).
"""
import struct

from tinygrad.dtype import AddrSpace, dtypes, float_to_bf16
from tinygrad.renderer import Renderer
from tinygrad.renderer.cstyle import ClangRenderer, create_non_native_float_pats
from tinygrad.uop.ops import Ops, PatternMatcher, UPat

from . import float_rules as ieee


# ---- bfloat16 as a 16-bit integer in the C source ---------------------------------------------------------------
# tinygrad's C renderer already converts bf16 <-> f32 with bit operations (pm_manual_bf16_cast) and widens bf16 ALU ops
# to f32, so `__bf16` is left only as the storage type of buffers and registers. That is enough to break clang-19 on an
# x86 CPU without AVX512-BF16: its backend promotes a bf16 load to f32 and truncates it back for the store through a
# call of the compiler-rt builtin __truncsfbf2, which tinygrad's ELF loader cannot link (RuntimeError, e.g. cumsum of
# bf16 [0, 0]), and it dies on some bf16 vector shuffles ("Cannot select ... v32bf16", e.g. transposing a bf16
# [2,4,4]). Rendering bf16 as `unsigned short` (as tinygrad's OpenCL renderer does) moves the same bits with integer
# loads, stores and shuffles; constants are rendered as their bit pattern, since `(unsigned short)(1.5f)` would convert.

BF16 = "unsigned short"
_c_rewrite = PatternMatcher([
  (UPat.cvar("c").cast(dtypes.bfloat16),   # the bits of the bf16 value (round to nearest even; NaN and inf kept)
   lambda ctx, c: f"((unsigned short){struct.unpack('I', struct.pack('f', float_to_bf16(c.val)))[0] >> 16}u)"),
  # uint32 -> float32/float64 as two exact halves and one rounding add (1. above)
  (UPat(Ops.CAST, (dtypes.float32, dtypes.float64), src=(UPat.var("v", dtypes.uint32),), name="x"),
   lambda ctx, x, v: None if x.max_numel() > 1 and x.addrspace is AddrSpace.REG else
     f"(({ctx.render_type(x)})({ctx[v]} >> 16u) * 65536.0{'f' if x.dtype == dtypes.float32 else ''} + ({ctx.render_type(x)})({ctx[v]} & 0xFFFFu))"),
  # uint64 -> float32/float64 as compiler-rt does it: a signed conversion, halving (sticky low bit) past 2**63
  (UPat(Ops.CAST, (dtypes.float32, dtypes.float64), src=(UPat.var("v", dtypes.uint64),), name="x"),
   lambda ctx, x, v: None if x.max_numel() > 1 and x.addrspace is AddrSpace.REG else
     (lambda t, u: f"((long long)({u}) >= 0 ? ({t})(long long)({u}) : ({t})(long long)((({u}) >> 1) | (({u}) & 1ull)) * 2)")
     (ctx.render_type(x), ctx[v])),
  # then the class's own rules: tinygrad's base_rewrite does not pickle (its lambdas use dtype.truncate's lambdas)
  (UPat(tuple(Ops), name="x"), lambda ctx, x: type(ctx).string_rewrite.rewrite(x, ctx=ctx)),
])


# ---- float16 rounded after every op -----------------------------------------------------------------------------
# The C renderer's float16 is clang's `__fp16`, a storage-only type: C promotes it to float for arithmetic and rounds
# only where a value is stored or assigned, so `(a + b) * 0.0f` with a + b past 65504 gives 0 instead of XLA's NaN (XLA
# rounds every f16 op). tinygrad's own rule for bf16 (each ALU op computed in float, then cast back) does it for f16 too.
_HALF_IN_FLOAT = create_non_native_float_pats((dtypes.half,), casting=False)


def _with_bf16_as_ushort(init):
  def __init__(self, target):
    init(self, target)
    if self.type_map.get(dtypes.bfloat16) != BF16:
      self.type_map = {**self.type_map, dtypes.bfloat16: BF16}
      self.string_rewrite = _c_rewrite
      self.extra_matcher = _HALF_IN_FLOAT + type(self).extra_matcher
  __init__.tinyjax_bf16 = True
  return __init__


def _reduce(self):
  """A renderer pickles as its target plus tinyjax's overrides and, first, the float-rule patch of ieee.py, so that the
  compile worker that unpickles it runs that patch before compiling anything."""
  return self.__class__, (self.target,), {"tinyjax_ieee": ieee.IN_WORKER,
                                          **{k: self.__dict__[k] for k in ("type_map", "string_rewrite", "extra_matcher") if k in self.__dict__}}


if not getattr(ClangRenderer.__init__, "tinyjax_bf16", False):
  ClangRenderer.__init__ = _with_bf16_as_ushort(ClangRenderer.__init__)
  ClangRenderer.__reduce__ = Renderer.__reduce__ = _reduce
