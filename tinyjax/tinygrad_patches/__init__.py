"""Every change tinyjax makes to tinygrad (written for tinygrad 0.14.0), listed in MANIFEST, applied by install().

`import tinyjax` calls install(); importing this package or its modules changes nothing by itself. install() first
checks that the installed tinygrad still has every target (a RuntimeError naming those it lacks), then applies the
patches once (a second call does nothing). installed() lists those applied. They are of these kinds:

- float rewrites (float_rules.py): tinygrad's symbolic rules written for index arithmetic decline on floats. These are
  process-wide, like tinygrad's rules themselves: any tinygrad code in the process gets XLA's float semantics.
- renderer overrides (renderer.py): attributes set on the renderer instances of tinygrad's devices, never on classes.
- transport: renderers pickle so that tinygrad's compile worker processes apply the same patches before compiling.
- threads (diskcache.py): tinygrad's disk cache gets an sqlite connection per thread (tinygrad's is bound to the thread
  that opened it). The rest of tinygrad's state is process-wide: tinyjax serializes its use with tinyjax.tinygrad_lock.

TINYJAX_NO_TINYGRAD_PATCHES=1 (or `all`) turns every patch off: install() then leaves tinygrad untouched. A comma-separated
list of MANIFEST names turns off just those (a patch that needs one turned off goes with it). Without them, results
differ from jax.jit wherever tinygrad's own semantics differ from XLA's, silently:
- x*0 is 0 for x = NaN or inf (XLA: NaN), and -2*0 is +0.0; x/x is 1 for x = 0, inf or NaN (XLA: NaN);
  (x*y)/y is x even where y is 0 or inf; -(x+y) and -(x+c) lose the sign of a zero result (-(1 + -1) is +0.0);
- reassociation and other roundings: x*c0+x*c1 -> x*(c0+c1), (x+c)+y -> (x+y)+c ((2e38*2)*0.25 is 1e38, not inf),
  1/(x*c) -> (1/c)*(1/x), x/(1+x) -> 1-1/(1+x) (1e-10/(1+1e-10) is 0 in float32);
- C-style renderers (CPU, OpenCL, CUDA, Metal) print x+(y+z) as x+y+z, which C evaluates as (x+y)+z (1e8+(-1e8+1) is 1);
- on the CPU device (clang): float16 rounds only where stored ((a+b)*0 with a+b past 65504 is 0, not NaN); bfloat16
  kernels may fail to link or crash clang-19 (__truncsfbf2, "Cannot select ... v32bf16"); unsigned -> float
  conversions next to each other can be miscompiled by clang's SLP vectorizer (int8 -1 -> uint32 -> float32 gives 255);
- kernels compiled in tinygrad's worker processes would get tinygrad's rules even with the patches on in this process.
- on an x86-64 CPU device, a kernel calling libm (fmaxf/fminf: float scatter-max/min) segfaults once the process holds
  enough mappings that the kernel lands over 2 GiB from libm (tinygrad's loader writes the call's rel32 unchecked).
Integer results, PRNG bits and shapes are unaffected. Rules that keep their compensation without help (log1p, expm1,
asinh) are written not to depend on these patches.
"""
import os
from dataclasses import dataclass, field
from typing import Callable

from . import diskcache, float_rules, loader, renderer

ENV = "TINYJAX_NO_TINYGRAD_PATCHES"
TINYGRAD = "0.14.0"
ELEMENTWISE = "tests/rules/test_elementwise.py"
PATCHES = "tests/test_tinygrad_patches.py"


@dataclass(frozen=True)
class Patch:
  name: str
  target: str                     # the tinygrad object changed
  why: str                        # the wrong answer it prevents, as measured
  test: str                       # a test node id that fails without it
  how: str                        # instance attribute or code swap, and why a code swap
  find: Callable[[], list]        # the target objects; LookupError when this tinygrad lacks them
  apply: Callable[[list, tuple], None] = field(repr=False)   # (targets, active names)
  needs: tuple[str, ...] = ()
  tinygrad: str = TINYGRAD


CODE_SWAP = ("the rule function's code swapped for a guard (float_rules.py: one function object is shared by every "
             "matcher built from sym, so nothing else reaches them all)")


