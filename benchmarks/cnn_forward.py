"""The prototype's Flax CNN forward (batch 512; --quick: 64): tiny vs jax.jit vs the same network hand-written in
tinygrad, in one run.

    python -m benchmarks --only cnn
"""
import jax
from tinygrad import TinyJit

from tinyjax import tiny, to_tinygrad
from tinyjax.examples.cnn import apply_model, params_and_images

from .common import Case


def handwritten_tinygrad(params):
  """The CNN in plain tinygrad (NCHW), with the same weights: what a tinygrad user would write by hand."""
  p = to_tinygrad(params["params"])
  conv_w = [p[f"Conv_{i}"]["kernel"].permute(3, 2, 0, 1).contiguous().realize() for i in range(2)]   # HWIO -> OIHW

  @TinyJit
  def forward(images):
    x = images.permute(0, 3, 1, 2)
    for i in range(2):
      x = x.conv2d(conv_w[i], p[f"Conv_{i}"]["bias"], padding=1).silu().avg_pool2d(kernel_size=(2, 2), stride=2)
    x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)   # flatten in NHWC order, as flax does
    x = x.linear(p["Dense_0"]["kernel"], p["Dense_0"]["bias"]).silu()
    return x.linear(p["Dense_1"]["kernel"], p["Dense_1"]["bias"]).realize()
  return forward


def cnn_forward(quick):
  batch = 64 if quick else 512
  params, images = params_and_images(batch)
  params_tg, images_tg = to_tinygrad((params, images))
  model_tiny, model_jax, model_hand = tiny(apply_model), jax.jit(apply_model), handwritten_tinygrad(params)
  return Case(lambda: model_tiny(params_tg, images_tg), lambda: model_jax(params, images),
              lambda: model_hand(images_tg), size=f"batch {batch}")
