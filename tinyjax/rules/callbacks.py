"""Host callbacks: jax.debug.print, jax.debug.callback, jax.pure_callback and io_callback.

Each rule realizes its operands where the equation stands, reads them to the host and hands them to JAX's own host-side
implementation of the primitive (the function XLA's CPU backend calls back into), so formatting, the arrays the
callback receives (jax Arrays on the CPU device) and result conversion are JAX's. Results come back as tensors on the
program's device, checked against the declared shapes and dtypes.

A callback must run on every call, with that call's values, so a program holding one cannot be replayed from a
TinyJit capture: these primitives are registered with host_sync=True, and the decorator re-interprets such
programs on each call (kernels stay compiled; the cost is scheduling). For the same reason a cond whose branch holds
a callback reads its index on the host and runs only the taken branch, and a callback in a loop body runs once per
iteration, in order.
"""
import jax.numpy as jnp
import numpy as np
from jax._src import callback as jax_callback, debugging
from tinygrad import Tensor, dtypes as tg

from ..interpreter import numpy_to_tensor
from ..ops import register
from .control_flow import refuse_inside_jit_capture
from .numerics import DEVICE


def to_host(t: Tensor) -> np.ndarray:
  """A tensor's value as numpy with JAX's dtype (tinygrad's .numpy() would widen bfloat16)."""
  if t.dtype == tg.bfloat16: return t.bitcast(tg.uint16).numpy().view(jnp.bfloat16)
  return t.numpy()


def _host_args(name, args):
  refuse_inside_jit_capture(name)
  return [to_host(a) for a in args]


@register(debugging.debug_callback_p, host_sync=True)
def debug_callback(*args, **params):
  return debugging.debug_callback_p.impl(*_host_args("jax.debug.callback", args), **params)


@register(getattr(debugging, "debug_print_p", None), host_sync=True)
def debug_print(*args, **params):
  return debugging.debug_print_p.impl(*_host_args("jax.debug.print", args), **params)


def _results(name, outs, result_avals):
  outs = list(outs)
  if len(outs) != len(result_avals):
    raise TypeError(f"{name}: the callback returned {len(outs)} arrays, its declared result has {len(result_avals)}")
  for i, (out, aval) in enumerate(zip(outs, result_avals)):
    if out.shape != aval.shape or out.dtype != aval.dtype:
      raise TypeError(f"{name}: result {i} of the callback is {out.dtype}{list(out.shape)}, declared "
                      f"{aval.dtype}{list(aval.shape)} (JAX checks this too)")
  return [numpy_to_tensor(np.asarray(o), DEVICE.get()) for o in outs]


@register(jax_callback.pure_callback_p, host_sync=True)
def pure_callback(*args, result_avals, **params):
  outs = jax_callback.pure_callback_impl(*_host_args("jax.pure_callback", args), result_avals=result_avals, **params)
  return _results("jax.pure_callback", outs, result_avals)


@register(jax_callback.io_callback_p, host_sync=True)
def io_callback(*args, result_avals, **params):
  outs = jax_callback.io_callback_impl(*_host_args("io_callback", args), result_avals=result_avals, **params)
  return _results("io_callback", outs, result_avals)