def _guarded(name, pieces, why, float_result="None", dtype="float32", test=None):
  """A patch of the sym rules whose source lines contain pieces, proved by REWRITTEN[name] in test_elementwise."""
  def apply(fxns, active):
    for f in fxns: float_rules.guard(f, float_result)
  return Patch(name, f"tinygrad.uop.symbolic.sym rules at {pieces}", why,
               test or f"{ELEMENTWISE}::test_unsafe_rewrites_special[{name}-{dtype}]", CODE_SWAP,
               lambda: float_rules.find_rules(pieces), apply)


def _renderers(targets, active): pass   # applied per renderer instance by renderer.adopt, as devices make them


MANIFEST: dict[str, Patch] = {p.name: p for p in [
  _guarded("x*0", ['(UPat.var("x") * 0, lambda x:'], "NaN*0 and inf*0 gave 0 instead of NaN; -2*0 gave +0.0"),
  _guarded("x/x", ["# x/x -> 1"], "0/0, inf/inf and NaN/NaN gave 1 instead of NaN. Written out for floats as 1 where x is "
           "finite and nonzero, else NaN (declining left FDIV(c, c) nodes tinygrad cannot fold: KeyError in a relu MLP grad)",
           "(x.ne(0) & (x * 0).eq(0)).where(x.const_like(1.0), x.const_like(math.nan))"),
  _guarded("(x*y)/y", ["# (x*x2)/x2 -> x"], "gave x where y is 0 or inf (XLA: NaN) and skipped x*y's overflow and rounding"),
  _guarded("x/(1+x)", ["# x*/(1+x) -> 1-1/(1+x)", "lambda x,y,d: y*(1-d)", "lambda x,y,d: (1-d)+x*y"],
           "cancellation: 1e-10/(1+1e-10) gave 0 instead of 1e-10 in float32"),
  _guarded("1/(x*c)", ["# 1/(x^c) -> (1/x)^c", "lambda x: x.reciprocal()*x.reciprocal()*x.reciprocal()",
                       "# 1/(x*c) -> (1/c)*(1/x)"], "other roundings: 1/(x*3) at x = 1e-3 gave 333.33331, not 333.33334, "
           "1/(x*x*x) at 40 was 1 ulp off too; x*x overflowing to inf (1/inf = 0 under XLA) gave a subnormal instead",
           test=f"{PATCHES}::test_reciprocal_of_products_round_as_xla"),
  _guarded("x*c0+x*c1", ["# (x*c0)+(x*c1) -> x*(c0+c1)", "lambda x,y,c0,c1: y+x*(c0+c1)", "# (x+x*c)-> x*(c+1)",
                         '((UPat.var("y") + UPat.var("x")) + UPat.var("x") * UPat.cvar("c"), lambda x,y,c: y+x*(c+1))',
                         '((UPat.var("y") + UPat.var("x") * UPat.cvar("c")) + UPat.var("x"), lambda x,y,c: y+x*(c+1))',
                         "lambda y,x: y+x*2"], "other roundings than XLA's: in float16 beyond its tolerance (x*0.1 + x*0.7 is not x*0.8)",
           dtype="float16"),
  _guarded("consts to the end", ["lambda x,c1,y: (x+y)+c1", "lambda x,c1,y: (x*y)*c1"],
           "(x+c)+y -> (x+y)+c and (x*c)*y -> (x*y)*c: (2e38*2)*0.25 gave 1e38 instead of inf. (x+c1)+c2 -> x+(c1+c2) "
           "and (x/y)/z -> x/(y*z) stay: XLA's algebraic simplifier does the same", dtype="float16"),
  _guarded("-(x+y)", ["# -(x+c) -> -x + -c", "# -(x+y) -> -x + -y"],
           "-(1 + -1) gave +0.0 instead of -0.0 (CI drew clamp's sign of zero)"),
  Patch("reduce-collapse", "tinygrad.codegen.simplify.reduce_collapse",
        "inside tinygrad's reduce collapse (a sum over a one-hot mask becomes a load) the float guards stay off: its mask "
        "algebra needs those rules, and without them optax.ctc_loss hit the rewrite stack limit",
        "tests/test_programs.py::test_ctc_loss_with_its_log_probabilities_fused_into_the_contraction",
        "code swapped for a depth counter around the original: pm_reduce_simplify holds the function itself and "
        "reduce_load_collapse calls it by its global name", lambda: [float_rules.find_collapse()],
        lambda targets, active: float_rules.count_collapse(targets[0])),
  Patch("recompile", "the compiled rule copies in every PatternMatcher, tinygrad's upat_compile/upat_interpret caches, "
        "to_program_cache and schedule_cache",
        "a matcher compiles a copy of a rule at its first match: a process that ran tinygrad before `import tinyjax` "
        "kept x*0 -> 0", f"{PATCHES}::test_rules_patched_after_tinygrad_ran",
        "cleared and reset to deferred compiles; done only if tinygrad compiled something before install()",
        float_rules.find_compiled, lambda targets, active: None),   # run last, by install()
  Patch("devices", "tinygrad.device.Device (the singleton's device opener) and each device's cached_renderer",
        "tinygrad makes renderers lazily per device and Target, with no hook: without this no renderer patch reaches "
        "a device opened after install()", f"{PATCHES}::test_devices_opened_later_adopt_renderers",
        "an attribute of the Device instance (its __getitem__ calls self.__get_canonicalized_item) and a dict subclass "
        "as each device's cached_renderer, which adopts what it stores", renderer.find_devices,
        lambda targets, active: renderer.hook_devices(active)),
  Patch("c-float-parens", "tinygrad.renderer.cstyle.base_rewrite's ALU rule, for every C-style renderer",
        "x+(y+z) printed as x+y+z, which C reads as (x+y)+z: 1e8+(-1e8+1) gave 1 instead of 0, 2e38*(4*0.25) gave inf",
        f"{ELEMENTWISE}::test_right_nested_operands[float32]",
        "a rule in front of the renderer instance's string_rewrite, declining all but right-nested float ADD/MUL",
        renderer.find_alu_rule, _renderers, ("devices",)),
  Patch("clang-bf16", "tinygrad.renderer.cstyle.ClangRenderer instances: type_map, string_rewrite",
        "clang-19 for an x86 CPU without AVX512-BF16 emitted calls of __truncsfbf2, which tinygrad's ELF loader cannot "
        "link (cumsum of bf16 [0, 0]), and crashed on bf16 shuffles (transposing a bf16 [2,4,4]); bf16 is rendered as "
        "unsigned short, as tinygrad's OpenCL renderer does",
        f"{PATCHES}::test_bfloat16_kernels_compile_on_clang", "attributes of the renderer instance",
        renderer.find_clang, _renderers, ("devices",)),
  Patch("clang-f16-rounding", "tinygrad.renderer.cstyle.ClangRenderer instances: extra_matcher",
        "clang's __fp16 rounds only where stored: (a+b)*0 with a+b past 65504 gave 0, not XLA's NaN",
        f"{ELEMENTWISE}::test_unsafe_rewrites_special[x*0-float16]", "an attribute of the renderer instance",
        renderer.find_clang, _renderers, ("devices",)),
  Patch("clang-uint-to-float", "tinygrad.renderer.cstyle.ClangRenderer instances: string_rewrite (CAST uint -> float)",
        "clang's SLP vectorizer turned 4-16 side-by-side (float)(unsigned)(signed char)x into zero extensions: int8 -1 "
        "-> uint32 -> float32 gave 255; written without uitofp (turning SLP off halved float kernel speed)",
        f"{ELEMENTWISE}::test_sign_extended_unsigned_to_float_side_by_side[16]", "an attribute of the renderer instance",
        renderer.find_clang, _renderers, ("devices",)),
  Patch("compile-workers", "tinygrad.engine.realize._compile_kernel's worker processes (the renderer they unpickle)",
        "workers import tinygrad, never tinyjax: kernels compiled there would keep every rule above unpatched",
        f"{PATCHES}::test_patches_reach_compile_workers",
        "__reduce_ex__ as an attribute of the renderer instance (pickle looks it up on the instance): the worker loads "
        "this package by path and rebuilds the renderer through install() and adopt()",
        renderer.find_workers, _renderers, ("devices",)),
  Patch("diskcache-threads", "tinygrad.helpers.db_connection (the sqlite connection of tinygrad's disk cache)",
        "one sqlite connection per process, bound to the thread that opened it: a first call (which compiles) from any "
        "other thread raised sqlite3.ProgrammingError", "tests/test_threads.py::test_first_call_in_a_worker_thread",
        "the module function swapped for one keeping a connection per thread (diskcache_get/put look it up by its global "
        "name); threading.local, so a thread's connection closes with the thread", diskcache.find, diskcache.apply),
  Patch("cpu-far-calls", "tinygrad.runtime.ops_cpu.jit_loader (tinygrad.runtime.support.elf.jit_loader, as CPUProgram loads kernels)",
        "on x86-64 a kernel's call of fmaxf/fminf (clang's float max/min, e.g. float16 scatter-max) is a rel32 written without a range "
        "check: in a process holding a few GiB of mappings (a long xdist worker) a new kernel lands over 2 GiB from libm and "
        "the call jumps to a wild address (intermittent segfault in a freshly captured kernel, reproduced for CI's lost "
        "worker in test_at_update_dtypes[sorted-float16]); such calls go through a stub, as tinygrad does on AArch64",
        f"{PATCHES}::test_cpu_kernels_call_far_library_functions",
        "the module global swapped for a loader that appends a `jmp *0(%rip)` stub per out-of-reach callee and otherwise "
        "returns tinygrad's own result (CPUProgram._load calls jit_loader by its global name)", loader.find, loader.apply),
]}

