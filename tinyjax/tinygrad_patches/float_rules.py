"""tinygrad's algebraic rewrites that are not identities on floats, made to decline there (install() applies them).

tinygrad 0.14 simplifies its UOp graph with rules written for index arithmetic (uop/symbolic.py), and some also fire on
floats, where XLA applies none of them. Each such rule function gets a guard as its code: the original runs only when
no matched value is a float. The code is swapped, not the rule replaced, because one function object is shared by every
PatternMatcher built from `sym` (dozens, some built inside functions at call time, some pickled to compile workers by
code): swapping the function's code reaches them all; replacing pattern entries would have to find every copy.
Importing this module changes nothing.
"""
import gc
import linecache
import types

GUARD = "tinyjax_float_guard"         # co_name of a guard's code: marks a rule already patched (by any copy of this module)
COUNTER = "tinyjax_collapse_counter"  # co_name of the counting reduce_collapse


def find_rules(pieces: list[str]) -> list[types.FunctionType]:
  """The functions of tinygrad.uop.symbolic.sym whose source line (tinygrad 0.14.0) contains each piece; LookupError
  naming the pieces not found. A rule already guarded is found by its original code."""
  from tinygrad.uop import symbolic
  if not {"dtypes", "math"} <= symbolic.__dict__.keys(): raise LookupError("tinygrad.uop.symbolic no longer imports dtypes and math")
  found: dict[str, dict[int, types.FunctionType]] = {}
  for _, fxn in symbolic.sym.patterns:
    if not isinstance(fxn, types.FunctionType): continue
    code = fxn.__defaults__[-2].__code__ if fxn.__code__.co_name == GUARD else fxn.__code__
    if code.co_filename != symbolic.__file__: continue
    line = linecache.getline(code.co_filename, code.co_firstlineno)
    for piece in pieces:
      if piece in line: found.setdefault(piece, {})[id(fxn)] = fxn
  if missing := [p for p in pieces if p not in found]: raise LookupError(f"no rule in tinygrad.uop.symbolic.sym with {missing}")
  return [fxn for fxns in found.values() for fxn in fxns.values()]


# Inside tinygrad's reduce collapse (codegen/simplify.py: a sum over a one-hot mask becomes a load) the guards stay off:
# its mask algebra needs these rules to cancel terms (optax.ctc_loss hit the rewrite stack limit without them), and its
# zeros are masked-out terms, not values. One list shared (as a default argument) by the counter and every guard.
COLLAPSING = [0]


def guard(fxn: types.FunctionType, float_result: str = "None") -> None:
  """fxn declines (or returns float_result, an expression of its parameters) when any matched value is a float.
  tinygrad calls a rule by its parameter names, so the guard is written with the same names; it runs in the rule's
  module globals (symbolic's dtypes and math)."""
  if fxn.__code__.co_name == GUARD: return
  code = fxn.__code__
  params = ", ".join(code.co_varnames[:code.co_argcount])
  original = types.FunctionType(code, fxn.__globals__, fxn.__name__, fxn.__defaults__)
  new = eval(f"lambda {params}, _rule=None, _collapsing=None: ({float_result}) if _collapsing[0] == 0 and "
             f"any(dtypes.is_float(v.dtype) for v in ({params},)) else _rule({params})", fxn.__globals__)
  fxn.__code__, fxn.__defaults__ = new.__code__.replace(co_name=GUARD), (original, COLLAPSING)


def _counted(red, u, pm=None, _collapse=None, _collapsing=None):
  _collapsing[0] += 1
  try: return _collapse(red, u, pm)
  finally: _collapsing[0] -= 1


def find_collapse() -> types.FunctionType:
  from tinygrad.codegen import simplify
  fxn = getattr(simplify, "reduce_collapse", None)
  if not isinstance(fxn, types.FunctionType) or fxn.__code__.co_name not in ("reduce_collapse", COUNTER) or \
     fxn.__code__.co_varnames[:3] != ("red", "u", "pm"):
    raise LookupError("tinygrad.codegen.simplify.reduce_collapse(red, u, pm) is gone or has another signature")
  return fxn


def count_collapse(fxn: types.FunctionType) -> None:
  """reduce_collapse counts its depth in COLLAPSING. Its code is swapped: pm_reduce_simplify holds the function itself
  and reduce_load_collapse calls it by its global name."""
  if fxn.__code__.co_name == COUNTER: return
  inner = types.FunctionType(fxn.__code__, fxn.__globals__, fxn.__name__, fxn.__defaults__)
  fxn.__code__, fxn.__defaults__ = _counted.__code__.replace(co_name=COUNTER), (fxn.__defaults__[0], inner, COLLAPSING)


def find_compiled() -> list:
  from tinygrad.codegen import to_program_cache
  from tinygrad.schedule import schedule_cache
  from tinygrad.uop.ops import upat_deferred_compile, upat_interpret
  from tinygrad.uop.upat import upat_compile
  return [to_program_cache, schedule_cache, upat_deferred_compile, upat_interpret, upat_compile]


def forget_compiled(patched: list[types.FunctionType]) -> None:
  """A matcher compiles a copy of a rule's function at its first match, and tinygrad caches kernels lowered with it: if
  tinygrad ran before install(), drop those so that the patched rules are compiled anew (nothing to do otherwise)."""
  from tinygrad.uop.ops import PatternMatcher
  to_program_cache, schedule_cache, upat_deferred_compile, upat_interpret, upat_compile = find_compiled()
  if not (upat_compile.cache_info().currsize or upat_interpret.cache_info().currsize or to_program_cache or schedule_cache):
    return
  upat_compile.cache_clear(), upat_interpret.cache_clear(), to_program_cache.clear(), schedule_cache.clear()
  ids = {id(f) for f in patched}
  for matcher in [o for o in gc.get_objects() if isinstance(o, PatternMatcher)]:
    fxns = {id(p): fxn for p, fxn in matcher.patterns if id(fxn) in ids}
    for entries in matcher.pdict.values():
      for entry in entries:
        if id(entry[0]) in fxns: entry[1] = upat_deferred_compile(entry[0], fxns[id(entry[0])], entry)

