"""Writes the notebooks from the cells below and executes them, so the committed .ipynb files carry a real run's outputs.

    DEV=CPU python notebooks/build.py            # rebuild and execute all
    DEV=CPU python notebooks/build.py training   # one

tests/test_notebooks.py executes the committed notebooks again in CI.
"""
import pathlib
import sys

import nbformat
from nbclient import NotebookClient

HERE = pathlib.Path(__file__).parent

QUICKSTART = [
  ("md", """# tinyjax quickstart

tinyjax runs JAX programs on [tinygrad](https://github.com/tinygrad/tinygrad): `@tiny` traces a JAX function to a
Jaxpr, maps every primitive onto lazy tinygrad Tensor ops, and tinygrad fuses the graph into kernels for CPU (C),
OpenCL, CUDA, Metal, AMD or WebGPU. This notebook shows the decorator, the lazy graph, the prototype's Flax CNN with
parity and timings against `jax.jit`, and how many kernels tinygrad made of it."""),
  ("code", """import numpy as np
import jax, jax.numpy as jnp
from tinygrad import Device, Tensor
from tinygrad.helpers import GlobalCounters
from tinyjax import tiny, timing, to_tinygrad
print("tinygrad device:", Device.DEFAULT, "| jax devices:", jax.devices())"""),
  ("md", """## The decorator

Inputs can be tinygrad Tensors, jax or numpy arrays and Python scalars, in any pytree. The output is the pytree JAX
would return, with tinygrad Tensors as leaves. `jit=False` returns the lazy, unrealized graph instead of running
captured kernels."""),
  ("code", """@tiny
def fun(first, second):
    temp = first + jnp.sin(second) * 3.0
    return {"sum": jnp.sum(temp), "temp": temp}

out = fun(Tensor([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0], np.float32))
print(out["sum"].numpy(), out["temp"].numpy())
print(jax.jit(fun.fun)(jnp.array([1.0, 2.0, 3.0]), jnp.array([4.0, 5.0, 6.0])))"""),
  ("code", """lazy = tiny(fun.fun, jit=False)(Tensor([1.0, 2.0, 3.0]), Tensor([4.0, 5.0, 6.0]))
print("realized?", lazy["sum"].uop.is_realized)
lazy["sum"]"""),
  ("md", """## The prototype's Flax CNN

Two convolutions with silu and average pooling, then two Dense layers, at batch 512. The parameters and images are
put on the tinygrad device once, as a real program would keep them there."""),
  ("code", """from tinyjax.examples.cnn import apply_model, params_and_images
params, images = params_and_images(512)
params_tg, images_tg = to_tinygrad((params, images))   # put the data on the tinygrad device once

model_tiny, model_jax = tiny(apply_model), jax.jit(apply_model)
got, want = model_tiny(params_tg, images_tg).numpy(), np.asarray(model_jax(params, images))
np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
print("parity with jax.jit: max abs difference", np.abs(got - want).max())"""),
  ("code", """print(model_tiny.report(params_tg, images_tg))"""),
  ("md", """`timing.measure` calls a function once to warm up, then 10 times, each until its outputs are computed on their
device (a tinygrad call, like a jax.jit call, can return before its kernels have run)."""),
  ("code", """t_tiny = timing.measure(lambda: model_tiny(params_tg, images_tg))
t_jax = timing.measure(lambda: model_jax(params, images))
print(f"tiny ({Device.DEFAULT}): {t_tiny}")
print(f"jax.jit: {t_jax}")
print("ratio tiny / jax.jit:", timing.ratio(t_tiny.median, t_jax.median))"""),
  ("code", """GlobalCounters.reset()
model_tiny(params_tg, images_tg).numpy()
print(f"one replay ran {GlobalCounters.kernel_count} kernels "
      f"for {model_tiny.lower(params_tg, images_tg).closed_jaxpr.eqns.__len__()} top-level Jaxpr equations; "
      f"traced {model_tiny.trace_count} time(s)")"""),
  ("md", """## Gradients

`jax.grad` runs before tinyjax sees the function, so `tiny(jax.grad(loss))` is just another Jaxpr (relu's
`custom_jvp`, max-pool's `select_and_scatter_add` and friends included)."""),
  ("code", """def loss(params, images):
    return jnp.mean(apply_model(params, images) ** 2)
grads = tiny(jax.grad(loss))(params_tg, images_tg)
want = jax.jit(jax.grad(loss))(params, images)
err = max(float(np.abs(g.numpy() - np.asarray(w)).max()) for g, w in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(want)))
print("largest gradient difference:", err)"""),
]

