"""tinyjax/tinygrad_patches: the mechanism (explicit, idempotent, checked, switchable, reaching compile workers) and the
rules written not to depend on it (log1p, expm1, asinh). The float semantics the patches buy are tested against jax.jit
in tests/rules/test_elementwise.py (test_unsafe_rewrites*, test_right_nested_operands, ...), named in the MANIFEST.

Tests that need a process of their own (tinygrad before tinyjax, the patches off, a compile worker pool) run a script in
a subprocess with the parent's DEV and CC.
"""
import json
import math
import os
import pickle
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tinygrad import Device, dtypes as tg

from tinyjax import tiny, tinygrad_patches as tp
from tinyjax.tinygrad_patches import float_rules, renderer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(script, timeout=300, **env):
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT, **env})
  assert out.returncode == 0, out.stderr[-3000:]
  return out.stdout


# ---- install, manifest, check ----------------------------------------------------------------------------------

def state():
  """What the patches changed, as identities: each target function's code and defaults, each device's renderer cache
  and its renderers' attributes."""
  fxns = [f for name, targets in tp.check().items() for f in targets if callable(f) and hasattr(f, "__code__")]
  caches = [getattr(Device[d], "cached_renderer", {}) for d in sorted(Device._opened_devices)]
  rs = [r for c in caches for r in c.values()]
  return ([(id(f), id(f.__code__), id(f.__defaults__)) for f in fxns], [id(c) for c in caches],
          [sorted((k, id(v)) for k, v in vars(r).items()) for r in rs])


def test_install_is_idempotent():
  assert tp.installed() == [n for n in tp.MANIFEST if n not in tp.turned_off()]
  before = state()
  assert tp.install() == tp.installed()
  for name in tp.MANIFEST:   # a second application, as another copy of the package would try, changes nothing either
    if tp.MANIFEST[name].how == tp.CODE_SWAP: tp.MANIFEST[name].apply(tp.MANIFEST[name].find(), tuple(tp.installed()))
  float_rules.count_collapse(float_rules.find_collapse())
  renderer.hook_devices(tuple(tp.installed()))
  for d in Device._opened_devices:
    for r in getattr(Device[d], "cached_renderer", {}).values(): renderer.adopt(r, tuple(tp.installed()))
  assert state() == before


def test_manifest_entries():
  for name, p in tp.MANIFEST.items():
    assert p.name == name and p.target and p.why and p.how and p.tinygrad == "0.14.0", p
    assert set(p.needs) <= tp.MANIFEST.keys(), p


@pytest.mark.parametrize("name", tp.MANIFEST)
def test_each_patch_is_proved_by_its_test(name):
  """The test an entry names exists and fails with just that patch turned off (on the CPU device, where they all apply)."""
  out = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", tp.MANIFEST[name].test],
                       capture_output=True, text=True, cwd=ROOT, timeout=600, env={**os.environ, "DEV": "CPU", tp.ENV: name})
  assert out.returncode == 1 and " failed" in out.stdout.splitlines()[-1], out.stdout[-3000:] + out.stderr[-2000:]


def test_missing_target_is_a_loud_error(monkeypatch):
  from tinygrad.codegen import simplify
  monkeypatch.delattr(simplify, "reduce_collapse")
  with pytest.raises(RuntimeError, match=r"reduce-collapse: tinygrad\.codegen\.simplify\.reduce_collapse") as e:
    tp.check()
  assert "0.14.0" in str(e.value) and tp.ENV in str(e.value)
  with pytest.raises(LookupError, match="x\\+0 -> gone"): float_rules.find_rules(["# x+0 -> gone"])


