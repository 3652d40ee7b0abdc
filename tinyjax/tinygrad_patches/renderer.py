"""Overrides on tinygrad renderer instances, never on their classes (install() applies them; importing changes nothing).

tinygrad builds a renderer lazily, once per device and Target (`Compiled._select_renderer`, cached in the device's
`cached_renderer` dict), and opens devices lazily (`Device[...]`), with no hook for either. So the Device singleton gets
an opener of its own (an attribute of that instance) that gives each device a `cached_renderer` which adopts every
renderer put in it: `adopt()` sets instance attributes only. Renderers made any other way (CPUDevice's own ClangRenderer
for its signal/wait programs, one built by hand) keep tinygrad's behaviour.

Kernels are compiled in worker processes (tinygrad.engine.worker) that import tinygrad but never tinyjax, from a pickled
renderer. An adopted renderer pickles as a call that loads this package in the worker under a name of its own (so
tinyjax/__init__.py, and jax with it, stay out), installs the same patches there and rebuilds the renderer through
adopt(): the worker compiles with the same rules and overrides as this process.
"""
import os
import struct
import types

from tinygrad.dtype import AddrSpace, dtypes, float_to_bf16
from tinygrad.helpers import strip_parens
from tinygrad.uop.ops import Ops, PatternMatcher, UPat

WORKER_PACKAGE = "tinyjax_tinygrad_patches"   # this package's name in a compile worker


# ---- C-style renderers: a float's right operand keeps its parentheses ---------------------------------------------
# tinygrad's base_rewrite strips the parentheses of an operand of the same associative op, so x+(y+z) prints as x+y+z,
# which C reads as (x+y)+z: 1e8+(-1e8+1) gave 1 instead of 0, 2e38*(4*0.25) gave inf. For floats only the left operand
# loses them. Placed before the class's rules and declining everywhere else, so a renderer's own rules keep their place.
def _alu_left_only(ctx, x):
  if not (x.op in (Ops.ADD, Ops.MUL) and dtypes.is_float(x.dtype) and any(v.op is x.op for v in x.src[1:])): return None
  return ctx.code_for_op[x.op](*[strip_parens(ctx[v]) if i == 0 and v.op is x.op else ctx[v] for i, v in enumerate(x.src)],
                               x.dtype)


ALU_LEFT_ONLY = PatternMatcher([(UPat((Ops.ADD, Ops.MUL), name="x"), _alu_left_only)])


# ---- the C renderer (CPU device): bfloat16 as a 16-bit integer ----------------------------------------------------
# tinygrad's C renderer already converts bf16 <-> f32 with bit operations (pm_manual_bf16_cast) and widens bf16 ALU ops
# to f32, so `__bf16` is left only as the storage type of buffers and registers. That is enough to break clang-19 on an
# x86 CPU without AVX512-BF16: its backend promotes a bf16 load to f32 and truncates it back for the store through a
# call of the compiler-rt builtin __truncsfbf2, which tinygrad's ELF loader cannot link (RuntimeError, e.g. cumsum of
# bf16 [0, 0]), and it dies on some bf16 vector shuffles ("Cannot select ... v32bf16", e.g. transposing a bf16
# [2,4,4]). Rendering bf16 as `unsigned short` (as tinygrad's OpenCL renderer does) moves the same bits with integer
# loads, stores and shuffles; constants are rendered as their bit pattern, since `(unsigned short)(1.5f)` would convert.
BF16 = "unsigned short"
BF16_CONSTANTS = PatternMatcher([
  (UPat.cvar("c").cast(dtypes.bfloat16),   # the bits of the bf16 value (round to nearest even; NaN and inf kept)
   lambda ctx, c: f"((unsigned short){struct.unpack('I', struct.pack('f', float_to_bf16(c.val)))[0] >> 16}u)"),
])


