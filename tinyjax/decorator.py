"""`tiny`: the public decorator. Flattens arguments, looks up a program per signature, calls it, unflattens.

Nothing here knows about primitives: tracing is JAX's (on ShapeDtypeStructs, so no data is copied into JAX) and
evaluation is the interpreter's. A Program (program.py) is built once per signature and replays captured kernels
after that.
"""
import dataclasses
import functools
import inspect

import jax
from jax._src import config
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


class tiny:
  """Run a JAX function on tinygrad: `@tiny` or `tiny(f, static_argnums=..., static_argnames=..., device=..., jit=...)`.

  Returns the pytree JAX would return with tinygrad Tensors as leaves (typed PRNG keys as TinyKey). With jit=True
  (the default) each signature is traced once and its kernels are captured once and replayed; with jit=False
  every call returns the lazy, unrealized graph.
  """

  def __init__(self, fun=None, *, static_argnums=(), static_argnames=(), device=None, jit=True):
    if fun is None:   # used as @tiny(...)
      self._partial = dict(static_argnums=static_argnums, static_argnames=static_argnames, device=device, jit=jit)
      return
    self._partial = None
    self.fun = fun
    self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
    self.static_argnames = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
    self.device = Device.canonicalize(device) if device else None
    self.jit = jit
    self.programs: dict = {}
    self.trace_count = 0
    try: self._signature = inspect.signature(fun)
    except (TypeError, ValueError): self._signature = None
    functools.update_wrapper(self, fun)

  def __call__(self, *args, **kwargs):
    if self._partial is not None: return tiny(args[0], **self._partial)
    with tinygrad_lock: return self._call(args, kwargs)

  def _call(self, args, kwargs):
    device = self.device or Device.DEFAULT
    key, leaves, sigs, trace = self._signature_of(args, kwargs, device)
    program = self.programs.get(key)
    if program is None:
      self.trace_count += 1   # programs built; report() traces without counting
      program = self.programs[key] = Program(*trace(), device, self.jit)
    into = program.host_inputs.take() if any(not isinstance(x, (Tensor, TinyKey)) for x in leaves) else [None] * len(leaves)
    outs = program([leaf_to_tensor(x, s, device, b) for x, s, b in zip(leaves, sigs, into)])
    outs = [TinyKey(o, aval.dtype) if is_key_dtype(aval.dtype) else o for o, aval in zip(outs, program.out_avals)]
    return jax.tree_util.tree_unflatten(program.out_tree, outs)

  def report(self, *args, **kwargs) -> str:
    """Before running anything: which primitives this call needs, whether each has a rule, and where it comes from."""
    from .coverage import report
    _, _, _, trace = self._signature_of(args, kwargs, self.device or Device.DEFAULT)
    return report(trace()[0])   # (JAX's tracing alone: no tinygrad state, so no tinygrad_lock)

  def lower(self, *args, **kwargs) -> "Program":
    """The Program (ClosedJaxpr, constants, captured kernels) this call runs, built if needed."""
    device = self.device or Device.DEFAULT
    with tinygrad_lock:
      key, *_ = self._signature_of(args, kwargs, device)
      self(*args, **kwargs)
      return self.programs[key]

  def _signature_of(self, args, kwargs, device):
    """The cache key of a call, its flat leaves and their signatures, and a thunk that traces it."""
    static_args = tuple((i, _hashable(args[i], f"argument {i}")) for i in self.static_argnums if i < len(args))
    dyn_args = tuple(a for i, a in enumerate(args) if i not in self.static_argnums)
    static_kwargs = {k: _hashable(v, f"argument '{k}'") for k, v in kwargs.items() if k in self.static_argnames}
    dyn_kwargs = {k: v for k, v in kwargs.items() if k not in self.static_argnames}
    leaves, in_tree = jax.tree_util.tree_flatten((dyn_args, dyn_kwargs), is_leaf=_is_leaf)
    sigs = tuple(leaf_signature(x) for x in leaves)
    # JAX's trace context (x64, PRNG flags, ...) changes the Jaxpr, as it does jax.jit's cache key
    key = (in_tree, sigs, static_args, tuple(sorted(static_kwargs.items())), device, config.trace_context())

    def trace():
      def flat_fun(*flat):
        dyn, dyn_kw = jax.tree_util.tree_unflatten(in_tree, list(flat))
        statics, rest = dict(static_args), iter(dyn)
        full = [statics[i] if i in statics else next(rest) for i in range(len(args))]
        return self.fun(*full, **dyn_kw, **static_kwargs)
      closed_jaxpr, out_shape = jax.make_jaxpr(flat_fun, return_shape=True)(*[s.abstract() for s in sigs])
      return closed_jaxpr, jax.tree_util.tree_structure(out_shape)
    return key, leaves, sigs, trace

  def __get__(self, obj, objtype=None):   # decorating a method
    return self if obj is None else functools.partial(self, obj)


def _hashable(value, what):
  try: hash(value)
  except TypeError: raise TypeError(f"tinyjax: static {what} must be hashable, got {type(value).__name__}") from None
  return value