def test_missing_target_stops_import_before_any_patch():
  """A tinygrad without one target: `import tinyjax` raises, naming it, and has patched nothing."""
  out = run("from tinygrad.codegen import simplify\nfrom tinygrad.uop import symbolic\ndel simplify.reduce_collapse\n"
            "try: import tinyjax\nexcept RuntimeError as e: print(e)\n"
            "print([f.__code__.co_name for _, f in symbolic.sym.patterns if getattr(f, '__code__', None) and "
            "f.__code__.co_name == 'tinyjax_float_guard'])")
  assert "reduce-collapse: tinygrad.codegen.simplify.reduce_collapse" in out and out.splitlines()[-1] == "[]", out


def test_turned_off_by_name():
  assert tp.turned_off("") == set() and tp.turned_off("1") == set(tp.MANIFEST) == tp.turned_off("all")
  assert tp.turned_off("x*0") == {"x*0"}
  assert tp.turned_off("devices") == {"devices", "c-float-parens", "clang-bf16", "clang-f16-rounding", "clang-uint-to-float",
                                      "compile-workers"}
  with pytest.raises(ValueError, match="no tinygrad patch named"): tp.turned_off("x*1")


# ---- turned off: tinygrad untouched ----------------------------------------------------------------------------

SNAPSHOT = """
import gc, json, sys, types
import jax, numpy as np
from tinygrad import Device, Tensor
from tinygrad.uop.ops import PatternMatcher

DATA = (int, float, str, bytes, type(None))   # counters and settings, not code
def ident(v): return [id(v), id(getattr(v, "__code__", None)), id(getattr(v, "__defaults__", None))]

def snapshot():
  '''Identities of every function, class and matcher in tinygrad's modules, every attribute of their classes, of the
  Device singleton, the default device and its renderer, and the code of every rule of every PatternMatcher.'''
  seen, dev = {}, Device[Device.DEFAULT]
  for name, mod in list(sys.modules.items()):
    if name.split(".")[0] != "tinygrad" or not isinstance(mod, types.ModuleType): continue
    for k, v in list(vars(mod).items()):
      if isinstance(v, (types.FunctionType, type, PatternMatcher)) or callable(getattr(v, "cache_info", None)):
        seen[f"{name}.{k}"] = ident(v)
      if isinstance(v, type) and v.__module__ == name:
        seen.update({f"{name}.{k}.{a}": ident(w) for a, w in list(vars(v).items()) if not isinstance(w, DATA)})
  for k, o in {"Device": Device, "device": dev, "renderer": dev.renderer}.items():
    seen.update({f"{k}.{a}": ident(w) for a, w in list(vars(o).items()) if not isinstance(w, DATA)})
  seen["device.cached_renderer.type"] = [id(type(dev.cached_renderer))]
  for m in gc.get_objects():
    if isinstance(m, PatternMatcher): seen.update({f"rule {id(f)}": ident(f) for _, f in m.patterns})
  return seen

def work():
  x = Tensor(np.float32([np.nan, np.inf, 2, 1e8])).realize()
  outs = [x * 0.0, (x + 1) / (x + 1), x + (x * -1 + 1)]
  Tensor.realize(*outs)
  return [o.numpy().tolist() for o in outs]

print(json.dumps(work()))
before = snapshot()
import tinyjax
out = tinyjax.tiny(lambda x: (x * 0.0, jax.numpy.log1p(x)))(np.float32([np.nan, 1e-7]))
print(json.dumps([o.numpy().tolist() for o in out]), json.dumps(work()), json.dumps(tinyjax.tinygrad_patches.installed()), sep=chr(10))
after = snapshot()
added = [k for k in after if k not in before and k.startswith(("Device.", "device.", "renderer."))]   # attributes set
print(json.dumps(sorted([k for k in before if k in after and before[k] != after[k]] + added)))
"""


