"""Host callbacks: jax.debug.print, jax.debug.callback, jax.pure_callback and io_callback.

Each rule realizes its operands where the equation stands, reads them to the host and hands them to JAX's own host-side
implementation of the primitive (the function XLA's CPU backend calls back into), so formatting, the arrays the
callback receives (jax Arrays on the CPU device) and result conversion are JAX's. Results come back as tensors on the
program's device, checked against the declared shapes and dtypes.

A callback must run on every call, with that call's values, so a program holding one cannot be replayed from a
TinyJit capture: these primitives are registered with host_sync=True, and such programs run in stages (stages.Stages):
the equations between callbacks are captured and replayed, the callbacks run on each call. For the same reason a cond whose branch holds
a callback reads its index on the host and runs only the taken branch, and a callback in a loop body runs once per
iteration, in order.
"""
import numpy as np
from jax._src import callback as jax_callback, debugging

from ..capture import numpy_to_tensor, tensor_to_numpy
from ..ops import register
from .control_flow import refuse_inside_jit_capture
from .numerics import DEVICE


def _host_args(name, args):
  refuse_inside_jit_capture(name)
  return [tensor_to_numpy(a) for a in args]


# The params are handed on to JAX's own implementation as they came.

@register(debugging.debug_callback_p, host_sync=True)
def debug_callback(*args, callback, effect, partitioned):
  return debugging.debug_callback_p.impl(*_host_args("jax.debug.callback", args), callback=callback, effect=effect,
                                         partitioned=partitioned)


@register(getattr(debugging, "debug_print_p", None), host_sync=True)
def debug_print(*args, fmt, ordered, partitioned, in_tree, static_args, np_printoptions, has_placeholders, logging_record):
  return debugging.debug_print_p.impl(*_host_args("jax.debug.print", args), fmt=fmt, ordered=ordered,
                                      partitioned=partitioned, in_tree=in_tree, static_args=static_args,
                                      np_printoptions=np_printoptions, has_placeholders=has_placeholders,
                                      logging_record=logging_record)


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
def pure_callback(*args, callback, result_avals, sharding, vmap_method):
  outs = jax_callback.pure_callback_impl(*_host_args("jax.pure_callback", args), callback=callback,
                                         result_avals=result_avals, sharding=sharding, vmap_method=vmap_method)
  return _results("jax.pure_callback", outs, result_avals)


@register(jax_callback.io_callback_p, host_sync=True)
def io_callback(*args, callback, result_avals, sharding, ordered):
  outs = jax_callback.io_callback_impl(*_host_args("io_callback", args), callback=callback, result_avals=result_avals,
                                       sharding=sharding, ordered=ordered)
  return _results("io_callback", outs, result_avals)