# ---- the C renderer: unsigned -> float conversions without uitofp -------------------------------------------------
# clang's SLP vectorizer (which packs straight-line scalar code into vector instructions) miscompiles them when their
# operand was sign-extended: clang 19 turns `(float)(unsigned int)(signed char)x` into a zero extension when 4 to 16 of
# them sit side by side, so int8 -1 -> uint32 -> float32 gives 255 instead of 4294967295 (at -O2, with or without
# -march=native); clang 22 does it for `(float)(unsigned long)(short)x` with -march=native. Turning the pass off halved
# the speed of float kernels (the prototype CNN: 525 -> 1,114 ms on a 2-core CPU), so such conversions are written
# without `uitofp`: uint32 as two exact 16-bit halves summed once (one rounding: the correctly rounded result), uint64 as
# compiler-rt does (a signed conversion, or half the value with a sticky low bit, doubled, past 2**63).
UINT_TO_FLOAT = PatternMatcher([
  (UPat(Ops.CAST, (dtypes.float32, dtypes.float64), src=(UPat.var("v", dtypes.uint32),), name="x"),
   lambda ctx, x, v: None if x.max_numel() > 1 and x.addrspace is AddrSpace.REG else
     f"(({ctx.render_type(x)})({ctx[v]} >> 16u) * 65536.0{'f' if x.dtype == dtypes.float32 else ''} + ({ctx.render_type(x)})({ctx[v]} & 0xFFFFu))"),
  (UPat(Ops.CAST, (dtypes.float32, dtypes.float64), src=(UPat.var("v", dtypes.uint64),), name="x"),
   lambda ctx, x, v: None if x.max_numel() > 1 and x.addrspace is AddrSpace.REG else
     (lambda t, u: f"((long long)({u}) >= 0 ? ({t})(long long)({u}) : ({t})(long long)((({u}) >> 1) | (({u}) & 1ull)) * 2)")
     (ctx.render_type(x), ctx[v])),
])


def half_in_float():
  """The C renderer's float16 is clang's `__fp16`, a storage-only type: C promotes it to float for arithmetic and rounds
  only where a value is stored or assigned, so `(a + b) * 0.0f` with a + b past 65504 gives 0 instead of XLA's NaN (XLA
  rounds every f16 op). tinygrad's own rule for bf16 (each ALU op computed in float, then cast back) does it for f16."""
  from tinygrad.renderer.cstyle import create_non_native_float_pats
  return create_non_native_float_pats((dtypes.half,), casting=False)


# ---- adoption ------------------------------------------------------------------------------------------------------

def adopt(r, active: tuple[str, ...]):
  """Apply the active renderer patches to renderer r, as attributes of r; idempotent. Returns r."""
  from tinygrad.renderer.cstyle import ClangRenderer, CStyleLanguage
  if "_tinyjax_patches" in r.__dict__: return r
  def on(name, cls=object): return name in active and isinstance(r, cls)
  rules = []
  if on("clang-bf16", ClangRenderer): r.type_map, rules = {**r.type_map, dtypes.bfloat16: BF16}, rules + BF16_CONSTANTS.patterns
  if on("clang-uint-to-float", ClangRenderer): rules += UINT_TO_FLOAT.patterns
  if on("clang-f16-rounding", ClangRenderer): r.extra_matcher = half_in_float() + r.extra_matcher
  if on("c-float-parens", CStyleLanguage): rules += ALU_LEFT_ONLY.patterns
  if rules: r.string_rewrite = PatternMatcher(rules) + r.string_rewrite   # first, then the renderer's own
  if on("compile-workers"): r.__reduce_ex__ = types.MethodType(_reduce_ex, r)   # pickle looks it up on the instance
  r._tinyjax_patches = active
  return r


def _reduce_ex(r, protocol):
  """r pickles as eval(WORKER, ...): the process that unpickles it installs the same patches, then rebuilds r."""
  here = os.path.dirname(os.path.abspath(__file__))
  return eval, (WORKER, {"boot": BOOT, "cls": type(r), "target": r.target, "active": r._tinyjax_patches, "name": WORKER_PACKAGE,
                         "init": os.path.join(here, "__init__.py"), "path": here})