def test_turned_off_leaves_tinygrad_untouched():
  """With TINYJAX_NO_TINYGRAD_PATCHES=1, `import tinyjax` and running a program change no function, class, rule, device
  or renderer of tinygrad, and NaN*0 is tinygrad's own 0; with the patches on the same comparison sees them."""
  plain, tiny_out, after, active, changed = map(json.loads, run(SNAPSHOT, **{tp.ENV: "1"}).splitlines()[-5:])
  assert changed == [] and active == []
  assert plain[0][0] == 0 and tiny_out[0] == [0, 0] and after == plain   # tinygrad's answer, before and after
  assert abs(tiny_out[1][1] - 1e-7) < 1e-13                              # log1p needs no patch
  plain, tiny_out, after, active, changed = map(json.loads, run(SNAPSHOT, **{tp.ENV: "0"}).splitlines()[-5:])
  assert active == list(tp.MANIFEST) and math.isnan(tiny_out[0][0]) and math.isnan(after[0][0])
  clang = {"renderer.type_map", "renderer.extra_matcher"} if Device.DEFAULT == "CPU" else set()
  assert {"renderer.string_rewrite", "renderer.__reduce_ex__", "device.cached_renderer.type", "Device._Device__get_canonicalized_item",
          "tinygrad.codegen.simplify.reduce_collapse", *clang} <= set(changed), changed
  assert "tinygrad.device._Device._Device__get_canonicalized_item" not in changed   # the class keeps its opener
  assert not [c for c in changed if c.startswith(("tinygrad.renderer", "tinygrad.device."))], changed   # no class changed


# ---- tinygrad ran first; devices opened later; compile workers -------------------------------------------------

def test_rules_patched_after_tinygrad_ran():
  """tinygrad compiles a rule at its first match: kernels run before `import tinyjax` must not keep x*0 -> 0."""
  out = run("import numpy as np\nfrom tinygrad import Tensor\nx = Tensor(np.float32([np.nan, np.inf, 1]))\n"
            "assert (x * 0.0).numpy()[2] == 0\nimport tinyjax\nprint((Tensor(np.float32([np.nan, np.inf, 2])) * 0.0).numpy())")
  assert out.split() == ["[nan", "nan", "0.]"], out


def test_devices_opened_later_adopt_renderers():
  """A renderer made before `import tinyjax` is adopted by install(); one of a device opened later, as it is made."""
  out = run("from tinygrad import Device\nfirst = Device['CPU'].renderer\nimport tinyjax\n"
            "later = Device['CPU:1'].renderer\nprint(first is Device['CPU'].renderer, later is not first, "
            "[r.type_map[__import__('tinygrad').dtypes.bfloat16] for r in (first, later)])", CC=os.environ.get("CC", "clang"))
  assert out.split("\n")[0] == "True True ['unsigned short', 'unsigned short']", out


WORKER = """
import pickle, sys
from tinygrad.dtype import dtypes
r = pickle.loads(sys.stdin.buffer.read())
patches = sys.modules["tinyjax_tinygrad_patches"]
print(type(r).__name__, r.type_map[dtypes.bfloat16], sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "tinyjax")),
      {f.__code__.co_name for f in patches.float_rules.find_rules(['(UPat.var("x") * 0, lambda x:'])}, patches.installed() == ACTIVE)
"""

PROBE = """
import numpy as np
import tinyjax
from tinygrad import Tensor
from tinygrad.engine import worker
x = Tensor(np.float32([np.nan, np.inf, 2])).realize()
outs = [x * 0.0, (x + 1) * 0.0, (x * 2) * 0.0]
Tensor.realize(*outs)
print(worker.worker_pool is not None, [o.numpy().tolist()[:2] for o in outs])
"""


def test_patches_reach_compile_workers():
  """A pickled renderer, read back in a process that imported only tinygrad (as tinygrad's compile workers do), installs
  the same patches there, without importing jax or tinyjax; kernels compiled by a worker pool then keep NaN*0 NaN,
  where they give 0 when only that transport is turned off."""
  active = tp.installed()
  data = pickle.dumps(Device["CPU"].renderer)
  out = subprocess.run([sys.executable, "-c", WORKER.replace("ACTIVE", repr(active))], input=data, capture_output=True, cwd="/")
  assert out.stdout.decode().split() == ["ClangRenderer", "unsigned", "short", "[]", "{'tinyjax_float_guard'}", "True"], out.stderr.decode()[-3000:]
  assert run(PROBE, PARALLEL="2").split("\n")[0] == "True [[nan, nan], [nan, nan], [nan, nan]]"
  assert run(PROBE, PARALLEL="2", **{tp.ENV: "compile-workers"}).split("\n")[0] == "True [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]]"


