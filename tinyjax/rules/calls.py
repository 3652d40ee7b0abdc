"""Primitives that call a sub-jaxpr (nested jit, closed_call, remat, custom_jvp/vjp, composite): the interpreter
evaluates the primal computation, since JAX has already differentiated what needs differentiating. And the identities
of a one-device program: placement, sharding and layout annotations, checkpoint names, barriers, tokens.

The params these rules do not use steer JAX's lowering, differentiation or sharding; each is named, so a param a new
JAX adds is an error naming the primitive rather than silently ignored.
"""
import numpy as np
from jax.extend import core as jcore
from jax.extend.core import primitives as P

from ..interpreter import eval_closed_jaxpr, eval_jaxpr
from ..ops import primitive, register, unsupported
from .numerics import const


# ---- sub-jaxpr calls -------------------------------------------------------------------------------------------

@register(primitive("jit_p"), primitive("pjit_p"))
def jit(*args, jaxpr, in_shardings=None, out_shardings=None, in_layouts=None, out_layouts=None, donated_invars=None,
        ctx_mesh=None, name=None, keep_unused=None, inline=None, compiler_options_kvs=None, resource_env=None):
  return eval_closed_jaxpr(jaxpr, *args)


@register(P.closed_call_p, P.call_p)   # (one primitive, 'eval_jaxpr', from jax 0.11)
def call(*args, call_jaxpr, name=None):
  """closed_call (a ClosedJaxpr) and call (an open Jaxpr: no consts)."""
  if isinstance(call_jaxpr, jcore.ClosedJaxpr): return eval_closed_jaxpr(call_jaxpr, *args)
  return eval_jaxpr(call_jaxpr, [], *args)


@register(primitive("composite_p"))
def composite(*args, jaxpr=None, call_jaxpr=None, name=None, attributes=None, version=None):
  return eval_closed_jaxpr(jaxpr or call_jaxpr, *args)   # lax.composite: its decomposition (call_jaxpr from jax 0.11)


@register(P.remat_p)   # named remat2 in Jaxprs: jax.checkpoint
def remat2(*args, jaxpr, prevent_cse=None, differentiated=None, policy=None):
  return eval_jaxpr(jaxpr, [], *args)


@register(P.custom_jvp_call_p)
def custom_jvp_call(*args, call_jaxpr, jvp_jaxpr_fun=None, jvp_jaxpr_thunk=None, num_consts=None, symbolic_zeros=None):
  return eval_closed_jaxpr(call_jaxpr, *args)


@register(P.custom_vjp_call_p)
def custom_vjp_call(*args, call_jaxpr, fwd_jaxpr_thunk=None, bwd=None, num_consts=None, out_trees=None,
                    symbolic_zeros=None):
  return eval_closed_jaxpr(call_jaxpr, *args)


# ---- identities of a one-device program ------------------------------------------------------------------------
# One device per program, so placement, sharding and layout annotations change nothing; neither do checkpoint names
# or optimization barriers (tinygrad schedules the lazy graph as a whole).

@register(P.device_put_p)
def device_put(*xs, devices=None, srcs=None, copy_semantics=None): return list(xs)


@register(P.sharding_constraint_p)
def sharding_constraint(x, *, sharding=None, layout=None, context_mesh=None, unconstrained_dims=None,
                        resource_env=None): return x


@register(primitive("reshard_p"))
def reshard(x, *, dst_sharding=None, concrete_mesh=None): return x   # jax.sharding.reshard


@register(primitive("layout_constraint_p"))
def layout_constraint(x, *, layout=None): return x


@register(P.name_p)
def name(x, *, name): return x   # jax.ad_checkpoint.checkpoint_name: only steers what remat saves


@register(primitive("optimization_barrier_p"))
def optimization_barrier(*xs): return list(xs)


@register(primitive("tie_p"))
def tie(x, y): return y   # orders effects in JAX's own transforms; its value is y


@register(P.create_token_p)
def create_token(*ignored_operands): return const(False, np.bool_, (0,))   # a placeholder: tokens carry no data


@register(P.after_all_p)
def after_all(*tokens): return const(False, np.bool_, (0,))


# ---- values with no defined contents ---------------------------------------------------------------------------

# XLA lowers uninitialized values as zeros, and so does this; for a typed key, zero key data (XLA's zeros of its bits).

@register(P.empty2_p)
def empty2(*, dtype, memory_space=None):
  """An uninitialized scalar (what scan's and autodiff's `empty_like` broadcast)."""
  return const(0, dtype, ())


@register(primitive("empty_p"))
def empty(*, shape, dtype, out_sharding=None):
  """lax.empty: uninitialized values."""
  return const(0, dtype, tuple(shape))


# ---- what has no rule, and why ---------------------------------------------------------------------------------

unsupported("all_gather", "all_to_all", "axis_index", "pmax", "pmin", "ppermute", "psum", "ragged_all_to_all",
            "psum_scatter", "reduce_scatter", "pbroadcast", why="multi-device collective: tinyjax runs one device per program")
unsupported("get", "swap", why="stateful effects (Ref get/swap) are not interpreted")
unsupported("custom_lin", why="only in jax.linearize's linear Jaxpr of a custom_vjp function, which JAX itself cannot "
            "evaluate (jax.jit raises TypeError: can't apply forward-mode autodiff (jvp) to a custom_vjp function); "
            "jax.grad transposes it away")
