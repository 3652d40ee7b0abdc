"""The prototype's Flax CNN forward: tiny vs jax.jit vs the same network hand-written in tinygrad, in one run.

    DEV=CPU python benchmarks/cnn_forward.py [--batch 512] [--repeat 20]

Prints milliseconds per batch (median) and the ratios tiny/jax.jit and tiny/hand-written tinygrad.
"""
import argparse

import jax
import numpy as np
from tinygrad import Device, TinyJit

from tinyjax import tiny, timing, to_tinygrad
from tinyjax.examples.cnn import apply_model, params_and_images


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


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--repeat", type=int, default=20)
  args = parser.parse_args()
  params, images = params_and_images(args.batch)
  params_tg, images_tg = to_tinygrad((params, images))
  model_tiny, model_jax, model_hand = tiny(apply_model), jax.jit(apply_model), handwritten_tinygrad(params)

  with jax.default_matmul_precision("highest"):   # float32 as tinygrad computes it (jax on GPU defaults to TF32)
    want = np.asarray(jax.jit(apply_model)(params, images))
  np.testing.assert_allclose(model_tiny(params_tg, images_tg).numpy(), want, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(model_hand(images_tg).numpy(), want, rtol=1e-4, atol=1e-5)

  def median_ms(fn): return timing.measure(fn, args.repeat, warmup=2, read=True).median * 1e3   # outputs read back
  t_tiny = median_ms(lambda: model_tiny(params_tg, images_tg))
  t_hand = median_ms(lambda: model_hand(images_tg))
  t_jax = median_ms(lambda: model_jax(params, images))
  print(f"CNN forward, batch {args.batch}, tinygrad device {Device.DEFAULT}, jax on {jax.devices()[0].platform}")
  print(f"  tiny                 {t_tiny:9.2f} ms")
  print(f"  hand-written tinygrad{t_hand:9.2f} ms")
  print(f"  jax.jit              {t_jax:9.2f} ms")
  print(f"  tiny / jax.jit       {timing.ratio(t_tiny, t_jax, '9.2f')}")
  print(f"  tiny / hand-written  {timing.ratio(t_tiny, t_hand, '9.2f')}")


if __name__ == "__main__":
  main()