def test_reciprocal_of_products_round_as_xla():
  """1/(x*c), 1/(x*x), 1/(x*x*x) bit for bit as jax.jit where no subnormal is involved (XLA CPU flushes those):
  tinygrad's (1/c)*(1/x) rounds differently (1/(x*3) at 1e-3: 333.33331, not 333.33334), within parity's tolerance."""
  x = np.concatenate([np.geomspace(1e-12, 1e12, 400), -np.geomspace(1e-12, 1e12, 100)]).astype(np.float32)
  f = lambda x: (1 / (x * x), 1 / (x * x * x), 1 / (x * 3.0))
  for g, w in zip(tiny(f)(x), jax.jit(f)(x)): np.testing.assert_array_equal(g.numpy().view(np.uint32), np.asarray(w).view(np.uint32))


BF16_SOURCE = """
import numpy as np, jax.numpy as jnp, tinyjax
from jax import lax
x, y = np.zeros(2, jnp.bfloat16), np.arange(32, dtype=np.float32).reshape(2, 4, 4).astype(jnp.bfloat16)
print(tinyjax.kernels(tinyjax.tiny(lambda x, y: (lax.cumsum(x, 0), jnp.transpose(y, (2, 0, 1))), device="CPU"), x, y).source())
"""


def undefined_symbols(src: str) -> list[str]:
  """What the C source compiled by $CC for an x86-64 without AVX512-BF16 (x86-64-v3) leaves to link."""
  import tempfile
  with tempfile.TemporaryDirectory() as d:
    open(f"{d}/k.c", "w").write(src)
    cc = subprocess.run([os.environ.get("CC", "clang"), "-march=x86-64-v3", "-O2", "-ffreestanding", "-c", f"{d}/k.c", "-o", f"{d}/k.o"],
                        capture_output=True, text=True)
    assert cc.returncode == 0, cc.stderr[-2000:]
    return subprocess.run(["nm", "-u", f"{d}/k.o"], capture_output=True, text=True, check=True).stdout.split()[1::2]


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the x86 target without AVX512-BF16 is what fails")
def test_bfloat16_kernels_compile_on_clang():
  """clang-19 for an x86 CPU without AVX512-BF16 turned bf16 stores into calls of compiler-rt's __truncsfbf2, which
  tinygrad's ELF loader cannot link (cumsum of bf16 [0, 0]): compiled for x86-64-v3, the kernels need nothing linked
  (with the patch turned off, the same kernels need __truncsfbf2). They also match jax.jit where they run here."""
  assert undefined_symbols(run(BF16_SOURCE)) == []
  assert "__truncsfbf2" in undefined_symbols(run(BF16_SOURCE, **{tp.ENV: "clang-bf16"}))
  x, y = np.zeros(2, jnp.bfloat16), np.arange(32, dtype=np.float32).reshape(2, 4, 4).astype(jnp.bfloat16)
  f = lambda x, y: (jax.lax.cumsum(x, 0), jnp.transpose(y, (2, 0, 1)) * 2)
  for g, w in zip(tiny(f, device="CPU")(x, y), jax.jit(f)(x, y)):
    np.testing.assert_array_equal(g.bitcast(tg.uint16).numpy(), np.asarray(w).view(np.uint16))


# ---- rules written not to depend on the patches ----------------------------------------------------------------
# log1p was Kahan's log(u) * x/(u-1) with u = 1+x: tinygrad folds (x+1)-1 to x and the x/x patch then gives 1, so
# log1p(1e-7) was log(1+1e-7), 2.7e6 ulp off; asinh, acosh, atanh and logaddexp call it.