TRAINING = [
  ("md", """# Training a Flax CNN under tiny

A small CNN (Conv, BatchNorm, Dropout, weight decay; adamw with clipping and a warmup-cosine schedule) on
scikit-learn's digits, trained twice from the same initialization, the same batches and the same dropout keys: once
with `jax.jit`, once with `tiny`. The whole training step — `value_and_grad` plus the optax update — is one `tiny`
function; params, batch statistics, optimizer state and the key stay tinygrad Tensors from step to step."""),
  ("code", """import numpy as np
import matplotlib.pyplot as plt
from tinygrad import Device
from tinyjax.examples.train_digits import run
results = run(steps=200, batch=64, progress=False)
(loss_j, acc_j, t_j), (loss_t, acc_t, t_t) = results["jax.jit"], results["tiny"]
print(f"device {Device.DEFAULT}; tiny traced the step {results['tiny_traces']} time(s)")
print(f"final test accuracy: jax.jit {acc_j[-1][1]:.4f}, tiny {acc_t[-1][1]:.4f}")
print(f"time per step: jax.jit {t_j * 1e3:.2f} ms, tiny {t_t * 1e3:.2f} ms")
print(f"largest loss difference over the first 50 steps: {np.abs(loss_j[:50] - loss_t[:50]).max():.2e}")"""),
  ("code", """fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(loss_j, label="jax.jit"); ax1.plot(loss_t, "--", label="tiny")
ax1.set_xlabel("step"); ax1.set_ylabel("training loss"); ax1.set_yscale("log"); ax1.legend()
ax2.plot(*zip(*acc_j), "o-", label="jax.jit"); ax2.plot(*zip(*acc_t), "x--", label="tiny")
ax2.set_xlabel("step"); ax2.set_ylabel("test accuracy"); ax2.legend()
plt.tight_layout()"""),
]

