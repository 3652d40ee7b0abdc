"""The prototype notebook's Flax CNN, shared by the demo, the tests and the benchmarks."""
import jax
import jax.numpy as jnp
from flax import linen as nn


class CNN(nn.Module):
  """Conv-silu-avgpool twice, then two Dense layers: the prototype's model, unchanged."""

  @nn.compact
  def __call__(self, x):
    x = nn.Conv(features=32, kernel_size=(3, 3))(x)
    x = nn.silu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = nn.Conv(features=64, kernel_size=(3, 3))(x)
    x = nn.silu(x)
    x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(features=256)(x)
    x = nn.silu(x)
    x = nn.Dense(features=10)(x)
    return x


def params_and_images(batch=512, seed=42):
  """The prototype's parameters and uniform random images (NHWC, 28x28x1)."""
  init_key, image_key = jax.random.split(jax.random.key(seed))
  params = CNN().init(init_key, jnp.ones([1, 28, 28, 1]))
  images = jax.random.uniform(image_key, (batch, 28, 28, 1))
  return params, images


def apply_model(params, images): return CNN().apply(params, images)