def ulps(got, truth):
  """|got - truth| in float32 ulps of the float64 truth."""
  return np.abs(np.asarray(got, np.float64) - truth) / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)


def devices():
  """The default device and, where it opens, OpenCL (POCL on a CPU machine)."""
  def opens(d):
    try: return Device[d] is not None
    except Exception: return False
  return [pytest.param(d, marks=pytest.mark.skipif(not opens(d), reason=f"no {d} device")) for d in dict.fromkeys([Device.DEFAULT, "CL"])]


SMALL = np.geomspace(1e-30, 0.41, 300)   # normal floats (XLA CPU flushes subnormals) up to log1p's polynomial range
X = np.concatenate([[1e-7, -1e-7, 3e-8, 6e-8], SMALL, -SMALL]).astype(np.float32)


@pytest.mark.parametrize("device", devices())
def test_log1p_small_arguments(device):
  """Within 2 ulp of the float64 truth where the compensation matters (0.6 ulp measured, as jax.jit); above sqrt(2)-1
  log(1+x) in tinygrad's log (~2 ulp) is the limit, so 4 there."""
  np.testing.assert_array_less(ulps(tiny(jnp.log1p, device=device)(X).numpy(), np.log1p(X.astype(np.float64))), 2)
  big = np.concatenate([np.geomspace(0.42, 1e30, 300), -np.linspace(0.42, 0.999, 100)]).astype(np.float32)
  np.testing.assert_array_less(ulps(tiny(jnp.log1p, device=device)(big).numpy(), np.log1p(big.astype(np.float64))), 4)


@pytest.mark.parametrize("device", devices())
def test_asinh_and_expm1_small_arguments(device):
  """asinh is log1p(|x| + x^2/(1 + sqrt(1 + x^2))): 2 ulp while that argument is in log1p's polynomial range (|x| < 0.35).
  expm1 is Taylor's polynomial below 0.01 (0.5 ulp), Kahan's (u-1)*x/log(u) above (3.4 ulp measured, jax.jit 3.7)."""
  x = X[np.abs(X) < 0.35]
  np.testing.assert_array_less(ulps(tiny(jnp.arcsinh, device=device)(x).numpy(), np.arcsinh(x.astype(np.float64))), 2)
  e = ulps(tiny(jnp.expm1, device=device)(X).numpy(), np.expm1(X.astype(np.float64)))
  np.testing.assert_array_less(e[np.abs(X) < 0.01], 2)
  np.testing.assert_array_less(e, 4)


@pytest.mark.parametrize("device", devices())
def test_logaddexp_keeps_log1p_compensation(device):
  """logaddexp(0, b) = log1p(exp(b)): within 2 ulp of the float64 log1p of the exp tinygrad computed (tinygrad's exp is
  itself ~0.8|b| ulp off, up to 14 at b = -16.7 where jax.jit has 1: a separate matter)."""
  b = -np.linspace(0.5, 17, 400).astype(np.float32)
  got = tiny(lambda b: (jnp.logaddexp(jnp.float32(0), b), jnp.exp(b)), device=device)(b)
  np.testing.assert_array_less(ulps(got[0].numpy(), np.log1p(got[1].numpy().astype(np.float64))), 2)


def test_log1p_without_the_patches():
  """The compensation holds with the patches off too (tinygrad's own x/x -> 1 lost it the same way)."""
  out = run("import numpy as np, jax.numpy as jnp, tinyjax\n"
            "print(tinyjax.tiny(lambda x: (jnp.log1p(x), jnp.arcsinh(x), jnp.expm1(x)))(np.float32([1e-7, 3e-5]))[0].numpy().tolist())",
            **{tp.ENV: "1"})
  np.testing.assert_array_less(ulps(json.loads(out.splitlines()[-1]), np.log1p(np.float32([1e-7, 3e-5]).astype(np.float64))), 2)