_active: list[str] = []
_done = False


def turned_off(env: str | None = None) -> set[str]:
  """The names TINYJAX_NO_TINYGRAD_PATCHES turns off (with those needing them); ValueError for an unknown name."""
  value = (os.environ.get(ENV, "") if env is None else env).strip()
  if value.lower() in ("", "0", "false", "no"): return set()
  if value.lower() in ("1", "true", "yes", "all"): return set(MANIFEST)
  off = {n.strip() for n in value.split(",") if n.strip()}
  if unknown := off - MANIFEST.keys(): raise ValueError(f"{ENV}: no tinygrad patch named {sorted(unknown)}; the names: {list(MANIFEST)}")
  while more := {p.name for p in MANIFEST.values() if p.name not in off and off & set(p.needs)}: off |= more
  return off


def check(names=None) -> dict[str, list]:
  """The target objects of each named patch (default: all); a RuntimeError naming every target this tinygrad lacks."""
  found, missing = {}, []
  for name in MANIFEST if names is None else names:
    try: found[name] = MANIFEST[name].find()
    except (LookupError, ImportError, AttributeError) as e: missing.append(f"{name}: {MANIFEST[name].target} ({e})")
  if missing:
    from importlib.metadata import version
    raise RuntimeError(f"tinyjax.tinygrad_patches were written for tinygrad {TINYGRAD}; the installed tinygrad "
                       f"{version('tinygrad')} lacks what these patch:\n  " + "\n  ".join(missing) +
                       f"\nSet {ENV}=1 to run without them (results then differ from jax.jit: see tinyjax/tinygrad_patches).")
  return found


def install(active: "tuple[str, ...] | None" = None) -> list[str]:
  """Apply every patch not turned off by TINYJAX_NO_TINYGRAD_PATCHES (or exactly `active`, as a compile worker does), once.
  Returns installed()."""
  global _done
  if _done: return installed()
  names = tuple(n for n in MANIFEST if n not in turned_off()) if active is None else tuple(active)
  targets = check(names)
  for name in names: MANIFEST[name].apply(targets[name], names)
  if "recompile" in names:   # last: the rule functions patched above, compiled anew
    float_rules.forget_compiled([f for n in names if MANIFEST[n].how == CODE_SWAP or n == "reduce-collapse" for f in targets[n]])
  _active[:], _done = list(names), True
  return installed()


def installed() -> list[str]:
  """The names of the patches applied in this process (empty before install() or with them turned off)."""
  return list(_active)


def rebuild(cls, target, active):
  """A renderer unpickled in a compile worker: the same patches installed there first, then the renderer adopted."""
  install(active)
  return renderer.adopt(cls(target), tuple(active))