# run where a renderer is unpickled: this package as tinyjax imported it (a pickle read back in tinyjax's own process),
# or as loaded before in this worker, or loaded now from its files
BOOT = """import importlib.util, sys
patches = sys.modules.get("tinyjax.tinygrad_patches") or sys.modules.get(name)
if patches is None:
  spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
  patches = sys.modules[name] = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(patches)
"""
WORKER = "exec(boot) or patches.rebuild(cls, target, active)"


class _AdoptingCache(dict):
  """A device's cached_renderer: every renderer tinygrad caches in it is adopted first."""
  active: tuple[str, ...] = ()
  def __setitem__(self, key, r): super().__setitem__(key, adopt(r, self.active))


def adopt_device(dev, active: tuple[str, ...]):
  cache = getattr(dev, "cached_renderer", None)
  if isinstance(cache, dict) and not isinstance(cache, _AdoptingCache):
    new = _AdoptingCache()
    new.active = active
    for key, r in cache.items(): new[key] = r
    dev.cached_renderer = new
  return dev


def find_devices():
  """The Device singleton, its class's cached opener, and the Compiled class that fills cached_renderer."""
  from tinygrad.device import Compiled, Device, _Device
  opener = _Device.__dict__.get("_Device__get_canonicalized_item")
  if opener is None or "cached_renderer" not in Compiled.__init__.__code__.co_names or \
     "cached_renderer" not in Compiled._select_renderer.__code__.co_names:
    raise LookupError("tinygrad.device: _Device.__get_canonicalized_item or Compiled.cached_renderer is gone")
  return [Device, opener, Compiled]


def hook_devices(active: tuple[str, ...]) -> None:
  """Every device, opened before or after this call, adopts its renderers."""
  Device, opener, _ = find_devices()
  if "_Device__get_canonicalized_item" in Device.__dict__: return
  def open_device(ix): return adopt_device(opener(Device, ix), active)
  Device._Device__get_canonicalized_item = open_device   # an attribute of the instance: __getitem__ calls self.<it>
  for ix in list(Device._opened_devices): open_device(ix)


def find_clang():
  from tinygrad.renderer import cstyle
  if not hasattr(cstyle, "create_non_native_float_pats") or \
     not {"type_map", "extra_matcher", "string_rewrite", "render_type"} <= set(dir(getattr(cstyle, "ClangRenderer", None))):
    raise LookupError("tinygrad.renderer.cstyle: ClangRenderer's type_map/extra_matcher/string_rewrite/render_type, "
                      "create_non_native_float_pats")
  return [cstyle.ClangRenderer]


def find_alu_rule():
  """base_rewrite's ALU rule, the one whose parentheses _alu_left_only corrects (tinygrad 0.14.0, renderer/cstyle.py)."""
  import linecache
  from tinygrad.renderer import cstyle
  piece = '(UPat(GroupOp.ALU, name="x"), lambda ctx,x: ctx.code_for_op[x.op]('
  rules = [f for _, f in cstyle.base_rewrite.patterns if isinstance(f, types.FunctionType) and
           piece in linecache.getline(f.__code__.co_filename, f.__code__.co_firstlineno)]
  nxt = rules and linecache.getline(rules[0].__code__.co_filename, rules[0].__code__.co_firstlineno + 1)
  if len(rules) != 1 or "strip_parens(ctx[v]) if v.op == x.op" not in nxt:
    raise LookupError("tinygrad.renderer.cstyle.base_rewrite: the ALU rule that strips an operand's parentheses")
  return [cstyle.base_rewrite, rules[0], cstyle.CStyleLanguage]


def find_workers():
  from tinygrad.engine import realize, worker
  from tinygrad.renderer import Renderer
  if not (hasattr(realize, "_compile_kernel") and hasattr(worker, "get_worker_pool") and "target" in Renderer.__init__.__code__.co_names):
    raise LookupError("tinygrad.engine.realize._compile_kernel / engine.worker.get_worker_pool / Renderer.target")
  return [realize._compile_kernel, worker.get_worker_pool, Renderer]