# ---- CPU kernels calling library functions far away ------------------------------------------------------------

FAR_SOURCE = """
import ctypes, mmap
libc = ctypes.CDLL(None)
libc.mmap.restype, libc.mmap.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
# 3 GiB of address space (no memory) below what is mapped now: later mmaps, kernels' code among them, land past it,
# over 2 GiB from libm, as in a long-running process
libc.mmap(None, 3 << 30, 0, mmap.MAP_PRIVATE | mmap.MAP_ANON | 0x4000, -1, 0)
import numpy as np, jax.numpy as jnp
from tinyjax import tiny
from tinyjax.rules import indexing
indexing.SCATTER_PATH = "sorted"   # (CI: test_at_update_dtypes[sorted-float16])
x, i, v = (np.arange(20) % 7).astype(np.float16).reshape(4, 5), np.array([3, 0, 3, 1], np.int32), (np.arange(4) % 3).astype(np.float16)
f = lambda x, i, v: x.at[i, i].max(v)   # clang calls libm's fmaxf
for g, w in zip(tiny(f, device="CPU")(x, i, v), f(jnp.asarray(x), i, v)): np.testing.assert_array_equal(g.numpy(), np.asarray(w))
print("ok")
"""


def test_cpu_kernels_call_far_library_functions():
  """On x86-64 clang compiles a float max/min into a call of libm's fmaxf/fminf, a rel32 that tinygrad's ELF loader
  wrote without a range check: with the kernel mapped over 2 GiB from libm the call jumped to a wild address (segfault;
  seen intermittently in long xdist workers). The stub the patch adds reaches any address."""
  if Device.DEFAULT != "CPU" or os.uname().machine not in ("x86_64", "AMD64"): pytest.skip("x86-64 CPU device only")
  assert run(FAR_SOURCE).strip().endswith("ok")


def test_far_call_loader_uses_a_stub_only_out_of_reach(tmp_path):
  """The patched loader returns tinygrad's image where every call fits a rel32; out of reach, the call lands on a
  `jmp *0(%rip)` stub in the image holding the callee's address."""
  import ctypes, ctypes.util, shutil, struct
  from tinygrad.runtime.autogen import libc
  from tinygrad.runtime.support import elf
  from tinyjax.tinygrad_patches import loader
  cc = shutil.which(os.environ.get("CC", "clang"))
  if cc is None or os.uname().machine != "x86_64": pytest.skip("needs clang and x86-64")
  (src := tmp_path / "k.c").write_text("float fmaxf(float, float); float k(float a, float b) { return fmaxf(a, b) + 1.0f; }")
  subprocess.run([cc, "-c", "-O2", "-fPIC", "-ffreestanding", "-fno-math-errno", "-nostdlib", "-o", str(tmp_path / "k.o"), str(src)], check=True)
  obj, libm = (tmp_path / "k.o").read_bytes(), ctypes.CDLL(ctypes.util.find_library("m"))
  _, _, relocs = elf.elf_loader(obj, link_libs=[libm])
  fmaxf = elf.link_sym("fmaxf", [libm])
  (ploc, _, rtype, addend), = [r for r in relocs if r[1] == fmaxf]
  assert rtype == libc.R_X86_64_PLT32
  patched = loader.make_loader(elf.elf_loader, elf.jit_loader, libc.R_X86_64_PLT32, libc.R_X86_64_PC32)
  near = fmaxf - (1 << 30)
  assert patched(obj, base=near, link_libs=[libm]) == elf.jit_loader(obj, base=near, link_libs=[libm])
  image = patched(obj, base=fmaxf - (3 << 30), link_libs=[libm])
  stub = ploc - addend + struct.unpack("<i", image[ploc:ploc + 4])[0]   # the call's target: next instruction + rel32
  assert image[stub:stub + 6] == loader.JMP_RIP and struct.unpack("<Q", image[stub + 6:stub + 14])[0] == fmaxf
