"""`tiny`: the public decorator. Flattens arguments, looks up a program per signature, calls it, unflattens.

Nothing here knows about primitives: tracing is JAX's (on ShapeDtypeStructs, so no data is copied into JAX) and
evaluation is the interpreter's. A Program (program.py) is built once per signature and replays captured kernels
after that. Under a JAX transformation (tracer arguments) a tiny function is the function it wraps: JAX traces it.
"""
import dataclasses
import functools
import inspect
from typing import NamedTuple

import jax
from jax._src import config
from jax._src import core as jax_core
from jax._src.api_util import resolve_argnums   # jax.jit's own static_argnums <-> static_argnames resolution
import numpy as np
from tinygrad import Device, Tensor

from .capture import numpy_to_tensor, tensor_to_numpy, tinygrad_lock
from .dtypes import is_key_dtype, to_jax, to_tiny
from .program import Program


@dataclasses.dataclass
class TinyKey:
  """A typed JAX PRNG key (`jax.random.key`) living on a tinygrad device: its uint32 key data and its impl.
  tiny functions take and return these where JAX would take and return typed keys."""
  data: Tensor
  dtype: object   # the key dtype, e.g. key<fry>

  @property
  def shape(self): return self.data.shape[:len(self.data.shape) - len(self.dtype._impl.key_shape)]

  def to_jax(self): return jax.random.wrap_key_data(tensor_to_numpy(self.data), impl=self.dtype._impl)


def _is_leaf(x): return isinstance(x, TinyKey)


@dataclasses.dataclass(frozen=True)
class Leaf:
  """What a flattened argument contributes to the signature."""
  shape: tuple
  dtype: object
  weak_type: bool

  def abstract(self): return jax.ShapeDtypeStruct(self.shape, self.dtype, weak_type=self.weak_type)


def leaf_signature(x) -> Leaf:
  if isinstance(x, Tensor): return Leaf(tuple(x.shape), to_jax(x.dtype), False)
  if isinstance(x, TinyKey): return Leaf(tuple(x.shape), x.dtype, False)
  if isinstance(x, jax.Array): return Leaf(tuple(x.shape), x.dtype, bool(getattr(x, "weak_type", False)))
  if isinstance(x, (np.ndarray, np.generic)): return Leaf(tuple(np.shape(x)), jax.dtypes.canonicalize_dtype(x.dtype), False)
  if isinstance(x, (bool, int, float)):   # bool before int: bool is an int subclass; Python scalars are weak-typed as in JAX
    return Leaf((), jax.dtypes.canonicalize_dtype(type(x)), not isinstance(x, bool))
  if isinstance(x, jax.ShapeDtypeStruct):   # for .trace/.eval_shape/.report, as jax.jit's AOT methods take them
    return Leaf(tuple(x.shape), jax.dtypes.canonicalize_dtype(x.dtype, allow_extended_dtype=True), bool(x.weak_type))
  raise TypeError(f"tinyjax: an argument leaf of type {type(x).__name__} is not supported; pass tinygrad Tensors, "
                  f"jax or numpy arrays, or Python scalars (mark other arguments static with static_argnums/static_argnames)")


def leaf_to_tensor(x, sig: Leaf, device, into: Tensor | None = None) -> Tensor:
  """The leaf as a realized buffer on the device, with the dtype JAX traced it with; host data (numpy, jax arrays,
  scalars) is copied into `into` where given (a buffer of its physical shape and dtype)."""
  if isinstance(x, TinyKey): x = x.data
  if isinstance(x, Tensor):
    t = x if x.device == device else x.to(device)
    if t.dtype != (want := to_tiny(sig.dtype)): t = t.cast(want)   # e.g. float64 data while x64 is off
    return t.clone() if t.uop.is_virtual else t
  if isinstance(x, jax.Array) and is_key_dtype(x.dtype): x = jax.random.key_data(x)
  if isinstance(x, jax.ShapeDtypeStruct):
    raise TypeError("tinyjax: a jax.ShapeDtypeStruct has no data to run on; .trace(...) and .eval_shape(...) take them")
  return numpy_to_tensor(np.asarray(x, dtype=None if is_key_dtype(sig.dtype) else sig.dtype), device, into)


def to_numpy(tree):
  """A pytree of tiny outputs as numpy arrays with JAX's dtypes (tinygrad's .numpy() widens bfloat16 to float32)."""
  def leaf(x):
    if isinstance(x, TinyKey): x = x.data
    return tensor_to_numpy(x) if isinstance(x, Tensor) else np.asarray(x)
  with tinygrad_lock: return jax.tree_util.tree_map(leaf, tree, is_leaf=_is_leaf)


