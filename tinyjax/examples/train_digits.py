"""Train a small Flax CNN on scikit-learn's digits under tiny and under jax.jit, from the same init, the same batches
and the same dropout keys, and compare losses and test accuracy.

    python -m tinyjax.examples.train_digits [--device CPU] [--steps 300] [--batch 64]

The model has Conv, BatchNorm (mutable batch_stats), Dropout (rng) and weight decay; the optimizer is adamw with
gradient clipping and a warmup-cosine schedule. Everything the step carries (params, batch stats, optimizer state,
the rng key) stays on the tinygrad device from step to step.
"""
import argparse
import functools
import statistics
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from tinyjax import tiny, timing


class DigitsCNN(nn.Module):
  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.Conv(16, (3, 3))(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.Conv(32, (3, 3))(x)
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9)(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.relu(nn.Dense(64)(x))
    x = nn.Dropout(0.2, deterministic=not train)(x)
    return nn.Dense(10)(x)


@flax.struct.dataclass
class TrainState:
  params: Any
  batch_stats: Any
  opt_state: Any
  step: jax.Array


def load_digits(test_fraction=0.2, seed=0):
  """sklearn's 8x8 digits (1,797 images, shipped with the package: no download), scaled to [0, 1], NHWC."""
  from sklearn.datasets import load_digits as sk_load
  data = sk_load()
  x = (data.images / 16.0).astype(np.float32)[..., None]
  y = data.target.astype(np.int32)
  order = np.random.default_rng(seed).permutation(len(x))
  n_test = int(len(x) * test_fraction)
  return (x[order[n_test:]], y[order[n_test:]]), (x[order[:n_test]], y[order[:n_test]])


def make_optimizer(total_steps):
  schedule = optax.warmup_cosine_decay_schedule(0.0, 3e-3, warmup_steps=max(total_steps // 10, 1), decay_steps=total_steps)
  return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=1e-4))


def init_state(model, optimizer, seed=0):
  variables = model.init(jax.random.key(seed), jnp.ones((1, 8, 8, 1)), train=False)
  return TrainState(variables["params"], variables["batch_stats"], optimizer.init(variables["params"]), jnp.zeros((), jnp.int32))


def make_train_step(model, optimizer):
  def train_step(state, key, images, labels):
    dropout_key = jax.random.fold_in(key, state.step)
    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": state.batch_stats}, images, train=True,
                                    rngs={"dropout": dropout_key}, mutable=["batch_stats"])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), updates["batch_stats"]
    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params, batch_stats, opt_state, state.step + 1), loss
  return train_step


def make_eval(model):
  def predict(state, images):
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, images, train=False)
    return jnp.argmax(logits, axis=-1)
  return predict


def batches(x, y, batch, steps, seed=1):
  """The same shuffled batches for both runs."""
  rng = np.random.default_rng(seed)
  order = np.array([], dtype=np.int64)
  for _ in range(steps):
    if len(order) < batch: order = np.concatenate([order, rng.permutation(len(x))])
    idx, order = order[:batch], order[batch:]
    yield x[idx], y[idx]


def train(step_fn, predict_fn, state, key, data, steps, batch, label, to_numpy=np.asarray, progress=True, eval_every=25):
  """Returns per-step losses, (step, test accuracy) pairs every `eval_every` steps and at the end, and seconds per
  step: the median over the steps after the first (which traces and compiles), each timed until its new state and
  loss are computed on the device (the evaluations and the loss's trip to the host are left out)."""
  (x_train, y_train), (x_test, y_test) = data
  losses, accuracies, seconds = [], [], []
  iterator = batches(x_train, y_train, batch, steps)
  if progress:
    from tqdm import tqdm
    iterator = tqdm(iterator, total=steps, desc=label, leave=False)
  evaluate = lambda: float((to_numpy(predict_fn(state, x_test)) == y_test).mean())
  for i, (images, labels) in enumerate(iterator):
    step_seconds, (state, loss) = timing.timed(functools.partial(step_fn, state, key, images, labels))
    if i: seconds.append(step_seconds)
    losses.append(float(to_numpy(loss)))
    if eval_every and (i + 1) % eval_every == 0 and i + 1 < steps: accuracies.append((i + 1, evaluate()))
  accuracies.append((steps, evaluate()))
  return np.array(losses), accuracies, statistics.median(seconds) if seconds else float("nan")


def run(steps=300, batch=64, device=None, progress=True):
  model, optimizer = DigitsCNN(), make_optimizer(steps)
  data = load_digits()
  key = jax.random.key(0)
  step, predict = make_train_step(model, optimizer), make_eval(model)
  results = {}
  results["jax.jit"] = train(jax.jit(step), jax.jit(predict), init_state(model, optimizer), key, data, steps, batch,
                             "jax.jit", progress=progress)
  tiny_step = tiny(step, device=device)
  results["tiny"] = train(tiny_step, tiny(predict, device=device), init_state(model, optimizer), key, data, steps, batch,
                          "tiny", to_numpy=lambda t: t.numpy(), progress=progress)
  results["tiny_traces"] = tiny_step.trace_count
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--device", default=None, help="tinygrad device (CPU, CL, CUDA, METAL, ...)")
  parser.add_argument("--steps", type=int, default=300)
  parser.add_argument("--batch", type=int, default=64)
  args = parser.parse_args(argv)
  results = run(args.steps, args.batch, args.device)
  loss_j, loss_t = results["jax.jit"][0], results["tiny"][0]
  print(f"{'':10s} {'first loss':>11s} {'final loss':>11s} {'test acc':>9s} {'ms/step':>8s}")
  for name, (loss, acc, t) in (("jax.jit", results["jax.jit"]), ("tiny", results["tiny"])):
    print(f"{name:10s} {loss[0]:11.5f} {loss[-1]:11.5f} {acc[-1][1]:9.4f} {t * 1e3:8.2f}")
  print(f"max |loss difference| over the first 50 steps: {np.abs(loss_j[:50] - loss_t[:50]).max():.2e}; "
        f"tiny traced the step {results['tiny_traces']} time(s)")


if __name__ == "__main__":
  main()
