"""The main demo: the prototype's Flax CNN through @tiny on the default tinygrad device, against jax.jit.

    python -m tinyjax.demo [--batch 512] [--device CL] [--repeat 20]
"""
import argparse

import jax
import numpy as np
from tinygrad import Device

from tinyjax import tiny, timing, to_tinygrad
from tinyjax.examples.cnn import apply_model, params_and_images


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--batch", type=int, default=512)
  parser.add_argument("--device", default=None, help="tinygrad device (CPU, CL, CUDA, METAL, ...); default: tinygrad's choice")
  parser.add_argument("--repeat", type=int, default=20)
  args = parser.parse_args(argv)

  params, images = params_and_images(args.batch)
  model_jax, model_tiny = jax.jit(apply_model), tiny(apply_model, device=args.device)
  device = Device.canonicalize(args.device) if args.device else Device.DEFAULT
  # the data lives on the tinygrad device, as it would in a real program
  params_tg, images_tg = to_tinygrad((params, images), device)

  first_call, out = timing.timed(lambda: model_tiny(params_tg, images_tg))
  # the reference at float32 precision: on GPUs jax.jit's default lets XLA multiply in TF32 (a ~1e-3 relative
  # difference), while tinygrad computes float32 matmuls and convolutions in float32
  with jax.default_matmul_precision("highest"):
    want = np.asarray(jax.jit(apply_model)(params, images))
  got = out.numpy()
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  print(f"parity with jax.jit: OK (batch {args.batch}, max abs diff {np.abs(got - want).max():.2e}) on tinygrad device {device}")

  # both until their results are computed on their device (tiny's first call above was its warm-up)
  t_tiny = timing.measure(lambda: model_tiny(params_tg, images_tg), args.repeat, warmup=0).median
  t_jax = timing.measure(lambda: model_jax(params, images), args.repeat).median
  print(f"first call (trace + capture + compile): {first_call * 1e3:.0f} ms")
  print(f"tiny    ({device}): {t_tiny * 1e3:8.2f} ms per batch (median of {args.repeat})")
  print(f"jax.jit ({jax.devices()[0].platform.upper()}): {t_jax * 1e3:8.2f} ms per batch")
  print(f"ratio tiny / jax.jit: {timing.ratio(t_tiny, t_jax)}")


if __name__ == "__main__":
  main()