def to_tinygrad(tree, device=None):
  """A pytree of jax/numpy arrays and scalars as realized tinygrad Tensors on the device (typed keys as TinyKey),
  with the dtypes JAX would give them: the way to put parameters and data on the device once, before a loop."""
  device = Device.canonicalize(device) if device else Device.DEFAULT
  def leaf(x):
    sig = leaf_signature(x)
    t = leaf_to_tensor(x, sig, device).realize()
    return TinyKey(t, sig.dtype) if is_key_dtype(sig.dtype) else t
  with tinygrad_lock: return jax.tree_util.tree_map(leaf, tree, is_leaf=_is_leaf)


class Call(NamedTuple):
  """One call's arguments, split as jax.jit splits them."""
  n_args: int                # positional arguments passed
  static_args: tuple         # (position, value) pairs
  static_kwargs: tuple       # (name, value) pairs, sorted by name
  leaves: list               # flat leaves of the dynamic arguments (positional and keyword)
  in_tree: object            # their treedef


class tiny:
  """Run a JAX function on tinygrad: `@tiny` or `tiny(f, static_argnums=..., static_argnames=..., device=..., jit=...)`.

  Returns the pytree JAX would return with tinygrad Tensors as leaves (typed PRNG keys as TinyKey). With jit=True
  (the default) each signature is traced once and its kernels are captured once and replayed; with jit=False
  every call returns the lazy, unrealized graph. Static arguments follow jax.jit's conventions; under a JAX
  transformation (an argument is a tracer) the call is the wrapped function's, traced by JAX like any other code.
  """

  def __init__(self, fun=None, *, static_argnums=None, static_argnames=None, device=None, jit=True):
    if fun is None:   # used as @tiny(...)
      self._partial = dict(static_argnums=static_argnums, static_argnames=static_argnames, device=device, jit=jit)
      return
    self._partial = None
    self.fun = fun
    try: self._signature = inspect.signature(fun)
    except (TypeError, ValueError): self._signature = None
    # as jax.jit: names complete numbers and numbers names through the signature (argnums passed by keyword are
    # static, argnames passed by position too), and both are checked against it here, not at the first call
    _, _, self.static_argnums, self.static_argnames = resolve_argnums(fun, self._signature, None, None, static_argnums, static_argnames)
    self.device = Device.canonicalize(device) if device else None
    self.jit = jit
    self.programs: dict = {}
    self.trace_count = 0
    functools.update_wrapper(self, fun)

  def __call__(self, *args, **kwargs):
    if self._partial is not None: return tiny(args[0], **self._partial)
    call = self._split(args, kwargs)   # (statics checked here too: unhashable ones fail under a transformation as well)
    # under grad/vmap/jit/scan/eval_shape, or called while JAX traces other code: be the function, so JAX transforms it
    if not jax_core.trace_state_clean() or any(isinstance(x, jax_core.Tracer) for x in call.leaves):
      return self.fun(*_as_jax(args), **_as_jax(kwargs))
    with tinygrad_lock: return self._call(call)

  def _call(self, call):
    device = self.device or Device.DEFAULT
    key, leaves, sigs, trace = self._keyed(call, device)
    program = self.programs.get(key)
    if program is None:
      self.trace_count += 1   # programs built; report() traces without counting
      closed_jaxpr, out_shape = trace()
      program = self.programs[key] = Program(closed_jaxpr, jax.tree_util.tree_structure(out_shape), device, self.jit)
    into = program.host_inputs.take() if any(not isinstance(x, (Tensor, TinyKey)) for x in leaves) else [None] * len(leaves)
    outs = program([leaf_to_tensor(x, s, device, b) for x, s, b in zip(leaves, sigs, into)])
    outs = [TinyKey(o, aval.dtype) if key else o for o, aval, key in zip(outs, program.out_avals, program.key_outputs)]
    return jax.tree_util.tree_unflatten(program.out_tree, outs)

  def trace(self, *args, **kwargs):
    """The ClosedJaxpr this call runs (JAX's tracing alone: nothing runs, nothing is built). Arguments may be
    jax.ShapeDtypeStructs."""
    closed_jaxpr, _ = self._trace(args, kwargs)
    return closed_jaxpr

  def eval_shape(self, *args, **kwargs):
    """The output pytree of jax.ShapeDtypeStruct, as jax.eval_shape gives it (nothing runs, nothing is built)."""
    _, out_shape = self._trace(args, kwargs)
    return out_shape

  def _trace(self, args, kwargs):
    *_, trace = self._signature_of(args, kwargs, self.device or Device.DEFAULT)
    return trace()

  def report(self, *args, **kwargs) -> str:
    """Before running anything: which primitives this call needs, whether each has a rule, and where it comes from."""
    from .coverage import report
    return report(self.trace(*args, **kwargs))   # (JAX's tracing alone: no tinygrad state, so no tinygrad_lock)

  def lower(self, *args, **kwargs) -> "Program":
    """The Program (ClosedJaxpr, constants, captured kernels) this call runs, built if needed."""
    device = self.device or Device.DEFAULT
    with tinygrad_lock:
      key, *_ = self._signature_of(args, kwargs, device)
      self(*args, **kwargs)
      return self.programs[key]

  def clear_cache(self):
    """Drop the built programs (and the buffers they hold); the next call traces and captures again."""
    with tinygrad_lock: self.programs.clear()

  def _split(self, args, kwargs) -> "Call":
    """A call as jax.jit splits it: its static arguments (checked hashable) and the flat leaves of the rest."""
    static_nums = {i + len(args) if i < 0 else i for i in self.static_argnums}   # negative: from the end of this call's
    if static_nums and min(static_nums) < 0:                                       # positional arguments, as jax.jit
      raise ValueError(f"tinyjax: static_argnums must be >= -len(args), got {min(self.static_argnums)} for a call "
                       f"with len(args) == {len(args)}")
    static_args = tuple((i, self._static(args[i], i)) for i in sorted(static_nums) if i < len(args))
    dyn_args = tuple(a for i, a in enumerate(args) if i not in static_nums)
    static_kwargs = tuple(sorted((k, self._static(v, k)) for k, v in kwargs.items() if k in self.static_argnames))
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
    leaves, in_tree = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs), is_leaf=_is_leaf)
    return Call(len(args), static_args, static_kwargs, leaves, in_tree)

  def _signature_of(self, args, kwargs, device):
    """The cache key of a call, its flat leaves and their signatures, and a thunk that traces it."""
    return self._keyed(self._split(args, kwargs), device)

  def _keyed(self, call: "Call", device):
    n_args, static_args, static_kwargs, leaves, in_tree = call
    sigs = tuple(leaf_signature(x) for x in leaves)
    # static values compare with their types, as in jax.jit (1, 1.0 and True trace differently); JAX's trace context
    # (x64, PRNG flags, ...) changes the Jaxpr, as it does jax.jit's cache key
    static_types = tuple(type(v) for _, v in static_args + static_kwargs)
    key = (in_tree, sigs, static_args, static_kwargs, static_types, device, config.trace_context())

    def trace():
      def flat_fun(*flat):
        dyn, dyn_kw = jax.tree_util.tree_unflatten(in_tree, list(flat))
        statics, rest = dict(static_args), iter(dyn)
        full = [statics[i] if i in statics else next(rest) for i in range(n_args)]
        return self.fun(*full, **dyn_kw, **dict(static_kwargs))
      return jax.make_jaxpr(flat_fun, return_shape=True)(*[s.abstract() for s in sigs])   # (ClosedJaxpr, output shapes)
    return key, leaves, sigs, trace

  def _static(self, value, where):
    try: hash(value)
    except TypeError:
      names = [p.name for p in self._signature.parameters.values() if p.kind in _POSITIONAL] if self._signature else []
      what = f"argument '{where}'" if isinstance(where, str) else \
             f"argument {where}" + (f" ('{names[where]}')" if where < len(names) else "")
      raise TypeError(f"tinyjax: static {what} must be hashable, got {type(value).__name__}") from None
    return value

  def __get__(self, obj, objtype=None):   # decorating a method
    return self if obj is None else functools.partial(self, obj)


_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _as_jax(tree):
  """Arguments for the wrapped function itself: tinygrad Tensors as numpy arrays, TinyKeys as jax keys."""
  def leaf(x):
    if isinstance(x, TinyKey): return x.to_jax()
    return tensor_to_numpy(x) if isinstance(x, Tensor) else x
  if not any(isinstance(x, (Tensor, TinyKey)) for x in jax.tree_util.tree_leaves(tree, is_leaf=_is_leaf)): return tree
  with tinygrad_lock: return jax.tree_util.tree_map(leaf, tree, is_leaf=_is_leaf)
