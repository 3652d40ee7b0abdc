"""A full training step of an MLP on scikit-learn's digits (64 -> 256 -> 256 -> 10, batch 256): value_and_grad of the
cross-entropy plus an optax adam update, params and optimizer state fed back from step to step (on the device for
tiny, as `tinyjax.examples.train_digits` does for its CNN). The compared figure is the first step's loss."""
import flax.linen as nn
import jax
import numpy as np
import optax

from tinyjax import tiny, to_tinygrad

from .common import Case, aux_of, rng, stepper


class MLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    for width in (256, 256): x = nn.relu(nn.Dense(width)(x))
    return nn.Dense(10)(x)


def digits_batch(batch):
  """A batch of sklearn's 8x8 digits (shipped with the package: no download); random images without sklearn."""
  try:
    from sklearn.datasets import load_digits
    data = load_digits()
    x, y = (data.data / 16.0).astype(np.float32), data.target.astype(np.int32)
  except ImportError:
    x, y = rng(1).random((1797, 64), dtype=np.float32), rng(1).integers(0, 10, 1797, dtype=np.int32)
  idx = rng().choice(len(x), batch, replace=False)
  return x[idx], y[idx]


def mlp_adam_step(quick):
  model, optimizer = MLP(), optax.adam(1e-3)
  x, y = digits_batch(128 if quick else 256)
  params = model.init(jax.random.key(0), x)
  state = (params, optimizer.init(params))

  def step(state, x, y):
    params, opt_state = state
    def loss_fn(p): return optax.softmax_cross_entropy_with_integer_labels(model.apply(p, x), y).mean()
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss
  return Case(stepper(tiny(step), to_tinygrad(state), *to_tinygrad((x, y))),
              stepper(jax.jit(step), state, *jax.device_put((x, y))), check=aux_of, size=f"batch {len(x)}")
