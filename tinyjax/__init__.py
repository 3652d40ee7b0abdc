"""tinyjax: run JAX programs on tinygrad. `from tinyjax import tiny`."""
from . import compiler  # noqa: F401  (first: flags for the CPU device's clang, before any kernel is compiled)
from . import ops, interpreter, shapes, reductions, conv, random, indexing, control_flow, callbacks, sorting, special, linalg  # noqa: F401  (each module registers its rules)
from .decorator import TinyKey, tiny, to_numpy, to_tinygrad
from .interpreter import UnsupportedPrimitiveError
from .export import Kernel, Kernels, kernels

__all__ = ["tiny", "to_numpy", "to_tinygrad", "TinyKey", "UnsupportedPrimitiveError", "kernels", "Kernel", "Kernels"]
