"""An Equinox MLP (eqx.nn.MLP, 64 -> 128 -> 128 -> 10) training step with optax adam, as Equinox users write it:
the model split into its arrays (traced) and the rest (closed over), eqx.filter_value_and_grad, eqx.apply_updates.
Needs `pip install equinox` (the `bench` extra). The compared figure is the first step's loss."""
import jax
import optax

from tinyjax import tiny, to_tinygrad

from .common import Case, Skip, aux_of, stepper
from .mlp_train import digits_batch


def train_step(quick):
  try:
    import equinox as eqx
  except ImportError:
    raise Skip("equinox not installed") from None
  model = eqx.nn.MLP(64, 10, width_size=128, depth=2, key=jax.random.key(0))
  params, static = eqx.partition(model, eqx.is_array)
  optimizer = optax.adam(1e-3)
  x, y = digits_batch(128 if quick else 256)

  def step(state, x, y):
    params, opt_state = state
    def loss_fn(model): return optax.softmax_cross_entropy_with_integer_labels(jax.vmap(model)(x), y).mean()
    loss, grads = eqx.filter_value_and_grad(loss_fn)(eqx.combine(params, static))
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (eqx.apply_updates(params, updates), opt_state), loss
  state = (params, optimizer.init(params))
  return Case(stepper(tiny(step), to_tinygrad(state), *to_tinygrad((x, y))),
              stepper(jax.jit(step), state, *jax.device_put((x, y))), check=aux_of, size=f"batch {len(x)}")
