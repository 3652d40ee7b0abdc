"""Whole programs: the prototype's Flax CNN forward at batch 512, and gradients of real networks (relu, optax losses)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from parity import assert_same, check
from tinyjax import tiny, to_tinygrad
from tinyjax.examples.cnn import apply_model, params_and_images


def test_prototype_cnn_forward_batch_512():
  params, images = params_and_images(512)
  # the prototype's usage: parameters and images already on the tinygrad device
  params_tg, images_tg = to_tinygrad((params, images))
  got = tiny(apply_model)(params_tg, images_tg).numpy()
  np.testing.assert_allclose(got, np.asarray(jax.jit(apply_model)(params, images)), rtol=1e-4, atol=1e-5)


class ReluMLP(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Dense(64)(x))
    x = nn.gelu(nn.Dense(32)(x))
    return nn.Dense(10)(x)


def test_grad_of_relu_mlp_with_optax_losses():
  model = ReluMLP()
  x = jax.random.normal(jax.random.key(0), (16, 20))
  labels = jnp.arange(16) % 10
  params = model.init(jax.random.key(1), x)
  def loss(params, x, labels):
    logits = model.apply(params, x)
    return (optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            + optax.sigmoid_binary_cross_entropy(logits, jax.nn.one_hot(labels, 10)).mean()
            + jax.nn.logsumexp(logits).mean() * 1e-3)
  check(jax.value_and_grad(loss), params, x, labels, rtol=1e-4, atol=1e-6)


class ReluCNN(nn.Module):
  @nn.compact
  def __call__(self, x):
    x = nn.relu(nn.Conv(8, (3, 3))(x))
    x = nn.max_pool(x, (2, 2), strides=(2, 2))
    x = nn.relu(nn.Conv(16, (3, 3), feature_group_count=2)(x))
    x = nn.avg_pool(x, (2, 2), strides=(2, 2))
    return nn.Dense(10)(x.reshape((x.shape[0], -1)))


def test_grad_of_relu_cnn():
  model = ReluCNN()
  x = jax.random.uniform(jax.random.key(0), (8, 12, 12, 1))
  labels = jnp.arange(8) % 10
  params = model.init(jax.random.key(1), x)
  def loss(params, x, labels):
    return optax.softmax_cross_entropy_with_integer_labels(model.apply(params, x), labels).mean()
  check(jax.value_and_grad(loss), params, x, labels, rtol=1e-4, atol=1e-6)


class _Recurrent(nn.Module):
  """Dense, Conv, Embed and an LSTM (its recurrent kernels use the orthogonal initializer, i.e. qr)."""
  @nn.compact
  def __call__(self, ids, images):
    h = nn.RNN(nn.OptimizedLSTMCell(16))(nn.Embed(50, 8)(ids))
    return nn.Dense(3)(h[:, -1]) + nn.Conv(3, (3, 3))(images).mean((1, 2))


def test_flax_init_matches_jax_jit():
  ids, images = np.arange(24).reshape(2, 12) % 50, np.ones((2, 6, 6, 1), np.float32)
  check(_Recurrent().init, jax.random.key(0), ids, images, rtol=1e-5, atol=1e-6)