TRANSFORMER = [
  ("md", """# A transformer block, and the C it compiles to

A pre-norm Flax transformer block — causal multi-head self-attention, LayerNorm, a gelu MLP — run forward and under
`jax.value_and_grad` with `tiny`, checked against `jax.jit`. Then the kernels tinygrad made of it: a DEBUG=2 replay,
`tinyjax.kernels` (name, device, launch sizes and source of every kernel the capture replays), and that source
compiled with clang and called from Python — the same JAX function as plain C."""),
  ("code", """import os, ctypes, pathlib, subprocess, tempfile
import numpy as np
import jax, jax.numpy as jnp
import flax.linen as nn
from tinygrad import Device
from tinygrad.helpers import Context, GlobalCounters
import tinyjax
from tinyjax import tiny, timing, to_numpy, to_tinygrad

class Block(nn.Module):
    heads: int = 2
    @nn.compact
    def __call__(self, x):
        causal = nn.make_causal_mask(jnp.ones(x.shape[:2], jnp.int32))   # position i attends to positions <= i
        x = x + nn.MultiHeadDotProductAttention(num_heads=self.heads)(nn.LayerNorm()(x), mask=causal)
        h = nn.gelu(nn.Dense(4 * x.shape[-1])(nn.LayerNorm()(x)))
        return x + nn.Dense(x.shape[-1])(h)

block = Block()
x = jax.random.normal(jax.random.key(0), (2, 16, 16))   # batch 2, sequence 16, model width 16: small, as CI compiles it
params = block.init(jax.random.key(1), x)
params_tg, x_tg = to_tinygrad((params, x))               # on the tinygrad device once
print("device:", Device.DEFAULT, "| parameters:", sum(p.size for p in jax.tree_util.tree_leaves(params)))"""),
  ("md", """## Forward and gradient, against `jax.jit`

The first call of each traces the function, interprets its Jaxpr onto tinygrad Tensors and captures the kernels
(compiling them); later calls replay the capture."""),
  ("code", """forward_tiny, forward_jax = tiny(block.apply), jax.jit(block.apply)
first, got = timing.timed(lambda: forward_tiny(params_tg, x_tg))
print(f"forward: first call (trace, capture, compile) {first:.1f} s")
print("forward: max abs difference to jax.jit", np.abs(got.numpy() - np.asarray(forward_jax(params, x))).max())

def loss(params, x):   # how far the block moves its input
    return jnp.mean((block.apply(params, x) - x) ** 2)

grad_tiny, grad_jax = tiny(jax.value_and_grad(loss)), jax.jit(jax.value_and_grad(loss))
first, got = timing.timed(lambda: grad_tiny(params_tg, x_tg))
(loss_t, grads_t), (loss_j, grads_j) = to_numpy(got), grad_jax(params, x)
print(f"value_and_grad: first call {first:.1f} s")
print("value_and_grad: loss difference", abs(float(loss_t) - float(loss_j)), "| largest gradient difference",
      max(np.abs(a - b).max() for a, b in zip(jax.tree_util.tree_leaves(grads_t), jax.tree_util.tree_leaves(grads_j))))"""),
  ("code", """timings = {}   # median ms of 10 calls after a warm-up, each until its outputs are computed
for what, run_tiny, run_jax in [
        ("forward", lambda: forward_tiny(params_tg, x_tg), lambda: forward_jax(params, x)),
        ("value_and_grad", lambda: grad_tiny(params_tg, x_tg), lambda: grad_jax(params, x))]:
    t_tiny, t_jax = timings[what] = [timing.measure(run).median * 1e3 for run in (run_tiny, run_jax)]
    print(f"{what:>15}: tiny ({Device.DEFAULT}) {t_tiny:6.2f} ms   jax.jit {t_jax:6.2f} ms   ratio {timing.ratio(t_tiny, t_jax, '5.1f')}")"""),
  ("md", """## The kernels

`DEBUG=2` makes tinygrad print every kernel it launches, with its time. tinygrad names a kernel by its loops:
`E_` elementwise, `r_` with a reduction, then the loop sizes (colors mark their kind). At this size the kernels are
a small part of a call: the rest is host work per call (checking the inputs, allocating the outputs, launching each
kernel from Python)."""),
  ("code", """GlobalCounters.reset()
with Context(DEBUG=2):
    forward_tiny(params_tg, x_tg).numpy()
print(f"{GlobalCounters.kernel_count} kernels ran for {GlobalCounters.time_sum_s * 1e3:.2f} ms of the {timings['forward'][0]:.2f} ms a forward call takes")"""),
  ("md", """`tinyjax.kernels(f, *args)` returns the same kernels without running them: each with its name, device, global
and local launch sizes and source code — C on the CPU device, OpenCL C on CL, CUDA C on CUDA, Metal, WGSL."""),
  ("code", """forward_kernels = tinyjax.kernels(forward_tiny, params_tg, x_tg)
print(forward_kernels.listing())
print("value_and_grad:", tinyjax.kernels(grad_tiny, params_tg, x_tg).listing().splitlines()[-1])"""),
  ("md", """## Compile JAX to C

Here is the source of the first two reductions: the first LayerNorm's mean, and its variance fused with the square
root. `forward_kernels.save(path)` writes every distinct kernel into one file."""),
  ("code", """for kernel in [k for k in forward_kernels if k.name.startswith("r_")][:2]:
    print(kernel)"""),
  ("code", """if Device.DEFAULT == "CPU":   # the exported file is plain C: build a shared library and call the LayerNorm mean
    path = forward_kernels.save(pathlib.Path(tempfile.mkdtemp()) / "block.c")
    lib = path.with_suffix(".so")
    subprocess.run([os.environ.get("CC", "clang"), "-O2", "-shared", "-fPIC", str(path), "-o", str(lib)], check=True)
    mean = next(k for k in forward_kernels if k.name.startswith("r_"))
    out, inp = np.zeros(x.shape[:2], np.float32), np.ascontiguousarray(x, np.float32)
    getattr(ctypes.CDLL(str(lib)), mean.name)(out.ctypes.data_as(ctypes.c_void_p), inp.ctypes.data_as(ctypes.c_void_p))
    print(f"{path.name}: {len(path.read_text().splitlines())} lines of C; {mean.name} from Python via ctypes,"
          f" max abs difference to x.mean(-1): {np.abs(out - np.asarray(x).mean(-1)).max():.1e}")"""),
]

NOTEBOOKS = {"quickstart": QUICKSTART, "training": TRAINING, "transformer": TRANSFORMER}


def build(name):
  nb = nbformat.v4.new_notebook()
  nb.cells = [nbformat.v4.new_markdown_cell(src) if kind == "md" else nbformat.v4.new_code_cell(src) for kind, src in NOTEBOOKS[name]]
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}).execute()
  nbformat.write(nb, HERE / f"{name}.ipynb")
  print("wrote", HERE / f"{name}.ipynb")


if __name__ == "__main__":
  for name in sys.argv[1:] or NOTEBOOKS: build(name)
