"""The first call of a TinyJit (captured on its first call, cnt=1): capture, then run the capture.

A device's graph API can refuse a batch of kernels that runs fine when they are launched one by one (seen on CUDA:
cuGraphAddKernelNode answered 'invalid argument' for the 102 kernels of an embedding's scatter-add gradient, which run
correctly with JIT=2). Graph batching only saves launch time, so such a program is captured again without it. Outputs
are fresh buffers and no captured kernel writes its inputs, so running the kernels a second time is harmless.
"""
from tinygrad.helpers import Context


def capture(jit, *args):
  try: return jit(*args)
  except RuntimeError:
    if jit.captured is None: raise   # (it failed before the capture was built: not the graph)
    jit.reset()
    jit.cnt = 1
    with Context(JIT=2): return jit(*args)
