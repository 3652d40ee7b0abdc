"""tinyjax: run JAX programs on tinygrad. `from tinyjax import tiny`."""
from . import tinygrad_patches
tinygrad_patches.install()   # before any kernel is compiled: see tinygrad_patches/__init__.py
from . import rules  # noqa: E402,F401  (registers every rule)
from .decorator import TinyKey, tiny, to_numpy, to_tinygrad  # noqa: E402
from .capture import tinygrad_lock  # noqa: E402
from .interpreter import UnsupportedPrimitiveError  # noqa: E402
from .export import Kernel, Kernels, kernels  # noqa: E402

__all__ = ["tiny", "to_numpy", "to_tinygrad", "TinyKey", "UnsupportedPrimitiveError", "kernels", "Kernel", "Kernels", "tinygrad_lock"]
