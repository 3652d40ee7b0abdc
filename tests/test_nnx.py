"""Flax NNX under tiny: tiny_nnx (nnx.jit's counterpart) and the functional split/merge style, against nnx.jit/jax.jit."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from parity import assert_same
from tinyjax import TinyKey, tiny, to_numpy, to_tinygrad
from tinyjax.nnx import tiny_nnx


class Net(nnx.Module):
  """BatchNorm (batch statistics), Dropout (an RNG stream) and a conv: the state a training step changes."""
  def __init__(self, rngs):
    self.conv = nnx.Conv(1, 4, (3, 3), rngs=rngs)
    self.lin = nnx.Linear(4 * 6 * 6, 16, use_bias=False, rngs=rngs)   # (a bias before BatchNorm gets ~0 gradients,
    self.bn = nnx.BatchNorm(16, rngs=rngs)                             # and adam turns their rounding into steps)
    self.drop = nnx.Dropout(0.25, rngs=rngs)
    self.out = nnx.Linear(16, 3, rngs=rngs)

  def __call__(self, x):
    h = nnx.relu(self.conv(x)).reshape(x.shape[0], -1)
    return self.out(self.drop(nnx.relu(self.bn(self.lin(h)))))


def data():
  rng = np.random.default_rng(0)
  return rng.normal(size=(8, 6, 6, 1)).astype(np.float32), rng.integers(0, 3, 8).astype(np.int32)


def train_step(model, optimizer, x, y):
  def loss_fn(model):
    return optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
  loss, grads = nnx.value_and_grad(loss_fn)(model)
  optimizer.update(model, grads)
  return loss


def fresh():
  model = Net(nnx.Rngs(0))
  return model, nnx.Optimizer(model, optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-2)), wrt=nnx.Param)


def comparable(state):
  """A state's leaves as numpy, typed keys (jax's or tiny's) as their key data."""
  def leaf(x):
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key): return np.asarray(jax.random.key_data(x))
    return to_numpy(x.data if isinstance(x, TinyKey) else x)
  return jax.tree_util.tree_map(leaf, state, is_leaf=lambda x: isinstance(x, TinyKey))


def test_tiny_nnx_training_matches_nnx_jit():
  x, y = data()
  (model_t, opt_t), (model_j, opt_j) = fresh(), fresh()
  step_t, step_j = tiny_nnx(train_step), nnx.jit(train_step)
  for _ in range(6):
    np.testing.assert_allclose(to_numpy(step_t(model_t, opt_t, x, y)), step_j(model_j, opt_j, x, y), rtol=1e-5)
  assert step_t.program.trace_count == 1   # the state comes back as tinygrad Tensors: no retrace, no copies
  assert_same(comparable(nnx.state(model_t)), comparable(nnx.state(model_j)), rtol=1e-4, atol=1e-6)
  model_t.eval(); model_j.eval()
  forward = lambda model, x: model(x)
  assert_same(tiny_nnx(forward)(model_t, x), nnx.jit(forward)(model_j, x), rtol=1e-4, atol=1e-5)


def test_functional_split_merge_with_tiny():
  x, _ = data()
  graphdef, state = nnx.split(Net(nnx.Rngs(1)))
  def forward(state, x):
    model = nnx.merge(graphdef, state)
    out = model(x)
    return out, nnx.state(model)   # the batch statistics and the RNG count it updated
  got, want = tiny(forward)(to_tinygrad(state), x), jax.jit(forward)(state, x)
  assert_same(got[0], want[0], rtol=1e-5, atol=1e-6)
  assert_same(comparable(got[1]), comparable(want[1]), rtol=1e-5, atol=1e-6)
