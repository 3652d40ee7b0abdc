"""Flax NNX under tiny: `tiny_nnx`, in the spirit of `nnx.jit`.

NNX modules are stateful Python objects; tiny, like jax.jit, takes pytrees. `tiny_nnx(f)` splits every argument that
is an NNX object (a Module, an nnx.Optimizer, ...) into its graph definition (static: part of the signature) and its
state (a pytree of arrays), runs `f` on the merged objects inside one tiny program, and writes the state the call
changed (parameters an optimizer updated, BatchNorm statistics, RNG counters) back into the caller's objects, as
nnx.jit does. The state then lives on the tinygrad device as Tensors: the next call passes it straight in, with no
copy. Read a value back with `tinyjax.to_numpy(nnx.state(model))`.

    model = MyModule(rngs=nnx.Rngs(0))
    optimizer = nnx.Optimizer(model, optax.adam(1e-3), wrt=nnx.Param)

    @tiny_nnx
    def train_step(model, optimizer, x, y):
      loss, grads = nnx.value_and_grad(lambda m: ((m(x) - y) ** 2).mean())(model)
      optimizer.update(model, grads)
      return loss

The functional style works with `tiny` directly too: `graphdef, state = nnx.split(model)`, then inside the
function `nnx.merge(graphdef, state)`, returning `nnx.state(...)` of what changed.
"""
import functools

from flax import nnx

from .decorator import tiny


def _is_nnx(x) -> bool: return isinstance(x, nnx.Pytree)


def tiny_nnx(fun=None, **tiny_options):
  """`tiny` for functions of NNX objects (see the module docstring); `tiny_options` go to `tiny` (device, jit)."""
  if fun is None: return functools.partial(tiny_nnx, **tiny_options)

  def pure(graphdefs, *states):
    objects = [nnx.merge(g, s) if g is not None else s for g, s in zip(graphdefs, states)]
    out = fun(*objects)
    return out, [nnx.state(o) if g is not None else None for o, g in zip(objects, graphdefs)]

  program = tiny(pure, static_argnums=0, **tiny_options)

  @functools.wraps(fun)
  def call(*args):
    splits = [nnx.split(a) if _is_nnx(a) else (None, a) for a in args]
    out, states = program(tuple(g for g, _ in splits), *[s for _, s in splits])
    for a, state in zip(args, states):
      if state is not None: nnx.update(a, state)
    return out
  call.program = program   # its trace_count and report()
  return call
