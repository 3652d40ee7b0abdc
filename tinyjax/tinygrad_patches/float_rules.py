"""Keeps tinygrad's algebraic rewrites from changing float results.

tinygrad 0.14 simplifies its UOp graph with rules written for index arithmetic, and some of them also fire on floats,
where they are not identities (XLA applies none of them to floats):

  x*0 -> 0            NaN and inf times 0 give 0 instead of NaN; -2*0 loses its sign
  x/x -> 1            0/0, inf/inf and NaN/NaN give 1 instead of NaN (now: 1 where x is finite and nonzero, else NaN)
  (x*y)/y -> x        NaN where y is 0 or inf; no overflow or rounding of x*y
  x*/(1+x) -> 1-1/(1+x)   cancellation: 1e-10/(1+1e-10) gives 0 instead of 1e-10 in float32
  1/(x*c) -> (1/c)*(1/x), 1/(x*x) -> (1/x)*(1/x)                      other roundings, overflow to 0 or inf
  x*c0+x*c1 -> x*(c0+c1), x+x*c -> x*(c+1), (y+x)+x -> y+x*2         other roundings
  (x+c)+y -> (x+y)+c, (x*c)*y -> (x*y)*c                               (2e38*2)*0.25 gives 1e38 instead of inf
  -(x+y) -> -x+-y, -(x+c) -> -x+-c                                     -(1 + -1) gives +0.0 instead of -0.0
and its C-style renderers print x+(y+z) as x+y+z, which C reads as (x+y)+z: 1e8+(-1e8+1) gave 1 instead of 0.

Kept, since XLA's algebraic simplifier does the same: (x/y)/z -> x/(y*z) (f16 (60000/0.5)/60001 is 2 under jax.jit),
(x+c1)+c2 -> x+(c1+c2) and (x*c1)*c2 -> x*(c1*c2) ((-1+1)+1e-8 is 0, (2e38*2)*0.5 is 2e38).
Each such rule is made to decline when a matched value is a float: its function's code is swapped for a guard that
calls the original only for non-floats (the function object is shared by every PatternMatcher built from the rule, so
one swap reaches them all). Kernels are compiled in tinygrad's worker processes, which import tinygrad but never
tinyjax, so the same patch travels in the renderer's pickle (see compiler.py) and runs there when it is unpickled.
"""
import inspect


