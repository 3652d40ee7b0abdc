"""Typed PRNG keys moved by data-movement primitives (a split key unpacked by slice/squeeze, gathered, selected).

A key array of logical shape S is a uint32 tensor of shape S + key_shape, but a movement rule's params speak of S
(`k1, k2 = split(k)` is a slice and a squeeze of key<fry>[2]). The interpreter applies such an equation to each uint32
component of the key data in turn, with the params unchanged, and stacks the components back: correct for any
primitive (registered with moves_keys=True) whose every output element is a copy of some input element (or of a padding/fill key). Sub-jaxpr
primitives (jit, cond, while, scan) are not listed: their key operands flow through to the inner equations.
"""
import numpy as np

from .dtypes import is_key_dtype

def apply_to_key_components(eqn, rule, invals, params):
  """Evaluate a data-movement equation over typed keys one key-data component at a time (rules registered with moves_keys=True)."""
  key_in = [is_key_dtype(v.aval.dtype) for v in eqn.invars]
  if not all(is_key_dtype(v.aval.dtype) for v in eqn.outvars):
    raise NotImplementedError(f"'{eqn.primitive.name}' mixing typed-key and other outputs")
  impl = next(v.aval.dtype._impl for v, k in zip(eqn.invars, key_in) if k)
  n, key_shape = int(np.prod(impl.key_shape)), tuple(impl.key_shape)
  def component(x, i):
    flat = x.reshape(*x.shape[:x.ndim - len(key_shape)], n)
    return flat.shrink(tuple((0, d) for d in flat.shape[:-1]) + ((i, i + 1),)).reshape(flat.shape[:-1])
  comps = [rule(*[component(x, i) if k else x for x, k in zip(invals, key_in)], **params) for i in range(n)]
  if not eqn.primitive.multiple_results: comps = [[c] for c in comps]
  outs = [comps[0][j].unsqueeze(-1).cat(*[c[j].unsqueeze(-1) for c in comps[1:]], dim=-1) if n > 1 else comps[0][j].unsqueeze(-1)
          for j in range(len(eqn.outvars))]
  outs = [o.reshape(*o.shape[:-1], *key_shape) for o in outs]
  return outs if eqn.primitive.multiple_results else outs[0]


def carries_keys(eqn, rule) -> bool:
  """Whether this equation moves typed keys, so must be applied per key-data component."""
  return rule.moves_keys and any(is_key_dtype(v.aval.dtype) for v in (*eqn.invars, *eqn.outvars))
