"""tinyjax.kernels: the kernels a captured program replays, as source code ("compile JAX to C" on DEV=CPU)."""
import os
import re
import shutil
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from tinygrad import Device
from tinygrad.helpers import GlobalCounters

import tinyjax
from tinyjax import tiny, to_tinygrad


def mlp(params, x):
  h = jax.nn.relu(x @ params["w1"] + params["b1"])
  return jax.nn.softmax(h @ params["w2"] + params["b2"])


def mlp_args():
  rng = np.random.default_rng(0)
  params = {"w1": rng.normal(size=(16, 32)), "b1": np.zeros(32), "w2": rng.normal(size=(32, 10)), "b2": np.zeros(10)}
  return to_tinygrad(({k: v.astype(np.float32) for k, v in params.items()}, rng.normal(size=(4, 16)).astype(np.float32)))


def test_mlp_kernels_are_what_a_replay_runs():
  f, args = tiny(mlp), mlp_args()
  ks = tinyjax.kernels(f, *args)
  GlobalCounters.reset()
  f(*args).realize()
  if Device[Device.DEFAULT].graph is None: assert len(ks) == GlobalCounters.kernel_count   # a graph batch counts once
  assert len(ks) > 0 and f.trace_count == 1
  assert all(k.device == Device.DEFAULT and re.search(rf"\b{k.name}\(", k.src) for k in ks)
  assert f"{len(ks)} launches" in ks.listing()


@pytest.mark.skipif(Device.DEFAULT != "CPU", reason="C source on the CPU device")
def test_mlp_exports_c_that_compiles(tmp_path):
  ks = tinyjax.kernels(tiny(mlp), *mlp_args())
  src = ks.save(tmp_path / "mlp.c").read_text()
  assert {k.name for k in ks} <= set(re.findall(r"^void (\w+)\(", src, re.M))
  if cc := shutil.which(os.environ.get("CC", "clang")):
    subprocess.run([cc, "-c", "-O2", str(tmp_path / "mlp.c"), "-o", str(tmp_path / "mlp.o")], check=True)


def test_kernels_sharing_a_name_get_distinct_names():
  ks = tinyjax.kernels(tiny(lambda x, y: (jnp.exp(x), y * 2)), np.ones(4, np.float32), np.ones(4, np.float32))
  distinct = {k.src: k.name for k in ks}
  assert len(set(distinct.values())) == len(distinct) >= 2


def test_uncaptured_programs_say_why():
  loop = tiny(lambda x: jax.lax.while_loop(lambda c: c < 10, lambda c: c + 1, x))
  with pytest.raises(NotImplementedError, match="while_loop"): tinyjax.kernels(loop, np.float32(0))
  with pytest.raises(ValueError, match="jit=False"): tinyjax.kernels(tiny(mlp, jit=False), *mlp_args())