def restrict_float_unsafe_rules():
  """Patches the rules (and reduce_collapse) and returns the functions patched. Idempotent (a second call patches nothing and returns []);
  self-contained, since tinygrad's compile workers run it from its source text."""
  import linecache
  import types
  from tinygrad.renderer import cstyle
  from tinygrad.uop import symbolic
  if getattr(symbolic, "_tinyjax_ieee", False): return []
  # a piece of the source line where each rule's function starts (tinygrad 0.14.0, uop/symbolic.py)
  unsafe = ['(UPat.var("x") * 0, lambda x:', "# (x*x2)/x2 -> x",
            "# (x*c0)+(x*c1) -> x*(c0+c1)", "lambda x,y,c0,c1: y+x*(c0+c1)", "# (x+x*c)-> x*(c+1)",
            '((UPat.var("y") + UPat.var("x")) + UPat.var("x") * UPat.cvar("c"), lambda x,y,c: y+x*(c+1))',
            '((UPat.var("y") + UPat.var("x") * UPat.cvar("c")) + UPat.var("x"), lambda x,y,c: y+x*(c+1))',
            "lambda y,x: y+x*2", "# -(x+c) -> -x + -c", "# 1/(x^c) -> (1/x)^c",
            "lambda x: x.reciprocal()*x.reciprocal()*x.reciprocal()", "# 1/(x*c) -> (1/c)*(1/x)",
            "# x*/(1+x) -> 1-1/(1+x)", "lambda x,c1,y: (x+y)+c1", "lambda x,c1,y: (x*y)*c1",
            "lambda x,y,d: y*(1-d)", "lambda x,y,d: (1-d)+x*y", "# -(x+y) -> -x + -y"]
  # rules whose float result is written out instead (declining x/x left FDIV(c, c) nodes that tinygrad cannot fold)
  for_floats = {"# x/x -> 1": "(x.ne(0) & (x * 0).eq(0)).where(x.const_like(1.0), x.const_like(math.nan))"}
  # the C-style renderers print a+(b+c) as a+b+c, which C reads as (a+b)+c: only a left operand loses its parentheses
  # for floats (renderer/cstyle.py, base_rewrite)
  alu = '(UPat(GroupOp.ALU, name="x"), lambda ctx,x: ctx.code_for_op[x.op]('
  left_only = ("lambda ctx,x: ctx.code_for_op[x.op](*([strip_parens(ctx[v]) if v.op == x.op and x.op in {Ops.ADD, Ops.MUL, "
               "Ops.XOR, Ops.OR, Ops.AND} and (i == 0 or not dtypes.is_float(x.dtype)) else ctx[v] "
               "for i, v in enumerate(x.src)]), x.dtype)")

  def rules(matcher, module, pieces):
    found = {}
    for _, fxn in matcher.patterns:
      if not isinstance(fxn, types.FunctionType) or fxn.__code__.co_filename != module.__file__: continue
      line = linecache.getline(fxn.__code__.co_filename, fxn.__code__.co_firstlineno)
      for piece in pieces:
        if piece in line: found.setdefault(piece, {})[id(fxn)] = fxn
    if missing := [p for p in pieces if p not in found]:
      raise RuntimeError(f"tinyjax.ieee: these tinygrad rules were not found (is tinygrad 0.14.0 installed?): {missing}")
    return [fxn for fxns in found.values() for fxn in fxns.values()]

  # tinygrad's reduce collapse (codegen/simplify.py: a sum over a one-hot mask becomes a load) relies on these rules
  # to cancel its mask terms, and without them its graph grows past the rewrite limit: inside it they stay on (the
  # zeros there are masked-out terms, not values). A list, since a compiled rule keeps its globals by value.
  collapsing = symbolic.__dict__.setdefault("_tinyjax_collapsing", [0])
  from tinygrad.codegen import simplify
  collapse = simplify.reduce_collapse
  counted = {}
  exec("def counted(red, u, pm=None, _inner=None, _depth=None):\n  _depth[0] += 1\n  try: return _inner(red, u, pm)\n"
       "  finally: _depth[0] -= 1", collapse.__globals__, counted)
  inner = types.FunctionType(collapse.__code__, collapse.__globals__, collapse.__name__, collapse.__defaults__)
  collapse.__code__, collapse.__defaults__ = counted["counted"].__code__, (collapse.__defaults__[0], inner, collapsing)

  def guard(fxn, float_result="None"):
    code = fxn.__code__
    params = ", ".join(code.co_varnames[:code.co_argcount])
    original = types.FunctionType(code, fxn.__globals__, fxn.__name__, fxn.__defaults__)
    new = eval(f"lambda {params}, _rule=None: ({float_result}) if _tinyjax_collapsing[0] == 0 and "
               f"any(dtypes.is_float(v.dtype) for v in ({params},)) else _rule({params})", fxn.__globals__)
    fxn.__code__, fxn.__defaults__ = new.__code__, (original,)

  guarded, rendered = rules(symbolic.sym, symbolic, unsafe), rules(cstyle.base_rewrite, cstyle, [alu])
  for fxn in guarded: guard(fxn)
  for piece, result in for_floats.items():
    for fxn in rules(symbolic.sym, symbolic, [piece]): guard(fxn, result); guarded.append(fxn)
  for fxn in rendered: fxn.__code__ = eval(left_only, fxn.__globals__).__code__
  symbolic._tinyjax_ieee = True
  return guarded + rendered + [collapse]


def forget_compiled(patched):
  """If tinygrad ran before tinyjax was imported, its matchers hold compiled copies of the old rules (made at their
  first match) and its caches hold kernels lowered with them: drop those, so the patched rules are compiled anew."""
  import gc
  from tinygrad.codegen import to_program_cache
  from tinygrad.schedule import schedule_cache
  from tinygrad.uop.ops import PatternMatcher, upat_deferred_compile, upat_interpret
  from tinygrad.uop.upat import upat_compile
  patched = {id(f) for f in patched}
  upat_compile.cache_clear(), upat_interpret.cache_clear(), to_program_cache.clear(), schedule_cache.clear()
  for matcher in [o for o in gc.get_objects() if isinstance(o, PatternMatcher)]:
    fxns = {id(p): fxn for p, fxn in matcher.patterns if id(fxn) in patched}
    for entries in matcher.pdict.values():
      for entry in entries:
        if id(entry[0]) in fxns: entry[1] = upat_deferred_compile(entry[0], fxns[id(entry[0])], entry)


SOURCE = inspect.getsource(restrict_float_unsafe_rules) + "\nrestrict_float_unsafe_rules()\n"


class _RunInWorker:
  """Unpickles by running SOURCE: put in a renderer's pickled state, it patches the worker before it compiles."""
  def __reduce__(self): return exec, (SOURCE, {"__name__": "tinyjax_ieee"})


IN_WORKER = _RunInWorker()
forget_compiled(restrict_float_unsafe_rules())
