"""The primitive registry: one Rule record per JAX primitive, and nothing else.

A rule is `fn(*tensors, **params) -> Tensor | list[Tensor]`: it receives the equation's inputs as lazy tinygrad
Tensors and the Jaxpr's params under their own names (keyword-only, every one named: a param JAX adds later is an
error, not silently ignored). The rules live in `tinyjax/rules/`, one module per family, and register here with
`@register(P.add_p)`, keyed by the primitive object, so one grep for a primitive's name finds its rule.

What else is known about a primitive is a flag on its Rule, read by the interpreter, the decorator and the coverage
table:
  note        what is partial about the rule (shown in the README's coverage table)
  host_sync   evaluating it reads values on the host (it runs a while loop, a callback): a program holding it is
              captured in stages around it (stages.Stages) instead of whole. A bool, or a predicate of the equation where
              it depends on the params (a scan steps on the host only past a length)
  moves_keys  a data-movement rule that typed PRNG keys pass through: the interpreter applies it to each uint32
              component of the key data (see keys.py)
  with_avals  the rule also takes `in_avals=` and `out_avals=` (the equation's abstract values: a typed key's impl,
              a logical rank), as jax2tf's rules take `_in_avals`/`_out_aval`
Primitives without a rule may still have a reason (`unsupported`), which errors and the coverage table show.
"""
import dataclasses
import importlib
from typing import Callable

from jax.extend import core as jcore


@dataclasses.dataclass(frozen=True)
class Rule:
  primitive: jcore.Primitive
  fn: Callable
  note: str | None = None
  host_sync: "bool | Callable" = False   # or a predicate of the JaxprEqn
  moves_keys: bool = False
  with_avals: bool = False


RULES: dict = {}         # jax Primitive -> Rule
UNSUPPORTED: dict = {}   # primitive name -> why tinyjax has no rule for it


def register(*primitives, note: str | None = None, host_sync: "bool | Callable" = False, moves_keys: bool = False,
             with_avals: bool = False):
  """Decorator: `@register(P.add_p)` makes the function the rule for that primitive (None, a primitive this JAX
  version lacks, is skipped). A primitive registered twice is a bug, caught at import."""
  def wrap(fn):
    for p in dict.fromkeys(primitives):   # (one primitive under two names in some JAX versions: registered once)
      if p is None: continue
      if p in RULES: raise RuntimeError(f"tinyjax: '{p.name}' registered twice ({RULES[p].fn.__module__} and {fn.__module__})")
      RULES[p] = Rule(p, fn, note, host_sync, moves_keys, with_avals)
    return fn
  return wrap


def unsupported(*names: str, why: str):
  """Record why the primitives of these names have no rule (the error and the coverage table say it)."""
  for name in names: UNSUPPORTED[name] = why


# Where JAX keeps primitives that jax.extend does not export; their homes move between versions (the one shim).
_PRIMITIVE_HOMES = ("jax.extend.core.primitives", "jax._src.lax.lax", "jax._src.lax.control_flow", "jax._src.lax.slicing",
                    "jax._src.ad_util", "jax._src.pjit", "jax._src.random.prng", "jax._src.prng", "jax._src.ad_checkpoint",
                    "jax._src.callback", "jax._src.debugging", "jax._src.lax.parallel", "jax._src.lax.linalg",
                    "jax._src.random", "jax._src.lax.special")


def primitive(name: str):
  """A primitive by its Python name (e.g. "split_p"), wherever this JAX keeps it; None if this JAX lacks it."""
  for home in _PRIMITIVE_HOMES:
    try: module = importlib.import_module(home)
    except ImportError: continue
    if (p := getattr(module, name, None)) is not None: return p
  return None
